// Every SQL-callable function of the extension: thin extern "C" shims
// (FPC_SQL_FUNCTION, see pg_bridge.hpp) that read their arguments, call the
// cache core (cache.hpp), the statistics (stats.hpp) or the worker control
// (worker/worker.hpp), and build the result. The SQL declarations are in
// fastpgcache--*.sql.
//
// Every function refuses to run on a standby: the cache lives in an
// UNLOGGED table, which only the primary has (FPC_CACHE_FUNCTION).

#include "cache.hpp"

extern "C" {
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/snapmgr.h"
#include "utils/tuplestore.h"
}

#include <climits>
#include <string>
#include <vector>

#include "stats.hpp"
#include "worker/worker.hpp"

namespace fastpgcache {
namespace {

// The cache's table is UNLOGGED: a standby has no data for it (reading its
// file fails) and can write nothing. Refuse at once, naming the cause.
void RequirePrimary() {
  if (!Guarded([] { return RecoveryInProgress(); })) return;
  throw CacheError(sqlstate::kFeatureNotSupported, "fastpgcache is not available on a standby server",
                   "The cache lives in an UNLOGGED table, which exists only on the primary server.",
                   "Connect to the primary server to use the cache.");
}

text *ArgText(FunctionCallInfo fcinfo, int n) {
  return Guarded([&] { return PG_GETARG_TEXT_PP(n); });
}

// The key argument of a write: NULL is an error, not a silent no-op.
text *WriteKeyArg(FunctionCallInfo fcinfo) {
  if (PG_ARGISNULL(0)) throw CacheError(sqlstate::kNullValueNotAllowed, "cache key must not be null");
  return ArgText(fcinfo, 0);
}

// expires_at for a ttl argument; false when the entry does not expire.
bool ExpiryFromTtl(FunctionCallInfo fcinfo, int argno, TimestampTz now, TimestampTz *expires_at) {
  if (PG_NARGS() <= argno || PG_ARGISNULL(argno)) return false;
  int32 ttl = PG_GETARG_INT32(argno);
  if (ttl <= 0)
    throw CacheError(sqlstate::kInvalidParameterValue, "invalid ttl " + std::to_string(ttl),
                     "ttl must be a positive number of seconds.", "Pass NULL for an entry that does not expire.");
  *expires_at = now + static_cast<TimestampTz>(ttl) * USECS_PER_SEC;
  if (!IS_VALID_TIMESTAMP(*expires_at))
    throw CacheError(sqlstate::kDatetimeFieldOverflow, "ttl " + std::to_string(ttl) + " is out of range");
  return true;
}

// The elements of a one-dimensional text[] (NULL elements as nullptr).
std::vector<text *> TextArrayElements(ArrayType *array, const char *what) {
  int ndim = ARR_NDIM(array);
  if (ndim > 1)
    throw CacheError(sqlstate::kInvalidParameterValue, std::string(what) + " must be a one-dimensional array");
  Datum *elems = nullptr;
  bool *nulls = nullptr;
  int n = 0;
  Guarded([&] { deconstruct_array(array, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n); });
  std::vector<text *> out(static_cast<std::size_t>(n), nullptr);
  for (int i = 0; i < n; i++) {
    if (!nulls[i]) out[i] = Guarded([&] { return DatumGetTextPP(elems[i]); });
  }
  return out;
}

Datum SetImpl(FunctionCallInfo fcinfo, char kind) {
  text *key = WriteKeyArg(fcinfo);
  if (PG_ARGISNULL(1))
    throw CacheError(sqlstate::kNullValueNotAllowed, "cache value must not be null", {},
                     "Use cache_delete() to remove a key.");
  TimestampTz now = GetCurrentTimestamp();
  TimestampTz expires_at = 0;
  bool expires = ExpiryFromTtl(fcinfo, 2, now, &expires_at);
  Datum value;
  if (kind == kKindJson) {
    // Stored as its text form: cache_get() returns it as is, cache_get_json()
    // parses it back.
    value = Guarded([&] {
      Datum json = PG_GETARG_DATUM(1);
      char *out = DatumGetCString(DirectFunctionCall1(jsonb_out, json));
      return PointerGetDatum(cstring_to_text(out));
    });
  } else {
    value = Guarded([&] { return PointerGetDatum(PG_DETOAST_DATUM_PACKED(PG_GETARG_DATUM(1))); });
  }
  Store(fcinfo, key, value, kind, expires, expires_at);
  return BoolGetDatum(true);
}

}  // namespace
}  // namespace fastpgcache

using namespace fastpgcache;

// FPC_SQL_FUNCTION (pg_bridge.hpp) for a function of the cache: the body
// runs only on a primary server.
#define FPC_CACHE_FUNCTION(name)                                   \
  static Datum name##Body([[maybe_unused]] FunctionCallInfo fcinfo); \
  FPC_SQL_FUNCTION(name) {                                         \
    RequirePrimary();                                              \
    return name##Body(fcinfo);                                     \
  }                                                                \
  static Datum name##Body([[maybe_unused]] FunctionCallInfo fcinfo)

// cache_set(key text, value text, ttl integer DEFAULT NULL) RETURNS boolean
FPC_CACHE_FUNCTION(cache_set_text) { return SetImpl(fcinfo, kKindText); }

// cache_set(key text, value jsonb, ttl integer DEFAULT NULL) RETURNS boolean
FPC_CACHE_FUNCTION(cache_set_jsonb) { return SetImpl(fcinfo, kKindJson); }

// cache_set(key text, value bytea, ttl integer DEFAULT NULL) RETURNS boolean
FPC_CACHE_FUNCTION(cache_set_bytea) { return SetImpl(fcinfo, kKindBytes); }

// cache_get(key text) RETURNS text; STRICT
FPC_CACHE_FUNCTION(cache_get) {
  Entry entry = FindValue(fcinfo, ArgText(fcinfo, 0));
  if (!entry.found) PG_RETURN_NULL();
  CheckText(entry);
  return entry.value;  // bytea and text share one representation
}

// cache_get_bytes(key text) RETURNS bytea; STRICT
FPC_CACHE_FUNCTION(cache_get_bytes) {
  Entry entry = FindValue(fcinfo, ArgText(fcinfo, 0));
  if (!entry.found) PG_RETURN_NULL();
  return entry.value;
}

// cache_get_json(key text) RETURNS jsonb; STRICT
FPC_CACHE_FUNCTION(cache_get_json) {
  Entry entry = FindValue(fcinfo, ArgText(fcinfo, 0));
  if (!entry.found) PG_RETURN_NULL();
  CheckText(entry);
  return Guarded([&] {
    char *json = text_to_cstring(reinterpret_cast<text *>(DatumGetPointer(entry.value)));
    return DirectFunctionCall1(jsonb_in, CStringGetDatum(json));
  });
}

// cache_exists(key text) RETURNS boolean; STRICT
FPC_CACHE_FUNCTION(cache_exists) { return BoolGetDatum(Find(fcinfo, ArgText(fcinfo, 0), false).found); }

// cache_ttl(key text) RETURNS integer; STRICT. Seconds left, rounded up so
// that a live entry never reports 0; -1 no expiry; -2 missing or expired.
FPC_CACHE_FUNCTION(cache_ttl) {
  Entry entry = Find(fcinfo, ArgText(fcinfo, 0), false);
  if (!entry.found) return Int32GetDatum(-2);
  if (!entry.expires) return Int32GetDatum(-1);
  TimestampTz now = GetCurrentTimestamp();
  int64 left = (entry.expires_at - now + USECS_PER_SEC - 1) / USECS_PER_SEC;
  if (left < 1) left = 1;  // it was live when read
  return Int32GetDatum(left > INT_MAX ? INT_MAX : static_cast<int32>(left));
}

// cache_delete(key text) RETURNS boolean: true if a live entry was deleted.
// An expired entry is removed too, but reported as not deleted.
FPC_CACHE_FUNCTION(cache_delete) { return BoolGetDatum(Delete(fcinfo, WriteKeyArg(fcinfo))); }

// cache_cleanup() RETURNS integer: deletes every expired entry.
FPC_CACHE_FUNCTION(cache_cleanup) {
  uint64 deleted = Cleanup(fcinfo);
  return Int32GetDatum(deleted > static_cast<uint64>(INT_MAX) ? INT_MAX : static_cast<int32>(deleted));
}

// cache_mget(keys text[]) RETURNS TABLE(key text, value text); STRICT.
// One row per element, in order; value NULL for a miss (and a NULL key).
// Every key is read under one snapshot, so the batch is one consistent view,
// as Redis MGET is.
FPC_CACHE_FUNCTION(cache_mget) {
  ArrayType *array = Guarded([&] { return PG_GETARG_ARRAYTYPE_P(0); });
  std::vector<text *> keys = TextArrayElements(array, "keys");
  Guarded([&] { InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC); });
  auto *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
  // Each lookup's copies live in a context that is reset per key.
  MemoryContext per_key = Guarded([] {
    return AllocSetContextCreate(CurrentMemoryContext, "fastpgcache mget", ALLOCSET_DEFAULT_SIZES);
  });
  Snapshot snapshot = Guarded([] { return FreshSnapshot(); });
  for (text *key : keys) {
    Datum row[2] = {PointerGetDatum(key), 0};
    bool nulls[2] = {key == nullptr, true};
    MemoryContext old = MemoryContextSwitchTo(per_key);
    if (key != nullptr) {
      Entry entry = FindValue(fcinfo, key, snapshot);
      if (entry.found) {
        CheckText(entry);
        row[1] = entry.value;
        nulls[1] = false;
      }
    }
    MemoryContextSwitchTo(old);
    Guarded([&] {
      tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, row, nulls);
      MemoryContextReset(per_key);
    });
  }
  Guarded([&] {
    UnregisterSnapshot(snapshot);
    MemoryContextDelete(per_key);
  });
  return (Datum)0;
}

// cache_mset(keys text[], values text[], ttl integer DEFAULT NULL) RETURNS
// integer: sets every pair in one statement; a key given twice keeps its last
// value, as successive cache_set calls would. Returns the number of pairs.
FPC_CACHE_FUNCTION(cache_mset) {
  if (PG_ARGISNULL(0)) throw CacheError(sqlstate::kNullValueNotAllowed, "cache keys must not be null");
  if (PG_ARGISNULL(1)) throw CacheError(sqlstate::kNullValueNotAllowed, "cache values must not be null");
  TimestampTz expires_at = 0;
  bool expires = ExpiryFromTtl(fcinfo, 2, GetCurrentTimestamp(), &expires_at);
  std::vector<text *> keys = TextArrayElements(Guarded([&] { return PG_GETARG_ARRAYTYPE_P(0); }), "keys");
  std::vector<text *> values = TextArrayElements(Guarded([&] { return PG_GETARG_ARRAYTYPE_P(1); }), "values");
  if (keys.size() != values.size())
    throw CacheError(sqlstate::kInvalidParameterValue,
                     "keys and values must have the same length (" + std::to_string(keys.size()) + " keys, " +
                         std::to_string(values.size()) + " values)");
  for (std::size_t i = 0; i < keys.size(); i++) {
    if (keys[i] == nullptr) throw CacheError(sqlstate::kNullValueNotAllowed, "cache key must not be null");
    if (values[i] == nullptr)
      throw CacheError(sqlstate::kNullValueNotAllowed, "cache value must not be null", {},
                       "Use cache_delete() to remove a key.");
  }
  CheckWritable("cache_mset()");  // even when there is nothing to write
  if (keys.empty()) return Int32GetDatum(0);
  MultiSet(fcinfo, keys, values, expires, expires_at);
  return Int32GetDatum(static_cast<int32>(keys.size()));
}

// cache_stats() RETURNS record (see the OUT parameters in the SQL script).
FPC_CACHE_FUNCTION(cache_stats) {
  return Guarded([&] { return BuildStatsRow(fcinfo); });
}

// cache_stats_reset() RETURNS boolean: zeroes the counters; false (with a
// NOTICE) when there are no shared-memory counters to reset.
FPC_CACHE_FUNCTION(cache_stats_reset) { return BoolGetDatum(StatsReset()); }

// cache_start_worker() RETURNS integer: the pid of the new worker, or NULL
// (with a NOTICE) when one already runs in this database.
FPC_CACHE_FUNCTION(cache_start_worker) {
  return Guarded([&] { return worker::StartWorker(fcinfo); });
}

// cache_stop_worker() RETURNS boolean: stops this database's dynamic worker.
FPC_CACHE_FUNCTION(cache_stop_worker) {
  return Guarded([&] { return worker::StopWorker(fcinfo); });
}

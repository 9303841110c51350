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
#include "utils/float.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/snapmgr.h"
#include "utils/tuplestore.h"
#include "utils/memutils.h"
#include "access/htup_details.h"
}

#include <climits>
#include <cmath>
#include <cstring>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "redis_values.hpp"
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

// A boolean option argument (nx, xx, keepttl, persist): absent (a 1.0
// signature) is false; NULL is an error.
bool FlagArg(FunctionCallInfo fcinfo, int argno, const char *name) {
  if (PG_NARGS() <= argno) return false;
  if (PG_ARGISNULL(argno)) throw CacheError(sqlstate::kNullValueNotAllowed, std::string(name) + " must not be null");
  return PG_GETARG_BOOL(argno);
}

// An argument that must not be NULL (22004 names it).
void RequireArg(FunctionCallInfo fcinfo, int argno, const char *name) {
  if (PG_ARGISNULL(argno)) throw CacheError(sqlstate::kNullValueNotAllowed, std::string(name) + " must not be null");
}

// A value argument that must not be NULL.
Datum ValueArg(FunctionCallInfo fcinfo, int argno) {
  if (PG_ARGISNULL(argno))
    throw CacheError(sqlstate::kNullValueNotAllowed, "cache value must not be null", {},
                     "Use cache_delete() to remove a key.");
  return Guarded([&] { return PointerGetDatum(PG_DETOAST_DATUM_PACKED(PG_GETARG_DATUM(argno))); });
}

// A text value made from bytes, in the current memory context.
Datum MakeText(const char *data, std::size_t len) {
  return Guarded([&] { return PointerGetDatum(cstring_to_text_with_len(data, static_cast<int>(len))); });
}

std::string_view ValueBytes(Datum value) {
  const text *t = reinterpret_cast<const text *>(DatumGetPointer(value));
  return std::string_view(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
}

// The arguments (keys text[], values text[], ttl integer) of cache_mset and
// cache_msetnx, checked; returns whether the entries expire.
bool MultiSetArgs(FunctionCallInfo fcinfo, std::vector<text *> *keys, std::vector<text *> *values,
                  TimestampTz *expires_at) {
  if (PG_ARGISNULL(0)) throw CacheError(sqlstate::kNullValueNotAllowed, "cache keys must not be null");
  if (PG_ARGISNULL(1)) throw CacheError(sqlstate::kNullValueNotAllowed, "cache values must not be null");
  bool expires = ExpiryFromTtl(fcinfo, 2, GetCurrentTimestamp(), expires_at);
  *keys = TextArrayElements(Guarded([&] { return PG_GETARG_ARRAYTYPE_P(0); }), "keys");
  *values = TextArrayElements(Guarded([&] { return PG_GETARG_ARRAYTYPE_P(1); }), "values");
  if (keys->size() != values->size())
    throw CacheError(sqlstate::kInvalidParameterValue,
                     "keys and values must have the same length (" + std::to_string(keys->size()) + " keys, " +
                         std::to_string(values->size()) + " values)");
  for (std::size_t i = 0; i < keys->size(); i++) {
    if ((*keys)[i] == nullptr) throw CacheError(sqlstate::kNullValueNotAllowed, "cache key must not be null");
    if ((*values)[i] == nullptr)
      throw CacheError(sqlstate::kNullValueNotAllowed, "cache value must not be null", {},
                       "Use cache_delete() to remove a key.");
  }
  return expires;
}

// cache_set(key, value, ttl, nx, xx, keepttl): see fastpgcache--1.1.sql. The
// 1.0 signature (key, value, ttl) reaches here too, until ALTER EXTENSION
// UPDATE.
Datum SetImpl(FunctionCallInfo fcinfo, char kind) {
  text *key = WriteKeyArg(fcinfo);
  if (PG_ARGISNULL(1))
    throw CacheError(sqlstate::kNullValueNotAllowed, "cache value must not be null", {},
                     "Use cache_delete() to remove a key.");
  TimestampTz now = GetCurrentTimestamp();
  TimestampTz expires_at = 0;
  bool expires = ExpiryFromTtl(fcinfo, 2, now, &expires_at);
  bool nx = FlagArg(fcinfo, 3, "nx");
  bool xx = FlagArg(fcinfo, 4, "xx");
  bool keepttl = FlagArg(fcinfo, 5, "keepttl");
  if (nx && xx) throw CacheError(sqlstate::kInvalidParameterValue, "nx and xx cannot both be true");
  if (keepttl && expires) throw CacheError(sqlstate::kInvalidParameterValue, "keepttl and ttl cannot be used together");
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
  if (!nx && !xx && !keepttl) {
    Store(FunctionSchema(fcinfo), key, value, kind, expires, expires_at);
    return BoolGetDatum(true);
  }
  bool written = false;
  auto decide = [&](const Current &cur) {
    written = false;
    if ((nx && cur.live) || (xx && !cur.live)) return Change();
    written = true;
    if (keepttl) return Change::Write(value, kind, cur.live && cur.expires, cur.expires_at);
    return Change::Write(value, kind, expires, expires_at);
  };
  Mutate(FunctionSchema(fcinfo), "cache_set()", key, false, decide);
  if (written) StatsAdd(kStatSets);
  return BoolGetDatum(written);
}

// The expiry now + amount * unit_usecs, or a clear error when out of range.
TimestampTz ExpiryAfter(TimestampTz now, int64 amount, int64 unit_usecs, const char *what) {
  TimestampTz expires_at;
  int64 delta;
  if (__builtin_mul_overflow(amount, unit_usecs, &delta) || __builtin_add_overflow(now, delta, &expires_at) ||
      !IS_VALID_TIMESTAMP(expires_at))
    throw CacheError(sqlstate::kDatetimeFieldOverflow, std::string(what) + " " + std::to_string(amount) +
                                                           " is out of range");
  return expires_at;
}

// EXPIRE / PEXPIRE / EXPIREAT: the key gets expiry `at` (deleted when `at`
// is not in the future); true if it was live.
bool ExpireAt(Oid schema, const char *function, const text *key, TimestampTz at) {
  bool live = false;
  auto decide = [&](const Current &cur) {
    live = cur.live;
    if (!cur.live) return Change();
    if (at <= cur.now) return Change::Delete();
    return Change::SetExpiry(true, at);
  };
  Mutate(schema, function, key, false, decide);
  return live;
}

// cache_incr and cache_decr: Redis INCRBY.
int64 IncrBy(Oid schema, const char *function, const text *key, int64 by, bool expires,
             TimestampTz expires_at) {
  int64 result = 0;
  auto decide = [&](const Current &cur) {
    if (!cur.live) {
      result = by;
      std::string digits = std::to_string(result);
      return Change::Write(MakeText(digits.data(), digits.size()), kKindText, expires, expires_at);
    }
    std::optional<int64_t> current = ParseRedisInt(ValueBytes(cur.value));
    if (!current)
      throw CacheError(sqlstate::kInvalidTextRepresentation, "value is not an integer or out of range",
                       "The value of a counter must be a 64-bit integer written in decimal.");
    std::optional<int64_t> sum = AddRedisInt(*current, by);
    if (!sum) throw CacheError(sqlstate::kNumericValueOutOfRange, "increment or decrement would overflow");
    result = *sum;
    std::string digits = std::to_string(result);
    return Change::Write(MakeText(digits.data(), digits.size()), kKindText, cur.expires, cur.expires_at);
  };
  Mutate(schema, function, key, true, decide);
  StatsAdd(kStatSets);
  return result;
}

// The value of a live entry, checked to be valid text (22021 otherwise).
void CheckLiveText(const Current &cur) {
  if (!cur.live) return;
  Entry entry;
  entry.found = true;
  entry.kind = cur.kind;
  entry.value = cur.value;
  CheckText(entry);
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
  Entry entry = FindValue(FunctionSchema(fcinfo), ArgText(fcinfo, 0));
  if (!entry.found) PG_RETURN_NULL();
  CheckText(entry);
  return entry.value;  // bytea and text share one representation
}

// cache_get_bytes(key text) RETURNS bytea; STRICT
FPC_CACHE_FUNCTION(cache_get_bytes) {
  Entry entry = FindValue(FunctionSchema(fcinfo), ArgText(fcinfo, 0));
  if (!entry.found) PG_RETURN_NULL();
  return entry.value;
}

// cache_get_json(key text) RETURNS jsonb; STRICT
FPC_CACHE_FUNCTION(cache_get_json) {
  Entry entry = FindValue(FunctionSchema(fcinfo), ArgText(fcinfo, 0));
  if (!entry.found) PG_RETURN_NULL();
  CheckText(entry);
  return Guarded([&] {
    char *json = text_to_cstring(reinterpret_cast<text *>(DatumGetPointer(entry.value)));
    return DirectFunctionCall1(jsonb_in, CStringGetDatum(json));
  });
}

// cache_exists(key text) RETURNS boolean; STRICT
FPC_CACHE_FUNCTION(cache_exists) { return BoolGetDatum(Find(FunctionSchema(fcinfo), ArgText(fcinfo, 0), false).found); }

// cache_ttl(key text) RETURNS integer; STRICT. Seconds left, rounded up so
// that a live entry never reports 0; -1 no expiry; -2 missing or expired.
FPC_CACHE_FUNCTION(cache_ttl) {
  Entry entry = Find(FunctionSchema(fcinfo), ArgText(fcinfo, 0), false);
  if (!entry.found) return Int32GetDatum(-2);
  if (!entry.expires) return Int32GetDatum(-1);
  TimestampTz now = GetCurrentTimestamp();
  int64 left = (entry.expires_at - now + USECS_PER_SEC - 1) / USECS_PER_SEC;
  if (left < 1) left = 1;  // it was live when read
  return Int32GetDatum(left > INT_MAX ? INT_MAX : static_cast<int32>(left));
}

// cache_delete(key text) RETURNS boolean: true if a live entry was deleted.
// An expired entry is removed too, but reported as not deleted.
FPC_CACHE_FUNCTION(cache_delete) { return BoolGetDatum(Delete(FunctionSchema(fcinfo), WriteKeyArg(fcinfo))); }

// cache_cleanup() RETURNS integer: deletes every expired entry.
FPC_CACHE_FUNCTION(cache_cleanup) {
  uint64 deleted = Cleanup(FunctionSchema(fcinfo));
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
      Entry entry = FindValue(FunctionSchema(fcinfo), key, snapshot);
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
  std::vector<text *> keys, values;
  TimestampTz expires_at = 0;
  bool expires = MultiSetArgs(fcinfo, &keys, &values, &expires_at);
  CheckWritable("cache_mset()");  // even when there is nothing to write
  if (keys.empty()) return Int32GetDatum(0);
  MultiSet(FunctionSchema(fcinfo), keys, values, expires, expires_at);
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

// ------------------------------------------------------- the Redis command set

// cache_getset(key text, value text, ttl integer DEFAULT NULL) RETURNS text:
// sets the value and returns the previous one (SET ... GET).
FPC_CACHE_FUNCTION(cache_getset) {
  text *key = WriteKeyArg(fcinfo);
  Datum value = ValueArg(fcinfo, 1);
  TimestampTz expires_at = 0;
  bool expires = ExpiryFromTtl(fcinfo, 2, GetCurrentTimestamp(), &expires_at);
  bool had = false;
  Datum previous = 0;
  auto decide = [&](const Current &cur) {
    CheckLiveText(cur);  // nothing is written if the old value cannot be returned
    had = cur.live;
    previous = cur.value;
    return Change::Write(value, kKindText, expires, expires_at);
  };
  Mutate(FunctionSchema(fcinfo), "cache_getset()", key, true, decide);
  StatsAdd(had ? kStatHits : kStatMisses);
  StatsAdd(kStatSets);
  if (!had) PG_RETURN_NULL();
  return previous;
}

// cache_incr(key text, by bigint DEFAULT 1, ttl integer DEFAULT NULL)
// RETURNS bigint: Redis INCRBY; ttl applies only when the key is created.
FPC_CACHE_FUNCTION(cache_incr) {
  text *key = WriteKeyArg(fcinfo);
  RequireArg(fcinfo, 1, "by");
  int64 by = PG_GETARG_INT64(1);
  TimestampTz expires_at = 0;
  bool expires = ExpiryFromTtl(fcinfo, 2, GetCurrentTimestamp(), &expires_at);
  return Int64GetDatum(IncrBy(FunctionSchema(fcinfo), "cache_incr()", key, by, expires, expires_at));
}

// cache_decr(key text, by bigint DEFAULT 1) RETURNS bigint: Redis DECRBY.
FPC_CACHE_FUNCTION(cache_decr) {
  text *key = WriteKeyArg(fcinfo);
  RequireArg(fcinfo, 1, "by");
  int64 by = PG_GETARG_INT64(1);
  if (by == INT64_MIN) throw CacheError(sqlstate::kNumericValueOutOfRange, "decrement would overflow");
  return Int64GetDatum(IncrBy(FunctionSchema(fcinfo), "cache_decr()", key, -by, false, 0));
}

// cache_incrbyfloat(key text, by double precision) RETURNS double precision:
// Redis INCRBYFLOAT, in long double, written back as Redis writes it.
FPC_CACHE_FUNCTION(cache_incrbyfloat) {
  text *key = WriteKeyArg(fcinfo);
  RequireArg(fcinfo, 1, "by");
  double by_arg = PG_GETARG_FLOAT8(1);
  // The increment as Redis would parse it from what the user wrote: the
  // shortest decimal form of the double ("0.1"), read as a long double.
  std::string by_text = Guarded([&] { return float8out_internal(by_arg); });
  std::optional<long double> by = ParseRedisFloat(by_text);
  if (!by || std::isnan(by_arg))
    throw CacheError(sqlstate::kNumericValueOutOfRange, "increment would produce NaN or Infinity");
  std::string result;
  auto decide = [&](const Current &cur) {
    long double value = 0;
    if (cur.live) {
      std::optional<long double> current = ParseRedisFloat(ValueBytes(cur.value));
      if (!current) throw CacheError(sqlstate::kInvalidTextRepresentation, "value is not a valid float");
      value = *current;
    }
    value += *by;
    if (std::isnan(value) || std::isinf(value))
      throw CacheError(sqlstate::kNumericValueOutOfRange, "increment would produce NaN or Infinity");
    result = FormatRedisFloat(value);
    if (result.empty()) throw CacheError(sqlstate::kNumericValueOutOfRange, "the result is too long to store");
    return Change::Write(MakeText(result.data(), result.size()), kKindText, cur.live && cur.expires,
                         cur.expires_at);
  };
  Mutate(FunctionSchema(fcinfo), "cache_incrbyfloat()", key, true, decide);
  StatsAdd(kStatSets);
  return Float8GetDatum(std::strtod(result.c_str(), nullptr));
}

// cache_append(key text, value text) RETURNS bigint: Redis APPEND; the new
// length in bytes.
FPC_CACHE_FUNCTION(cache_append) {
  text *key = WriteKeyArg(fcinfo);
  Datum suffix = ValueArg(fcinfo, 1);
  int64 length = 0;
  auto decide = [&](const Current &cur) {
    std::string_view tail = ValueBytes(suffix);
    std::string_view head = cur.live ? ValueBytes(cur.value) : std::string_view();
    std::size_t total = head.size() + tail.size();
    if (total > MaxAllocSize - VARHDRSZ)
      throw CacheError(sqlstate::kProgramLimitExceeded, "the value would exceed the maximum size (1 GB)");
    length = static_cast<int64>(total);
    Datum joined = Guarded([&] {
      text *out = static_cast<text *>(palloc(VARHDRSZ + total));
      SET_VARSIZE(out, VARHDRSZ + total);
      std::memcpy(VARDATA(out), head.data(), head.size());
      std::memcpy(VARDATA(out) + head.size(), tail.data(), tail.size());
      return PointerGetDatum(out);
    });
    char kind = cur.live && cur.kind == kKindBytes ? kKindBytes : kKindText;
    return Change::Write(joined, kind, cur.live && cur.expires, cur.expires_at);
  };
  Mutate(FunctionSchema(fcinfo), "cache_append()", key, true, decide);
  StatsAdd(kStatSets);
  return Int64GetDatum(length);
}

// cache_strlen(key text) RETURNS integer; STRICT: Redis STRLEN, 0 if absent.
FPC_CACHE_FUNCTION(cache_strlen) {
  Entry entry = Find(FunctionSchema(fcinfo), ArgText(fcinfo, 0), true);
  if (!entry.found) return Int32GetDatum(0);
  return Int32GetDatum(static_cast<int32>(VARSIZE_ANY_EXHDR(DatumGetPointer(entry.value))));
}

// cache_expire(key text, ttl integer) RETURNS boolean: Redis EXPIRE.
FPC_CACHE_FUNCTION(cache_expire) {
  text *key = WriteKeyArg(fcinfo);
  RequireArg(fcinfo, 1, "ttl");
  int32 ttl = PG_GETARG_INT32(1);
  TimestampTz at = ExpiryAfter(GetCurrentTimestamp(), ttl, USECS_PER_SEC, "ttl");
  return BoolGetDatum(ExpireAt(FunctionSchema(fcinfo), "cache_expire()", key, at));
}

// cache_pexpire(key text, ttl_ms bigint) RETURNS boolean: Redis PEXPIRE.
FPC_CACHE_FUNCTION(cache_pexpire) {
  text *key = WriteKeyArg(fcinfo);
  RequireArg(fcinfo, 1, "ttl_ms");
  int64 ttl_ms = PG_GETARG_INT64(1);
  TimestampTz at = ExpiryAfter(GetCurrentTimestamp(), ttl_ms, 1000, "ttl_ms");
  return BoolGetDatum(ExpireAt(FunctionSchema(fcinfo), "cache_pexpire()", key, at));
}

// cache_expireat(key text, at timestamptz) RETURNS boolean: Redis EXPIREAT.
FPC_CACHE_FUNCTION(cache_expireat) {
  text *key = WriteKeyArg(fcinfo);
  RequireArg(fcinfo, 1, "at");
  TimestampTz at = PG_GETARG_TIMESTAMPTZ(1);
  if (TIMESTAMP_NOT_FINITE(at)) throw CacheError(sqlstate::kDatetimeFieldOverflow, "at must be a finite timestamp");
  return BoolGetDatum(ExpireAt(FunctionSchema(fcinfo), "cache_expireat()", key, at));
}

// cache_persist(key text) RETURNS boolean: Redis PERSIST.
FPC_CACHE_FUNCTION(cache_persist) {
  text *key = WriteKeyArg(fcinfo);
  bool removed = false;
  auto decide = [&](const Current &cur) {
    removed = cur.live && cur.expires;
    return removed ? Change::SetExpiry(false, 0) : Change();
  };
  Mutate(FunctionSchema(fcinfo), "cache_persist()", key, false, decide);
  return BoolGetDatum(removed);
}

// cache_pttl(key text) RETURNS bigint; STRICT: milliseconds left, rounded
// up; -1 no expiry; -2 absent.
FPC_CACHE_FUNCTION(cache_pttl) {
  Entry entry = Find(FunctionSchema(fcinfo), ArgText(fcinfo, 0), false);
  if (!entry.found) return Int64GetDatum(-2);
  if (!entry.expires) return Int64GetDatum(-1);
  int64 left = (entry.expires_at - GetCurrentTimestamp() + 999) / 1000;
  return Int64GetDatum(left < 1 ? 1 : left);  // it was live when read
}

// cache_getdel(key text) RETURNS text: Redis GETDEL.
FPC_CACHE_FUNCTION(cache_getdel) {
  text *key = WriteKeyArg(fcinfo);
  bool had = false;
  Datum value = 0;
  auto decide = [&](const Current &cur) {
    CheckLiveText(cur);  // not deleted if it cannot be returned
    had = cur.live;
    value = cur.value;
    return cur.live ? Change::Delete() : Change();
  };
  Mutate(FunctionSchema(fcinfo), "cache_getdel()", key, true, decide);
  StatsAdd(had ? kStatHits : kStatMisses);
  if (!had) PG_RETURN_NULL();
  StatsAdd(kStatDeletes);
  return value;
}

// cache_getex(key text, ttl integer DEFAULT NULL, persist boolean DEFAULT
// false) RETURNS text: Redis GETEX. Without ttl or persist it only reads.
FPC_CACHE_FUNCTION(cache_getex) {
  text *key = WriteKeyArg(fcinfo);
  bool persist = FlagArg(fcinfo, 2, "persist");
  bool has_ttl = PG_NARGS() > 1 && !PG_ARGISNULL(1);
  if (has_ttl && persist) throw CacheError(sqlstate::kInvalidParameterValue, "ttl and persist cannot be used together");
  TimestampTz expires_at = 0;
  ExpiryFromTtl(fcinfo, 1, GetCurrentTimestamp(), &expires_at);
  if (!has_ttl && !persist) {
    Entry entry = FindValue(FunctionSchema(fcinfo), key);
    if (!entry.found) PG_RETURN_NULL();
    CheckText(entry);
    return entry.value;
  }
  bool had = false;
  Datum value = 0;
  auto decide = [&](const Current &cur) {
    CheckLiveText(cur);
    had = cur.live;
    value = cur.value;
    if (!cur.live) return Change();
    if (persist) return cur.expires ? Change::SetExpiry(false, 0) : Change();
    return Change::SetExpiry(true, expires_at);
  };
  Mutate(FunctionSchema(fcinfo), "cache_getex()", key, true, decide);
  StatsAdd(had ? kStatHits : kStatMisses);
  if (!had) PG_RETURN_NULL();
  return value;
}

// cache_delete(keys text[]) RETURNS integer: Redis DEL k1 k2 ...
FPC_CACHE_FUNCTION(cache_delete_many) {
  if (PG_ARGISNULL(0)) throw CacheError(sqlstate::kNullValueNotAllowed, "cache keys must not be null");
  std::vector<text *> keys = TextArrayElements(Guarded([&] { return PG_GETARG_ARRAYTYPE_P(0); }), "keys");
  for (text *key : keys)
    if (key == nullptr) throw CacheError(sqlstate::kNullValueNotAllowed, "cache key must not be null");
  CheckWritable("cache_delete()");
  if (keys.empty()) return Int32GetDatum(0);
  return Int32GetDatum(static_cast<int32>(DeleteMany(FunctionSchema(fcinfo), keys)));
}

// cache_exists(keys text[]) RETURNS integer; STRICT: Redis EXISTS k1 k2 ...
FPC_CACHE_FUNCTION(cache_exists_many) {
  std::vector<text *> keys = TextArrayElements(Guarded([&] { return PG_GETARG_ARRAYTYPE_P(0); }), "keys");
  for (text *key : keys)
    if (key == nullptr) throw CacheError(sqlstate::kNullValueNotAllowed, "cache key must not be null");
  if (keys.empty()) return Int32GetDatum(0);
  return Int32GetDatum(static_cast<int32>(CountLive(FunctionSchema(fcinfo), keys)));
}

// cache_type(key text) RETURNS text; STRICT: Redis TYPE, by how the value
// was stored.
FPC_CACHE_FUNCTION(cache_type) {
  Entry entry = Find(FunctionSchema(fcinfo), ArgText(fcinfo, 0), false);
  if (!entry.found) PG_RETURN_NULL();
  const char *name = entry.kind == kKindJson ? "json" : entry.kind == kKindBytes ? "bytes" : "text";
  return Guarded([&] { return PointerGetDatum(cstring_to_text(name)); });
}

// cache_keys(pattern text DEFAULT '*') RETURNS SETOF text; STRICT: Redis
// KEYS.
FPC_CACHE_FUNCTION(cache_keys) {
  text *pattern = ArgText(fcinfo, 0);
  Guarded([&] { InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC | MAT_SRF_BLESS); });
  auto *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
  auto emit = [&](text *key) {
    Datum row[1] = {PointerGetDatum(key)};
    bool nulls[1] = {false};
    Guarded([&] { tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, row, nulls); });
  };
  ForEachKey(FunctionSchema(fcinfo), pattern, emit);
  return (Datum)0;
}

// cache_scan(cursor bigint DEFAULT 0, pattern text DEFAULT '*', count
// integer DEFAULT 100) RETURNS TABLE(next_cursor bigint, keys text[]), one
// row; STRICT: Redis SCAN.
FPC_CACHE_FUNCTION(cache_scan) {
  int64 cursor = PG_GETARG_INT64(0);
  text *pattern = ArgText(fcinfo, 1);
  int32 count = PG_GETARG_INT32(2);
  if (cursor < 0) throw CacheError(sqlstate::kInvalidParameterValue, "invalid cursor " + std::to_string(cursor));
  if (count < 1)
    throw CacheError(sqlstate::kInvalidParameterValue, "count must be at least 1, not " + std::to_string(count));
  std::vector<Datum> found;
  auto emit = [&](text *key) { found.push_back(PointerGetDatum(key)); };
  int64 next = ScanStep(FunctionSchema(fcinfo), cursor, pattern, count, emit);
  Guarded([&] {
    InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
    auto *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    Datum values[2];
    bool nulls[2] = {false, false};
    values[0] = Int64GetDatum(next);
    values[1] = PointerGetDatum(
        construct_array(found.data(), static_cast<int>(found.size()), TEXTOID, -1, false, TYPALIGN_INT));
    tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
  });
  return (Datum)0;
}

// cache_flush() RETURNS bigint: Redis FLUSHDB, transactional.
FPC_CACHE_FUNCTION(cache_flush) { return Int64GetDatum(Flush(FunctionSchema(fcinfo))); }

// cache_dbsize() RETURNS bigint: Redis DBSIZE, exact.
FPC_CACHE_FUNCTION(cache_dbsize) { return Int64GetDatum(DbSize(FunctionSchema(fcinfo))); }

// cache_msetnx(keys text[], values text[], ttl integer DEFAULT NULL)
// RETURNS boolean: Redis MSETNX.
FPC_CACHE_FUNCTION(cache_msetnx) {
  std::vector<text *> keys, values;
  TimestampTz expires_at = 0;
  bool expires = MultiSetArgs(fcinfo, &keys, &values, &expires_at);
  CheckWritable("cache_msetnx()");
  if (keys.empty()) return BoolGetDatum(true);
  return BoolGetDatum(MultiSetNx(FunctionSchema(fcinfo), keys, values, expires, expires_at));
}

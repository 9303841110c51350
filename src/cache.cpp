// The cache API: cache_set, cache_get, cache_delete, cache_exists, cache_ttl,
// cache_cleanup and their JSON and bytea variants.
//
// Every function runs its SQL through SPI with a plan prepared once per
// backend (SPI_prepare_cursor + SPI_keepplan) and reused. Plans name every
// object with its schema and every operator as OPERATOR(pg_catalog.x), so the
// caller's search_path cannot redirect them. They are dropped and prepared
// again when the cache table's relcache entry is invalidated (DROP EXTENSION,
// ALTER EXTENSION ... SET SCHEMA, ...), or when called from another schema.
//
// The table's primary key is key_hash: the first 16 bytes of the SHA-256 of
// the key, so keys of any length fit in the btree. Lookups compare the full
// key as well, so a collision can never return another key's value.

#include "fastpgcache/pg_bridge.hpp"

extern "C" {
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"
}

#include <climits>
#include <cstring>
#include <string>
#include <vector>

#include "fastpgcache/error.hpp"
#include "fastpgcache/sha256.hpp"
#include "fastpgcache/stats.hpp"

namespace fastpgcache {
namespace {

// How a value was stored: kept in the "kind" column.
constexpr char kKindText = 't';
constexpr char kKindJson = 'j';
constexpr char kKindBytes = 'b';

enum PlanId { kGetValue, kGetExpiry, kUpsert, kDelete, kCleanup, kPlanCount };

struct PlanSpec {
  const char *sql;  // %s is replaced by the quoted schema name
  int nargs;
  Oid argtypes[5];
};

// $1 key_hash, $2 key, $3 now (for reads); the table and operators are
// qualified so that no search_path can redirect them.
const PlanSpec kPlanSpecs[kPlanCount] = {
    {"SELECT value, kind FROM %s.cache_entries"
     " WHERE key_hash OPERATOR(pg_catalog.=) $1 AND key OPERATOR(pg_catalog.=) $2"
     " AND (expires_at IS NULL OR expires_at OPERATOR(pg_catalog.>) $3)",
     3,
     {UUIDOID, TEXTOID, TIMESTAMPTZOID}},
    {"SELECT expires_at FROM %s.cache_entries"
     " WHERE key_hash OPERATOR(pg_catalog.=) $1 AND key OPERATOR(pg_catalog.=) $2"
     " AND (expires_at IS NULL OR expires_at OPERATOR(pg_catalog.>) $3)",
     3,
     {UUIDOID, TEXTOID, TIMESTAMPTZOID}},
    {"INSERT INTO %s.cache_entries AS e (key_hash, key, value, kind, expires_at)"
     " VALUES ($1, $2, $3, $4, $5)"
     " ON CONFLICT (key_hash) DO UPDATE SET key = EXCLUDED.key, value = EXCLUDED.value,"
     " kind = EXCLUDED.kind, expires_at = EXCLUDED.expires_at",
     5,
     {UUIDOID, TEXTOID, BYTEAOID, CHAROID, TIMESTAMPTZOID}},
    {"DELETE FROM %s.cache_entries"
     " WHERE key_hash OPERATOR(pg_catalog.=) $1 AND key OPERATOR(pg_catalog.=) $2"
     " RETURNING expires_at IS NULL OR expires_at OPERATOR(pg_catalog.>) $3",
     3,
     {UUIDOID, TEXTOID, TIMESTAMPTZOID}},
    {"DELETE FROM %s.cache_entries WHERE expires_at OPERATOR(pg_catalog.<=) $1", 1, {TIMESTAMPTZOID}},
};

// Per-backend plan cache. Plain data only: it is constant-initialised, so
// loading the library runs no constructor.
struct PlanCache {
  bool valid;
  bool callback_registered;
  Oid schema;
  Oid relid;
  SPIPlanPtr plans[kPlanCount];
};
PlanCache g_plans = {};

void InvalidatePlans(Datum, Oid relid) {
  if (relid == InvalidOid || relid == g_plans.relid) g_plans.valid = false;
}

// Makes sure the kept plans exist for the schema `schema`. Must run inside an
// SPI connection. All of it is PostgreSQL calls, so it runs as one guarded
// step that holds no C++ objects.
void EnsurePlans(Oid schema) {
  if (g_plans.valid && g_plans.schema == schema) return;
  Guarded([&] {
    if (!g_plans.callback_registered) {
      CacheRegisterRelcacheCallback(InvalidatePlans, (Datum)0);
      g_plans.callback_registered = true;
    }
    g_plans.valid = false;
    for (SPIPlanPtr &plan : g_plans.plans) {
      if (plan != nullptr) SPI_freeplan(plan);
      plan = nullptr;
    }
    char *nspname = get_namespace_name(schema);
    if (nspname == nullptr)
      ereport(ERROR, (errcode(ERRCODE_UNDEFINED_SCHEMA), errmsg("schema of fastpgcache does not exist")));
    const char *qualified = quote_identifier(nspname);
    for (int i = 0; i < kPlanCount; i++) {
      const PlanSpec &spec = kPlanSpecs[i];
      char *sql = psprintf(spec.sql, qualified);
      SPIPlanPtr plan =
          SPI_prepare_cursor(sql, spec.nargs, const_cast<Oid *>(spec.argtypes), CURSOR_OPT_GENERIC_PLAN);
      if (plan == nullptr)
        elog(ERROR, "fastpgcache: SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
      if (SPI_keepplan(plan) != 0) elog(ERROR, "fastpgcache: SPI_keepplan failed");
      g_plans.plans[i] = plan;
    }
    g_plans.schema = schema;
    g_plans.relid = get_relname_relid("cache_entries", schema);
    g_plans.valid = true;
  });
}

// An SPI connection for one call. Finish() on success; on an exception the
// connection is left to the transaction (or subtransaction) abort that the
// shim's ereport() starts, which is how PostgreSQL cleans up after errors.
class SpiCall {
 public:
  explicit SpiCall(FunctionCallInfo fcinfo) : outer_(CurrentMemoryContext) {
    Oid schema = Guarded([&] {
      Oid nsp = get_func_namespace(fcinfo->flinfo->fn_oid);
      if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "fastpgcache: SPI_connect failed");
      return nsp;
    });
    EnsurePlans(schema);
  }
  SpiCall(const SpiCall &) = delete;
  SpiCall &operator=(const SpiCall &) = delete;

  // Runs a kept plan; returns the number of rows processed or returned.
  uint64 Execute(PlanId id, Datum *values, const char *nulls, long max_rows) {
    int rc = Guarded([&] { return SPI_execute_plan(g_plans.plans[id], values, nulls, false, max_rows); });
    if (rc < 0) throw CacheError(sqlstate::kInternalError, std::string("fastpgcache: SPI_execute_plan failed: ") +
                                                                Guarded([&] { return SPI_result_code_string(rc); }));
    return SPI_processed;
  }

  // Column `col` (1-based) of result row `row`.
  Datum Column(uint64 row, int col, bool *isnull) {
    return Guarded([&] { return SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col, isnull); });
  }

  // A detoasted copy of a varlena datum, made in the caller's memory context
  // so that it outlives the SPI connection.
  Datum CopyOut(Datum value) {
    return Guarded([&] {
      MemoryContext old = MemoryContextSwitchTo(outer_);
      Datum copy = PointerGetDatum(PG_DETOAST_DATUM_COPY(value));
      MemoryContextSwitchTo(old);
      return copy;
    });
  }

  void Finish() {
    Guarded([] {
      if (SPI_finish() != SPI_OK_FINISH) elog(ERROR, "fastpgcache: SPI_finish failed");
    });
  }

 private:
  MemoryContext outer_;
};

// The key's index entry: the first 16 bytes of its SHA-256.
pg_uuid_t KeyHash(const text *key) {
  Sha256Digest digest = Sha256(VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key));
  pg_uuid_t hash;
  std::memcpy(hash.data, digest.data(), UUID_LEN);
  return hash;
}

text *ArgText(FunctionCallInfo fcinfo, int n) {
  return Guarded([&] { return PG_GETARG_TEXT_PP(n); });
}

// The key argument of a write: NULL is an error, not a silent no-op.
text *WriteKeyArg(FunctionCallInfo fcinfo) {
  if (PG_ARGISNULL(0))
    throw CacheError(sqlstate::kNullValueNotAllowed, "cache key must not be null");
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

// Upserts one entry; value is a varlena of the given kind.
void Store(FunctionCallInfo fcinfo, const text *key, Datum value, char kind, bool expires, TimestampTz expires_at) {
  pg_uuid_t hash = KeyHash(key);
  Datum values[5] = {UUIDPGetDatum(&hash), PointerGetDatum(key), value, CharGetDatum(kind),
                     TimestampTzGetDatum(expires_at)};
  const char nulls[5] = {' ', ' ', ' ', ' ', expires ? ' ' : 'n'};
  SpiCall spi(fcinfo);
  spi.Execute(kUpsert, values, nulls, 0);
  spi.Finish();
  StatsAdd(kStatSets);
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

// A live entry's value (a detoasted copy in the caller's context) and kind.
struct Found {
  bool found = false;
  Datum value = 0;
  char kind = kKindText;
};

Found Lookup(FunctionCallInfo fcinfo, const text *key) {
  pg_uuid_t hash = KeyHash(key);
  Datum values[3] = {UUIDPGetDatum(&hash), PointerGetDatum(key), TimestampTzGetDatum(GetCurrentTimestamp())};
  Found result;
  SpiCall spi(fcinfo);
  if (spi.Execute(kGetValue, values, nullptr, 1) > 0) {
    bool isnull;
    Datum value = spi.Column(0, 1, &isnull);
    result.kind = DatumGetChar(spi.Column(0, 2, &isnull));
    result.value = spi.CopyOut(value);
    result.found = true;
  }
  spi.Finish();
  StatsAdd(result.found ? kStatHits : kStatMisses);  // cache_get* only
  return result;
}

// Makes sure a value can be returned as text in the database encoding.
void CheckText(const Found &entry) {
  if (entry.kind != kKindBytes) return;
  const text *value = reinterpret_cast<const text *>(DatumGetPointer(entry.value));
  bool valid = Guarded([&] { return pg_verifymbstr(VARDATA_ANY(value), VARSIZE_ANY_EXHDR(value), true); });
  if (!valid)
    throw CacheError(sqlstate::kCharacterNotInRepertoire,
                     std::string("cached value is not valid text in encoding ") +
                         Guarded([] { return GetDatabaseEncodingName(); }),
                     "The value was stored as bytea.", "Use cache_get_bytes() to read it.");
}

// The expiry of a live entry: -2 missing or expired, -1 no expiry, else the
// expiry time in *expires_at.
enum class Liveness { kMissing, kPermanent, kExpiring };

Liveness Expiry(FunctionCallInfo fcinfo, const text *key, TimestampTz now, TimestampTz *expires_at) {
  pg_uuid_t hash = KeyHash(key);
  Datum values[3] = {UUIDPGetDatum(&hash), PointerGetDatum(key), TimestampTzGetDatum(now)};
  Liveness result = Liveness::kMissing;
  SpiCall spi(fcinfo);
  if (spi.Execute(kGetExpiry, values, nullptr, 1) > 0) {
    bool isnull;
    Datum value = spi.Column(0, 1, &isnull);
    result = isnull ? Liveness::kPermanent : Liveness::kExpiring;
    if (!isnull) *expires_at = DatumGetTimestampTz(value);
  }
  spi.Finish();
  return result;
}

}  // namespace
}  // namespace fastpgcache

using namespace fastpgcache;

// cache_set(key text, value text, ttl integer DEFAULT NULL) RETURNS boolean
FPC_SQL_FUNCTION(cache_set_text) { return SetImpl(fcinfo, kKindText); }

// cache_set(key text, value jsonb, ttl integer DEFAULT NULL) RETURNS boolean
FPC_SQL_FUNCTION(cache_set_jsonb) { return SetImpl(fcinfo, kKindJson); }

// cache_set(key text, value bytea, ttl integer DEFAULT NULL) RETURNS boolean
FPC_SQL_FUNCTION(cache_set_bytea) { return SetImpl(fcinfo, kKindBytes); }

// cache_get(key text) RETURNS text; STRICT
FPC_SQL_FUNCTION(cache_get) {
  Found entry = Lookup(fcinfo, ArgText(fcinfo, 0));
  if (!entry.found) PG_RETURN_NULL();
  CheckText(entry);
  return entry.value;  // bytea and text share one representation
}

// cache_get_bytes(key text) RETURNS bytea; STRICT
FPC_SQL_FUNCTION(cache_get_bytes) {
  Found entry = Lookup(fcinfo, ArgText(fcinfo, 0));
  if (!entry.found) PG_RETURN_NULL();
  return entry.value;
}

// cache_get_json(key text) RETURNS jsonb; STRICT
FPC_SQL_FUNCTION(cache_get_json) {
  Found entry = Lookup(fcinfo, ArgText(fcinfo, 0));
  if (!entry.found) PG_RETURN_NULL();
  CheckText(entry);
  return Guarded([&] {
    char *json = text_to_cstring(reinterpret_cast<text *>(DatumGetPointer(entry.value)));
    return DirectFunctionCall1(jsonb_in, CStringGetDatum(json));
  });
}

// cache_exists(key text) RETURNS boolean; STRICT
FPC_SQL_FUNCTION(cache_exists) {
  TimestampTz expires_at;
  Liveness live = Expiry(fcinfo, ArgText(fcinfo, 0), GetCurrentTimestamp(), &expires_at);
  return BoolGetDatum(live != Liveness::kMissing);
}

// cache_ttl(key text) RETURNS integer; STRICT. Seconds left, rounded up so
// that a live entry never reports 0; -1 no expiry; -2 missing or expired.
FPC_SQL_FUNCTION(cache_ttl) {
  TimestampTz now = GetCurrentTimestamp();
  TimestampTz expires_at = 0;
  switch (Expiry(fcinfo, ArgText(fcinfo, 0), now, &expires_at)) {
    case Liveness::kMissing:
      return Int32GetDatum(-2);
    case Liveness::kPermanent:
      return Int32GetDatum(-1);
    case Liveness::kExpiring:
      break;
  }
  int64 left = (expires_at - now + USECS_PER_SEC - 1) / USECS_PER_SEC;
  return Int32GetDatum(left > INT_MAX ? INT_MAX : static_cast<int32>(left));
}

// cache_delete(key text) RETURNS boolean: true if a live entry was deleted.
// An expired entry is removed too, but reported as not deleted.
FPC_SQL_FUNCTION(cache_delete) {
  text *key = WriteKeyArg(fcinfo);
  pg_uuid_t hash = KeyHash(key);
  Datum values[3] = {UUIDPGetDatum(&hash), PointerGetDatum(key), TimestampTzGetDatum(GetCurrentTimestamp())};
  bool live = false;
  SpiCall spi(fcinfo);
  if (spi.Execute(kDelete, values, nullptr, 0) > 0) {
    bool isnull;
    live = DatumGetBool(spi.Column(0, 1, &isnull));
  }
  spi.Finish();
  if (live) StatsAdd(kStatDeletes);
  return BoolGetDatum(live);
}

// cache_cleanup() RETURNS integer: deletes every expired entry.
FPC_SQL_FUNCTION(cache_cleanup) {
  Datum values[1] = {TimestampTzGetDatum(GetCurrentTimestamp())};
  SpiCall spi(fcinfo);
  uint64 deleted = spi.Execute(kCleanup, values, nullptr, 0);
  spi.Finish();
  StatsAdd(kStatRemovedByCleanup, deleted);
  return Int32GetDatum(deleted > static_cast<uint64>(INT_MAX) ? INT_MAX : static_cast<int32>(deleted));
}

// fastpgcache_selftest(mode text) RETURNS bigint: exercises the C++ /
// PostgreSQL boundary for the regression tests. Each failing mode raises its
// error while a C++ object with a destructor is alive; 'destructors' returns
// how many of those objects this backend has destroyed, which shows that no
// error skipped one.
namespace {
long g_sentinels_destroyed = 0;

struct Sentinel {
  std::string payload = std::string(64, 'x');  // a real heap allocation to free
  ~Sentinel() { g_sentinels_destroyed++; }
};
}  // namespace

FPC_SQL_FUNCTION(fastpgcache_selftest) {
  std::string mode = Guarded([&] { return text_to_cstring(PG_GETARG_TEXT_PP(0)); });
  if (mode == "destructors") return Int64GetDatum(g_sentinels_destroyed);
  Sentinel alive;
  if (mode == "bad_alloc") {
    // A real allocation that cannot succeed (a petabyte).
    std::vector<char> huge(static_cast<std::size_t>(1) << 50);
    return Int64GetDatum(static_cast<int64>(huge.size()));
  }
  if (mode == "cpp_exception") throw std::runtime_error("selftest C++ exception");
  if (mode == "cache_error") throw CacheError(sqlstate::kInvalidParameterValue, "selftest cache error", "a detail", "a hint");
  if (mode == "pg_error") {
    // A PostgreSQL error raised deep inside a guarded call.
    Guarded([] { return DirectFunctionCall1(int4in, CStringGetDatum("not a number")); });
  }
  throw CacheError(sqlstate::kInvalidParameterValue, "unknown selftest mode \"" + mode + "\"");
}

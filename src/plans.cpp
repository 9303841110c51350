// The kept SPI plans: the SQL path of every cache function.
//
// Plans are prepared once per backend (SPI_prepare_cursor with
// CURSOR_OPT_GENERIC_PLAN, then SPI_keepplan) and reused. They name every
// object with its schema and every operator and type as pg_catalog.x, so the
// caller's search_path cannot redirect them.
//
// A kept plan is a CachedPlanSource: PostgreSQL itself re-parses it from its
// text when anything it depends on changes (ALTER TABLE, DROP and CREATE
// EXTENSION, ANALYZE, ...), so those need nothing from us. What PostgreSQL
// cannot know is that the text names the schema: after ALTER SCHEMA ...
// RENAME the text would find another schema's table, or none. So the plans
// are prepared again when the schema's catalog row changes or the functions
// are called from another schema. Plans are never freed while a statement of
// this backend may be running one: a cache function nested in another (a
// trigger or a row level security policy on cache_entries that calls the
// cache, which is exactly when the SQL path runs) can make the plans be
// prepared again while the outer call executes one of them. Replaced plans
// are retired, and freed once no plan is executing.
//
// Separately, the direct paths need the table's and its index's oids and
// whether the index is the plain key_hash btree; that is looked up again
// after any invalidation of either relation (g_table).

#include "cache.hpp"

extern "C" {
#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
}

namespace fastpgcache {

PlanCache g_plans = {};
CacheTable g_table = {};

namespace {

bool g_callbacks_registered = false;

struct PlanSpec {
  PlanId id;        // checked against the position at start-up of a call
  const char *sql;  // %s (at most twice) is replaced by the quoted schema name
  int nargs;
  Oid argtypes[5];
};

// What max_size counts of a row, less the fixed overhead per entry
// (eviction.hpp): its key and value in bytes. Of the table's row, of the
// row "o" a subquery reads, of the row "e" an upsert wrote.
#define ROW_SIZE "pg_catalog.octet_length(key)::pg_catalog.int8 OPERATOR(pg_catalog.+) pg_catalog.octet_length(value)"
#define OLD_SIZE \
  "pg_catalog.octet_length(o.key)::pg_catalog.int8 OPERATOR(pg_catalog.+) pg_catalog.octet_length(o.value)"
#define NEW_SIZE \
  "pg_catalog.octet_length(e.key)::pg_catalog.int8 OPERATOR(pg_catalog.+) pg_catalog.octet_length(e.value)"

// The table, every operator, function and type are qualified, so that no
// search_path can redirect them. ORDER BY names its operator too.
const PlanSpec kPlanSpecs[kPlanCount] = {
    // $1 key_hash, $2 key, $3 now.
    {kGetValue,
     "SELECT value, kind, expires_at FROM %s.cache_entries"
     " WHERE key_hash OPERATOR(pg_catalog.=) $1 AND key OPERATOR(pg_catalog.=) $2"
     " AND (expires_at IS NULL OR expires_at OPERATOR(pg_catalog.>) $3)",
     3,
     {UUIDOID, TEXTOID, TIMESTAMPTZOID}},
    {kGetExpiry,
     "SELECT NULL::pg_catalog.bytea, kind, expires_at FROM %s.cache_entries"
     " WHERE key_hash OPERATOR(pg_catalog.=) $1 AND key OPERATOR(pg_catalog.=) $2"
     " AND (expires_at IS NULL OR expires_at OPERATOR(pg_catalog.>) $3)",
     3,
     {UUIDOID, TEXTOID, TIMESTAMPTZOID}},
    // A set first tries to overwrite: the common case of a cache, a HOT update.
    // Returns the size of the row it replaced, as this statement's snapshot
    // sees it (NULL if it sees none): for the size accounting (eviction/).
    {kUpdate,
     "UPDATE %s.cache_entries SET key = $2, value = $3, kind = $4, expires_at = $5"
     " WHERE key_hash OPERATOR(pg_catalog.=) $1"
     " RETURNING (SELECT " OLD_SIZE " FROM %s.cache_entries o WHERE o.key_hash OPERATOR(pg_catalog.=) $1)",
     5,
     {UUIDOID, TEXTOID, BYTEAOID, CHAROID, TIMESTAMPTZOID}},
    // No row: insert, or update the row that a concurrent set inserted.
    {kUpsert,
     "INSERT INTO %s.cache_entries AS e (key_hash, key, value, kind, expires_at)"
     " VALUES ($1, $2, $3, $4, $5)"
     " ON CONFLICT (key_hash) DO UPDATE SET key = EXCLUDED.key, value = EXCLUDED.value,"
     " kind = EXCLUDED.kind, expires_at = EXCLUDED.expires_at"
     " RETURNING e.xmax OPERATOR(pg_catalog.=) 0,"
     " (SELECT " OLD_SIZE " FROM %s.cache_entries o WHERE o.key_hash OPERATOR(pg_catalog.=) $1)",
     5,
     {UUIDOID, TEXTOID, BYTEAOID, CHAROID, TIMESTAMPTZOID}},
    // cache_mset: many entries in one statement (distinct key hashes).
    {kMultiUpsert,
     "INSERT INTO %s.cache_entries AS e (key_hash, key, value, kind, expires_at)"
     " SELECT h, k, v, $5, $4"
     " FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3)) AS u(h, k, v)"
     " ON CONFLICT (key_hash) DO UPDATE SET key = EXCLUDED.key, value = EXCLUDED.value,"
     " kind = EXCLUDED.kind, expires_at = EXCLUDED.expires_at"
     " RETURNING e.xmax OPERATOR(pg_catalog.=) 0, " NEW_SIZE ","
     " (SELECT " OLD_SIZE " FROM %s.cache_entries o WHERE o.key_hash OPERATOR(pg_catalog.=) e.key_hash)",
     5,
     {UUIDARRAYOID, TEXTARRAYOID, BYTEAARRAYOID, TIMESTAMPTZOID, CHAROID}},
    {kDelete,
     "DELETE FROM %s.cache_entries"
     " WHERE key_hash OPERATOR(pg_catalog.=) $1 AND key OPERATOR(pg_catalog.=) $2"
     " RETURNING expires_at IS NULL OR expires_at OPERATOR(pg_catalog.>) $3, " ROW_SIZE,
     3,
     {UUIDOID, TEXTOID, TIMESTAMPTZOID}},
    {kCleanup,
     "WITH d AS (DELETE FROM %s.cache_entries WHERE expires_at OPERATOR(pg_catalog.<=) $1 RETURNING " ROW_SIZE " AS s)"
     " SELECT pg_catalog.count(*), pg_catalog.sum(d.s)::pg_catalog.int8 FROM d",
     1,
     {TIMESTAMPTZOID}},
    // Read-modify-write (mutate.cpp): lock the slot, then change it.
    {kLockRow,
     "SELECT key, value, kind, expires_at, " ROW_SIZE " FROM %s.cache_entries"
     " WHERE key_hash OPERATOR(pg_catalog.=) $1 FOR UPDATE",
     1,
     {UUIDOID}},
    {kLockRowMeta,
     "SELECT key, NULL::pg_catalog.bytea, kind, expires_at, " ROW_SIZE " FROM %s.cache_entries"
     " WHERE key_hash OPERATOR(pg_catalog.=) $1 FOR UPDATE",
     1,
     {UUIDOID}},
    {kUpdateExpiry,
     "UPDATE %s.cache_entries SET expires_at = $2 WHERE key_hash OPERATOR(pg_catalog.=) $1",
     2,
     {UUIDOID, TIMESTAMPTZOID}},
    {kInsertNew,
     "INSERT INTO %s.cache_entries (key_hash, key, value, kind, expires_at) VALUES ($1, $2, $3, $4, $5)"
     " ON CONFLICT (key_hash) DO NOTHING",
     5,
     {UUIDOID, TEXTOID, BYTEAOID, CHAROID, TIMESTAMPTZOID}},
    {kDeleteSlot,
     "DELETE FROM %s.cache_entries WHERE key_hash OPERATOR(pg_catalog.=) $1 RETURNING " ROW_SIZE,
     1,
     {UUIDOID}},
    {kLockRows,
     "SELECT key_hash, key, expires_at FROM %s.cache_entries WHERE key_hash OPERATOR(pg_catalog.=) ANY ($1)"
     " ORDER BY key_hash USING OPERATOR(pg_catalog.<) FOR UPDATE",
     1,
     {UUIDARRAYOID}},
    {kMultiInsertNew,
     "INSERT INTO %s.cache_entries (key_hash, key, value, kind, expires_at)"
     " SELECT h, k, v, $5, $4"
     " FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3)) AS u(h, k, v)"
     " ON CONFLICT (key_hash) DO NOTHING",
     5,
     {UUIDARRAYOID, TEXTARRAYOID, BYTEAARRAYOID, TIMESTAMPTZOID, CHAROID}},
    // The keyspace (keyspace.cpp).
    {kScan,
     "SELECT key_hash, key, expires_at FROM %s.cache_entries WHERE key_hash OPERATOR(pg_catalog.>=) $1"
     " ORDER BY key_hash USING OPERATOR(pg_catalog.<) LIMIT $2",
     2,
     {UUIDOID, INT8OID}},
    {kAllKeys, "SELECT key, expires_at FROM %s.cache_entries", 0, {}},
    {kFlush,
     "WITH d AS (DELETE FROM %s.cache_entries RETURNING expires_at, " ROW_SIZE " AS s)"
     " SELECT pg_catalog.count(*) FILTER (WHERE d.expires_at IS NULL OR d.expires_at OPERATOR(pg_catalog.>) $1),"
     " pg_catalog.count(*), pg_catalog.sum(d.s)::pg_catalog.int8 FROM d",
     1,
     {TIMESTAMPTZOID}},
    {kDbSize,
     "SELECT pg_catalog.count(*), pg_catalog.count(expires_at) FROM %s.cache_entries"
     " WHERE expires_at IS NULL OR expires_at OPERATOR(pg_catalog.>) $1",
     1,
     {TIMESTAMPTZOID}},
    // Eviction (eviction/evictor.cpp): the rows of a range of the heap, and
    // the delete of the victims that nobody holds. $1/$2 tid range; $1 tid[],
    // $2 now.
    {kEvictScan,
     "SELECT ctid, key_hash, expires_at, " ROW_SIZE " FROM %s.cache_entries"
     " WHERE ctid OPERATOR(pg_catalog.>=) $1 AND ctid OPERATOR(pg_catalog.<) $2",
     2,
     {TIDOID, TIDOID}},
    {kEvictDelete,
     "DELETE FROM %s.cache_entries WHERE ctid OPERATOR(pg_catalog.=) ANY (ARRAY("
     "SELECT ctid FROM %s.cache_entries WHERE ctid OPERATOR(pg_catalog.=) ANY ($1) FOR UPDATE SKIP LOCKED))"
     " RETURNING expires_at OPERATOR(pg_catalog.<=) $2, " ROW_SIZE,
     2,
     {TIDARRAYOID, TIMESTAMPTZOID}},
    // The worker's recount of entries and bytes.
    {kRecount,
     "SELECT pg_catalog.count(*), pg_catalog.sum(" ROW_SIZE ")::pg_catalog.int8 FROM %s.cache_entries",
     0,
     {}},
};

#undef ROW_SIZE
#undef OLD_SIZE
#undef NEW_SIZE

// Plans replaced while some plan was executing, freed when none is.
constexpr int kMaxRetired = 4 * kPlanCount;
SPIPlanPtr g_retired[kMaxRetired];
int g_retired_count = 0;

// Kept plans executing now in this backend (nested calls included).
int g_executing = 0;

// Invalidations of the table or its index seen so far: a lookup that saw one
// arrive while it ran (it takes locks, which read invalidations) is not kept.
uint64 g_table_invalidations = 0;

void InvalidateTable(Datum, Oid relid) {
  if (relid == InvalidOid || relid == g_table.relid || relid == g_table.index) {
    g_table.valid = false;
    g_table_invalidations++;
  }
}

// A change to the schema's row (a rename) makes the plans' text name the
// wrong schema: prepare them again.
void InvalidateSchema(Datum, int, uint32 hash) {
  if (hash == 0 || hash == g_plans.schema_hash) {
    g_plans.valid = false;
    g_table.valid = false;
  }
}

// Frees the retired plans if no plan is executing. PostgreSQL calls only.
void FreeRetiredPlans() {
  if (g_executing > 0) return;
  while (g_retired_count > 0) {
    SPIPlanPtr plan = g_retired[--g_retired_count];
    g_retired[g_retired_count] = nullptr;
    SPI_freeplan(plan);
  }
}

// Makes the plans ready for `schema`: the previous ones are retired, and
// each is prepared again when first used (PlanFor). PostgreSQL calls only.
void ResetPlans(Oid schema) {
  g_plans.valid = false;
  for (SPIPlanPtr &plan : g_plans.plans) {
    if (plan == nullptr) continue;
    if (g_executing == 0)
      SPI_freeplan(plan);
    else if (g_retired_count < kMaxRetired)
      g_retired[g_retired_count++] = plan;
    // else: more nested re-preparations than slots; the plan is left
    // allocated (a few kB until the backend exits) rather than freed while
    // it may be running.
    plan = nullptr;
  }
  char *nspname = get_namespace_name(schema);
  if (nspname == nullptr)
    ereport(ERROR, (errcode(ERRCODE_UNDEFINED_SCHEMA), errmsg("schema of fastpgcache does not exist")));
  strlcpy(g_plans.quoted_schema, quote_identifier(nspname), sizeof g_plans.quoted_schema);
  g_plans.schema = schema;
  g_plans.schema_hash = GetSysCacheHashValue1(NAMESPACEOID, ObjectIdGetDatum(schema));
  g_plans.valid = true;
}

// The kept plan `id`, prepared now if it is not yet. Needs an SPI
// connection. PostgreSQL calls only.
SPIPlanPtr PlanFor(PlanId id) {
  SPIPlanPtr plan = g_plans.plans[id];
  if (plan != nullptr) return plan;
  const PlanSpec &spec = kPlanSpecs[id];
  if (spec.id != id) elog(ERROR, "fastpgcache: plan table out of order at %d", static_cast<int>(id));
  const char *schema = g_plans.quoted_schema;
  char *sql = psprintf(spec.sql, schema, schema);  // a statement names the table once or twice
  plan = SPI_prepare_cursor(sql, spec.nargs, const_cast<Oid *>(spec.argtypes), CURSOR_OPT_GENERIC_PLAN);
  if (plan == nullptr) elog(ERROR, "fastpgcache: SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
  if (SPI_keepplan(plan) != 0) elog(ERROR, "fastpgcache: SPI_keepplan failed");
  g_plans.plans[id] = plan;
  return plan;
}

// Looks up the table and its key_hash index in `schema`. PostgreSQL calls
// only.
void LookUpTable(Oid schema) {
  g_table.valid = false;
  uint64 invalidations = g_table_invalidations;
  g_table.schema = schema;
  g_table.relid = get_relname_relid("cache_entries", schema);
  g_table.index = get_relname_relid("cache_entries_pkey", schema);
  if (!IndexAllowsDirectPaths(g_table.relid, g_table.index)) g_table.index = InvalidOid;
  for (int write = 0; write < 2; write++)
    g_table.bad_column[write] =
        SqlColumnMismatch(g_table.relid, write == 1, &g_table.bad_type[write], &g_table.good_type[write]);
  // The index found may have been replaced meanwhile: look again next time.
  g_table.valid = invalidations == g_table_invalidations;
}

}  // namespace

PlanUse::PlanUse() noexcept { g_executing++; }
PlanUse::~PlanUse() { g_executing--; }

void EnsurePlans(Oid schema) {
  if (g_plans.valid && g_plans.schema == schema && g_table.valid && g_table.schema == schema &&
      g_retired_count == 0)
    return;
  Guarded([&] {
    if (!g_callbacks_registered) {
      CacheRegisterRelcacheCallback(InvalidateTable, (Datum)0);
      CacheRegisterSyscacheCallback(NAMESPACEOID, InvalidateSchema, (Datum)0);
      g_callbacks_registered = true;
    }
    FreeRetiredPlans();
    if (!g_plans.valid || g_plans.schema != schema) ResetPlans(schema);
    if (!g_table.valid || g_table.schema != schema) LookUpTable(schema);
  });
}

void CheckSqlColumns(bool for_write) {
  int i = for_write ? 1 : 0;
  if (g_table.bad_column[i] == nullptr) return;
  std::string actual = Guarded([&] { return format_type_be(g_table.bad_type[i]); });
  std::string wanted = Guarded([&] { return format_type_be(g_table.good_type[i]); });
  throw CacheError(sqlstate::kDatatypeMismatch,
                   std::string("column ") + g_table.bad_column[i] + " of cache_entries has type " + actual +
                       ", not " + wanted,
                   "The table was altered by hand; fastpgcache cannot use it.",
                   "Restore the column's type, or drop and create the extension again.");
}

// Remembered in fn_extra for the next call through the same FmgrInfo.
Oid FunctionSchema(FunctionCallInfo fcinfo) {
  FmgrInfo *flinfo = fcinfo->flinfo;
  if (flinfo->fn_extra == nullptr) {
    Guarded([&] {
      Oid *schema = static_cast<Oid *>(MemoryContextAlloc(flinfo->fn_mcxt, sizeof(Oid)));
      *schema = get_func_namespace(flinfo->fn_oid);
      flinfo->fn_extra = schema;
    });
  }
  return *static_cast<Oid *>(flinfo->fn_extra);
}

SpiCall::SpiCall() : outer_(CurrentMemoryContext) {
  Guarded([] {
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "fastpgcache: SPI_connect failed");
  });
}

uint64 SpiCall::Execute(PlanId id, Datum *values, const char *nulls, long max_rows, Snapshot snapshot) {
  PlanUse use;  // the plan must not be freed by a nested call while it runs
  int rc = Guarded([&] {
    SPIPlanPtr plan = PlanFor(id);
    if (snapshot != nullptr)
      return SPI_execute_snapshot(plan, values, nulls, snapshot, InvalidSnapshot, false, true, max_rows);
    return SPI_execute_plan(plan, values, nulls, false, max_rows);
  });
  if (rc < 0)
    throw CacheError(sqlstate::kInternalError, std::string("fastpgcache: SPI_execute_plan failed: ") +
                                                   Guarded([&] { return SPI_result_code_string(rc); }));
  return SPI_processed;
}

Datum SpiCall::Column(uint64 row, int col, bool *isnull) {
  return Guarded([&] { return SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col, isnull); });
}

void SpiCall::CheckColumnType(int col, const char *name, Oid type, Oid also) {
  Oid actual = Guarded([&] { return SPI_gettypeid(SPI_tuptable->tupdesc, col); });
  if (actual == type || (OidIsValid(also) && actual == also)) return;
  std::string actual_name = Guarded([&] { return format_type_be(actual); });
  std::string wanted = Guarded([&] { return format_type_be(type); });
  throw CacheError(sqlstate::kDatatypeMismatch,
                   std::string("column ") + name + " of cache_entries has type " + actual_name + ", not " + wanted,
                   "The table was altered by hand; fastpgcache cannot read it.",
                   "Restore the column's type, or drop and create the extension again.");
}

Datum SpiCall::CopyOut(Datum value) {
  return Guarded([&] {
    MemoryContext old = MemoryContextSwitchTo(outer_);
    Datum copy = PointerGetDatum(PG_DETOAST_DATUM_COPY(value));
    MemoryContextSwitchTo(old);
    return copy;
  });
}

void SpiCall::OpenCursor(PlanId id, Datum *values, const char *nulls) {
  cursor_use_.emplace();
  portal_ = Guarded([&] { return SPI_cursor_open(nullptr, PlanFor(id), values, nulls, true); });
}

uint64 SpiCall::Fetch(long count) {
  Guarded([&] { SPI_cursor_fetch(portal_, true, count); });
  return SPI_processed;
}

void SpiCall::Finish() {
  Guarded([&] {
    if (portal_ != nullptr) SPI_cursor_close(portal_);
    portal_ = nullptr;
    if (SPI_finish() != SPI_OK_FINISH) elog(ERROR, "fastpgcache: SPI_finish failed");
  });
  cursor_use_.reset();
}

}  // namespace fastpgcache

// The kept SPI plans: the SQL path of every cache function.
//
// Plans are prepared once per backend (SPI_prepare_cursor with
// CURSOR_OPT_GENERIC_PLAN, then SPI_keepplan) and reused. They name every
// object with its schema and every operator as OPERATOR(pg_catalog.x), so the
// caller's search_path cannot redirect them. They are dropped and prepared
// again when the cache table's or its index's relcache entry is invalidated
// (DROP EXTENSION, ALTER TABLE, ...), when the schema's catalog row changes
// (ALTER SCHEMA ... RENAME: the plans' text names the schema), or when called
// from another schema.

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

namespace {

struct PlanSpec {
  const char *sql;  // %s is replaced by the quoted schema name
  int nargs;
  Oid argtypes[5];
};

// $1 key_hash, $2 key, $3 now (for reads); the table and operators are
// qualified so that no search_path can redirect them.
const PlanSpec kPlanSpecs[kPlanCount] = {
    {"SELECT value, kind, expires_at FROM %s.cache_entries"
     " WHERE key_hash OPERATOR(pg_catalog.=) $1 AND key OPERATOR(pg_catalog.=) $2"
     " AND (expires_at IS NULL OR expires_at OPERATOR(pg_catalog.>) $3)",
     3,
     {UUIDOID, TEXTOID, TIMESTAMPTZOID}},
    {"SELECT NULL::bytea, kind, expires_at FROM %s.cache_entries"
     " WHERE key_hash OPERATOR(pg_catalog.=) $1 AND key OPERATOR(pg_catalog.=) $2"
     " AND (expires_at IS NULL OR expires_at OPERATOR(pg_catalog.>) $3)",
     3,
     {UUIDOID, TEXTOID, TIMESTAMPTZOID}},
    // A set first tries to overwrite: the common case of a cache, a HOT update.
    {"UPDATE %s.cache_entries SET key = $2, value = $3, kind = $4, expires_at = $5"
     " WHERE key_hash OPERATOR(pg_catalog.=) $1",
     5,
     {UUIDOID, TEXTOID, BYTEAOID, CHAROID, TIMESTAMPTZOID}},
    // No row: insert, or update the row that a concurrent set inserted.
    {"INSERT INTO %s.cache_entries AS e (key_hash, key, value, kind, expires_at)"
     " VALUES ($1, $2, $3, $4, $5)"
     " ON CONFLICT (key_hash) DO UPDATE SET key = EXCLUDED.key, value = EXCLUDED.value,"
     " kind = EXCLUDED.kind, expires_at = EXCLUDED.expires_at",
     5,
     {UUIDOID, TEXTOID, BYTEAOID, CHAROID, TIMESTAMPTZOID}},
    // cache_mset: many entries in one statement (distinct key hashes).
    {"INSERT INTO %s.cache_entries AS e (key_hash, key, value, kind, expires_at)"
     " SELECT h, k, v, 't', $4"
     " FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3)) AS u(h, k, v)"
     " ON CONFLICT (key_hash) DO UPDATE SET key = EXCLUDED.key, value = EXCLUDED.value,"
     " kind = EXCLUDED.kind, expires_at = EXCLUDED.expires_at",
     4,
     {UUIDARRAYOID, TEXTARRAYOID, BYTEAARRAYOID, TIMESTAMPTZOID}},
    {"DELETE FROM %s.cache_entries"
     " WHERE key_hash OPERATOR(pg_catalog.=) $1 AND key OPERATOR(pg_catalog.=) $2"
     " RETURNING expires_at IS NULL OR expires_at OPERATOR(pg_catalog.>) $3",
     3,
     {UUIDOID, TEXTOID, TIMESTAMPTZOID}},
    {"DELETE FROM %s.cache_entries WHERE expires_at OPERATOR(pg_catalog.<=) $1", 1, {TIMESTAMPTZOID}},
};

void InvalidatePlans(Datum, Oid relid) {
  if (relid == InvalidOid || relid == g_plans.relid || relid == g_plans.index) g_plans.valid = false;
}

// A change to the schema's row (a rename) makes the plans' text name the
// wrong schema: prepare them again.
void InvalidatePlansOnSchema(Datum, int, uint32 hash) {
  if (hash == 0 || hash == g_plans.schema_hash) g_plans.valid = false;
}

}  // namespace

// Connects to SPI itself when it has to prepare the plans. All of it is
// PostgreSQL calls, so it runs as one guarded step that holds no C++ objects.
void EnsurePlans(Oid schema) {
  if (g_plans.valid && g_plans.schema == schema) return;
  Guarded([&] {
    if (!g_plans.callback_registered) {
      CacheRegisterRelcacheCallback(InvalidatePlans, (Datum)0);
      CacheRegisterSyscacheCallback(NAMESPACEOID, InvalidatePlansOnSchema, (Datum)0);
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
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "fastpgcache: SPI_connect failed");
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
    if (SPI_finish() != SPI_OK_FINISH) elog(ERROR, "fastpgcache: SPI_finish failed");
    g_plans.schema = schema;
    g_plans.schema_hash = GetSysCacheHashValue1(NAMESPACEOID, ObjectIdGetDatum(schema));
    g_plans.relid = get_relname_relid("cache_entries", schema);
    g_plans.index = get_relname_relid("cache_entries_pkey", schema);
    if (!ShapeAllowsIndexScan(g_plans.relid, g_plans.index)) g_plans.index = InvalidOid;
    g_plans.valid = true;
  });
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
  int rc = Guarded([&] {
    if (snapshot != nullptr)
      return SPI_execute_snapshot(g_plans.plans[id], values, nulls, snapshot, InvalidSnapshot, false, true,
                                  max_rows);
    return SPI_execute_plan(g_plans.plans[id], values, nulls, false, max_rows);
  });
  if (rc < 0)
    throw CacheError(sqlstate::kInternalError, std::string("fastpgcache: SPI_execute_plan failed: ") +
                                                   Guarded([&] { return SPI_result_code_string(rc); }));
  return SPI_processed;
}

Datum SpiCall::Column(uint64 row, int col, bool *isnull) {
  return Guarded([&] { return SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col, isnull); });
}

Datum SpiCall::CopyOut(Datum value) {
  return Guarded([&] {
    MemoryContext old = MemoryContextSwitchTo(outer_);
    Datum copy = PointerGetDatum(PG_DETOAST_DATUM_COPY(value));
    MemoryContextSwitchTo(old);
    return copy;
  });
}

void SpiCall::Finish() {
  Guarded([] {
    if (SPI_finish() != SPI_OK_FINISH) elog(ERROR, "fastpgcache: SPI_finish failed");
  });
}

}  // namespace fastpgcache

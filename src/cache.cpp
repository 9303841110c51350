// The cache API: cache_set, cache_get, cache_delete, cache_exists, cache_ttl,
// cache_cleanup, their JSON and bytea variants, and cache_mget / cache_mset.
//
// Writes run their SQL through SPI with plans prepared once per backend
// (SPI_prepare_cursor + SPI_keepplan) and reused. Plans name every object
// with its schema and every operator as OPERATOR(pg_catalog.x), so the
// caller's search_path cannot redirect them. They are dropped and prepared
// again when the cache table's or its index's relcache entry is invalidated
// (DROP EXTENSION, ALTER TABLE, ...), when the schema's catalog row changes
// (ALTER SCHEMA ... RENAME: the plans' text names the schema), or when called
// from another schema.
//
// Reads take a shorter road when they may: one probe of the primary key index
// (index_beginscan on key_hash with the uuid btree's own equality), with the
// same snapshot, visibility and privilege rules as the SQL, and no second
// executor. They fall back to the SPI plan when the table has row level
// security, when the caller lacks table-level SELECT (the SQL then applies
// column privileges or raises the usual error), when the table does not have
// the expected shape, or when fastpgcache.index_scan_reads is off.
//
// The table's primary key is key_hash: the first 16 bytes of the SHA-256 of
// the key, so keys of any length fit in the btree. Lookups compare the full
// key as well, so a collision can never return another key's value.

#include "pg_bridge.hpp"

extern "C" {
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relscan.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/pg_am_d.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"
#include "utils/uuid.h"
}

#include <algorithm>
#include <climits>
#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

#include "cache.hpp"
#include "error.hpp"
#include "sha256.hpp"
#include "stats.hpp"

namespace fastpgcache {
namespace {

// How a value was stored: kept in the "kind" column.
constexpr char kKindText = 't';
constexpr char kKindJson = 'j';
constexpr char kKindBytes = 'b';

// fastpgcache.index_scan_reads and fastpgcache.direct_writes
bool g_index_scan_reads = true;
bool g_direct_writes = true;

enum PlanId { kGetValue, kGetExpiry, kUpdate, kUpsert, kMultiUpsert, kDelete, kCleanup, kPlanCount };

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

// Column numbers the index-scan reads rely on, checked when plans are made.
constexpr AttrNumber kAttKeyHash = 1;
constexpr AttrNumber kAttExpiresAt = 2;
constexpr AttrNumber kAttKind = 3;
constexpr AttrNumber kAttKey = 4;
constexpr AttrNumber kAttValue = 5;

// Per-backend plan cache. Plain data only: it is constant-initialised, so
// loading the library runs no constructor.
struct PlanCache {
  bool valid;
  bool callback_registered;
  Oid schema;
  uint32 schema_hash;  // syscache hash of the schema's pg_namespace row
  Oid relid;
  Oid index;  // the key_hash btree, or InvalidOid if reads must use SQL
  SPIPlanPtr plans[kPlanCount];
};
PlanCache g_plans = {};

void InvalidatePlans(Datum, Oid relid) {
  if (relid == InvalidOid || relid == g_plans.relid || relid == g_plans.index) g_plans.valid = false;
}

// A change to the schema's row (a rename) makes the plans' text name the
// wrong schema: prepare them again.
void InvalidatePlansOnSchema(Datum, int, uint32 hash) {
  if (hash == 0 || hash == g_plans.schema_hash) g_plans.valid = false;
}

// True if the table has exactly the columns, in the order, that the
// index-scan reads decode, and `index` is a plain btree on key_hash alone.
bool ShapeAllowsIndexScan(Oid relid, Oid index) {
  static const struct {
    AttrNumber attnum;
    const char *name;
    Oid type;
  } kColumns[] = {{kAttKeyHash, "key_hash", UUIDOID},
                  {kAttExpiresAt, "expires_at", TIMESTAMPTZOID},
                  {kAttKind, "kind", CHAROID},
                  {kAttKey, "key", TEXTOID},
                  {kAttValue, "value", BYTEAOID}};
  if (!OidIsValid(relid) || !OidIsValid(index)) return false;
  for (const auto &col : kColumns) {
    if (get_attnum(relid, col.name) != col.attnum || get_atttype(relid, col.attnum) != col.type) return false;
  }
  Relation irel = index_open(index, AccessShareLock);
  bool ok = irel->rd_rel->relam == BTREE_AM_OID && irel->rd_index->indrelid == relid &&
            irel->rd_index->indnatts == 1 && irel->rd_index->indkey.values[0] == kAttKeyHash &&
            irel->rd_opcintype[0] == UUIDOID &&
            heap_attisnull(irel->rd_indextuple, Anum_pg_index_indpred, nullptr) &&
            heap_attisnull(irel->rd_indextuple, Anum_pg_index_indexprs, nullptr);
  index_close(irel, AccessShareLock);
  return ok;
}

// Makes sure the kept plans exist for the schema `schema`. Connects to SPI
// itself when it has to prepare them. All of it is PostgreSQL calls, so it
// runs as one guarded step that holds no C++ objects.
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

// The schema the called function lives in (the extension's schema),
// remembered in fn_extra for the next call through the same FmgrInfo.
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

// An SPI connection for one call. Finish() on success; on an exception the
// connection is left to the transaction (or subtransaction) abort that the
// shim's ereport() starts, which is how PostgreSQL cleans up after errors.
class SpiCall {
 public:
  SpiCall() : outer_(CurrentMemoryContext) {
    Guarded([] {
      if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "fastpgcache: SPI_connect failed");
    });
  }
  SpiCall(const SpiCall &) = delete;
  SpiCall &operator=(const SpiCall &) = delete;

  // Runs a kept plan; returns the number of rows processed or returned.
  // With a snapshot, the statement runs under it instead of a fresh one.
  uint64 Execute(PlanId id, Datum *values, const char *nulls, long max_rows, Snapshot snapshot = nullptr) {
    int rc = Guarded([&] {
      if (snapshot != nullptr)
        return SPI_execute_snapshot(g_plans.plans[id], values, nulls, snapshot, InvalidSnapshot, false, true,
                                    max_rows);
      return SPI_execute_plan(g_plans.plans[id], values, nulls, false, max_rows);
    });
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

// What a direct step (an index-scan read, an in-place overwrite) did.
// kUseSql: nothing was done, the SQL path must be used. kNoRow: an overwrite
// found no row to update. kPlansChanged: an invalidation arrived while the
// table was being locked; prepare again and retry.
enum class Direct { kDone, kNoRow, kUseSql, kPlansChanged };

// Runs a direct step (a Guarded() callback returning Direct) at most twice,
// preparing the plans again when they changed under it. Returns kUseSql when
// the step is disabled (`enabled` false) or the table's shape does not allow
// it.
template <typename Step>
Direct RunDirect(FunctionCallInfo fcinfo, bool enabled, Step step) {
  for (int attempt = 0; enabled && OidIsValid(g_plans.index) && attempt < 2; attempt++) {
    // Guarded() returns scalars: the outcome travels as an int.
    auto outcome = static_cast<Direct>(Guarded([&] { return static_cast<int>(step()); }));
    if (outcome != Direct::kPlansChanged) return outcome;
    EnsurePlans(FunctionSchema(fcinfo));
  }
  return Direct::kUseSql;
}

// A snapshot as SPI takes one for a volatile function: after a command
// counter increment, so that everything done so far is seen, including
// earlier in the calling statement. The caller unregisters it.
Snapshot FreshSnapshot() {
  CommandCounterIncrement();
  return RegisterSnapshot(GetTransactionSnapshot());
}

// Starts a scan of the key_hash index for `hash`.
IndexScanDesc BeginHashScan(Relation rel, Relation irel, Snapshot snapshot, const pg_uuid_t &hash) {
  ScanKeyData skey;
  ScanKeyInit(&skey, 1, BTEqualStrategyNumber, F_UUID_EQ, UUIDPGetDatum(&hash));
  IndexScanDesc scan = index_beginscan(rel, irel, snapshot, 1, 0);
  index_rescan(scan, &skey, 1, nullptr, 0);
  return scan;
}

// Overwrites the row of `hash` in place, as `UPDATE ... WHERE key_hash = $1`
// would, without an executor: finds the visible row through the index and
// calls table_tuple_update(). That is only the same as the SQL when nothing
// else has to run on an update, so it declines (kUseSql, having changed
// nothing) when the table has triggers, row level security, inheritance
// children, CHECK constraints or another index, when the caller lacks
// table-level UPDATE and SELECT, and when the row was changed concurrently
// (the SQL then re-checks it, or raises the serialization error). kNoRow: no
// row, the caller inserts. Plain PostgreSQL calls only: one Guarded() step.
Direct DirectUpdate(const pg_uuid_t &hash, const text *key, Datum value, char kind, bool expires,
                          TimestampTz expires_at) {
  Relation rel = table_open(g_plans.relid, RowExclusiveLock);
  if (!g_plans.valid) {
    table_close(rel, RowExclusiveLock);
    return Direct::kPlansChanged;
  }
  TupleConstr *constr = RelationGetDescr(rel)->constr;
  List *indexes = RelationGetIndexList(rel);
  bool plain = rel->trigdesc == nullptr && !rel->rd_rel->relrowsecurity && !rel->rd_rel->relhassubclass &&
               (constr == nullptr || constr->num_check == 0) && list_length(indexes) == 1 &&
               linitial_oid(indexes) == g_plans.index &&
               pg_class_aclcheck(g_plans.relid, GetUserId(), ACL_UPDATE) == ACLCHECK_OK &&
               pg_class_aclcheck(g_plans.relid, GetUserId(), ACL_SELECT) == ACLCHECK_OK;
  list_free(indexes);
  if (!plain) {
    table_close(rel, RowExclusiveLock);
    return Direct::kUseSql;
  }
  Relation irel = index_open(g_plans.index, RowExclusiveLock);
  Snapshot snapshot = FreshSnapshot();
  IndexScanDesc scan = BeginHashScan(rel, irel, snapshot, hash);
  TupleTableSlot *old_slot = table_slot_create(rel, nullptr);
  Direct outcome = Direct::kNoRow;
  if (index_getnext_slot(scan, ForwardScanDirection, old_slot)) {
    ItemPointerData otid = old_slot->tts_tid;
    TupleTableSlot *new_slot = table_slot_create(rel, nullptr);
    ExecClearTuple(new_slot);
    new_slot->tts_values[kAttKeyHash - 1] = UUIDPGetDatum(&hash);
    new_slot->tts_values[kAttExpiresAt - 1] = TimestampTzGetDatum(expires_at);
    new_slot->tts_values[kAttKind - 1] = CharGetDatum(kind);
    new_slot->tts_values[kAttKey - 1] = PointerGetDatum(key);
    new_slot->tts_values[kAttValue - 1] = value;
    for (int i = 0; i < new_slot->tts_tupleDescriptor->natts; i++) new_slot->tts_isnull[i] = false;
    new_slot->tts_isnull[kAttExpiresAt - 1] = !expires;
    ExecStoreVirtualTuple(new_slot);
    TM_FailureData tmfd;
    LockTupleMode lockmode;
    bool update_indexes = false;
    TM_Result result = table_tuple_update(rel, &otid, new_slot, GetCurrentCommandId(true), snapshot,
                                          InvalidSnapshot, true, &tmfd, &lockmode, &update_indexes);
    if (result == TM_Ok) {
      if (update_indexes) {
        // Not a HOT update: the new version needs its own index entry.
        Datum ivalues[1] = {UUIDPGetDatum(&hash)};
        bool inulls[1] = {false};
        index_insert(irel, ivalues, inulls, &new_slot->tts_tid, rel, UNIQUE_CHECK_YES, true, BuildIndexInfo(irel));
      }
      outcome = Direct::kDone;
    } else {
      outcome = Direct::kUseSql;  // changed concurrently, or earlier in this command
    }
    ExecDropSingleTupleTableSlot(new_slot);
  }
  ExecDropSingleTupleTableSlot(old_slot);
  index_endscan(scan);
  UnregisterSnapshot(snapshot);
  index_close(irel, NoLock);
  table_close(rel, NoLock);
  if (outcome == Direct::kDone) CommandCounterIncrement();
  return outcome;
}

// Writes one entry; value is a varlena of the given kind.
void Store(FunctionCallInfo fcinfo, const text *key, Datum value, char kind, bool expires, TimestampTz expires_at) {
  EnsurePlans(FunctionSchema(fcinfo));
  pg_uuid_t hash = KeyHash(key);
  Direct outcome =
      RunDirect(fcinfo, g_direct_writes, [&] { return DirectUpdate(hash, key, value, kind, expires, expires_at); });
  if (outcome == Direct::kDone) {
    StatsAdd(kStatSets);
    return;
  }
  bool try_update = outcome != Direct::kNoRow;  // no row: insert at once
  Datum values[5] = {UUIDPGetDatum(&hash), PointerGetDatum(key), value, CharGetDatum(kind),
                     TimestampTzGetDatum(expires_at)};
  const char nulls[5] = {' ', ' ', ' ', ' ', expires ? ' ' : 'n'};
  SpiCall spi;
  if (!try_update || spi.Execute(kUpdate, values, nulls, 0) == 0) spi.Execute(kUpsert, values, nulls, 0);
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

// A live entry: its value (a detoasted copy in the caller's memory context,
// when asked for), kind and expiry.
struct Entry {
  bool found = false;
  char kind = kKindText;
  bool expires = false;
  TimestampTz expires_at = 0;
  Datum value = 0;
};

// One probe of the key_hash index, outside any executor, under `snapshot` or,
// when that is null, under a fresh one (the one SPI would take for a volatile
// function). kUseSql: nothing was read (row level security, no table-level
// SELECT). Plain PostgreSQL calls only: it runs inside one Guarded() step.
Direct IndexScanFind(const text *key, const pg_uuid_t &hash, TimestampTz now, bool want_value,
                          Snapshot snapshot, Entry *out) {
  Relation rel = table_open(g_plans.relid, AccessShareLock);
  // Locking processes pending invalidations: the table may have changed
  // since the plans (and the column numbers checked with them) were made.
  if (!g_plans.valid) {
    table_close(rel, AccessShareLock);
    return Direct::kPlansChanged;
  }
  if (rel->rd_rel->relrowsecurity || pg_class_aclcheck(g_plans.relid, GetUserId(), ACL_SELECT) != ACLCHECK_OK) {
    table_close(rel, AccessShareLock);
    return Direct::kUseSql;
  }
  Relation irel = index_open(g_plans.index, AccessShareLock);
  bool own_snapshot = snapshot == nullptr;
  if (own_snapshot) snapshot = FreshSnapshot();
  IndexScanDesc scan = BeginHashScan(rel, irel, snapshot, hash);
  TupleTableSlot *slot = table_slot_create(rel, nullptr);
  const char *key_data = VARDATA_ANY(key);
  Size key_len = VARSIZE_ANY_EXHDR(key);
  while (index_getnext_slot(scan, ForwardScanDirection, slot)) {
    bool isnull;
    text *row_key = DatumGetTextPP(slot_getattr(slot, kAttKey, &isnull));
    if (isnull || VARSIZE_ANY_EXHDR(row_key) != key_len || std::memcmp(VARDATA_ANY(row_key), key_data, key_len) != 0)
      continue;  // another key with the same hash
    Datum expires_at = slot_getattr(slot, kAttExpiresAt, &isnull);
    out->expires = !isnull;
    out->expires_at = isnull ? 0 : DatumGetTimestampTz(expires_at);
    if (out->expires && out->expires_at <= now) break;  // expired: a miss
    out->found = true;
    out->kind = DatumGetChar(slot_getattr(slot, kAttKind, &isnull));
    // Copied (and detoasted) while the snapshot still protects the row.
    if (want_value) out->value = PointerGetDatum(PG_DETOAST_DATUM_COPY(slot_getattr(slot, kAttValue, &isnull)));
    break;
  }
  ExecDropSingleTupleTableSlot(slot);
  index_endscan(scan);
  if (own_snapshot) UnregisterSnapshot(snapshot);
  index_close(irel, NoLock);
  table_close(rel, NoLock);
  return Direct::kDone;
}

// The live entry for `key`, if any, read under `snapshot` (null: a fresh
// snapshot for this read alone).
Entry Find(FunctionCallInfo fcinfo, const text *key, bool want_value, Snapshot snapshot = nullptr) {
  pg_uuid_t hash = KeyHash(key);
  TimestampTz now = GetCurrentTimestamp();
  Entry entry;
  EnsurePlans(FunctionSchema(fcinfo));
  if (RunDirect(fcinfo, g_index_scan_reads,
                [&] { return IndexScanFind(key, hash, now, want_value, snapshot, &entry); }) == Direct::kDone)
    return entry;
  Datum values[3] = {UUIDPGetDatum(&hash), PointerGetDatum(key), TimestampTzGetDatum(now)};
  SpiCall spi;
  if (spi.Execute(want_value ? kGetValue : kGetExpiry, values, nullptr, 1, snapshot) > 0) {
    bool isnull;
    entry.found = true;
    entry.kind = DatumGetChar(spi.Column(0, 2, &isnull));
    Datum expires_at = spi.Column(0, 3, &isnull);
    entry.expires = !isnull;
    entry.expires_at = isnull ? 0 : DatumGetTimestampTz(expires_at);
    if (want_value) entry.value = spi.CopyOut(spi.Column(0, 1, &isnull));
  }
  spi.Finish();
  return entry;
}

// Find() for the cache_get* functions, which count hits and misses.
Entry FindValue(FunctionCallInfo fcinfo, const text *key, Snapshot snapshot = nullptr) {
  Entry entry = Find(fcinfo, key, true, snapshot);
  StatsAdd(entry.found ? kStatHits : kStatMisses);
  return entry;
}

// Makes sure a value can be returned as text in the database encoding.
void CheckText(const Entry &entry) {
  if (entry.kind != kKindBytes) return;
  const text *value = reinterpret_cast<const text *>(DatumGetPointer(entry.value));
  bool valid = Guarded([&] { return pg_verifymbstr(VARDATA_ANY(value), VARSIZE_ANY_EXHDR(value), true); });
  if (!valid)
    throw CacheError(sqlstate::kCharacterNotInRepertoire,
                     std::string("cached value is not valid text in encoding ") +
                         Guarded([] { return GetDatabaseEncodingName(); }),
                     "The value was stored as bytea.", "Use cache_get_bytes() to read it.");
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

}  // namespace

void DefineCacheSettings() {
  DefineCustomBoolVariable("fastpgcache.index_scan_reads",
                           "Reads probe the key_hash index directly instead of running their SQL through SPI.",
                           "Both give the same results; the index probe is faster. Reads use SQL anyway when "
                           "the table has row level security or the caller has only column privileges.",
                           &g_index_scan_reads, true, PGC_USERSET, 0, nullptr, nullptr, nullptr);
  DefineCustomBoolVariable("fastpgcache.direct_writes",
                           "cache_set overwrites an existing row in place instead of running UPDATE through SPI.",
                           "Both give the same results; the direct update is faster. Sets use SQL anyway when the "
                           "table has triggers, row level security, CHECK constraints or another index.",
                           &g_direct_writes, true, PGC_USERSET, 0, nullptr, nullptr, nullptr);
}

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
  Entry entry = FindValue(fcinfo, ArgText(fcinfo, 0));
  if (!entry.found) PG_RETURN_NULL();
  CheckText(entry);
  return entry.value;  // bytea and text share one representation
}

// cache_get_bytes(key text) RETURNS bytea; STRICT
FPC_SQL_FUNCTION(cache_get_bytes) {
  Entry entry = FindValue(fcinfo, ArgText(fcinfo, 0));
  if (!entry.found) PG_RETURN_NULL();
  return entry.value;
}

// cache_get_json(key text) RETURNS jsonb; STRICT
FPC_SQL_FUNCTION(cache_get_json) {
  Entry entry = FindValue(fcinfo, ArgText(fcinfo, 0));
  if (!entry.found) PG_RETURN_NULL();
  CheckText(entry);
  return Guarded([&] {
    char *json = text_to_cstring(reinterpret_cast<text *>(DatumGetPointer(entry.value)));
    return DirectFunctionCall1(jsonb_in, CStringGetDatum(json));
  });
}

// cache_exists(key text) RETURNS boolean; STRICT
FPC_SQL_FUNCTION(cache_exists) {
  return BoolGetDatum(Find(fcinfo, ArgText(fcinfo, 0), false).found);
}

// cache_ttl(key text) RETURNS integer; STRICT. Seconds left, rounded up so
// that a live entry never reports 0; -1 no expiry; -2 missing or expired.
FPC_SQL_FUNCTION(cache_ttl) {
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
FPC_SQL_FUNCTION(cache_delete) {
  text *key = WriteKeyArg(fcinfo);
  EnsurePlans(FunctionSchema(fcinfo));
  pg_uuid_t hash = KeyHash(key);
  Datum values[3] = {UUIDPGetDatum(&hash), PointerGetDatum(key), TimestampTzGetDatum(GetCurrentTimestamp())};
  bool live = false;
  SpiCall spi;
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
  EnsurePlans(FunctionSchema(fcinfo));
  Datum values[1] = {TimestampTzGetDatum(GetCurrentTimestamp())};
  SpiCall spi;
  uint64 deleted = spi.Execute(kCleanup, values, nullptr, 0);
  spi.Finish();
  StatsAdd(kStatRemovedByCleanup, deleted);
  return Int32GetDatum(deleted > static_cast<uint64>(INT_MAX) ? INT_MAX : static_cast<int32>(deleted));
}

// cache_mget(keys text[]) RETURNS TABLE(key text, value text); STRICT.
// One row per element, in order; value NULL for a miss (and a NULL key).
// Every key is read under one snapshot, so the batch is one consistent view,
// as Redis MGET is.
FPC_SQL_FUNCTION(cache_mget) {
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
FPC_SQL_FUNCTION(cache_mset) {
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
  if (keys.empty()) return Int32GetDatum(0);

  // One row per distinct key hash; the last occurrence wins.
  std::vector<pg_uuid_t> hashes(keys.size());
  std::unordered_map<std::string, std::size_t> last;
  last.reserve(keys.size());
  for (std::size_t i = 0; i < keys.size(); i++) {
    hashes[i] = KeyHash(keys[i]);
    last[std::string(reinterpret_cast<const char *>(hashes[i].data), UUID_LEN)] = i;
  }
  std::vector<std::size_t> rows;
  rows.reserve(last.size());
  for (const auto &kv : last) rows.push_back(kv.second);
  // Rows are upserted, and so locked, in key_hash order: two batches that
  // share keys then lock them in the same order and cannot deadlock.
  std::sort(rows.begin(), rows.end(), [&](std::size_t a, std::size_t b) {
    return std::memcmp(hashes[a].data, hashes[b].data, UUID_LEN) < 0;
  });
  std::vector<Datum> hash_datums, key_datums, value_datums;
  for (std::size_t i : rows) {
    hash_datums.push_back(UUIDPGetDatum(&hashes[i]));
    key_datums.push_back(PointerGetDatum(keys[i]));
    value_datums.push_back(PointerGetDatum(values[i]));  // text and bytea share one representation
  }
  int n = static_cast<int>(hash_datums.size());
  Datum args[4];
  Guarded([&] {
    args[0] = PointerGetDatum(construct_array(hash_datums.data(), n, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR));
    args[1] = PointerGetDatum(construct_array(key_datums.data(), n, TEXTOID, -1, false, TYPALIGN_INT));
    args[2] = PointerGetDatum(construct_array(value_datums.data(), n, BYTEAOID, -1, false, TYPALIGN_INT));
  });
  args[3] = TimestampTzGetDatum(expires_at);
  const char nulls[4] = {' ', ' ', ' ', expires ? ' ' : 'n'};
  EnsurePlans(FunctionSchema(fcinfo));
  SpiCall spi;
  spi.Execute(kMultiUpsert, args, nulls, 0);
  spi.Finish();
  StatsAdd(kStatSets, keys.size());
  return Int32GetDatum(static_cast<int32>(keys.size()));
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

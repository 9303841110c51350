// The background expiry worker: one cycle of deletes (see main.cpp for the
// whole picture).

#include "worker/worker.hpp"

extern "C" {
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/interrupt.h"
#include "storage/bufmgr.h"
#include "storage/lmgr.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/plancache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "common/hashfn.h"
}

#include <cstring>
#include <string>

#include "error.hpp"
#include "eviction/eviction.hpp"
#include "guc.hpp"
#include "stats.hpp"

namespace fastpgcache {
namespace worker {
namespace {

// The batch DELETE; %s is the quoted schema. $1/$2 block range as tids,
// $3 now, $4 batch size.
constexpr const char *kDeleteSql =
    "DELETE FROM %s.cache_entries WHERE ctid OPERATOR(pg_catalog.=) ANY (ARRAY("
    "SELECT ctid FROM %s.cache_entries"
    " WHERE ctid OPERATOR(pg_catalog.>=) $1 AND ctid OPERATOR(pg_catalog.<) $2"
    " AND expires_at OPERATOR(pg_catalog.<=) $3"
    " LIMIT $4 FOR UPDATE SKIP LOCKED))"
    " RETURNING ctid, pg_catalog.octet_length(key)::pg_catalog.int8 OPERATOR(pg_catalog.+)"
    " pg_catalog.octet_length(value)";

// The same DELETE, while a limit is set: one more row (tid NULL) has the
// earliest expiry of the range's rows that are not expired, and how many are
// expired (all of them deleted, or the range may still hold some), as the
// statement's snapshot saw the range (eviction/accounting.cpp, the floor).
constexpr const char *kDeleteFloorSql =
    "WITH d AS (DELETE FROM %s.cache_entries WHERE ctid OPERATOR(pg_catalog.=) ANY (ARRAY("
    "SELECT ctid FROM %s.cache_entries"
    " WHERE ctid OPERATOR(pg_catalog.>=) $1 AND ctid OPERATOR(pg_catalog.<) $2"
    " AND expires_at OPERATOR(pg_catalog.<=) $3"
    " LIMIT $4 FOR UPDATE SKIP LOCKED))"
    " RETURNING ctid, pg_catalog.octet_length(key)::pg_catalog.int8 OPERATOR(pg_catalog.+)"
    " pg_catalog.octet_length(value) AS s)"
    " SELECT d.ctid, d.s, NULL::pg_catalog.timestamptz, NULL::pg_catalog.int8 FROM d"
    " UNION ALL"
    " SELECT NULL, NULL, pg_catalog.min(expires_at) FILTER (WHERE expires_at OPERATOR(pg_catalog.>) $3),"
    " pg_catalog.count(*) FILTER (WHERE expires_at OPERATOR(pg_catalog.<=) $3)"
    " FROM %s.cache_entries WHERE ctid OPERATOR(pg_catalog.>=) $1 AND ctid OPERATOR(pg_catalog.<) $2";

}  // namespace

// The schema of the installed extension, InvalidOid when not installed.
// PostgreSQL 15 exports no get_extension_schema(): read pg_extension.
Oid ExtensionSchema() {
  Relation rel = table_open(ExtensionRelationId, AccessShareLock);
  ScanKeyData key;
  ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber, F_NAMEEQ, CStringGetDatum("fastpgcache"));
  SysScanDesc scan = systable_beginscan(rel, ExtensionNameIndexId, true, nullptr, 1, &key);
  HeapTuple tuple = systable_getnext(scan);
  Oid nsp = HeapTupleIsValid(tuple) ? reinterpret_cast<Form_pg_extension>(GETSTRUCT(tuple))->extnamespace
                                    : InvalidOid;
  systable_endscan(scan);
  table_close(rel, AccessShareLock);
  return nsp;
}

namespace {

// Makes g_state.plan the DELETE plan for table relid in schema nsp, both
// locked by the caller in every mode the plan uses. Raises errors.
//
// The plan is prepared again whenever the schema's oid or NAME, or the
// table's oid, differs from what it was prepared for, or PostgreSQL has
// marked it invalid. The last case matters because the plan cache re-parses
// an invalidated plan from its SQL text, which names the schema: after ALTER
// SCHEMA s RENAME TO t it would look for s.cache_entries, which may not exist
// or may be another table created later in a new schema s (and the worker
// runs as a superuser). Preparing it ourselves from the current name, and
// checking that it reads and writes only relid, rules that out. Between this
// check and SPI_execute_plan nothing takes a lock that the caller does not
// hold already, so no invalidation is processed and the plan cache has no
// reason to re-parse.
void PreparePlan(Oid nsp, Oid relid) {
  const char *nspname = get_namespace_name(nsp);
  if (nspname == nullptr) elog(ERROR, "fastpgcache worker: schema %u of the extension does not exist", nsp);
  if (g_state.plan != nullptr && SPI_plan_is_valid(g_state.plan) && g_state.nspid == nsp &&
      g_state.relid == relid && strcmp(g_state.nspname, nspname) == 0)
    return;

  bool moved = g_state.relid != relid || strcmp(g_state.nspname, nspname) != 0;
  for (SPIPlanPtr *kept : {&g_state.plan, &g_state.floor_plan}) {
    if (*kept != nullptr) SPI_freeplan(*kept);
    *kept = nullptr;
  }
  g_state.nspid = InvalidOid;
  g_state.nspname[0] = '\0';
  g_state.relid = InvalidOid;

  const char *schema = quote_identifier(nspname);
  SPIPlanPtr plans[2] = {nullptr, nullptr};
  const char *texts[2] = {kDeleteSql, kDeleteFloorSql};
  for (int i = 0; i < 2; i++) {
    char *sql = psprintf(texts[i], schema, schema, schema);
    Oid argtypes[4] = {TIDOID, TIDOID, TIMESTAMPTZOID, INT8OID};
    SPIPlanPtr plan = SPI_prepare_cursor(sql, 4, argtypes, CURSOR_OPT_GENERIC_PLAN);
    if (plan == nullptr)
      elog(ERROR, "fastpgcache worker: SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
    // The text was parsed by name: make sure the name still meant relid.
    bool right_table = true;
    ListCell *lc;
    foreach (lc, SPI_plan_get_plan_sources(plan)) {
      CachedPlanSource *source = static_cast<CachedPlanSource *>(lfirst(lc));
      ListCell *lr;
      foreach (lr, source->relationOids) right_table = right_table && lfirst_oid(lr) == relid;
    }
    if (!right_table) {
      SPI_freeplan(plan);
      if (plans[0] != nullptr) SPI_freeplan(plans[0]);
      ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                      errmsg("fastpgcache worker: schema \"%s\" changed while the worker prepared its plan", nspname),
                      errdetail("The worker tries again next cycle.")));
    }
    plans[i] = plan;
  }
  for (SPIPlanPtr plan : plans)
    if (SPI_keepplan(plan) != 0) elog(ERROR, "fastpgcache worker: SPI_keepplan failed");
  g_state.plan = plans[0];
  g_state.floor_plan = plans[1];
  g_state.nspid = nsp;
  strlcpy(g_state.nspname, nspname, NAMEDATALEN);
  g_state.relid = relid;
  if (moved) {
    // Another table (CREATE EXTENSION again) or a renamed schema: log it and
    // start a new pass.
    g_state.pos = 0;
    g_state.pass_started = GetCurrentTimestamp();
    ereport(LOG, (errmsg("fastpgcache worker: removing expired entries from %s.cache_entries in database \"%s\"",
                         schema, g_state.dbname)));
  }
}

struct BatchResult {
  bool installed;       // the extension exists
  bool busy;            // the table is locked by someone else: skipped
  uint64 deleted;       // rows deleted
  BlockNumber nblocks;  // table size when the batch ran
  BlockNumber advanced; // blocks the sweep position moved forward
  bool wrapped;         // the sweep reached the end of the table
  bool refused;         // deleting would run untrusted code as a superuser: skipped
  TimestampTz floor_min = DT_NOEND;  // the earliest expiry the range kept (floor passes)
};

}  // namespace

// The first enabled, user-defined trigger of `rel` that the worker must not
// run with superuser rights: one whose function is not owned by a superuser,
// or that has a WHEN condition (any expression, any function). Null if none.
// Internal triggers (foreign keys) are PostgreSQL's own code.
const char *UntrustedTrigger(Relation rel) {
  TriggerDesc *triggers = rel->trigdesc;
  if (triggers == nullptr) return nullptr;
  for (int i = 0; i < triggers->numtriggers; i++) {
    const Trigger &trigger = triggers->triggers[i];
    if (trigger.tgisinternal || trigger.tgenabled == TRIGGER_DISABLED) continue;
    bool trusted = trigger.tgqual == nullptr;
    HeapTuple proc = SearchSysCache1(PROCOID, ObjectIdGetDatum(trigger.tgfoid));
    if (HeapTupleIsValid(proc)) {
      trusted = trusted && superuser_arg(reinterpret_cast<Form_pg_proc>(GETSTRUCT(proc))->proowner);
      ReleaseSysCache(proc);
    } else {
      trusted = false;
    }
    if (!trusted) return trigger.tgname;
  }
  return nullptr;
}

namespace {

// Runs the kept DELETE plan as `owner` (the table's owner) inside a
// security-restricted operation with search_path = pg_catalog, pg_temp, as
// autovacuum and REFRESH MATERIALIZED VIEW run table code: what the table
// runs on a delete (triggers) runs with the owner's rights, not the
// worker's (the bootstrap superuser), and cannot change roles or leave
// settings behind. An error aborts the transaction, which restores the user
// and the settings.
int ExecuteAsOwner(SPIPlanPtr plan, Oid owner, Datum *values) {
  Oid saved_user;
  int saved_context;
  GetUserIdAndSecContext(&saved_user, &saved_context);
  SetUserIdAndSecContext(owner, saved_context | SECURITY_RESTRICTED_OPERATION);
  int nest_level = NewGUCNestLevel();
  (void)set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true,
                          0, false);
  int rc = SPI_execute_plan(plan, values, nullptr, false, 0);
  AtEOXact_GUC(false, nest_level);
  SetUserIdAndSecContext(saved_user, saved_context);
  return rc;
}

// Deletes up to cleanup_batch_size expired rows of the next range of the
// heap (kBlocksPerBatch blocks from g_state.pos), as the table's owner, and
// moves the sweep position. Raises PostgreSQL errors.
void SweepRange(Oid nsp, Oid relid, Oid owner, BlockNumber nblocks, BatchResult *out) {
  PreparePlan(nsp, relid);
  if (g_state.pos >= nblocks) {
    out->wrapped = true;
    g_state.pos = 0;
    return;
  }
  BlockNumber start = g_state.pos;
  BlockNumber end = nblocks - start > kBlocksPerBatch ? start + kBlocksPerBatch : nblocks;
  ItemPointerData from, to;
  ItemPointerSet(&from, start, 0);
  ItemPointerSet(&to, end, 0);
  TimestampTz now = GetCurrentTimestamp();
  Datum values[4] = {PointerGetDatum(&from), PointerGetDatum(&to), TimestampTzGetDatum(now),
                     Int64GetDatum(guc::cleanup_batch_size)};
  bool floor = g_state.floor_pass;
  int rc = ExecuteAsOwner(floor ? g_state.floor_plan : g_state.plan, owner, values);
  if (rc != (floor ? SPI_OK_SELECT : SPI_OK_DELETE_RETURNING))
    elog(ERROR, "fastpgcache worker: DELETE failed: %s", SPI_result_code_string(rc));
  // The deleted rows (tid, size), and for the floor one more row: the
  // range's earliest expiry kept and its count of expired rows.
  uint64 deleted = 0;
  int64 bytes = 0, expired_rows = 0;
  TimestampTz range_min = DT_NOEND;
  for (uint64 i = 0; i < SPI_processed; i++) {
    bool isnull;
    (void)SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
    if (isnull) {
      Datum expired = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 4, &isnull);
      expired_rows = isnull ? 0 : DatumGetInt64(expired);
      Datum kept_min = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 3, &isnull);
      range_min = isnull ? DT_NOEND : DatumGetTimestampTz(kept_min);
      continue;
    }
    deleted++;
    Datum size = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull);
    bytes += eviction::EntrySize(0, isnull ? 0 : DatumGetInt64(size));
  }
  // Expired rows left behind (a full batch, or rows someone holds): the
  // floor cannot be above now.
  if (static_cast<uint64>(expired_rows) > deleted && range_min > now) range_min = now;
  out->floor_min = range_min;
  out->deleted = deleted;
  // What the cache's size accounting loses when this transaction commits.
  eviction::AddPending(-static_cast<int64>(deleted), -bytes);
  BlockNumber next = end;
  if (out->deleted >= static_cast<uint64>(guc::cleanup_batch_size)) {
    // A full batch: the range may hold more. Continue from the last block
    // this batch deleted from.
    BlockNumber last = start;
    for (uint64 i = 0; i < SPI_processed; i++) {
      bool isnull;
      Datum d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);  // NULL: the floor row
      if (!isnull) {
        BlockNumber b = ItemPointerGetBlockNumber(reinterpret_cast<ItemPointer>(DatumGetPointer(d)));
        if (b > last) last = b;
      }
    }
    next = last;
  }
  out->advanced = next - start;
  g_state.pos = next;
  if (next >= nblocks) {
    out->wrapped = true;
    g_state.pos = 0;
  }
}

// One batch: one transaction, one range. Raises PostgreSQL errors (caught by
// RunCycle).
void RunBatch(BatchResult *out) {
  *out = BatchResult{};
  SetCurrentStatementStartTimestamp();
  StartTransactionCommand();
  if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "fastpgcache worker: SPI_connect failed");
  PushActiveSnapshot(GetTransactionSnapshot());
  pgstat_report_activity(STATE_RUNNING, "fastpgcache: deleting expired entries");

  Oid nsp = ExtensionSchema();
  Oid relid = OidIsValid(nsp) ? get_relname_relid("cache_entries", nsp) : InvalidOid;
  // Never queue for the table lock: if someone holds a conflicting lock
  // (DROP EXTENSION, TRUNCATE, LOCK TABLE, CREATE INDEX ...), skip this
  // cycle rather than wait and make later lockers wait behind the worker.
  // Both modes the DELETE plan takes are taken here (RowExclusiveLock for the
  // DELETE, RowShareLock for FOR UPDATE in its subquery), so that running the
  // plan takes no new lock (see PreparePlan).
  bool locked = OidIsValid(relid) && ConditionalLockRelationOid(relid, RowExclusiveLock) &&
                ConditionalLockRelationOid(relid, RowShareLock);
  if (locked) {
    // Taking the lock processed the invalidations committed so far (DROP
    // EXTENSION, ALTER SCHEMA RENAME ...): look again. If the answer changed
    // under us, skip this cycle and look afresh next time.
    AcceptInvalidationMessages();
    if (ExtensionSchema() != nsp || get_relname_relid("cache_entries", nsp) != relid) {
      out->installed = true;
      out->busy = true;
      locked = false;
      relid = InvalidOid;
    }
  }
  Relation rel = locked ? try_table_open(relid, NoLock) : nullptr;
  if (out->busy) {
    // catalog changed while locking: try again next cycle
  } else if (OidIsValid(relid) && !locked) {
    out->installed = true;
    out->busy = true;
  } else if (rel != nullptr) {
    out->installed = true;
    if (g_state.ext_state != 1) {
      g_state.pos = 0;
      g_state.pass_started = GetCurrentTimestamp();
    }
    g_state.ext_state = 1;

    BlockNumber nblocks = RelationGetNumberOfBlocks(rel);
    Oid owner = rel->rd_rel->relowner;
    // Triggers cannot change while the lock is held (CREATE TRIGGER
    // conflicts with it).
    const char *untrusted = superuser_arg(owner) ? UntrustedTrigger(rel) : nullptr;
    if (untrusted != nullptr) {
      out->refused = true;
      if (!g_state.refusal_logged)
        ereport(WARNING,
                (errmsg("fastpgcache worker: not removing expired entries from cache_entries in database \"%s\"",
                        g_state.dbname),
                 errdetail("The table has trigger \"%s\", which is not a superuser's code, and the table's owner is a "
                           "superuser: the worker would run it with superuser rights.",
                           untrusted),
                 errhint("Drop the trigger, or give cache_entries an owner that is not a superuser "
                         "(ALTER TABLE ... OWNER TO): the worker deletes as the table's owner.")));
      g_state.refusal_logged = true;
    } else {
      if (g_state.refusal_logged)
        ereport(LOG, (errmsg("fastpgcache worker: removing expired entries from cache_entries in database \"%s\" "
                             "again",
                             g_state.dbname)));
      g_state.refusal_logged = false;
    }
    table_close(rel, NoLock);  // the lock is kept until commit
    out->nblocks = nblocks;

    if (!out->refused) SweepRange(nsp, relid, owner, nblocks, out);
  } else {
    // A dynamic worker exits (main.cpp); the launched one waits, saying so
    // once.
    if (g_state.kind == WorkerKind::kLaunched && g_state.ext_state != -1)
      ereport(LOG, (errmsg("fastpgcache worker: extension \"fastpgcache\" is not installed in database \"%s\"; "
                           "waiting for CREATE EXTENSION",
                           g_state.dbname)));
    g_state.ext_state = -1;
    for (SPIPlanPtr *kept : {&g_state.plan, &g_state.floor_plan}) {
      if (*kept != nullptr) SPI_freeplan(*kept);
      *kept = nullptr;
    }
    g_state.nspid = InvalidOid;
    g_state.nspname[0] = '\0';
    g_state.relid = InvalidOid;
    g_state.pos = 0;
  }

  SPI_finish();
  PopActiveSnapshot();
  CommitTransactionCommand();
  pgstat_report_activity(STATE_IDLE, nullptr);
}

}  // namespace

void ReloadConfigIfAsked() {
  if (ConfigReloadPending) {
    ConfigReloadPending = false;
    ProcessConfigFile(PGC_SIGHUP);
  }
}

// Logs an error a cycle caught (a copy: see Guarded()): as LOG for a
// cancel, else as a WARNING; the same error as last time only at DEBUG1, so
// that a persistent problem (a table altered by hand, say) logs once rather
// than every cycle. edata may be null (no memory to copy the error).
void ReportCycleError(ErrorData *edata) {
  if (edata == nullptr) {
    ereport(WARNING, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("fastpgcache worker: out of memory in a cycle")));
    return;
  }
  uint32 key = static_cast<uint32>(edata->sqlerrcode) * 31u +
               (edata->message != nullptr ? hash_bytes(reinterpret_cast<const unsigned char *>(edata->message),
                                                       static_cast<int>(strlen(edata->message)))
                                          : 0u);
  bool repeated = g_state.last_error_key == key;
  g_state.last_error_key = key;
  if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
    edata->elevel = LOG;
  else
    edata->elevel = repeated ? DEBUG1 : WARNING;
  edata->context = psprintf("fastpgcache worker cycle in database \"%s\"", g_state.dbname);
  ThrowErrorData(edata);  // below ERROR: reports and returns
}

// Runs batches until the table has been covered once or the time cap is hit.
// Catches errors: they are logged, the transaction is aborted, and the
// worker tries again next cycle.
void RunCycle(CycleResult *out) {
  *out = CycleResult{};
  TimestampTz started = GetCurrentTimestamp();
  QueryCancelPending = false;  // a cancel sent before this cycle: ignored
  g_cancel_allowed = true;
  try {
    BlockNumber covered = 0;
    for (;;) {
      // While a limit is set, each pass also keeps the expiry floor (size.cpp).
      bool want_floor = eviction::Shared() && eviction::CurrentLimits().Any();
      if (!want_floor) g_state.floor_pass = false;
      if (g_state.pos == 0 && want_floor) {
        BeginFloorPass();
        g_state.floor_pass = true;
        g_state.floor_min = DT_NOEND;
      }
      BatchResult batch;
      Guarded([&] { RunBatch(&batch); });
      out->installed = batch.installed;
      if (!batch.installed || batch.busy || batch.refused) break;
      out->deleted += batch.deleted;
      StatsAdd(kStatExpiredByWorker, batch.deleted);
      covered += batch.advanced;
      if (g_state.floor_pass && batch.floor_min < g_state.floor_min) g_state.floor_min = batch.floor_min;
      TimestampTz now = GetCurrentTimestamp();
      if (batch.wrapped && g_state.floor_pass) {
        EndFloorPass(g_state.floor_min);
        g_state.floor_pass = false;
      }
      if (batch.wrapped) {
        StatsAdd(kStatWorkerPasses, 1);
        StatsSet(kStatLastPassMicros, static_cast<uint64>(now - g_state.pass_started));
        g_state.pass_started = now;
      }
      if (covered >= batch.nblocks || (batch.wrapped && batch.nblocks == 0)) break;
      if (TimestampDifferenceExceeds(started, now, guc::cleanup_max_time_ms)) {
        // A backlog: at least one full batch of expired rows this cycle.
        out->capped = out->deleted >= static_cast<uint64>(guc::cleanup_batch_size);
        break;
      }
      Guarded([] {
        CHECK_FOR_INTERRUPTS();
        ReloadConfigIfAsked();
      });
    }
    // Bounded size (size.cpp), once expired rows are gone as far as this
    // cycle went.
    if (out->installed) MaintainSize(out);
    g_state.last_error_key = 0;
  } catch (const PgError &e) {
    out->failed = true;
    Guarded([&] {
      HOLD_INTERRUPTS();
      ReportCycleError(e.edata());
      AbortCurrentTransaction();
      pgstat_report_activity(STATE_IDLE, nullptr);
      RESUME_INTERRUPTS();
    });
  } catch (const std::exception &e) {
    // The cache core's errors (CacheError: a table altered by hand, say)
    // and std::bad_alloc, from the eviction steps.
    out->failed = true;
    std::string message = e.what();
    const char *code = "XX000";
    if (const auto *cache_error = dynamic_cast<const CacheError *>(&e)) code = cache_error->sqlstate();
    int sqlerrcode = MAKE_SQLSTATE(code[0], code[1], code[2], code[3], code[4]);
    Guarded([&] {
      HOLD_INTERRUPTS();
      ErrorData edata = {};
      edata.elevel = WARNING;
      edata.sqlerrcode = sqlerrcode;
      edata.message = pstrdup(message.c_str());
      ReportCycleError(&edata);
      AbortCurrentTransaction();
      pgstat_report_activity(STATE_IDLE, nullptr);
      RESUME_INTERRUPTS();
    });
  }
  // Nothing else can come out of the loop: its PostgreSQL calls are
  // Guarded() (noexcept inside) and the rest is plain C++.
  // From here on a cancel would end the worker: stop taking them, then drop
  // one that arrived after the last CHECK_FOR_INTERRUPTS() of the cycle.
  g_cancel_allowed = false;
  QueryCancelPending = false;

  TimestampTz ended = GetCurrentTimestamp();
  StatsAdd(kStatWorkerCycles, 1);
  StatsSet(kStatLastCycleMicros, static_cast<uint64>(ended - started));
  StatsSet(kStatLastCycleRows, out->deleted);
  Guarded([] { pgstat_report_stat(false); });
}

}  // namespace worker
}  // namespace fastpgcache

// The background expiry worker.
//
// One worker per database deletes expired rows of cache_entries. With
// shared_preload_libraries it starts with the server in fastpgcache.database
// (the "static" worker); without it, cache_start_worker() starts one for the
// current database (a "dynamic" worker) and cache_stop_worker() stops it.
//
// How a worker works:
//  * The table has no index on expires_at (it would make every overwrite a
//    non-HOT update), so the worker sweeps the heap in ranges of
//    kBlocksPerBatch blocks with a TID range scan (ctid >= '(b,0)' AND
//    ctid < '(b2,0)'), remembering where it stopped, so one batch costs at
//    most one range and a full pass covers the whole table.
//  * Each batch is its own transaction and one kept SPI plan:
//      DELETE ... WHERE ctid = ANY (ARRAY(SELECT ctid ... range ...
//        AND expires_at <= now LIMIT batch_size FOR UPDATE SKIP LOCKED))
//    SKIP LOCKED means the worker never waits for a row lock, so it cannot
//    deadlock with cache_cleanup(), cache_set() or another worker; rows it
//    counts are rows its own DELETE removed, so nothing is counted twice.
//    A row overwritten by cache_set() in the meantime is re-checked
//    (expires_at <= now) and kept.
//  * A cycle runs batches until it has covered the whole table once or has
//    spent fastpgcache.cleanup_max_time; then the worker sleeps
//    fastpgcache.cleanup_interval on its latch. A cycle that hit its time cap
//    after deleting at least a full batch (a backlog) is followed by a pause
//    of cleanup_max_time only (so at most about half of one CPU), like Redis's
//    active expiry, which keeps going while many keys are expired.
//  * Only one worker runs per database: it holds a session advisory lock
//    (kLockKey, 1), plus (kLockKey, 2) for the static worker or (kLockKey, 3)
//    for a dynamic one, so that cache_start_worker() can refuse and
//    cache_stop_worker() can find it (pg_locks shows the holder).
//  * It stays idle (logging once) while the extension is not installed, and
//    looks the table up again before each batch, so DROP/CREATE EXTENSION
//    while it runs are fine. The kept plan's text names the schema, so it is
//    prepared again when the schema's name changes too (ALTER SCHEMA RENAME),
//    not only its oid or the table's (see PreparePlan).
//  * pg_cancel_backend() of the worker cancels the cycle in progress (its
//    batch is rolled back and the error logged); the worker goes on. Sent
//    while the worker sleeps, it is ignored.
//  * It leaves its database when someone needs it exclusively (DROP
//    DATABASE, ALTER DATABASE RENAME/SET TABLESPACE, CREATE DATABASE with it
//    as template): each wake-up (at least once a second) it tries a
//    conditional lock on the database object, which those commands hold
//    while they wait for other sessions to go. It never connects to another
//    database, so it never blocks DROP DATABASE elsewhere.
//
// The worker's main function is C-style code: no C++ object with a
// destructor is alive across a PostgreSQL call, and errors in a cycle are
// caught with PG_TRY, reported, and the transaction aborted.

#include "pg_bridge.hpp"

extern "C" {
#include <signal.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/indexing.h"
#include "catalog/pg_database.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/bufmgr.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/plancache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

PGDLLEXPORT void fastpgcache_worker_main(Datum main_arg);
}

#include "stats.hpp"
#include "worker.hpp"

namespace fastpgcache {
namespace {

// GUCs (plain data: constant-initialised).
char *g_database = nullptr;
bool g_worker_enabled = true;
int g_cleanup_interval_ms = 1000;
int g_cleanup_batch_size = 1000;
int g_cleanup_max_time_ms = 100;

constexpr int kLockKey = 0x46504331;  // "FPC1": advisory lock key 1
constexpr int kLockAny = 1;           // held by every worker
constexpr int kLockStatic = 2;        // held by the static worker
constexpr int kLockDynamic = 3;       // held by a dynamic worker
constexpr BlockNumber kBlocksPerBatch = 128;  // 1 MB of heap per batch
constexpr int kRestartSeconds = 5;
constexpr long kMaxNapMs = 1000;  // wake at least this often

constexpr const char *kWorkerType = "fastpgcache worker";

// Per-worker state. Plain data.
struct WorkerState {
  bool is_static;
  bool have_lock;
  int ext_state;  // 0 unknown, 1 installed, -1 not installed (logged)
  bool lock_wait_logged;
  // What the kept plan was prepared for. Its SQL text names the schema, and
  // PostgreSQL's plan cache re-parses that text after any invalidation
  // (ALTER SCHEMA ... RENAME sends one), so the plan is only right while the
  // extension's schema still has both this oid and this name, and
  // cache_entries in it is still this table.
  Oid nspid;
  char nspname[NAMEDATALEN];
  Oid relid;
  SPIPlanPtr plan;  // the kept DELETE plan
  BlockNumber pos;  // next block to sweep
  TimestampTz pass_started;
  char dbname[NAMEDATALEN];  // the worker's database, for messages
};
WorkerState g_state = {};

// Query cancel (SIGINT, pg_cancel_backend) cancels the cycle that is running,
// if one is: its transaction is aborted, the error logged, and the worker
// carries on with the next cycle. Outside a cycle there is no statement to
// cancel and the worker is not inside PG_TRY, where the error would become
// FATAL and end the worker (a dynamic one for good), so the signal is
// ignored there. g_cancel_allowed is true only inside RunCycle's PG_TRY.
volatile sig_atomic_t g_cancel_allowed = false;

void CancelHandler(SIGNAL_ARGS) {
  if (g_cancel_allowed) StatementCancelHandler(postgres_signal_arg);
}

// The batch DELETE; %s is the quoted schema. $1/$2 block range as tids,
// $3 now, $4 batch size.
constexpr const char *kDeleteSql =
    "DELETE FROM %s.cache_entries WHERE ctid OPERATOR(pg_catalog.=) ANY (ARRAY("
    "SELECT ctid FROM %s.cache_entries"
    " WHERE ctid OPERATOR(pg_catalog.>=) $1 AND ctid OPERATOR(pg_catalog.<) $2"
    " AND expires_at OPERATOR(pg_catalog.<=) $3"
    " LIMIT $4 FOR UPDATE SKIP LOCKED)) RETURNING ctid";

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

// True when another session holds or waits for a lock on this database that
// conflicts with a normal connection (DROP DATABASE and friends).
bool DatabaseWantedExclusively() {
  LOCKTAG tag;
  SET_LOCKTAG_OBJECT(tag, InvalidOid, DatabaseRelationId, MyDatabaseId, 0);
  LockAcquireResult res = LockAcquire(&tag, RowExclusiveLock, true, true);
  if (res == LOCKACQUIRE_NOT_AVAIL) return true;
  LockRelease(&tag, RowExclusiveLock, true);
  return false;
}

// Takes the worker's advisory locks (session level); false if another worker
// holds them.
bool TakeWorkerLock() {
  SetCurrentStatementStartTimestamp();
  StartTransactionCommand();
  bool ok = DatumGetBool(DirectFunctionCall2(pg_try_advisory_lock_int4, Int32GetDatum(kLockKey),
                                             Int32GetDatum(kLockAny)));
  if (ok)
    (void)DirectFunctionCall2(pg_try_advisory_lock_int4, Int32GetDatum(kLockKey),
                              Int32GetDatum(g_state.is_static ? kLockStatic : kLockDynamic));
  CommitTransactionCommand();
  return ok;
}

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
  if (g_state.plan != nullptr) SPI_freeplan(g_state.plan);
  g_state.plan = nullptr;
  g_state.nspid = InvalidOid;
  g_state.nspname[0] = '\0';
  g_state.relid = InvalidOid;

  const char *schema = quote_identifier(nspname);
  char *sql = psprintf(kDeleteSql, schema, schema);
  Oid argtypes[4] = {TIDOID, TIDOID, TIMESTAMPTZOID, INT8OID};
  SPIPlanPtr plan = SPI_prepare_cursor(sql, 4, argtypes, CURSOR_OPT_GENERIC_PLAN);
  if (plan == nullptr) elog(ERROR, "fastpgcache worker: SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
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
    ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                    errmsg("fastpgcache worker: schema \"%s\" changed while the worker prepared its plan", nspname),
                    errdetail("The worker tries again next cycle.")));
  }
  if (SPI_keepplan(plan) != 0) elog(ERROR, "fastpgcache worker: SPI_keepplan failed");
  g_state.plan = plan;
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
};

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
    table_close(rel, NoLock);  // the lock is kept until commit
    out->nblocks = nblocks;

    PreparePlan(nsp, relid);
    if (g_state.pos >= nblocks) {
      out->wrapped = true;
      g_state.pos = 0;
    } else {
      BlockNumber start = g_state.pos;
      BlockNumber end = nblocks - start > kBlocksPerBatch ? start + kBlocksPerBatch : nblocks;
      ItemPointerData from, to;
      ItemPointerSet(&from, start, 0);
      ItemPointerSet(&to, end, 0);
      Datum values[4] = {PointerGetDatum(&from), PointerGetDatum(&to),
                         TimestampTzGetDatum(GetCurrentTimestamp()), Int64GetDatum(g_cleanup_batch_size)};
      int rc = SPI_execute_plan(g_state.plan, values, nullptr, false, 0);
      if (rc != SPI_OK_DELETE_RETURNING)
        elog(ERROR, "fastpgcache worker: DELETE failed: %s", SPI_result_code_string(rc));
      out->deleted = SPI_processed;
      BlockNumber next = end;
      if (out->deleted >= static_cast<uint64>(g_cleanup_batch_size)) {
        // A full batch: the range may hold more. Continue from the last
        // block this batch deleted from.
        BlockNumber last = start;
        for (uint64 i = 0; i < SPI_processed; i++) {
          bool isnull;
          Datum d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
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
  } else {
    if (g_state.ext_state != -1)
      ereport(LOG, (errmsg("fastpgcache worker: extension \"fastpgcache\" is not installed in database \"%s\"; "
                           "waiting for CREATE EXTENSION",
                           g_state.dbname)));
    g_state.ext_state = -1;
    if (g_state.plan != nullptr) SPI_freeplan(g_state.plan);
    g_state.plan = nullptr;
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

struct CycleResult {
  bool installed;
  bool failed;
  bool capped;  // stopped by the time cap while still deleting
  uint64 deleted;
};

void ReloadConfigIfAsked() {
  if (ConfigReloadPending) {
    ConfigReloadPending = false;
    ProcessConfigFile(PGC_SIGHUP);
  }
}

// Runs batches until the table has been covered once or the time cap is hit.
// Catches errors: they are logged, and the worker tries again next cycle.
void RunCycle(CycleResult *out) {
  MemoryContext cxt = CurrentMemoryContext;
  // volatile: read after a longjmp into this frame.
  volatile uint64 deleted = 0;
  volatile bool installed = false;
  volatile bool capped = false;
  volatile bool failed = false;
  TimestampTz started = GetCurrentTimestamp();

  QueryCancelPending = false;  // a cancel sent before this cycle: ignored
  g_cancel_allowed = true;
  PG_TRY();
  {
    BlockNumber covered = 0;
    for (;;) {
      BatchResult batch;
      RunBatch(&batch);
      installed = batch.installed;
      if (!batch.installed || batch.busy) break;
      deleted += batch.deleted;
      StatsAdd(kStatExpiredByWorker, batch.deleted);
      covered += batch.advanced;
      TimestampTz now = GetCurrentTimestamp();
      if (batch.wrapped) {
        StatsAdd(kStatWorkerPasses, 1);
        StatsSet(kStatLastPassMicros, static_cast<uint64>(now - g_state.pass_started));
        g_state.pass_started = now;
      }
      if (covered >= batch.nblocks || (batch.wrapped && batch.nblocks == 0)) break;
      if (TimestampDifferenceExceeds(started, now, g_cleanup_max_time_ms)) {
        // A backlog: at least one full batch of expired rows this cycle.
        capped = deleted >= static_cast<uint64>(g_cleanup_batch_size);
        break;
      }
      CHECK_FOR_INTERRUPTS();
      ReloadConfigIfAsked();
    }
  }
  PG_CATCH();
  {
    HOLD_INTERRUPTS();
    MemoryContextSwitchTo(cxt);
    EmitErrorReport();
    AbortCurrentTransaction();
    FlushErrorState();
    pgstat_report_activity(STATE_IDLE, nullptr);
    RESUME_INTERRUPTS();
    failed = true;
  }
  PG_END_TRY();
  // From here on a cancel would end the worker: stop taking them, then drop
  // one that arrived after the last CHECK_FOR_INTERRUPTS() of the cycle.
  g_cancel_allowed = false;
  QueryCancelPending = false;

  TimestampTz ended = GetCurrentTimestamp();
  StatsAdd(kStatWorkerCycles, 1);
  StatsSet(kStatLastCycleMicros, static_cast<uint64>(ended - started));
  StatsSet(kStatLastCycleRows, deleted);
  pgstat_report_stat(false);
  out->installed = installed;
  out->failed = failed;
  out->capped = capped;
  out->deleted = deleted;
}

void FillWorker(BackgroundWorker *worker) {
  memset(worker, 0, sizeof *worker);
  worker->bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
  worker->bgw_start_time = BgWorkerStart_RecoveryFinished;
  snprintf(worker->bgw_library_name, BGW_MAXLEN, "fastpgcache");
  snprintf(worker->bgw_function_name, BGW_MAXLEN, "fastpgcache_worker_main");
  snprintf(worker->bgw_type, BGW_MAXLEN, "%s", kWorkerType);
}

// The pid of the process holding advisory lock (kLockKey, which) in this
// database, 0 if none. Uses SPI; called from SQL functions.
int LockHolderPid(int which) {
  if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "fastpgcache: SPI_connect failed");
  Oid argtypes[3] = {OIDOID, OIDOID, OIDOID};
  Datum values[3] = {ObjectIdGetDatum(MyDatabaseId), ObjectIdGetDatum(static_cast<Oid>(kLockKey)),
                     ObjectIdGetDatum(static_cast<Oid>(which))};
  int rc = SPI_execute_with_args(
      "SELECT pid FROM pg_catalog.pg_locks WHERE locktype OPERATOR(pg_catalog.=) 'advisory'"
      " AND database OPERATOR(pg_catalog.=) $1 AND classid OPERATOR(pg_catalog.=) $2"
      " AND objid OPERATOR(pg_catalog.=) $3 AND objsubid OPERATOR(pg_catalog.=) 2 AND granted LIMIT 1",
      3, argtypes, values, nullptr, true, 1);
  if (rc != SPI_OK_SELECT) elog(ERROR, "fastpgcache: reading pg_locks failed: %s", SPI_result_code_string(rc));
  int pid = 0;
  if (SPI_processed > 0) {
    bool isnull;
    Datum d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
    if (!isnull) pid = DatumGetInt32(d);
  }
  SPI_finish();
  return pid;
}

// Sleeps ms milliseconds on the latch, answering interrupts.
void Nap(long ms) {
  (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, ms, PG_WAIT_EXTENSION);
  ResetLatch(MyLatch);
  CHECK_FOR_INTERRUPTS();
}

// cache_start_worker(): C-style body, run as one guarded step.
Datum StartWorker(FunctionCallInfo fcinfo) {
  const char *dbname = get_database_name(MyDatabaseId);
  int running = LockHolderPid(kLockAny);
  if (running != 0) {
    ereport(NOTICE, (errmsg("a fastpgcache worker already runs in database \"%s\" (pid %d)", dbname, running)));
    fcinfo->isnull = true;
    return 0;
  }
  BackgroundWorker worker;
  FillWorker(&worker);
  worker.bgw_restart_time = BGW_NEVER_RESTART;
  worker.bgw_main_arg = ObjectIdGetDatum(MyDatabaseId);
  worker.bgw_notify_pid = MyProcPid;
  snprintf(worker.bgw_name, BGW_MAXLEN, "fastpgcache worker for database %s", dbname);
  BackgroundWorkerHandle *handle = nullptr;
  if (!RegisterDynamicBackgroundWorker(&worker, &handle))
    ereport(ERROR, (errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
                    errmsg("could not register a fastpgcache background worker"),
                    errhint("Raise max_worker_processes.")));
  pid_t pid = 0;
  BgwHandleStatus status = WaitForBackgroundWorkerStartup(handle, &pid);
  if (status != BGWH_STARTED)
    ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_RESOURCES),
                    errmsg("could not start a fastpgcache background worker"),
                    errhint("See the server log.")));
  // Wait until a worker holds the lock: ours, or one that won a race.
  for (int i = 0; i < 1000; i++) {
    int holder = LockHolderPid(kLockAny);
    if (holder == pid) return Int32GetDatum(pid);
    if (holder != 0) {
      ereport(NOTICE,
              (errmsg("a fastpgcache worker already runs in database \"%s\" (pid %d)", dbname, holder)));
      fcinfo->isnull = true;
      return 0;
    }
    pid_t now_pid;
    if (GetBackgroundWorkerPid(handle, &now_pid) != BGWH_STARTED)
      ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("the fastpgcache background worker exited"),
                      errhint("See the server log.")));
    (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 10, PG_WAIT_EXTENSION);
    ResetLatch(MyLatch);
    CHECK_FOR_INTERRUPTS();
  }
  return Int32GetDatum(pid);  // started, but slow to take its lock
}

// cache_stop_worker(): C-style body, run as one guarded step.
Datum StopWorker(FunctionCallInfo) {
  int pid = LockHolderPid(kLockDynamic);
  if (pid == 0) {
    if (LockHolderPid(kLockStatic) != 0)
      ereport(NOTICE, (errmsg("the fastpgcache worker of this database was started by shared_preload_libraries"),
                       errdetail("It is not stopped; it restarts with the server."),
                       errhint("Set fastpgcache.worker_enabled = off and restart the server to run without it.")));
    else
      ereport(NOTICE, (errmsg("no fastpgcache worker runs in database \"%s\"", get_database_name(MyDatabaseId))));
    return BoolGetDatum(false);
  }
  PGPROC *proc = BackendPidGetProc(pid);
  if (proc == nullptr || proc->databaseId != MyDatabaseId) return BoolGetDatum(false);
  if (kill(pid, SIGTERM) != 0)
    ereport(ERROR, (errmsg("could not signal fastpgcache worker (pid %d): %m", pid)));
  // Wait (up to 10 s) until it is gone.
  for (int i = 0; i < 1000 && BackendPidGetProc(pid) != nullptr; i++) {
    (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 10, PG_WAIT_EXTENSION);
    ResetLatch(MyLatch);
    CHECK_FOR_INTERRUPTS();
  }
  return BoolGetDatum(true);
}

}  // namespace

void WorkerInit() {
  // PGC_POSTMASTER variables can only be defined while preloading (defining
  // one later is FATAL); they only matter for the preloaded worker anyway.
  if (process_shared_preload_libraries_in_progress) {
    DefineCustomStringVariable("fastpgcache.database", "Database in which the preloaded expiry worker runs.",
                               nullptr, &g_database, "postgres", PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
    DefineCustomBoolVariable("fastpgcache.worker_enabled",
                             "Starts the expiry worker with the server (needs shared_preload_libraries).", nullptr,
                             &g_worker_enabled, true, PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
  }
  DefineCustomIntVariable("fastpgcache.cleanup_interval", "Sleep between expiry worker cycles.", nullptr,
                          &g_cleanup_interval_ms, 1000, 10, 86400000, PGC_SIGHUP, GUC_UNIT_MS, nullptr, nullptr,
                          nullptr);
  DefineCustomIntVariable("fastpgcache.cleanup_batch_size",
                          "Most rows the expiry worker deletes in one transaction.", nullptr,
                          &g_cleanup_batch_size, 1000, 1, 1000000, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
  DefineCustomIntVariable("fastpgcache.cleanup_max_time", "Most time one expiry worker cycle may take.", nullptr,
                          &g_cleanup_max_time_ms, 100, 1, 60000, PGC_SIGHUP, GUC_UNIT_MS, nullptr, nullptr,
                          nullptr);
  MarkGUCPrefixReserved("fastpgcache");

  if (!process_shared_preload_libraries_in_progress || !g_worker_enabled) return;
  BackgroundWorker worker;
  FillWorker(&worker);
  worker.bgw_restart_time = kRestartSeconds;
  worker.bgw_main_arg = ObjectIdGetDatum(InvalidOid);
  snprintf(worker.bgw_name, BGW_MAXLEN, "%s", kWorkerType);
  RegisterBackgroundWorker(&worker);
}

}  // namespace fastpgcache

using namespace fastpgcache;

// The worker's entry point. main_arg: InvalidOid for the static worker
// (database from fastpgcache.database), else the database to clean.
void fastpgcache_worker_main(Datum main_arg) {
  Oid dboid = DatumGetObjectId(main_arg);
  g_state.is_static = !OidIsValid(dboid);

  pqsignal(SIGHUP, SignalHandlerForConfigReload);
  pqsignal(SIGTERM, die);  // FATAL at the next CHECK_FOR_INTERRUPTS()
  pqsignal(SIGINT, CancelHandler);  // cancels the running cycle only
  BackgroundWorkerUnblockSignals();

  if (g_state.is_static)
    BackgroundWorkerInitializeConnection(g_database, nullptr, 0);
  else
    BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
  pgstat_report_appname(kWorkerType);
  StartTransactionCommand();
  strlcpy(g_state.dbname, get_database_name(MyDatabaseId), NAMEDATALEN);
  CommitTransactionCommand();

  TimestampTz last_end = 0;
  long last_pause_ms = 0;  // 0: the next cycle is due now
  for (;;) {
    CHECK_FOR_INTERRUPTS();
    ReloadConfigIfAsked();

    if (DatabaseWantedExclusively()) {
      ereport(LOG, (errmsg("fastpgcache worker: leaving database \"%s\": another session needs it exclusively",
                           g_state.dbname),
                    errdetail("DROP DATABASE, ALTER DATABASE or CREATE DATABASE ... TEMPLATE is waiting.")));
      // The static worker is restarted after bgw_restart_time; a dynamic one
      // is gone for good.
      proc_exit(g_state.is_static ? 1 : 0);
    }

    TimestampTz now = GetCurrentTimestamp();
    long wait_ms = 0;
    if (last_end != 0) {
      // A reloaded cleanup_interval applies to the current sleep too.
      long pause = last_pause_ms > 0 ? last_pause_ms : g_cleanup_interval_ms;
      TimestampTz due = TimestampTzPlusMilliseconds(last_end, pause);
      if (due > now) wait_ms = static_cast<long>((due - now + 999) / 1000);
    }
    if (wait_ms > 0) {
      Nap(wait_ms < kMaxNapMs ? wait_ms : kMaxNapMs);
      continue;
    }

    if (!g_state.have_lock) {
      g_state.have_lock = TakeWorkerLock();
      if (!g_state.have_lock) {
        if (!g_state.is_static) {
          ereport(LOG, (errmsg("fastpgcache worker: another worker already runs in database \"%s\"; exiting",
                               g_state.dbname)));
          proc_exit(0);
        }
        if (!g_state.lock_wait_logged)
          ereport(LOG, (errmsg("fastpgcache worker: another worker runs in database \"%s\"; waiting for it to stop",
                               g_state.dbname)));
        g_state.lock_wait_logged = true;
        last_end = GetCurrentTimestamp();
        last_pause_ms = 0;
        continue;
      }
    }

    CycleResult cycle;
    RunCycle(&cycle);
    last_end = GetCurrentTimestamp();
    last_pause_ms = 0;
    if (cycle.capped && !cycle.failed) {
      // A backlog: pause as long as the time cap (at most the interval).
      last_pause_ms = g_cleanup_max_time_ms < g_cleanup_interval_ms ? g_cleanup_max_time_ms : g_cleanup_interval_ms;
      if (last_pause_ms < 1) last_pause_ms = 1;
    }
  }
}

// cache_start_worker() RETURNS integer: the pid of the new worker, or NULL
// (with a NOTICE) when one already runs in this database.
FPC_SQL_FUNCTION(cache_start_worker) {
  return Guarded([&] { return StartWorker(fcinfo); });
}

// cache_stop_worker() RETURNS boolean: stops this database's dynamic worker.
FPC_SQL_FUNCTION(cache_stop_worker) {
  return Guarded([&] { return StopWorker(fcinfo); });
}

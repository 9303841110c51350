// The background expiry worker: its processes and their main loops.
//
// One worker per database deletes expired rows of cache_entries. With
// shared_preload_libraries, a launcher starts with the server and keeps a
// worker running in fastpgcache.database (the "launched" worker); without
// it, cache_start_worker() starts one for the current database (a "dynamic"
// worker) and cache_stop_worker() stops it.
//
// The launcher connects to no database: it looks fastpgcache.database up in
// pg_database (a shared catalog) and starts the worker for it, again 5 s
// after that worker exits, for whatever reason. A database that does not
// exist gets one WARNING and a quiet retry every 5 s, and is picked up when
// it is created. The launcher restarts after a crash-restart (it is
// preloaded); the dynamic workers do too (they are registered with a restart
// time), so expiry resumes in every database where a worker ran.
//
// How a worker works:
//  * The table has no index on expires_at (it would make every overwrite a
//    non-HOT update), so the worker sweeps the heap in ranges of
//    kBlocksPerBatch blocks with a TID range scan (ctid >= '(b,0)' AND
//    ctid < '(b2,0)'), remembering where it stopped, so one batch costs at
//    most one range and a full pass covers the whole table (sweep.cpp).
//  * Each batch is its own transaction and one kept SPI plan:
//      DELETE ... WHERE ctid = ANY (ARRAY(SELECT ctid ... range ...
//        AND expires_at <= now LIMIT batch_size FOR UPDATE SKIP LOCKED))
//    SKIP LOCKED means the worker never waits for a row lock, so it cannot
//    deadlock with cache_cleanup(), cache_set() or another worker; rows it
//    counts are rows its own DELETE removed, so nothing is counted twice.
//    A row overwritten by cache_set() in the meantime is re-checked
//    (expires_at <= now) and kept.
//  * The DELETE runs as the table's owner in a security-restricted operation
//    (search_path = pg_catalog, pg_temp), as autovacuum runs table code:
//    never as the bootstrap superuser the worker connects as. If the owner is
//    a superuser and the table has a trigger that is not a superuser's code,
//    the worker does not run it: it logs a WARNING and deletes nothing.
//  * A cycle runs batches until it has covered the whole table once or has
//    spent fastpgcache.cleanup_max_time; then the worker sleeps
//    fastpgcache.cleanup_interval on its latch. A cycle that hit its time cap
//    after deleting at least a full batch (a backlog) is followed by a pause
//    of cleanup_max_time only (so at most about half of one CPU), like Redis's
//    active expiry, which keeps going while many keys are expired.
//  * Only one worker runs per database: it holds a session advisory lock
//    (kLockKey, 1), plus (kLockKey, 2) for the launched worker or
//    (kLockKey, 3) for a dynamic one, so that cache_start_worker() can refuse
//    and cache_stop_worker() can find it (pg_locks shows the holder).
//  * While the extension is not installed the launched worker waits (logging
//    once); a dynamic worker exits (DROP EXTENSION ends it). Both look the
//    table up again before each batch, so DROP/CREATE EXTENSION while they
//    run are fine. The kept plan's text names the schema, so it is prepared
//    again when the schema's name changes too (ALTER SCHEMA RENAME), not
//    only its oid or the table's (see PreparePlan).
//  * pg_cancel_backend() of the worker cancels the cycle in progress (its
//    batch is rolled back and the error logged); the worker goes on. Sent
//    while the worker sleeps, it is ignored. pg_terminate_backend() and
//    cache_stop_worker() stop it: exit status 0, so the postmaster forgets a
//    dynamic worker, and the launcher starts its worker again after 5 s.
//  * It leaves its database when someone needs it exclusively (DROP
//    DATABASE, ALTER DATABASE RENAME/SET TABLESPACE, CREATE DATABASE with it
//    as template): each wake-up (at least once a second) it tries a
//    conditional lock on the database object, which those commands hold
//    while they wait for other sessions to go. It never connects to another
//    database, so it never blocks DROP DATABASE elsewhere.
//
// The main loops below are C-style code holding no C++ object: an error
// outside a cycle is FATAL, as in any background worker, and the process is
// started again (launcher: by the postmaster; launched worker: by the
// launcher; dynamic worker: by the postmaster after kRestartSeconds). A
// cycle's errors are caught in sweep.cpp.

#include "worker/worker.hpp"

extern "C" {
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "commands/dbcommands.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/wait_event.h"
}

#include "guc.hpp"

namespace fastpgcache {
namespace worker {

WorkerState g_state = {};
volatile sig_atomic_t g_cancel_allowed = false;

namespace {

// Query cancel (SIGINT, pg_cancel_backend) cancels the cycle that is running,
// if one is: its transaction is aborted, the error logged, and the worker
// carries on with the next cycle. Outside a cycle there is no statement to
// cancel and the worker is not inside PG_TRY, where the error would become
// FATAL and end the worker (a dynamic one for good), so the signal is
// ignored there. g_cancel_allowed is true only inside RunCycle's PG_TRY.
void CancelHandler(SIGNAL_ARGS) {
  if (g_cancel_allowed) StatementCancelHandler(postgres_signal_arg);
}

// SIGTERM (cache_stop_worker(), pg_terminate_backend(), server shutdown):
// stop with exit status 0, which unregisters a worker for good. A cycle in
// progress is cancelled (its batch rolled back) so that the stop is prompt.
volatile sig_atomic_t g_stop_requested = false;

void StopHandler(SIGNAL_ARGS) {
  int saved_errno = errno;
  g_stop_requested = true;
  if (g_cancel_allowed) {
    QueryCancelPending = true;
    InterruptPending = true;
  }
  SetLatch(MyLatch);
  errno = saved_errno;
}

void ExitIfStopRequested() {
  if (!g_stop_requested) return;
  ereport(LOG, (errmsg("fastpgcache worker: stopping in database \"%s\"", g_state.dbname)));
  proc_exit(0);
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
                              Int32GetDatum(g_state.kind == WorkerKind::kLaunched ? kLockStatic : kLockDynamic));
  CommitTransactionCommand();
  return ok;
}

// The oid of the database called `name`, InvalidOid if there is none (or it
// is a half-dropped one). A heap scan of pg_database, as the autovacuum
// launcher does: a process connected to no database cannot use the
// catalog's indexes. Call inside a transaction.
Oid LookUpDatabase(const char *name) {
  Relation rel = table_open(DatabaseRelationId, AccessShareLock);
  TableScanDesc scan = table_beginscan_catalog(rel, 0, nullptr);
  Oid found = InvalidOid;
  HeapTuple tuple;
  while ((tuple = heap_getnext(scan, ForwardScanDirection)) != nullptr) {
    auto *db = reinterpret_cast<Form_pg_database>(GETSTRUCT(tuple));
    if (strcmp(NameStr(db->datname), name) == 0 && !database_is_invalid_form(db)) {
      found = db->oid;
      break;
    }
  }
  table_endscan(scan);
  table_close(rel, AccessShareLock);
  return found;
}

// Sleeps ms milliseconds on the latch, answering interrupts.
void Nap(long ms) {
  (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, ms, PG_WAIT_EXTENSION);
  ResetLatch(MyLatch);
  CHECK_FOR_INTERRUPTS();
}

}  // namespace
}  // namespace worker
}  // namespace fastpgcache

using namespace fastpgcache;
using namespace fastpgcache::worker;

// The worker's entry point. main_arg: the database to clean; bgw_extra[0]:
// who started it (WorkerKind).
void fastpgcache_worker_main(Datum main_arg) {
  Oid dboid = DatumGetObjectId(main_arg);
  g_state.kind = static_cast<WorkerKind>(MyBgworkerEntry->bgw_extra[0]);

  pqsignal(SIGHUP, SignalHandlerForConfigReload);
  pqsignal(SIGTERM, StopHandler);
  pqsignal(SIGINT, CancelHandler);  // cancels the running cycle only
  BackgroundWorkerUnblockSignals();

  BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
  pgstat_report_appname(kWorkerType);
  StartTransactionCommand();
  strlcpy(g_state.dbname, get_database_name(MyDatabaseId), NAMEDATALEN);
  CommitTransactionCommand();

  TimestampTz last_end = 0;
  long last_pause_ms = 0;  // 0: the next cycle is due now
  for (;;) {
    ExitIfStopRequested();
    CHECK_FOR_INTERRUPTS();
    ReloadConfigIfAsked();

    if (DatabaseWantedExclusively()) {
      ereport(LOG, (errmsg("fastpgcache worker: leaving database \"%s\": another session needs it exclusively",
                           g_state.dbname),
                    errdetail("DROP DATABASE, ALTER DATABASE or CREATE DATABASE ... TEMPLATE is waiting.")));
      // A dynamic worker is gone for good; the launcher starts its worker
      // again in 5 s if the database still exists under its name.
      proc_exit(0);
    }

    TimestampTz now = GetCurrentTimestamp();
    long wait_ms = 0;
    if (last_end != 0) {
      // A reloaded cleanup_interval applies to the current sleep too.
      long pause = last_pause_ms > 0 ? last_pause_ms : guc::cleanup_interval_ms;
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
        if (g_state.kind == WorkerKind::kDynamic) {
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
    ExitIfStopRequested();
    if (cycle.restart) {
      // A session reads database-level settings when it starts: start again
      // (the launcher, or the postmaster for a dynamic worker, does it).
      ereport(LOG, (errmsg("fastpgcache worker: the eviction settings of database \"%s\" changed; restarting to "
                           "apply them",
                           g_state.dbname)));
      proc_exit(1);
    }
    if (!cycle.installed && !cycle.failed && g_state.kind == WorkerKind::kDynamic) {
      ereport(LOG, (errmsg("fastpgcache worker: extension \"fastpgcache\" is not installed in database \"%s\"; "
                           "exiting",
                           g_state.dbname),
                    errhint("Run cache_start_worker() again after CREATE EXTENSION.")));
      proc_exit(0);
    }
    last_end = GetCurrentTimestamp();
    last_pause_ms = 0;
    if (cycle.capped && !cycle.failed) {
      // A backlog: pause as long as the time cap (at most the interval).
      last_pause_ms = guc::cleanup_max_time_ms < guc::cleanup_interval_ms ? guc::cleanup_max_time_ms
                                                                          : guc::cleanup_interval_ms;
      if (last_pause_ms < 1) last_pause_ms = 1;
    }
  }
}

// What the launcher keeps running: the expiry worker of
// fastpgcache.database (if fastpgcache.worker_enabled), and the
// Redis-protocol workers of fastpgcache.resp_database (if
// fastpgcache.resp_port is set). Plain data.
struct LaunchedChild {
  const char *function;       // bgw_function_name
  const char *type;           // bgw_type
  const char *database;       // by name
  char extra;                 // bgw_extra[0]
  BackgroundWorkerHandle *handle;
  TimestampTz next_start;
  bool missing_logged;
  bool slots_logged;
};
constexpr int kMaxChildren = 1 + 64;

// Starts `child` if it is due and its database exists. PostgreSQL calls.
void StartChild(LaunchedChild *child, TimestampTz now) {
  if (child->handle != nullptr) {
    pid_t pid;
    if (GetBackgroundWorkerPid(child->handle, &pid) != BGWH_STOPPED) return;
    pfree(child->handle);
    child->handle = nullptr;
    child->next_start = TimestampTzPlusMilliseconds(now, kRestartSeconds * 1000);
  }
  if (now < child->next_start) return;
  child->next_start = TimestampTzPlusMilliseconds(now, kRestartSeconds * 1000);
  SetCurrentStatementStartTimestamp();
  StartTransactionCommand();
  Oid dboid = LookUpDatabase(child->database);
  CommitTransactionCommand();
  if (!OidIsValid(dboid)) {
    if (!child->missing_logged)
      ereport(WARNING, (errcode(ERRCODE_UNDEFINED_DATABASE),
                        errmsg("fastpgcache launcher: database \"%s\" does not exist", child->database),
                        errdetail("No %s runs until it does; the launcher checks again every %d s.", child->type,
                                  kRestartSeconds),
                        errhint("Create the database, or set fastpgcache.database (fastpgcache.resp_database) "
                                "and restart the server.")));
    child->missing_logged = true;
    return;
  }
  if (child->missing_logged)
    ereport(LOG, (errmsg("fastpgcache launcher: database \"%s\" exists now; starting the %s", child->database,
                         child->type)));
  child->missing_logged = false;
  BackgroundWorker worker;
  FillWorker(&worker, WorkerKind::kLaunched, dboid);
  snprintf(worker.bgw_function_name, BGW_MAXLEN, "%s", child->function);
  snprintf(worker.bgw_type, BGW_MAXLEN, "%s", child->type);
  snprintf(worker.bgw_name, BGW_MAXLEN, "%s", child->type);
  worker.bgw_extra[0] = child->extra;
  worker.bgw_restart_time = BGW_NEVER_RESTART;  // the launcher restarts it
  worker.bgw_notify_pid = MyProcPid;            // wakes the launcher when it starts or stops
  MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
  bool registered = RegisterDynamicBackgroundWorker(&worker, &child->handle);
  MemoryContextSwitchTo(old);
  if (!registered) {
    child->handle = nullptr;
    if (!child->slots_logged)
      ereport(WARNING, (errmsg("fastpgcache launcher: no background worker slot is free for the %s", child->type),
                        errhint("Raise max_worker_processes; the launcher tries again every %d s.", kRestartSeconds)));
    child->slots_logged = true;
  } else {
    child->slots_logged = false;
  }
}

// The launcher's entry point. Connected to no database.
void fastpgcache_launcher_main(Datum) {
  pqsignal(SIGHUP, SignalHandlerForConfigReload);
  pqsignal(SIGTERM, die);
  BackgroundWorkerUnblockSignals();
  BackgroundWorkerInitializeConnection(nullptr, nullptr, 0);
  pgstat_report_appname(kLauncherType);

  LaunchedChild children[kMaxChildren];
  int nchildren = 0;
  if (guc::worker_enabled)
    children[nchildren++] = LaunchedChild{"fastpgcache_worker_main", kWorkerType, guc::database,
                                          static_cast<char>(WorkerKind::kLaunched), nullptr, 0, false, false};
  if (guc::resp_port > 0) {
    const char *db = guc::resp_database != nullptr && guc::resp_database[0] != '\0' ? guc::resp_database
                                                                                   : guc::database;
    for (int i = 0; i < guc::resp_workers && nchildren < kMaxChildren; i++)
      children[nchildren++] = LaunchedChild{"fastpgcache_resp_main", "fastpgcache resp", db,
                                            static_cast<char>(i == 0 ? 1 : 0), nullptr, 0, false, false};
  }
  for (;;) {
    CHECK_FOR_INTERRUPTS();
    ReloadConfigIfAsked();
    TimestampTz now = GetCurrentTimestamp();
    long wait_ms = kMaxNapMs;
    for (int i = 0; i < nchildren; i++) {
      StartChild(&children[i], now);
      if (children[i].handle == nullptr) {
        long until = static_cast<long>((children[i].next_start - GetCurrentTimestamp()) / 1000);
        if (until < wait_ms) wait_ms = until < 1 ? 1 : until;
      }
    }
    Nap(wait_ms);
  }
}

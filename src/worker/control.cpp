// The background expiry worker: registration of the preloaded worker, and
// the SQL functions that start and stop a worker for one database.

#include "worker/worker.hpp"

extern "C" {
#include "commands/dbcommands.h"
#include "miscadmin.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "utils/builtins.h"
#include "utils/wait_event.h"
}

#include "guc.hpp"

namespace fastpgcache {
namespace worker {
namespace {

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

}  // namespace

void FillWorker(BackgroundWorker *worker, WorkerKind kind, Oid database) {
  memset(worker, 0, sizeof *worker);
  worker->bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
  // A standby has no data for the cache's UNLOGGED table: run only once
  // recovery is over (on a primary, or after promotion).
  worker->bgw_start_time = BgWorkerStart_RecoveryFinished;
  snprintf(worker->bgw_library_name, BGW_MAXLEN, "fastpgcache");
  snprintf(worker->bgw_function_name, BGW_MAXLEN, "fastpgcache_worker_main");
  snprintf(worker->bgw_type, BGW_MAXLEN, "%s", kWorkerType);
  worker->bgw_main_arg = ObjectIdGetDatum(database);
  worker->bgw_extra[0] = static_cast<char>(kind);
}

namespace {

// Waits until a worker holds this database's lock: returns the pid if it is
// ours (`pid`), 0 with a NOTICE if another one won a race. Raises errors.
int WaitForWorkerLock(BackgroundWorkerHandle *handle, pid_t pid, const char *dbname) {
  for (int i = 0; i < 1000; i++) {
    int holder = LockHolderPid(kLockAny);
    if (holder == pid) return pid;
    if (holder != 0) {
      ereport(NOTICE, (errmsg("a fastpgcache worker already runs in database \"%s\" (pid %d)", dbname, holder)));
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
  return pid;  // started, but slow to take its lock
}

}  // namespace

// cache_start_worker(): C-style body, run as one guarded step.
//
// The worker is registered with a restart time, so that after a crash-restart
// the postmaster starts it again (dynamic workers registered with
// BGW_NEVER_RESTART are forgotten then); it exits with status 0, which
// unregisters it for good, when it is stopped (cache_stop_worker(),
// pg_terminate_backend()), when the extension is dropped or its database is
// needed exclusively.
Datum StartWorker(FunctionCallInfo fcinfo) {
  const char *dbname = get_database_name(MyDatabaseId);
  int running = LockHolderPid(kLockAny);
  if (running != 0) {
    ereport(NOTICE, (errmsg("a fastpgcache worker already runs in database \"%s\" (pid %d)", dbname, running)));
    fcinfo->isnull = true;
    return 0;
  }
  BackgroundWorker worker;
  FillWorker(&worker, WorkerKind::kDynamic, MyDatabaseId);
  worker.bgw_restart_time = kRestartSeconds;
  worker.bgw_notify_pid = MyProcPid;
  snprintf(worker.bgw_name, BGW_MAXLEN, "fastpgcache worker for database %s", dbname);
  BackgroundWorkerHandle *handle = nullptr;
  if (!RegisterDynamicBackgroundWorker(&worker, &handle))
    ereport(ERROR, (errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
                    errmsg("could not register a fastpgcache background worker"),
                    errhint("Raise max_worker_processes.")));
  // From here on the worker holds a slot: if this call fails or is cancelled
  // while waiting, take the worker back, or the slot stays taken.
  volatile int result = 0;
  PG_TRY();
  {
    pid_t pid = 0;
    BgwHandleStatus status = WaitForBackgroundWorkerStartup(handle, &pid);
    if (status != BGWH_STARTED)
      ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_RESOURCES),
                      errmsg("could not start a fastpgcache background worker"), errhint("See the server log.")));
    result = WaitForWorkerLock(handle, pid, dbname);
  }
  PG_CATCH();
  {
    TerminateBackgroundWorker(handle);
    PG_RE_THROW();
  }
  PG_END_TRY();
  if (result == 0) {
    // Another worker won: ours exits by itself (the lock is taken).
    fcinfo->isnull = true;
    return 0;
  }
  return Int32GetDatum(result);
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
    ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("could not signal fastpgcache worker (pid %d): %m", pid)));
  // Wait (up to 10 s) until it is gone.
  for (int i = 0; i < 1000 && BackendPidGetProc(pid) != nullptr; i++) {
    (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 10, PG_WAIT_EXTENSION);
    ResetLatch(MyLatch);
    CHECK_FOR_INTERRUPTS();
  }
  return BoolGetDatum(true);
}

void RegisterLauncher() {
  if (!process_shared_preload_libraries_in_progress || (!guc::worker_enabled && guc::resp_port == 0)) return;
  BackgroundWorker worker;
  memset(&worker, 0, sizeof worker);
  // Connected to no database: it only reads pg_database (a shared catalog).
  worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
  worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
  worker.bgw_restart_time = kRestartSeconds;
  snprintf(worker.bgw_library_name, BGW_MAXLEN, "fastpgcache");
  snprintf(worker.bgw_function_name, BGW_MAXLEN, "fastpgcache_launcher_main");
  snprintf(worker.bgw_type, BGW_MAXLEN, "%s", kLauncherType);
  snprintf(worker.bgw_name, BGW_MAXLEN, "%s", kLauncherType);
  RegisterBackgroundWorker(&worker);
}

}  // namespace worker
}  // namespace fastpgcache

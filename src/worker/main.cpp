// The background expiry worker: the process and its main loop.
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

#include "worker/worker.hpp"

extern "C" {
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
    BackgroundWorkerInitializeConnection(guc::database, nullptr, 0);
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
      last_pause_ms = guc::cleanup_max_time_ms < guc::cleanup_interval_ms ? guc::cleanup_max_time_ms : guc::cleanup_interval_ms;
      if (last_pause_ms < 1) last_pause_ms = 1;
    }
  }
}


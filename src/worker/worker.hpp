// The background expiry worker: what its three files share.
//
//   main.cpp     the worker process: signals, the main loop, naps
//   sweep.cpp    one cycle: batches of DELETEs over ranges of the heap
//   control.cpp  registration (preloaded), cache_start_worker() and
//                cache_stop_worker()
//
// How the worker works is described in main.cpp. A backend header.
#pragma once

#include "pg_bridge.hpp"

extern "C" {
#include <signal.h>

#include "executor/spi.h"
#include "postmaster/bgworker.h"
#include "storage/block.h"
#include "utils/timestamp.h"

PGDLLEXPORT void fastpgcache_worker_main(Datum main_arg);
}

namespace fastpgcache {
namespace worker {

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
extern WorkerState g_state;

// True only inside RunCycle's PG_TRY: see CancelHandler in main.cpp.
extern volatile sig_atomic_t g_cancel_allowed;

// ------------------------------------------------------------- sweep.cpp

struct CycleResult {
  bool installed;
  bool failed;
  bool capped;  // stopped by the time cap while still deleting
  uint64 deleted;
};

// Runs batches until the table has been covered once or the time cap is hit.
// Catches errors: they are logged, and the worker tries again next cycle.
void RunCycle(CycleResult *out);

// Applies a pending configuration reload (SIGHUP).
void ReloadConfigIfAsked();

// ------------------------------------------------------------ control.cpp

// Fills the fields every fastpgcache worker shares.
void FillWorker(BackgroundWorker *worker);

// Called from _PG_init while preloading: registers the static worker unless
// fastpgcache.worker_enabled is off.
void RegisterStaticWorker();

// Bodies of cache_start_worker() and cache_stop_worker() (sql_api.cpp):
// C-style, each run as one guarded step.
Datum StartWorker(FunctionCallInfo fcinfo);
Datum StopWorker(FunctionCallInfo fcinfo);

}  // namespace worker
}  // namespace fastpgcache

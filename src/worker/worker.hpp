// The background expiry worker: what its files share.
//
//   main.cpp      the processes: the launcher (preloaded) and the worker
//                 of one database, their signals and main loops
//   sweep.cpp     one cycle of a worker: batches of DELETEs over ranges of
//                 the heap
//   size.cpp      bounded size: recount, eviction, VACUUM (eviction/)
//   control.cpp   registration of the launcher, cache_start_worker() and
//                 cache_stop_worker()
//
// How the worker works is described in main.cpp. A backend header.
#pragma once

#include "pg_bridge.hpp"

extern "C" {
#include <signal.h>

#include "executor/spi.h"
#include "postmaster/bgworker.h"
#include "storage/block.h"
#include "utils/relcache.h"
#include "utils/timestamp.h"

PGDLLEXPORT void fastpgcache_worker_main(Datum main_arg);
PGDLLEXPORT void fastpgcache_launcher_main(Datum main_arg);
}

namespace fastpgcache {
namespace worker {

constexpr int kLockKey = 0x46504331;  // "FPC1": advisory lock key 1
constexpr int kLockAny = 1;           // held by every worker
constexpr int kLockStatic = 2;        // held by the worker the launcher started
constexpr int kLockDynamic = 3;       // held by a worker cache_start_worker() started
constexpr BlockNumber kBlocksPerBatch = 128;  // 1 MB of heap per batch
constexpr int kRestartSeconds = 5;
constexpr long kMaxNapMs = 1000;  // wake at least this often

constexpr const char *kWorkerType = "fastpgcache worker";
constexpr const char *kLauncherType = "fastpgcache launcher";

// Who started a worker; travels in bgw_extra[0].
enum class WorkerKind : uint8 {
  kLaunched = 1,  // the launcher, for fastpgcache.database (preloaded)
  kDynamic = 2,   // cache_start_worker(), for the caller's database
};

// Per-worker state. Plain data.
struct WorkerState {
  WorkerKind kind;
  bool have_lock;
  int ext_state;  // 0 unknown, 1 installed, -1 not installed (logged)
  bool lock_wait_logged;
  bool refusal_logged;     // the untrusted-trigger WARNING was logged
  uint32 last_error_key;   // the last error a cycle logged, 0 after a good cycle
  // What the kept plan was prepared for. Its SQL text names the schema, and
  // PostgreSQL's plan cache re-parses that text after any invalidation
  // (ALTER SCHEMA ... RENAME sends one), so the plan is only right while the
  // extension's schema still has both this oid and this name, and
  // cache_entries in it is still this table.
  Oid nspid;
  char nspname[NAMEDATALEN];
  Oid relid;
  SPIPlanPtr plan;        // the kept DELETE plan
  SPIPlanPtr floor_plan;  // the same, also reading the earliest expiry it keeps (a limit is set)
  bool floor_pass;        // this pass reads the floor from its start
  TimestampTz floor_min;  // the earliest expiry this pass kept so far
  BlockNumber pos;  // next block to sweep
  TimestampTz pass_started;
  char dbname[NAMEDATALEN];  // the worker's database, for messages
};
extern WorkerState g_state;

// True only inside RunCycle's loop: see CancelHandler in main.cpp.
extern volatile sig_atomic_t g_cancel_allowed;

// ------------------------------------------------------------- sweep.cpp

struct CycleResult {
  bool installed;
  bool failed;
  bool capped;  // stopped by the time cap while still deleting
  uint64 deleted;
  bool restart;  // leave with exit status 1 (restarted to apply database settings)
};

// Runs batches until the table has been covered once or the time cap is hit.
// Catches errors: they are logged, and the worker tries again next cycle.
void RunCycle(CycleResult *out);

// Applies a pending configuration reload (SIGHUP).
void ReloadConfigIfAsked();

// The schema of the installed extension, InvalidOid when not installed.
// Inside a transaction.
Oid ExtensionSchema();

// The first enabled, user-defined trigger of `rel` that the worker must not
// run with superuser rights (not a superuser's code, or with a WHEN
// condition); null if none.
const char *UntrustedTrigger(Relation rel);

// ------------------------------------------------------------- size.cpp

// The worker's part in keeping the cache within fastpgcache.max_entries /
// max_size (eviction/): recounts, evicts while over the limit (within the
// cycle's time cap), and vacuums the table when evictions and expiries have
// left much dead space. Raises errors (the caller catches them, as a
// cycle's). Sets out->capped when still over the limit, and out->restart
// when database-level settings changed (the worker restarts to apply them).
void MaintainSize(CycleResult *out);

// The expiry floor (eviction/accounting.cpp), kept by the sweep's passes
// while a limit is set: a pass begins (new writes go to a new period; waits
// up to 200 ms for older transactions to end, else the pass only ever lowers
// the floor) and ends with the earliest expiry it kept.
void BeginFloorPass();
void EndFloorPass(TimestampTz pass_min);

// ------------------------------------------------------------ control.cpp

// Fills the fields every fastpgcache worker shares.
void FillWorker(BackgroundWorker *worker, WorkerKind kind, Oid database);

// Called from _PG_init while preloading: registers the launcher when it has
// something to run (the expiry worker, fastpgcache.worker_enabled; the
// Redis-protocol workers, fastpgcache.resp_port).
void RegisterLauncher();

// Bodies of cache_start_worker() and cache_stop_worker() (sql_api.cpp):
// C-style, each run as one guarded step.
Datum StartWorker(FunctionCallInfo fcinfo);
Datum StopWorker(FunctionCallInfo fcinfo);

}  // namespace worker
}  // namespace fastpgcache

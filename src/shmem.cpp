// The shared-memory hooks: shmem_request_hook (PostgreSQL 15 and later)
// reserves the space of every part that keeps shared state, and
// shmem_startup_hook creates it in the postmaster (or attaches to it, in an
// EXEC_BACKEND build) under AddinShmemInitLock. Both exist only while
// preloading.

#include "pg_bridge.hpp"

extern "C" {
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
}

#include "eviction/eviction.hpp"
#include "shmem.hpp"
#include "stats.hpp"

namespace fastpgcache {
namespace {

shmem_request_hook_type g_prev_shmem_request = nullptr;
shmem_startup_hook_type g_prev_shmem_startup = nullptr;

void ShmemRequest() {
  if (g_prev_shmem_request != nullptr) g_prev_shmem_request();
  RequestAddinShmemSpace(StatsShmemSize());
  RequestAddinShmemSpace(eviction::ShmemSize());
}

void ShmemStartup() {
  if (g_prev_shmem_startup != nullptr) g_prev_shmem_startup();
  LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
  StatsShmemInit();
  eviction::ShmemInit();
  LWLockRelease(AddinShmemInitLock);
}

}  // namespace

void InstallShmemHooks() {
  if (!process_shared_preload_libraries_in_progress) return;
  g_prev_shmem_request = shmem_request_hook;
  shmem_request_hook = ShmemRequest;
  g_prev_shmem_startup = shmem_startup_hook;
  shmem_startup_hook = ShmemStartup;
}

}  // namespace fastpgcache

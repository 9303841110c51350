// Module entry point.

#include "pg_bridge.hpp"

#include "guc.hpp"
#include "shmem.hpp"
#include "worker/worker.hpp"

extern "C" {
PG_MODULE_MAGIC;

PGDLLEXPORT void _PG_init(void);
}

// Defines the settings; when preloaded, also reserves the shared-memory
// memory and registers the launcher of the expiry worker.
void _PG_init(void) {
  fastpgcache::DefineSettings();
  fastpgcache::worker::RegisterLauncher();
  fastpgcache::InstallShmemHooks();
}

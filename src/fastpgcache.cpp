// Module entry point.

#include "pg_bridge.hpp"

#include "cache.hpp"
#include "stats.hpp"
#include "worker.hpp"

extern "C" {
PG_MODULE_MAGIC;

PGDLLEXPORT void _PG_init(void);
}

// Defines the GUCs; when preloaded, also reserves the shared-memory counters
// and registers the expiry worker (see src/worker.cpp, src/stats.cpp).
void _PG_init(void) {
  fastpgcache::DefineCacheSettings();
  fastpgcache::WorkerInit();
  fastpgcache::StatsInit();
}

// The background expiry worker: GUCs, registration, and the SQL functions
// cache_start_worker() / cache_stop_worker(). See src/worker.cpp.
#pragma once

namespace fastpgcache {

// Called from _PG_init: defines the fastpgcache.* GUCs and, when the library
// is being preloaded, registers the static worker.
void WorkerInit();

}  // namespace fastpgcache

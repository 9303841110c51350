// Counters kept in shared memory (cache_stats()). Pure C++: no PostgreSQL
// headers, and nothing here can raise a PostgreSQL error, so the cache
// functions may call it from anywhere.
//
// The counters exist only when the library is in shared_preload_libraries;
// without it every call is a no-op and cache_stats() reports the counters as
// unavailable (shared_memory = false, counters NULL).
#pragma once

#include <cstddef>
#include <cstdint>

struct FunctionCallInfoBaseData;

namespace fastpgcache {

enum StatCounter {
  kStatHits,              // cache_get*/: a live entry was found
  kStatMisses,            // cache_get*: no live entry
  kStatSets,              // cache_set (all variants)
  kStatDeletes,           // cache_delete that removed a live entry
  kStatExpiredByWorker,   // rows deleted by the background worker
  kStatRemovedByCleanup,  // rows deleted by cache_cleanup()
  kStatWorkerCycles,      // worker cycles run
  kStatWorkerPasses,      // full passes over the table completed
  kStatLastCycleMicros,   // duration of the last cycle (set, not added)
  kStatLastCycleRows,     // rows deleted in the last cycle (set)
  kStatLastPassMicros,    // duration of the last full pass (set)
  kStatEvicted,           // live entries deleted to keep the cache within its limit
  kStatExpiredByEviction, // expired entries the evictor deleted (writers helping, the worker)
  kStatCount
};

// Adds n to a counter. No-op without shared memory.
void StatsAdd(StatCounter counter, uint64_t n = 1) noexcept;
// Sets a gauge. No-op without shared memory.
void StatsSet(StatCounter counter, uint64_t value) noexcept;
// True when the counters live in shared memory (library preloaded).
bool StatsAvailable() noexcept;

// Bytes of shared memory the counters need, and their creation (or
// attachment) in shmem_startup_hook (shmem.cpp).
std::size_t StatsShmemSize();
void StatsShmemInit();

// Bodies of cache_stats() and cache_stats_reset() (sql_api.cpp). The row is
// built as one guarded step; the reset returns false, with a NOTICE, when
// there are no counters.
uintptr_t BuildStatsRow(FunctionCallInfoBaseData *fcinfo);
bool StatsReset();

}  // namespace fastpgcache

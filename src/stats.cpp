// Shared-memory counters, and the bodies of the cache_stats() /
// cache_stats_reset() SQL functions (their shims are in sql_api.cpp).
//
// The counters are pg_atomic_uint64 in a small struct allocated in the main
// shared memory segment (shmem.cpp reserves and creates it). That happens
// only when the library is loaded by shared_preload_libraries; otherwise
// g_shared stays NULL, the counters are not kept, and cache_stats() says so.
//
// Counters are not transactional: a cache_set() counts when it runs, even if
// its transaction later rolls back. After a crash-restart (or a server
// restart) they start again from zero, like the UNLOGGED table itself.

#include "pg_bridge.hpp"

extern "C" {
#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"
}

#include "eviction/eviction.hpp"
#include "stats.hpp"

namespace fastpgcache {
namespace {

struct SharedStats {
  pg_atomic_uint64 counters[kStatCount];
  pg_atomic_uint64 reset_at;  // TimestampTz of the last reset (or start)
};

// A plain pointer: constant-initialised, no constructor runs at load time.
SharedStats *g_shared = nullptr;

}  // namespace

std::size_t StatsShmemSize() { return MAXALIGN(sizeof(SharedStats)); }

void StatsShmemInit() {
  bool found = false;
  auto *shared = static_cast<SharedStats *>(ShmemInitStruct("fastpgcache stats", sizeof(SharedStats), &found));
  if (!found) {
    for (auto &counter : shared->counters) pg_atomic_init_u64(&counter, 0);
    pg_atomic_init_u64(&shared->reset_at, static_cast<uint64>(GetCurrentTimestamp()));
  }
  g_shared = shared;
}

void StatsAdd(StatCounter counter, uint64_t n) noexcept {
  if (g_shared != nullptr) pg_atomic_fetch_add_u64(&g_shared->counters[counter], n);
}

void StatsSet(StatCounter counter, uint64_t value) noexcept {
  if (g_shared != nullptr) pg_atomic_write_u64(&g_shared->counters[counter], value);
}

bool StatsAvailable() noexcept { return g_shared != nullptr; }

namespace {

// Output columns of cache_stats(), in order (see fastpgcache--1.0.sql).
enum StatsColumn {
  kColSharedMemory,
  kColHits,
  kColMisses,
  kColSets,
  kColDeletes,
  kColExpiredByWorker,
  kColRemovedByCleanup,
  kColWorkerCycles,
  kColWorkerPasses,
  kColLastCycleMs,
  kColLastCycleRows,
  kColLastPassMs,
  kColEntriesEstimate,
  kColTableBytes,
  kColIndexBytes,
  kColStatsReset,
  kColCount10,  // 1.0 ends here
  kColEvicted = kColCount10,
  kColExpiredByEviction,
  kColEntries,
  kColDataBytes,
  kColCount
};

}  // namespace

// Only PostgreSQL calls and plain data: it runs as one guarded step.
Datum BuildStatsRow(FunctionCallInfo fcinfo) {
  TupleDesc tupdesc;
  if (get_call_result_type(fcinfo, nullptr, &tupdesc) != TYPEFUNC_COMPOSITE)
    elog(ERROR, "fastpgcache: cache_stats() must return a composite type");
  tupdesc = BlessTupleDesc(tupdesc);
  // 1.0's function has the first columns only (the library serves both).
  if (tupdesc->natts != kColCount && tupdesc->natts != kColCount10)
    elog(ERROR, "fastpgcache: cache_stats() has %d columns, expected %d", tupdesc->natts, static_cast<int>(kColCount));

  Datum values[kColCount];
  bool nulls[kColCount];
  for (int i = 0; i < kColCount; i++) {
    values[i] = 0;
    nulls[i] = true;
  }

  values[kColSharedMemory] = BoolGetDatum(g_shared != nullptr);
  nulls[kColSharedMemory] = false;
  if (g_shared != nullptr) {
    uint64 c[kStatCount];
    for (int i = 0; i < kStatCount; i++) c[i] = pg_atomic_read_u64(&g_shared->counters[i]);
    const int counter_cols[][2] = {{kColHits, kStatHits},
                                   {kColMisses, kStatMisses},
                                   {kColSets, kStatSets},
                                   {kColDeletes, kStatDeletes},
                                   {kColExpiredByWorker, kStatExpiredByWorker},
                                   {kColRemovedByCleanup, kStatRemovedByCleanup},
                                   {kColWorkerCycles, kStatWorkerCycles},
                                   {kColWorkerPasses, kStatWorkerPasses},
                                   {kColLastCycleRows, kStatLastCycleRows},
                                   {kColEvicted, kStatEvicted},
                                   {kColExpiredByEviction, kStatExpiredByEviction}};
    for (const auto &pair : counter_cols) {
      values[pair[0]] = Int64GetDatum(static_cast<int64>(c[pair[1]]));
      nulls[pair[0]] = false;
    }
    values[kColLastCycleMs] = Float8GetDatum(static_cast<double>(c[kStatLastCycleMicros]) / 1000.0);
    nulls[kColLastCycleMs] = false;
    values[kColLastPassMs] = Float8GetDatum(static_cast<double>(c[kStatLastPassMicros]) / 1000.0);
    nulls[kColLastPassMs] = false;
    values[kColStatsReset] = TimestampTzGetDatum(static_cast<TimestampTz>(pg_atomic_read_u64(&g_shared->reset_at)));
    nulls[kColStatsReset] = false;
  }

  // The table lives in the schema of this function.
  Oid nsp = get_func_namespace(fcinfo->flinfo->fn_oid);
  Oid relid = get_relname_relid("cache_entries", nsp);
  if (OidIsValid(relid)) {
    // n_live_tup of the cumulative statistics: an estimate, updated about a
    // second after each commit, that counts expired rows not yet removed.
    int64 live = DatumGetInt64(DirectFunctionCall1(pg_stat_get_live_tuples, ObjectIdGetDatum(relid)));
    values[kColEntriesEstimate] = Int64GetDatum(live < 0 ? 0 : live);
    nulls[kColEntriesEstimate] = false;
    values[kColTableBytes] = DirectFunctionCall1(pg_table_size, ObjectIdGetDatum(relid));
    nulls[kColTableBytes] = false;
    values[kColIndexBytes] = DirectFunctionCall1(pg_indexes_size, ObjectIdGetDatum(relid));
    nulls[kColIndexBytes] = false;
  }
  if (eviction::Counted()) {
    eviction::Counts counts = eviction::Current();
    values[kColEntries] = Int64GetDatum(counts.entries);
    nulls[kColEntries] = false;
    values[kColDataBytes] = Int64GetDatum(counts.bytes);
    nulls[kColDataBytes] = false;
  }
  return HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls));
}


bool StatsReset() {
  if (g_shared == nullptr) {
    Guarded([] {
      ereport(NOTICE, (errmsg("fastpgcache counters are not available"),
                       errdetail("The counters live in shared memory, which needs "
                                 "shared_preload_libraries = 'fastpgcache'.")));
    });
    return false;
  }
  for (auto &counter : g_shared->counters) pg_atomic_write_u64(&counter, 0);
  pg_atomic_write_u64(&g_shared->reset_at, static_cast<uint64>(GetCurrentTimestamp()));
  return true;
}

}  // namespace fastpgcache

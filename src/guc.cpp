// Every fastpgcache.* setting in one place.

#include "pg_bridge.hpp"

extern "C" {
#include "miscadmin.h"
#include "utils/guc.h"
}

#include "guc.hpp"

namespace fastpgcache {
namespace guc {

bool index_scan_reads = true;
bool direct_writes = true;
char *database = nullptr;
bool worker_enabled = true;
int cleanup_interval_ms = 1000;
int cleanup_batch_size = 1000;
int cleanup_max_time_ms = 100;

}  // namespace guc

void DefineSettings() {
  DefineCustomBoolVariable("fastpgcache.index_scan_reads",
                           "Reads probe the key_hash index directly instead of running their SQL through SPI.",
                           "Both give the same results; the index probe is faster. Reads use SQL anyway when "
                           "the table has row level security or the caller has only column privileges.",
                           &guc::index_scan_reads, true, PGC_USERSET, 0, nullptr, nullptr, nullptr);
  DefineCustomBoolVariable("fastpgcache.direct_writes",
                           "cache_set overwrites an existing row in place instead of running UPDATE through SPI.",
                           "Both give the same results; the direct update is faster. Sets use SQL anyway when the "
                           "table has triggers, row level security, CHECK constraints or another index.",
                           &guc::direct_writes, true, PGC_USERSET, 0, nullptr, nullptr, nullptr);
  // PGC_POSTMASTER variables can only be defined while preloading (defining
  // one later is FATAL); they only matter for the preloaded worker anyway.
  if (process_shared_preload_libraries_in_progress) {
    DefineCustomStringVariable("fastpgcache.database", "Database in which the preloaded expiry worker runs.",
                               nullptr, &guc::database, "postgres", PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
    DefineCustomBoolVariable("fastpgcache.worker_enabled",
                             "Starts the expiry worker with the server (needs shared_preload_libraries).", nullptr,
                             &guc::worker_enabled, true, PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
  }
  DefineCustomIntVariable("fastpgcache.cleanup_interval", "Sleep between expiry worker cycles.", nullptr,
                          &guc::cleanup_interval_ms, 1000, 10, 86400000, PGC_SIGHUP, GUC_UNIT_MS, nullptr, nullptr,
                          nullptr);
  DefineCustomIntVariable("fastpgcache.cleanup_batch_size",
                          "Most rows the expiry worker deletes in one transaction.", nullptr,
                          &guc::cleanup_batch_size, 1000, 1, 1000000, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
  DefineCustomIntVariable("fastpgcache.cleanup_max_time", "Most time one expiry worker cycle may take.", nullptr,
                          &guc::cleanup_max_time_ms, 100, 1, 60000, PGC_SIGHUP, GUC_UNIT_MS, nullptr, nullptr,
                          nullptr);
  MarkGUCPrefixReserved("fastpgcache");
}

}  // namespace fastpgcache

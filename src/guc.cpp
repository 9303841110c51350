// Every fastpgcache.* setting in one place.

#include "pg_bridge.hpp"

extern "C" {
#include "miscadmin.h"
#include "utils/guc.h"
}

#include <climits>

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
int resp_port = 0;
char *resp_listen_addresses = nullptr;
char *resp_unix_socket = nullptr;
char *resp_database = nullptr;
int resp_workers = 1;
int resp_max_clients = 10000;
int resp_max_bulk_kb = 512 * 1024;
int resp_output_buffer_kb = 256 * 1024;
char *resp_default_user = nullptr;
int resp_idle_timeout_s = 0;
int resp_command_timeout_ms = 5000;
int max_entries = 0;
int max_size_kb = 0;
int eviction_policy = 0;
int eviction_memory_kb = 8 * 1024;

namespace {

// fastpgcache.eviction_policy: Redis's names (eviction::Policy's order).
const struct config_enum_entry kPolicies[] = {
    {"allkeys-lru", 0, false},   {"volatile-lru", 1, false}, {"allkeys-random", 2, false},
    {"volatile-ttl", 3, false},  {"noeviction", 4, false},   {nullptr, 0, false}};

}  // namespace
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
  if (process_shared_preload_libraries_in_progress) {
    DefineCustomIntVariable("fastpgcache.resp_port",
                            "TCP port of the Redis-protocol front (0: off).",
                            "Needs shared_preload_libraries; commands run against the cache of fastpgcache.resp_database.",
                            &guc::resp_port, 0, 0, 65535, PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
    DefineCustomStringVariable("fastpgcache.resp_listen_addresses",
                               "Addresses the Redis-protocol front listens on (comma-separated; * for all).", nullptr,
                               &guc::resp_listen_addresses, "127.0.0.1", PGC_POSTMASTER, 0, nullptr, nullptr,
                               nullptr);
    DefineCustomStringVariable("fastpgcache.resp_unix_socket",
                               "Unix socket of the Redis-protocol front (empty: none).", nullptr,
                               &guc::resp_unix_socket, "", PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
    DefineCustomStringVariable("fastpgcache.resp_database",
                               "Database whose cache the Redis-protocol front serves (empty: fastpgcache.database).",
                               nullptr, &guc::resp_database, "", PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("fastpgcache.resp_workers",
                            "Processes serving the Redis protocol (they share the port).", nullptr,
                            &guc::resp_workers, 1, 1, 64, PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("fastpgcache.resp_max_clients", "Most clients one Redis-protocol worker serves.",
                            nullptr, &guc::resp_max_clients, 10000, 1, 1000000, PGC_POSTMASTER, 0, nullptr,
                            nullptr, nullptr);
    DefineCustomIntVariable("fastpgcache.resp_max_bulk_len", "Largest bulk string a client may send.", nullptr,
                            &guc::resp_max_bulk_kb, 512 * 1024, 1, 1024 * 1024, PGC_POSTMASTER, GUC_UNIT_KB,
                            nullptr, nullptr, nullptr);
    DefineCustomIntVariable("fastpgcache.resp_client_output_buffer_limit",
                            "Largest output a client may leave unread before it is disconnected (0: none).", nullptr,
                            &guc::resp_output_buffer_kb, 256 * 1024, 0, 4 * 1024 * 1024, PGC_POSTMASTER,
                            GUC_UNIT_KB, nullptr, nullptr, nullptr);
    DefineCustomStringVariable("fastpgcache.resp_default_user",
                               "The role that AUTH with a password alone logs in as (empty: none).", nullptr,
                               &guc::resp_default_user, "", PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
  }
  DefineCustomIntVariable("fastpgcache.resp_idle_timeout",
                          "Redis-protocol clients idle this long are disconnected (0: never).", nullptr,
                          &guc::resp_idle_timeout_s, 0, 0, 86400 * 365, PGC_SIGHUP, GUC_UNIT_S, nullptr, nullptr,
                          nullptr);
  DefineCustomIntVariable("fastpgcache.resp_command_timeout",
                          "Most time one Redis-protocol command may take, lock waits included (0: none).", nullptr,
                          &guc::resp_command_timeout_ms, 5000, 0, 3600 * 1000, PGC_SIGHUP, GUC_UNIT_MS, nullptr,
                          nullptr, nullptr);
  DefineCustomIntVariable("fastpgcache.cleanup_interval", "Sleep between expiry worker cycles.", nullptr,
                          &guc::cleanup_interval_ms, 1000, 10, 86400000, PGC_SIGHUP, GUC_UNIT_MS, nullptr, nullptr,
                          nullptr);
  DefineCustomIntVariable("fastpgcache.cleanup_batch_size",
                          "Most rows the expiry worker deletes in one transaction.", nullptr,
                          &guc::cleanup_batch_size, 1000, 1, 1000000, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
  DefineCustomIntVariable("fastpgcache.cleanup_max_time", "Most time one expiry worker cycle may take.", nullptr,
                          &guc::cleanup_max_time_ms, 100, 1, 60000, PGC_SIGHUP, GUC_UNIT_MS, nullptr, nullptr,
                          nullptr);
  DefineCustomIntVariable("fastpgcache.max_entries",
                          "Most entries the cache keeps (0: no limit); beyond it, entries are evicted.",
                          "Expired entries count until they are removed. Per database: ALTER DATABASE ... SET.",
                          &guc::max_entries, 0, 0, INT_MAX, PGC_SUSET, 0, nullptr, nullptr, nullptr);
  DefineCustomIntVariable("fastpgcache.max_size",
                          "Most bytes of data the cache keeps (0: no limit); beyond it, entries are evicted.",
                          "What counts: for each entry, its key and value in bytes plus 80 (see README.md).",
                          &guc::max_size_kb, 0, 0, INT_MAX, PGC_SUSET, GUC_UNIT_KB, nullptr, nullptr, nullptr);
  DefineCustomEnumVariable("fastpgcache.eviction_policy", "Which entries go when the cache is over its limit.",
                           "Redis's policies: allkeys-lru, volatile-lru, allkeys-random, volatile-ttl, noeviction.",
                           &guc::eviction_policy, 0, guc::kPolicies, PGC_SUSET, 0, nullptr, nullptr, nullptr);
  if (process_shared_preload_libraries_in_progress) {
    DefineCustomIntVariable("fastpgcache.eviction_memory",
                            "Shared memory for the access counters of LRU eviction (0: none, evict in FIFO order).",
                            "One byte per counter; eight counters per entry of the limit keep LRU near exact.",
                            &guc::eviction_memory_kb, 8 * 1024, 0, 1024 * 1024, PGC_POSTMASTER, GUC_UNIT_KB,
                            nullptr, nullptr, nullptr);
  }
  MarkGUCPrefixReserved("fastpgcache");
}

}  // namespace fastpgcache

// Every fastpgcache.* setting: the variables the code reads, and
// DefineSettings(), which registers them all (guc.cpp). Pure C++
// declarations; the variables are plain data, constant-initialised.
#pragma once

namespace fastpgcache {
namespace guc {

// Reads probe the key_hash index directly (USERSET).
extern bool index_scan_reads;
// cache_set overwrites an existing row in place (USERSET).
extern bool direct_writes;
// Database of the preloaded worker (POSTMASTER; defined only when preloading).
extern char *database;
// Start the preloaded worker (POSTMASTER; defined only when preloading).
extern bool worker_enabled;
// Worker timing (SIGHUP).
extern int cleanup_interval_ms;
extern int cleanup_batch_size;
extern int cleanup_max_time_ms;

// The Redis-protocol front (POSTMASTER unless noted; defined only when
// preloading, see resp_worker/).
extern int resp_port;                 // 0: off
extern char *resp_listen_addresses;   // comma-separated; "*" all
extern char *resp_unix_socket;        // empty: none
extern char *resp_database;           // empty: fastpgcache.database
extern int resp_workers;
extern int resp_max_clients;
extern int resp_max_bulk_kb;          // the largest bulk string, in kB
extern int resp_output_buffer_kb;     // per client; 0: unlimited
extern char *resp_default_user;       // the role AUTH <password> logs in as; empty: none
extern int resp_idle_timeout_s;       // SIGHUP; 0: never
extern int resp_command_timeout_ms;   // SIGHUP; 0: none

// Bounded size (eviction/): limits and policy (SUSET: postgresql.conf,
// ALTER DATABASE/ROLE ... SET, or a superuser's SET), and the shared memory
// of the access counters (POSTMASTER; defined only when preloading).
extern int max_entries;         // 0: no limit
extern int max_size_kb;         // 0: no limit
extern int eviction_policy;     // eviction::Policy
extern int eviction_memory_kb;  // 0: no access counters (FIFO)

}  // namespace guc

// Called from _PG_init: defines every setting and reserves the prefix.
void DefineSettings();

}  // namespace fastpgcache

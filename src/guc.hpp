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

}  // namespace guc

// Called from _PG_init: defines every setting and reserves the prefix.
void DefineSettings();

}  // namespace fastpgcache

// The cache functions (src/cache.cpp). Pure C++ declarations.
#pragma once

namespace fastpgcache {

// Defines the cache functions' settings (fastpgcache.index_scan_reads).
// Called from _PG_init.
void DefineCacheSettings();

}  // namespace fastpgcache

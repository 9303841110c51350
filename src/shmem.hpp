// The extension's shared memory: what shmem.cpp reserves and creates when
// the library is preloaded (the counters of stats.cpp, the state of
// eviction/). Pure C++ declarations.
#pragma once

namespace fastpgcache {

// Called from _PG_init: installs the shared-memory hooks when the library is
// being preloaded; otherwise does nothing (no shared memory then).
void InstallShmemHooks();

}  // namespace fastpgcache

// The shared-memory layout of eviction (see eviction.hpp). Internal to
// src/eviction/.
#pragma once

#include "eviction/eviction.hpp"

extern "C" {
#include "port/atomics.h"
}

namespace fastpgcache {
namespace eviction {

constexpr int kMaxDatabases = 8;

// One database's state. Signed quantities are kept as the uint64 of their
// two's complement (atomic adds of negative deltas wrap correctly).
struct DbState {
  pg_atomic_uint32 dboid;           // 0: free
  pg_atomic_uint32 counted;         // a recount has set entries/bytes
  pg_atomic_uint64 entries;
  pg_atomic_uint64 bytes;
  pg_atomic_uint64 hand;            // ItemPointer as (block << 16) | offset
  pg_atomic_uint64 help_block;      // next block a helping writer claims
  pg_atomic_uint64 deleted;         // rows the evictor deleted (writers and worker): the worker's VACUUM trigger
  pg_atomic_uint64 floor_pass;      // earliest expiry kept by the last full pass (TimestampTz)
  pg_atomic_uint64 floor_writes[2]; // earliest expiry written in this and the previous pass period
  pg_atomic_uint32 period;          // which floor_writes is this period's
};

struct SharedState {
  uint64 nslots;  // access counters: one byte each, four per word
  DbState dbs[kMaxDatabases];
  pg_atomic_uint32 counters[FLEXIBLE_ARRAY_MEMBER];
};

// The shared state, or null (not preloaded).
extern SharedState *g_state;

// This database's slot, or null (no shared memory, or every slot taken).
DbState *MyDb() noexcept;

inline int64 AsSigned(uint64 v) { return static_cast<int64>(v); }
inline uint64 AsUnsigned(int64 v) { return static_cast<uint64>(v); }

}  // namespace eviction
}  // namespace fastpgcache

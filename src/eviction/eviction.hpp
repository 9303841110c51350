// Bounded size: fastpgcache.max_entries / fastpgcache.max_size with
// Redis's eviction policies, and recency that never writes the table.
//
//   recency.cpp     a 2-bit access counter with a 6-bit tag per slot of a
//                   shared array indexed by key_hash: set by reads (one
//                   compare-and-swap, no table write), lowered by the
//                   evictor's hand: CLOCK with two bits over the heap
//   accounting.cpp  entries and bytes per database in shared memory, moved
//                   by each transaction's changes when it commits; the
//                   expiry floor that says whether an expired entry may
//                   exist anywhere
//   evictor.cpp     one step of eviction: a hand sweeps the heap in TID
//                   ranges, deleting expired entries first, then what the
//                   policy picks; run by the worker, and by writers that
//                   find the cache over its limit (bounded work)
//
// Without shared_preload_libraries there is no shared memory: no recency
// (the hand deletes what it meets: FIFO in heap order) and the counts are
// estimates from the statistics system (see Counts()).
//
// A backend header.
#pragma once

#include "pg_bridge.hpp"

extern "C" {
#include "storage/itemptr.h"
#include "utils/timestamp.h"
}

#include <cstddef>
#include <cstdint>

namespace fastpgcache {
namespace eviction {

// fastpgcache.eviction_policy, Redis's names.
enum class Policy : int { kAllKeysLru = 0, kVolatileLru, kAllKeysRandom, kVolatileTtl, kNoEviction };

// What an entry costs besides its key and value bytes: the tuple header,
// key_hash, expiry and kind, varlena headers, the line pointer and the
// primary key's index entry. max_size counts sum(key + value + this).
constexpr int64 kEntryOverhead = 80;

// The size max_size counts for an entry with these key and value lengths.
inline int64 EntrySize(int64 key_bytes, int64 value_bytes) { return key_bytes + value_bytes + kEntryOverhead; }

// The length in bytes of a varlena datum as octet_length() counts it
// (uncompressed, without its header), without detoasting it.
int64 DatumBytes(Datum varlena);

// ------------------------------------------------------------- shared memory

// Bytes of shared memory to request (at preload).
std::size_t ShmemSize();
// Creates or attaches the structures (shmem_startup_hook, AddinShmemInitLock held).
void ShmemInit();
// True when shared memory exists (preloaded).
bool Shared() noexcept;

// -------------------------------------------------------------- recency.cpp

// True when access counters exist (preloaded, fastpgcache.eviction_memory > 0).
bool Tracking() noexcept;
// A read found the entry: count the access.
void Touch(const uint8_t *key_hash) noexcept;
// A new entry was inserted: take a free slot for it (counter 0).
void NoteInsert(const uint8_t *key_hash) noexcept;
// The hand passes the entry: true if it was used since the last pass (its
// counter, now lowered by one, was above 0): spare it.
bool TakeSecondChance(const uint8_t *key_hash) noexcept;

// ----------------------------------------------------------- accounting.cpp

struct Counts {
  int64 entries = 0;
  int64 bytes = 0;
  bool exact = false;  // false: estimates (no shared memory, or not counted yet)
};

// This database's entries and bytes as this transaction sees them:
// committed changes plus its own pending ones.
Counts Current();
// Records a change made by this transaction (applied when it commits).
void AddPending(int64 entries, int64 bytes) noexcept;
// This transaction's changes so far (what Current() adds).
Counts Pending() noexcept;
// The worker's exact recount (replaces the committed counts).
void SetCounted(int64 entries, int64 bytes) noexcept;
// True once a recount has set the counts since the server started.
bool Counted() noexcept;

// A write gave an entry this expiry: lowers the floor.
void NoteExpiry(TimestampTz expires_at) noexcept;
// True if an entry may be expired now somewhere in the table (the floor is
// not in the future). Without shared memory: always true.
bool MayHaveExpired(TimestampTz now) noexcept;
// The worker's expiry sweep: a full pass starts / ends. `pass_min` is the
// earliest expiry among the entries the pass kept (DT_NOEND if none);
// `trusted` is true when no transaction older than the pass's start was
// still running when it began scanning (it then saw every row written
// before), and only then does the floor rise (see accounting.cpp).
void PassStarted() noexcept;
void PassEnded(TimestampTz pass_min, bool trusted) noexcept;

// The hand of this database's evictor, a TID; writers' help ranges.
ItemPointerData Hand() noexcept;
void SetHand(ItemPointerData tid) noexcept;
// Claims `blocks` blocks for a helping writer: the first of them.
uint32 ClaimHelpRange(uint32 blocks, uint32 nblocks) noexcept;
// The rows the evictor deleted in this database, writers and worker alike
// (a deletion rolled back afterwards still counts): the worker reads the
// total to know when VACUUM is due. Both are false without shared memory.
bool NoteDeleted(int64 n) noexcept;
bool DeletedTotal(uint64 *total) noexcept;

// --------------------------------------------------------------- limits

struct Limits {
  int64 max_entries = 0;  // 0: none
  int64 max_bytes = 0;    // 0: none
  Policy policy = Policy::kAllKeysLru;
  bool Any() const { return max_entries > 0 || max_bytes > 0; }
};
Limits CurrentLimits() noexcept;

// How far `counts` is over `limits`, in entries and bytes (0 if under).
struct Excess {
  int64 entries = 0;
  int64 bytes = 0;
  bool Any() const { return entries > 0 || bytes > 0; }
};
Excess Over(const Counts &counts, const Limits &limits, double slack = 0.0);

// ------------------------------------------------------------- evictor.cpp

struct StepResult {
  int64 deleted = 0;        // entries deleted (expired ones included)
  int64 expired = 0;        // of which expired
  int64 bytes = 0;          // their size
  int64 examined = 0;       // rows looked at
  bool wrapped = false;     // the hand passed the end of the table
  bool candidates = false;  // the policy found anything it may evict
};

// One bounded step of eviction in the cache table of `schema`, in the
// caller's transaction and with the caller's rights: examines at most
// `max_blocks` blocks from the hand (a helping writer: from a range of its
// own), deletes the expired entries it meets, and, while `want` is not met
// and `live_allowed`, the live entries the policy picks. Never waits for a
// row lock (SKIP LOCKED). Raises errors (C++ exceptions).
StepResult Step(Oid schema, const Excess &want, int max_blocks, bool helper, bool live_allowed);

// Counts every entry and its bytes (as the caller sees the table) and makes
// that this database's counts (SetCounted). The worker's, now and then.
void Recount(Oid schema);

// Called by every write path after it changed the table: when the cache is
// over its limit, evicts a bounded amount in this transaction (writers help
// the worker), or, under noeviction (or a volatile policy with nothing to
// evict), refuses with 53400 naming the setting, which undoes the write.
// `added` is how many entries this call added.
void AfterWrite(Oid schema, int64 added);

}  // namespace eviction
}  // namespace fastpgcache

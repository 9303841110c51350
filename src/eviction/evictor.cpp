// One step of eviction (see eviction.hpp), and what every write does after
// it changed the table (AfterWrite: writers help; noeviction refuses).
//
// A step looks at the rows of a range of the heap in physical order (a TID
// range scan through a kept plan), picks its victims in C++ and deletes them
// with one DELETE ... FOR UPDATE SKIP LOCKED: a victim that someone holds is
// skipped, never waited for, so eviction cannot deadlock with cache_set, the
// expiry worker or another evictor. A victim updated since it was looked at
// has another ctid by then and is not deleted. Expired rows are always
// victims, and come first; live ones only while the caller says so (no
// expired row may exist elsewhere: accounting.cpp) and the policy picks them:
//   allkeys-lru   the hand's second chance (recency.cpp); without shared
//                 memory, every row it meets (FIFO in heap order)
//   volatile-lru  the same among rows with an expiry
//   allkeys-random every row it meets, without regard to reads (the
//                 worker's hand in heap order, writers from random ranges)
//   volatile-ttl  the rows of the range that expire soonest
//   noeviction    none
// The worker's hand keeps its position (a TID) in shared memory; a helping
// writer claims a range of its own (a random one under allkeys-random or
// without shared memory).

#include "eviction/eviction.hpp"

extern "C" {
#include "access/table.h"
#include "catalog/pg_type.h"
#include "common/pg_prng.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/bufmgr.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/fmgrprotos.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/uuid.h"
}

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "cache.hpp"
#include "guc.hpp"
#include "stats.hpp"

namespace fastpgcache {
namespace eviction {
namespace {

struct Candidate {
  ItemPointerData tid;
  TimestampTz expires_at;
  bool expires;
  int64 size;
};

const char *PolicyName(Policy p) {
  switch (p) {
    case Policy::kAllKeysLru:
      return "allkeys-lru";
    case Policy::kVolatileLru:
      return "volatile-lru";
    case Policy::kAllKeysRandom:
      return "allkeys-random";
    case Policy::kVolatileTtl:
      return "volatile-ttl";
    case Policy::kNoEviction:
      return "noeviction";
  }
  return "?";
}

// The table's size in blocks.
BlockNumber TableBlocks() {
  return Guarded([] {
    Relation rel = try_table_open(g_table.relid, AccessShareLock);
    if (rel == nullptr) return static_cast<BlockNumber>(0);
    BlockNumber n = RelationGetNumberOfBlocks(rel);
    table_close(rel, AccessShareLock);
    return n;
  });
}

// Counts without shared memory (or before the worker counted): the
// statistics system's live rows, and the table's size on disk (heap and
// TOAST), plus this transaction's own changes: estimates.
// The statistics lag anyway: a backend reads them at most every 100 ms
// (pg_table_size looks at the files).
struct EstimateCache {
  Oid relid;
  TimestampTz at;
  int64 live;
  int64 bytes;
};
EstimateCache g_estimate = {};

Counts Estimated() {
  Counts c = Pending();
  TimestampTz now = GetCurrentTimestamp();
  if (g_estimate.relid != g_table.relid || now - g_estimate.at > 100 * 1000 || now < g_estimate.at) {
    Oid relid = g_table.relid;
    int64 live = Guarded([&] { return DatumGetInt64(DirectFunctionCall1(pg_stat_get_live_tuples, ObjectIdGetDatum(relid))); });
    int64 dead = Guarded([&] { return DatumGetInt64(DirectFunctionCall1(pg_stat_get_dead_tuples, ObjectIdGetDatum(relid))); });
    int64 disk = Guarded([&] { return DatumGetInt64(DirectFunctionCall1(pg_table_size, ObjectIdGetDatum(relid))); });
    // Bytes: the live rows' share of the table's size on disk (the dead
    // rows of evicted entries take space until VACUUM, not from the cache).
    g_estimate = EstimateCache{relid, now, live,
                               live > 0 ? static_cast<int64>(static_cast<double>(disk) * static_cast<double>(live) /
                                                             static_cast<double>(live + dead))
                                        : 0};
  }
  c.entries += g_estimate.live;
  c.bytes += g_estimate.bytes;
  c.exact = false;
  return c;
}

// The most 8-block ranges a helping writer examines for one write.
constexpr int kHelpRanges = 4;

// Exact counts once the worker has counted this database's entries;
// estimates before (or without shared memory).
Counts Now() {
  if (Counted()) return Current();
  return Estimated();
}

}  // namespace

StepResult Step(Oid schema, const Excess &want, int max_blocks, bool helper, bool live_allowed) {
  StepResult result;
  EnsurePlans(schema);
  Limits limits = CurrentLimits();
  BlockNumber nblocks = TableBlocks();
  if (nblocks == 0) {
    result.wrapped = true;
    return result;
  }
  // The range: the worker's hand, or a helper's own blocks.
  ItemPointerData from;
  if (helper) {
    BlockNumber start = Shared() && limits.policy != Policy::kAllKeysRandom
                            ? ClaimHelpRange(static_cast<uint32>(max_blocks), nblocks)
                            : static_cast<BlockNumber>(pg_prng_uint64_range(&pg_global_prng_state, 0, nblocks - 1));
    ItemPointerSet(&from, start, 0);
  } else {
    from = Hand();
    if (ItemPointerGetBlockNumberNoCheck(&from) >= nblocks) ItemPointerSet(&from, 0, 0);
  }
  BlockNumber start_block = ItemPointerGetBlockNumberNoCheck(&from);
  BlockNumber end_block = nblocks - start_block > static_cast<BlockNumber>(max_blocks)
                              ? start_block + static_cast<BlockNumber>(max_blocks)
                              : nblocks;
  ItemPointerData to;
  ItemPointerSet(&to, end_block, 0);

  // The rows of the range, in heap order.
  std::vector<Candidate> rows;
  std::vector<pg_uuid_t> hashes;
  {
    SpiCall spi;
    Datum args[2] = {PointerGetDatum(&from), PointerGetDatum(&to)};
    uint64 n = spi.Execute(kEvictScan, args, nullptr, 0);
    if (n > 0) spi.CheckColumnType(3, "expires_at", TIMESTAMPTZOID);
    rows.reserve(n);
    hashes.reserve(n);
    for (uint64 i = 0; i < n; i++) {
      bool isnull;
      Candidate c;
      c.tid = *reinterpret_cast<ItemPointer>(DatumGetPointer(spi.Column(i, 1, &isnull)));
      pg_uuid_t h;
      std::memcpy(h.data, DatumGetUUIDP(spi.Column(i, 2, &isnull))->data, UUID_LEN);
      Datum e = spi.Column(i, 3, &isnull);
      c.expires = !isnull;
      c.expires_at = isnull ? 0 : DatumGetTimestampTz(e);
      Datum sz = spi.Column(i, 4, &isnull);
      c.size = isnull ? 0 : DatumGetInt64(sz);
      rows.push_back(c);
      hashes.push_back(h);
    }
    spi.Finish();
  }

  // Victims: every expired row first, then what the policy picks, in heap
  // order, until `want` is met.
  TimestampTz now = GetCurrentTimestamp();
  int64 need_entries = want.entries, need_bytes = want.bytes;
  std::vector<ItemPointerData> victims;
  std::vector<bool> chosen(rows.size(), false);
  for (std::size_t i = 0; i < rows.size(); i++) {
    if (rows[i].expires && rows[i].expires_at <= now) {
      chosen[i] = true;
      victims.push_back(rows[i].tid);
      need_entries--;
      need_bytes -= EntrySize(0, rows[i].size);
    }
  }
  std::size_t stop = rows.size();  // first row the hand did not examine
  if (live_allowed && (need_entries > 0 || need_bytes > 0) && limits.policy != Policy::kNoEviction) {
    if (limits.policy == Policy::kVolatileTtl) {
      std::vector<std::size_t> order;
      for (std::size_t i = 0; i < rows.size(); i++)
        if (!chosen[i] && rows[i].expires) order.push_back(i);
      std::sort(order.begin(), order.end(),
                [&](std::size_t a, std::size_t b) { return rows[a].expires_at < rows[b].expires_at; });
      result.candidates = !order.empty();
      for (std::size_t i : order) {
        if (need_entries <= 0 && need_bytes <= 0) break;
        chosen[i] = true;
        victims.push_back(rows[i].tid);
        need_entries--;
        need_bytes -= EntrySize(0, rows[i].size);
      }
    } else {
      for (std::size_t i = 0; i < rows.size(); i++) {
        if (need_entries <= 0 && need_bytes <= 0) {
          stop = i;
          break;
        }
        if (chosen[i]) continue;
        if (limits.policy == Policy::kVolatileLru && !rows[i].expires) continue;
        result.candidates = true;
        if ((limits.policy == Policy::kAllKeysLru || limits.policy == Policy::kVolatileLru) &&
            TakeSecondChance(hashes[i].data))
          continue;
        chosen[i] = true;
        victims.push_back(rows[i].tid);
        need_entries--;
        need_bytes -= EntrySize(0, rows[i].size);
      }
    }
  }
  result.examined = static_cast<int64>(stop);

  // Delete them, skipping any that someone holds.
  if (!victims.empty()) {
    CheckWritable("fastpgcache eviction");
    // tid is passed by reference: each element a pointer to one.
    std::vector<Datum> elems(victims.size());
    for (std::size_t i = 0; i < victims.size(); i++) elems[i] = PointerGetDatum(&victims[i]);
    Datum array = Guarded([&] {
      return PointerGetDatum(construct_array(elems.data(), static_cast<int>(elems.size()), TIDOID,
                                             sizeof(ItemPointerData), false, TYPALIGN_SHORT));
    });
    Datum args[2] = {array, TimestampTzGetDatum(now)};
    SpiCall spi;
    uint64 n = spi.Execute(kEvictDelete, args, nullptr, 0);
    for (uint64 i = 0; i < n; i++) {
      bool isnull;
      bool expired = DatumGetBool(spi.Column(i, 1, &isnull));
      Datum sz = spi.Column(i, 2, &isnull);
      result.deleted++;
      if (expired) result.expired++;
      result.bytes += EntrySize(0, isnull ? 0 : DatumGetInt64(sz));
    }
    spi.Finish();
    AddPending(-result.deleted, -result.bytes);
    NoteDeleted(result.deleted);
    StatsAdd(kStatEvicted, static_cast<uint64>(result.deleted - result.expired));
    StatsAdd(helper ? kStatExpiredByEviction : kStatExpiredByWorker, static_cast<uint64>(result.expired));
  }

  // The worker's hand moves past what it examined.
  if (!helper) {
    ItemPointerData next = stop < rows.size() ? rows[stop].tid : to;
    if (ItemPointerGetBlockNumberNoCheck(&next) >= nblocks) {
      ItemPointerSet(&next, 0, 0);
      result.wrapped = true;
    }
    SetHand(next);
  }
  return result;
}

void Recount(Oid schema) {
  EnsurePlans(schema);
  SpiCall spi;
  spi.Execute(kRecount, nullptr, nullptr, 1);
  bool isnull;
  int64 entries = DatumGetInt64(spi.Column(0, 1, &isnull));
  Datum bytes = spi.Column(0, 2, &isnull);
  spi.Finish();
  SetCounted(entries, (isnull ? 0 : DatumGetInt64(bytes)) + entries * kEntryOverhead);
}

void AfterWrite(Oid schema, int64 added) {
  Limits limits = CurrentLimits();
  if (!limits.Any()) return;
  bool noeviction = limits.policy == Policy::kNoEviction;
  // Writers help when the cache is over its limit (noeviction: at all,
  // others: by more than 1%), with bounded work: at most twice what this
  // write added (the worker does the rest).
  Counts counts = Now();
  Excess over = Over(counts, limits, noeviction ? 0.0 : 0.01);
  if (!over.Any()) return;
  bool may_delete = OidIsValid(g_table.relid) && Guarded([] {
    Oid user = GetUserId();
    return pg_class_aclcheck(g_table.relid, user, ACL_SELECT) == ACLCHECK_OK &&
           pg_class_aclcheck(g_table.relid, user, ACL_UPDATE) == ACLCHECK_OK &&
           pg_class_aclcheck(g_table.relid, user, ACL_DELETE) == ACLCHECK_OK;
  });
  StepResult step;
  // Expired entries first: live ones only when none may exist anywhere
  // (accounting.cpp), and never under noeviction. Without the worker's
  // counts (no shared memory, or no worker in this database) that is not
  // known: the range's expired entries go first, then live ones.
  bool live_allowed = !noeviction && (!counts.exact || !MayHaveExpired(GetCurrentTimestamp()));
  if (may_delete) {  // else the worker evicts: this role could not
    int64 budget = added > 0 ? 2 * added : 1;
    Excess want;
    want.entries = std::min(over.entries, budget);
    want.bytes = over.bytes > 0 ? std::min(over.bytes, budget * EntrySize(64, 1024)) : 0;
    // Ranges of 8 blocks, up to kHelpRanges of them while the budget is not
    // met: under a write flood most rows of a range may be dead ones that
    // VACUUM has not reclaimed yet.
    for (int r = 0; r < kHelpRanges && (want.entries > 0 || want.bytes > 0); r++) {
      StepResult s = Step(schema, want, 8, true, live_allowed);
      step.deleted += s.deleted;
      step.expired += s.expired;
      step.bytes += s.bytes;
      step.examined += s.examined;
      step.candidates = step.candidates || s.candidates;
      if (s.wrapped) break;  // an empty table
      want.entries -= s.deleted;
      want.bytes -= s.bytes;
    }
  }
  if (noeviction) {
    // Expired entries removed on the way may have made room; else refuse.
    Excess still = step.deleted > 0 ? Over(Now(), limits, 0.0) : over;
    if (!still.Any()) return;
    bool entries = still.entries > 0;
    throw CacheError(sqlstate::kConfigurationLimitExceeded,
                     entries ? "the cache is full: fastpgcache.max_entries (" + std::to_string(limits.max_entries) +
                                   ") reached and fastpgcache.eviction_policy is noeviction"
                             : "the cache is full: fastpgcache.max_size (" + std::to_string(limits.max_bytes) +
                                   " bytes) reached and fastpgcache.eviction_policy is noeviction",
                     "Nothing was written.",
                     "Delete entries, raise the limit, or choose another eviction policy.");
  }
  // A volatile policy with nothing it may evict, well over the limit: the
  // write is refused, as Redis answers -OOM.
  if ((limits.policy == Policy::kVolatileLru || limits.policy == Policy::kVolatileTtl) && may_delete &&
      live_allowed && !step.candidates && step.deleted == 0 && Over(Now(), limits, 0.10).Any())
    throw CacheError(sqlstate::kConfigurationLimitExceeded,
                     std::string("the cache is full and fastpgcache.eviction_policy is ") + PolicyName(limits.policy) +
                         ", but no entry with an expiry was found to evict",
                     "Nothing was written.", "Give entries a ttl, raise the limit, or choose an allkeys policy.");
}

}  // namespace eviction
}  // namespace fastpgcache

// Cache replacement simulator for the eviction study (bench/eviction).
//
//   sim TRACE_PREFIX --cap N [--seed S] [--redis-tick T] SPEC...
//
// Reads TRACE_PREFIX.trace (uint32 key ids) and TRACE_PREFIX.meta (see
// traces.cpp), replays it cache-aside (a request is a GET; a miss is followed
// by a SET of the same key) against a cache of N entries under each policy
// SPEC, and prints one CSV line per SPEC:
//
//   trace,cap,spec,requests,hits,hit_ratio,scan_hot_requests,scan_hot_hits,table_slots
//
// scan_hot_*: for a trace with a scan phase, the hot (non-scan) requests
// inside it and their hits (0,0 otherwise). table_slots: for heap models, the
// number of row slots the simulated table ended with (its size), else 0.
//
// Policies (SPEC):
//   lru                exact LRU
//   fifo               FIFO by insertion (Rails Solid Cache's policy)
//   clock              CLOCK, one reference bit, inserted unreferenced
//   sieve              SIEVE (NSDI'24)
//   s3fifo             S3-FIFO (SOSP'23): 10% small FIFO, 90% main with a
//                      2-bit counter, ghost of 0.9 x cap keys
//   redis:S[:T]        Redis 7's approximate LRU: before each insertion into a
//                      full cache, S keys sampled at random from the cache
//                      enter a 16-entry pool ordered by idle time (kept across
//                      evictions, stale entries included), and the pool's
//                      most idle key that still exists is evicted. The LRU
//                      clock ticks every T requests (default 1: exact; the
//                      real server's clock has 1 s resolution, so T = the
//                      replay's requests per second models it)
//   random             evict a uniformly random entry (Redis allkeys-random)
//   fpc/OPT=V/...      the proposed FastPgCache design on a simulated heap:
//                      rows occupy slots of a table; a hand sweeps the slots
//                      in physical (ctid) order; recency is a counter array
//                      in "shared memory" indexed by a hash of the key.
//     place=end|hand|lowest|random|pgfsm   where a new row lands (default pgfsm)
//        end     always at the end of the table (free space never reused,
//                e.g. VACUUM never runs): physical order = insertion order
//        hand    the slot freed most recently (the hand's last victim): what
//                the design gets if the evictor makes its freed space visible
//                right behind the hand (prune + free space map)
//        lowest  the lowest-numbered free slot
//        random  a uniformly random free slot
//        pgfsm   PostgreSQL-like: 64 rows a page; a deleted row's slot is
//                reusable only after a VACUUM, run when dead rows exceed
//                20% of live rows + 50 (autovacuum's defaults); inserts fill
//                the current target page, then ask the free space map
//                (round-robin over pages with room), else extend the table
//     slack=X   extra free slots of the fixed-size models (hand, lowest,
//               random) as a fraction of cap (default 0.25)
//     f=F       counter array size = F x cap slots (default 8); f=0: one
//               counter per key (no collisions: the ideal)
//     bits=1|2  counter width: 1 = visited bit (CLOCK/SIEVE); 2 = saturating
//               counter 0..3, a read increments, the hand decrements
//     write=keep|clear|set  what the SET after a miss does to the key's
//               counter (default keep)
//     lw=X      when the cache exceeds cap, evict down to (1 - X) x cap
//               (batched eviction; default 0: one entry per excess entry)
//     nobits    degraded mode (no shared memory): the hand evicts every row
//               it meets, i.e. FIFO in heap order
//     tag=B     B tag bits stored with each counter slot (default 0: none).
//               A slot belongs to the last key that claimed it: a read hit
//               counts only if the tag matches, or claims the slot if its
//               counter is 0; the hand sees 0 for a row whose slot another
//               key owns. Collisions then make keys look cold, not hot.
//     small=X   probation ring (S3-FIFO's small queue) of X x cap keys in
//               insertion order (default 0: none). When the ring holds at
//               least that many, an eviction pops its oldest key: read since
//               insertion -> counter cleared and left in the table (promoted
//               to the part the hand sweeps); never read -> deleted and
//               remembered in the ghost. The hand skips rows on probation (a
//               per-slot count of ring entries). A new key found in the ghost
//               skips the ring.
//     ghost=X   ghost window: X x cap evictions (default 0.9)
//     gf=F      ghost array size, F x cap slots of a 16-bit fingerprint and a
//               sequence number (default: same as f; 0: one per key)
//
// The fpc model's rows are inserted first and then, if the cache holds more
// than cap entries, the hand evicts (so the new row may itself be evicted if
// it landed just ahead of the hand, as it can in PostgreSQL).
#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace {

constexpr uint32_t kNil = 0xffffffffu;

uint64_t Mix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed) {}
  uint64_t Next() {
    s += 0x9e3779b97f4a7c15ULL;
    return Mix(s);
  }
  uint64_t Below(uint64_t n) { return static_cast<uint64_t>((static_cast<__uint128_t>(Next()) * n) >> 64); }
};

[[noreturn]] void Die(const std::string &msg) {
  std::fprintf(stderr, "sim: %s\n", msg.c_str());
  std::exit(2);
}

// A policy answers one cache-aside request: true on a hit; on a miss it
// inserts the key (evicting as needed).
class Policy {
 public:
  virtual ~Policy() = default;
  virtual bool Access(uint32_t key, uint64_t now) = 0;
  virtual uint64_t TableSlots() const { return 0; }
};

// ---------------------------------------------------------------- exact LRU
class Lru : public Policy {
 public:
  Lru(uint32_t universe, uint64_t cap) : cap_(cap), prev_(universe, kNil), next_(universe, kNil), in_(universe, 0) {}
  bool Access(uint32_t k, uint64_t) override {
    if (in_[k]) {
      Unlink(k);
      PushFront(k);
      return true;
    }
    if (size_ >= cap_) {
      uint32_t v = tail_;
      Unlink(v);
      in_[v] = 0;
      size_--;
    }
    PushFront(k);
    in_[k] = 1;
    size_++;
    return false;
  }

 private:
  void Unlink(uint32_t k) {
    if (prev_[k] != kNil) next_[prev_[k]] = next_[k]; else head_ = next_[k];
    if (next_[k] != kNil) prev_[next_[k]] = prev_[k]; else tail_ = prev_[k];
  }
  void PushFront(uint32_t k) {
    prev_[k] = kNil;
    next_[k] = head_;
    if (head_ != kNil) prev_[head_] = k; else tail_ = k;
    head_ = k;
  }
  uint64_t cap_, size_ = 0;
  uint32_t head_ = kNil, tail_ = kNil;
  std::vector<uint32_t> prev_, next_;
  std::vector<uint8_t> in_;
};

// ---------------------------------------------------------------- FIFO
class Fifo : public Policy {
 public:
  Fifo(uint32_t universe, uint64_t cap) : cap_(cap), ring_(cap), in_(universe, 0) {}
  bool Access(uint32_t k, uint64_t) override {
    if (in_[k]) return true;
    if (size_ >= cap_) {
      in_[ring_[head_]] = 0;
      head_ = (head_ + 1) % cap_;
      size_--;
    }
    ring_[(head_ + size_) % cap_] = k;
    size_++;
    in_[k] = 1;
    return false;
  }

 private:
  uint64_t cap_, size_ = 0, head_ = 0;
  std::vector<uint32_t> ring_;
  std::vector<uint8_t> in_;
};

// ---------------------------------------------------------------- CLOCK
class Clock : public Policy {
 public:
  Clock(uint32_t universe, uint64_t cap) : cap_(cap), slot_key_(cap, kNil), ref_(cap, 0), slot_of_(universe, kNil) {}
  bool Access(uint32_t k, uint64_t) override {
    if (slot_of_[k] != kNil) {
      ref_[slot_of_[k]] = 1;
      return true;
    }
    uint64_t s;
    if (used_ < cap_) {
      s = used_++;
    } else {
      while (ref_[hand_]) {
        ref_[hand_] = 0;
        hand_ = (hand_ + 1) % cap_;
      }
      s = hand_;
      slot_of_[slot_key_[s]] = kNil;
      hand_ = (hand_ + 1) % cap_;
    }
    slot_key_[s] = k;
    ref_[s] = 0;
    slot_of_[k] = static_cast<uint32_t>(s);
    return false;
  }

 private:
  uint64_t cap_, used_ = 0, hand_ = 0;
  std::vector<uint32_t> slot_key_;
  std::vector<uint8_t> ref_;
  std::vector<uint32_t> slot_of_;
};

// ---------------------------------------------------------------- SIEVE
// List from head (newest) to tail (oldest); the hand moves from the tail
// towards the head and wraps to the tail.
class Sieve : public Policy {
 public:
  Sieve(uint32_t universe, uint64_t cap)
      : cap_(cap), newer_(universe, kNil), older_(universe, kNil), in_(universe, 0), visited_(universe, 0) {}
  bool Access(uint32_t k, uint64_t) override {
    if (in_[k]) {
      visited_[k] = 1;
      return true;
    }
    if (size_ >= cap_) Evict();
    // push at head
    older_[k] = head_;
    newer_[k] = kNil;
    if (head_ != kNil) newer_[head_] = k; else tail_ = k;
    head_ = k;
    in_[k] = 1;
    visited_[k] = 0;
    size_++;
    return false;
  }

 private:
  void Evict() {
    uint32_t o = hand_ != kNil ? hand_ : tail_;
    while (visited_[o]) {
      visited_[o] = 0;
      o = newer_[o] != kNil ? newer_[o] : tail_;
    }
    hand_ = newer_[o];
    if (newer_[o] != kNil) older_[newer_[o]] = older_[o]; else head_ = older_[o];
    if (older_[o] != kNil) newer_[older_[o]] = newer_[o]; else tail_ = newer_[o];
    in_[o] = 0;
    size_--;
  }
  uint64_t cap_, size_ = 0;
  uint32_t head_ = kNil, tail_ = kNil, hand_ = kNil;
  std::vector<uint32_t> newer_, older_;
  std::vector<uint8_t> in_, visited_;
};

// ---------------------------------------------------------------- S3-FIFO
class S3Fifo : public Policy {
 public:
  S3Fifo(uint32_t universe, uint64_t cap)
      : small_cap_(std::max<uint64_t>(1, cap / 10)),
        cap_(cap),
        ghost_cap_(cap - small_cap_),
        where_(universe, 0),
        freq_(universe, 0),
        ghost_stamp_(universe, 0) {}
  bool Access(uint32_t k, uint64_t) override {
    if (where_[k]) {
      if (freq_[k] < 3) freq_[k]++;
      return true;
    }
    while (small_.size() + main_.size() >= cap_) Evict();
    freq_[k] = 0;
    if (ghost_stamp_[k] != 0) {
      ghost_stamp_[k] = 0;
      ghost_live_--;
      main_.push_back(k);
      where_[k] = 2;
    } else {
      small_.push_back(k);
      where_[k] = 1;
    }
    return false;
  }

 private:
  void Evict() {
    if (small_.size() >= small_cap_ || main_.empty()) {
      while (!small_.empty()) {
        uint32_t t = small_.front();
        small_.pop_front();
        if (freq_[t] >= 1) {
          freq_[t] = 0;
          main_.push_back(t);
          where_[t] = 2;
          if (main_.size() > cap_ - small_cap_ || small_.size() + main_.size() > cap_) EvictMain();
          if (small_.size() + main_.size() < cap_) return;
        } else {
          where_[t] = 0;
          AddGhost(t);
          return;
        }
      }
    }
    EvictMain();
  }
  void EvictMain() {
    while (!main_.empty()) {
      uint32_t t = main_.front();
      main_.pop_front();
      if (freq_[t] > 0) {
        freq_[t]--;
        main_.push_back(t);
      } else {
        where_[t] = 0;
        return;
      }
    }
  }
  void AddGhost(uint32_t k) {
    ghost_stamp_[k] = ++ghost_seq_;
    ghost_.push_back({k, ghost_seq_});
    ghost_live_++;
    while (ghost_live_ > ghost_cap_) {
      auto [g, st] = ghost_.front();
      ghost_.pop_front();
      if (ghost_stamp_[g] == st) {
        ghost_stamp_[g] = 0;
        ghost_live_--;
      }
    }
  }
  uint64_t small_cap_, cap_, ghost_cap_;
  std::deque<uint32_t> small_, main_;
  std::deque<std::pair<uint32_t, uint64_t>> ghost_;
  uint64_t ghost_seq_ = 0, ghost_live_ = 0;
  std::vector<uint8_t> where_, freq_;
  std::vector<uint64_t> ghost_stamp_;
};

// A set of resident keys that supports uniform sampling (swap-remove).
struct Resident {
  std::vector<uint32_t> keys;
  std::vector<uint32_t> pos;
  explicit Resident(uint32_t universe) : pos(universe, kNil) {}
  bool Has(uint32_t k) const { return pos[k] != kNil; }
  void Add(uint32_t k) {
    pos[k] = static_cast<uint32_t>(keys.size());
    keys.push_back(k);
  }
  void Remove(uint32_t k) {
    uint32_t p = pos[k];
    uint32_t last = keys.back();
    keys[p] = last;
    pos[last] = p;
    keys.pop_back();
    pos[k] = kNil;
  }
};

// ---------------------------------------------------------------- Redis
class RedisLru : public Policy {
 public:
  RedisLru(uint32_t universe, uint64_t cap, int samples, uint64_t tick, uint64_t seed)
      : cap_(cap), samples_(samples), tick_(tick), res_(universe), lru_(universe, 0), rng_(seed) {
    for (auto &e : pool_) e = {0, kNil};
  }
  bool Access(uint32_t k, uint64_t now) override {
    uint64_t clock = now / tick_;
    if (res_.Has(k)) {
      lru_[k] = clock;
      return true;
    }
    // Redis evicts before it runs a command while memory is over the limit.
    if (res_.keys.size() >= cap_) EvictOne(clock);
    res_.Add(k);
    lru_[k] = clock;
    return false;
  }

 private:
  struct Entry {
    uint64_t idle;
    uint32_t key;  // kNil: empty
  };
  void Populate(uint64_t clock) {
    for (int j = 0; j < samples_; j++) {
      uint32_t key = res_.keys[rng_.Below(res_.keys.size())];
      uint64_t idle = clock - lru_[key];
      int k = 0;
      while (k < kPool && pool_[k].key != kNil && pool_[k].idle < idle) k++;
      if (k == 0 && pool_[kPool - 1].key != kNil) continue;
      if (k < kPool && pool_[k].key == kNil) {
        // empty slot
      } else if (pool_[kPool - 1].key == kNil) {
        std::memmove(pool_ + k + 1, pool_ + k, sizeof(Entry) * (kPool - k - 1));
      } else {
        k--;
        std::memmove(pool_, pool_ + 1, sizeof(Entry) * k);
      }
      pool_[k] = {idle, key};
    }
  }
  void EvictOne(uint64_t clock) {
    for (;;) {
      Populate(clock);
      for (int k = kPool - 1; k >= 0; k--) {
        if (pool_[k].key == kNil) continue;
        uint32_t key = pool_[k].key;
        // Remove the entry (Redis shifts nothing: it marks the slot empty).
        pool_[k].key = kNil;
        if (res_.Has(key)) {
          res_.Remove(key);
          CompactPool();
          return;
        }
      }
      CompactPool();
    }
  }
  // Redis leaves empty slots where it removed entries, and its insertion
  // loop stops at the first empty slot; keep the populated entries packed
  // at the left in idle order, which is what that achieves.
  void CompactPool() {
    int w = 0;
    for (int r = 0; r < kPool; r++)
      if (pool_[r].key != kNil) pool_[w++] = pool_[r];
    for (; w < kPool; w++) pool_[w] = {0, kNil};
  }
  static constexpr int kPool = 16;
  uint64_t cap_;
  int samples_;
  uint64_t tick_;
  Resident res_;
  std::vector<uint64_t> lru_;
  Rng rng_;
  Entry pool_[kPool];
};

// ---------------------------------------------------------------- random
class RandomEvict : public Policy {
 public:
  RandomEvict(uint32_t universe, uint64_t cap, uint64_t seed) : cap_(cap), res_(universe), rng_(seed) {}
  bool Access(uint32_t k, uint64_t) override {
    if (res_.Has(k)) return true;
    if (res_.keys.size() >= cap_) res_.Remove(res_.keys[rng_.Below(res_.keys.size())]);
    res_.Add(k);
    return false;
  }

 private:
  uint64_t cap_;
  Resident res_;
  Rng rng_;
};

// ---------------------------------------------------------------- FastPgCache
struct FpcOptions {
  std::string place = "pgfsm";
  double slack = 0.25;
  double f = 8;
  int bits = 1;
  std::string write = "keep";
  double lw = 0;
  bool nobits = false;
  double small = 0;    // probation FIFO ring, fraction of cap (0: none)
  double ghost = 0.9;  // ghost window, fraction of cap (with small > 0)
  double gf = -1;      // ghost array size factor (-1: same as f; 0: per key)
  int tag = 0;         // tag bits stored with each counter (0: none)
};

// Free-slot index over a fixed number of slots: lowest free slot in O(n/4096).
class LowestFree {
 public:
  explicit LowestFree(uint64_t n) : l0_((n + 63) / 64, 0), l1_((l0_.size() + 63) / 64, 0) {}
  void Set(uint64_t s) {
    l0_[s / 64] |= 1ULL << (s % 64);
    l1_[s / 4096] |= 1ULL << ((s / 64) % 64);
  }
  void Clear(uint64_t s) {
    l0_[s / 64] &= ~(1ULL << (s % 64));
    if (l0_[s / 64] == 0) l1_[s / 4096] &= ~(1ULL << ((s / 64) % 64));
  }
  uint64_t Lowest() const {
    for (size_t i = 0; i < l1_.size(); i++)
      if (l1_[i]) {
        uint64_t w = i * 64 + static_cast<uint64_t>(__builtin_ctzll(l1_[i]));
        return w * 64 + static_cast<uint64_t>(__builtin_ctzll(l0_[w]));
      }
    return ~0ULL;
  }

 private:
  std::vector<uint64_t> l0_, l1_;
};

class Fpc : public Policy {
 public:
  static constexpr uint64_t kPage = 64;  // rows per heap page (pgfsm)
  enum State : uint8_t { kFree = 0, kLive = 1, kDead = 2 };

  enum Place { kEnd, kHand, kLowest, kRandom, kPgFsm };
  enum Write { kKeep, kClear, kSet };

  Fpc(uint32_t universe, uint64_t cap, const FpcOptions &o, uint64_t seed)
      : o_(o), cap_(cap), slot_of_(universe, kNil), rng_(seed), salt_(Mix(seed ^ 0x5eed)) {
    place_ = o.place == "end" ? kEnd : o.place == "hand" ? kHand : o.place == "lowest" ? kLowest
           : o.place == "random" ? kRandom : kPgFsm;
    write_ = o.write == "keep" ? kKeep : o.write == "clear" ? kClear : kSet;
    max_count_ = o.bits == 2 ? 3 : 1;
    if (!o.nobits) {
      nctr_ = o.f > 0 ? static_cast<uint64_t>(o.f * static_cast<double>(cap)) : universe;
      if (nctr_ < 1) nctr_ = 1;
      ctr_.assign(nctr_, 0);
      if (o.tag > 0) tags_.assign(nctr_, 0);
      if (o.small > 0) {
        young_.assign(nctr_, 0);
        double gf = o.gf < 0 ? o.f : o.gf;
        nghost_ = gf > 0 ? static_cast<uint64_t>(gf * static_cast<double>(cap)) : universe;
        if (nghost_ < 1) nghost_ = 1;
        ghost_.assign(nghost_, 0);
        ghost_key_.assign(nghost_, kNil);
        small_cap_ = std::max<uint64_t>(1, static_cast<uint64_t>(o.small * static_cast<double>(cap)));
        ghost_cap_ = static_cast<uint64_t>(o.ghost * static_cast<double>(cap));
        stamp_.assign(universe, 0);
      }
    }
    low_ = static_cast<uint64_t>((1.0 - o.lw) * static_cast<double>(cap));
    if (low_ >= cap) low_ = cap - 1;
    if (o.place == "hand" || o.place == "lowest" || o.place == "random") {
      uint64_t n = cap + static_cast<uint64_t>(o.slack * static_cast<double>(cap)) + 1;
      key_.assign(n, kNil);
      state_.assign(n, kFree);
      if (o.place == "hand") {
        for (uint64_t s = n; s-- > 0;) free_stack_.push_back(s);
      } else if (o.place == "lowest") {
        lowest_ = std::make_unique<LowestFree>(n);
        for (uint64_t s = 0; s < n; s++) lowest_->Set(s);
      } else {
        free_pos_.assign(n, 0);
        for (uint64_t s = 0; s < n; s++) {
          free_pos_[s] = free_list_.size();
          free_list_.push_back(s);
        }
      }
    } else if (o.place != "end" && o.place != "pgfsm") {
      Die("unknown place=" + o.place);
    }
  }

  bool Access(uint32_t k, uint64_t) override {
    if (slot_of_[k] != kNil) {
      if (!o_.nobits) ReadHit(k);
      return true;
    }
    if (!o_.nobits) OnWrite(k);
    Insert(k);
    if (o_.small > 0) {
      uint64_t g = Ghost(k);
      if (ghost_[g] != 0 && ghost_key_[g] == Fp16(k) && ghost_seq_ - ghost_[g] < ghost_cap_) {
        ghost_[g] = 0;  // straight to the main part
      } else {
        stamp_[k] = ++ins_seq_;
        ring_.push_back({k, ins_seq_});
        uint64_t c = Ctr(k);
        if (young_[c] < 255) young_[c]++;
      }
    }
    if (live_ > cap_)
      while (live_ > low_) EvictOne();
    return false;
  }
  uint64_t TableSlots() const override { return key_.size(); }

 private:
  uint64_t Ctr(uint32_t k) const {
    if (o_.f <= 0) return k;
    return static_cast<uint64_t>((static_cast<__uint128_t>(Mix(k ^ salt_)) * nctr_) >> 64);
  }
  uint64_t Ghost(uint32_t k) const {
    if (nghost_ == slot_of_.size() && (o_.gf == 0 || (o_.gf < 0 && o_.f <= 0))) return k;
    return static_cast<uint64_t>((static_cast<__uint128_t>(Mix(k ^ salt_ ^ 0x9a05)) * nghost_) >> 64);
  }
  uint32_t Tag(uint32_t k) const { return static_cast<uint32_t>(Mix(k ^ salt_ ^ 0x7a9) & ((1u << o_.tag) - 1)); }
  uint32_t Fp16(uint32_t k) const { return static_cast<uint32_t>(Mix(k ^ salt_ ^ 0xf16) & 0xffff); }
  bool Owns(uint64_t c, uint32_t k) const { return o_.tag == 0 || tags_[c] == Tag(k); }

  // A read hit: count it in the key's slot. With tags, a slot that another
  // key owns is taken over only when its counter is 0 (nothing to lose).
  void ReadHit(uint32_t k) {
    uint64_t c = Ctr(k);
    if (!Owns(c, k)) {
      if (ctr_[c] != 0) return;
      tags_[c] = Tag(k);
    }
    if (ctr_[c] < max_count_) ctr_[c]++;
  }
  // The SET after a miss.
  void OnWrite(uint32_t k) {
    uint64_t c = Ctr(k);
    if (write_ == kKeep) {
      if (!Owns(c, k) && ctr_[c] == 0) tags_[c] = Tag(k);
      return;
    }
    if (o_.tag > 0) tags_[c] = Tag(k);
    ctr_[c] = write_ == kSet ? 1 : 0;
  }
  // The counter as the hand sees it for key k (0 if another key owns it).
  uint8_t Count(uint64_t c, uint32_t k) const { return Owns(c, k) ? ctr_[c] : 0; }

  void Insert(uint32_t k) {
    uint64_t s;
    if (place_ == kEnd) {
      s = key_.size();
      key_.push_back(kNil);
      state_.push_back(kFree);
    } else if (place_ == kHand) {
      s = free_stack_.back();
      free_stack_.pop_back();
    } else if (place_ == kLowest) {
      s = lowest_->Lowest();
      lowest_->Clear(s);
    } else if (place_ == kRandom) {
      s = free_list_[rng_.Below(free_list_.size())];
      RemoveFree(s);
    } else {
      s = PgPlace();
    }
    key_[s] = k;
    state_[s] = kLive;
    slot_of_[k] = static_cast<uint32_t>(s);
    live_++;
  }

  void RemoveFree(uint64_t s) {
    uint64_t p = free_pos_[s];
    uint64_t last = free_list_.back();
    free_list_[p] = last;
    free_pos_[last] = p;
    free_list_.pop_back();
  }

  // PostgreSQL-like placement (see the header comment).
  uint64_t PgPlace() {
    if (target_ != ~0ULL && page_free_[target_] > 0) return TakeFromPage(target_);
    if (free_total_ > 0) {
      uint64_t pages = page_free_.size();
      for (uint64_t i = 0; i < pages; i++) {
        uint64_t p = (fsm_next_ + i) % pages;
        if (page_free_[p] > 0) {
          fsm_next_ = (p + 1) % pages;
          target_ = p;
          return TakeFromPage(p);
        }
      }
    }
    // Extend the table by one page.
    uint64_t p = page_free_.size();
    page_free_.push_back(kPage);
    free_total_ += kPage;
    key_.resize(key_.size() + kPage, kNil);
    state_.resize(state_.size() + kPage, kFree);
    target_ = p;
    return TakeFromPage(p);
  }
  uint64_t TakeFromPage(uint64_t p) {
    for (uint64_t s = p * kPage; s < (p + 1) * kPage; s++)
      if (state_[s] == kFree) {
        page_free_[p]--;
        free_total_--;
        return s;
      }
    Die("internal: page free count wrong");
  }
  void Vacuum() {
    for (uint64_t s = 0; s < state_.size(); s++)
      if (state_[s] == kDead) {
        state_[s] = kFree;
        page_free_[s / kPage]++;
        free_total_++;
      }
    dead_ = 0;
  }

  void Free(uint64_t s) {
    if (place_ == kEnd) {
      state_[s] = kDead;
    } else if (place_ == kHand) {
      state_[s] = kFree;
      free_stack_.push_back(s);
    } else if (place_ == kLowest) {
      state_[s] = kFree;
      lowest_->Set(s);
    } else if (place_ == kRandom) {
      state_[s] = kFree;
      free_pos_[s] = free_list_.size();
      free_list_.push_back(s);
    } else {
      state_[s] = kDead;
      dead_++;
      if (static_cast<double>(dead_) > 0.2 * static_cast<double>(live_) + 50) Vacuum();
    }
  }

  void Remove(uint64_t s) {
    uint32_t k = key_[s];
    slot_of_[k] = kNil;
    key_[s] = kNil;
    live_--;
    Free(s);
  }

  // Pops the probation ring until it evicts one row (true) or empties.
  // A row read while on probation is kept (its counter cleared: it now
  // belongs to the part the hand sweeps); one never read is deleted and
  // remembered in the ghost.
  bool EvictFromRing() {
    while (!ring_.empty()) {
      auto [k, st] = ring_.front();
      ring_.pop_front();
      uint64_t c = Ctr(k);
      if (young_[c] > 0 && young_[c] < 255) young_[c]--;
      if (stamp_[k] != st || slot_of_[k] == kNil) continue;  // stale: evicted or re-inserted since
      stamp_[k] = 0;
      if (Count(c, k) > 0) {
        ctr_[c] = 0;
        continue;
      }
      uint64_t g = Ghost(k);
      ghost_[g] = ++ghost_seq_;
      ghost_key_[g] = Fp16(k);
      Remove(slot_of_[k]);
      return true;
    }
    return false;
  }

  void EvictOne() {
    if (o_.small > 0 && ring_.size() >= small_cap_ && EvictFromRing()) return;
    uint64_t scanned = 0;
    for (;;) {
      if (hand_ >= key_.size()) hand_ = 0;
      uint64_t s = hand_++;
      if (++scanned > 4 * key_.size() + 4 && o_.small > 0 && EvictFromRing()) return;
      if (state_[s] != kLive) continue;
      uint32_t k = key_[s];
      if (!o_.nobits) {
        uint64_t ci = Ctr(k);
        if (o_.small > 0 && young_[ci] > 0) continue;  // on probation: the ring decides
        if (Count(ci, k) > 0) {
          ctr_[ci]--;
          continue;
        }
      }
      Remove(s);
      return;
    }
  }

  FpcOptions o_;
  Place place_;
  Write write_;
  uint64_t cap_, low_, live_ = 0, hand_ = 0;
  uint8_t max_count_ = 1;
  uint64_t nctr_ = 0;
  std::vector<uint8_t> ctr_;
  // Probation ring (small > 0): recently inserted keys in insertion order,
  // how many ring entries each counter slot has (the hand skips those rows),
  // and the ghost: the ghost sequence number at which a slot's key was
  // evicted from the ring.
  std::deque<std::pair<uint32_t, uint64_t>> ring_;
  std::vector<uint8_t> young_;
  std::vector<uint64_t> ghost_;
  std::vector<uint32_t> ghost_key_, tags_;
  uint64_t nghost_ = 0;
  std::vector<uint64_t> stamp_;
  uint64_t small_cap_ = 0, ghost_cap_ = 0, ghost_seq_ = 0, ins_seq_ = 0;
  std::vector<uint32_t> key_;  // slot -> key
  std::vector<uint8_t> state_;
  std::vector<uint32_t> slot_of_;
  std::vector<uint64_t> free_stack_;
  std::unique_ptr<LowestFree> lowest_;
  std::vector<uint64_t> free_list_, free_pos_;
  std::vector<uint64_t> page_free_;
  uint64_t free_total_ = 0, dead_ = 0, target_ = ~0ULL, fsm_next_ = 0;
  Rng rng_;
  uint64_t salt_;
};

double ParseDouble(const std::string &s, const std::string &what) {
  char *end = nullptr;
  errno = 0;
  double v = std::strtod(s.c_str(), &end);
  if (errno != 0 || end == s.c_str() || *end != '\0') Die("bad " + what + ": " + s);
  return v;
}
uint64_t ParseU64(const std::string &s, const std::string &what) {
  char *end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(s.c_str(), &end, 10);
  if (errno != 0 || end == s.c_str() || *end != '\0') Die("bad " + what + ": " + s);
  return v;
}

std::vector<std::string> Split(const std::string &s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == sep) {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  out.push_back(cur);
  return out;
}

std::unique_ptr<Policy> Make(const std::string &spec, uint32_t universe, uint64_t cap, uint64_t seed,
                             uint64_t redis_tick) {
  if (spec == "lru") return std::make_unique<Lru>(universe, cap);
  if (spec == "fifo") return std::make_unique<Fifo>(universe, cap);
  if (spec == "clock") return std::make_unique<Clock>(universe, cap);
  if (spec == "sieve") return std::make_unique<Sieve>(universe, cap);
  if (spec == "s3fifo") return std::make_unique<S3Fifo>(universe, cap);
  if (spec == "random") return std::make_unique<RandomEvict>(universe, cap, seed);
  if (spec.rfind("redis:", 0) == 0) {
    auto parts = Split(spec, ':');
    if (parts.size() < 2 || parts.size() > 3) Die("bad spec " + spec);
    int samples = static_cast<int>(ParseU64(parts[1], "samples"));
    uint64_t tick = parts.size() == 3 ? ParseU64(parts[2], "tick") : redis_tick;
    if (samples < 1 || samples > 64 || tick < 1) Die("bad spec " + spec);
    return std::make_unique<RedisLru>(universe, cap, samples, tick, seed);
  }
  if (spec == "fpc" || spec.rfind("fpc/", 0) == 0) {
    FpcOptions o;
    auto parts = Split(spec, '/');
    for (size_t i = 1; i < parts.size(); i++) {
      const std::string &p = parts[i];
      if (p == "nobits") {
        o.nobits = true;
        continue;
      }
      auto eq = p.find('=');
      if (eq == std::string::npos) Die("bad option " + p + " in " + spec);
      std::string name = p.substr(0, eq), val = p.substr(eq + 1);
      if (name == "place") o.place = val;
      else if (name == "slack") o.slack = ParseDouble(val, name);
      else if (name == "f") o.f = ParseDouble(val, name);
      else if (name == "bits") o.bits = static_cast<int>(ParseU64(val, name));
      else if (name == "write") o.write = val;
      else if (name == "lw") o.lw = ParseDouble(val, name);
      else if (name == "small") o.small = ParseDouble(val, name);
      else if (name == "ghost") o.ghost = ParseDouble(val, name);
      else if (name == "gf") o.gf = ParseDouble(val, name);
      else if (name == "tag") o.tag = static_cast<int>(ParseU64(val, name));
      else Die("unknown option " + name + " in " + spec);
    }
    if ((o.bits != 1 && o.bits != 2) || o.slack < 0 || o.f < 0 || o.lw < 0 || o.lw >= 1 || o.small < 0 ||
        o.small >= 1 || o.ghost < 0 || (o.small > 0 && o.nobits) || o.tag < 0 || o.tag > 30 ||
        (o.write != "keep" && o.write != "clear" && o.write != "set"))
      Die("bad options in " + spec);
    return std::make_unique<Fpc>(universe, cap, o, seed);
  }
  Die("unknown policy " + spec);
}

std::map<std::string, std::string> ReadMeta(const std::string &path) {
  std::ifstream in(path);
  if (!in) Die("cannot read " + path);
  std::map<std::string, std::string> m;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string k, v;
    if (ls >> k >> v) m[k] = v;
  }
  return m;
}

std::vector<uint32_t> ReadTrace(const std::string &path) {
  FILE *f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) Die("cannot read " + path);
  std::vector<uint32_t> v;
  uint32_t buf[65536];
  size_t n;
  while ((n = std::fread(buf, sizeof(uint32_t), 65536, f)) > 0) v.insert(v.end(), buf, buf + n);
  std::fclose(f);
  return v;
}

}  // namespace

int main(int argc, char **argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: sim TRACE_PREFIX --cap N [--seed S] [--redis-tick T] SPEC...\n");
    return 2;
  }
  std::string prefix = argv[1];
  uint64_t cap = 0, seed = 1, redis_tick = 1;
  std::vector<std::string> specs;
  for (int i = 2; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--cap" || a == "--seed" || a == "--redis-tick") {
      if (i + 1 >= argc) Die(a + " needs a value");
      uint64_t v = ParseU64(argv[++i], a);
      if (a == "--cap") cap = v;
      else if (a == "--seed") seed = v;
      else redis_tick = v;
    } else {
      specs.push_back(a);
    }
  }
  if (cap < 2) Die("--cap must be at least 2");
  if (redis_tick < 1) Die("--redis-tick must be at least 1");
  auto meta = ReadMeta(prefix + ".meta");
  auto trace = ReadTrace(prefix + ".trace");
  uint64_t universe = ParseU64(meta.count("universe") ? meta["universe"] : "0", "universe");
  uint64_t hot_keys = ParseU64(meta.count("keys") ? meta["keys"] : "0", "keys");
  uint64_t scan_start = meta.count("scan_start") ? ParseU64(meta["scan_start"], "scan_start") : 0;
  uint64_t scan_end = meta.count("scan_end") ? ParseU64(meta["scan_end"], "scan_end") : 0;
  if (universe == 0 || universe > 0xfffffff0ULL) Die("bad universe in meta");
  for (uint32_t k : trace)
    if (k >= universe) Die("trace holds a key id beyond the meta's universe");
  std::string name = meta.count("trace") ? meta["trace"] : prefix;

  for (const auto &spec : specs) {
    auto p = Make(spec, static_cast<uint32_t>(universe), cap, seed, redis_tick);
    uint64_t hits = 0, scan_req = 0, scan_hits = 0;
    for (uint64_t i = 0; i < trace.size(); i++) {
      uint32_t k = trace[i];
      bool hit = p->Access(k, i);
      hits += hit;
      if (i >= scan_start && i < scan_end && k < hot_keys) {
        scan_req++;
        scan_hits += hit;
      }
    }
    std::printf("%s,%llu,%s,%zu,%llu,%.6f,%llu,%llu,%llu\n", name.c_str(), static_cast<unsigned long long>(cap),
                spec.c_str(), trace.size(), static_cast<unsigned long long>(hits),
                static_cast<double>(hits) / static_cast<double>(trace.size()),
                static_cast<unsigned long long>(scan_req), static_cast<unsigned long long>(scan_hits),
                static_cast<unsigned long long>(p->TableSlots()));
    std::fflush(stdout);
  }
  return 0;
}

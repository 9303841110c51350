// How big each database's cache is, in entries and bytes, without counting
// rows: every write path reports what it changed (AddPending), and the
// change moves the shared counts when its transaction commits (a
// transaction callback; a rolled-back transaction or subtransaction moves
// nothing). The worker recounts exactly now and then (SetCounted), which
// also absorbs rows written by plain SQL. Also here: the expiry floor, the
// evictor's hand, and the current limits.

#include "eviction/shared.hpp"

extern "C" {
#include "access/detoast.h"
#include "access/xact.h"
#include "miscadmin.h"
#include "storage/shmem.h"
}

#include "guc.hpp"

namespace fastpgcache {
namespace eviction {

SharedState *g_state = nullptr;

namespace {

constexpr uint64 kNoFloor = static_cast<uint64>(DT_NOEND);

// This backend's changes not yet committed, per subtransaction (coalesced).
struct PendingChange {
  SubTransactionId subid;
  int64 entries;
  int64 bytes;
};
constexpr int kMaxPending = 64;
PendingChange g_pending[kMaxPending];
int g_npending = 0;
bool g_callbacks = false;
int g_my_db = -1;  // index into g_state->dbs, -2: none free

void ApplyPending() {
  DbState *db = MyDb();
  int64 entries = 0, bytes = 0;
  for (int i = 0; i < g_npending; i++) {
    entries += g_pending[i].entries;
    bytes += g_pending[i].bytes;
  }
  g_npending = 0;
  if (db == nullptr || (entries == 0 && bytes == 0)) return;
  pg_atomic_fetch_add_u64(&db->entries, AsUnsigned(entries));
  pg_atomic_fetch_add_u64(&db->bytes, AsUnsigned(bytes));
}

void OnXact(XactEvent event, void *) {
  switch (event) {
    case XACT_EVENT_COMMIT:
    case XACT_EVENT_PARALLEL_COMMIT:
    case XACT_EVENT_PREPARE:
      ApplyPending();
      break;
    case XACT_EVENT_ABORT:
    case XACT_EVENT_PARALLEL_ABORT:
      g_npending = 0;
      break;
    default:
      break;
  }
}

void OnSubXact(SubXactEvent event, SubTransactionId my_subid, SubTransactionId parent_subid, void *) {
  if (event == SUBXACT_EVENT_ABORT_SUB) {
    int kept = 0;
    for (int i = 0; i < g_npending; i++)
      if (g_pending[i].subid != my_subid) g_pending[kept++] = g_pending[i];
    g_npending = kept;
  } else if (event == SUBXACT_EVENT_COMMIT_SUB) {
    for (int i = 0; i < g_npending; i++)
      if (g_pending[i].subid == my_subid) g_pending[i].subid = parent_subid;
  }
}

}  // namespace

int64 DatumBytes(Datum varlena) {
  return static_cast<int64>(toast_raw_datum_size(varlena)) - VARHDRSZ;
}

std::size_t ShmemSize() {
  std::size_t slots = static_cast<std::size_t>(guc::eviction_memory_kb) * 1024;
  slots -= slots % 4;
  return MAXALIGN(offsetof(SharedState, counters) + slots);  // one byte per slot, four per word
}

void ShmemInit() {
  bool found = false;
  auto *state = static_cast<SharedState *>(ShmemInitStruct("fastpgcache eviction", ShmemSize(), &found));
  if (!found) {
    std::size_t slots = static_cast<std::size_t>(guc::eviction_memory_kb) * 1024;
    slots -= slots % 4;
    state->nslots = slots;
    for (DbState &db : state->dbs) {
      pg_atomic_init_u32(&db.dboid, 0);
      pg_atomic_init_u32(&db.counted, 0);
      pg_atomic_init_u64(&db.entries, 0);
      pg_atomic_init_u64(&db.bytes, 0);
      pg_atomic_init_u64(&db.hand, 0);
      pg_atomic_init_u64(&db.help_block, 0);
      pg_atomic_init_u64(&db.deleted, 0);
      pg_atomic_init_u64(&db.floor_pass, 0);  // unknown until a pass: may have expired
      pg_atomic_init_u64(&db.floor_writes[0], kNoFloor);
      pg_atomic_init_u64(&db.floor_writes[1], kNoFloor);
      pg_atomic_init_u32(&db.period, 0);
    }
    for (std::size_t i = 0; i < slots / 4; i++) pg_atomic_init_u32(&state->counters[i], 0);
  }
  g_state = state;
}

bool Shared() noexcept { return g_state != nullptr; }

DbState *MyDb() noexcept {
  if (g_state == nullptr || !OidIsValid(MyDatabaseId) || g_my_db == -2) return nullptr;
  if (g_my_db >= 0) return &g_state->dbs[g_my_db];
  uint32 me = MyDatabaseId;
  for (int pass = 0; pass < 2; pass++) {
    for (int i = 0; i < kMaxDatabases; i++) {
      DbState &db = g_state->dbs[i];
      uint32 owner = pg_atomic_read_u32(&db.dboid);
      if (owner == me) {
        g_my_db = i;
        return &db;
      }
      // Second pass: take a free slot.
      uint32 free_slot = 0;
      if (pass == 1 && owner == 0 && pg_atomic_compare_exchange_u32(&db.dboid, &free_slot, me)) {
        g_my_db = i;
        return &db;
      }
      if (pass == 1 && free_slot == me) {  // someone else took it for us meanwhile
        g_my_db = i;
        return &db;
      }
    }
  }
  g_my_db = -2;  // every slot is another database's: estimates only
  return nullptr;
}

void AddPending(int64 entries, int64 bytes) noexcept {
  // Kept without shared memory too: the estimates add this transaction's
  // own changes (Current, evictor.cpp's Estimated).
  if (entries == 0 && bytes == 0) return;
  if (!g_callbacks) {
    RegisterXactCallback(OnXact, nullptr);
    RegisterSubXactCallback(OnSubXact, nullptr);
    g_callbacks = true;
  }
  SubTransactionId subid = GetCurrentSubTransactionId();
  if (g_npending > 0 && g_pending[g_npending - 1].subid == subid) {
    g_pending[g_npending - 1].entries += entries;
    g_pending[g_npending - 1].bytes += bytes;
    return;
  }
  if (g_npending == kMaxPending) {
    // Deeply nested subtransactions: fold into the last one (an abort of an
    // inner one then keeps its change until the next recount).
    g_pending[g_npending - 1].entries += entries;
    g_pending[g_npending - 1].bytes += bytes;
    return;
  }
  g_pending[g_npending++] = PendingChange{subid, entries, bytes};
}

Counts Pending() noexcept {
  Counts c;
  for (int i = 0; i < g_npending; i++) {
    c.entries += g_pending[i].entries;
    c.bytes += g_pending[i].bytes;
  }
  return c;
}

Counts Current() {
  Counts c = Pending();
  DbState *db = MyDb();
  if (db == nullptr) return c;
  c.entries += AsSigned(pg_atomic_read_u64(&db->entries));
  c.bytes += AsSigned(pg_atomic_read_u64(&db->bytes));
  c.exact = pg_atomic_read_u32(&db->counted) != 0;
  return c;
}

void SetCounted(int64 entries, int64 bytes) noexcept {
  DbState *db = MyDb();
  if (db == nullptr) return;
  pg_atomic_write_u64(&db->entries, AsUnsigned(entries));
  pg_atomic_write_u64(&db->bytes, AsUnsigned(bytes));
  pg_atomic_write_u32(&db->counted, 1);
}

bool Counted() noexcept {
  DbState *db = MyDb();
  return db != nullptr && pg_atomic_read_u32(&db->counted) != 0;
}

namespace {

void AtomicMin(pg_atomic_uint64 *target, uint64 value) {
  uint64 old = pg_atomic_read_u64(target);
  while (AsSigned(value) < AsSigned(old)) {
    if (pg_atomic_compare_exchange_u64(target, &old, value)) return;
  }
}

}  // namespace

void NoteExpiry(TimestampTz expires_at) noexcept {
  DbState *db = MyDb();
  if (db == nullptr) return;
  uint32 period = pg_atomic_read_u32(&db->period) & 1u;
  AtomicMin(&db->floor_writes[period], AsUnsigned(expires_at));
  // A pass may have started in between (PassStarted): then this write
  // belongs to the new period too.
  pg_memory_barrier();
  uint32 now_period = pg_atomic_read_u32(&db->period) & 1u;
  if (now_period != period) AtomicMin(&db->floor_writes[now_period], AsUnsigned(expires_at));
}

bool MayHaveExpired(TimestampTz now) noexcept {
  DbState *db = MyDb();
  if (db == nullptr) return true;
  TimestampTz floor = AsSigned(pg_atomic_read_u64(&db->floor_pass));
  for (auto &w : db->floor_writes) {
    TimestampTz f = AsSigned(pg_atomic_read_u64(&w));
    if (f < floor) floor = f;
  }
  return floor <= now;
}

// The floor works in periods, one per pass of the expiry sweep: a write's
// expiry lowers the floor of the current period. A pass that starts once
// every transaction older than its start has ended (the worker waits a
// little for them) sees every row written in the period before it, so when
// it ends its own minimum replaces that period's floor. A pass that could
// not wait ("untrusted") only ever lowers the floor: it stays conservative.
void PassStarted() noexcept {
  DbState *db = MyDb();
  if (db == nullptr) return;
  pg_atomic_write_u32(&db->period, (pg_atomic_read_u32(&db->period) + 1) & 1u);
}

void PassEnded(TimestampTz pass_min, bool trusted) noexcept {
  DbState *db = MyDb();
  if (db == nullptr) return;
  if (!trusted) {
    AtomicMin(&db->floor_pass, AsUnsigned(pass_min));
    return;
  }
  uint32 previous = (pg_atomic_read_u32(&db->period) + 1) & 1u;
  pg_atomic_write_u64(&db->floor_pass, AsUnsigned(pass_min));
  pg_atomic_write_u64(&db->floor_writes[previous], kNoFloor);
}

ItemPointerData Hand() noexcept {
  ItemPointerData tid;
  DbState *db = MyDb();
  uint64 v = db == nullptr ? 0 : pg_atomic_read_u64(&db->hand);
  ItemPointerSet(&tid, static_cast<BlockNumber>(v >> 16), static_cast<OffsetNumber>(v & 0xffffu));
  return tid;
}

void SetHand(ItemPointerData tid) noexcept {
  DbState *db = MyDb();
  if (db == nullptr) return;
  uint64 v = (static_cast<uint64>(ItemPointerGetBlockNumberNoCheck(&tid)) << 16) |
             ItemPointerGetOffsetNumberNoCheck(&tid);
  pg_atomic_write_u64(&db->hand, v);
}

bool NoteDeleted(int64 n) noexcept {
  DbState *db = MyDb();
  if (db == nullptr) return false;
  if (n > 0) pg_atomic_fetch_add_u64(&db->deleted, static_cast<uint64>(n));
  return true;
}

bool DeletedTotal(uint64 *total) noexcept {
  DbState *db = MyDb();
  if (db == nullptr) return false;
  *total = pg_atomic_read_u64(&db->deleted);
  return true;
}

uint32 ClaimHelpRange(uint32 blocks, uint32 nblocks) noexcept {
  DbState *db = MyDb();
  if (db == nullptr || nblocks == 0) return 0;
  uint64 start = pg_atomic_fetch_add_u64(&db->help_block, blocks);
  return static_cast<uint32>(start % nblocks);
}

Limits CurrentLimits() noexcept {
  Limits l;
  l.max_entries = guc::max_entries;
  l.max_bytes = static_cast<int64>(guc::max_size_kb) * 1024;
  l.policy = static_cast<Policy>(guc::eviction_policy);
  return l;
}

Excess Over(const Counts &counts, const Limits &limits, double slack) {
  Excess e;
  if (limits.max_entries > 0) {
    int64 allowed = limits.max_entries + static_cast<int64>(static_cast<double>(limits.max_entries) * slack);
    if (counts.entries > allowed) e.entries = counts.entries - limits.max_entries;
  }
  if (limits.max_bytes > 0) {
    int64 allowed = limits.max_bytes + static_cast<int64>(static_cast<double>(limits.max_bytes) * slack);
    if (counts.bytes > allowed) e.bytes = counts.bytes - limits.max_bytes;
  }
  return e;
}

}  // namespace eviction
}  // namespace fastpgcache

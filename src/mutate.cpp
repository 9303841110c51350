// Read-modify-write of one key (SET NX/XX/KEEPTTL/GET, INCR, APPEND,
// EXPIRE, PERSIST, GETDEL, GETEX ...) and MSETNX.
//
// Mutate() locks the key's slot (its row, found by key_hash) before it reads
// it, so that two sessions changing the same key are serialized exactly as
// two UPDATEs would be: under READ COMMITTED the second waits and then sees
// the first one's result; under REPEATABLE READ it gets a serialization
// failure. A key with no row is inserted with ON CONFLICT DO NOTHING: if a
// concurrent session inserted it first, the whole step runs again against
// that row. The SQL does the locking (SELECT ... FOR UPDATE), so row level
// security, triggers, extra columns and every other table feature apply.

#include "cache.hpp"

extern "C" {
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/resowner.h"
}

#include <algorithm>
#include <cstring>
#include <string>
#include <unordered_map>

#include "guc.hpp"
#include "stats.hpp"

namespace fastpgcache {
namespace {

// How often a step runs again because a concurrent session inserted the key
// between the look and the insert. Each retry waits for that session, so a
// handful is normal under heavy contention; this only stops a livelock.
constexpr int kMaxAttempts = 1000;

[[noreturn]] void ThrowRetriesExhausted() {
  throw CacheError(sqlstate::kSerializationFailure, "could not serialize access due to concurrent inserts",
                   "The key was inserted and removed concurrently too many times.", "Retry the transaction.");
}

bool SameKey(const text *a, const text *b) {
  Size len = VARSIZE_ANY_EXHDR(a);
  return len == VARSIZE_ANY_EXHDR(b) && std::memcmp(VARDATA_ANY(a), VARDATA_ANY(b), len) == 0;
}

// Reads the locked row (columns key, value, kind, expires_at) into `cur`.
void ReadLockedRow(SpiCall &spi, const text *key, bool want_value, Current *cur) {
  spi.CheckColumnType(2, "value", BYTEAOID, TEXTOID);
  spi.CheckColumnType(3, "kind", CHAROID);
  spi.CheckColumnType(4, "expires_at", TIMESTAMPTZOID);
  bool isnull;
  Datum row_key = spi.Column(0, 1, &isnull);
  if (isnull || !SameKey(Guarded([&] { return DatumGetTextPP(row_key); }), key)) return;  // another key's slot
  Datum expires_at = spi.Column(0, 4, &isnull);
  cur->expires = !isnull;
  cur->expires_at = isnull ? 0 : DatumGetTimestampTz(expires_at);
  if (cur->expires && cur->expires_at <= cur->now) {
    cur->expires = false;  // expired: absent
    cur->expires_at = 0;
    return;
  }
  cur->live = true;
  cur->kind = DatumGetChar(spi.Column(0, 3, &isnull));
  if (isnull) ThrowNullColumn("kind");
  if (want_value) {
    Datum value = spi.Column(0, 2, &isnull);
    if (isnull) ThrowNullColumn("value");
    cur->value = spi.CopyOut(value);
  }
}

}  // namespace

void Mutate(FunctionCallInfo fcinfo, const char *function, const text *key, bool want_value,
            FunctionRef<Change(const Current &)> decide) {
  CheckWritable(function);
  EnsurePlans(FunctionSchema(fcinfo));
  CheckSqlColumns(true);
  pg_uuid_t hash = KeyHash(key);
  for (int attempt = 0;; attempt++) {
    SpiCall spi;
    Datum slot[1] = {UUIDPGetDatum(&hash)};
    bool row = spi.Execute(want_value ? kLockRow : kLockRowMeta, slot, nullptr, 1) > 0;
    Current cur;
    cur.now = GetCurrentTimestamp();
    if (row) ReadLockedRow(spi, key, want_value, &cur);
    Change change = decide(cur);
    switch (change.op) {
      case Change::Op::kNothing:
        break;
      case Change::Op::kWrite: {
        Datum values[5] = {UUIDPGetDatum(&hash), PointerGetDatum(key), change.value, CharGetDatum(change.kind),
                           TimestampTzGetDatum(change.expires_at)};
        const char nulls[5] = {' ', ' ', ' ', ' ', change.expires ? ' ' : 'n'};
        if (row) {
          spi.Execute(kUpdate, values, nulls, 0);  // the slot is ours (locked): takes it over if another key's
        } else if (spi.Execute(kInsertNew, values, nulls, 0) == 0) {
          // A concurrent session inserted the key (and committed) since the
          // look: look again, at its row.
          spi.Finish();
          if (attempt + 1 >= kMaxAttempts) ThrowRetriesExhausted();
          continue;
        }
        break;
      }
      case Change::Op::kSetExpiry: {
        if (!cur.live) break;  // nothing to change
        Datum values[2] = {UUIDPGetDatum(&hash), TimestampTzGetDatum(change.expires_at)};
        const char nulls[2] = {' ', change.expires ? ' ' : 'n'};
        spi.Execute(kUpdateExpiry, values, nulls, 0);
        break;
      }
      case Change::Op::kDelete:
        if (row) spi.Execute(kDeleteSlot, slot, nullptr, 0);
        break;
    }
    spi.Finish();
    return;
  }
}

bool MultiSetNx(FunctionCallInfo fcinfo, const std::vector<text *> &keys, const std::vector<text *> &values,
                bool expires, TimestampTz expires_at) {
  CheckWritable("cache_msetnx()");
  EnsurePlans(FunctionSchema(fcinfo));
  CheckSqlColumns(true);
  // One pair per distinct key hash, the last occurrence winning, in key_hash
  // order (rows are locked in that order: no deadlock between two batches).
  std::vector<pg_uuid_t> hashes(keys.size());
  std::unordered_map<std::string, std::size_t> last;
  for (std::size_t i = 0; i < keys.size(); i++) {
    hashes[i] = KeyHash(keys[i]);
    last[std::string(reinterpret_cast<const char *>(hashes[i].data), UUID_LEN)] = i;
  }
  std::vector<std::size_t> pairs;
  for (const auto &kv : last) pairs.push_back(kv.second);
  std::sort(pairs.begin(), pairs.end(), [&](std::size_t a, std::size_t b) {
    return std::memcmp(hashes[a].data, hashes[b].data, UUID_LEN) < 0;
  });
  std::vector<Datum> hash_datums, key_datums, value_datums;
  for (std::size_t i : pairs) {
    hash_datums.push_back(UUIDPGetDatum(&hashes[i]));
    key_datums.push_back(PointerGetDatum(keys[i]));
    value_datums.push_back(PointerGetDatum(values[i]));  // text and bytea share one representation
  }
  int n = static_cast<int>(pairs.size());
  Datum lock_args[1];
  Datum insert_args[4];
  Guarded([&] {
    lock_args[0] = PointerGetDatum(construct_array(hash_datums.data(), n, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR));
    insert_args[0] = lock_args[0];
    insert_args[1] = PointerGetDatum(construct_array(key_datums.data(), n, TEXTOID, -1, false, TYPALIGN_INT));
    insert_args[2] = PointerGetDatum(construct_array(value_datums.data(), n, BYTEAOID, -1, false, TYPALIGN_INT));
  });
  insert_args[3] = TimestampTzGetDatum(expires_at);
  const char insert_nulls[4] = {' ', ' ', ' ', expires ? ' ' : 'n'};
  for (int attempt = 0;; attempt++) {
    SpiCall spi;
    // Lock every existing slot of the batch; any live key means no.
    uint64 rows = spi.Execute(kLockRows, lock_args, nullptr, 0);
    spi.CheckColumnType(3, "expires_at", TIMESTAMPTZOID);
    TimestampTz now = GetCurrentTimestamp();
    std::vector<pg_uuid_t> occupied;  // slots holding expired rows or other keys
    for (uint64 r = 0; r < rows; r++) {
      bool isnull;
      Datum h = spi.Column(r, 1, &isnull);
      pg_uuid_t row_hash;
      std::memcpy(row_hash.data, DatumGetUUIDP(h)->data, UUID_LEN);
      Datum row_key = spi.Column(r, 2, &isnull);
      bool key_null = isnull;
      Datum expiry = spi.Column(r, 3, &isnull);
      bool live = isnull || DatumGetTimestampTz(expiry) > now;
      const text *wanted = keys[last[std::string(reinterpret_cast<const char *>(row_hash.data), UUID_LEN)]];
      bool ours = !key_null && SameKey(Guarded([&] { return DatumGetTextPP(row_key); }), wanted);
      if (ours && live) {
        spi.Finish();
        return false;
      }
      occupied.push_back(row_hash);
    }
    // All or nothing: the locked slots are emptied and every pair inserted
    // in a subtransaction; if a concurrent session inserted one of the keys
    // meanwhile, the subtransaction is rolled back and the batch looks again.
    bool inserted_all = false;
    MemoryContext cxt = CurrentMemoryContext;
    ResourceOwner owner = CurrentResourceOwner;
    Guarded([&] {
      BeginInternalSubTransaction(nullptr);
      MemoryContextSwitchTo(cxt);
    });
    try {
      for (pg_uuid_t &slot : occupied) {
        Datum args[1] = {UUIDPGetDatum(&slot)};
        spi.Execute(kDeleteSlot, args, nullptr, 0);
      }
      inserted_all = spi.Execute(kMultiInsertNew, insert_args, insert_nulls, 0) == static_cast<uint64>(n);
    } catch (...) {
      Guarded([&] {
        RollbackAndReleaseCurrentSubTransaction();
        MemoryContextSwitchTo(cxt);
        CurrentResourceOwner = owner;
      });
      throw;
    }
    Guarded([&] {
      if (inserted_all)
        ReleaseCurrentSubTransaction();
      else
        RollbackAndReleaseCurrentSubTransaction();
      MemoryContextSwitchTo(cxt);
      CurrentResourceOwner = owner;
    });
    spi.Finish();
    if (inserted_all) {
      StatsAdd(kStatSets, keys.size());
      return true;
    }
    if (attempt + 1 >= kMaxAttempts) ThrowRetriesExhausted();
  }
}

}  // namespace fastpgcache

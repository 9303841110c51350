// The keyspace as a whole: DEL and EXISTS over many keys, KEYS, SCAN,
// FLUSHDB and DBSIZE.
//
// SCAN walks the primary key index in key_hash order. Its cursor is a
// position in that order: the first 8 bytes of a key_hash, big-endian,
// shifted right by one bit so that it is a non-negative bigint. Because a
// key's hash never changes, every key that exists for the whole iteration is
// passed exactly once by a cursor that only moves forward, however other
// sessions insert and delete meanwhile (Redis needs its reverse-binary
// cursor for the same guarantee because its table is rehashed; an index
// order is not). A key may be returned twice only in the rare case that two
// keys share the 63-bit prefix across a call boundary.

#include "cache.hpp"

extern "C" {
#include "catalog/pg_type.h"
#include "utils/snapmgr.h"
}

#include <algorithm>
#include <cstring>
#include <string>
#include <string_view>
#include <unordered_set>

#include "resp/glob.hpp"
#include "stats.hpp"

namespace fastpgcache {
namespace {

std::string_view TextView(const text *t) {
  return std::string_view(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
}

// KEYS/SCAN matching: "*" lists every key (the empty key too), as Redis
// does; anything else is Redis's glob.
bool Matches(std::string_view pattern, std::string_view key) {
  return pattern == "*" || resp::GlobMatch(pattern, key);
}

// The 63-bit cursor of a key_hash.
int64 CursorOf(const pg_uuid_t &hash) {
  uint64 prefix = 0;
  for (int i = 0; i < 8; i++) prefix = (prefix << 8) | hash.data[i];
  return static_cast<int64>(prefix >> 1);
}

// The first key_hash at cursor `cursor`.
pg_uuid_t LowerBound(int64 cursor) {
  pg_uuid_t hash;
  std::memset(hash.data, 0, UUID_LEN);
  uint64 prefix = static_cast<uint64>(cursor) << 1;
  for (int i = 7; i >= 0; i--) {
    hash.data[i] = static_cast<unsigned char>(prefix & 0xff);
    prefix >>= 8;
  }
  return hash;
}

}  // namespace

int64 DeleteMany(Oid schema, const std::vector<text *> &keys) {
  CheckWritable("cache_delete()");
  EnsurePlans(schema);
  // Each key once, in key_hash order: two multi-key deletes lock rows in the
  // same order and cannot deadlock.
  struct Item {
    pg_uuid_t hash;
    text *key;
  };
  std::vector<Item> items;
  std::unordered_set<std::string_view> seen;
  for (text *key : keys) {
    if (seen.insert(TextView(key)).second) items.push_back({KeyHash(key), key});
  }
  std::sort(items.begin(), items.end(),
            [](const Item &a, const Item &b) { return std::memcmp(a.hash.data, b.hash.data, UUID_LEN) < 0; });
  int64 live = 0;
  SpiCall spi;
  for (Item &item : items) {
    Datum values[3] = {UUIDPGetDatum(&item.hash), PointerGetDatum(item.key),
                       TimestampTzGetDatum(GetCurrentTimestamp())};
    if (spi.Execute(kDelete, values, nullptr, 0) > 0) {
      bool isnull;
      if (DatumGetBool(spi.Column(0, 1, &isnull))) live++;
    }
  }
  spi.Finish();
  StatsAdd(kStatDeletes, static_cast<uint64>(live));
  return live;
}

int64 CountLive(Oid schema, const std::vector<text *> &keys) {
  Snapshot snapshot = Guarded([] { return FreshSnapshot(); });
  int64 live = 0;
  for (text *key : keys) {
    if (Find(schema, key, false, snapshot).found) live++;
  }
  Guarded([&] { UnregisterSnapshot(snapshot); });
  return live;
}

void ForEachKey(Oid schema, const text *pattern, FunctionRef<void(text *)> emit) {
  EnsurePlans(schema);
  std::string_view glob = TextView(pattern);
  TimestampTz now = GetCurrentTimestamp();
  SpiCall spi;
  spi.OpenCursor(kAllKeys, nullptr, nullptr);
  constexpr long kBatch = 1000;
  for (;;) {
    uint64 rows = spi.Fetch(kBatch);
    if (rows == 0) break;
    spi.CheckColumnType(2, "expires_at", TIMESTAMPTZOID);
    for (uint64 r = 0; r < rows; r++) {
      bool isnull;
      Datum expiry = spi.Column(r, 2, &isnull);
      if (!isnull && DatumGetTimestampTz(expiry) <= now) continue;
      Datum key = spi.Column(r, 1, &isnull);
      if (isnull) continue;
      text *copy = reinterpret_cast<text *>(DatumGetPointer(spi.CopyOut(key)));
      if (Matches(glob, TextView(copy))) emit(copy);
    }
  }
  spi.Finish();
}

int64 ScanStep(Oid schema, int64 cursor, const text *pattern, int64 count,
               FunctionRef<void(text *)> emit) {
  EnsurePlans(schema);
  std::string_view glob = TextView(pattern);
  pg_uuid_t lower = LowerBound(cursor);
  TimestampTz now = GetCurrentTimestamp();
  SpiCall spi;
  int64 limit = count;
  uint64 rows;
  int64 next = 0;
  for (;;) {
    Datum values[2] = {UUIDPGetDatum(&lower), Int64GetDatum(limit < INT64_MAX ? limit + 1 : limit)};
    rows = spi.Execute(kScan, values, nullptr, 0);
    if (rows <= static_cast<uint64>(limit)) {
      next = 0;  // the end
      break;
    }
    bool isnull;
    next = CursorOf(*DatumGetUUIDP(spi.Column(static_cast<uint64>(limit), 1, &isnull)));
    if (next > cursor) break;
    // More than `limit` rows share the cursor's prefix: the next call would
    // start here again. Take them all (a 63-bit collision: practically never).
    limit = limit > INT64_MAX / 2 ? INT64_MAX - 1 : limit * 2;
  }
  spi.CheckColumnType(3, "expires_at", TIMESTAMPTZOID);
  uint64 take = rows <= static_cast<uint64>(limit) ? rows : static_cast<uint64>(limit);
  for (uint64 r = 0; r < take; r++) {
    bool isnull;
    Datum expiry = spi.Column(r, 3, &isnull);
    if (!isnull && DatumGetTimestampTz(expiry) <= now) continue;
    Datum key = spi.Column(r, 2, &isnull);
    if (isnull) continue;
    text *copy = reinterpret_cast<text *>(DatumGetPointer(spi.CopyOut(key)));
    if (Matches(glob, TextView(copy))) emit(copy);
  }
  spi.Finish();
  return next;
}

int64 Flush(Oid schema) {
  CheckWritable("cache_flush()");
  EnsurePlans(schema);
  Datum values[1] = {TimestampTzGetDatum(GetCurrentTimestamp())};
  SpiCall spi;
  spi.Execute(kFlush, values, nullptr, 1);
  bool isnull;
  int64 live = DatumGetInt64(spi.Column(0, 1, &isnull));
  spi.Finish();
  return live;
}

int64 DbSize(Oid schema) {
  EnsurePlans(schema);
  Datum values[1] = {TimestampTzGetDatum(GetCurrentTimestamp())};
  SpiCall spi;
  spi.Execute(kDbSize, values, nullptr, 1);
  bool isnull;
  int64 live = DatumGetInt64(spi.Column(0, 1, &isnull));
  spi.Finish();
  return live;
}

}  // namespace fastpgcache

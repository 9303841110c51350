// Redis's string commands over one read-modify-write step each (see
// string_ops.hpp). The rules for numbers come from redis_values.hpp; the
// error texts are Redis's, with SQLSTATEs for the SQL front.

#include "string_ops.hpp"

extern "C" {
#include "utils/builtins.h"
#include "utils/memutils.h"
}

#include <cmath>
#include <cstring>
#include <optional>

#include "redis_values.hpp"
#include "stats.hpp"

namespace fastpgcache {
namespace ops {
namespace {

// A live value that must be returned as text: valid in the database
// encoding, or 22021.
void CheckLiveText(const Current &cur) {
  if (!cur.live) return;
  Entry entry;
  entry.found = true;
  entry.kind = cur.kind;
  entry.value = cur.value;
  CheckText(entry);
}

}  // namespace

std::string_view ValueBytes(Datum value) {
  const text *t = reinterpret_cast<const text *>(DatumGetPointer(value));
  return std::string_view(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
}

Datum MakeText(std::string_view bytes) {
  return Guarded([&] { return PointerGetDatum(cstring_to_text_with_len(bytes.data(), static_cast<int>(bytes.size()))); });
}

SetResult Set(Oid schema, const char *function, const text *key, Datum value, char kind, const SetOptions &options) {
  SetResult result;
  if (!options.nx && !options.xx && !options.keepttl && !options.get) {
    Store(schema, key, value, kind, options.expires, options.expires_at);
    result.written = true;
    return result;
  }
  auto decide = [&](const Current &cur) {
    if (options.get && options.old_must_be_text) CheckLiveText(cur);  // nothing written if it cannot be returned
    result.had_old = cur.live;
    result.old_value = cur.value;
    result.written = false;
    if ((options.nx && cur.live) || (options.xx && !cur.live)) return Change();
    result.written = true;
    if (options.keepttl) return Change::Write(value, kind, cur.live && cur.expires, cur.expires_at);
    return Change::Write(value, kind, options.expires, options.expires_at);
  };
  Mutate(schema, function, key, options.get, decide);
  if (result.written) StatsAdd(kStatSets);
  if (options.get) StatsAdd(result.had_old ? kStatHits : kStatMisses);
  return result;
}

int64 IncrBy(Oid schema, const char *function, const text *key, int64 by, bool expires, TimestampTz expires_at) {
  int64 result = 0;
  auto decide = [&](const Current &cur) {
    if (!cur.live) {
      result = by;
      return Change::Write(MakeText(std::to_string(result)), kKindText, expires, expires_at);
    }
    std::optional<int64_t> current = ParseRedisInt(ValueBytes(cur.value));
    if (!current)
      throw CacheError(sqlstate::kInvalidTextRepresentation, "value is not an integer or out of range",
                       "The value of a counter must be a 64-bit integer written in decimal.");
    std::optional<int64_t> sum = AddRedisInt(*current, by);
    if (!sum) throw CacheError(sqlstate::kNumericValueOutOfRange, "increment or decrement would overflow");
    result = *sum;
    return Change::Write(MakeText(std::to_string(result)), kKindText, cur.expires, cur.expires_at);
  };
  Mutate(schema, function, key, true, decide);
  StatsAdd(kStatSets);
  return result;
}

std::string IncrByFloat(Oid schema, const char *function, const text *key, long double by) {
  if (std::isnan(by)) throw CacheError(sqlstate::kNumericValueOutOfRange, "increment would produce NaN or Infinity");
  std::string result;
  auto decide = [&](const Current &cur) {
    long double value = 0;
    if (cur.live) {
      std::optional<long double> current = ParseRedisFloat(ValueBytes(cur.value));
      if (!current) throw CacheError(sqlstate::kInvalidTextRepresentation, "value is not a valid float");
      value = *current;
    }
    value += by;
    if (std::isnan(value) || std::isinf(value))
      throw CacheError(sqlstate::kNumericValueOutOfRange, "increment would produce NaN or Infinity");
    result = FormatRedisFloat(value);
    if (result.empty()) throw CacheError(sqlstate::kNumericValueOutOfRange, "the result is too long to store");
    return Change::Write(MakeText(result), kKindText, cur.live && cur.expires, cur.expires_at);
  };
  Mutate(schema, function, key, true, decide);
  StatsAdd(kStatSets);
  return result;
}

int64 Append(Oid schema, const char *function, const text *key, std::string_view suffix) {
  int64 length = 0;
  auto decide = [&](const Current &cur) {
    std::string_view head = cur.live ? ValueBytes(cur.value) : std::string_view();
    std::size_t total = head.size() + suffix.size();
    if (total > MaxAllocSize - VARHDRSZ)
      throw CacheError(sqlstate::kProgramLimitExceeded, "string exceeds maximum allowed size (1 GB)");
    length = static_cast<int64>(total);
    Datum joined = Guarded([&] {
      text *out = static_cast<text *>(palloc(VARHDRSZ + total));
      SET_VARSIZE(out, VARHDRSZ + total);
      std::memcpy(VARDATA(out), head.data(), head.size());
      std::memcpy(VARDATA(out) + head.size(), suffix.data(), suffix.size());
      return PointerGetDatum(out);
    });
    char kind = cur.live && cur.kind == kKindBytes ? kKindBytes : kKindText;
    return Change::Write(joined, kind, cur.live && cur.expires, cur.expires_at);
  };
  Mutate(schema, function, key, true, decide);
  StatsAdd(kStatSets);
  return length;
}

bool ExpireAt(Oid schema, const char *function, const text *key, TimestampTz at, ExpireCondition condition) {
  bool done = false;
  auto decide = [&](const Current &cur) {
    done = false;
    if (!cur.live) return Change();
    // Redis 7: NX only without an expiry, XX only with one; GT/LT compare
    // with the current expiry, none counting as infinite.
    if (condition.nx && cur.expires) return Change();
    if (condition.xx && !cur.expires) return Change();
    if (condition.gt && (!cur.expires || at <= cur.expires_at)) return Change();
    if (condition.lt && cur.expires && at >= cur.expires_at) return Change();
    done = true;
    if (at <= cur.now) return Change::Delete();
    return Change::SetExpiry(true, at);
  };
  Mutate(schema, function, key, false, decide);
  return done;
}

bool Persist(Oid schema, const char *function, const text *key) {
  bool removed = false;
  auto decide = [&](const Current &cur) {
    removed = cur.live && cur.expires;
    return removed ? Change::SetExpiry(false, 0) : Change();
  };
  Mutate(schema, function, key, false, decide);
  return removed;
}

Got GetDel(Oid schema, const char *function, const text *key, bool must_be_text) {
  Got got;
  auto decide = [&](const Current &cur) {
    if (must_be_text) CheckLiveText(cur);  // not deleted if it cannot be returned
    got.found = cur.live;
    got.value = cur.value;
    got.kind = cur.kind;
    return cur.live ? Change::Delete() : Change();
  };
  Mutate(schema, function, key, true, decide);
  StatsAdd(got.found ? kStatHits : kStatMisses);
  if (got.found) StatsAdd(kStatDeletes);
  return got;
}

Got GetEx(Oid schema, const char *function, const text *key, GetExExpiry expiry, TimestampTz at, bool must_be_text) {
  Got got;
  if (expiry == GetExExpiry::kNone) {
    // Only a read: no row lock, no write.
    Entry entry = FindValue(schema, key);
    if (entry.found && must_be_text) CheckText(entry);
    got.found = entry.found;
    got.value = entry.value;
    got.kind = entry.kind;
    return got;
  }
  auto decide = [&](const Current &cur) {
    if (must_be_text) CheckLiveText(cur);
    got.found = cur.live;
    got.value = cur.value;
    got.kind = cur.kind;
    if (!cur.live) return Change();
    if (expiry == GetExExpiry::kPersist) return cur.expires ? Change::SetExpiry(false, 0) : Change();
    if (at <= cur.now) return Change::Delete();
    return Change::SetExpiry(true, at);
  };
  Mutate(schema, function, key, true, decide);
  StatsAdd(got.found ? kStatHits : kStatMisses);
  return got;
}

}  // namespace ops
}  // namespace fastpgcache

// Redis's string commands over the cache core: what SET with its options,
// INCRBY, INCRBYFLOAT, APPEND, EXPIRE with its conditions, PERSIST, GETDEL and
// GETEX mean, written once for both fronts: the SQL functions (sql_api.cpp)
// and the Redis protocol (resp_worker/executor.cpp). Each is one Mutate()
// step (mutate.cpp): atomic under concurrency. A backend header.
#pragma once

#include "cache.hpp"

#include <string>
#include <string_view>

namespace fastpgcache {
namespace ops {

// The bytes of a varlena datum (text or bytea).
std::string_view ValueBytes(Datum value);

// A text datum made from bytes, in the current memory context.
Datum MakeText(std::string_view bytes);

// SET key value [EX|PX|EXAT|PXAT|KEEPTTL] [NX|XX] [GET].
struct SetOptions {
  bool nx = false;
  bool xx = false;
  bool keepttl = false;
  bool expires = false;  // with expires_at (may be in the past: the entry is then absent at once)
  TimestampTz expires_at = 0;
  bool get = false;             // return the previous value
  bool old_must_be_text = false;  // GET for SQL: the previous value must be valid text (else 22021, nothing written)
};
struct SetResult {
  bool written = false;
  bool had_old = false;  // with get: the key was live
  Datum old_value = 0;
};
SetResult Set(Oid schema, const char *function, const text *key, Datum value, char kind, const SetOptions &options);

// INCRBY: the new value. A new key starts at 0 and gets the given expiry.
int64 IncrBy(Oid schema, const char *function, const text *key, int64 by, bool expires, TimestampTz expires_at);

// INCRBYFLOAT: the new value as Redis writes it.
std::string IncrByFloat(Oid schema, const char *function, const text *key, long double by);

// APPEND: the new length in bytes.
int64 Append(Oid schema, const char *function, const text *key, std::string_view suffix);

// EXPIRE / PEXPIRE / EXPIREAT / PEXPIREAT with Redis 7's conditions (a key
// without expiry counts as an infinite one for GT and LT; XX may combine
// with GT or LT). `at` not in the future deletes the key. True if the
// condition held and the expiry was set (or the key deleted).
struct ExpireCondition {
  bool nx = false;
  bool xx = false;
  bool gt = false;
  bool lt = false;
};
bool ExpireAt(Oid schema, const char *function, const text *key, TimestampTz at, ExpireCondition condition = {});

// PERSIST: true if an expiry was removed.
bool Persist(Oid schema, const char *function, const text *key);

// The value of a live entry (found false when absent).
struct Got {
  bool found = false;
  Datum value = 0;
  char kind = kKindText;
};

// GETDEL. With must_be_text, a value that is not valid text is an error
// (22021) and the key is not deleted.
Got GetDel(Oid schema, const char *function, const text *key, bool must_be_text);

// GETEX [EX|PX|EXAT|PXAT|PERSIST]: `expiry` kNone only reads.
enum class GetExExpiry { kNone, kSet, kPersist };
Got GetEx(Oid schema, const char *function, const text *key, GetExExpiry expiry, TimestampTz at, bool must_be_text);

}  // namespace ops
}  // namespace fastpgcache

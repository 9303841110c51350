// The cache core: what the SQL functions (sql_api.cpp) are built from.
//
//   plans.cpp        the kept SPI plans (the SQL path) and when to prepare
//                    them again
//   table_shape.cpp  when the direct paths may be used on the table
//   read_path.cpp    finding a live entry: one probe of the key_hash index,
//                    or the SQL path
//   write_path.cpp   writing: the in-place overwrite, or the SQL path
//
// A backend header: include it after pg_bridge.hpp's PostgreSQL headers (it
// includes pg_bridge.hpp itself, first).
#pragma once

#include "pg_bridge.hpp"

extern "C" {
#include "access/genam.h"
#include "access/relscan.h"
#include "executor/spi.h"
#include "utils/rel.h"
#include "utils/snapshot.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"
}

#include <cstdint>
#include <optional>
#include <utility>
#include <string>
#include <vector>

#include "error.hpp"

namespace fastpgcache {

// How a value was stored: kept in the "kind" column.
constexpr char kKindText = 't';
constexpr char kKindJson = 'j';
constexpr char kKindBytes = 'b';

// Column numbers of cache_entries that the direct paths rely on.
constexpr AttrNumber kAttKeyHash = 1;
constexpr AttrNumber kAttExpiresAt = 2;
constexpr AttrNumber kAttKind = 3;
constexpr AttrNumber kAttKey = 4;
constexpr AttrNumber kAttValue = 5;

// ---------------------------------------------------------------- plans.cpp

// Every statement of the SQL path (plans.cpp has their text).
enum PlanId {
  kGetValue,        // the live entry of a key, with its value
  kGetExpiry,       // the live entry of a key, without its value
  kUpdate,          // overwrite the slot of a key_hash
  kUpsert,          // insert, or overwrite a concurrent insert
  kMultiUpsert,     // cache_mset
  kDelete,          // delete a key; returns whether it was live
  kCleanup,         // delete every expired row
  kLockRow,         // lock the slot of a key_hash, reading the row
  kLockRowMeta,     // the same without the value
  kUpdateExpiry,    // change only the expiry of a slot
  kInsertNew,       // insert unless the slot is taken
  kDeleteSlot,      // delete the slot of a key_hash
  kLockRows,        // lock the slots of many key hashes, in order
  kMultiInsertNew,  // insert many rows unless their slots are taken
  kScan,            // rows from a key_hash on, in key_hash order
  kAllKeys,         // every row's key and expiry (a cursor)
  kFlush,           // delete every row; count the live ones
  kDbSize,          // count the live rows
  kPlanCount
};

// The kept plans of this backend. Plain data only: constant-initialised, so
// loading the library runs no constructor.
struct PlanCache {
  bool valid;          // for `schema` under its current name
  Oid schema;
  uint32 schema_hash;  // syscache hash of the schema's pg_namespace row
  char quoted_schema[2 * NAMEDATALEN + 3];
  SPIPlanPtr plans[kPlanCount];  // each prepared when first used
};
extern PlanCache g_plans;

// The cache table the direct paths work on, looked up again after any
// invalidation of the table or its index.
struct CacheTable {
  bool valid;
  Oid schema;
  Oid relid;
  Oid index;  // the key_hash btree, or InvalidOid if the direct paths may not be used
  // A column whose type the SQL path would misread or silently convert
  // (null if none), for reads [0] and writes [1]: the functions refuse to
  // run their SQL on such a table.
  const char *bad_column[2];
  Oid bad_type[2];
  Oid good_type[2];
};
extern CacheTable g_table;

// Marks a kept plan as executing while it lives, so that no nested call
// frees it (see plans.cpp).
class PlanUse {
 public:
  PlanUse() noexcept;
  ~PlanUse();
  PlanUse(const PlanUse &) = delete;
  PlanUse &operator=(const PlanUse &) = delete;
};

// Makes sure the kept plans exist for the schema `schema`, and g_table
// describes its table.
void EnsurePlans(Oid schema);

// The schema the called function lives in (the extension's schema).
Oid FunctionSchema(FunctionCallInfo fcinfo);

// An SPI connection for one call. Finish() on success; on an exception the
// connection is left to the transaction (or subtransaction) abort that the
// shim's ereport() starts, which is how PostgreSQL cleans up after errors.
class SpiCall {
 public:
  SpiCall();
  SpiCall(const SpiCall &) = delete;
  SpiCall &operator=(const SpiCall &) = delete;

  // Runs a kept plan; returns the number of rows processed or returned.
  // With a snapshot, the statement runs under it instead of a fresh one.
  uint64 Execute(PlanId id, Datum *values, const char *nulls, long max_rows, Snapshot snapshot = nullptr);
  // Opens a read-only cursor on a kept plan (fetch with Fetch()); it is
  // closed by Finish() or the transaction's end.
  void OpenCursor(PlanId id, Datum *values, const char *nulls);
  // The next `count` rows of the cursor into SPI_tuptable; how many.
  uint64 Fetch(long count);
  // Column `col` (1-based) of result row `row`.
  Datum Column(uint64 row, int col, bool *isnull);
  // Throws a clear error (42804) unless result column `col` (1-based), which
  // reads table column `name`, has type `type` or `also`.
  void CheckColumnType(int col, const char *name, Oid type, Oid also = InvalidOid);
  // A detoasted copy of a varlena datum, made in the caller's memory context
  // so that it outlives the SPI connection.
  Datum CopyOut(Datum value);
  void Finish();

 private:
  MemoryContext outer_;
  Portal portal_ = nullptr;
  std::optional<PlanUse> cursor_use_;  // the cursor's plan runs until Finish()
};

// ---------------------------------------------------------- table_shape.cpp

// True if `index` is a plain, valid btree on key_hash alone of `relid` (the
// direct paths probe it). PostgreSQL calls only.
bool IndexAllowsDirectPaths(Oid relid, Oid index);

// True if the rows of `rel` are exactly what the direct paths decode and
// build: a heap table with the five columns of cache_entries, in order, with
// their types, typmods, collation and NOT NULL, and no dropped, added or
// generated column. Checked on every direct read and write, on the opened
// (locked) relation. PostgreSQL calls only.
bool TupleShapeMatches(Relation rel);

// The name of the first column of cache_entries (in `relid`) whose type the
// SQL path would misread, or for a write silently convert (a bytea value
// into a text column, say), with its type and the expected one; null if
// there is none. PostgreSQL calls only.
const char *SqlColumnMismatch(Oid relid, bool for_write, Oid *actual, Oid *expected);

// Throws 42804 if the table has a column whose type the SQL path would
// misread (reads) or silently convert (writes).
void CheckSqlColumns(bool for_write);

// True if an overwrite of `rel` (whose shape matches) may skip the executor:
// nothing else has to run on an update (triggers, row level security, CHECK
// constraints, other indexes, inheritance) and the caller has table-level
// UPDATE and SELECT. PostgreSQL calls only.
bool PlainForDirectWrite(Relation rel, Oid index);

// ------------------------------------------------------------ read_path.cpp

// The key's index entry: the first 16 bytes of its SHA-256.
pg_uuid_t KeyHash(const text *key);

// What a direct step (an index-scan read, an in-place overwrite) did.
// kUseSql: nothing was done, the SQL path must be used. kNoRow: an overwrite
// found no row to update. kPlansChanged: the table changed (an invalidation
// arrived while it was being locked, or it is gone); look again and retry.
enum class Direct { kDone, kNoRow, kUseSql, kPlansChanged };

// Runs a direct step (a Guarded() callback returning Direct) at most twice,
// preparing the plans again when they changed under it. Returns kUseSql when
// the step is disabled (`enabled` false) or the table's shape does not allow
// it.
template <typename Step>
Direct RunDirect(Oid schema, bool enabled, Step step) {
  for (int attempt = 0; enabled && OidIsValid(g_table.index) && attempt < 2; attempt++) {
    // Guarded() returns scalars: the outcome travels as an int.
    auto outcome = static_cast<Direct>(Guarded([&] { return static_cast<int>(step()); }));
    if (outcome != Direct::kPlansChanged) return outcome;
    EnsurePlans(schema);
  }
  return Direct::kUseSql;
}

// A snapshot as SPI takes one for a volatile function: after a command
// counter increment, so that everything done so far is seen, including
// earlier in the calling statement. The caller unregisters it.
Snapshot FreshSnapshot();

// Starts a scan of the key_hash index for `hash`.
IndexScanDesc BeginHashScan(Relation rel, Relation irel, Snapshot snapshot, const pg_uuid_t &hash);

// A live entry: its value (a detoasted copy in the caller's memory context,
// when asked for), kind and expiry.
struct Entry {
  bool found = false;
  char kind = kKindText;
  bool expires = false;
  TimestampTz expires_at = 0;
  Datum value = 0;
};

// The live entry for `key`, if any, read under `snapshot` (null: a fresh
// snapshot for this read alone).
Entry Find(Oid schema, const text *key, bool want_value, Snapshot snapshot = nullptr);

// Find() for the cache_get* functions, which count hits and misses.
Entry FindValue(Oid schema, const text *key, Snapshot snapshot = nullptr);

// Makes sure a value can be returned as text in the database encoding.
void CheckText(const Entry &entry);

// Throws 22004 for a NULL in a column the functions never leave NULL.
[[noreturn]] void ThrowNullColumn(const char *column);

// A non-owning reference to a callable (a lambda of the caller's frame), so
// that the cache core can call back without std::function's allocation.
template <typename Signature>
class FunctionRef;
template <typename R, typename... Args>
class FunctionRef<R(Args...)> {
 public:
  template <typename F>
  FunctionRef(F &callable) noexcept  // NOLINT: implicit on purpose
      : object_(&callable), call_([](void *object, Args... args) -> R {
          return (*static_cast<F *>(object))(std::forward<Args>(args)...);
        }) {}
  R operator()(Args... args) const { return call_(object_, std::forward<Args>(args)...); }

 private:
  void *object_;
  R (*call_)(void *, Args...);
};

// ----------------------------------------------------------- write_path.cpp

// Raises 25006 in a read-only transaction (and refuses parallel mode):
// `function` names the caller in the message.
void CheckWritable(const char *function);

// Writes one entry; value is a varlena of the given kind.
void Store(Oid schema, const text *key, Datum value, char kind, bool expires, TimestampTz expires_at);

// Deletes the entry of `key`; true if it was live.
bool Delete(Oid schema, const text *key);

// Deletes every expired entry; returns how many.
uint64 Cleanup(Oid schema);

// Sets keys[i] to values[i] (text) in one statement; a key given twice keeps
// its last value.
void MultiSet(Oid schema, const std::vector<text *> &keys, const std::vector<text *> &values,
              bool expires, TimestampTz expires_at);

// --------------------------------------------------------------- mutate.cpp

// A key as a read-modify-write sees it, with its slot locked.
struct Current {
  bool live = false;  // a live entry of this key
  char kind = kKindText;
  bool expires = false;
  TimestampTz expires_at = 0;
  Datum value = 0;      // when live and asked for: a detoasted copy
  TimestampTz now = 0;  // the wall clock when the slot was read
};

// What a read-modify-write does with it.
struct Change {
  enum class Op { kNothing, kWrite, kSetExpiry, kDelete };
  Op op = Op::kNothing;
  Datum value = 0;       // kWrite: a varlena of `kind`
  char kind = kKindText;  // kWrite
  bool expires = false;   // kWrite, kSetExpiry
  TimestampTz expires_at = 0;

  static Change Write(Datum value, char kind, bool expires, TimestampTz expires_at) {
    Change c;
    c.op = Op::kWrite;
    c.value = value;
    c.kind = kind;
    c.expires = expires;
    c.expires_at = expires_at;
    return c;
  }
  static Change SetExpiry(bool expires, TimestampTz expires_at) {
    Change c;
    c.op = Op::kSetExpiry;
    c.expires = expires;
    c.expires_at = expires_at;
    return c;
  }
  static Change Delete() {
    Change c;
    c.op = Op::kDelete;
    return c;
  }
};

// Atomically reads and changes one key: locks its slot (waiting for a
// concurrent writer of the same key, as UPDATE does), passes its state to
// `decide`, and applies the change `decide` returns. Under READ COMMITTED a
// concurrent change is waited for and then seen; under REPEATABLE READ and
// SERIALIZABLE it raises a serialization failure (40001), as UPDATE does:
// never a lost update. `decide` may be called more than once (when a
// concurrent session inserted the key meanwhile) and must depend only on
// its argument; it may throw (nothing is written then). `function` names the
// SQL function in a read-only transaction's error.
void Mutate(Oid schema, const char *function, const text *key, bool want_value,
            FunctionRef<Change(const Current &)> decide);

// Redis MSETNX: sets every pair (text values) only if none of the keys is
// live; true if set. All or nothing, also against concurrent writers.
bool MultiSetNx(Oid schema, const std::vector<text *> &keys, const std::vector<text *> &values,
                bool expires, TimestampTz expires_at);

// ------------------------------------------------------------- keyspace.cpp

// Deletes the listed keys (in key_hash order, each once); returns how many
// were live.
int64 DeleteMany(Oid schema, const std::vector<text *> &keys);

// How many of the listed keys are live (a key listed twice counts twice),
// all read under one snapshot.
int64 CountLive(Oid schema, const std::vector<text *> &keys);

// Every live key matching the Redis glob `pattern`, passed to `emit`.
void ForEachKey(Oid schema, const text *pattern, FunctionRef<void(text *)> emit);

// One step of a SCAN: examines about `count` rows from `cursor` on (in
// key_hash order), passes the live keys that match `pattern` to `emit`, and
// returns the next cursor (0 when the iteration is over).
int64 ScanStep(Oid schema, int64 cursor, const text *pattern, int64 count,
               FunctionRef<void(text *)> emit);

// Deletes every entry; returns how many were live.
int64 Flush(Oid schema);

// The number of live entries.
int64 DbSize(Oid schema);

}  // namespace fastpgcache

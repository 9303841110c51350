// Read-modify-write of one key (SET NX/XX/KEEPTTL/GET, INCR, APPEND,
// EXPIRE, PERSIST, GETDEL, GETEX ...) and MSETNX.
//
// Mutate() locks the key's slot (its row, found by key_hash) before it reads
// it, so that two sessions changing the same key are serialized exactly as
// two UPDATEs would be: under READ COMMITTED the second waits and then sees
// the first one's result; under REPEATABLE READ it gets a serialization
// failure. A key with no row is inserted with ON CONFLICT DO NOTHING: if a
// concurrent session inserted it first, the whole step runs again against
// that row.
//
// Two paths, as for cache_set: when the table is plain (table_shape.cpp) the
// row is found through the index, locked with table_tuple_lock() (following
// its update chain under READ COMMITTED, as EvalPlanQual does for UPDATE),
// and changed with table_tuple_update()/table_tuple_delete(), without an
// executor. Otherwise, and for a key with no row, the SQL does it (SELECT
// ... FOR UPDATE, then UPDATE, DELETE or INSERT ... ON CONFLICT DO NOTHING),
// applying row level security, triggers, extra columns and every other table
// feature.

#include "cache.hpp"

extern "C" {
#include "access/genam.h"
#include "access/relation.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/pg_type.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
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

// The direct path's state between locking the row and changing it. Plain
// data: if `decide` throws in between, the transaction's abort releases
// what is still open (relations, snapshot, buffer pin).
struct DirectRow {
  Relation rel;
  Relation irel;
  Snapshot snapshot;
  TupleTableSlot *slot;  // the locked row
};

void CloseDirect(DirectRow *d) {
  if (d->slot != nullptr) ExecDropSingleTupleTableSlot(d->slot);
  if (d->snapshot != nullptr) UnregisterSnapshot(d->snapshot);
  if (d->irel != nullptr) index_close(d->irel, NoLock);
  if (d->rel != nullptr) table_close(d->rel, NoLock);
  *d = DirectRow{};
}

// Finds and locks the row of `hash` without an executor and reads it into
// `cur`. kDone: locked, `d` open. kNoRow: no row (the SQL inserts).
// kUseSql: the table is not plain, or the row is not what a plain table
// would hold. kPlansChanged: the table changed; look again. Raises 40001
// when REPEATABLE READ finds the row changed since its snapshot. PostgreSQL
// calls only: one Guarded() step.
Direct LockRowDirect(const pg_uuid_t &hash, const text *key, bool want_value, DirectRow *d, Current *cur) {
  *d = DirectRow{};
  d->rel = try_table_open(g_table.relid, RowExclusiveLock);
  if (d->rel == nullptr) return Direct::kPlansChanged;
  if (!g_table.valid) {
    CloseDirect(d);
    return Direct::kPlansChanged;
  }
  // SELECT ... FOR UPDATE needs SELECT and UPDATE: PlainForDirectWrite
  // checks both.
  if (!TupleShapeMatches(d->rel) || !PlainForDirectWrite(d->rel, g_table.index)) {
    CloseDirect(d);
    return Direct::kUseSql;
  }
  d->irel = try_relation_open(g_table.index, RowExclusiveLock);
  if (d->irel == nullptr || !g_table.valid || d->irel->rd_rel->relkind != RELKIND_INDEX) {
    if (d->irel != nullptr) relation_close(d->irel, RowExclusiveLock);
    d->irel = nullptr;
    CloseDirect(d);
    return Direct::kPlansChanged;
  }
  d->snapshot = FreshSnapshot();
  d->slot = table_slot_create(d->rel, nullptr);
  IndexScanDesc scan = BeginHashScan(d->rel, d->irel, d->snapshot, hash);
  bool found = index_getnext_slot(scan, ForwardScanDirection, d->slot);
  ItemPointerData tid = d->slot->tts_tid;
  index_endscan(scan);
  if (!found) {
    CloseDirect(d);
    return Direct::kNoRow;
  }
  TM_FailureData tmfd;
  int flags = IsolationUsesXactSnapshot() ? 0 : TUPLE_LOCK_FLAG_FIND_LAST_VERSION;
  TM_Result result = table_tuple_lock(d->rel, &tid, d->snapshot, d->slot, GetCurrentCommandId(false),
                                      LockTupleExclusive, LockWaitBlock, flags, &tmfd);
  switch (result) {
    case TM_Ok:
      break;
    case TM_Updated:
    case TM_Deleted:
      if (IsolationUsesXactSnapshot())
        ereport(ERROR, (errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
                        errmsg("could not serialize access due to concurrent %s",
                               result == TM_Updated ? "update" : "delete")));
      CloseDirect(d);
      return result == TM_Deleted ? Direct::kNoRow : Direct::kUseSql;
    default:  // changed by this transaction since the snapshot, or invisible: let SQL decide
      CloseDirect(d);
      return Direct::kUseSql;
  }
  // The latest version: still the same slot, and what the functions write.
  bool isnull;
  Datum row_hash = slot_getattr(d->slot, kAttKeyHash, &isnull);
  if (isnull || std::memcmp(DatumGetUUIDP(row_hash)->data, hash.data, UUID_LEN) != 0) {
    CloseDirect(d);
    return Direct::kUseSql;  // the row is locked; SQL finds the slot's row again
  }
  // TupleShapeMatches: key, kind and value are NOT NULL, with these types.
  text *row_key = DatumGetTextPP(slot_getattr(d->slot, kAttKey, &isnull));
  Size key_len = VARSIZE_ANY_EXHDR(key);
  if (VARSIZE_ANY_EXHDR(row_key) != key_len || std::memcmp(VARDATA_ANY(row_key), VARDATA_ANY(key), key_len) != 0)
    return Direct::kDone;  // another key's slot: absent (a write takes it over)
  Datum expires_at = slot_getattr(d->slot, kAttExpiresAt, &isnull);
  if (!isnull && DatumGetTimestampTz(expires_at) <= cur->now) return Direct::kDone;  // expired: absent
  cur->live = true;
  cur->expires = !isnull;
  cur->expires_at = isnull ? 0 : DatumGetTimestampTz(expires_at);
  cur->kind = DatumGetChar(slot_getattr(d->slot, kAttKind, &isnull));
  if (want_value) cur->value = PointerGetDatum(PG_DETOAST_DATUM_COPY(slot_getattr(d->slot, kAttValue, &isnull)));
  return Direct::kDone;
}

// Applies `change` to the row LockRowDirect() locked, and closes `d`.
// kDone, or kUseSql when it could not (nothing changed: SQL does it).
// PostgreSQL calls only: one Guarded() step.
Direct ApplyDirect(DirectRow *d, const pg_uuid_t &hash, const text *key, const Change &change) {
  ItemPointerData tid = d->slot->tts_tid;
  Direct outcome = Direct::kDone;
  if (change.op == Change::Op::kWrite || change.op == Change::Op::kSetExpiry) {
    TupleTableSlot *new_slot = table_slot_create(d->rel, nullptr);
    ExecClearTuple(new_slot);
    if (change.op == Change::Op::kWrite) {
      new_slot->tts_values[kAttKeyHash - 1] = UUIDPGetDatum(&hash);
      new_slot->tts_values[kAttKind - 1] = CharGetDatum(change.kind);
      new_slot->tts_values[kAttKey - 1] = PointerGetDatum(key);
      new_slot->tts_values[kAttValue - 1] = change.value;
      for (AttrNumber att : {kAttKeyHash, kAttKind, kAttKey, kAttValue}) new_slot->tts_isnull[att - 1] = false;
    } else {
      // Only the expiry changes: every other column as it is (an external
      // TOAST value is kept, not copied).
      slot_getallattrs(d->slot);
      for (AttrNumber att : {kAttKeyHash, kAttKind, kAttKey, kAttValue}) {
        new_slot->tts_values[att - 1] = d->slot->tts_values[att - 1];
        new_slot->tts_isnull[att - 1] = d->slot->tts_isnull[att - 1];
      }
    }
    new_slot->tts_values[kAttExpiresAt - 1] = TimestampTzGetDatum(change.expires_at);
    new_slot->tts_isnull[kAttExpiresAt - 1] = !change.expires;
    ExecStoreVirtualTuple(new_slot);
    TM_FailureData tmfd;
    LockTupleMode lockmode;
    bool update_indexes = false;
    TM_Result result = table_tuple_update(d->rel, &tid, new_slot, GetCurrentCommandId(true), d->snapshot,
                                          InvalidSnapshot, true, &tmfd, &lockmode, &update_indexes);
    if (result == TM_Ok) {
      if (update_indexes) {
        Datum ivalues[1] = {UUIDPGetDatum(&hash)};
        bool inulls[1] = {false};
        index_insert(d->irel, ivalues, inulls, &new_slot->tts_tid, d->rel, UNIQUE_CHECK_YES, true,
                     BuildIndexInfo(d->irel));
      }
    } else {
      outcome = Direct::kUseSql;
    }
    ExecDropSingleTupleTableSlot(new_slot);
  } else if (change.op == Change::Op::kDelete) {
    if (pg_class_aclcheck(RelationGetRelid(d->rel), GetUserId(), ACL_DELETE) != ACLCHECK_OK) {
      outcome = Direct::kUseSql;  // SQL raises the permission error
    } else {
      TM_FailureData tmfd;
      TM_Result result = table_tuple_delete(d->rel, &tid, GetCurrentCommandId(true), d->snapshot, InvalidSnapshot,
                                            true, &tmfd, false);
      if (result != TM_Ok) outcome = Direct::kUseSql;
    }
  }
  CloseDirect(d);
  if (outcome == Direct::kDone && change.op != Change::Op::kNothing) CommandCounterIncrement();
  return outcome;
}

// The direct path of Mutate(). True if the change was made.
bool MutateDirect(Oid schema, const pg_uuid_t &hash, const text *key, bool want_value,
                  FunctionRef<Change(const Current &)> decide) {
  for (int attempt = 0; guc::direct_writes && OidIsValid(g_table.index) && attempt < 2; attempt++) {
    DirectRow d{};
    Current cur;
    cur.now = GetCurrentTimestamp();
    auto locked = static_cast<Direct>(Guarded([&] { return static_cast<int>(LockRowDirect(hash, key, want_value, &d, &cur)); }));
    if (locked == Direct::kPlansChanged) {
      EnsurePlans(schema);
      continue;
    }
    if (locked != Direct::kDone) return false;
    // A kWrite of an absent key over another key's (or an expired) row is
    // an overwrite of the slot, as the SQL path's UPDATE is.
    Change change = decide(cur);
    if (change.op == Change::Op::kSetExpiry && !cur.live) change = Change();  // as the SQL path: nothing to change
    auto applied = static_cast<Direct>(Guarded([&] { return static_cast<int>(ApplyDirect(&d, hash, key, change)); }));
    return applied == Direct::kDone;
  }
  return false;
}

}  // namespace

void Mutate(Oid schema, const char *function, const text *key, bool want_value,
            FunctionRef<Change(const Current &)> decide) {
  CheckWritable(function);
  EnsurePlans(schema);
  pg_uuid_t hash = KeyHash(key);
  if (MutateDirect(schema, hash, key, want_value, decide)) return;
  CheckSqlColumns(true);
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

bool MultiSetNx(Oid schema, const std::vector<text *> &keys, const std::vector<text *> &values,
                bool expires, TimestampTz expires_at) {
  CheckWritable("cache_msetnx()");
  EnsurePlans(schema);
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

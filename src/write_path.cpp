// Writing entries: the in-place overwrite, and the SQL path.
//
// A set first tries to overwrite the key's row directly: the row is found
// through the index under a fresh snapshot and updated with
// table_tuple_update() (a HOT update, or a new index entry when the new
// version does not fit on the page), after the same privilege checks as SQL.
// That is only the same as the SQL when nothing else must run on an update
// (table_shape.cpp decides), and when the row was not changed concurrently;
// otherwise the kept plans do the work: a plain UPDATE (the common case for a
// cache, a HOT update), and only when there is no row an INSERT ... ON
// CONFLICT DO UPDATE, which also settles a race with a concurrent first set
// of the same key.

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
#include "utils/array.h"
#include "utils/snapmgr.h"
}

#include <algorithm>
#include <cstring>
#include <string>
#include <unordered_map>

#include "guc.hpp"
#include "stats.hpp"

namespace fastpgcache {
namespace {

// Overwrites the row of `hash` in place, as `UPDATE ... WHERE key_hash = $1`
// would, without an executor: finds the visible row through the index and
// calls table_tuple_update(). Declines (kUseSql, having changed nothing) when
// the table is not plain enough (PlainForDirectWrite) and when the row was
// changed concurrently (the SQL then re-checks it, or raises the
// serialization error). kNoRow: no row, the caller inserts. Plain PostgreSQL
// calls only: one Guarded() step.
Direct DirectUpdate(const pg_uuid_t &hash, const text *key, Datum value, char kind, bool expires,
                    TimestampTz expires_at) {
  Relation rel = try_table_open(g_table.relid, RowExclusiveLock);
  if (rel == nullptr) return Direct::kPlansChanged;  // dropped since it was looked up
  if (!g_table.valid) {
    table_close(rel, RowExclusiveLock);
    return Direct::kPlansChanged;
  }
  // The new row is built from exactly five values: only for a table whose
  // rows are exactly those five columns (an extra or dropped column would be
  // left unset; SQL fills it).
  if (!TupleShapeMatches(rel) || !PlainForDirectWrite(rel, g_table.index)) {
    table_close(rel, RowExclusiveLock);
    return Direct::kUseSql;
  }
  // The index can be gone although the table's lock was taken after it was
  // looked up (REINDEX CONCURRENTLY drops the old one): look again.
  Relation irel = try_relation_open(g_table.index, RowExclusiveLock);
  if (irel == nullptr || !g_table.valid || irel->rd_rel->relkind != RELKIND_INDEX) {
    if (irel != nullptr) relation_close(irel, RowExclusiveLock);
    table_close(rel, RowExclusiveLock);
    return Direct::kPlansChanged;
  }
  Snapshot snapshot = FreshSnapshot();
  IndexScanDesc scan = BeginHashScan(rel, irel, snapshot, hash);
  TupleTableSlot *old_slot = table_slot_create(rel, nullptr);
  Direct outcome = Direct::kNoRow;
  if (index_getnext_slot(scan, ForwardScanDirection, old_slot)) {
    ItemPointerData otid = old_slot->tts_tid;
    TupleTableSlot *new_slot = table_slot_create(rel, nullptr);
    ExecClearTuple(new_slot);
    new_slot->tts_values[kAttKeyHash - 1] = UUIDPGetDatum(&hash);
    new_slot->tts_values[kAttExpiresAt - 1] = TimestampTzGetDatum(expires_at);
    new_slot->tts_values[kAttKind - 1] = CharGetDatum(kind);
    new_slot->tts_values[kAttKey - 1] = PointerGetDatum(key);
    new_slot->tts_values[kAttValue - 1] = value;
    new_slot->tts_isnull[kAttKeyHash - 1] = false;
    new_slot->tts_isnull[kAttExpiresAt - 1] = !expires;
    new_slot->tts_isnull[kAttKind - 1] = false;
    new_slot->tts_isnull[kAttKey - 1] = false;
    new_slot->tts_isnull[kAttValue - 1] = false;
    ExecStoreVirtualTuple(new_slot);
    TM_FailureData tmfd;
    LockTupleMode lockmode;
    bool update_indexes = false;
    TM_Result result = table_tuple_update(rel, &otid, new_slot, GetCurrentCommandId(true), snapshot,
                                          InvalidSnapshot, true, &tmfd, &lockmode, &update_indexes);
    if (result == TM_Ok) {
      if (update_indexes) {
        // Not a HOT update: the new version needs its own index entry.
        Datum ivalues[1] = {UUIDPGetDatum(&hash)};
        bool inulls[1] = {false};
        index_insert(irel, ivalues, inulls, &new_slot->tts_tid, rel, UNIQUE_CHECK_YES, true, BuildIndexInfo(irel));
      }
      outcome = Direct::kDone;
    } else {
      outcome = Direct::kUseSql;  // changed concurrently, or earlier in this command
    }
    ExecDropSingleTupleTableSlot(new_slot);
  }
  ExecDropSingleTupleTableSlot(old_slot);
  index_endscan(scan);
  UnregisterSnapshot(snapshot);
  index_close(irel, NoLock);
  table_close(rel, NoLock);
  if (outcome == Direct::kDone) CommandCounterIncrement();
  return outcome;
}

}  // namespace

void CheckWritable(const char *function) {
  // The SQL path would refuse too (the executor checks), but the direct
  // overwrite has no executor: refuse every write the same way, first.
  Guarded([&] {
    PreventCommandIfReadOnly(function);
    PreventCommandIfParallelMode(function);
  });
}

void Store(Oid schema, const text *key, Datum value, char kind, bool expires, TimestampTz expires_at) {
  CheckWritable("cache_set()");
  EnsurePlans(schema);
  pg_uuid_t hash = KeyHash(key);
  Direct outcome =
      RunDirect(schema, guc::direct_writes, [&] { return DirectUpdate(hash, key, value, kind, expires, expires_at); });
  if (outcome == Direct::kDone) {
    StatsAdd(kStatSets);
    return;
  }
  CheckSqlColumns(true);
  bool try_update = outcome != Direct::kNoRow;  // no row: insert at once
  Datum values[5] = {UUIDPGetDatum(&hash), PointerGetDatum(key), value, CharGetDatum(kind),
                     TimestampTzGetDatum(expires_at)};
  const char nulls[5] = {' ', ' ', ' ', ' ', expires ? ' ' : 'n'};
  SpiCall spi;
  if (!try_update || spi.Execute(kUpdate, values, nulls, 0) == 0) spi.Execute(kUpsert, values, nulls, 0);
  spi.Finish();
  StatsAdd(kStatSets);
}

bool Delete(Oid schema, const text *key) {
  CheckWritable("cache_delete()");
  EnsurePlans(schema);
  pg_uuid_t hash = KeyHash(key);
  Datum values[3] = {UUIDPGetDatum(&hash), PointerGetDatum(key), TimestampTzGetDatum(GetCurrentTimestamp())};
  bool live = false;
  SpiCall spi;
  if (spi.Execute(kDelete, values, nullptr, 0) > 0) {
    bool isnull;
    live = DatumGetBool(spi.Column(0, 1, &isnull));
  }
  spi.Finish();
  if (live) StatsAdd(kStatDeletes);
  return live;
}

uint64 Cleanup(Oid schema) {
  CheckWritable("cache_cleanup()");
  EnsurePlans(schema);
  Datum values[1] = {TimestampTzGetDatum(GetCurrentTimestamp())};
  SpiCall spi;
  uint64 deleted = spi.Execute(kCleanup, values, nullptr, 0);
  spi.Finish();
  StatsAdd(kStatRemovedByCleanup, deleted);
  return deleted;
}

void MultiSet(Oid schema, const std::vector<text *> &keys, const std::vector<text *> &values,
              bool expires, TimestampTz expires_at) {
  CheckWritable("cache_mset()");
  // One row per distinct key hash; the last occurrence wins.
  std::vector<pg_uuid_t> hashes(keys.size());
  std::unordered_map<std::string, std::size_t> last;
  last.reserve(keys.size());
  for (std::size_t i = 0; i < keys.size(); i++) {
    hashes[i] = KeyHash(keys[i]);
    last[std::string(reinterpret_cast<const char *>(hashes[i].data), UUID_LEN)] = i;
  }
  std::vector<std::size_t> rows;
  rows.reserve(last.size());
  for (const auto &kv : last) rows.push_back(kv.second);
  // Rows are upserted, and so locked, in key_hash order: two batches that
  // share keys then lock them in the same order and cannot deadlock.
  std::sort(rows.begin(), rows.end(), [&](std::size_t a, std::size_t b) {
    return std::memcmp(hashes[a].data, hashes[b].data, UUID_LEN) < 0;
  });
  std::vector<Datum> hash_datums, key_datums, value_datums;
  for (std::size_t i : rows) {
    hash_datums.push_back(UUIDPGetDatum(&hashes[i]));
    key_datums.push_back(PointerGetDatum(keys[i]));
    value_datums.push_back(PointerGetDatum(values[i]));  // text and bytea share one representation
  }
  int n = static_cast<int>(hash_datums.size());
  Datum args[4];
  Guarded([&] {
    args[0] = PointerGetDatum(construct_array(hash_datums.data(), n, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR));
    args[1] = PointerGetDatum(construct_array(key_datums.data(), n, TEXTOID, -1, false, TYPALIGN_INT));
    args[2] = PointerGetDatum(construct_array(value_datums.data(), n, BYTEAOID, -1, false, TYPALIGN_INT));
  });
  args[3] = TimestampTzGetDatum(expires_at);
  const char nulls[4] = {' ', ' ', ' ', expires ? ' ' : 'n'};
  EnsurePlans(schema);
  CheckSqlColumns(true);
  SpiCall spi;
  spi.Execute(kMultiUpsert, args, nulls, 0);
  spi.Finish();
  StatsAdd(kStatSets, keys.size());
}

}  // namespace fastpgcache

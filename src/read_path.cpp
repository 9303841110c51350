// Finding a live entry.
//
// Reads take a shorter road when they may: one probe of the primary key index
// (index_beginscan on key_hash with the uuid btree's own equality), with the
// same snapshot, visibility and privilege rules as the SQL, and no second
// executor. They fall back to the SPI plan when the table has row level
// security, when the caller lacks table-level SELECT (the SQL then applies
// column privileges or raises the usual error), when the table does not have
// the expected shape, or when fastpgcache.index_scan_reads is off.
//
// The table's primary key is key_hash: the first 16 bytes of the SHA-256 of
// the key, so keys of any length fit in the btree. Lookups compare the full
// key as well, so a collision can never return another key's value.

#include "cache.hpp"

extern "C" {
#include "access/genam.h"
#include "access/relation.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "executor/tuptable.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/fmgroids.h"
#include "utils/snapmgr.h"
}

#include <cstring>

#include "guc.hpp"
#include "key_hash.hpp"
#include "stats.hpp"

namespace fastpgcache {

pg_uuid_t KeyHash(const text *key) {
  static_assert(UUID_LEN == kKeyHashLen, "key_hash is a uuid");
  pg_uuid_t hash;
  if (!KeyHashBytes(VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key), hash.data))
    throw CacheError(sqlstate::kOutOfMemory, "could not compute the SHA-256 of a cache key",
                     "OpenSSL's digest functions failed.");
  return hash;
}

Snapshot FreshSnapshot() {
  CommandCounterIncrement();
  return RegisterSnapshot(GetTransactionSnapshot());
}

IndexScanDesc BeginHashScan(Relation rel, Relation irel, Snapshot snapshot, const pg_uuid_t &hash) {
  ScanKeyData skey;
  ScanKeyInit(&skey, 1, BTEqualStrategyNumber, F_UUID_EQ, UUIDPGetDatum(&hash));
  IndexScanDesc scan = index_beginscan(rel, irel, snapshot, 1, 0);
  index_rescan(scan, &skey, 1, nullptr, 0);
  return scan;
}

namespace {

// One probe of the key_hash index, outside any executor, under `snapshot` or,
// when that is null, under a fresh one (the one SPI would take for a volatile
// function). kUseSql: nothing was read (row level security, no table-level
// SELECT, a table that does not look as the extension made it).
// kPlansChanged: the table changed or is gone. Plain PostgreSQL calls only:
// it runs inside one Guarded() step.
Direct IndexScanFind(const text *key, const pg_uuid_t &hash, TimestampTz now, bool want_value, Snapshot snapshot,
                     Entry *out) {
  Relation rel = try_table_open(g_table.relid, AccessShareLock);
  if (rel == nullptr) return Direct::kPlansChanged;  // dropped since it was looked up
  // Locking processes pending invalidations: the table may have changed
  // since it was looked up.
  if (!g_table.valid) {
    table_close(rel, AccessShareLock);
    return Direct::kPlansChanged;
  }
  if (!TupleShapeMatches(rel) || rel->rd_rel->relrowsecurity ||
      pg_class_aclcheck(g_table.relid, GetUserId(), ACL_SELECT) != ACLCHECK_OK) {
    table_close(rel, AccessShareLock);
    return Direct::kUseSql;
  }
  // The index can be gone although the table's lock was taken after it was
  // looked up (REINDEX CONCURRENTLY drops the old one): look again.
  Relation irel = try_relation_open(g_table.index, AccessShareLock);
  if (irel == nullptr || !g_table.valid || irel->rd_rel->relkind != RELKIND_INDEX) {
    if (irel != nullptr) relation_close(irel, AccessShareLock);
    table_close(rel, AccessShareLock);
    return Direct::kPlansChanged;
  }
  bool own_snapshot = snapshot == nullptr;
  if (own_snapshot) snapshot = FreshSnapshot();
  IndexScanDesc scan = BeginHashScan(rel, irel, snapshot, hash);
  TupleTableSlot *slot = table_slot_create(rel, nullptr);
  const char *key_data = VARDATA_ANY(key);
  Size key_len = VARSIZE_ANY_EXHDR(key);
  while (index_getnext_slot(scan, ForwardScanDirection, slot)) {
    // TupleShapeMatches: key, kind and value are NOT NULL, with these types.
    bool isnull;
    text *row_key = DatumGetTextPP(slot_getattr(slot, kAttKey, &isnull));
    if (VARSIZE_ANY_EXHDR(row_key) != key_len || std::memcmp(VARDATA_ANY(row_key), key_data, key_len) != 0)
      continue;  // another key with the same hash
    Datum expires_at = slot_getattr(slot, kAttExpiresAt, &isnull);
    out->expires = !isnull;
    out->expires_at = isnull ? 0 : DatumGetTimestampTz(expires_at);
    if (out->expires && out->expires_at <= now) break;  // expired: a miss
    out->found = true;
    out->kind = DatumGetChar(slot_getattr(slot, kAttKind, &isnull));
    // Copied (and detoasted) while the snapshot still protects the row.
    if (want_value) out->value = PointerGetDatum(PG_DETOAST_DATUM_COPY(slot_getattr(slot, kAttValue, &isnull)));
    break;
  }
  ExecDropSingleTupleTableSlot(slot);
  index_endscan(scan);
  if (own_snapshot) UnregisterSnapshot(snapshot);
  index_close(irel, NoLock);
  table_close(rel, NoLock);
  return Direct::kDone;
}

}  // namespace

Entry Find(Oid schema, const text *key, bool want_value, Snapshot snapshot) {
  pg_uuid_t hash = KeyHash(key);
  TimestampTz now = GetCurrentTimestamp();
  Entry entry;
  EnsurePlans(schema);
  if (RunDirect(schema, guc::index_scan_reads,
                [&] { return IndexScanFind(key, hash, now, want_value, snapshot, &entry); }) == Direct::kDone)
    return entry;
  CheckSqlColumns(false);
  Datum values[3] = {UUIDPGetDatum(&hash), PointerGetDatum(key), TimestampTzGetDatum(now)};
  SpiCall spi;
  if (spi.Execute(want_value ? kGetValue : kGetExpiry, values, nullptr, 1, snapshot) > 0) {
    // The table may have been altered by hand: decode only what has the
    // types this code reads (text and bytea share one representation).
    spi.CheckColumnType(1, "value", BYTEAOID, TEXTOID);
    spi.CheckColumnType(2, "kind", CHAROID);
    spi.CheckColumnType(3, "expires_at", TIMESTAMPTZOID);
    bool isnull;
    entry.found = true;
    entry.kind = DatumGetChar(spi.Column(0, 2, &isnull));
    if (isnull) ThrowNullColumn("kind");
    Datum expires_at = spi.Column(0, 3, &isnull);
    entry.expires = !isnull;
    entry.expires_at = isnull ? 0 : DatumGetTimestampTz(expires_at);
    if (want_value) {
      Datum value = spi.Column(0, 1, &isnull);
      if (isnull) ThrowNullColumn("value");
      entry.value = spi.CopyOut(value);
    }
  }
  spi.Finish();
  return entry;
}

void ThrowNullColumn(const char *column) {
  throw CacheError(sqlstate::kNullValueNotAllowed, std::string("cache entry has a NULL ") + column,
                   "The table cache_entries was changed by hand: the functions never store NULL there.",
                   "Delete the entry, or restore the column's NOT NULL constraint.");
}

Entry FindValue(Oid schema, const text *key, Snapshot snapshot) {
  Entry entry = Find(schema, key, true, snapshot);
  StatsAdd(entry.found ? kStatHits : kStatMisses);
  return entry;
}

void CheckText(const Entry &entry) {
  // Every kind is checked: the functions only store valid text as 't' and
  // 'j', but a row written by hand (INSERT into cache_entries) can hold
  // anything.
  const text *value = reinterpret_cast<const text *>(DatumGetPointer(entry.value));
  bool valid = Guarded([&] { return pg_verifymbstr(VARDATA_ANY(value), VARSIZE_ANY_EXHDR(value), true); });
  if (!valid)
    throw CacheError(sqlstate::kCharacterNotInRepertoire,
                     std::string("cached value is not valid text in encoding ") +
                         Guarded([] { return GetDatabaseEncodingName(); }),
                     entry.kind == kKindBytes ? "The value was stored as bytea." : "",
                     "Use cache_get_bytes() to read it.");
}

}  // namespace fastpgcache

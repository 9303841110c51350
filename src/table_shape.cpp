// When the direct paths may be used on the cache table.
//
// The index-scan reads and the in-place overwrite decode and build rows of
// cache_entries themselves, without an executor. They are only the same as
// the SQL when the table looks exactly as the extension made it and nothing
// else has to run on a read or an update; otherwise the SQL path (plans.cpp)
// does the work, applying whatever the table has (row level security,
// triggers, constraints, other indexes, extra columns and their defaults).
// A table that was changed by hand must never make a direct path misread a
// row or build a wrong one: every assumption is checked here, on the locked
// relation, before each use.

#include "cache.hpp"

extern "C" {
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "catalog/pg_am_d.h"
#include "catalog/pg_collation_d.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "nodes/pg_list.h"
#include "utils/acl.h"
#include "utils/lsyscache.h"
#include "utils/relcache.h"
}

#include <cstring>

namespace fastpgcache {
namespace {

// The columns of cache_entries as fastpgcache--*.sql creates them.
struct ColumnSpec {
  const char *name;
  Oid type;
  bool not_null;
  Oid collation;
};
constexpr int kColumnCount = 5;
const ColumnSpec kColumns[kColumnCount] = {
    {"key_hash", UUIDOID, true, InvalidOid},   {"expires_at", TIMESTAMPTZOID, false, InvalidOid},
    {"kind", CHAROID, true, InvalidOid},       {"key", TEXTOID, true, C_COLLATION_OID},
    {"value", BYTEAOID, true, InvalidOid},
};
static_assert(kAttKeyHash == 1 && kAttExpiresAt == 2 && kAttKind == 3 && kAttKey == 4 && kAttValue == 5,
              "kColumns is in attribute number order");

}  // namespace

bool IndexAllowsDirectPaths(Oid relid, Oid index) {
  if (!OidIsValid(relid) || !OidIsValid(index)) return false;
  // The OID was found by name without a lock: the index may be gone by the
  // time the lock is granted (REINDEX CONCURRENTLY drops the old index).
  Relation irel = try_relation_open(index, AccessShareLock);
  if (irel == nullptr) return false;
  if (irel->rd_rel->relkind != RELKIND_INDEX) {
    relation_close(irel, AccessShareLock);
    return false;
  }
  Form_pg_index form = irel->rd_index;
  bool ok = irel->rd_rel->relam == BTREE_AM_OID && form->indrelid == relid && form->indnatts == 1 &&
            form->indnkeyatts == 1 && form->indkey.values[0] == kAttKeyHash && form->indisunique &&
            form->indimmediate && form->indisvalid && form->indisready && form->indislive &&
            irel->rd_opcintype[0] == UUIDOID &&
            heap_attisnull(irel->rd_indextuple, Anum_pg_index_indpred, nullptr) &&
            heap_attisnull(irel->rd_indextuple, Anum_pg_index_indexprs, nullptr);
  relation_close(irel, AccessShareLock);
  return ok;
}

bool TupleShapeMatches(Relation rel) {
  if (rel->rd_rel->relkind != RELKIND_RELATION || rel->rd_rel->relam != HEAP_TABLE_AM_OID) return false;
  TupleDesc desc = RelationGetDescr(rel);
  if (desc->natts != kColumnCount) return false;  // added or dropped columns
  for (int i = 0; i < kColumnCount; i++) {
    Form_pg_attribute att = TupleDescAttr(desc, i);
    const ColumnSpec &spec = kColumns[i];
    if (att->attisdropped || att->attgenerated != '\0' || att->atttypid != spec.type || att->atttypmod != -1 ||
        att->attnotnull != spec.not_null || std::strcmp(NameStr(att->attname), spec.name) != 0 ||
        (OidIsValid(spec.collation) && att->attcollation != spec.collation))
      return false;
  }
  return true;
}

const char *SqlColumnMismatch(Oid relid, bool for_write, Oid *actual, Oid *expected) {
  if (!OidIsValid(relid)) return nullptr;  // the SQL reports the missing table
  for (const ColumnSpec &spec : kColumns) {
    AttrNumber attnum = get_attnum(relid, spec.name);
    if (attnum == InvalidAttrNumber) return nullptr;  // the SQL reports the missing column
    Oid type = get_atttype(relid, attnum);
    // varchar reads and compares as text; a text value reads as bytea (the
    // same bytes) but cannot be written (SQL would store a bytea value in
    // its escaped text form); every other type must be exact (SQL would
    // convert a timestamptz into local time without an error, say).
    if (type == spec.type || (spec.type == TEXTOID && type == VARCHAROID) ||
        (!for_write && spec.type == BYTEAOID && type == TEXTOID))
      continue;
    *actual = type;
    *expected = spec.type;
    return spec.name;
  }
  return nullptr;
}

bool PlainForDirectWrite(Relation rel, Oid index) {
  Oid relid = RelationGetRelid(rel);
  TupleConstr *constr = RelationGetDescr(rel)->constr;
  List *indexes = RelationGetIndexList(rel);
  bool plain = rel->trigdesc == nullptr && !rel->rd_rel->relrowsecurity && !rel->rd_rel->relhassubclass &&
               !rel->rd_rel->relispartition && rel->rd_rules == nullptr &&
               (constr == nullptr || constr->num_check == 0) && list_length(indexes) == 1 &&
               linitial_oid(indexes) == index &&
               pg_class_aclcheck(relid, GetUserId(), ACL_UPDATE) == ACLCHECK_OK &&
               pg_class_aclcheck(relid, GetUserId(), ACL_SELECT) == ACLCHECK_OK;
  list_free(indexes);
  return plain;
}

}  // namespace fastpgcache

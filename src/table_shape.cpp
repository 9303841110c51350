// When the direct paths may be used on the cache table.
//
// The index-scan reads and the in-place overwrite decode and build rows of
// cache_entries themselves, without an executor. They are only the same as
// the SQL when the table looks exactly as the extension made it and nothing
// else has to run on a read or an update; otherwise the SQL path (plans.cpp)
// does the work, applying whatever the table has (row level security,
// triggers, constraints, other indexes).

#include "cache.hpp"

extern "C" {
#include "access/genam.h"
#include "access/htup_details.h"
#include "catalog/pg_am_d.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "nodes/pg_list.h"
#include "utils/acl.h"
#include "utils/lsyscache.h"
#include "utils/relcache.h"
}

namespace fastpgcache {

bool ShapeAllowsIndexScan(Oid relid, Oid index) {
  static const struct {
    AttrNumber attnum;
    const char *name;
    Oid type;
  } kColumns[] = {{kAttKeyHash, "key_hash", UUIDOID},
                  {kAttExpiresAt, "expires_at", TIMESTAMPTZOID},
                  {kAttKind, "kind", CHAROID},
                  {kAttKey, "key", TEXTOID},
                  {kAttValue, "value", BYTEAOID}};
  if (!OidIsValid(relid) || !OidIsValid(index)) return false;
  for (const auto &col : kColumns) {
    if (get_attnum(relid, col.name) != col.attnum || get_atttype(relid, col.attnum) != col.type) return false;
  }
  Relation irel = index_open(index, AccessShareLock);
  bool ok = irel->rd_rel->relam == BTREE_AM_OID && irel->rd_index->indrelid == relid &&
            irel->rd_index->indnatts == 1 && irel->rd_index->indkey.values[0] == kAttKeyHash &&
            irel->rd_opcintype[0] == UUIDOID &&
            heap_attisnull(irel->rd_indextuple, Anum_pg_index_indpred, nullptr) &&
            heap_attisnull(irel->rd_indextuple, Anum_pg_index_indexprs, nullptr);
  index_close(irel, AccessShareLock);
  return ok;
}

bool PlainForDirectWrite(Relation rel, Oid index) {
  Oid relid = RelationGetRelid(rel);
  TupleConstr *constr = RelationGetDescr(rel)->constr;
  List *indexes = RelationGetIndexList(rel);
  bool plain = rel->trigdesc == nullptr && !rel->rd_rel->relrowsecurity && !rel->rd_rel->relhassubclass &&
               (constr == nullptr || constr->num_check == 0) && list_length(indexes) == 1 &&
               linitial_oid(indexes) == index &&
               pg_class_aclcheck(relid, GetUserId(), ACL_UPDATE) == ACLCHECK_OK &&
               pg_class_aclcheck(relid, GetUserId(), ACL_SELECT) == ACLCHECK_OK;
  list_free(indexes);
  return plain;
}

}  // namespace fastpgcache

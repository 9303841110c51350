// AUTH for the Redis-protocol front: a PostgreSQL role's own password.
//
// The password is checked against the role's stored secret (SCRAM-SHA-256
// or MD5) with PostgreSQL's verifier, plain_crypt_verify(), as password
// authentication over a PostgreSQL connection would. pg_hba.conf does not
// apply (this is not a PostgreSQL connection); what does: the role must
// have LOGIN, a password that has not expired (VALID UNTIL), and CONNECT on
// the database; superusers are refused (use an application role).

#include "resp_worker/resp_worker.hpp"

extern "C" {
#include "access/htup_details.h"
#include "catalog/pg_authid.h"
#include "libpq/crypt.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/syscache.h"
}

namespace fastpgcache {
namespace resp_worker {

AuthResult CheckPassword(const char *user, const char *password) {
  HeapTuple tuple = SearchSysCache1(AUTHNAME, CStringGetDatum(user));
  if (!HeapTupleIsValid(tuple)) return AuthResult::kWrongPassword;
  auto *role = reinterpret_cast<Form_pg_authid>(GETSTRUCT(tuple));
  bool can_login = role->rolcanlogin;
  bool superuser = role->rolsuper;
  Oid roleid = role->oid;
  ReleaseSysCache(tuple);
  if (!can_login) return AuthResult::kWrongPassword;
  const char *logdetail = nullptr;
  char *secret = get_role_password(user, &logdetail);  // NULL: none, or expired
  if (secret == nullptr) return AuthResult::kWrongPassword;
  if (plain_crypt_verify(user, secret, password, &logdetail) != STATUS_OK) return AuthResult::kWrongPassword;
  // Only after the password: a wrong one says nothing about the role.
  if (superuser) return AuthResult::kSuperuser;
  if (pg_database_aclcheck(MyDatabaseId, roleid, ACL_CONNECT) != ACLCHECK_OK) return AuthResult::kNoConnect;
  return AuthResult::kOk;
}

}  // namespace resp_worker
}  // namespace fastpgcache

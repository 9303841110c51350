// The executor of the Redis-protocol front: it runs a batch of commands
// (every ready command of every client of this worker, see resp/server.hpp)
// and returns only when their effects are committed; the server then sends
// the replies. Each client's unit of work (one command, or one MULTI/EXEC
// block) runs as its role (SetUserIdAndSecContext: table grants and row
// level security apply). How a batch is committed together without ever
// deadlocking, and without one unit's failure undoing another's, is at
// PgExecutor::Execute. A MULTI/EXEC block is all or nothing (Redis would
// keep the commands before a failing one: a deliberate difference, see the
// README).

// Every command maps onto the same code as the SQL functions (cache.hpp,
// string_ops.hpp). Values are bytes: what RESP writes is stored as bytea
// (kind 'b'), and GET returns any entry's bytes, text and JSON included.
// Keys are the text column `key`: a key that is not valid text in the
// database encoding (or holds a NUL byte) is refused.

#include "resp_worker/resp_worker.hpp"

extern "C" {
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "commands/dbcommands.h"
#include "datatype/timestamp.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/timeout.h"
}

#include <climits>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "cache.hpp"
#include "guc.hpp"
#include "string_ops.hpp"

namespace fastpgcache {
namespace resp_worker {

char g_dbname[NAMEDATALEN];

namespace {

using resp::CommandId;
using resp::ExecCommand;
using resp::ReplyWriter;
using resp::WorkUnit;

// Unix milliseconds to a timestamptz, clamped to its range.
TimestampTz FromUnixMs(int64 ms) {
  constexpr int64 kEpochShiftMs = static_cast<int64>(POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY * 1000;
  int64 pg_ms;
  TimestampTz ts;
  if (__builtin_sub_overflow(ms, kEpochShiftMs, &pg_ms) || __builtin_mul_overflow(pg_ms, int64{1000}, &ts))
    return ms < 0 ? DT_NOBEGIN + 1 : DT_NOEND - 1;
  if (ts < MIN_TIMESTAMP) return MIN_TIMESTAMP;
  if (ts >= END_TIMESTAMP) return END_TIMESTAMP - 1;
  return ts;
}

// The schema of the installed extension (InvalidOid: not installed), read
// from pg_extension. PostgreSQL calls only.
Oid ExtensionSchemaOid() {
  Relation rel = table_open(ExtensionRelationId, AccessShareLock);
  ScanKeyData key;
  ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber, F_NAMEEQ, CStringGetDatum("fastpgcache"));
  SysScanDesc scan = systable_beginscan(rel, ExtensionNameIndexId, true, nullptr, 1, &key);
  HeapTuple tuple = systable_getnext(scan);
  Oid nsp = HeapTupleIsValid(tuple) ? reinterpret_cast<Form_pg_extension>(GETSTRUCT(tuple))->extnamespace
                                    : InvalidOid;
  systable_endscan(scan);
  table_close(rel, AccessShareLock);
  return nsp;
}

// A key as the text the table holds. Redis keys are any bytes; ours are
// text: refuse what text cannot hold, with a clear error.
text *KeyText(std::string_view key) {
  bool valid = std::memchr(key.data(), '\0', key.size()) == nullptr &&
               Guarded([&] { return pg_verifymbstr(key.data(), static_cast<int>(key.size()), true); });
  if (!valid)
    throw CacheError(sqlstate::kCharacterNotInRepertoire,
                     "invalid key: fastpgcache keys are text in the database encoding, without NUL bytes");
  return reinterpret_cast<text *>(DatumGetPointer(ops::MakeText(key)));
}

std::vector<text *> KeyTexts(const std::vector<std::string_view> &keys) {
  std::vector<text *> out;
  out.reserve(keys.size());
  for (std::string_view k : keys) out.push_back(KeyText(k));
  return out;
}

// A value as bytea (kind 'b'): binary safe.
Datum BytesValue(std::string_view value) {
  return Guarded([&] {
    bytea *out = static_cast<bytea *>(palloc(VARHDRSZ + value.size()));
    SET_VARSIZE(out, VARHDRSZ + value.size());
    std::memcpy(VARDATA(out), value.data(), value.size());
    return PointerGetDatum(out);
  });
}

void BulkOrNull(ReplyWriter &w, bool found, Datum value) {
  if (found)
    w.Bulk(ops::ValueBytes(value));
  else
    w.Null();
}

// The expiry of a SET/GETEX request as a timestamptz.
bool ExpiryOf(resp::ExpiryMode mode, int64 expire_at_ms, TimestampTz *at) {
  switch (mode) {
    case resp::ExpiryMode::kEx:
    case resp::ExpiryMode::kPx:
    case resp::ExpiryMode::kExAt:
    case resp::ExpiryMode::kPxAt:
      *at = FromUnixMs(expire_at_ms);
      return true;
    default:
      return false;
  }
}

// What the batch runs against.
struct BatchContext {
  Oid schema = InvalidOid;
  const char *dbname = nullptr;
};

// Runs one data command and writes its reply. Throws on error.
void RunCommand(const BatchContext &ctx, ExecCommand &cmd, int protocol) {
  ReplyWriter w(&cmd.reply, protocol);
  const resp::Request &r = cmd.request;
  if (!OidIsValid(ctx.schema))
    throw CacheError(sqlstate::kUndefinedObject,
                     std::string("fastpgcache is not installed in database \"") + ctx.dbname + "\"");
  Oid schema = ctx.schema;
  switch (r.id) {
    case CommandId::kGet: {
      Entry e = FindValue(schema, KeyText(std::get<resp::KeyRequest>(r.args).key));
      BulkOrNull(w, e.found, e.value);
      return;
    }
    case CommandId::kSet:
    case CommandId::kSetNx:
    case CommandId::kSetEx:
    case CommandId::kPSetEx: {
      const auto &s = std::get<resp::SetRequest>(r.args);
      ops::SetOptions o;
      o.nx = s.nx;
      o.xx = s.xx;
      o.get = s.get;
      o.keepttl = s.expiry == resp::ExpiryMode::kKeepTtl;
      o.expires = ExpiryOf(s.expiry, s.expire_at_ms, &o.expires_at);
      ops::SetResult res = ops::Set(schema, "SET", KeyText(s.key), BytesValue(s.value), kKindBytes, o);
      if (r.id == CommandId::kSetNx)
        w.Integer(res.written ? 1 : 0);
      else if (s.get)
        BulkOrNull(w, res.had_old, res.old_value);
      else if (!res.written)
        w.Null();
      else
        w.Simple("OK");
      return;
    }
    case CommandId::kGetSet: {
      const auto &kv = std::get<resp::KeyValueRequest>(r.args);
      ops::SetOptions o;
      o.get = true;
      ops::SetResult res = ops::Set(schema, "GETSET", KeyText(kv.key), BytesValue(kv.value), kKindBytes, o);
      BulkOrNull(w, res.had_old, res.old_value);
      return;
    }
    case CommandId::kMGet: {
      std::vector<text *> keys = KeyTexts(std::get<resp::MultiKeyRequest>(r.args).keys);
      // One snapshot: a consistent view, as Redis MGET.
      Snapshot snapshot = Guarded([] { return FreshSnapshot(); });
      std::vector<Entry> found;
      found.reserve(keys.size());
      for (text *k : keys) found.push_back(FindValue(schema, k, snapshot));
      Guarded([&] { UnregisterSnapshot(snapshot); });
      w.Array(found.size());
      for (const Entry &e : found) BulkOrNull(w, e.found, e.value);
      return;
    }
    case CommandId::kMSet:
    case CommandId::kMSetNx: {
      const auto &m = std::get<resp::MSetRequest>(r.args);
      std::vector<text *> keys, values;
      for (const auto &kv : m.pairs) {
        keys.push_back(KeyText(kv.first));
        values.push_back(reinterpret_cast<text *>(DatumGetPointer(BytesValue(kv.second))));
      }
      if (m.nx) {
        w.Integer(MultiSetNx(schema, keys, values, kKindBytes, false, 0) ? 1 : 0);
      } else {
        CheckWritable("MSET");
        MultiSet(schema, keys, values, kKindBytes, false, 0);
        w.Simple("OK");
      }
      return;
    }
    case CommandId::kDel:
    case CommandId::kUnlink:
      w.Integer(DeleteMany(schema, KeyTexts(std::get<resp::MultiKeyRequest>(r.args).keys)));
      return;
    case CommandId::kExists:
      w.Integer(CountLive(schema, KeyTexts(std::get<resp::MultiKeyRequest>(r.args).keys)));
      return;
    case CommandId::kTtl:
    case CommandId::kPTtl: {
      Entry e = Find(schema, KeyText(std::get<resp::KeyRequest>(r.args).key), false);
      if (!e.found) {
        w.Integer(-2);
      } else if (!e.expires) {
        w.Integer(-1);
      } else {
        int64 left_ms = (e.expires_at - GetCurrentTimestamp()) / 1000;
        if (left_ms < 0) left_ms = 0;
        w.Integer(r.id == CommandId::kTtl ? (left_ms + 500) / 1000 : left_ms);  // Redis rounds TTL
      }
      return;
    }
    case CommandId::kExpire:
    case CommandId::kPExpire:
    case CommandId::kExpireAt:
    case CommandId::kPExpireAt: {
      const auto &x = std::get<resp::ExpireRequest>(r.args);
      ops::ExpireCondition c;
      c.nx = x.nx;
      c.xx = x.xx;
      c.gt = x.gt;
      c.lt = x.lt;
      w.Integer(ops::ExpireAt(schema, "EXPIRE", KeyText(x.key), FromUnixMs(x.expire_at_ms), c) ? 1 : 0);
      return;
    }
    case CommandId::kPersist:
      w.Integer(ops::Persist(schema, "PERSIST", KeyText(std::get<resp::KeyRequest>(r.args).key)) ? 1 : 0);
      return;
    case CommandId::kIncr:
    case CommandId::kIncrBy:
    case CommandId::kDecr:
    case CommandId::kDecrBy: {
      const auto &in = std::get<resp::IncrRequest>(r.args);
      w.Integer(ops::IncrBy(schema, "INCRBY", KeyText(in.key), in.delta, false, 0));
      return;
    }
    case CommandId::kIncrByFloat: {
      const auto &in = std::get<resp::IncrByFloatRequest>(r.args);
      w.Bulk(ops::IncrByFloat(schema, "INCRBYFLOAT", KeyText(in.key), in.delta));
      return;
    }
    case CommandId::kAppend: {
      const auto &kv = std::get<resp::KeyValueRequest>(r.args);
      w.Integer(ops::Append(schema, "APPEND", KeyText(kv.key), kv.value));
      return;
    }
    case CommandId::kStrLen: {
      Entry e = Find(schema, KeyText(std::get<resp::KeyRequest>(r.args).key), true);
      w.Integer(e.found ? static_cast<int64_t>(ops::ValueBytes(e.value).size()) : 0);
      return;
    }
    case CommandId::kGetDel: {
      ops::Got g = ops::GetDel(schema, "GETDEL", KeyText(std::get<resp::KeyRequest>(r.args).key), false);
      BulkOrNull(w, g.found, g.value);
      return;
    }
    case CommandId::kGetEx: {
      const auto &g = std::get<resp::GetExRequest>(r.args);
      text *key = KeyText(g.key);
      if (!g.deferred_error.empty()) {
        // Redis checks GETEX's expire time only when the key exists.
        Entry e = Find(schema, key, false);
        if (!e.found)
          w.Null();
        else
          w.Error(g.deferred_error);
        return;
      }
      TimestampTz at = 0;
      ops::GetExExpiry mode = ops::GetExExpiry::kNone;
      if (g.expiry == resp::ExpiryMode::kPersist)
        mode = ops::GetExExpiry::kPersist;
      else if (ExpiryOf(g.expiry, g.expire_at_ms, &at))
        mode = ops::GetExExpiry::kSet;
      ops::Got got = ops::GetEx(schema, "GETEX", key, mode, at, false);
      BulkOrNull(w, got.found, got.value);
      return;
    }
    case CommandId::kType: {
      Entry e = Find(schema, KeyText(std::get<resp::KeyRequest>(r.args).key), false);
      w.Simple(e.found ? "string" : "none");
      return;
    }
    case CommandId::kKeys: {
      std::string_view pattern = std::get<resp::KeysRequest>(r.args).pattern;
      text *pat = reinterpret_cast<text *>(DatumGetPointer(ops::MakeText(pattern)));
      std::vector<text *> keys;
      auto emit = [&](text *k) { keys.push_back(k); };
      ForEachKey(schema, pat, emit);
      w.Array(keys.size());
      for (text *k : keys) w.Bulk(ops::ValueBytes(PointerGetDatum(k)));
      return;
    }
    case CommandId::kScan: {
      const auto &s = std::get<resp::ScanRequest>(r.args);
      if (s.cursor > static_cast<uint64_t>(INT64_MAX)) throw CacheError(sqlstate::kInvalidParameterValue, "invalid cursor");
      text *pat = reinterpret_cast<text *>(DatumGetPointer(ops::MakeText(s.has_pattern ? s.pattern : "*")));
      bool type_matches = !s.has_type || resp::OptionIs(s.type, "string");
      std::vector<text *> keys;
      auto emit = [&](text *k) {
        if (type_matches) keys.push_back(k);
      };
      int64 next = ScanStep(schema, static_cast<int64>(s.cursor), pat, s.count < 1 ? 1 : s.count, emit);
      w.Array(2);
      w.Bulk(std::to_string(next));
      w.Array(keys.size());
      for (text *k : keys) w.Bulk(ops::ValueBytes(PointerGetDatum(k)));
      return;
    }
    case CommandId::kDbSize:
      w.Integer(DbSize(schema));
      return;
    case CommandId::kFlushDb:
    case CommandId::kFlushAll:
      Flush(schema);
      w.Simple("OK");
      return;
    case CommandId::kInfo: {
      const auto &info = std::get<resp::InfoRequest>(r.args);
      int64 expiring = 0;
      int64 keys = info.keyspace ? DbSize(schema, &expiring) : 0;
      resp::WriteInfoReply(w, info, keys, expiring);
      return;
    }
    default:
      throw CacheError(sqlstate::kInternalError, "fastpgcache: command not handled by the executor");
  }
}

// The Redis error line of a failed command.
std::string ErrorLine(const char *sqlstate, std::string message, const resp::Request &request) {
  for (char &c : message)
    if (c == '\r' || c == '\n') c = ' ';
  if (std::strcmp(sqlstate, "42501") == 0) {
    std::string name = request.spec != nullptr ? request.spec->name : "?";
    return "NOPERM this user has no permissions to run the '" + name + "' command (" + message + ")";
  }
  if (std::strcmp(sqlstate, "57014") == 0) return "ERR command timed out (fastpgcache.resp_command_timeout)";
  if (std::strcmp(sqlstate, "55P03") == 0) return "ERR command timed out waiting for a lock";
  // The cache is full under noeviction (or a volatile policy with nothing
  // to evict): Redis's -OOM, which client libraries map to their own error.
  if (std::strcmp(sqlstate, "53400") == 0) return "OOM command not allowed when used memory > 'maxmemory' (" + message + ")";
  return "ERR " + message;
}

// The SQLSTATE and message of a caught exception.
void Describe(const std::exception_ptr &error, char sqlstate[6], std::string *message) {
  std::strcpy(sqlstate, "XX000");
  try {
    std::rethrow_exception(error);
  } catch (const PgError &e) {
    if (e.edata() == nullptr) {
      std::strcpy(sqlstate, "53200");
      *message = "out of memory";
    } else {
      const char *code = unpack_sql_state(e.edata()->sqlerrcode);
      std::memcpy(sqlstate, code, 5);
      sqlstate[5] = '\0';
      *message = e.what();
    }
  } catch (const CacheError &e) {
    std::memcpy(sqlstate, e.sqlstate(), 5);
    sqlstate[5] = '\0';
    *message = e.what();
  } catch (const std::bad_alloc &) {
    std::strcpy(sqlstate, "53200");
    *message = "out of memory";
  } catch (const std::exception &e) {
    *message = std::string("internal error: ") + e.what();
  } catch (...) {
    *message = "internal error";
  }
}

// The role a unit runs as.
Oid RoleOf(const WorkUnit &unit) {
  Oid role = Guarded([&] { return get_role_oid(unit.client.user.c_str(), true); });
  if (!OidIsValid(role))
    throw CacheError(sqlstate::kInvalidParameterValue, "the role \"" + unit.client.user + "\" no longer exists");
  return role;
}

// Runs one command under the per-command time limit.
void RunTimed(const BatchContext &ctx, ExecCommand &cmd, int protocol) {
  int timeout = guc::resp_command_timeout_ms;
  if (timeout > 0) Guarded([&] { enable_timeout_after(STATEMENT_TIMEOUT, timeout); });
  try {
    RunCommand(ctx, cmd, protocol);
  } catch (...) {
    if (timeout > 0) Guarded([] { disable_timeout(STATEMENT_TIMEOUT, false); });
    throw;
  }
  if (timeout > 0) Guarded([] { disable_timeout(STATEMENT_TIMEOUT, false); });
  Guarded([] { CHECK_FOR_INTERRUPTS(); });
}

// AUTH: fills unit.auth, writes no reply.
void RunAuth(WorkUnit &unit) {
  const auto &a = std::get<resp::AuthRequest>(unit.commands[0].request.args);
  std::string user(a.username);
  if (a.password_only || user == "default") {
    if (guc::resp_default_user == nullptr || guc::resp_default_user[0] == '\0') {
      unit.auth.ok = false;
      unit.auth.error = a.password_only
                            ? "ERR AUTH <password> called without any password configured for the default user. "
                              "Are you sure your configuration is correct?"
                            : "WRONGPASS invalid username-password pair or user is disabled.";
      return;
    }
    user = guc::resp_default_user;
  }
  std::string password(a.password);
  AuthResult result = static_cast<AuthResult>(
      Guarded([&] { return static_cast<int>(CheckPassword(user.c_str(), password.c_str())); }));
  unit.auth.ok = result == AuthResult::kOk;
  unit.auth.user = user;
  switch (result) {
    case AuthResult::kOk:
      break;
    case AuthResult::kWrongPassword:
      unit.auth.error = "WRONGPASS invalid username-password pair or user is disabled.";
      break;
    case AuthResult::kSuperuser:
      unit.auth.error = "NOPERM superuser roles may not log in over the Redis protocol; use an application role";
      break;
    case AuthResult::kNoConnect:
      unit.auth.error = "NOPERM the role has no CONNECT privilege on this database";
      break;
  }
}

// Runs a unit's commands (as its role) and writes their replies. Throws on
// the first error; the caller rolls back.
void RunUnit(const BatchContext &ctx, WorkUnit &unit) {
  if (unit.commands.size() == 1 && unit.commands[0].request.id == CommandId::kAuth) {
    RunAuth(unit);
    return;
  }
  Oid role = RoleOf(unit);
  Oid saved_user;
  int saved_context;
  Guarded([&] {
    GetUserIdAndSecContext(&saved_user, &saved_context);
    SetUserIdAndSecContext(role, saved_context | SECURITY_LOCAL_USERID_CHANGE);
  });
  // On an exception the (sub)transaction's abort restores the user.
  for (ExecCommand &cmd : unit.commands) {
    cmd.reply.clear();
    RunTimed(ctx, cmd, unit.client.protocol);
  }
  Guarded([&] { SetUserIdAndSecContext(saved_user, saved_context); });
}

// The reply of a unit that failed (its commands' replies, or the block's
// abort error).
void FailUnit(WorkUnit &unit, const char *sqlstate, const std::string &message) {
  const resp::Request &first = unit.commands.empty() ? resp::Request() : unit.commands[0].request;
  std::string line = ErrorLine(sqlstate, message, first);
  if (unit.transaction) {
    unit.aborted = true;
    unit.abort_error = "EXECABORT Transaction rolled back: " + line;
    return;
  }
  for (ExecCommand &cmd : unit.commands) {
    cmd.reply.clear();
    ReplyWriter(&cmd.reply, unit.client.protocol).Error(line);
  }
}

// The extension's schema, looked up once and kept while the extension is
// installed. "Not installed" is never kept (it is looked up again at every
// batch until CREATE EXTENSION), and a failed batch forgets the schema: the
// error may have come from a DROP EXTENSION since the lookup.
bool g_schema_known = false;
Oid g_schema = InvalidOid;

void StartBatchTransaction(BatchContext *ctx) {
  Guarded([&] {
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    // SPI wants an outer snapshot; each statement still takes a fresh one
    // (READ COMMITTED), and the direct paths take their own.
    PushActiveSnapshot(GetTransactionSnapshot());
    pgstat_report_activity(STATE_RUNNING, "fastpgcache: Redis-protocol batch");
    if (!g_schema_known) {
      g_schema = ExtensionSchemaOid();
      g_schema_known = OidIsValid(g_schema);
    }
    ctx->schema = g_schema;
  });
}

void CommitBatch() {
  Guarded([] {
    PopActiveSnapshot();
    CommitTransactionCommand();
    pgstat_report_activity(STATE_IDLE, nullptr);
  });
}

void AbortBatch() {
  Guarded([] {
    AbortCurrentTransaction();
    pgstat_report_activity(STATE_IDLE, nullptr);
  });
  g_schema_known = false;  // the error may have been a dropped extension
}

// Runs one unit in a transaction of its own, waiting for locks as any
// statement does; a failure is its reply.
void RunAlone(WorkUnit &unit) {
  BatchContext ctx;
  ctx.dbname = g_dbname;
  try {
    StartBatchTransaction(&ctx);
    RunUnit(ctx, unit);
    CommitBatch();
  } catch (...) {
    char state[6];
    std::string message;
    Describe(std::current_exception(), state, &message);
    AbortBatch();
    FailUnit(unit, state, message);
  }
}

// The optimistic road: every unit in one transaction, which never waits for
// a row lock (the direct paths fail at once, SQL statements after 1 ms).
// True if it committed; false if a unit failed, in which case nothing of the
// batch was kept and *failed, *state, *message say which and why.
bool RunAsOne(resp::Batch &batch, size_t *failed, char state[6], std::string *message) {
  BatchContext ctx;
  ctx.dbname = g_dbname;
  StartBatchTransaction(&ctx);
  Guarded([] {
    (void)set_config_option("lock_timeout", "1", PGC_SUSET, PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0, false);
  });
  g_lock_nowait = true;
  for (size_t i = 0; i < batch.units.size(); i++) {
    try {
      RunUnit(ctx, batch.units[i]);
    } catch (...) {
      g_lock_nowait = false;
      *failed = i;
      Describe(std::current_exception(), state, message);
      AbortBatch();
      return false;
    }
  }
  g_lock_nowait = false;
  CommitBatch();
  return true;
}

}  // namespace

// Group commit without deadlocks: the batch first runs as ONE transaction
// that never waits for a row lock (RunAsOne); in the common case every
// client's command is committed together. If a unit fails, or would have
// had to wait for a lock held by someone else, that transaction is rolled
// back and every unit runs again in a transaction of its own (RunAlone),
// which may wait; the unit that failed with an ordinary error keeps that
// error and is not run again. So a batch never holds row locks while it
// waits for another (no deadlock with other workers or SQL sessions), a
// unit's failure undoes nothing of any other's, and units run in the order
// they came (each client's pipeline keeps its order).
void PgExecutor::Execute(resp::Batch &batch) noexcept {
  try {
    size_t failed = 0;
    char state[6] = "";
    std::string message;
    if (RunAsOne(batch, &failed, state, &message)) return;
    // A lock the batch would have waited for: run that unit alone (it may
    // wait). A table that vanished: the extension may have been dropped
    // since its schema was looked up; alone, it is looked up again, so the
    // unit gets "not installed" rather than the table's error.
    bool rerun_failed = std::strcmp(state, sqlstate::kLockNotAvailable) == 0 ||
                        std::strcmp(state, "42P01") == 0 || std::strcmp(state, "3F000") == 0;
    for (size_t i = 0; i < batch.units.size(); i++) {
      WorkUnit &unit = batch.units[i];
      unit.aborted = false;
      unit.auth = resp::AuthOutcome{};
      if (i == failed && !rerun_failed)
        FailUnit(unit, state, message);
      else
        RunAlone(unit);
    }
  } catch (...) {
    g_lock_nowait = false;
    // Only a failure to start or end a transaction gets here: every unit
    // without a reply says so.
    char state[6];
    std::string message;
    Describe(std::current_exception(), state, &message);
    try {
      Guarded([] { AbortCurrentTransaction(); });  // nothing to do if idle
    } catch (...) {
    }
    for (WorkUnit &unit : batch.units) {
      try {
        bool replied = unit.aborted || unit.auth.ok || !unit.auth.error.empty();
        for (const ExecCommand &cmd : unit.commands) replied = replied || !cmd.reply.empty();
        if (!replied) FailUnit(unit, state, "transaction failed: " + message);
      } catch (...) {
      }
    }
  }
}

}  // namespace resp_worker
}  // namespace fastpgcache

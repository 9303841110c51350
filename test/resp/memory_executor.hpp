/*
 * memory_executor.hpp
 *
 * TEST DOUBLE ONLY. An in-memory implementation of the resp::Executor
 * interface, used by the standalone RESP harness (unit tests, redis-cli and
 * python3-redis compatibility tests, the differential tests, redis-benchmark
 * sanity numbers). It is NOT a stand-in for PostgreSQL and is never built into
 * the extension: the real executor runs commands against the cache table
 * through the extension's code paths, and the real end-to-end tests run
 * against PostgreSQL. Its command semantics follow Redis 7.0 so that the
 * harness can be compared with redis-server.
 *
 * Test hooks: a MULTI/EXEC block touching the key "__abort__" is rolled back as
 * a whole (to exercise WorkUnit::aborted); every batch's unit count is recorded
 * (to check group commit).
 */
#ifndef FASTPGCACHE_TEST_RESP_MEMORY_EXECUTOR_HPP
#define FASTPGCACHE_TEST_RESP_MEMORY_EXECUTOR_HPP

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "../../src/resp/glob.hpp"
#include "../../src/resp/server.hpp"

namespace fastpgcache::resp::testing {

class MemoryExecutor : public Executor {
 public:
  struct Entry {
    std::string value;
    int64_t expire_at_ms = -1; /* -1: no TTL */
  };

  std::map<std::string, Entry, std::less<>> data; /* ordered: SCAN cursors are positions */
  std::map<std::string, std::string> passwords;   /* user -> password; empty: no password set */
  std::vector<size_t> batch_sizes;                /* units per batch, for group-commit tests */
  size_t max_recorded_batches = 100000;

  void Execute(Batch& batch) noexcept override {
    try {
      if (batch_sizes.size() < max_recorded_batches) batch_sizes.push_back(batch.units.size());
      now_ = batch.now_ms;
      for (WorkUnit& unit : batch.units) RunUnit(unit);
    } catch (...) {
      for (WorkUnit& unit : batch.units) {
        for (ExecCommand& cmd : unit.commands) {
          if (cmd.reply.empty()) cmd.reply = "-ERR executor failure\r\n";
        }
      }
    }
  }

 private:
  int64_t now_ = 0;

  void RunUnit(WorkUnit& unit) {
    if (!unit.transaction) {
      for (ExecCommand& cmd : unit.commands) Run(unit, cmd);
      return;
    }
    bool abort = false;
    for (ExecCommand& cmd : unit.commands) {
      if (TouchesAbortKey(cmd.request)) abort = true;
    }
    std::map<std::string, Entry, std::less<>> snapshot;
    if (abort) snapshot = data;
    for (ExecCommand& cmd : unit.commands) Run(unit, cmd);
    if (abort) {
      data.swap(snapshot);
      unit.aborted = true;
      unit.abort_error = "EXECABORT Transaction rolled back (test hook)";
    }
  }

  static bool TouchesAbortKey(const Request& r) {
    if (auto* k = std::get_if<KeyRequest>(&r.args)) return k->key == "__abort__";
    if (auto* s = std::get_if<SetRequest>(&r.args)) return s->key == "__abort__";
    return false;
  }

  Entry* Find(std::string_view key) {
    auto it = data.find(key); /* heterogeneous lookup: no allocation */
    if (it == data.end()) return nullptr;
    if (it->second.expire_at_ms >= 0 && it->second.expire_at_ms <= now_) {
      data.erase(it);
      return nullptr;
    }
    return &it->second;
  }

  void Run(WorkUnit& unit, ExecCommand& cmd) {
    ReplyWriter w(&cmd.reply, unit.client.protocol);
    const Request& r = cmd.request;
    switch (r.id) {
      case CommandId::kGet: {
        Entry* e = Find(std::get<KeyRequest>(r.args).key);
        if (e) w.Bulk(e->value);
        else w.Null();
        return;
      }
      case CommandId::kSet: case CommandId::kSetNx: case CommandId::kSetEx: case CommandId::kPSetEx: {
        const SetRequest& s = std::get<SetRequest>(r.args);
        Entry* e = Find(s.key);
        std::string old = e ? e->value : std::string();
        bool existed = e != nullptr;
        bool blocked = (s.nx && existed) || (s.xx && !existed);
        if (!blocked) {
          Entry& n = data[std::string(s.key)];
          n.value.assign(s.value);
          if (s.expiry == ExpiryMode::kKeepTtl && existed) {
            /* keep */
          } else if (s.expiry == ExpiryMode::kNone || s.expiry == ExpiryMode::kKeepTtl) {
            n.expire_at_ms = -1;
          } else {
            n.expire_at_ms = s.expire_at_ms;
            if (n.expire_at_ms <= now_) data.erase(std::string(s.key));
          }
        }
        if (r.id == CommandId::kSetNx) w.Integer(blocked ? 0 : 1);
        else if (s.get) existed ? w.Bulk(old) : w.Null();
        else if (blocked) w.Null();
        else w.Simple("OK");
        return;
      }
      case CommandId::kMGet: {
        const auto& keys = std::get<MultiKeyRequest>(r.args).keys;
        w.Array(keys.size());
        for (std::string_view k : keys) {
          Entry* e = Find(k);
          if (e) w.Bulk(e->value);
          else w.Null();
        }
        return;
      }
      case CommandId::kMSet: case CommandId::kMSetNx: {
        const MSetRequest& m = std::get<MSetRequest>(r.args);
        if (m.nx) {
          for (const auto& kv : m.pairs) {
            if (Find(kv.first)) {
              w.Integer(0);
              return;
            }
          }
        }
        for (const auto& kv : m.pairs) data[std::string(kv.first)] = Entry{std::string(kv.second), -1};
        if (m.nx) w.Integer(1);
        else w.Simple("OK");
        return;
      }
      case CommandId::kDel: case CommandId::kUnlink: case CommandId::kExists: {
        int64_t n = 0;
        for (std::string_view k : std::get<MultiKeyRequest>(r.args).keys) {
          if (Find(k)) {
            n++;
            if (r.id != CommandId::kExists) data.erase(std::string(k));
          }
        }
        w.Integer(n);
        return;
      }
      case CommandId::kTtl: case CommandId::kPTtl: {
        Entry* e = Find(std::get<KeyRequest>(r.args).key);
        if (!e) w.Integer(-2);
        else if (e->expire_at_ms < 0) w.Integer(-1);
        else {
          int64_t left = e->expire_at_ms - now_;
          w.Integer(r.id == CommandId::kTtl ? (left + 500) / 1000 : left);
        }
        return;
      }
      case CommandId::kExpire: case CommandId::kPExpire: case CommandId::kExpireAt: case CommandId::kPExpireAt: {
        const ExpireRequest& x = std::get<ExpireRequest>(r.args);
        Entry* e = Find(x.key);
        if (!e) {
          w.Integer(0);
          return;
        }
        bool has_ttl = e->expire_at_ms >= 0;
        if ((x.nx && has_ttl) || (x.xx && !has_ttl) || (x.gt && (!has_ttl || x.expire_at_ms <= e->expire_at_ms)) ||
            (x.lt && has_ttl && x.expire_at_ms >= e->expire_at_ms)) {
          w.Integer(0);
          return;
        }
        if (x.expire_at_ms <= now_) data.erase(std::string(x.key));
        else e->expire_at_ms = x.expire_at_ms;
        w.Integer(1);
        return;
      }
      case CommandId::kPersist: {
        Entry* e = Find(std::get<KeyRequest>(r.args).key);
        if (e && e->expire_at_ms >= 0) {
          e->expire_at_ms = -1;
          w.Integer(1);
        } else {
          w.Integer(0);
        }
        return;
      }
      case CommandId::kIncr: case CommandId::kIncrBy: case CommandId::kDecr: case CommandId::kDecrBy: {
        const IncrRequest& in = std::get<IncrRequest>(r.args);
        Entry* e = Find(in.key);
        int64_t v = 0;
        if (e && !ParseLongLong(e->value, &v)) {
          w.Error("ERR value is not an integer or out of range");
          return;
        }
        if ((in.delta < 0 && v < 0 && in.delta < INT64_MIN - v) || (in.delta > 0 && v > 0 && in.delta > INT64_MAX - v)) {
          w.Error("ERR increment or decrement would overflow");
          return;
        }
        v += in.delta;
        std::string text;
        AppendInteger(&text, v);
        if (e) e->value = text;
        else data[std::string(in.key)] = Entry{text, -1};
        w.Integer(v);
        return;
      }
      case CommandId::kIncrByFloat: {
        const IncrByFloatRequest& in = std::get<IncrByFloatRequest>(r.args);
        Entry* e = Find(in.key);
        long double v = 0;
        if (e && !ParseLongDouble(e->value, &v)) {
          w.Error("ERR value is not a valid float");
          return;
        }
        v += in.delta;
        if (std::isnan(v) || std::isinf(v)) {
          w.Error("ERR increment would produce NaN or Infinity");
          return;
        }
        std::string text = FormatLongDoubleHuman(v);
        if (e) e->value = text;
        else data[std::string(in.key)] = Entry{text, -1};
        w.Bulk(text);
        return;
      }
      case CommandId::kAppend: {
        const KeyValueRequest& kv = std::get<KeyValueRequest>(r.args);
        Entry* e = Find(kv.key);
        if (!e) e = &(data[std::string(kv.key)] = Entry{std::string(), -1});
        e->value.append(kv.value);
        w.Integer(static_cast<int64_t>(e->value.size()));
        return;
      }
      case CommandId::kStrLen: {
        Entry* e = Find(std::get<KeyRequest>(r.args).key);
        w.Integer(e ? static_cast<int64_t>(e->value.size()) : 0);
        return;
      }
      case CommandId::kGetDel: {
        std::string_view key = std::get<KeyRequest>(r.args).key;
        Entry* e = Find(key);
        if (!e) {
          w.Null();
          return;
        }
        w.Bulk(e->value);
        data.erase(std::string(key));
        return;
      }
      case CommandId::kGetEx: {
        const GetExRequest& g = std::get<GetExRequest>(r.args);
        Entry* e = Find(g.key);
        if (!e) {
          w.Null();
          return;
        }
        if (!g.deferred_error.empty()) {
          w.Error(g.deferred_error);
          return;
        }
        w.Bulk(e->value);
        if (g.expiry == ExpiryMode::kPersist) e->expire_at_ms = -1;
        else if (g.expiry != ExpiryMode::kNone) {
          if (g.expire_at_ms <= now_) data.erase(std::string(g.key));
          else e->expire_at_ms = g.expire_at_ms;
        }
        return;
      }
      case CommandId::kGetSet: {
        const KeyValueRequest& kv = std::get<KeyValueRequest>(r.args);
        Entry* e = Find(kv.key);
        if (e) w.Bulk(e->value);
        else w.Null();
        data[std::string(kv.key)] = Entry{std::string(kv.value), -1};
        return;
      }
      case CommandId::kType:
        w.Simple(Find(std::get<KeyRequest>(r.args).key) ? "string" : "none");
        return;
      case CommandId::kKeys: {
        std::vector<std::string> keys;
        std::string_view pattern = std::get<KeysRequest>(r.args).pattern;
        for (auto it = data.begin(); it != data.end();) {
          if (it->second.expire_at_ms >= 0 && it->second.expire_at_ms <= now_) {
            it = data.erase(it);
            continue;
          }
          /* Redis: KEYS * lists every key without matching (so also the empty key). */
          if ((pattern.size() == 1 && pattern[0] == '*') || GlobMatch(pattern, it->first)) keys.push_back(it->first);
          ++it;
        }
        w.Array(keys.size());
        for (const std::string& k : keys) w.Bulk(k);
        return;
      }
      case CommandId::kScan: {
        const ScanRequest& s = std::get<ScanRequest>(r.args);
        std::vector<std::string> keys;
        uint64_t pos = 0, next = 0;
        auto it = data.begin();
        while (it != data.end() && pos < s.cursor) {
          ++it;
          ++pos;
        }
        int64_t visited = 0;
        for (; it != data.end() && visited < s.count; ++it, ++pos, ++visited) {
          if (it->second.expire_at_ms >= 0 && it->second.expire_at_ms <= now_) continue;
          if (s.has_pattern && !GlobMatch(s.pattern, it->first)) continue;
          if (s.has_type && !OptionIs(s.type, "string")) continue;
          keys.push_back(it->first);
        }
        next = it == data.end() ? 0 : pos;
        w.Array(2);
        std::string cursor;
        AppendInteger(&cursor, static_cast<int64_t>(next));
        w.Bulk(cursor);
        w.Array(keys.size());
        for (const std::string& k : keys) w.Bulk(k);
        return;
      }
      case CommandId::kDbSize: {
        int64_t n = 0;
        for (auto& kv : data) n += (kv.second.expire_at_ms < 0 || kv.second.expire_at_ms > now_) ? 1 : 0;
        w.Integer(n);
        return;
      }
      case CommandId::kFlushDb: case CommandId::kFlushAll:
        data.clear();
        w.Simple("OK");
        return;
      case CommandId::kInfo: {
        int64_t keys = 0, expires = 0;
        for (auto& kv : data) {
          if (kv.second.expire_at_ms >= 0 && kv.second.expire_at_ms <= now_) continue;
          keys++;
          expires += kv.second.expire_at_ms >= 0 ? 1 : 0;
        }
        WriteInfoReply(w, std::get<InfoRequest>(r.args), keys, expires);
        return;
      }
      case CommandId::kAuth: {
        const AuthRequest& a = std::get<AuthRequest>(r.args);
        auto it = passwords.find(std::string(a.username));
        if (passwords.empty() && !a.password_only) {
          /* No password configured: like Redis's "default" user with nopass. */
          unit.auth.ok = a.username == "default";
          unit.auth.user = "default";
          if (!unit.auth.ok) unit.auth.error = "WRONGPASS invalid username-password pair or user is disabled.";
        } else if (passwords.empty()) {
          unit.auth.ok = false;
          unit.auth.error =
              "ERR AUTH <password> called without any password configured for the default user. Are you sure your "
              "configuration is correct?";
        } else if (it != passwords.end() && it->second == a.password) {
          unit.auth.ok = true;
          unit.auth.user = it->first;
        } else {
          unit.auth.ok = false;
          unit.auth.error = "WRONGPASS invalid username-password pair or user is disabled.";
        }
        return;
      }
      default:
        w.Error("ERR not implemented by the test executor");
        return;
    }
  }
};

}  // namespace fastpgcache::resp::testing

#endif

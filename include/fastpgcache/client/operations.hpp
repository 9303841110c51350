// fastpgcache/client/operations.hpp - the cache commands
// Part of the C++ client; include <fastpgcache/client.hpp>.
//
// Two layers:
//  * detail::op_*: one operation over one connection (bound parameters,
//    prepared statements, reply parsing);
//  * Commands<Derived>: the public methods (named after Redis commands, as
//    redis-plus-plus's sw::redis::Redis does), shared by FastPgCache, Session
//    and the deadline-bound view FastPgCache::with_timeout().  Each method
//    says whether it is a read or a write and hands a function of
//    (Conn&, const Deadline&) to Derived::execute(), which leases the
//    connection, applies the deadline and decides about retries.
// Adding a command: a statement in connection.hpp (Stmt), an op_* function
// here, and one method in Commands.
#pragma once

#include <fastpgcache/client/connection.hpp>

#include <nlohmann/json.hpp>

#include <charconv>
#include <initializer_list>
#include <iterator>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace fastpgcache {

/// Whether an operation only reads (then it may be retried on a new
/// connection after the old one broke) or changes data (never re-sent once
/// it may have reached the server: OutcomeUnknownError).
enum class OpKind { Read, Write };

namespace detail {

/// Keys and text values travel as text, which cannot hold a NUL byte: refuse
/// them (22021, as the server does for bad text) instead of truncating.
inline void check_text(std::string_view s, const char* what) {
    if (s.find('\0') != std::string_view::npos)
        throw Error(std::string("cache ") + what +
                        " contains a NUL byte, which text cannot hold; use set_bytes()/get_bytes() for binary data",
                    "22021");
}

inline std::string scalar(const ResultPtr& r) {
    if (PQntuples(r.get()) != 1 || PQgetisnull(r.get(), 0, 0)) return {};
    return PQgetvalue(r.get(), 0, 0);
}

/// An integer reply; a reply that is not one, or does not fit in T, is an
/// Error (never std::invalid_argument / std::out_of_range).
template <class T>
T parse_integer(const std::string& v, const char* what) {
    if (v.empty()) return 0;
    T out{};
    auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
    if (ec == std::errc::result_out_of_range)
        throw Error(std::string("the server's reply to ") + what + " does not fit in a " +
                        std::to_string(sizeof(T) * 8) + "-bit integer: " + v.substr(0, 40),
                    "22003");
    if (ec != std::errc() || end != v.data() + v.size())
        throw Error(std::string("the server's reply to ") + what + " is not an integer: " + v.substr(0, 40), "XX000");
    return out;
}

inline bool op_set(Conn& c, Stmt s, std::string_view key, std::string_view value, const Ttl& ttl, bool binary_value,
                   const Deadline& d) {
    check_text(key, "key");
    if (!binary_value) check_text(value, "value");
    if (value.size() > static_cast<std::size_t>(std::numeric_limits<int>::max())) throw Error("value too large", "54000");
    std::string k(key), t = ttl.has_value() ? std::to_string(ttl.seconds()) : std::string();
    // A null data pointer would be sent as SQL NULL: an empty value is "".
    const char* vals[3] = {k.c_str(), value.data() ? value.data() : "", ttl.has_value() ? t.c_str() : nullptr};
    std::string v;
    if (!binary_value) {  // text parameters are NUL-terminated
        v.assign(value);
        vals[1] = v.c_str();
    }
    int lens[3] = {0, static_cast<int>(value.size()), 0};
    int fmts[3] = {0, binary_value ? 1 : 0, 0};
    auto r = c.exec(s, vals, lens, fmts, 0, d);
    return PQntuples(r.get()) == 1 && !PQgetisnull(r.get(), 0, 0) && PQgetvalue(r.get(), 0, 0)[0] == 't';
}

inline std::optional<std::string> op_get(Conn& c, Stmt s, std::string_view key, int result_format, const Deadline& d) {
    check_text(key, "key");
    std::string k(key);
    const char* vals[1] = {k.c_str()};
    auto r = c.exec(s, vals, nullptr, nullptr, result_format, d);
    if (PQntuples(r.get()) != 1 || PQgetisnull(r.get(), 0, 0)) return std::nullopt;
    return std::string(PQgetvalue(r.get(), 0, 0), static_cast<std::size_t>(PQgetlength(r.get(), 0, 0)));
}

inline bool op_bool(Conn& c, Stmt s, std::string_view key, const Deadline& d) {
    check_text(key, "key");
    std::string k(key);
    const char* vals[1] = {k.c_str()};
    return scalar(c.exec(s, vals, nullptr, nullptr, 0, d)) == "t";
}

inline long long op_ttl(Conn& c, std::string_view key, const Deadline& d) {
    check_text(key, "key");
    std::string k(key);
    const char* vals[1] = {k.c_str()};
    return parse_integer<long long>(scalar(c.exec(kTtl, vals, nullptr, nullptr, 0, d)), "cache_ttl");
}

inline long long op_cleanup(Conn& c, const Deadline& d) {
    return parse_integer<long long>(scalar(c.exec(kCleanup, nullptr, nullptr, nullptr, 0, d)), "cache_cleanup");
}

/// nlohmann::json's exceptions (a number it cannot represent, ...) become
/// fastpgcache::Error.
inline nlohmann::json parse_json(const std::string& text) {
    try {
        return nlohmann::json::parse(text);
    } catch (const nlohmann::json::out_of_range& e) {
        throw Error(std::string("the stored JSON value cannot be represented by nlohmann::json: ") + e.what(), "22003");
    } catch (const nlohmann::json::exception& e) {
        throw Error(std::string("the stored value is not valid JSON for nlohmann::json: ") + e.what(), "22P02");
    }
}

inline std::optional<nlohmann::json> op_get_json(Conn& c, std::string_view key, const Deadline& d) {
    auto s = op_get(c, kGetJson, key, 0, d);
    if (!s) return std::nullopt;
    return parse_json(*s);
}

/// The JSON text of a value; nlohmann's dump() throws type_error for
/// invalid UTF-8 in strings.
inline std::string dump_json(const nlohmann::json& value) {
    try {
        return value.dump();
    } catch (const nlohmann::json::exception& e) {
        throw Error(std::string("the JSON value cannot be serialized: ") + e.what(), "22P02");
    }
}

inline bool is_undefined_function(const Error& e) { return e.sqlstate() == "42883"; }

inline std::vector<std::optional<std::string>> op_mget(Conn& c, const std::vector<std::string>& keys, const Deadline& d) {
    std::vector<std::optional<std::string>> out;
    if (keys.empty()) return out;
    for (const auto& k : keys) check_text(k, "key");
    if (c.source->mget_supported.load()) {
        std::string arr = text_array_literal(keys);
        const char* vals[1] = {arr.c_str()};
        try {
            auto r = c.exec(kMGet, vals, nullptr, nullptr, 0, d);
            int n = PQntuples(r.get());
            out.reserve(static_cast<std::size_t>(n));
            for (int i = 0; i < n; ++i) {
                if (PQgetisnull(r.get(), i, 0)) out.emplace_back(std::nullopt);
                else out.emplace_back(std::string(PQgetvalue(r.get(), i, 0), static_cast<std::size_t>(PQgetlength(r.get(), i, 0))));
            }
            return out;
        } catch (const ConnectionLost&) {
            throw;
        } catch (const Error& e) {
            if (!is_undefined_function(e)) throw;
            c.source->mget_supported.store(false);  // older server side without cache_mget
        }
    }
    for (const auto& k : keys) out.push_back(op_get(c, kGet, k, 0, d));
    return out;
}

inline long long op_mset(Conn& c, const std::vector<std::pair<std::string, std::string>>& items, const Ttl& ttl,
                         const Deadline& d) {
    if (items.empty()) return 0;
    for (const auto& kv : items) {
        check_text(kv.first, "key");
        check_text(kv.second, "value");
    }
    if (c.source->mset_supported.load()) {
        std::vector<std::string> ks, vs;
        ks.reserve(items.size());
        vs.reserve(items.size());
        for (const auto& kv : items) {
            ks.push_back(kv.first);
            vs.push_back(kv.second);
        }
        std::string ka = text_array_literal(ks), va = text_array_literal(vs);
        std::string t = ttl.has_value() ? std::to_string(ttl.seconds()) : std::string();
        const char* vals[3] = {ka.c_str(), va.c_str(), ttl.has_value() ? t.c_str() : nullptr};
        try {
            return parse_integer<long long>(scalar(c.exec(kMSet, vals, nullptr, nullptr, 0, d)), "cache_mset");
        } catch (const ConnectionLost&) {
            throw;
        } catch (const Error& e) {
            if (!is_undefined_function(e)) throw;
            c.source->mset_supported.store(false);
        }
    }
    // Without cache_mset: one transaction of single sets.
    c.exec_sql("BEGIN", PGRES_COMMAND_OK, d, false);
    try {
        long long n = 0;
        for (const auto& kv : items) n += op_set(c, kSetText, kv.first, kv.second, ttl, false, d) ? 1 : 0;
        c.exec_sql("COMMIT", PGRES_COMMAND_OK, d);
        return n;
    } catch (...) {
        if (!c.bad()) c.discard = true;  // never reused mid-transaction
        throw;
    }
}

/// DEL / EXISTS over several keys in one round trip.
inline long long op_count_many(Conn& c, Stmt s, const std::vector<std::string>& keys, const Deadline& d) {
    if (keys.empty()) return 0;
    for (const auto& k : keys) check_text(k, "key");
    std::string arr = text_array_literal(keys);
    const char* vals[1] = {arr.c_str()};
    return parse_integer<long long>(scalar(c.exec(s, vals, nullptr, nullptr, 0, d)), s == kDelMany ? "del" : "exists");
}

inline std::string op_ping(Conn& c, std::optional<std::string_view> message, const Deadline& d) {
    if (!message) return scalar(c.exec_sql("SELECT 'PONG'", PGRES_TUPLES_OK, d));
    check_text(*message, "ping message");
    return scalar(c.exec_params("SELECT $1::text", {std::string(*message)}, PGRES_TUPLES_OK, d));
}

template <class It>
std::vector<std::string> collect_keys(It first, It last) {
    std::vector<std::string> keys;
    for (; first != last; ++first) keys.emplace_back(std::string_view(*first));
    return keys;
}

}  // namespace detail

/// The cache commands.  Derived provides
///   template <class F> auto execute(const char* name, OpKind kind, F&& fn)
/// running fn(detail::Conn&, const Deadline&).
template <class Derived>
class Commands {
public:
    // -- SET / GET -------------------------------------------------------------

    /// SET key value [EX ttl]: stores text; true when stored.
    bool set(std::string_view key, std::string_view value, Ttl ttl = {}) {
        return write_value("set", detail::kSetText, key, value, ttl, false);
    }
    bool set(std::string_view key, const std::string& value, Ttl ttl = {}) {
        return set(key, std::string_view(value), ttl);
    }
    /// A null pointer is an Error (22004), not a crash; store a JSON null
    /// with set(key, nlohmann::json(nullptr)).
    bool set(std::string_view key, const char* value, Ttl ttl = {}) {
        if (!value)
            throw Error("set(): the value is a null pointer; to store a JSON null use set(key, nlohmann::json(nullptr))",
                        "22004");
        return set(key, std::string_view(value), ttl);
    }
    /// Stores the JSON document (as jsonb); read it back with get_json().
    bool set(std::string_view key, const nlohmann::json& value, Ttl ttl = {}) {
        const std::string text = detail::dump_json(value);
        return write_value("set", detail::kSetJson, key, text, ttl, false);
    }
    /// Stores raw bytes (bytea); read them back with get_bytes().
    bool set_bytes(std::string_view key, std::string_view bytes, Ttl ttl = {}) {
        return write_value("set_bytes", detail::kSetBytes, key, bytes, ttl, true);
    }

    /// The value as text; std::nullopt when missing or expired.
    std::optional<std::string> get(std::string_view key) {
        return run("get", OpKind::Read, [&](detail::Conn& c, const Deadline& d) { return detail::op_get(c, detail::kGet, key, 0, d); });
    }
    /// The value parsed as JSON; std::nullopt when missing or expired.  A
    /// stored JSON null is returned as a json null, not std::nullopt.
    std::optional<nlohmann::json> get_json(std::string_view key) {
        return run("get_json", OpKind::Read, [&](detail::Conn& c, const Deadline& d) { return detail::op_get_json(c, key, d); });
    }
    std::optional<std::string> get_bytes(std::string_view key) {
        return run("get_bytes", OpKind::Read,
                   [&](detail::Conn& c, const Deadline& d) { return detail::op_get(c, detail::kGetBytes, key, 1, d); });
    }

    // -- DEL / EXISTS / TTL --------------------------------------------------------

    /// Deletes the key; true if a live entry was deleted.
    bool del(std::string_view key) {
        return run("del", OpKind::Write, [&](detail::Conn& c, const Deadline& d) { return detail::op_bool(c, detail::kDelete, key, d); });
    }
    /// DEL k1 k2 ...: the number of live keys deleted (a repeated key counts once).
    template <class It>
    long long del(It first, It last) {
        return del_keys(detail::collect_keys(first, last));
    }
    long long del(std::initializer_list<std::string_view> keys) { return del(keys.begin(), keys.end()); }
    long long del(const std::vector<std::string>& keys) { return del_keys(keys); }

    bool exists(std::string_view key) {
        return run("exists", OpKind::Read, [&](detail::Conn& c, const Deadline& d) { return detail::op_bool(c, detail::kExists, key, d); });
    }
    /// EXISTS k1 k2 ...: how many of the keys exist (a repeated key counts each time).
    template <class It>
    long long exists(It first, It last) {
        return exists_keys(detail::collect_keys(first, last));
    }
    long long exists(std::initializer_list<std::string_view> keys) { return exists(keys.begin(), keys.end()); }
    long long exists(const std::vector<std::string>& keys) { return exists_keys(keys); }

    /// Seconds left (rounded up), -1 without expiry, -2 when missing.
    long long ttl(std::string_view key) {
        return run("ttl", OpKind::Read, [&](detail::Conn& c, const Deadline& d) { return detail::op_ttl(c, key, d); });
    }
    /// Deletes every expired entry; returns how many.
    long long cleanup() {
        return run("cleanup", OpKind::Write, [&](detail::Conn& c, const Deadline& d) { return detail::op_cleanup(c, d); });
    }

    // -- MGET / MSET -------------------------------------------------------------

    /// One result per key, in order (uses cache_mget when the server has it).
    std::vector<std::optional<std::string>> mget(const std::vector<std::string>& keys) {
        return run("mget", OpKind::Read, [&](detail::Conn& c, const Deadline& d) { return detail::op_mget(c, keys, d); });
    }
    template <class It>
    std::vector<std::optional<std::string>> mget(It first, It last) {
        return mget(detail::collect_keys(first, last));
    }
    std::vector<std::optional<std::string>> mget(std::initializer_list<std::string_view> keys) {
        return mget(keys.begin(), keys.end());
    }

    /// Sets all pairs atomically (cache_mset); returns the number set.
    long long mset(const std::vector<std::pair<std::string, std::string>>& items, Ttl ttl = {}) {
        return run("mset", OpKind::Write, [&](detail::Conn& c, const Deadline& d) { return detail::op_mset(c, items, ttl, d); });
    }
    /// Over any range of pairs (std::map, std::unordered_map, ...).
    template <class It>
    long long mset(It first, It last, Ttl ttl = {}) {
        std::vector<std::pair<std::string, std::string>> items;
        for (; first != last; ++first)
            items.emplace_back(std::string(std::string_view(first->first)), std::string(std::string_view(first->second)));
        return mset(items, ttl);
    }
    long long mset(std::initializer_list<std::pair<std::string_view, std::string_view>> items, Ttl ttl = {}) {
        return mset(items.begin(), items.end(), ttl);
    }

    // -- connection --------------------------------------------------------------

    /// PING: a round trip to the server; returns "PONG".
    std::string ping() {
        return run("ping", OpKind::Read, [&](detail::Conn& c, const Deadline& d) { return detail::op_ping(c, std::nullopt, d); });
    }
    /// PING message: returns the message, echoed by the server.
    std::string ping(std::string_view message) {
        return run("ping", OpKind::Read, [&](detail::Conn& c, const Deadline& d) { return detail::op_ping(c, message, d); });
    }

protected:
    template <class F>
    auto run(const char* name, OpKind kind, F&& fn) -> decltype(fn(std::declval<detail::Conn&>(), std::declval<const Deadline&>())) {
        return static_cast<Derived*>(this)->execute(name, kind, std::forward<F>(fn));
    }

private:
    bool write_value(const char* name, detail::Stmt s, std::string_view key, std::string_view value, const Ttl& ttl, bool binary) {
        return run(name, OpKind::Write,
                   [&](detail::Conn& c, const Deadline& d) { return detail::op_set(c, s, key, value, ttl, binary, d); });
    }
    long long del_keys(const std::vector<std::string>& keys) {
        return run("del", OpKind::Write,
                   [&](detail::Conn& c, const Deadline& d) { return detail::op_count_many(c, detail::kDelMany, keys, d); });
    }
    long long exists_keys(const std::vector<std::string>& keys) {
        return run("exists", OpKind::Read,
                   [&](detail::Conn& c, const Deadline& d) { return detail::op_count_many(c, detail::kExistsMany, keys, d); });
    }
};

}  // namespace fastpgcache

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
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <iterator>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace fastpgcache {

/// Whether an operation only reads (then it may be retried on a new
/// connection after the old one broke) or changes data (never re-sent once
/// it may have reached the server: OutcomeUnknownError).
enum class OpKind { Read, Write };

/// The condition of a SET (redis-plus-plus's UpdateType): write always, only
/// if the key exists (XX), or only if it does not (NX).  An expired key does
/// not exist.
enum class UpdateType { Always, Exist, NotExist };

/// SET ... KEEPTTL: the new value keeps the key's expiry,
/// cache.set(key, value, fastpgcache::keep_ttl).  (Like std::nullopt_t, not
/// constructible from {}, so set(k, v, {}, UpdateType::NotExist) means "no
/// ttl".)
struct KeepTtl {
    struct Tag {};
    explicit constexpr KeepTtl(Tag) {}
};
inline constexpr KeepTtl keep_ttl{KeepTtl::Tag{}};

/// GETEX ... PERSIST: read the value and remove its expiry,
/// cache.getex(key, fastpgcache::persist).
struct Persist {
    struct Tag {};
    explicit constexpr Persist(Tag) {}
};
inline constexpr Persist persist{Persist::Tag{}};

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

template <class It>
std::vector<std::pair<std::string, std::string>> collect_pairs(It first, It last) {
    std::vector<std::pair<std::string, std::string>> items;
    for (; first != last; ++first)
        items.emplace_back(std::string(std::string_view(first->first)), std::string(std::string_view(first->second)));
    return items;
}

// -- the commands of fastpgcache 1.1 ----------------------------------------------

/// The Error for a function of 1.1 that the server does not have (42883):
/// says what is installed and how to upgrade it.  Looks at the catalogs
/// (the failed statement was never executed); where that is not possible
/// (an aborted transaction), the message names both ways.
inline Error upgrade_error(Conn& c, const char* function, const Error& e, const Deadline& d) {
    const std::string fn = std::string(function) + "()";
    const std::string server = std::string(" (the server said: ") + e.what() + ")";
    std::string ext, comment;
    bool known = false;
    try {
        auto r = c.exec_sql(
            "SELECT (SELECT e.extversion FROM pg_catalog.pg_extension AS e WHERE e.extname = 'fastpgcache'), "
            "pg_catalog.obj_description(pg_catalog.to_regclass('public.cache_entries'), 'pg_class')",
            PGRES_TUPLES_OK, d, false);
        if (PQntuples(r.get()) == 1) {
            known = true;
            if (!PQgetisnull(r.get(), 0, 0)) ext = PQgetvalue(r.get(), 0, 0);
            if (!PQgetisnull(r.get(), 0, 1)) comment = PQgetvalue(r.get(), 0, 1);
        }
    } catch (const ConnectionLost&) {
        throw;
    } catch (const DeadlineExceeded&) {
        throw;
    } catch (const Error&) {
    }
    const std::string fallback_tag = "fastpgcache fallback";
    if (known && !ext.empty() && ext.rfind("1.0", 0) == 0)
        return Error(fn + " needs fastpgcache 1.1, but the fastpgcache extension in this database is version " + ext +
                         ": upgrade it with ALTER EXTENSION fastpgcache UPDATE (as its owner or a superuser)" + server,
                     "42883");
    if (known && ext.empty() && comment.rfind(fallback_tag, 0) == 0)
        return Error(fn + " needs fastpgcache 1.1, but this database has the SQL fallback" + comment.substr(fallback_tag.size()) +
                         ": upgrade it in place (the cached data is kept) with setup(), or by running "
                         "fallback/fastpgcache_fallback.sql again, as the role that owns public.cache_entries" + server,
                     "42883");
    if (known && ext.empty() && comment.empty())
        return Error(fn + " does not exist: the fastpgcache functions are not installed in this database; call setup()" +
                         server,
                     "42883");
    return Error(fn + " does not exist on the server; it is part of fastpgcache 1.1: upgrade the extension with "
                      "ALTER EXTENSION fastpgcache UPDATE, or the SQL fallback with setup() or by running "
                      "fallback/fastpgcache_fallback.sql again (it upgrades in place)" + server,
                 "42883");
}

/// Runs a statement of 1.1 with text parameters (nullptr: SQL NULL); a
/// function the server does not have becomes upgrade_error().
inline ResultPtr exec11(Conn& c, Stmt s, const char* function, const char* const* values, const Deadline& d,
                        int result_format = 0, const int* lengths = nullptr, const int* formats = nullptr) {
    try {
        return c.exec(s, values, lengths, formats, result_format, d);
    } catch (const ConnectionLost&) {
        throw;
    } catch (const DeadlineExceeded&) {
        throw;
    } catch (const Error& e) {
        // Only when preparing failed: the statement was never executed.
        if (e.sqlstate() != "42883" || (c.prepared & (std::uint64_t{1} << s))) throw;
        throw upgrade_error(c, function, e, d);
    }
}
inline ResultPtr exec11(Conn& c, Stmt s, const char* function, std::initializer_list<const char*> values, const Deadline& d,
                        int result_format = 0, const int* lengths = nullptr, const int* formats = nullptr) {
    return exec11(c, s, function, values.begin(), d, result_format, lengths, formats);
}

/// The single value of a reply; std::nullopt for SQL NULL.
inline std::optional<std::string> value_of(const ResultPtr& r) {
    if (PQntuples(r.get()) != 1 || PQgetisnull(r.get(), 0, 0)) return std::nullopt;
    return std::string(PQgetvalue(r.get(), 0, 0), static_cast<std::size_t>(PQgetlength(r.get(), 0, 0)));
}

inline bool bool_of(const ResultPtr& r) { return value_of(r) == std::optional<std::string>("t"); }

inline long long integer_of(const ResultPtr& r, const char* function) {
    return parse_integer<long long>(value_of(r).value_or(std::string()), function);
}

/// A function of 1.1 taking the key and more text parameters.
inline ResultPtr key_op(Conn& c, Stmt s, const char* function, std::string_view key, std::initializer_list<const char*> more,
                        const Deadline& d, int result_format = 0) {
    check_text(key, "key");
    const std::string k(key);
    const char* vals[kMaxStmtParams] = {k.c_str()};
    std::size_t n = 1;
    for (const char* v : more) vals[n++] = v;
    return exec11(c, s, function, vals, d, result_format);
}

inline const char* flag(bool b) { return b ? "t" : "f"; }

/// SET with NX / XX / KEEPTTL (cache_set's 6-argument form).
inline bool op_set_opt(Conn& c, Stmt s, std::string_view key, std::string_view value, const Ttl& ttl, bool keepttl,
                       UpdateType type, bool binary_value, const Deadline& d) {
    check_text(key, "key");
    if (!binary_value) check_text(value, "value");
    if (value.size() > static_cast<std::size_t>(std::numeric_limits<int>::max())) throw Error("value too large", "54000");
    const std::string k(key), t = ttl.has_value() ? std::to_string(ttl.seconds()) : std::string();
    std::string v;
    const char* vp = value.data() ? value.data() : "";  // a null data pointer would be sent as SQL NULL
    if (!binary_value) {                                // text parameters are NUL-terminated
        v.assign(value);
        vp = v.c_str();
    }
    const int lens[6] = {0, static_cast<int>(value.size()), 0, 0, 0, 0};
    const int fmts[6] = {0, binary_value ? 1 : 0, 0, 0, 0, 0};
    return bool_of(exec11(c, s, "cache_set",
                          {k.c_str(), vp, ttl.has_value() ? t.c_str() : nullptr, flag(type == UpdateType::NotExist),
                           flag(type == UpdateType::Exist), flag(keepttl)},
                          d, 0, lens, fmts));
}

inline std::optional<std::string> op_getset(Conn& c, std::string_view key, std::string_view value, const Ttl& ttl,
                                            const Deadline& d) {
    check_text(value, "value");
    const std::string v(value), t = ttl.has_value() ? std::to_string(ttl.seconds()) : std::string();
    return value_of(key_op(c, kGetSet, "cache_getset", key, {v.c_str(), ttl.has_value() ? t.c_str() : nullptr}, d));
}

inline long long op_incr(Conn& c, std::string_view key, long long by, const Ttl& ttl, const Deadline& d) {
    const std::string b = std::to_string(by), t = ttl.has_value() ? std::to_string(ttl.seconds()) : std::string();
    return integer_of(key_op(c, kIncr, "cache_incr", key, {b.c_str(), ttl.has_value() ? t.c_str() : nullptr}, d),
                      "cache_incr");
}

inline long long op_decr(Conn& c, std::string_view key, long long by, const Deadline& d) {
    const std::string b = std::to_string(by);
    return integer_of(key_op(c, kDecr, "cache_decr", key, {b.c_str()}, d), "cache_decr");
}

/// A double as float8 input, exactly (shortest round-trip form).
inline std::string float8_text(double v) {
    if (std::isnan(v)) return "NaN";
    if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
    char buf[64];
    auto res = std::to_chars(buf, buf + sizeof buf, v);
    return std::string(buf, res.ptr);
}

/// A float8 in binary format (8 bytes, big-endian IEEE 754): exact whatever
/// the session's extra_float_digits.
inline double float8_of(const ResultPtr& r, const char* function) {
    if (PQntuples(r.get()) != 1 || PQgetisnull(r.get(), 0, 0) || PQgetlength(r.get(), 0, 0) != 8)
        throw Error(std::string("the server's reply to ") + function + " is not a double precision value", "XX000");
    const auto* p = reinterpret_cast<const unsigned char*>(PQgetvalue(r.get(), 0, 0));
    std::uint64_t bits = 0;
    for (int i = 0; i < 8; ++i) bits = (bits << 8) | p[i];
    double out;
    static_assert(sizeof out == sizeof bits, "IEEE 754 double");
    std::memcpy(&out, &bits, sizeof out);
    return out;
}

inline double op_incrbyfloat(Conn& c, std::string_view key, double by, const Deadline& d) {
    const std::string b = float8_text(by);
    return float8_of(key_op(c, kIncrByFloat, "cache_incrbyfloat", key, {b.c_str()}, d, 1), "cache_incrbyfloat");
}

inline long long op_append(Conn& c, std::string_view key, std::string_view value, const Deadline& d) {
    check_text(value, "value");
    const std::string v(value);
    return integer_of(key_op(c, kAppend, "cache_append", key, {v.c_str()}, d), "cache_append");
}

/// EXPIRE / PEXPIRE: `amount` seconds (an int4 parameter) or milliseconds.
inline bool op_expire(Conn& c, Stmt s, const char* function, std::string_view key, long long amount, const Deadline& d) {
    if (s == kExpire && (amount > std::numeric_limits<int>::max() || amount < std::numeric_limits<int>::min()))
        throw Error("expire(): " + std::to_string(amount) +
                        " seconds does not fit in 32 bits; use pexpire() or expireat() for expiries that far away",
                    "22003");
    const std::string a = std::to_string(amount);
    return bool_of(key_op(c, s, function, key, {a.c_str()}, d));
}

inline std::optional<std::string> op_getex(Conn& c, std::string_view key, const Ttl& ttl, bool remove_ttl, const Deadline& d) {
    const std::string t = ttl.has_value() ? std::to_string(ttl.seconds()) : std::string();
    return value_of(key_op(c, kGetEx, "cache_getex", key, {ttl.has_value() ? t.c_str() : nullptr, flag(remove_ttl)}, d));
}

inline std::vector<std::string> op_keys(Conn& c, std::string_view pattern, const Deadline& d) {
    check_text(pattern, "pattern");
    const std::string p(pattern);
    auto r = exec11(c, kKeys, "cache_keys", {p.c_str()}, d);
    std::vector<std::string> out;
    const int n = PQntuples(r.get());
    out.reserve(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) out.emplace_back(PQgetvalue(r.get(), i, 0), static_cast<std::size_t>(PQgetlength(r.get(), i, 0)));
    return out;
}

/// One SCAN step: the next cursor and the keys of this batch.
inline std::pair<long long, std::vector<std::string>> op_scan(Conn& c, long long cursor, std::string_view pattern,
                                                              long long count, const Deadline& d) {
    check_text(pattern, "pattern");
    const std::string cur = std::to_string(cursor), p(pattern), n = std::to_string(count);
    auto r = exec11(c, kScan, "cache_scan", {cur.c_str(), p.c_str(), n.c_str()}, d);
    const int rows = PQntuples(r.get());
    if (rows < 1 || PQgetisnull(r.get(), 0, 0)) throw Error("the server's reply to cache_scan has no cursor", "XX000");
    std::pair<long long, std::vector<std::string>> out;
    out.first = parse_integer<long long>(PQgetvalue(r.get(), 0, 0), "cache_scan");
    out.second.reserve(static_cast<std::size_t>(rows));
    for (int i = 0; i < rows; ++i)
        if (!PQgetisnull(r.get(), i, 1))
            out.second.emplace_back(PQgetvalue(r.get(), i, 1), static_cast<std::size_t>(PQgetlength(r.get(), i, 1)));
    return out;
}

inline bool op_msetnx(Conn& c, const std::vector<std::pair<std::string, std::string>>& items, const Ttl& ttl, const Deadline& d) {
    std::vector<std::string> ks, vs;
    ks.reserve(items.size());
    vs.reserve(items.size());
    for (const auto& kv : items) {
        check_text(kv.first, "key");
        check_text(kv.second, "value");
        ks.push_back(kv.first);
        vs.push_back(kv.second);
    }
    const std::string ka = text_array_literal(ks), va = text_array_literal(vs);
    const std::string t = ttl.has_value() ? std::to_string(ttl.seconds()) : std::string();
    return bool_of(exec11(c, kMSetNx, "cache_msetnx", {ka.c_str(), va.c_str(), ttl.has_value() ? t.c_str() : nullptr}, d));
}

}  // namespace detail

/// The keys of a SCAN iteration as a range, fetched batch by batch as the
/// loop advances (Commands::scan_keys()).  Every key that exists for the
/// whole iteration is seen at least once; a key may be seen twice.  Each
/// batch is one operation (with its own retry and deadline; through
/// with_timeout() the deadline is shared).  Must not outlive the
/// FastPgCache or Session it came from.  An input range: iterate it once.
class KeyScan {
public:
    /// fetch(cursor, batch): one SCAN step, returns the next cursor.
    using Fetch = std::function<long long(long long, std::vector<std::string>&)>;
    explicit KeyScan(Fetch fetch) : fetch_(std::move(fetch)) {}
    KeyScan(const KeyScan&) = delete;
    KeyScan& operator=(const KeyScan&) = delete;
    KeyScan(KeyScan&&) = default;
    KeyScan& operator=(KeyScan&&) = default;

    class iterator {
    public:
        using iterator_category = std::input_iterator_tag;
        using value_type = std::string;
        using difference_type = std::ptrdiff_t;
        using pointer = const std::string*;
        using reference = const std::string&;

        iterator() = default;
        reference operator*() const { return scan_->batch_[scan_->pos_]; }
        pointer operator->() const { return &**this; }
        iterator& operator++() {
            ++scan_->pos_;
            if (!scan_->fill()) scan_ = nullptr;
            return *this;
        }
        /// it++ (an input iterator's): *it++ is the key before the step.
        struct Proxy {
            std::string key;
            const std::string& operator*() const { return key; }
        };
        Proxy operator++(int) {
            Proxy p{**this};
            ++*this;
            return p;
        }
        friend bool operator==(const iterator& a, const iterator& b) { return a.scan_ == b.scan_; }
        friend bool operator!=(const iterator& a, const iterator& b) { return !(a == b); }

    private:
        friend class KeyScan;
        explicit iterator(KeyScan* s) : scan_(s->fill() ? s : nullptr) {}
        KeyScan* scan_ = nullptr;
    };

    /// Fetches the first non-empty batch (or runs the whole iteration when
    /// nothing matches).
    iterator begin() { return iterator(this); }
    iterator end() { return iterator(); }

private:
    // Makes batch_[pos_] valid, fetching batches while needed; false at the end.
    bool fill() {
        while (pos_ >= batch_.size()) {
            if (finished_) return false;
            batch_.clear();
            pos_ = 0;
            cursor_ = fetch_(cursor_, batch_);
            finished_ = cursor_ == 0;
        }
        return true;
    }
    Fetch fetch_;
    long long cursor_ = 0;
    bool finished_ = false;
    std::vector<std::string> batch_;
    std::size_t pos_ = 0;
};

/// The cache commands.  Derived provides
///   template <class F> auto execute(const char* name, OpKind kind, F&& fn)
/// running fn(detail::Conn&, const Deadline&).
template <class Derived>
class Commands {
public:
    // -- SET / GET -------------------------------------------------------------

    /// SET key value [EX ttl] [NX | XX]: stores text.  Without a ttl the
    /// entry gets no expiry (a previous one is cleared).  `type`:
    /// UpdateType::NotExist writes only if the key is absent (NX),
    /// UpdateType::Exist only if it is live (XX).  True when written, false
    /// when the condition prevented it.  (NX/XX need fastpgcache 1.1.)
    bool set(std::string_view key, std::string_view value, Ttl ttl = {}, UpdateType type = UpdateType::Always) {
        return write_value("set", detail::kSetText, key, value, ttl, false, type, false);
    }
    bool set(std::string_view key, const std::string& value, Ttl ttl = {}, UpdateType type = UpdateType::Always) {
        return set(key, std::string_view(value), ttl, type);
    }
    /// A null pointer is an Error (22004), not a crash; store a JSON null
    /// with set(key, nlohmann::json(nullptr)).
    bool set(std::string_view key, const char* value, Ttl ttl = {}, UpdateType type = UpdateType::Always) {
        return set(key, checked_c_str(value), ttl, type);
    }
    /// Stores the JSON document (as jsonb); read it back with get_json().
    bool set(std::string_view key, const nlohmann::json& value, Ttl ttl = {}, UpdateType type = UpdateType::Always) {
        const std::string text = detail::dump_json(value);
        return write_value("set", detail::kSetJson, key, text, ttl, false, type, false);
    }
    /// Stores raw bytes (bytea); read them back with get_bytes().
    bool set_bytes(std::string_view key, std::string_view bytes, Ttl ttl = {}, UpdateType type = UpdateType::Always) {
        return write_value("set_bytes", detail::kSetBytes, key, bytes, ttl, false, type, true);
    }

    /// SET key value KEEPTTL [NX | XX]: the new value keeps the live entry's
    /// expiry (none if the key was absent or had none):
    /// cache.set(key, value, fastpgcache::keep_ttl).  Needs fastpgcache 1.1.
    bool set(std::string_view key, std::string_view value, KeepTtl, UpdateType type = UpdateType::Always) {
        return write_value("set", detail::kSetText, key, value, Ttl{}, true, type, false);
    }
    bool set(std::string_view key, const std::string& value, KeepTtl k, UpdateType type = UpdateType::Always) {
        return set(key, std::string_view(value), k, type);
    }
    bool set(std::string_view key, const char* value, KeepTtl k, UpdateType type = UpdateType::Always) {
        return set(key, checked_c_str(value), k, type);
    }
    bool set(std::string_view key, const nlohmann::json& value, KeepTtl, UpdateType type = UpdateType::Always) {
        const std::string text = detail::dump_json(value);
        return write_value("set", detail::kSetJson, key, text, Ttl{}, true, type, false);
    }
    bool set_bytes(std::string_view key, std::string_view bytes, KeepTtl, UpdateType type = UpdateType::Always) {
        return write_value("set_bytes", detail::kSetBytes, key, bytes, Ttl{}, true, type, true);
    }

    /// SET key value [EX ttl] GET (GETSET): stores text (expiry from ttl,
    /// none without) and returns the previous value, std::nullopt if there
    /// was none.  A previous value that is not text (set_bytes) is an Error
    /// 22021 and nothing is written.  cache_getset (1.1).
    std::optional<std::string> getset(std::string_view key, std::string_view value, Ttl ttl = {}) {
        return run("getset", OpKind::Write,
                   [&](detail::Conn& c, const Deadline& d) { return detail::op_getset(c, key, value, ttl, d); });
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

    // -- counters and strings (fastpgcache 1.1) ----------------------------------------

    /// INCR key: adds 1 to the 64-bit integer stored at the key (absent: 0)
    /// and returns the result.  `ttl` applies only when this call creates the
    /// key (a live key keeps its expiry): a fixed-window rate limiter in one
    /// call, cache.incr("hits:" + user, 60s).  A value that is not an integer
    /// in Redis's strict form: Error 22P02; overflow: 22003 (the value is
    /// unchanged).  cache_incr.
    long long incr(std::string_view key, Ttl ttl = {}) {
        return run("incr", OpKind::Write, [&](detail::Conn& c, const Deadline& d) { return detail::op_incr(c, key, 1, ttl, d); });
    }
    /// INCRBY key increment (ttl as for incr()).
    long long incrby(std::string_view key, long long increment, Ttl ttl = {}) {
        return run("incrby", OpKind::Write,
                   [&](detail::Conn& c, const Deadline& d) { return detail::op_incr(c, key, increment, ttl, d); });
    }
    /// DECR key.  cache_decr.
    long long decr(std::string_view key) {
        return run("decr", OpKind::Write, [&](detail::Conn& c, const Deadline& d) { return detail::op_decr(c, key, 1, d); });
    }
    /// DECRBY key decrement; a decrement of INT64_MIN is an Error 22003.
    long long decrby(std::string_view key, long long decrement) {
        return run("decrby", OpKind::Write,
                   [&](detail::Conn& c, const Deadline& d) { return detail::op_decr(c, key, decrement, d); });
    }
    /// INCRBYFLOAT key increment: the stored number (absent: 0) plus
    /// `increment`, stored as text the way Redis formats it (17 digits, no
    /// trailing zeros); the result is returned exactly as computed.  A value
    /// that is not a number: Error 22P02; a NaN or infinite result (or a NaN
    /// increment): 22003.  The key keeps its expiry.  cache_incrbyfloat.
    double incrbyfloat(std::string_view key, double increment) {
        return run("incrbyfloat", OpKind::Write,
                   [&](detail::Conn& c, const Deadline& d) { return detail::op_incrbyfloat(c, key, increment, d); });
    }
    /// APPEND key value: appends the bytes (creates the key without expiry
    /// if absent) and returns the new length in bytes.  cache_append.
    long long append(std::string_view key, std::string_view value) {
        return run("append", OpKind::Write,
                   [&](detail::Conn& c, const Deadline& d) { return detail::op_append(c, key, value, d); });
    }
    /// STRLEN key: the value's length in bytes, 0 when absent.  cache_strlen.
    long long strlen(std::string_view key) {
        return run("strlen", OpKind::Read, [&](detail::Conn& c, const Deadline& d) {
            return detail::integer_of(detail::key_op(c, detail::kStrlen, "cache_strlen", key, {}, d), "cache_strlen");
        });
    }

    // -- expiry (fastpgcache 1.1) ----------------------------------------------------------

    /// EXPIRE key seconds: true if the key exists (false if not).  A ttl of
    /// 0 or less deletes the key.  cache_expire.
    bool expire(std::string_view key, long long seconds) {
        return run("expire", OpKind::Write, [&](detail::Conn& c, const Deadline& d) {
            return detail::op_expire(c, detail::kExpire, "cache_expire", key, seconds, d);
        });
    }
    bool expire(std::string_view key, std::chrono::seconds ttl) { return expire(key, static_cast<long long>(ttl.count())); }
    /// PEXPIRE key milliseconds (millisecond precision).  cache_pexpire.
    bool pexpire(std::string_view key, long long milliseconds) {
        return run("pexpire", OpKind::Write, [&](detail::Conn& c, const Deadline& d) {
            return detail::op_expire(c, detail::kPExpire, "cache_pexpire", key, milliseconds, d);
        });
    }
    bool pexpire(std::string_view key, std::chrono::milliseconds ttl) {
        return pexpire(key, static_cast<long long>(ttl.count()));
    }
    /// EXPIREAT key unix-seconds.
    bool expireat(std::string_view key, long long unix_seconds) {
        return expireat(key, std::chrono::system_clock::time_point(std::chrono::seconds(unix_seconds)));
    }
    /// EXPIREAT at a point in time (microsecond precision): false if the key
    /// does not exist; a time not in the future deletes it (true).  A time
    /// PostgreSQL cannot represent: Error 22008.  cache_expireat.
    template <class Duration>
    bool expireat(std::string_view key, std::chrono::time_point<std::chrono::system_clock, Duration> at) {
        const std::string ts = detail::timestamptz_text(at);
        return run("expireat", OpKind::Write, [&](detail::Conn& c, const Deadline& d) {
            return detail::bool_of(detail::key_op(c, detail::kExpireAt, "cache_expireat", key, {ts.c_str()}, d));
        });
    }
    /// PERSIST key: true if the key was live and had an expiry (now
    /// removed).  cache_persist.
    bool persist(std::string_view key) {
        return run("persist", OpKind::Write, [&](detail::Conn& c, const Deadline& d) {
            return detail::bool_of(detail::key_op(c, detail::kPersist, "cache_persist", key, {}, d));
        });
    }
    /// PTTL key: milliseconds left (rounded up), -1 without expiry, -2 when
    /// missing.  cache_pttl.
    long long pttl(std::string_view key) {
        return run("pttl", OpKind::Read, [&](detail::Conn& c, const Deadline& d) {
            return detail::integer_of(detail::key_op(c, detail::kPTtl, "cache_pttl", key, {}, d), "cache_pttl");
        });
    }

    // -- GETDEL / GETEX (fastpgcache 1.1) -------------------------------------------------

    /// GETDEL key: the value (std::nullopt if absent), and the key is
    /// deleted.  A value that is not text: Error 22021, not deleted.
    std::optional<std::string> getdel(std::string_view key) {
        return run("getdel", OpKind::Write, [&](detail::Conn& c, const Deadline& d) {
            return detail::value_of(detail::key_op(c, detail::kGetDel, "cache_getdel", key, {}, d));
        });
    }
    /// GETEX key [EX ttl]: the value (std::nullopt if absent); with a ttl the
    /// key's expiry is set to it, without one nothing changes (a read).
    std::optional<std::string> getex(std::string_view key, Ttl ttl = {}) {
        return run("getex", ttl.has_value() ? OpKind::Write : OpKind::Read,
                   [&](detail::Conn& c, const Deadline& d) { return detail::op_getex(c, key, ttl, false, d); });
    }
    /// GETEX key PERSIST: the value, and the key's expiry is removed:
    /// cache.getex(key, fastpgcache::persist).
    std::optional<std::string> getex(std::string_view key, Persist) {
        return run("getex", OpKind::Write,
                   [&](detail::Conn& c, const Deadline& d) { return detail::op_getex(c, key, Ttl{}, true, d); });
    }

    // -- the keyspace (fastpgcache 1.1) ---------------------------------------------------

    /// TYPE key: "text", "json" or "bytes" (how the value was set),
    /// std::nullopt when the key does not exist.  cache_type.
    std::optional<std::string> type(std::string_view key) {
        return run("type", OpKind::Read, [&](detail::Conn& c, const Deadline& d) {
            return detail::value_of(detail::key_op(c, detail::kType, "cache_type", key, {}, d));
        });
    }
    /// KEYS pattern: every live key matching the Redis glob pattern (*, ?,
    /// [abc], [^a], [a-z], \x), in no particular order.  Reads the whole
    /// cache: prefer scan() on large caches.  cache_keys.
    std::vector<std::string> keys(std::string_view pattern = "*") {
        return run("keys", OpKind::Read, [&](detail::Conn& c, const Deadline& d) { return detail::op_keys(c, pattern, d); });
    }
    /// KEYS pattern into an output iterator (redis-plus-plus style).
    template <class Output>
    void keys(std::string_view pattern, Output output) {
        for (auto& k : keys(pattern)) *output++ = std::move(k);
    }

    /// SCAN cursor [MATCH pattern] [COUNT count]: one step of an iteration
    /// over the live keys.  Start with cursor 0; the returned cursor is the
    /// next call's, 0 when the iteration is complete.  Each step examines
    /// about `count` entries, so it may return no key and a non-zero cursor.
    /// Every key that exists for the whole iteration is returned at least
    /// once (also while others write); a key may be returned twice.
    ///   long long cursor = 0;
    ///   do cursor = cache.scan(cursor, "user:*", 100, std::back_inserter(keys));
    ///   while (cursor != 0);
    /// A negative cursor or a count below 1: Error 22023.  cache_scan.
    template <class Output>
    long long scan(long long cursor, std::string_view pattern, long long count, Output output) {
        auto step = run("scan", OpKind::Read,
                        [&](detail::Conn& c, const Deadline& d) { return detail::op_scan(c, cursor, pattern, count, d); });
        for (auto& k : step.second) *output++ = std::move(k);
        return step.first;
    }
    template <class Output>
    long long scan(long long cursor, Output output) {
        return scan(cursor, "*", 100, output);
    }
    template <class Output>
    long long scan(long long cursor, std::string_view pattern, Output output) {
        return scan(cursor, pattern, 100, output);
    }
    template <class Output>
    long long scan(long long cursor, long long count, Output output) {
        return scan(cursor, "*", count, output);
    }
    /// A whole SCAN iteration as a range, fetched `count` entries at a time
    /// as the loop advances (see KeyScan):
    ///   for (const std::string& key : cache.scan_keys("user:*")) ...
    KeyScan scan_keys(std::string_view pattern = "*", long long count = 100) {
        std::string p(pattern);
        if constexpr (std::is_copy_constructible_v<Derived>) {
            // A cheap view (with_timeout()): the range keeps its own copy.
            Derived self = static_cast<Derived&>(*this);
            return KeyScan([self, p, count](long long cursor, std::vector<std::string>& out) mutable {
                return self.scan(cursor, p, count, std::back_inserter(out));
            });
        } else {
            Derived* self = static_cast<Derived*>(this);
            return KeyScan([self, p, count](long long cursor, std::vector<std::string>& out) {
                return self->scan(cursor, p, count, std::back_inserter(out));
            });
        }
    }

    /// FLUSHDB: deletes every entry (transactional); returns how many live
    /// entries were removed.  cache_flush.
    long long flushdb() {
        return run("flushdb", OpKind::Write, [&](detail::Conn& c, const Deadline& d) {
            return detail::integer_of(detail::exec11(c, detail::kFlush, "cache_flush", {}, d), "cache_flush");
        });
    }
    /// DBSIZE: the number of live entries (exact).  cache_dbsize.
    long long dbsize() {
        return run("dbsize", OpKind::Read, [&](detail::Conn& c, const Deadline& d) {
            return detail::integer_of(detail::exec11(c, detail::kDbSize, "cache_dbsize", {}, d), "cache_dbsize");
        });
    }

    // -- MSETNX (fastpgcache 1.1) ----------------------------------------------------------

    /// MSETNX: sets every pair (text, expiry from ttl) only if none of the
    /// keys exists; true if set, false if nothing was set.  Atomic: of two
    /// racing calls with a key in common at most one returns true.  A key
    /// given twice: the last value wins.  cache_msetnx.
    bool msetnx(const std::vector<std::pair<std::string, std::string>>& items, Ttl ttl = {}) {
        return run("msetnx", OpKind::Write, [&](detail::Conn& c, const Deadline& d) { return detail::op_msetnx(c, items, ttl, d); });
    }
    template <class It>
    bool msetnx(It first, It last, Ttl ttl = {}) {
        return msetnx(detail::collect_pairs(first, last), ttl);
    }
    bool msetnx(std::initializer_list<std::pair<std::string_view, std::string_view>> items, Ttl ttl = {}) {
        return msetnx(items.begin(), items.end(), ttl);
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
    static std::string_view checked_c_str(const char* value) {
        if (!value)
            throw Error("set(): the value is a null pointer; to store a JSON null use set(key, nlohmann::json(nullptr))",
                        "22004");
        return value;
    }
    // Plain SET uses cache_set(key, value, ttl), which fastpgcache 1.0 has
    // too; a condition or KEEPTTL the 6-argument form of 1.1.
    bool write_value(const char* name, detail::Stmt s, std::string_view key, std::string_view value, const Ttl& ttl,
                     bool keepttl, UpdateType type, bool binary) {
        if (!keepttl && type == UpdateType::Always)
            return run(name, OpKind::Write,
                       [&](detail::Conn& c, const Deadline& d) { return detail::op_set(c, s, key, value, ttl, binary, d); });
        const detail::Stmt opt = s == detail::kSetJson ? detail::kSetJsonOpt : s == detail::kSetBytes ? detail::kSetBytesOpt
                                                                                                      : detail::kSetTextOpt;
        return run(name, OpKind::Write, [&](detail::Conn& c, const Deadline& d) {
            return detail::op_set_opt(c, opt, key, value, ttl, keepttl, type, binary, d);
        });
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

// fastpgcache/client/operations.hpp - the cache operations over one connection
// Part of the C++ client; include <fastpgcache/client.hpp>.
#pragma once

#include <fastpgcache/client/connection.hpp>

#include <nlohmann/json.hpp>

#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace fastpgcache {

namespace detail {

// -- the cache operations, over one connection ------------------------------

/// Keys and text values travel as text, which cannot hold a NUL byte: refuse
/// them (22021, as the server does for bad text) instead of truncating.
inline void check_text(std::string_view s, const char* what) {
    if (s.find('\0') != std::string_view::npos)
        throw Error(std::string("cache ") + what +
                        " contains a NUL byte, which text cannot hold; use set_bytes()/get_bytes() for binary data",
                    "22021");
}

inline bool op_set(Conn& c, Stmt s, std::string_view key, std::string_view value, const Ttl& ttl, bool binary_value) {
    check_text(key, "key");
    if (!binary_value) check_text(value, "value");
    std::string k(key), v(value), t = ttl.has_value() ? std::to_string(ttl.seconds()) : std::string();
    const char* vals[3] = {k.c_str(), v.data(), ttl.has_value() ? t.c_str() : nullptr};
    int lens[3] = {0, static_cast<int>(v.size()), 0};
    int fmts[3] = {0, binary_value ? 1 : 0, 0};
    if (v.size() > static_cast<std::size_t>(std::numeric_limits<int>::max())) throw Error("value too large", "54000");
    auto r = c.exec(s, vals, lens, fmts, 0);
    return PQntuples(r.get()) == 1 && !PQgetisnull(r.get(), 0, 0) && PQgetvalue(r.get(), 0, 0)[0] == 't';
}

inline std::optional<std::string> op_get(Conn& c, Stmt s, std::string_view key, int result_format) {
    check_text(key, "key");
    std::string k(key);
    const char* vals[1] = {k.c_str()};
    auto r = c.exec(s, vals, nullptr, nullptr, result_format);
    if (PQntuples(r.get()) != 1 || PQgetisnull(r.get(), 0, 0)) return std::nullopt;
    return std::string(PQgetvalue(r.get(), 0, 0), static_cast<std::size_t>(PQgetlength(r.get(), 0, 0)));
}

inline std::string scalar(const ResultPtr& r) {
    if (PQntuples(r.get()) != 1 || PQgetisnull(r.get(), 0, 0)) return {};
    return PQgetvalue(r.get(), 0, 0);
}

inline bool op_bool(Conn& c, Stmt s, std::string_view key) {
    check_text(key, "key");
    std::string k(key);
    const char* vals[1] = {k.c_str()};
    return scalar(c.exec(s, vals, nullptr, nullptr, 0)) == "t";
}

inline long long op_int(Conn& c, Stmt s, std::string_view key) {
    check_text(key, "key");
    std::string k(key);
    const char* vals[1] = {k.c_str()};
    std::string v = scalar(c.exec(s, vals, nullptr, nullptr, 0));
    return v.empty() ? 0 : std::stoll(v);
}

inline int op_cleanup(Conn& c) {
    std::string v = scalar(c.exec(kCleanup, nullptr, nullptr, nullptr, 0));
    return v.empty() ? 0 : std::stoi(v);
}

inline std::optional<nlohmann::json> op_get_json(Conn& c, std::string_view key) {
    auto s = op_get(c, kGetJson, key, 0);
    if (!s) return std::nullopt;
    return nlohmann::json::parse(*s);
}

inline bool is_undefined_function(const Error& e) { return e.sqlstate() == "42883"; }

inline std::vector<std::optional<std::string>> op_mget(Conn& c, const std::vector<std::string>& keys, bool& supported) {
    std::vector<std::optional<std::string>> out;
    if (keys.empty()) return out;
    for (const auto& k : keys) check_text(k, "key");
    if (supported) {
        std::string arr = text_array_literal(keys);
        const char* vals[1] = {arr.c_str()};
        try {
            auto r = c.exec(kMGet, vals, nullptr, nullptr, 0);
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
            supported = false;  // older server side without cache_mget
        }
    }
    for (const auto& k : keys) out.push_back(op_get(c, kGet, k, 0));
    return out;
}

inline int op_mset(Conn& c, const std::vector<std::pair<std::string, std::string>>& items, const Ttl& ttl, bool& supported) {
    if (items.empty()) return 0;
    for (const auto& kv : items) {
        check_text(kv.first, "key");
        check_text(kv.second, "value");
    }
    if (supported) {
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
            std::string v = scalar(c.exec(kMSet, vals, nullptr, nullptr, 0));
            return v.empty() ? 0 : std::stoi(v);
        } catch (const ConnectionLost&) {
            throw;
        } catch (const Error& e) {
            if (!is_undefined_function(e)) throw;
            supported = false;
        }
    }
    // Without cache_mset: one transaction of single sets.
    c.exec_sql("BEGIN", PGRES_COMMAND_OK);
    try {
        int n = 0;
        for (const auto& kv : items) n += op_set(c, kSetText, kv.first, kv.second, ttl, false) ? 1 : 0;
        c.exec_sql("COMMIT", PGRES_COMMAND_OK);
        return n;
    } catch (...) {
        if (!c.bad()) PQclear(PQexec(c.get(), "ROLLBACK"));
        throw;
    }
}

}  // namespace detail

}  // namespace fastpgcache

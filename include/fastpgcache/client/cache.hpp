// fastpgcache/client/cache.hpp - FastPgCache, the pooled client
// Part of the C++ client; include <fastpgcache/client.hpp>.
#pragma once

#include <fastpgcache/client/operations.hpp>
#include <fastpgcache/client/pool.hpp>
#include <fastpgcache/client/session.hpp>

#include <atomic>
#include <memory>
#include <string>
#include <type_traits>

namespace fastpgcache {

// ---------------------------------------------------------------------------
// FastPgCache
// ---------------------------------------------------------------------------

class FastPgCache {
public:
    explicit FastPgCache(Options options) : pool_(std::make_shared<detail::Pool>(std::move(options))) {
        pool_->warm_up();
        if (pool_->options().auto_setup) setup();
    }

    /// From a libpq connection string; other settings from `options`.
    explicit FastPgCache(const std::string& connection_string, Options options = {})
        : FastPgCache(with_connection_string(std::move(options), connection_string)) {}
    explicit FastPgCache(const char* connection_string, Options options = {})
        : FastPgCache(std::string(connection_string), std::move(options)) {}

    ~FastPgCache() { close(); }

    FastPgCache(const FastPgCache&) = delete;
    FastPgCache& operator=(const FastPgCache&) = delete;

    /// Installs the cache functions: CREATE EXTENSION IF NOT EXISTS
    /// fastpgcache, or the pure-SQL fallback where the extension is not
    /// available (or cannot be created by this role).  Idempotent.
    Backend setup() {
        Backend b = with_conn([this](detail::Conn& c) { return do_setup(c); }, false);
        backend_.store(b);
        return b;
    }

    /// What setup() found or installed (Unknown before setup()).
    Backend backend() const { return backend_.load(); }

    bool set(std::string_view key, const std::string& value, Ttl ttl = {}) {
        return set_impl(detail::kSetText, key, value, ttl, false);
    }
    bool set(std::string_view key, const char* value, Ttl ttl = {}) {
        return set_impl(detail::kSetText, key, value, ttl, false);
    }
    bool set(std::string_view key, std::string_view value, Ttl ttl = {}) {
        return set_impl(detail::kSetText, key, value, ttl, false);
    }
    /// Stores the JSON document (as jsonb); read it back with get_json().
    bool set(std::string_view key, const nlohmann::json& value, Ttl ttl = {}) {
        return set_impl(detail::kSetJson, key, value.dump(), ttl, false);
    }
    /// Stores raw bytes (bytea); read them back with get_bytes().
    bool set_bytes(std::string_view key, std::string_view bytes, Ttl ttl = {}) {
        return set_impl(detail::kSetBytes, key, bytes, ttl, true);
    }

    /// The value as text; std::nullopt when missing or expired.
    std::optional<std::string> get(std::string_view key) {
        return with_conn([&](detail::Conn& c) { return detail::op_get(c, detail::kGet, key, 0); });
    }
    /// The value parsed as JSON; std::nullopt when missing or expired.  A
    /// stored JSON null is returned as a json null, not std::nullopt.
    std::optional<nlohmann::json> get_json(std::string_view key) {
        return with_conn([&](detail::Conn& c) { return detail::op_get_json(c, key); });
    }
    std::optional<std::string> get_bytes(std::string_view key) {
        return with_conn([&](detail::Conn& c) { return detail::op_get(c, detail::kGetBytes, key, 1); });
    }
    /// Deletes the key; true if a live entry was deleted.
    bool del(std::string_view key) {
        return with_conn([&](detail::Conn& c) { return detail::op_bool(c, detail::kDelete, key); }, false);
    }
    bool exists(std::string_view key) {
        return with_conn([&](detail::Conn& c) { return detail::op_bool(c, detail::kExists, key); });
    }
    /// Seconds left (rounded up), -1 without expiry, -2 when missing.
    long long ttl(std::string_view key) {
        return with_conn([&](detail::Conn& c) { return detail::op_int(c, detail::kTtl, key); });
    }
    /// Deletes every expired entry; returns how many.
    int cleanup() {
        return with_conn([&](detail::Conn& c) { return detail::op_cleanup(c); }, false);
    }
    /// One result per key, in order (uses cache_mget when the server has it).
    std::vector<std::optional<std::string>> mget(const std::vector<std::string>& keys) {
        return with_conn([&](detail::Conn& c) {
            bool sup = pool_->mget_supported.load();
            auto r = detail::op_mget(c, keys, sup);
            if (!sup) pool_->mget_supported.store(false);
            return r;
        });
    }
    /// Sets all pairs atomically (cache_mset); returns the number set.
    int mset(const std::vector<std::pair<std::string, std::string>>& items, Ttl ttl = {}) {
        return with_conn([&](detail::Conn& c) {
            bool sup = pool_->mset_supported.load();
            int n = detail::op_mset(c, items, ttl, sup);
            if (!sup) pool_->mset_supported.store(false);
            return n;
        });
    }

    /// Leases one connection (e.g. for a transaction mixing cache calls and
    /// application SQL).
    Session session() { return Session(pool_); }

    /// Runs fn(Session&) inside BEGIN/COMMIT; rolls back if fn throws.
    template <class F>
    auto transaction(F&& fn) -> decltype(fn(std::declval<Session&>())) {
        Session s = session();
        s.begin();
        try {
            if constexpr (std::is_void_v<decltype(fn(s))>) {
                fn(s);
                s.commit();
            } else {
                auto r = fn(s);
                s.commit();
                return r;
            }
        } catch (...) {
            if (PQstatus(s.raw()) == CONNECTION_OK) PQclear(PQexec(s.raw(), "ROLLBACK"));
            throw;
        }
    }

    /// Closes idle connections now and the others when they are returned.
    void close() {
        if (pool_) pool_->close();
    }

    PoolStats pool_stats() const { return pool_->stats(); }

private:
    static Options with_connection_string(Options o, const std::string& cs) {
        o.connection_string = cs;
        return o;
    }

    bool set_impl(detail::Stmt s, std::string_view key, std::string_view value, const Ttl& ttl, bool binary) {
        return with_conn([&](detail::Conn& c) { return detail::op_set(c, s, key, value, ttl, binary); });
    }

    // Runs fn on a pooled connection.  A connection that broke is discarded
    // (connections found dead when checked out are replaced before use).  The
    // operation is retried once on another connection when it cannot have
    // run (the connection broke before its statement was sent), or when it
    // is idempotent: reads, set and mset leave the same state when run twice;
    // del, cleanup and setup are not retried once sent (del's "was it
    // there?" answer would be wrong), the ConnectionError reaches the caller.
    template <class F>
    auto with_conn(F&& fn, bool idempotent = true) -> decltype(fn(std::declval<detail::Conn&>())) {
        for (int attempt = 0;; ++attempt) {
            detail::Lease lease(pool_);
            try {
                return fn(*lease);
            } catch (const detail::ConnectionLost& e) {
                if (attempt >= 1 || (e.sent() && !idempotent)) throw ConnectionError(e.what(), e.sqlstate());
            }
        }
    }

    static bool extension_unavailable(const Error& e) {
        // 0A000: "extension ... is not available" (PostgreSQL 15.x),
        // 58P01: missing control file (older minors), 42501: the role may not
        // create it (not superuser, extension not trusted).
        return e.sqlstate() == "0A000" || e.sqlstate() == "58P01" || e.sqlstate() == "42501";
    }

    // The extension goes wherever CREATE EXTENSION puts it (the first schema
    // on search_path) or already is; the statements are then qualified with
    // its schema, read from pg_extension.extnamespace.  The fallback always
    // lives in public.
    Backend do_setup(detail::Conn& c) {
        const auto& o = pool_->options();
        if (o.use_extension) {
            if (auto schema = detail::extension_schema(c)) {
                pool_->statements().set_schema(c, *schema);
                return Backend::Extension;
            }
            if (!fallback_installed(c)) {
                try {
                    c.exec_sql("CREATE EXTENSION IF NOT EXISTS fastpgcache", PGRES_COMMAND_OK);
                    pool_->statements().set_schema(c, detail::extension_schema(c).value_or("public"));
                    return Backend::Extension;
                } catch (const detail::ConnectionLost&) {
                    throw;
                } catch (const Error& e) {
                    if (!extension_unavailable(e)) throw;
                }
            }
        }
        install_fallback(c, o.fallback_sql_path);
        pool_->statements().set_schema(c, "public");
        return Backend::Fallback;
    }

    // The fallback counts as installed only if public.cache_entries is a
    // plain table carrying the fallback's comment, owned by the current user
    // or a superuser, and every public.cache_* function of the API has the same owner:
    // a table pre-created by another role (where public is writable) is
    // never trusted because of a COMMENT its owner can set.
    static bool fallback_installed(detail::Conn& c) {
        auto r = c.exec_sql(
            "SELECT pg_catalog.obj_description(c.oid, 'pg_class') LIKE 'fastpgcache fallback%' "
            "   AND c.relkind = 'r' "
            "   AND (c.relowner = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user) "
            "        OR (SELECT rolsuper FROM pg_catalog.pg_roles WHERE oid = c.relowner)) "
            "   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_proc p WHERE p.pronamespace = c.relnamespace "
            "                     AND p.proname IN ('cache_set', 'cache_get', 'cache_get_json', 'cache_get_bytes', "
            "                     'cache_delete', 'cache_exists', 'cache_ttl', 'cache_cleanup', 'cache_mget', 'cache_mset') "
            "                     AND p.proowner <> c.relowner) "
            "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relname = 'cache_entries'",
            PGRES_TUPLES_OK);
        return PQntuples(r.get()) == 1 && detail::scalar(r) == "t";
    }

    static void install_fallback(detail::Conn& c, const std::string& path) {
        const std::string sql = detail::fallback_sql(path);
        detail::ResultPtr r(PQexec(c.get(), sql.c_str()));
        try {
            c.check(r, PGRES_COMMAND_OK);
        } catch (const detail::ConnectionLost&) {
            throw;
        } catch (const Error& e) {
            if (!c.bad() && PQtransactionStatus(c.get()) != PQTRANS_IDLE) PQclear(PQexec(c.get(), "ROLLBACK"));
            throw Error("installing the fastpgcache SQL fallback failed: " + std::string(e.what()), e.sqlstate());
        }
    }

    std::shared_ptr<detail::Pool> pool_;
    std::atomic<Backend> backend_{Backend::Unknown};
};

}  // namespace fastpgcache

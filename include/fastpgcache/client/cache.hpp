// fastpgcache/client/cache.hpp - FastPgCache, the pooled client
// Part of the C++ client; include <fastpgcache/client.hpp>.
#pragma once

#include <fastpgcache/client/operations.hpp>
#include <fastpgcache/client/pool.hpp>
#include <fastpgcache/client/session.hpp>

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <utility>

namespace fastpgcache {

class FastPgCache;

/// The commands of a FastPgCache with one deadline for every call made
/// through it: cache.with_timeout(200ms).get("k").  Cheap to create; must
/// not outlive the FastPgCache.
class Bounded : public Commands<Bounded> {
public:
    Bounded(FastPgCache& cache, Deadline d) : cache_(&cache), deadline_(d) {}
    template <class F>
    auto execute(const char* name, OpKind kind, F&& fn) -> decltype(fn(std::declval<detail::Conn&>(), std::declval<const Deadline&>()));

private:
    FastPgCache* cache_;
    Deadline deadline_;
};

/// A pool of connections and the cache commands (see Commands): thread-safe,
/// movable, closes its connections when destroyed.
class FastPgCache : public Commands<FastPgCache> {
public:
    explicit FastPgCache(Options options) : pool_(std::make_shared<detail::Pool>(std::move(options))) {
        pool_->start();
        if (pool_->options().auto_setup) {
            if (pool_->options().lazy_connect) pool_->setup_pending = true;
            else setup();
        }
    }

    /// From a libpq connection string; other settings from `options`.
    explicit FastPgCache(const std::string& connection_string, Options options = {})
        : FastPgCache(with_connection_string(std::move(options), connection_string)) {}
    explicit FastPgCache(const char* connection_string, Options options = {})
        : FastPgCache(std::string(connection_string), std::move(options)) {}

    ~FastPgCache() { close(); }

    FastPgCache(const FastPgCache&) = delete;
    FastPgCache& operator=(const FastPgCache&) = delete;
    /// A moved-from FastPgCache may only be destroyed or assigned to; its
    /// operations throw Error.
    FastPgCache(FastPgCache&& other) noexcept = default;
    FastPgCache& operator=(FastPgCache&& other) noexcept {
        if (this != &other) {
            close();
            pool_ = std::move(other.pool_);
        }
        return *this;
    }

    /// Installs the cache functions: CREATE EXTENSION IF NOT EXISTS
    /// fastpgcache, or the pure-SQL fallback where the extension is not
    /// available (or cannot be created by this role).  Idempotent.
    Backend setup() {
        detail::Pool& p = pool();
        p.setup_pending = false;
        Backend b = run_with("setup", OpKind::Write, Deadline::after(p.options().operation_timeout),
                             [this](detail::Conn& c, const Deadline& d) { return do_setup(c, d); });
        p.backend.store(b);
        return b;
    }

    /// What setup() found or installed (Unknown before setup()).
    Backend backend() const { return pool_ ? pool_->backend.load() : Backend::Unknown; }

    /// The same commands, each with `timeout` as its deadline (instead of
    /// Options::operation_timeout): cache.with_timeout(50ms).get("k").
    template <class Rep, class Period>
    Bounded with_timeout(std::chrono::duration<Rep, Period> timeout) {
        return Bounded(*this, Deadline::after(timeout));
    }
    /// The same commands, all to finish by `deadline`.
    Bounded with_deadline(std::chrono::steady_clock::time_point deadline) { return Bounded(*this, Deadline::at(deadline)); }

    /// Leases one connection (e.g. for a transaction mixing cache calls and
    /// application SQL).
    Session session() { return Session(pool_ptr()); }

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
            try {
                if (PQstatus(s.raw()) == CONNECTION_OK && PQtransactionStatus(s.raw()) != PQTRANS_IDLE) s.rollback();
            } catch (...) {
            }
            throw;
        }
    }

    /// Closes idle connections now and the others when they are returned.
    void close() {
        if (pool_) pool_->close();
    }

    PoolStats pool_stats() const { return pool_ ? pool_->stats() : PoolStats{}; }

    /// Runs fn(Conn&, const Deadline&) on a pooled connection with the
    /// default deadline (Options::operation_timeout); see run_with().
    template <class F>
    auto execute(const char* name, OpKind kind, F&& fn) -> decltype(fn(std::declval<detail::Conn&>(), std::declval<const Deadline&>())) {
        return run_with(name, kind, Deadline::after(pool().options().operation_timeout), std::forward<F>(fn));
    }

    /// Runs fn on a pooled connection by deadline `d`.  A connection found
    /// broken when handed out is replaced before use.  When one breaks in
    /// use, the operation is retried once, on a new connection, if its
    /// request was never sent or it only reads; a write that was sent is
    /// never re-sent (OutcomeUnknownError).  When the deadline passes, the
    /// statement is cancelled and TimeoutError (or, for a sent write,
    /// OutcomeUnknownError) is thrown.  Every outcome is reported to
    /// Options::on_operation.
    template <class F>
    auto run_with(const char* name, OpKind kind, const Deadline& d, F&& fn) -> decltype(fn(std::declval<detail::Conn&>(), std::declval<const Deadline&>())) {
        detail::Pool& p = pool();
        const auto start = std::chrono::steady_clock::now();
        std::chrono::nanoseconds waited{0};
        int retries = 0;
        try {
            if (p.setup_pending.load() && std::string_view(name) != "setup") lazy_setup();
            bool fresh = false;  // after a broken connection: a newly opened one
            for (int attempt = 0;; ++attempt) {
                const auto t0 = std::chrono::steady_clock::now();
                detail::Lease lease(pool_, d, fresh);
                waited += std::chrono::steady_clock::now() - t0;
                try {
                    auto r = fn(*lease, d);
                    detail::report_operation(p.options(), name, kind, true, {}, start, waited, retries);
                    return r;
                } catch (const detail::ConnectionLost& e) {
                    lease->discard = true;
                    if (attempt == 0 && (!e.sent() || kind == OpKind::Read)) {
                        ++retries;
                        fresh = true;
                        continue;
                    }
                    detail::throw_lost(name, kind, e);
                } catch (const detail::DeadlineExceeded& e) {
                    p.note_timeout();
                    detail::throw_expired(name, kind, e);
                } catch (const Error& e) {
                    // 42883 when preparing: the functions are not where the
                    // pool thought (an extension dropped or created since):
                    // look again and retry; nothing ran.
                    if (e.sqlstate() == "42883" && attempt == 0 && std::string_view(name) != "setup") {
                        p.statements().invalidate();
                        ++retries;
                        continue;
                    }
                    throw;
                }
            }
        } catch (const Error& e) {
            detail::report_operation(p.options(), name, kind, false, e.sqlstate(), start, waited, retries);
            throw;
        } catch (...) {
            detail::report_operation(p.options(), name, kind, false, {}, start, waited, retries);
            throw;
        }
    }

private:
    static Options with_connection_string(Options o, const std::string& cs) {
        o.connection_string = cs;
        return o;
    }

    detail::Pool& pool() const {
        if (!pool_) throw Error("this FastPgCache was moved from");
        return *pool_;
    }
    std::shared_ptr<detail::Pool> pool_ptr() const {
        pool();
        return pool_;
    }

    void lazy_setup() {
        std::lock_guard<std::mutex> lk(pool_->setup_mu);
        if (pool_->setup_pending.load()) setup();
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
    Backend do_setup(detail::Conn& c, const Deadline& d) {
        const auto& o = pool_->options();
        if (o.use_extension) {
            if (auto schema = detail::extension_schema(c, d)) {
                pool_->statements().set_schema(c, *schema);
                return Backend::Extension;
            }
            if (!fallback_installed(c, d)) {
                try {
                    c.exec_sql("CREATE EXTENSION IF NOT EXISTS fastpgcache", PGRES_COMMAND_OK, d);
                    pool_->statements().set_schema(c, detail::extension_schema(c, d).value_or("public"));
                    return Backend::Extension;
                } catch (const detail::ConnectionLost&) {
                    throw;
                } catch (const Error& e) {
                    if (!extension_unavailable(e)) throw;
                }
            }
        }
        install_fallback(c, o.fallback_sql_path, d);
        pool_->statements().set_schema(c, "public");
        return Backend::Fallback;
    }

    // The fallback counts as installed only if public.cache_entries is a
    // plain table carrying the fallback's comment ('fastpgcache fallback
    // 1.0', '... 1.1': any version), owned by the current user or a
    // superuser, and every public.cache_* function of the API (1.0's and
    // 1.1's) has the same owner: a table pre-created by another role (where
    // public is writable) is never trusted because of a COMMENT its owner
    // can set.  setup() then runs the fallback script again, which upgrades
    // an older fallback in place (it keeps the data, and drops the 1.0
    // cache_set overloads that the 1.1 ones would make ambiguous).
    static bool fallback_installed(detail::Conn& c, const Deadline& d) {
        auto r = c.exec_sql(
            "SELECT pg_catalog.obj_description(c.oid, 'pg_class') LIKE 'fastpgcache fallback%' "
            "   AND c.relkind = 'r' "
            "   AND (c.relowner = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user) "
            "        OR (SELECT rolsuper FROM pg_catalog.pg_roles WHERE oid = c.relowner)) "
            "   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_proc p WHERE p.pronamespace = c.relnamespace "
            "                     AND p.proname IN ('cache_set', 'cache_get', 'cache_get_json', 'cache_get_bytes', "
            "                     'cache_delete', 'cache_exists', 'cache_ttl', 'cache_cleanup', 'cache_mget', 'cache_mset', "
            "                     'cache_getset', 'cache_incr', 'cache_decr', 'cache_incrbyfloat', 'cache_append', "
            "                     'cache_strlen', 'cache_expire', 'cache_pexpire', 'cache_expireat', 'cache_persist', "
            "                     'cache_pttl', 'cache_getdel', 'cache_getex', 'cache_type', 'cache_keys', 'cache_scan', "
            "                     'cache_flush', 'cache_dbsize', 'cache_msetnx', "
            "                     '_fastpgcache_set', '_fastpgcache_float', '_fastpgcache_glob_regex') "
            "                     AND p.proowner <> c.relowner) "
            "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relname = 'cache_entries'",
            PGRES_TUPLES_OK, d);
        return PQntuples(r.get()) == 1 && detail::scalar(r) == "t";
    }

    static void install_fallback(detail::Conn& c, const std::string& path, const Deadline& d) {
        const std::string sql = detail::fallback_sql(path);
        try {
            c.exec_sql(sql.c_str(), PGRES_COMMAND_OK, d);
        } catch (const detail::ConnectionLost&) {
            throw;
        } catch (const detail::DeadlineExceeded&) {
            throw;
        } catch (const Error& e) {
            if (!c.bad() && PQtransactionStatus(c.get()) != PQTRANS_IDLE) c.discard = true;  // never reused mid-transaction
            throw Error("installing the fastpgcache SQL fallback failed: " + std::string(e.what()), e.sqlstate());
        }
    }

    std::shared_ptr<detail::Pool> pool_;
};

template <class F>
auto Bounded::execute(const char* name, OpKind kind, F&& fn) -> decltype(fn(std::declval<detail::Conn&>(), std::declval<const Deadline&>())) {
    return cache_->run_with(name, kind, deadline_, std::forward<F>(fn));
}

}  // namespace fastpgcache

// fastpgcache/client/session.hpp - one leased connection (transactions)
// Part of the C++ client; include <fastpgcache/client.hpp>.
#pragma once

#include <fastpgcache/client/operations.hpp>
#include <fastpgcache/client/pool.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <utility>

namespace fastpgcache {

namespace detail {

/// Reports one operation to Options::on_operation; never throws.
inline void report_operation(const Options& o, const char* name, OpKind kind, bool ok, const std::string& sqlstate,
                             std::chrono::steady_clock::time_point start, std::chrono::nanoseconds pool_wait,
                             int retries) noexcept {
    if (!o.on_operation) return;
    try {
        OperationMetrics m;
        m.operation = name;
        m.write = kind == OpKind::Write;
        m.ok = ok;
        m.sqlstate = sqlstate;
        m.latency = std::chrono::steady_clock::now() - start;
        m.pool_wait = pool_wait;
        m.retries = retries;
        o.on_operation(m);
    } catch (...) {
    }
}

/// The public error for a connection that broke during operation `name`.
[[noreturn]] inline void throw_lost(const char* name, OpKind kind, const ConnectionLost& e) {
    if (e.sent() && kind == OpKind::Write)
        throw OutcomeUnknownError(std::string(name) +
                                      ": the connection was lost after the request was sent, so it may or may not have "
                                      "been applied (it is not re-sent): " + e.what(),
                                  false);
    throw ConnectionError(std::string(name) + ": " + e.what(), e.sqlstate());
}

/// The public error for operation `name` that hit its deadline.
[[noreturn]] inline void throw_expired(const char* name, OpKind kind, const DeadlineExceeded& e) {
    if (e.sent() && kind == OpKind::Write)
        throw OutcomeUnknownError(std::string(name) + ": " + e.what() +
                                      "; the request had been sent, so it may or may not have been applied",
                                  true);
    throw TimeoutError(std::string(name) + ": " + e.what());
}

}  // namespace detail

/// Holds one pooled connection until destroyed.  Not thread-safe (one thread
/// at a time), unlike FastPgCache.  Operations are not retried on a lost
/// connection; each has Options::operation_timeout as its deadline (see
/// set_timeout()).  An open transaction is rolled back when the connection
/// goes back to the pool (it is then discarded, never reused
/// mid-transaction).  After native() the connection is closed instead of
/// going back to the pool, since the application may have changed its
/// session state.
class Session : public Commands<Session> {
public:
    explicit Session(std::shared_ptr<detail::Pool> pool)
        : timeout_(pool->options().operation_timeout),
          lease_(std::move(pool), Deadline::after(timeout_)) {}

    /// The deadline of each following operation (0: none).
    void set_timeout(std::chrono::milliseconds t) { timeout_ = t; }

    void begin() { control("begin", "BEGIN", OpKind::Read); }
    /// A lost connection or deadline during COMMIT is an OutcomeUnknownError.
    void commit() { control("commit", "COMMIT", OpKind::Write); }
    void rollback() { control("rollback", "ROLLBACK", OpKind::Read); }

    /// The underlying libpq connection, for application queries in the same
    /// transaction.  Do not close it.  It is in non-blocking mode
    /// (PQsetnonblocking): PQexec and friends still work.  Whatever is done
    /// with it (SET ROLE, SET search_path, PREPARE, ...) cannot leak to other
    /// users of the pool: a connection handed out by native() is closed when
    /// the Session ends.
    PGconn* native() {
        lease_->discard = true;
        return lease_->get();
    }

    template <class F>
    auto execute(const char* name, OpKind kind, F&& fn) -> decltype(fn(std::declval<detail::Conn&>(), std::declval<const Deadline&>())) {
        const auto start = std::chrono::steady_clock::now();
        const Options& o = lease_.pool().options();
        try {
            try {
                auto r = fn(*lease_, Deadline::after(timeout_));
                detail::report_operation(o, name, kind, true, {}, start, {}, 0);
                return r;
            } catch (const detail::ConnectionLost& e) {
                lease_->discard = true;
                detail::throw_lost(name, kind, e);
            } catch (const detail::DeadlineExceeded& e) {
                lease_.pool().note_timeout();
                detail::throw_expired(name, kind, e);
            }
        } catch (const Error& e) {
            detail::report_operation(o, name, kind, false, e.sqlstate(), start, {}, 0);
            throw;
        } catch (...) {
            detail::report_operation(o, name, kind, false, {}, start, {}, 0);
            throw;
        }
    }

private:
    friend class FastPgCache;
    void control(const char* name, const char* sql, OpKind kind) {
        execute(name, kind, [&](detail::Conn& c, const Deadline& d) {
            c.exec_sql(sql, PGRES_COMMAND_OK, d);
            return true;
        });
    }
    PGconn* raw() { return lease_->get(); }
    std::chrono::milliseconds timeout_;
    detail::Lease lease_;
};

}  // namespace fastpgcache

// fastpgcache/client/pool.hpp - the connection pool
// Part of the C++ client; include <fastpgcache/client.hpp>.
#pragma once

#include <fastpgcache/client/connection.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <poll.h>

namespace fastpgcache {

namespace detail {

/// A delay between d/2 and d, so that many clients do not retry in step.
inline std::chrono::milliseconds jittered(std::chrono::milliseconds d) {
    thread_local std::mt19937 rng(std::random_device{}());
    if (d.count() < 2) return d;
    std::uniform_int_distribution<long long> dist(d.count() / 2, d.count());
    return std::chrono::milliseconds(dist(rng));
}

class Pool {
public:
    using Clock = std::chrono::steady_clock;

    explicit Pool(Options opts) : opts_(std::move(opts)), source_(std::make_shared<StatementSource>(opts_.schema_check_interval)) {
        if (opts_.maxconn == 0) throw ConfigError("maxconn must be at least 1");
        if (opts_.minconn > opts_.maxconn) opts_.minconn = opts_.maxconn;
        token_auth_ = static_cast<bool>(opts_.token_provider);
        if (!opts_.token_provider && !opts_.password.empty())
            opts_.token_provider = std::make_shared<StaticTokenProvider>(opts_.password);
        params_ = connection_params(opts_, token_auth_);
    }

    ~Pool() { close(); }

    Pool(const Pool&) = delete;
    Pool& operator=(const Pool&) = delete;

    const Options& options() const { return opts_; }

    /// Opens minconn connections now (unless lazy_connect) and starts the
    /// thread that keeps minconn open.
    void start() {
        if (!opts_.lazy_connect) {
            warm_up();
            refill_enabled_ = true;
        }
        if (opts_.minconn > 0) maintainer_ = std::thread([this] { maintain(); });
    }

    /// A connection: an idle one (checked: alive, not past
    /// max_connection_lifetime), or a new one.  `fresh`: always a new one
    /// (a retry after a connection broke: the other idle connections may
    /// be just as dead).  Waits at most pool_timeout for a free slot, and
    /// never past `d`.  `waited` accumulates the time spent here.
    std::unique_ptr<Conn> acquire(const Deadline& d, bool fresh) {
        const Deadline pool_deadline =
            opts_.pool_timeout.count() > 0 ? d.min(Deadline::after(opts_.pool_timeout)) : d;
        std::unique_lock<std::mutex> lk(mu_);
        for (;;) {
            if (closed_) throw Error("the connection pool is closed");
            if (!fresh && !idle_.empty()) {
                auto c = std::move(idle_.back());
                idle_.pop_back();
                ++in_use_;
                lk.unlock();
                const bool expired = opts_.max_connection_lifetime.count() > 0 &&
                                     Clock::now() - c->created >= opts_.max_connection_lifetime;
                if (!expired && alive(*c)) return c;
                lk.lock();
                --in_use_;
                drop_locked(std::move(c), lk);
                continue;
            }
            if (fresh && !idle_.empty() && total_ >= opts_.maxconn) {
                auto c = std::move(idle_.front());  // the oldest makes room
                idle_.pop_front();
                drop_locked(std::move(c), lk);
                continue;
            }
            if (total_ < opts_.maxconn) {
                ++total_;
                ++in_use_;
                lk.unlock();
                try {
                    auto c = open(d, nullptr);
                    refill_enabled_ = true;
                    maint_cv_.notify_all();
                    return c;
                } catch (...) {
                    lk.lock();
                    --total_;
                    --in_use_;
                    cv_.notify_one();
                    throw;
                }
            }
            if (cv_.wait_until(lk, pool_deadline.time()) == std::cv_status::timeout && Clock::now() >= pool_deadline.time()) {
                if (!idle_.empty() || total_ < opts_.maxconn || closed_) continue;
                ++timeouts_;
                if (d.expired())
                    throw TimeoutError("the operation's deadline passed while waiting for a pooled connection (maxconn=" +
                                       std::to_string(opts_.maxconn) + ")");
                throw PoolTimeoutError("no connection became available within " + std::to_string(opts_.pool_timeout.count()) +
                                       " ms (maxconn=" + std::to_string(opts_.maxconn) + ")");
            }
        }
    }

    void release(std::unique_ptr<Conn> c) {
        bool keep = c && !c->discard && !c->bad() && PQtransactionStatus(c->get()) == PQTRANS_IDLE;
        if (keep && opts_.max_connection_lifetime.count() > 0 && Clock::now() - c->created >= opts_.max_connection_lifetime)
            keep = false;
        std::unique_lock<std::mutex> lk(mu_);
        --in_use_;
        if (keep && !closed_) {
            idle_.push_back(std::move(c));
            lk.unlock();
            cv_.notify_one();
            return;
        }
        drop_locked(std::move(c), lk);
        lk.unlock();
        cv_.notify_one();
    }

    /// Closes idle connections now and the others when they are returned;
    /// stops the refill thread (an attempt in progress is abandoned).
    void close() {
        std::deque<std::unique_ptr<Conn>> doomed;
        {
            std::lock_guard<std::mutex> lk(mu_);
            closed_ = true;
            closing_ = true;
            doomed.swap(idle_);
            total_ -= doomed.size();
        }
        cv_.notify_all();
        maint_cv_.notify_all();
        if (maintainer_.joinable() && maintainer_.get_id() != std::this_thread::get_id()) maintainer_.join();
    }

    PoolStats stats() const {
        std::lock_guard<std::mutex> lk(mu_);
        PoolStats s;
        s.open = total_;
        s.idle = idle_.size();
        s.in_use = in_use_;
        s.opened = opened_;
        s.discarded = discarded_;
        s.auth_retries = auth_retries_;
        s.timeouts = timeouts_;
        return s;
    }

    void note_timeout() {
        std::lock_guard<std::mutex> lk(mu_);
        ++timeouts_;
    }

    bool closed() const {
        std::lock_guard<std::mutex> lk(mu_);
        return closed_;
    }

    StatementSource& statements() { return *source_; }

    std::atomic<Backend> backend{Backend::Unknown};
    /// lazy_connect + auto_setup: setup() runs before the first operation.
    std::atomic<bool> setup_pending{false};
    std::mutex setup_mu;

private:
    void warm_up() {
        for (;;) {
            {
                std::lock_guard<std::mutex> lk(mu_);
                if (closed_ || total_ >= opts_.minconn) break;
                ++total_;
            }
            try {
                auto c = open(Deadline::none(), nullptr);  // bounded by connect_timeout
                std::lock_guard<std::mutex> lk(mu_);
                idle_.push_back(std::move(c));
            } catch (...) {
                std::lock_guard<std::mutex> lk(mu_);
                --total_;
                cv_.notify_one();
                throw;
            }
        }
        cv_.notify_all();
    }

    // Called with lk held: forgets c and closes it outside the lock.
    void drop_locked(std::unique_ptr<Conn> c, std::unique_lock<std::mutex>& lk) {
        --total_;
        ++discarded_;
        lk.unlock();
        c.reset();  // PQfinish
        maint_cv_.notify_all();
        lk.lock();
    }

    // Keeps minconn connections open: after a server restart or a network
    // failure the broken ones are discarded as they are found, and this
    // thread opens new ones, backing off (0.5 s doubling to 30 s, jittered)
    // while that fails.
    void maintain() noexcept {
        std::chrono::milliseconds backoff{0};
        Clock::time_point next_try{};
        std::unique_lock<std::mutex> lk(mu_);
        while (!closed_) {
            const bool need = refill_enabled_ && total_ < opts_.minconn;
            if (!need || Clock::now() < next_try) {
                if (need) maint_cv_.wait_until(lk, next_try);
                else maint_cv_.wait_for(lk, std::chrono::seconds(5));
                continue;
            }
            ++total_;
            lk.unlock();
            std::unique_ptr<Conn> c;
            try {
                c = open(Deadline::after(std::max<std::chrono::milliseconds>(opts_.connect_timeout, std::chrono::milliseconds(100))),
                         &closing_);
            } catch (...) {
            }
            lk.lock();
            if (c && !closed_) {
                idle_.push_back(std::move(c));
                backoff = std::chrono::milliseconds(0);
                cv_.notify_one();
                continue;
            }
            --total_;
            if (c) {  // closed meanwhile
                lk.unlock();
                c.reset();
                lk.lock();
                break;
            }
            backoff = std::min<std::chrono::milliseconds>(std::max<std::chrono::milliseconds>(backoff * 2, std::chrono::milliseconds(500)),
                                                          std::chrono::seconds(30));
            next_try = Clock::now() + jittered(backoff);
        }
    }

    // An idle connection whose server went away has a readable socket (the
    // FATAL message and/or EOF); PQconsumeInput then marks it bad.
    static bool alive(Conn& c) {
        if (c.bad()) return false;
        int fd = PQsocket(c.get());
        if (fd < 0) return false;
        for (int i = 0; i < 4; ++i) {
            pollfd p{fd, POLLIN, 0};
            if (::poll(&p, 1, 0) <= 0) break;
            if (!PQconsumeInput(c.get())) return false;
            (void)PQisBusy(c.get());  // parses what arrived (e.g. a FATAL before EOF)
            while (PGnotify* n = PQnotifies(c.get())) PQfreemem(n);
            if (c.bad()) return false;
        }
        return !c.bad() && PQtransactionStatus(c.get()) == PQTRANS_IDLE;
    }

    std::string get_token(const Deadline& d) {
        try {
            return opts_.token_provider->get_token(d.time());
        } catch (const Error&) {
            throw;
        } catch (const std::exception& e) {
            throw TokenError(std::string("the token provider failed: ") + e.what());
        }
    }

    // Opens one connection by `d` (and connect_timeout).  With a token
    // provider: when the server refuses the token (a class-28 SQLSTATE after
    // a password was sent: decided without reading the server's possibly
    // translated message), the provider is told, and one retry is made with
    // a fresh token.  If that is refused too, or no fresh token is
    // available, new connections fail at once with the same
    // AuthenticationError for a bounded, jittered, growing time (1 s to
    // 30 s), so a role without access does not make every operation call
    // the workspace and the server.
    std::unique_ptr<Conn> open(const Deadline& d, const std::atomic<bool>* abort) {
        {
            std::lock_guard<std::mutex> lk(mu_);
            const auto now = Clock::now();
            if (now < auth_blocked_until_) {
                const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(auth_blocked_until_ - now).count();
                throw AuthenticationError(auth_error_ + " (no new attempt for another " + std::to_string(left) +
                                              " ms after repeated authentication failures)",
                                          auth_sqlstate_);
            }
        }
        std::string password, rejected;
        const bool have_password = static_cast<bool>(opts_.token_provider);
        for (int attempt = 0;; ++attempt) {
            if (have_password) {
                password = get_token(d);
                if (attempt > 0 && password == rejected) {
                    fail_auth("could not connect to PostgreSQL: the server refused the credential and the token provider has no other",
                              "28P01");
                }
            }
            const Deadline cd = opts_.connect_timeout.count() > 0 ? d.min(Deadline::after(opts_.connect_timeout)) : d;
            ConnectAttempt a = open_connection(params_, have_password ? &password : nullptr, !opts_.connection_string.empty(), cd, abort);
            if (a.pg) {
                auto c = std::make_unique<Conn>();
                c->pg = std::move(a.pg);
                c->source = source_;
                std::lock_guard<std::mutex> lk(mu_);
                ++opened_;
                auth_backoff_ = std::chrono::milliseconds(0);
                return c;
            }
            if (a.aborted) throw Error("the connection pool is closing");
            if (a.timed_out) {
                if (d.expired()) throw TimeoutError("could not connect to PostgreSQL before the operation's deadline: " + a.message);
                throw ConnectionError("could not connect to PostgreSQL within connect_timeout (" +
                                      std::to_string(opts_.connect_timeout.count()) + " s): " + a.message);
            }
            const bool auth_class = a.sqlstate.size() == 5 && a.sqlstate.compare(0, 2, "28") == 0;
            const std::string msg = "could not connect to PostgreSQL: " + a.message;
            if (auth_class && a.used_password && have_password) {
                if (attempt == 0) {
                    opts_.token_provider->invalidate_token(password);
                    rejected = password;
                    std::lock_guard<std::mutex> lk(mu_);
                    ++auth_retries_;
                    continue;
                }
                fail_auth(msg, a.sqlstate);
            }
            if (auth_class) throw AuthenticationError(msg, a.sqlstate);
            throw ConnectionError(msg, a.sqlstate.empty() ? "08001" : a.sqlstate);
        }
    }

    [[noreturn]] void fail_auth(const std::string& msg, const std::string& sqlstate) {
        std::lock_guard<std::mutex> lk(mu_);
        auth_backoff_ = std::min<std::chrono::milliseconds>(
            std::max<std::chrono::milliseconds>(auth_backoff_ * 2, std::chrono::seconds(1)), std::chrono::seconds(30));
        auth_blocked_until_ = Clock::now() + jittered(auth_backoff_);
        auth_error_ = msg;
        auth_sqlstate_ = sqlstate;
        throw AuthenticationError(msg, sqlstate);
    }

    Options opts_;
    bool token_auth_ = false;
    std::vector<std::pair<std::string, std::string>> params_;
    std::shared_ptr<StatementSource> source_;
    mutable std::mutex mu_;
    std::condition_variable cv_;        // a connection was returned or a slot freed
    std::condition_variable maint_cv_;  // the refill thread: below minconn, or closing
    std::deque<std::unique_ptr<Conn>> idle_;  // oldest first
    std::size_t total_ = 0;
    std::size_t in_use_ = 0;
    bool closed_ = false;
    std::atomic<bool> closing_{false};
    std::atomic<bool> refill_enabled_{false};
    std::thread maintainer_;
    std::uint64_t opened_ = 0, discarded_ = 0, auth_retries_ = 0, timeouts_ = 0;
    Clock::time_point auth_blocked_until_{};
    std::chrono::milliseconds auth_backoff_{0};
    std::string auth_error_, auth_sqlstate_;
};

/// A leased connection, returned to the pool on destruction.
class Lease {
public:
    Lease(std::shared_ptr<Pool> pool, const Deadline& d, bool fresh = false)
        : pool_(std::move(pool)), conn_(pool_->acquire(d, fresh)) {}
    ~Lease() {
        if (conn_) pool_->release(std::move(conn_));
    }
    Lease(Lease&&) = default;
    Lease& operator=(Lease&&) = delete;
    Lease(const Lease&) = delete;
    Conn& operator*() { return *conn_; }
    Conn* operator->() { return conn_.get(); }
    Pool& pool() { return *pool_; }

private:
    std::shared_ptr<Pool> pool_;
    std::unique_ptr<Conn> conn_;
};

}  // namespace detail

}  // namespace fastpgcache

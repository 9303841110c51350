// fastpgcache/client/pool.hpp - the connection pool
// Part of the C++ client; include <fastpgcache/client.hpp>.
#pragma once

#include <fastpgcache/client/connection.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <vector>

#include <poll.h>

namespace fastpgcache {

namespace detail {

// -- the pool -----------------------------------------------------------------

class Pool : public std::enable_shared_from_this<Pool> {
public:
    explicit Pool(Options opts) : opts_(std::move(opts)) {
        if (opts_.maxconn == 0) throw ConfigError("maxconn must be at least 1");
        if (opts_.minconn > opts_.maxconn) opts_.minconn = opts_.maxconn;
        if (!opts_.token_provider && !opts_.password.empty())
            opts_.token_provider = std::make_shared<StaticTokenProvider>(opts_.password);
        build_params();
    }

    ~Pool() { close(); }

    const Options& options() const { return opts_; }

    void warm_up() {
        for (;;) {
            {
                std::lock_guard<std::mutex> lk(mu_);
                if (closed_ || total_ >= opts_.minconn) break;
                ++total_;
            }
            try {
                auto c = open();
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

    std::unique_ptr<Conn> acquire() {
        const auto deadline = std::chrono::steady_clock::now() + opts_.pool_timeout;
        std::unique_lock<std::mutex> lk(mu_);
        for (;;) {
            if (closed_) throw Error("the connection pool is closed");
            if (!idle_.empty()) {
                auto c = std::move(idle_.back());
                idle_.pop_back();
                ++in_use_;
                lk.unlock();
                if (alive(*c)) return c;
                lk.lock();
                --in_use_;
                --total_;
                ++discarded_;
                c.reset();  // PQfinish; cheap for a dead socket
                continue;
            }
            if (total_ < opts_.maxconn) {
                ++total_;
                ++in_use_;
                lk.unlock();
                try {
                    return open();
                } catch (...) {
                    lk.lock();
                    --total_;
                    --in_use_;
                    cv_.notify_one();
                    throw;
                }
            }
            if (cv_.wait_until(lk, deadline) == std::cv_status::timeout && idle_.empty() && total_ >= opts_.maxconn && !closed_) {
                throw PoolTimeoutError("no connection became available within " +
                                       std::to_string(opts_.pool_timeout.count()) + " ms (maxconn=" +
                                       std::to_string(opts_.maxconn) + ")");
            }
        }
    }

    void release(std::unique_ptr<Conn> c) {
        bool keep = c && !c->discard && !c->bad() && PQtransactionStatus(c->get()) == PQTRANS_IDLE;
        if (keep && opts_.max_connection_lifetime.count() > 0 &&
            std::chrono::steady_clock::now() - c->created >= opts_.max_connection_lifetime)
            keep = false;
        std::unique_ptr<Conn> doomed;
        {
            std::lock_guard<std::mutex> lk(mu_);
            --in_use_;
            if (keep && !closed_) {
                idle_.push_back(std::move(c));
            } else {
                doomed = std::move(c);
                --total_;
                ++discarded_;
            }
        }
        cv_.notify_one();
        // doomed closes here, outside the lock.
    }

    void close() {
        std::vector<std::unique_ptr<Conn>> doomed;
        {
            std::lock_guard<std::mutex> lk(mu_);
            closed_ = true;
            doomed.swap(idle_);
            total_ -= doomed.size();
        }
        cv_.notify_all();
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
        return s;
    }

    bool closed() const {
        std::lock_guard<std::mutex> lk(mu_);
        return closed_;
    }

    StatementSource& statements() { return *source_; }

    std::atomic<bool> mget_supported{true};
    std::atomic<bool> mset_supported{true};

private:
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

    void build_params() { params_ = connection_params(opts_); }

    struct Attempt {
        ConnPtr pg;
        bool auth_failure = false;
        std::string message;
    };

    Attempt try_open(const std::string* password) const {
        std::vector<const char*> keys, vals;
        for (const auto& p : params_) {
            keys.push_back(p.first.c_str());
            vals.push_back(p.second.c_str());
        }
        if (password) {
            keys.push_back("password");
            vals.push_back(password->c_str());
        }
        keys.push_back(nullptr);
        vals.push_back(nullptr);
        Attempt a;
        a.pg.reset(PQconnectdbParams(keys.data(), vals.data(), opts_.connection_string.empty() ? 0 : 1));
        if (!a.pg) {
            a.message = "out of memory opening a connection";
            return a;
        }
        if (PQstatus(a.pg.get()) != CONNECTION_OK) {
            a.message = clean_message(PQerrorMessage(a.pg.get()));
            if (password) a.message = redact(a.message, *password);
            a.auth_failure = contains_ci(a.message, "authentication failed") || contains_ci(a.message, "28P01") ||
                             contains_ci(a.message, "password authentication") ||
                             (PQconnectionUsedPassword(a.pg.get()) && contains_ci(a.message, "password"));
            a.pg.reset();
        }
        return a;
    }

    std::unique_ptr<Conn> open() {
        std::string password;
        bool have_password = false;
        for (int attempt = 0;; ++attempt) {
            if (opts_.token_provider) {
                try {
                    password = opts_.token_provider->get_token();  // throws TokenError when none can be had
                } catch (const Error&) {
                    throw;
                } catch (const std::exception& e) {
                    throw TokenError(std::string("the token provider failed: ") + e.what());
                }
                have_password = true;
            }
            Attempt a = try_open(have_password ? &password : nullptr);
            if (a.pg) {
                PQsetNoticeProcessor(a.pg.get(), &ignore_notice, nullptr);
                auto c = std::make_unique<Conn>();
                c->pg = std::move(a.pg);
                c->source = source_;
                std::lock_guard<std::mutex> lk(mu_);
                ++opened_;
                return c;
            }
            if (a.auth_failure && opts_.token_provider && attempt == 0) {
                opts_.token_provider->invalidate_token(password);
                std::lock_guard<std::mutex> lk(mu_);
                ++auth_retries_;
                continue;
            }
            std::string msg = "could not connect to PostgreSQL: " + a.message;
            if (a.auth_failure) throw AuthenticationError(msg, contains_ci(a.message, "password") ? "28P01" : "28000");
            throw ConnectionError(msg);
        }
    }

    Options opts_;
    std::vector<std::pair<std::string, std::string>> params_;
    std::shared_ptr<StatementSource> source_ = std::make_shared<StatementSource>();
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::vector<std::unique_ptr<Conn>> idle_;
    std::size_t total_ = 0;
    std::size_t in_use_ = 0;
    bool closed_ = false;
    std::uint64_t opened_ = 0, discarded_ = 0, auth_retries_ = 0;
};

/// A leased connection, returned to the pool on destruction.
class Lease {
public:
    explicit Lease(std::shared_ptr<Pool> pool) : pool_(std::move(pool)), conn_(pool_->acquire()) {}
    ~Lease() {
        if (conn_) pool_->release(std::move(conn_));
    }
    Lease(Lease&&) = default;
    Lease& operator=(Lease&&) = delete;
    Lease(const Lease&) = delete;
    Conn& operator*() { return *conn_; }
    Conn* operator->() { return conn_.get(); }

private:
    std::shared_ptr<Pool> pool_;
    std::unique_ptr<Conn> conn_;
};

}  // namespace detail

}  // namespace fastpgcache

// fastpgcache/client/session.hpp - one leased connection (transactions)
// Part of the C++ client; include <fastpgcache/client.hpp>.
#pragma once

#include <fastpgcache/client/operations.hpp>
#include <fastpgcache/client/pool.hpp>

namespace fastpgcache {

// ---------------------------------------------------------------------------
// Session: one connection held for several operations (e.g. a transaction)
// ---------------------------------------------------------------------------

/// Holds one pooled connection until destroyed.  Not thread-safe (one thread
/// at a time), unlike FastPgCache.  Operations are not retried on a lost
/// connection.  An open transaction is rolled back when the connection goes
/// back to the pool (it is then discarded, never reused mid-transaction).
/// After native() the connection is closed instead of going back to the
/// pool, since the application may have changed its session state.
class Session {
public:
    explicit Session(std::shared_ptr<detail::Pool> pool) : lease_(std::move(pool)) {}

    bool set(std::string_view key, const std::string& value, Ttl ttl = {}) {
        return detail::op_set(*lease_, detail::kSetText, key, value, ttl, false);
    }
    bool set(std::string_view key, const char* value, Ttl ttl = {}) {
        return detail::op_set(*lease_, detail::kSetText, key, value, ttl, false);
    }
    bool set(std::string_view key, std::string_view value, Ttl ttl = {}) {
        return detail::op_set(*lease_, detail::kSetText, key, value, ttl, false);
    }
    bool set(std::string_view key, const nlohmann::json& value, Ttl ttl = {}) {
        return detail::op_set(*lease_, detail::kSetJson, key, value.dump(), ttl, false);
    }
    bool set_bytes(std::string_view key, std::string_view bytes, Ttl ttl = {}) {
        return detail::op_set(*lease_, detail::kSetBytes, key, bytes, ttl, true);
    }
    std::optional<std::string> get(std::string_view key) { return detail::op_get(*lease_, detail::kGet, key, 0); }
    std::optional<nlohmann::json> get_json(std::string_view key) { return detail::op_get_json(*lease_, key); }
    std::optional<std::string> get_bytes(std::string_view key) { return detail::op_get(*lease_, detail::kGetBytes, key, 1); }
    bool del(std::string_view key) { return detail::op_bool(*lease_, detail::kDelete, key); }
    bool exists(std::string_view key) { return detail::op_bool(*lease_, detail::kExists, key); }
    long long ttl(std::string_view key) { return detail::op_int(*lease_, detail::kTtl, key); }
    int cleanup() { return detail::op_cleanup(*lease_); }

    void begin() { lease_->exec_sql("BEGIN", PGRES_COMMAND_OK); }
    void commit() { lease_->exec_sql("COMMIT", PGRES_COMMAND_OK); }
    void rollback() { lease_->exec_sql("ROLLBACK", PGRES_COMMAND_OK); }

    /// The underlying libpq connection, for application queries in the same
    /// transaction.  Do not close it.  Whatever is done with it (SET ROLE,
    /// SET search_path, PREPARE, ...) cannot leak to other users of the pool:
    /// a connection handed out by native() is closed when the Session ends.
    PGconn* native() {
        lease_->discard = true;
        return lease_->get();
    }

private:
    friend class FastPgCache;
    PGconn* raw() { return lease_->get(); }
    detail::Lease lease_;
};

}  // namespace fastpgcache

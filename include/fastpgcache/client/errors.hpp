// fastpgcache/client/errors.hpp - exception types
// Part of the C++ client; include <fastpgcache/client.hpp>.
//
//   Error                          every error of the library; sqlstate()
//   +- ConnectionError             08001/08006: no connection, or it was lost
//   |  +- AuthenticationError      28P01/28000: the server refused the credential
//   |  +- TokenError               no credential could be obtained
//   |  +- OutcomeUnknownError      08007: a write was sent, and then the connection
//   |                              broke or its deadline passed: it may have run
//   +- TimeoutError                57014: a deadline passed (nothing was changed)
//   |  +- PoolTimeoutError         no pooled connection became free in time
//   +- ConfigError                 bad configuration
#pragma once

#include <stdexcept>
#include <string>
#include <utility>

namespace fastpgcache {

/// Base class of every error thrown by this library.  sqlstate() is the
/// five-character SQLSTATE reported by the server ("22023", ...), an inferred
/// class-08/28/57 code for connection problems and deadlines, or empty when
/// none applies.
class Error : public std::runtime_error {
public:
    explicit Error(const std::string& message, std::string sqlstate = {})
        : std::runtime_error(message), sqlstate_(std::move(sqlstate)) {}
    const std::string& sqlstate() const noexcept { return sqlstate_; }

private:
    std::string sqlstate_;
};

/// A connection could not be opened, or an open one was lost (SQLSTATE 08xxx).
class ConnectionError : public Error {
public:
    explicit ConnectionError(const std::string& message, std::string sqlstate = "08001")
        : Error(message, std::move(sqlstate)) {}
};

/// The server refused the password/token (28P01 or 28000), also after the
/// retry with a fresh token.
class AuthenticationError : public ConnectionError {
public:
    explicit AuthenticationError(const std::string& message, std::string sqlstate = "28P01")
        : ConnectionError(message, std::move(sqlstate)) {}
};

/// A new connection was needed but no credential could be obtained
/// (e.g. the Databricks workspace did not answer).
class TokenError : public ConnectionError {
public:
    explicit TokenError(const std::string& message) : ConnectionError(message, "08001") {}
};

/// A write (set, set_bytes, getset, mset, msetnx, incr/incrby/decr/decrby,
/// incrbyfloat, append, expire/pexpire/expireat/persist, getdel, getex with
/// a ttl or persist, del, flushdb, cleanup, setup, commit) was sent to the
/// server, and then the connection broke or the operation's deadline passed
/// before the answer arrived: it may or may not have been applied.
/// It is never re-sent behind the caller's back (SQLSTATE 08007,
/// transaction_resolution_unknown; libpqxx calls this in_doubt_error).
class OutcomeUnknownError : public ConnectionError {
public:
    OutcomeUnknownError(const std::string& message, bool timed_out)
        : ConnectionError(message, "08007"), timed_out_(timed_out) {}
    /// true: the deadline passed; false: the connection broke.
    bool timed_out() const noexcept { return timed_out_; }

private:
    bool timed_out_;
};

/// A deadline passed (Options::operation_timeout, a per-call deadline, or
/// connect_timeout) before the operation completed, and nothing it could
/// have changed was sent (a read, or a write still waiting for a
/// connection).  SQLSTATE 57014 (query_canceled).
class TimeoutError : public Error {
public:
    explicit TimeoutError(const std::string& message) : Error(message, "57014") {}
};

/// No pooled connection became free within Options::pool_timeout.
class PoolTimeoutError : public TimeoutError {
public:
    explicit PoolTimeoutError(const std::string& message) : TimeoutError(message) {}
};

/// Bad configuration (missing Databricks host, unknown profile, a token
/// provider with sslmode=disable, ...).
class ConfigError : public Error {
public:
    explicit ConfigError(const std::string& message) : Error(message) {}
};

}  // namespace fastpgcache

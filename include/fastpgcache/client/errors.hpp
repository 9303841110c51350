// fastpgcache/client/errors.hpp - exception types
// Part of the C++ client; include <fastpgcache/client.hpp>.
#pragma once

#include <stdexcept>
#include <string>
#include <utility>

namespace fastpgcache {

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// Base class of every error thrown by this library.  sqlstate() is the
/// five-character SQLSTATE reported by the server ("22023", ...), an inferred
/// class-08/28 code for connection problems, or empty when none applies.
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

/// The server refused the password/token (28P01 or 28000), also after the retry.
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

/// No pooled connection became free within Options::pool_timeout.
class PoolTimeoutError : public Error {
public:
    explicit PoolTimeoutError(const std::string& message) : Error(message) {}
};

/// Bad configuration (missing Databricks host, unknown profile, ...).
class ConfigError : public Error {
public:
    explicit ConfigError(const std::string& message) : Error(message) {}
};

}  // namespace fastpgcache

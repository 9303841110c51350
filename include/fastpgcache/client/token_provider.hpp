// fastpgcache/client/token_provider.hpp - where passwords for new connections come from
// Part of the C++ client; include <fastpgcache/client.hpp>.
#pragma once

#include <fastpgcache/client/errors.hpp>

#include <chrono>
#include <functional>
#include <string>
#include <utility>

namespace fastpgcache {

/// Source of the password used for each new connection.  Must be
/// thread-safe.  When a pool uses a TokenProvider set in Options (not a
/// plain Options::password), the connection must use TLS (see
/// Options::sslmode).
class TokenProvider {
public:
    using Clock = std::chrono::steady_clock;

    virtual ~TokenProvider() = default;
    /// Returns the password for a new connection.  Throws TokenError (or any
    /// ConnectionError) when none can be obtained.
    virtual std::string get_token() = 0;
    /// The same, but returns or throws by `deadline`: the pool calls this
    /// one, with the deadline of the operation that needs the connection.
    /// The default ignores the deadline; providers that may block (HTTP, a
    /// subprocess) override it.
    virtual std::string get_token(Clock::time_point deadline) {
        (void)deadline;
        return get_token();
    }
    /// Called when the server refused `rejected` for authentication; the next
    /// get_token() must not return it again.
    virtual void invalidate_token(const std::string& rejected) { (void)rejected; }
};

/// A fixed password (what Options::password does implicitly).
class StaticTokenProvider : public TokenProvider {
public:
    explicit StaticTokenProvider(std::string token) : token_(std::move(token)) {}
    using TokenProvider::get_token;
    std::string get_token() override { return token_; }

private:
    std::string token_;
};

/// Adapts any callable returning a password.
class FunctionTokenProvider : public TokenProvider {
public:
    explicit FunctionTokenProvider(std::function<std::string()> fn) : fn_(std::move(fn)) {}
    using TokenProvider::get_token;
    std::string get_token() override { return fn_(); }

private:
    std::function<std::string()> fn_;
};

}  // namespace fastpgcache

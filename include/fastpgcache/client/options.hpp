// fastpgcache/client/options.hpp - Options, Ttl, Backend, PoolStats
// Part of the C++ client; include <fastpgcache/client.hpp>.
#pragma once

#include <fastpgcache/client/token_provider.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

namespace fastpgcache {

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

/// Which implementation setup() found or installed.
enum class Backend { Unknown, Extension, Fallback };

inline const char* to_string(Backend b) {
    switch (b) {
        case Backend::Extension: return "extension";
        case Backend::Fallback: return "fallback";
        default: return "unknown";
    }
}

struct Options {
    /// libpq connection string ("postgresql://..." or "host=... dbname=...").
    /// When set, host/port/database/user below are ignored.
    std::string connection_string;
    std::string host = "localhost";
    int port = 5432;
    std::string database = "postgres";
    std::string user = "postgres";
    std::string password;  ///< ignored when token_provider is set
    std::shared_ptr<TokenProvider> token_provider;
    std::size_t minconn = 1;
    std::size_t maxconn = 10;
    bool auto_setup = false;
    /// Empty: for Databricks hosts (*.databricks.com, *.azuredatabricks.net)
    /// "verify-full" with sslrootcert = the system CA bundle, unless the
    /// connection string or PGSSLMODE sets sslmode; otherwise libpq's default
    /// (prefer).
    std::string sslmode;
    /// CA certificates to verify the server with (libpq sslrootcert).  Empty:
    /// the system bundle when the Databricks default above applies.
    std::string sslrootcert;
    std::chrono::seconds connect_timeout{10};
    std::chrono::milliseconds statement_timeout{0};  ///< 0: server default
    std::chrono::milliseconds pool_timeout{30000};   ///< wait for a free connection
    /// Close connections older than this when they come back (0: never).
    std::chrono::milliseconds max_connection_lifetime{0};
    std::string application_name = "fastpgcache-cpp";
    /// false: setup() installs the pure-SQL fallback without trying the extension.
    bool use_extension = true;
    /// Where setup() reads the fallback SQL when it is not compiled in.
    std::string fallback_sql_path;
};

/// Time to live: an integer number of seconds, any std::chrono duration
/// (rounded up to whole seconds), or nothing (= no expiry).
class Ttl {
public:
    Ttl() = default;
    Ttl(std::nullopt_t) {}
    Ttl(int seconds) : seconds_(seconds) {}
    Ttl(long seconds) : seconds_(checked(seconds)) {}
    Ttl(long long seconds) : seconds_(checked(seconds)) {}
    template <class Rep, class Period>
    Ttl(std::chrono::duration<Rep, Period> d)
        : seconds_(checked(std::chrono::ceil<std::chrono::seconds>(d).count())) {}
    template <class Rep, class Period>
    Ttl(std::optional<std::chrono::duration<Rep, Period>> d) {
        if (d) seconds_ = checked(std::chrono::ceil<std::chrono::seconds>(*d).count());
    }
    bool has_value() const { return seconds_.has_value(); }
    int seconds() const { return *seconds_; }

private:
    template <class T>
    static int checked(T v) {
        if (v > std::numeric_limits<int>::max() || v < std::numeric_limits<int>::min())
            throw std::out_of_range("ttl does not fit in a 32-bit number of seconds");
        return static_cast<int>(v);
    }
    std::optional<int> seconds_;
};

struct PoolStats {
    std::size_t open = 0;    ///< connections open (idle + in use + being opened)
    std::size_t idle = 0;
    std::size_t in_use = 0;
    std::uint64_t opened = 0;     ///< connections opened since start
    std::uint64_t discarded = 0;  ///< broken/expired connections closed
    std::uint64_t auth_retries = 0;
};

}  // namespace fastpgcache

// fastpgcache/client/options.hpp - Options, Ttl, Backend, PoolStats, metrics, deadlines
// Part of the C++ client; include <fastpgcache/client.hpp>.
#pragma once

#include <fastpgcache/client/errors.hpp>
#include <fastpgcache/client/token_provider.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace fastpgcache {

/// Which implementation setup() found or installed.
enum class Backend { Unknown, Extension, Fallback };

inline const char* to_string(Backend b) {
    switch (b) {
        case Backend::Extension: return "extension";
        case Backend::Fallback: return "fallback";
        default: return "unknown";
    }
}

/// What an operation did, reported to Options::on_operation after every
/// operation (success or failure), on the calling thread, with no lock held.
struct OperationMetrics {
    std::string_view operation;               ///< "get", "set", "mget", "ping", "setup", ...
    bool write = false;                       ///< the operation changes data
    bool ok = true;                           ///< false: it threw
    std::string_view sqlstate;                ///< of the error thrown (empty if ok)
    std::chrono::nanoseconds latency{0};      ///< whole call, pool wait and retries included
    std::chrono::nanoseconds pool_wait{0};    ///< waiting for (or opening) connections
    int retries = 0;                          ///< attempts after the first
};

struct Options {
    /// libpq connection string ("postgresql://..." or "host=... dbname=...").
    /// When set, host/port/database/user below are ignored.
    std::string connection_string;
    std::string host = "localhost";
    int port = 5432;
    std::string database = "postgres";
    std::string user = "postgres";
    std::string password;  ///< ignored when token_provider is set
    /// Asked for the password of every new connection (e.g.
    /// DatabricksTokenProvider).  The password is then sent only over TLS:
    /// sslmode defaults to verify-full, "require" may be set explicitly, and
    /// disable/allow/prefer are refused (ConfigError) unless every host is
    /// local (loopback or a Unix-domain socket).
    std::shared_ptr<TokenProvider> token_provider;
    std::size_t minconn = 1;  ///< kept open (refilled in the background)
    std::size_t maxconn = 10;
    /// Run setup() in the constructor (or, with lazy_connect, before the
    /// first operation).
    bool auto_setup = false;
    /// false: the constructor opens minconn connections (and throws if the
    /// server cannot be reached); true: nothing is opened before the first
    /// operation.
    bool lazy_connect = false;
    /// Empty: "verify-full" (with sslrootcert = the system CA bundle) when a
    /// token provider is used or the host is a Databricks host
    /// (*.databricks.com, *.azuredatabricks.net), unless the connection
    /// string or PGSSLMODE sets sslmode; otherwise libpq's default.
    std::string sslmode;
    /// CA certificates to verify the server with (libpq sslrootcert).  Empty:
    /// the system bundle when the verify-full default above applies.
    std::string sslrootcert;
    std::chrono::seconds connect_timeout{10};
    /// Deadline of every operation, from the call to its result: waiting for
    /// a pooled connection, fetching a token, connecting, sending and
    /// waiting for the answer.  Enforced by the client (socket waits +
    /// PQcancel), so a server host that dies or a network that drops
    /// packets cannot block a caller longer.  0: no deadline.  Per call:
    /// FastPgCache::with_timeout().
    std::chrono::milliseconds operation_timeout{30000};
    std::chrono::milliseconds statement_timeout{0};  ///< server side; 0: server default
    std::chrono::milliseconds pool_timeout{30000};   ///< wait for a free connection
    /// TCP keepalives (libpq keepalives_*) and tcp_user_timeout, so that
    /// idle pooled connections to a vanished host or through a load
    /// balancer that dropped them are noticed.  0 leaves libpq's default.
    /// A connection string's own settings win.
    std::chrono::seconds keepalives_idle{30};
    std::chrono::seconds keepalives_interval{10};
    int keepalives_count = 3;
    std::chrono::milliseconds tcp_user_timeout{30000};
    /// Close connections older than this (checked when they are handed out
    /// and when they come back; 0: never).
    std::chrono::milliseconds max_connection_lifetime{0};
    /// How often the pool looks up again where the cache functions live (the
    /// extension's schema or the fallback's), so that an extension created
    /// after the pool started is used.  0: only at setup() and first use.
    std::chrono::milliseconds schema_check_interval{30000};
    std::string application_name = "fastpgcache-cpp";
    /// false: setup() installs the pure-SQL fallback without trying the extension.
    bool use_extension = true;
    /// Where setup() reads the fallback SQL when it is not compiled in.
    std::string fallback_sql_path;
    /// Metrics hook: called after every operation (see OperationMetrics).
    /// Must be thread-safe; an exception it throws is ignored.
    std::function<void(const OperationMetrics&)> on_operation;
};

/// Time to live: an integer number of seconds, any std::chrono duration
/// (rounded up to whole seconds), or nothing (= no expiry).  A value that
/// does not fit in 32 bits is an Error with SQLSTATE 22023.
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
            throw Error("ttl does not fit in a 32-bit number of seconds", "22023");
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
    std::uint64_t timeouts = 0;   ///< operations that hit their deadline
};

/// A point in time by which an operation must finish (or none).
class Deadline {
public:
    using Clock = std::chrono::steady_clock;
    Deadline() = default;
    static Deadline none() { return Deadline(); }
    static Deadline at(Clock::time_point tp) { return Deadline(tp); }
    template <class Rep, class Period>
    static Deadline after(std::chrono::duration<Rep, Period> d) {
        if (d.count() <= 0) return Deadline();
        return Deadline(Clock::now() + std::chrono::duration_cast<Clock::duration>(d));
    }
    bool is_set() const { return set_; }
    bool expired() const { return set_ && Clock::now() >= tp_; }
    /// The deadline, or far in the future when none is set.
    Clock::time_point time() const { return set_ ? tp_ : Clock::now() + std::chrono::hours(24 * 365); }
    /// The earlier of the two.
    Deadline min(const Deadline& o) const {
        if (!set_) return o;
        if (!o.set_) return *this;
        return tp_ <= o.tp_ ? *this : o;
    }
    /// Milliseconds left for poll() (-1: wait forever), at most `cap_ms`.
    int poll_ms(int cap_ms = -1) const {
        if (!set_) return cap_ms;
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(tp_ - Clock::now()).count() + 1;
        if (left < 0) left = 0;
        if (cap_ms >= 0 && left > cap_ms) left = cap_ms;
        return static_cast<int>(left);
    }

private:
    explicit Deadline(Clock::time_point tp) : tp_(tp), set_(true) {}
    Clock::time_point tp_{};
    bool set_ = false;
};

}  // namespace fastpgcache

// fastpgcache/client.hpp - C++17 client for FastPgCache (Redis-style cache in PostgreSQL)
//
// Single header.  Link with -lpq, and -lcurl for DatabricksTokenProvider.
// Needs nlohmann/json (Debian: nlohmann-json3-dev).
//
//   fastpgcache::FastPgCache cache("postgresql://user:pw@localhost/db");
//   cache.setup();                       // CREATE EXTENSION, or the pure-SQL fallback
//   cache.set("user:1", nlohmann::json{{"name", "Alice"}}, std::chrono::hours(1));
//   auto user = cache.get_json("user:1"); // std::optional<nlohmann::json>
//
// Design notes
//  * Every value reaches the server as a bound parameter of a statement that is
//    prepared once per connection; no SQL text is ever built from user input.
//  * RAII everywhere: PGconn/PGresult/CURL are owned by std::unique_ptr with
//    PQfinish/PQclear/curl_easy_cleanup deleters; the FastPgCache destructor
//    closes the pool (the Python library's context manager).
//  * Passwords and tokens never appear in exception messages or log lines.
//  * The pool asks the TokenProvider for a password every time it opens a
//    connection; when the server refuses it (28P01/28000 or libpq's
//    "authentication failed"), the provider is told, a fresh token is fetched
//    and the connection attempt is retried once.  Connections in use are never
//    closed because a credential rotated: PostgreSQL checks the password only
//    when a session starts.
//
// The pure-SQL fallback used by setup() when the extension cannot be created
// is fallback/fastpgcache_fallback.sql.  If <fastpgcache/fallback_sql.hpp> is
// on the include path (generate it with fallback/embed.sh) it is compiled in;
// otherwise setup() reads the file named by Options::fallback_sql_path or the
// FASTPGCACHE_FALLBACK_SQL environment variable.
#pragma once

#include <libpq-fe.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <poll.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#ifndef FASTPGCACHE_NO_CURL
#include <curl/curl.h>
#endif

#if defined(__has_include)
#if __has_include(<fastpgcache/fallback_sql.hpp>)
#include <fastpgcache/fallback_sql.hpp>
#define FASTPGCACHE_HAVE_EMBEDDED_FALLBACK 1
#endif
#endif

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

// ---------------------------------------------------------------------------
// Token providers
// ---------------------------------------------------------------------------

/// Source of the password used for each new connection.  Must be thread-safe.
class TokenProvider {
public:
    virtual ~TokenProvider() = default;
    /// Returns the password for a new connection.  Throws TokenError (or any
    /// ConnectionError) when none can be obtained.
    virtual std::string get_token() = 0;
    /// Called when the server refused `rejected` for authentication; the next
    /// get_token() must not return it again.
    virtual void invalidate_token(const std::string& rejected) { (void)rejected; }
};

/// A fixed password (what Options::password does implicitly).
class StaticTokenProvider : public TokenProvider {
public:
    explicit StaticTokenProvider(std::string token) : token_(std::move(token)) {}
    std::string get_token() override { return token_; }

private:
    std::string token_;
};

/// Adapts any callable returning a password.
class FunctionTokenProvider : public TokenProvider {
public:
    explicit FunctionTokenProvider(std::function<std::string()> fn) : fn_(std::move(fn)) {}
    std::string get_token() override { return fn_(); }

private:
    std::function<std::string()> fn_;
};

namespace detail {

inline bool ends_with_ci(std::string_view s, std::string_view suffix) {
    if (s.size() < suffix.size()) return false;
    for (std::size_t i = 0; i < suffix.size(); ++i) {
        if (std::tolower(static_cast<unsigned char>(s[s.size() - suffix.size() + i])) !=
            std::tolower(static_cast<unsigned char>(suffix[i])))
            return false;
    }
    return true;
}

inline bool contains_ci(std::string_view hay, std::string_view needle) {
    if (needle.empty()) return true;
    auto it = std::search(hay.begin(), hay.end(), needle.begin(), needle.end(), [](char a, char b) {
        return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
    });
    return it != hay.end();
}

inline std::string trim(std::string s) {
    auto ws = [](unsigned char c) { return std::isspace(c) != 0; };
    while (!s.empty() && ws(static_cast<unsigned char>(s.back()))) s.pop_back();
    std::size_t i = 0;
    while (i < s.size() && ws(static_cast<unsigned char>(s[i]))) ++i;
    return s.substr(i);
}

/// Replaces every occurrence of `secret` in `text` (no-op for short secrets).
inline std::string redact(std::string text, const std::string& secret) {
    if (secret.size() < 4) return text;
    std::size_t pos = 0;
    while ((pos = text.find(secret, pos)) != std::string::npos) {
        text.replace(pos, secret.size(), "[REDACTED]");
        pos += 10;
    }
    return text;
}

inline std::string getenv_str(const char* name) {
    const char* v = std::getenv(name);
    return v ? std::string(v) : std::string();
}

/// Hosts of Databricks-managed PostgreSQL (Lakebase) require TLS.
inline bool is_databricks_host(std::string_view host) {
    std::size_t start = 0;
    while (start <= host.size()) {
        std::size_t comma = host.find(',', start);
        std::string_view h = host.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
        if (ends_with_ci(h, "databricks.com") || ends_with_ci(h, "azuredatabricks.net")) return true;
        if (comma == std::string_view::npos) break;
        start = comma + 1;
    }
    return false;
}

/// Scheme, host (lower case, IPv6 without brackets) and port of an http(s) URL.
struct UrlAuthority {
    std::string scheme, host, port;
};

/// Parses "scheme://host[:port][/...]".  std::nullopt for anything else,
/// including URLs with user information ("https://a@b/").
inline std::optional<UrlAuthority> parse_url_authority(std::string_view url) {
    auto sep = url.find("://");
    if (sep == std::string_view::npos || sep == 0) return std::nullopt;
    UrlAuthority u;
    for (char ch : url.substr(0, sep)) u.scheme += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    std::string_view rest = url.substr(sep + 3);
    std::string_view auth = rest.substr(0, rest.find_first_of("/?#"));
    if (auth.empty() || auth.find('@') != std::string_view::npos) return std::nullopt;
    std::string_view host, port;
    if (auth.front() == '[') {
        auto close = auth.find(']');
        if (close == std::string_view::npos) return std::nullopt;
        host = auth.substr(1, close - 1);
        std::string_view after = auth.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':') return std::nullopt;
            port = after.substr(1);
        }
    } else {
        auto colon = auth.rfind(':');
        host = auth.substr(0, colon);
        if (colon != std::string_view::npos) port = auth.substr(colon + 1);
    }
    if (host.empty()) return std::nullopt;
    for (char ch : port)
        if (!std::isdigit(static_cast<unsigned char>(ch))) return std::nullopt;
    for (char ch : host) u.host += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    u.port = std::string(port);
    if (u.port.empty()) u.port = u.scheme == "https" ? "443" : u.scheme == "http" ? "80" : "";
    return u;
}

inline bool is_loopback_host(std::string_view host) {
    return host == "127.0.0.1" || host == "localhost" || host == "::1";
}

/// A URL that may receive workspace secrets: https, or http to a loopback
/// address only (a local test server).
inline bool secure_or_loopback(const UrlAuthority& u) {
    return u.scheme == "https" || (u.scheme == "http" && is_loopback_host(u.host));
}

/// Whether a token_endpoint found through OAuth discovery may receive the
/// client secret: the workspace's own host and port, over https (http only
/// for a loopback workspace).
inline bool oauth_endpoint_allowed(std::string_view workspace_url, std::string_view endpoint) {
    auto w = parse_url_authority(workspace_url);
    auto e = parse_url_authority(endpoint);
    if (!w || !e) return false;
    return secure_or_loopback(*e) && e->scheme == w->scheme && e->host == w->host && e->port == w->port;
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
inline long long days_from_civil(long long y, unsigned m, unsigned d) {
    y -= m <= 2;
    const long long era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<long long>(doe) - 719468;
}

/// Parses RFC 3339 ("2025-10-12T17:00:00Z", "...:00.123456+02:00").
inline std::optional<std::chrono::system_clock::time_point> parse_rfc3339(const std::string& s) {
    int Y = 0, M = 0, D = 0, h = 0, m = 0, sec = 0;
    int consumed = 0;
    if (std::sscanf(s.c_str(), "%4d-%2d-%2d%*1[Tt ]%2d:%2d:%2d%n", &Y, &M, &D, &h, &m, &sec, &consumed) < 6 ||
        consumed <= 0)
        return std::nullopt;
    std::size_t i = static_cast<std::size_t>(consumed);
    double frac = 0;
    if (i < s.size() && s[i] == '.') {
        double scale = 0.1;
        ++i;
        while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
            frac += (s[i] - '0') * scale;
            scale /= 10;
            ++i;
        }
    }
    long long offset = 0;
    if (i < s.size() && (s[i] == 'Z' || s[i] == 'z')) {
        ++i;
    } else if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
        int oh = 0, om = 0;
        if (std::sscanf(s.c_str() + i + 1, "%2d:%2d", &oh, &om) != 2) return std::nullopt;
        offset = (oh * 3600LL + om * 60LL) * (s[i] == '+' ? 1 : -1);
        i += 6;
    } else {
        return std::nullopt;
    }
    if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60) return std::nullopt;
    long long epoch = days_from_civil(Y, static_cast<unsigned>(M), static_cast<unsigned>(D)) * 86400LL + h * 3600LL +
                      m * 60LL + sec - offset;
    auto tp = std::chrono::system_clock::time_point(std::chrono::seconds(epoch));
    tp += std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::duration<double>(frac));
    return tp;
}

inline std::string uuid4() {
    thread_local std::mt19937_64 rng([] {
        std::random_device rd;
        std::seed_seq seq{rd(), rd(), rd(), rd()};
        return std::mt19937_64(seq);
    }());
    std::uint64_t a = rng(), b = rng();
    a = (a & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;  // version 4
    b = (b & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;  // variant 10
    char buf[37];
    std::snprintf(buf, sizeof buf, "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(a >> 32),
                  static_cast<unsigned>((a >> 16) & 0xffff), static_cast<unsigned>(a & 0xffff),
                  static_cast<unsigned>(b >> 48), static_cast<unsigned long long>(b & 0xffffffffffffULL));
    return buf;
}

}  // namespace detail

#ifndef FASTPGCACHE_NO_CURL

/// Log levels for DatabricksTokenProvider's reporter.
enum class LogLevel { Info, Warning, Error };

/// Configuration of DatabricksTokenProvider.  Empty fields are filled from
/// the environment (DATABRICKS_HOST, DATABRICKS_TOKEN, DATABRICKS_CLIENT_ID,
/// DATABRICKS_CLIENT_SECRET, DATABRICKS_CONFIG_PROFILE, DATABRICKS_CONFIG_FILE)
/// and then from the profile in ~/.databrickscfg, like the Databricks SDKs.
struct DatabricksConfig {
    /// Workspace URL.  "https://" is prepended when no scheme is given;
    /// "http://127.0.0.1:PORT" is accepted for tests.
    std::string host;
    std::string token;          ///< personal access token (PAT auth)
    std::string client_id;      ///< service principal (OAuth M2M auth)
    std::string client_secret;  ///< service principal secret
    std::string profile;        ///< ~/.databrickscfg section (default "DEFAULT")
    std::string config_file;    ///< default $DATABRICKS_CONFIG_FILE or ~/.databrickscfg
    /// Database instances the credential is for (required).
    std::vector<std::string> instance_names;
    /// Refresh at least this often, and in any case `refresh_margin` before
    /// the credential's expiration_time.
    std::chrono::seconds refresh_interval{3600};
    std::chrono::seconds refresh_margin{300};
    /// Refresh in a background thread so connection opens never wait for HTTP.
    bool auto_refresh = true;
    std::chrono::milliseconds http_timeout{15000};
    /// Attempts per refresh, with exponential backoff starting at retry_backoff.
    int max_attempts = 3;
    std::chrono::milliseconds retry_backoff{250};
    /// Receives failures and refreshes (never a token).  Default: stderr for
    /// warnings and errors.  Set to an empty-bodied function to silence it.
    std::function<void(LogLevel, const std::string&)> logger;
};

/// Database credentials for Databricks Lakebase PostgreSQL instances.
///
/// get_token() returns the current credential without any HTTP while it is
/// fresh; one thread refreshes (no lock held during HTTP) while the others
/// keep using the current credential; a credential told rejected is dropped
/// and the next get_token() fetches a new one.
class DatabricksTokenProvider : public TokenProvider {
public:
    enum class AuthType { Pat, OAuthM2M };

    explicit DatabricksTokenProvider(DatabricksConfig config) : cfg_(std::move(config)) {
        resolve_config();
        static std::once_flag curl_once;
        std::call_once(curl_once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
        if (cfg_.auto_refresh) worker_ = std::thread([this] { background_loop(); });
    }

    /// The Python library's signature: instance names, refresh interval,
    /// auto refresh; workspace from the environment / ~/.databrickscfg.
    DatabricksTokenProvider(std::vector<std::string> instance_names, std::chrono::seconds refresh_interval = std::chrono::seconds(3600),
                            bool auto_refresh = true)
        : DatabricksTokenProvider(make_config(std::move(instance_names), refresh_interval, auto_refresh)) {}

    ~DatabricksTokenProvider() override {
        {
            std::lock_guard<std::mutex> lk(mu_);
            stopping_ = true;
        }
        cv_.notify_all();
        if (worker_.joinable()) worker_.join();
    }

    DatabricksTokenProvider(const DatabricksTokenProvider&) = delete;
    DatabricksTokenProvider& operator=(const DatabricksTokenProvider&) = delete;

    std::string get_token() override {
        std::unique_lock<std::mutex> lk(mu_);
        // At most one refresh per call: a credential that is unusable right
        // after it was fetched (expired on arrival, rejected) is reported as
        // a TokenError instead of being fetched again in a loop.
        bool refreshed = false;
        for (;;) {
            const auto now = std::chrono::system_clock::now();
            const bool usable = token_usable(now);
            // With auto_refresh the background thread renews a due token, so
            // connection opens never wait for HTTP while the token is usable.
            if (usable && (now < refresh_at_ || refreshing_ || cfg_.auto_refresh || refreshed ||
                           std::chrono::steady_clock::now() < next_fetch_ok_))
                return token_;
            if (refreshing_) {
                // No usable token: wait for the refresh in flight.
                cv_.wait_for(lk, cfg_.http_timeout * (cfg_.max_attempts + 1));
                continue;
            }
            if (!usable && last_failure_ &&
                std::chrono::steady_clock::now() - *last_failure_ < std::chrono::seconds(1)) {
                throw TokenError(failure_message());
            }
            if (refreshed || std::chrono::steady_clock::now() < next_fetch_ok_) throw TokenError(unusable_message());
            refreshed = true;
            if (!refresh_locked(lk)) {
                if (token_usable(std::chrono::system_clock::now())) return token_;
                throw TokenError(failure_message());
            }
        }
    }

    void invalidate_token(const std::string& rejected) override {
        bool current = false;
        {
            std::lock_guard<std::mutex> lk(mu_);
            if (!token_.empty() && rejected == token_) {
                rejected_ = true;
                last_failure_.reset();
                current = true;
            }
        }
        // Reported without the lock: the logger may call back into this object.
        report(LogLevel::Warning, current ? "database credential was rejected by the server; fetching a new one"
                                          : "an older database credential was rejected by the server");
    }

    /// Fetches a new credential now (blocking).  Returns false on failure.
    bool refresh() {
        std::unique_lock<std::mutex> lk(mu_);
        while (refreshing_) cv_.wait(lk);
        return refresh_locked(lk);
    }

    AuthType auth_type() const { return auth_type_; }
    const std::string& host() const { return cfg_.host; }
    /// Number of credentials obtained so far.
    std::uint64_t refresh_count() const { return refresh_count_.load(); }
    /// Expiration of the current credential (epoch if none).
    std::chrono::system_clock::time_point expires_at() const {
        std::lock_guard<std::mutex> lk(mu_);
        return expires_at_;
    }
    /// Message of the last failed refresh (empty if the last one succeeded).
    std::string last_error() const {
        std::lock_guard<std::mutex> lk(mu_);
        return last_error_;
    }

private:
    struct Credential {
        std::string token;
        std::optional<std::chrono::system_clock::time_point> expires;
    };
    struct HttpResponse {
        long status = 0;
        std::string body;
    };
    struct CurlDeleter {
        void operator()(CURL* c) const { curl_easy_cleanup(c); }
    };
    struct SlistDeleter {
        void operator()(curl_slist* l) const { curl_slist_free_all(l); }
    };

    static DatabricksConfig make_config(std::vector<std::string> names, std::chrono::seconds interval, bool autoref) {
        DatabricksConfig c;
        c.instance_names = std::move(names);
        c.refresh_interval = interval;
        c.auto_refresh = autoref;
        return c;
    }

    void resolve_config() {
        auto fill = [](std::string& field, const std::string& value) {
            if (field.empty()) field = value;
        };
        fill(cfg_.host, detail::getenv_str("DATABRICKS_HOST"));
        fill(cfg_.token, detail::getenv_str("DATABRICKS_TOKEN"));
        fill(cfg_.client_id, detail::getenv_str("DATABRICKS_CLIENT_ID"));
        fill(cfg_.client_secret, detail::getenv_str("DATABRICKS_CLIENT_SECRET"));
        const bool profile_explicit = !cfg_.profile.empty() || !detail::getenv_str("DATABRICKS_CONFIG_PROFILE").empty();
        fill(cfg_.profile, detail::getenv_str("DATABRICKS_CONFIG_PROFILE"));
        fill(cfg_.profile, "DEFAULT");
        fill(cfg_.config_file, detail::getenv_str("DATABRICKS_CONFIG_FILE"));
        if (cfg_.config_file.empty()) {
            std::string home = detail::getenv_str("HOME");
            if (!home.empty()) cfg_.config_file = home + "/.databrickscfg";
        }
        const bool complete = !cfg_.host.empty() && (!cfg_.token.empty() || (!cfg_.client_id.empty() && !cfg_.client_secret.empty()));
        if (!complete || profile_explicit) load_profile(profile_explicit);

        if (cfg_.host.empty())
            throw ConfigError("Databricks workspace host is not configured (set DatabricksConfig::host, DATABRICKS_HOST or a ~/.databrickscfg profile)");
        if (cfg_.host.find("://") == std::string::npos) cfg_.host = "https://" + cfg_.host;
        while (!cfg_.host.empty() && cfg_.host.back() == '/') cfg_.host.pop_back();
        {
            auto u = detail::parse_url_authority(cfg_.host);
            if (!u) throw ConfigError("invalid Databricks workspace host: " + cfg_.host);
            if (!detail::secure_or_loopback(*u))
                throw ConfigError("the Databricks workspace host must be an https:// URL (http:// only for 127.0.0.1, localhost or ::1): " +
                                  cfg_.host);
        }
        if (!cfg_.token.empty()) {
            auth_type_ = AuthType::Pat;
        } else if (!cfg_.client_id.empty() && !cfg_.client_secret.empty()) {
            auth_type_ = AuthType::OAuthM2M;
        } else {
            throw ConfigError("no Databricks credentials configured: need a personal access token (token / DATABRICKS_TOKEN) or OAuth client_id and client_secret");
        }
        if (cfg_.instance_names.empty()) throw ConfigError("DatabricksTokenProvider needs at least one instance name");
        if (cfg_.max_attempts < 1) cfg_.max_attempts = 1;
    }

    void load_profile(bool must_exist) {
        std::ifstream in(cfg_.config_file);
        if (!in) {
            if (must_exist) throw ConfigError("Databricks config file not found: " + cfg_.config_file);
            return;
        }
        std::string line, section;
        bool found = false;
        std::string host, token, cid, csecret;
        while (std::getline(in, line)) {
            line = detail::trim(line);
            if (line.empty() || line[0] == '#' || line[0] == ';') continue;
            if (line.front() == '[' && line.back() == ']') {
                section = detail::trim(line.substr(1, line.size() - 2));
                if (section == cfg_.profile) found = true;
                continue;
            }
            if (section != cfg_.profile) continue;
            auto eq = line.find('=');
            if (eq == std::string::npos) continue;
            std::string k = detail::trim(line.substr(0, eq)), v = detail::trim(line.substr(eq + 1));
            if (k == "host") host = v;
            else if (k == "token") token = v;
            else if (k == "client_id") cid = v;
            else if (k == "client_secret") csecret = v;
        }
        if (!found) {
            if (must_exist) throw ConfigError("profile [" + cfg_.profile + "] not found in " + cfg_.config_file);
            return;
        }
        if (cfg_.host.empty()) cfg_.host = host;
        if (cfg_.token.empty() && cfg_.client_id.empty()) {
            cfg_.token = token;
            cfg_.client_id = cid;
            cfg_.client_secret = csecret;
        }
    }

    // Never called with mu_ held (the logger may call expires_at(),
    // last_error(), even get_token()); never throws (a throwing logger must
    // not terminate the background thread).
    void report(LogLevel level, const std::string& msg) const noexcept {
        try {
            if (cfg_.logger) {
                cfg_.logger(level, msg);
            } else if (level != LogLevel::Info) {
                std::fprintf(stderr, "fastpgcache: %s\n", msg.c_str());
            }
        } catch (...) {
        }
    }

    bool token_usable(std::chrono::system_clock::time_point now) const {
        return !token_.empty() && !rejected_ && now < usable_until_;
    }

    std::string unusable_message() const {
        const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next_fetch_ok_ - std::chrono::steady_clock::now());
        return "no usable database credential from the Databricks workspace " + cfg_.host +
               ": the last one was rejected by the server or had expired when it was issued (check the local clock)" +
               (wait.count() > 0 ? "; next refresh allowed in " + std::to_string(wait.count()) + " ms" : std::string());
    }

    std::string failure_message() const {
        return "could not obtain a database credential from the Databricks workspace " + cfg_.host + ": " +
               (last_error_.empty() ? std::string("unknown error") : last_error_);
    }

    // A credential whose expiration_time is already past when it arrives
    // (by the local clock: the clock is probably wrong, since the workspace
    // just issued it) is used for this long, and the server decides.  Any
    // credential with a real future expiry is never used past it.
    static constexpr std::chrono::seconds kPastExpiryGrace{30};
    // Credentials that live less than 2 s (or expired on arrival) space the
    // following fetches 1 s, 2 s, 4 s ... up to 30 s apart: never a spin.
    static constexpr std::chrono::seconds kMinFetchSpacing{1};
    static constexpr std::chrono::seconds kMaxFetchSpacing{30};

    // Called with lk held and refreshing_ false; releases lk during HTTP and
    // while reporting; returns with lk held.  Never throws.
    bool refresh_locked(std::unique_lock<std::mutex>& lk) noexcept {
        refreshing_ = true;
        lk.unlock();
        std::optional<Credential> cred;
        std::string error;
        try {
            std::chrono::milliseconds backoff = cfg_.retry_backoff;
            for (int attempt = 1; attempt <= cfg_.max_attempts; ++attempt) {
                try {
                    cred = fetch_credential();
                    break;
                } catch (const std::exception& e) {
                    error = e.what();
                    report(LogLevel::Warning, "credential refresh attempt " + std::to_string(attempt) + "/" +
                                                  std::to_string(cfg_.max_attempts) + " failed: " + error);
                }
                if (attempt < cfg_.max_attempts) {
                    std::unique_lock<std::mutex> wait_lk(mu_);
                    if (cv_.wait_for(wait_lk, backoff, [this] { return stopping_; })) break;
                    backoff *= 2;
                }
            }
        } catch (...) {  // bad_alloc and the like
            cred.reset();
            error = "unexpected failure during the credential refresh";
        }
        std::vector<std::pair<LogLevel, std::string>> logs;
        lk.lock();
        refreshing_ = false;
        const bool ok = cred.has_value();
        try {
            if (cred) {
                const auto now = std::chrono::system_clock::now();
                const auto expires = cred->expires ? *cred->expires : now + cfg_.refresh_interval + cfg_.refresh_margin;
                const auto lifetime = expires - now;
                token_ = std::move(cred->token);
                rejected_ = false;
                expires_at_ = expires;
                if (lifetime < 2 * kMinFetchSpacing)
                    fetch_spacing_ = fetch_spacing_.count() == 0 ? std::chrono::seconds(kMinFetchSpacing)
                                                                 : std::min<std::chrono::seconds>(fetch_spacing_ * 2, kMaxFetchSpacing);
                else
                    fetch_spacing_ = std::chrono::seconds(0);
                next_fetch_ok_ = std::chrono::steady_clock::now() + fetch_spacing_;
                usable_until_ = lifetime.count() > 0 ? expires : now + kPastExpiryGrace;
                const auto window = usable_until_ - now;
                const auto margin = std::min<std::chrono::system_clock::duration>(cfg_.refresh_margin, window / 2);
                const auto lead = std::min<std::chrono::system_clock::duration>(cfg_.refresh_interval, window - margin);
                refresh_at_ = now + std::max<std::chrono::system_clock::duration>(
                                        lead, std::max<std::chrono::seconds>(fetch_spacing_, kMinFetchSpacing));
                last_error_.clear();
                last_failure_.reset();
                ++refresh_count_;
                const long long secs = std::chrono::duration_cast<std::chrono::seconds>(lifetime).count();
                if (lifetime.count() <= 0)
                    logs.emplace_back(LogLevel::Warning,
                                      "the new database credential's expiration_time is " + std::to_string(-secs) +
                                          " s in the past by the local clock (is the clock wrong?); using it for at most " +
                                          std::to_string(kPastExpiryGrace.count()) + " s");
                logs.emplace_back(LogLevel::Info, "database credential refreshed (expires in " + std::to_string(secs) + " s)");
            } else {
                last_error_ = error.empty() ? "refresh aborted" : error;
                last_failure_ = std::chrono::steady_clock::now();
                logs.emplace_back(LogLevel::Error, failure_message());
            }
        } catch (...) {
        }
        cv_.notify_all();
        if (!logs.empty()) {
            lk.unlock();
            for (const auto& l : logs) report(l.first, l.second);
            lk.lock();
        }
        return ok;
    }

    void background_loop() noexcept {
        std::unique_lock<std::mutex> lk(mu_);
        std::chrono::milliseconds retry_delay = std::chrono::seconds(1);
        while (!stopping_) {
            try {
                if (refreshing_) {  // another thread is fetching: wait for it, do not poll
                    cv_.wait(lk, [&] { return stopping_ || !refreshing_; });
                    continue;
                }
                auto now = std::chrono::system_clock::now();
                auto wake = token_.empty() ? now + std::chrono::seconds(1) : refresh_at_;
                if (last_failure_ && !token_.empty() && now >= refresh_at_) wake = now + retry_delay;
                cv_.wait_until(lk, wake, [&] {
                    return stopping_ || refreshing_ || (!token_.empty() && std::chrono::system_clock::now() >= wake);
                });
                if (stopping_) break;
                if (token_.empty() || refreshing_ || std::chrono::system_clock::now() < refresh_at_) continue;
                if (std::chrono::steady_clock::now() < next_fetch_ok_) {
                    cv_.wait_until(lk, next_fetch_ok_, [&] { return stopping_; });
                    continue;
                }
                if (refresh_locked(lk)) {
                    retry_delay = std::chrono::seconds(1);
                } else {
                    retry_delay = std::min<std::chrono::milliseconds>(retry_delay * 2, std::chrono::seconds(60));
                }
            } catch (...) {
                if (!lk.owns_lock()) lk.lock();
                cv_.wait_for(lk, std::chrono::seconds(1), [&] { return stopping_; });
            }
        }
    }

    static std::size_t write_cb(char* data, std::size_t size, std::size_t nmemb, void* user) {
        auto* out = static_cast<std::string*>(user);
        const std::size_t n = size * nmemb;
        if (out->size() + n > (8u << 20)) return 0;  // refuse absurd bodies
        out->append(data, n);
        return n;
    }

    HttpResponse http(const std::string& method, const std::string& url, const std::vector<std::string>& headers,
                      const std::string& body, const std::string& basic_user = {}, const std::string& basic_pass = {}) const {
        std::unique_ptr<CURL, CurlDeleter> curl(curl_easy_init());
        if (!curl) throw TokenError("curl_easy_init failed");
        HttpResponse resp;
        char errbuf[CURL_ERROR_SIZE] = {0};
        curl_slist* raw = nullptr;
        for (const auto& h : headers) {
            curl_slist* next = curl_slist_append(raw, h.c_str());
            if (!next) {
                curl_slist_free_all(raw);
                throw TokenError("out of memory building HTTP headers");
            }
            raw = next;
        }
        std::unique_ptr<curl_slist, SlistDeleter> hdrs(raw);
        CURL* c = curl.get();
        curl_easy_setopt(c, CURLOPT_URL, url.c_str());
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(cfg_.http_timeout.count()));
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(cfg_.http_timeout.count()));
#if LIBCURL_VERSION_NUM >= 0x075500
        curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#endif
        curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &DatabricksTokenProvider::write_cb);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &resp.body);
        curl_easy_setopt(c, CURLOPT_USERAGENT, "fastpgcache-cpp/1.0");
        if (hdrs) curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs.get());
        if (method == "POST") {
            curl_easy_setopt(c, CURLOPT_POST, 1L);
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.c_str());
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
        }
        if (!basic_user.empty()) {
            curl_easy_setopt(c, CURLOPT_HTTPAUTH, static_cast<long>(CURLAUTH_BASIC));
            curl_easy_setopt(c, CURLOPT_USERNAME, basic_user.c_str());
            curl_easy_setopt(c, CURLOPT_PASSWORD, basic_pass.c_str());
        }
        CURLcode rc = curl_easy_perform(c);
        if (rc != CURLE_OK) {
            std::string msg = errbuf[0] ? errbuf : curl_easy_strerror(rc);
            throw TokenError(method + " " + url + " failed: " + msg);
        }
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp.status);
        return resp;
    }

    static std::string form_escape(const std::string& s) {
        static const char* hex = "0123456789ABCDEF";
        std::string out;
        for (unsigned char ch : s) {
            if (std::isalnum(ch) || ch == '-' || ch == '_' || ch == '.' || ch == '~') {
                out += static_cast<char>(ch);
            } else {
                out += '%';
                out += hex[ch >> 4];
                out += hex[ch & 15];
            }
        }
        return out;
    }

    static std::string describe_failure(const std::string& what, const HttpResponse& r) {
        std::string msg = what + " returned HTTP " + std::to_string(r.status);
        try {
            auto j = nlohmann::json::parse(r.body);
            if (j.is_object()) {
                for (const char* field : {"error_code", "error", "message", "error_description"}) {
                    auto it = j.find(field);
                    if (it != j.end() && it->is_string()) msg += std::string(" ") + it->get<std::string>();
                }
            }
        } catch (const std::exception&) {
        }
        return msg;
    }

    // Workspace bearer token: the PAT, or an OAuth M2M access token (cached).
    std::string workspace_token() {
        if (auth_type_ == AuthType::Pat) return cfg_.token;
        {
            std::lock_guard<std::mutex> lk(oauth_mu_);
            if (!access_token_.empty() && std::chrono::steady_clock::now() < access_expires_) return access_token_;
        }
        std::string endpoint;
        try {
            auto r = http("GET", cfg_.host + "/oidc/.well-known/oauth-authorization-server", {"Accept: application/json"}, {});
            if (r.status == 200) {
                auto j = nlohmann::json::parse(r.body);
                if (j.contains("token_endpoint") && j["token_endpoint"].is_string()) endpoint = j["token_endpoint"].get<std::string>();
            }
        } catch (const TokenError&) {
            throw;
        } catch (const std::exception&) {
        }
        if (!endpoint.empty() && !detail::oauth_endpoint_allowed(cfg_.host, endpoint)) {
            // The client secret goes only to the workspace itself, over TLS.
            report(LogLevel::Warning, "ignoring the discovered OAuth token_endpoint " + endpoint +
                                          ": it is not https on the workspace host " + cfg_.host + "; using " + cfg_.host +
                                          "/oidc/v1/token");
            endpoint.clear();
        }
        if (endpoint.empty()) endpoint = cfg_.host + "/oidc/v1/token";
        auto r = http("POST", endpoint, {"Content-Type: application/x-www-form-urlencoded", "Accept: application/json"},
                      "grant_type=client_credentials&scope=all-apis", cfg_.client_id, cfg_.client_secret);
        if (r.status != 200) throw TokenError(describe_failure("OAuth token endpoint", r));
        nlohmann::json j;
        try {
            j = nlohmann::json::parse(r.body);
        } catch (const std::exception&) {
            throw TokenError("OAuth token endpoint returned a body that is not JSON");
        }
        if (!j.contains("access_token") || !j["access_token"].is_string())
            throw TokenError("OAuth token endpoint response has no access_token");
        long long expires_in = 3600;
        if (j.contains("expires_in") && j["expires_in"].is_number()) expires_in = j["expires_in"].get<long long>();
        std::lock_guard<std::mutex> lk(oauth_mu_);
        access_token_ = j["access_token"].get<std::string>();
        access_expires_ = std::chrono::steady_clock::now() + std::chrono::seconds(std::max<long long>(expires_in - 60, expires_in / 2));
        return access_token_;
    }

    Credential fetch_credential() {
        const std::string bearer = workspace_token();
        nlohmann::json body = {{"request_id", detail::uuid4()}, {"instance_names", cfg_.instance_names}};
        auto r = http("POST", cfg_.host + "/api/2.0/database/credentials",
                      {"Authorization: Bearer " + bearer, "Content-Type: application/json", "Accept: application/json"},
                      body.dump());
        if (r.status == 401 || r.status == 403) {
            std::lock_guard<std::mutex> lk(oauth_mu_);
            access_token_.clear();  // maybe the OAuth token was revoked: get a new one next time
        }
        if (r.status != 200) throw TokenError(describe_failure("database credentials endpoint", r));
        nlohmann::json j;
        try {
            j = nlohmann::json::parse(r.body);
        } catch (const std::exception&) {
            throw TokenError("database credentials endpoint returned a body that is not JSON");
        }
        if (!j.contains("token") || !j["token"].is_string() || j["token"].get<std::string>().empty())
            throw TokenError("database credentials response has no token");
        Credential c;
        c.token = j["token"].get<std::string>();
        if (j.contains("expiration_time") && j["expiration_time"].is_string())
            c.expires = detail::parse_rfc3339(j["expiration_time"].get<std::string>());
        return c;
    }

    DatabricksConfig cfg_;
    AuthType auth_type_ = AuthType::Pat;

    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::string token_;
    bool rejected_ = false;
    bool refreshing_ = false;
    bool stopping_ = false;
    std::chrono::system_clock::time_point expires_at_{};    // the credential's expiration_time
    std::chrono::system_clock::time_point usable_until_{};  // expires_at_, or the grace for one that arrived expired
    std::chrono::system_clock::time_point refresh_at_{};
    std::chrono::steady_clock::time_point next_fetch_ok_{};
    std::chrono::seconds fetch_spacing_{0};
    std::optional<std::chrono::steady_clock::time_point> last_failure_;
    std::string last_error_;
    std::atomic<std::uint64_t> refresh_count_{0};

    std::mutex oauth_mu_;
    std::string access_token_;
    std::chrono::steady_clock::time_point access_expires_{};

    std::thread worker_;
};

#endif  // FASTPGCACHE_NO_CURL

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

namespace detail {

struct PGconnDeleter {
    void operator()(PGconn* c) const { PQfinish(c); }
};
struct PGresultDeleter {
    void operator()(PGresult* r) const { PQclear(r); }
};
using ConnPtr = std::unique_ptr<PGconn, PGconnDeleter>;
using ResultPtr = std::unique_ptr<PGresult, PGresultDeleter>;

constexpr Oid kTextOid = 25, kInt4Oid = 23, kJsonbOid = 3802, kByteaOid = 17, kTextArrayOid = 1009;

enum Stmt : unsigned {
    kSetText, kSetJson, kSetBytes, kGet, kGetJson, kGetBytes, kDelete, kExists, kTtl, kCleanup, kMGet, kMSet, kStmtCount
};

struct StmtDef {
    const char* name;
    const char* sql;  ///< "@S@" stands for the (quoted) schema of the cache functions
    int nparams;
    Oid types[3];
};

inline const StmtDef& stmt_def(Stmt s) {
    static const StmtDef defs[kStmtCount] = {
        {"fpc_set_text", "SELECT @S@.cache_set($1, $2, $3)", 3, {kTextOid, kTextOid, kInt4Oid}},
        {"fpc_set_json", "SELECT @S@.cache_set($1, $2, $3)", 3, {kTextOid, kJsonbOid, kInt4Oid}},
        {"fpc_set_bytes", "SELECT @S@.cache_set($1, $2, $3)", 3, {kTextOid, kByteaOid, kInt4Oid}},
        {"fpc_get", "SELECT @S@.cache_get($1)", 1, {kTextOid, 0, 0}},
        {"fpc_get_json", "SELECT @S@.cache_get_json($1)", 1, {kTextOid, 0, 0}},
        {"fpc_get_bytes", "SELECT @S@.cache_get_bytes($1)", 1, {kTextOid, 0, 0}},
        {"fpc_delete", "SELECT @S@.cache_delete($1)", 1, {kTextOid, 0, 0}},
        {"fpc_exists", "SELECT @S@.cache_exists($1)", 1, {kTextOid, 0, 0}},
        {"fpc_ttl", "SELECT @S@.cache_ttl($1)", 1, {kTextOid, 0, 0}},
        {"fpc_cleanup", "SELECT @S@.cache_cleanup()", 0, {0, 0, 0}},
        {"fpc_mget",
         "SELECT m.value FROM @S@.cache_mget($1) WITH ORDINALITY AS m(key, value, ord) ORDER BY m.ord", 1,
         {kTextArrayOid, 0, 0}},
        {"fpc_mset", "SELECT @S@.cache_mset($1, $2, $3)", 3, {kTextArrayOid, kTextArrayOid, kInt4Oid}},
    };
    return defs[s];
}

/// The statements' texts for one schema.  A new generation gets new
/// statement names, so connections that prepared an older one re-prepare.
struct Statements {
    std::string schema;  ///< unquoted name
    unsigned generation = 0;
    std::string name[kStmtCount];
    std::string sql[kStmtCount];
};

inline std::shared_ptr<const Statements> make_statements(const std::string& schema, const std::string& quoted,
                                                         unsigned generation) {
    auto st = std::make_shared<Statements>();
    st->schema = schema;
    st->generation = generation;
    for (unsigned i = 0; i < kStmtCount; ++i) {
        const StmtDef& d = stmt_def(static_cast<Stmt>(i));
        st->name[i] = std::string(d.name) + "_" + std::to_string(generation);
        std::string q = d.sql;
        for (std::size_t pos; (pos = q.find("@S@")) != std::string::npos;) q.replace(pos, 3, quoted);
        st->sql[i] = std::move(q);
    }
    return st;
}

/// Internal: the connection broke while in use.  sent() tells whether the
/// operation's statement may have reached the server (then only idempotent
/// operations are retried).
class ConnectionLost : public ConnectionError {
public:
    ConnectionLost(const std::string& m, bool sent) : ConnectionError(m, "08006"), sent_(sent) {}
    bool sent() const noexcept { return sent_; }

private:
    bool sent_;
};

inline std::string clean_message(const char* msg) {
    std::string s = msg ? msg : "";
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s;
}

struct Conn;

/// Where the cache functions live: the fastpgcache extension's schema
/// (pg_extension.extnamespace), or public (the SQL fallback).  Looked up once
/// per pool on first use, and again by setup().  Shared by the pool's
/// connections.
class StatementSource {
public:
    /// The statements for the current schema, looking the schema up over `c`
    /// the first time.
    std::shared_ptr<const Statements> get(Conn& c);
    /// Sets the schema (after setup()); connections re-prepare.
    void set_schema(Conn& c, const std::string& schema);
    std::string schema() const {
        std::lock_guard<std::mutex> lk(mu_);
        return current_ ? current_->schema : std::string();
    }

private:
    mutable std::mutex mu_;
    std::shared_ptr<const Statements> current_;
    unsigned generation_ = 0;
};

struct Conn {
    ConnPtr pg;
    std::chrono::steady_clock::time_point created = std::chrono::steady_clock::now();
    std::shared_ptr<StatementSource> source;
    std::shared_ptr<const Statements> stmts;  ///< what `prepared` refers to
    std::uint32_t prepared = 0;
    /// Set when the application had the raw PGconn (Session::native()): its
    /// session state (SET ROLE, search_path, ...) is unknown, so the pool
    /// closes the connection instead of reusing it.
    bool discard = false;

    PGconn* get() const { return pg.get(); }
    bool bad() const { return !pg || PQstatus(pg.get()) != CONNECTION_OK; }

    /// Throws Error (server error, with SQLSTATE) or ConnectionLost.
    /// `sent`: whether a statement of the operation may have been executed.
    void check(const ResultPtr& r, ExecStatusType want, bool sent = true) const {
        if (r && PQresultStatus(r.get()) == want) return;
        if (!r || bad()) {
            std::string m = clean_message(PQerrorMessage(pg.get()));
            throw ConnectionLost("connection to the server was lost: " + (m.empty() ? std::string("no result") : m), sent);
        }
        const char* st = PQresultErrorField(r.get(), PG_DIAG_SQLSTATE);
        const char* primary = PQresultErrorField(r.get(), PG_DIAG_MESSAGE_PRIMARY);
        std::string msg = primary ? primary : clean_message(PQresultErrorMessage(r.get()));
        if (msg.empty()) msg = std::string("unexpected result status ") + PQresStatus(PQresultStatus(r.get()));
        throw Error(msg, st ? st : "");
    }

    ResultPtr exec(Stmt s, const char* const* values, const int* lengths, const int* formats, int result_format) {
        auto current = source->get(*this);
        if (current != stmts) {
            stmts = std::move(current);
            prepared = 0;
        }
        const StmtDef& d = stmt_def(s);
        if (!(prepared & (1u << s))) {
            // Nothing of the operation has run yet if the connection breaks here.
            ResultPtr p(PQprepare(pg.get(), stmts->name[s].c_str(), stmts->sql[s].c_str(), d.nparams, d.types));
            check(p, PGRES_COMMAND_OK, false);
            prepared |= 1u << s;
        }
        ResultPtr r(PQexecPrepared(pg.get(), stmts->name[s].c_str(), d.nparams, values, lengths, formats, result_format));
        check(r, PGRES_TUPLES_OK);
        return r;
    }

    /// Runs fixed SQL text (never built from user input).
    ResultPtr exec_sql(const char* sql, ExecStatusType want, bool sent = true) {
        ResultPtr r(PQexec(pg.get(), sql));
        check(r, want, sent);
        return r;
    }

    /// Runs SQL with text parameters.
    ResultPtr exec_params(const char* sql, const std::vector<std::string>& params, ExecStatusType want, bool sent = true) {
        std::vector<const char*> vals;
        for (const auto& p : params) vals.push_back(p.c_str());
        ResultPtr r(PQexecParams(pg.get(), sql, static_cast<int>(vals.size()), nullptr, vals.data(), nullptr, nullptr, 0));
        check(r, want, sent);
        return r;
    }

    /// The identifier quoted for SQL text (PQescapeIdentifier).
    std::string quote_ident(const std::string& ident) const {
        char* q = PQescapeIdentifier(pg.get(), ident.c_str(), ident.size());
        if (!q) throw ConnectionLost("could not quote an identifier: " + clean_message(PQerrorMessage(pg.get())), false);
        std::string out(q);
        PQfreemem(q);
        return out;
    }
};

/// The schema of the installed fastpgcache extension, if any.
inline std::optional<std::string> extension_schema(Conn& c, bool sent = true) {
    auto r = c.exec_sql(
        "SELECT n.nspname FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace "
        "WHERE e.extname = 'fastpgcache'",
        PGRES_TUPLES_OK, sent);
    if (PQntuples(r.get()) != 1) return std::nullopt;
    return std::string(PQgetvalue(r.get(), 0, 0));
}

inline std::shared_ptr<const Statements> StatementSource::get(Conn& c) {
    {
        std::lock_guard<std::mutex> lk(mu_);
        if (current_) return current_;
    }
    // First use: no statement of the operation has been sent yet.
    std::string schema = extension_schema(c, false).value_or("public");
    std::string quoted = c.quote_ident(schema);
    std::lock_guard<std::mutex> lk(mu_);
    if (!current_) current_ = make_statements(schema, quoted, ++generation_);
    return current_;
}

inline void StatementSource::set_schema(Conn& c, const std::string& schema) {
    std::string quoted = c.quote_ident(schema);
    std::lock_guard<std::mutex> lk(mu_);
    if (current_ && current_->schema == schema) return;
    current_ = make_statements(schema, quoted, ++generation_);
}

inline void ignore_notice(void*, const char*) {}

/// Text-format array literal for a text[] parameter (the elements are data,
/// quoted and escaped per the array input syntax, and sent as a parameter).
inline std::string text_array_literal(const std::vector<std::string>& items) {
    std::string out = "{";
    for (std::size_t i = 0; i < items.size(); ++i) {
        if (i) out += ',';
        out += '"';
        for (char c : items[i]) {
            if (c == '"' || c == '\\') out += '\\';
            out += c;
        }
        out += '"';
    }
    out += '}';
    return out;
}

// -- the cache operations, over one connection ------------------------------

/// Keys and text values travel as text, which cannot hold a NUL byte: refuse
/// them (22021, as the server does for bad text) instead of truncating.
inline void check_text(std::string_view s, const char* what) {
    if (s.find('\0') != std::string_view::npos)
        throw Error(std::string("cache ") + what +
                        " contains a NUL byte, which text cannot hold; use set_bytes()/get_bytes() for binary data",
                    "22021");
}

inline bool op_set(Conn& c, Stmt s, std::string_view key, std::string_view value, const Ttl& ttl, bool binary_value) {
    check_text(key, "key");
    if (!binary_value) check_text(value, "value");
    std::string k(key), v(value), t = ttl.has_value() ? std::to_string(ttl.seconds()) : std::string();
    const char* vals[3] = {k.c_str(), v.data(), ttl.has_value() ? t.c_str() : nullptr};
    int lens[3] = {0, static_cast<int>(v.size()), 0};
    int fmts[3] = {0, binary_value ? 1 : 0, 0};
    if (v.size() > static_cast<std::size_t>(std::numeric_limits<int>::max())) throw Error("value too large", "54000");
    auto r = c.exec(s, vals, lens, fmts, 0);
    return PQntuples(r.get()) == 1 && !PQgetisnull(r.get(), 0, 0) && PQgetvalue(r.get(), 0, 0)[0] == 't';
}

inline std::optional<std::string> op_get(Conn& c, Stmt s, std::string_view key, int result_format) {
    check_text(key, "key");
    std::string k(key);
    const char* vals[1] = {k.c_str()};
    auto r = c.exec(s, vals, nullptr, nullptr, result_format);
    if (PQntuples(r.get()) != 1 || PQgetisnull(r.get(), 0, 0)) return std::nullopt;
    return std::string(PQgetvalue(r.get(), 0, 0), static_cast<std::size_t>(PQgetlength(r.get(), 0, 0)));
}

inline std::string scalar(const ResultPtr& r) {
    if (PQntuples(r.get()) != 1 || PQgetisnull(r.get(), 0, 0)) return {};
    return PQgetvalue(r.get(), 0, 0);
}

inline bool op_bool(Conn& c, Stmt s, std::string_view key) {
    check_text(key, "key");
    std::string k(key);
    const char* vals[1] = {k.c_str()};
    return scalar(c.exec(s, vals, nullptr, nullptr, 0)) == "t";
}

inline long long op_int(Conn& c, Stmt s, std::string_view key) {
    check_text(key, "key");
    std::string k(key);
    const char* vals[1] = {k.c_str()};
    std::string v = scalar(c.exec(s, vals, nullptr, nullptr, 0));
    return v.empty() ? 0 : std::stoll(v);
}

inline int op_cleanup(Conn& c) {
    std::string v = scalar(c.exec(kCleanup, nullptr, nullptr, nullptr, 0));
    return v.empty() ? 0 : std::stoi(v);
}

inline std::optional<nlohmann::json> op_get_json(Conn& c, std::string_view key) {
    auto s = op_get(c, kGetJson, key, 0);
    if (!s) return std::nullopt;
    return nlohmann::json::parse(*s);
}

inline bool is_undefined_function(const Error& e) { return e.sqlstate() == "42883"; }

inline std::vector<std::optional<std::string>> op_mget(Conn& c, const std::vector<std::string>& keys, bool& supported) {
    std::vector<std::optional<std::string>> out;
    if (keys.empty()) return out;
    for (const auto& k : keys) check_text(k, "key");
    if (supported) {
        std::string arr = text_array_literal(keys);
        const char* vals[1] = {arr.c_str()};
        try {
            auto r = c.exec(kMGet, vals, nullptr, nullptr, 0);
            int n = PQntuples(r.get());
            out.reserve(static_cast<std::size_t>(n));
            for (int i = 0; i < n; ++i) {
                if (PQgetisnull(r.get(), i, 0)) out.emplace_back(std::nullopt);
                else out.emplace_back(std::string(PQgetvalue(r.get(), i, 0), static_cast<std::size_t>(PQgetlength(r.get(), i, 0))));
            }
            return out;
        } catch (const ConnectionLost&) {
            throw;
        } catch (const Error& e) {
            if (!is_undefined_function(e)) throw;
            supported = false;  // older server side without cache_mget
        }
    }
    for (const auto& k : keys) out.push_back(op_get(c, kGet, k, 0));
    return out;
}

inline int op_mset(Conn& c, const std::vector<std::pair<std::string, std::string>>& items, const Ttl& ttl, bool& supported) {
    if (items.empty()) return 0;
    for (const auto& kv : items) {
        check_text(kv.first, "key");
        check_text(kv.second, "value");
    }
    if (supported) {
        std::vector<std::string> ks, vs;
        ks.reserve(items.size());
        vs.reserve(items.size());
        for (const auto& kv : items) {
            ks.push_back(kv.first);
            vs.push_back(kv.second);
        }
        std::string ka = text_array_literal(ks), va = text_array_literal(vs);
        std::string t = ttl.has_value() ? std::to_string(ttl.seconds()) : std::string();
        const char* vals[3] = {ka.c_str(), va.c_str(), ttl.has_value() ? t.c_str() : nullptr};
        try {
            std::string v = scalar(c.exec(kMSet, vals, nullptr, nullptr, 0));
            return v.empty() ? 0 : std::stoi(v);
        } catch (const ConnectionLost&) {
            throw;
        } catch (const Error& e) {
            if (!is_undefined_function(e)) throw;
            supported = false;
        }
    }
    // Without cache_mset: one transaction of single sets.
    c.exec_sql("BEGIN", PGRES_COMMAND_OK);
    try {
        int n = 0;
        for (const auto& kv : items) n += op_set(c, kSetText, kv.first, kv.second, ttl, false) ? 1 : 0;
        c.exec_sql("COMMIT", PGRES_COMMAND_OK);
        return n;
    } catch (...) {
        if (!c.bad()) PQclear(PQexec(c.get(), "ROLLBACK"));
        throw;
    }
}

inline std::string fallback_sql(const std::string& path_option) {
    std::string path = path_option.empty() ? getenv_str("FASTPGCACHE_FALLBACK_SQL") : path_option;
#ifdef FASTPGCACHE_HAVE_EMBEDDED_FALLBACK
    if (path.empty()) return std::string(kFallbackSql);
#endif
    if (path.empty())
        throw Error("the fastpgcache extension is not available and the SQL fallback is not compiled in: "
                    "set Options::fallback_sql_path or FASTPGCACHE_FALLBACK_SQL to fallback/fastpgcache_fallback.sql");
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error("cannot read the fastpgcache SQL fallback file " + path);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

/// A system CA bundle for sslrootcert (PostgreSQL 15's libpq has no
/// sslrootcert=system): Debian/Ubuntu, RHEL/Fedora, SUSE, Alpine/macOS.
inline std::string system_ca_bundle() {
    for (const char* p : {"/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt",
                          "/etc/ssl/ca-bundle.pem", "/etc/ssl/cert.pem"})
        if (::access(p, R_OK) == 0) return p;
    return {};
}

/// The libpq keyword/value pairs a pool connects with (without the
/// password).  Throws ConfigError for a connection string libpq cannot parse;
/// libpq's own message is never shown, since it can quote the password.
inline std::vector<std::pair<std::string, std::string>> connection_params(const Options& opts) {
    std::vector<std::pair<std::string, std::string>> params;
    std::string host_for_ssl;
    bool sslmode_given = false, sslrootcert_given = false;
    if (!opts.connection_string.empty()) {
        char* err = nullptr;
        PQconninfoOption* parsed = PQconninfoParse(opts.connection_string.c_str(), &err);
        if (!parsed) {
            if (err) PQfreemem(err);  // may quote any part of the string, the password included
            throw ConfigError("invalid connection string: libpq could not parse it (its message is not shown because it can contain the password)");
        }
        bool has_timeout = false, has_app = false;
        for (PQconninfoOption* o = parsed; o->keyword; ++o) {
            if (!o->val) continue;
            std::string kw = o->keyword;
            if (kw == "host" || kw == "hostaddr") host_for_ssl += std::string(o->val) + ",";
            if (kw == "sslmode") sslmode_given = true;
            if (kw == "sslrootcert") sslrootcert_given = true;
            if (kw == "connect_timeout") has_timeout = true;
            if (kw == "application_name") has_app = true;
        }
        PQconninfoFree(parsed);
        params.emplace_back("dbname", opts.connection_string);
        if (!has_timeout && opts.connect_timeout.count() > 0)
            params.emplace_back("connect_timeout", std::to_string(opts.connect_timeout.count()));
        if (!has_app && !opts.application_name.empty()) params.emplace_back("application_name", opts.application_name);
    } else {
        params.emplace_back("host", opts.host);
        params.emplace_back("port", std::to_string(opts.port));
        params.emplace_back("dbname", opts.database);
        params.emplace_back("user", opts.user);
        host_for_ssl = opts.host;
        if (opts.connect_timeout.count() > 0)
            params.emplace_back("connect_timeout", std::to_string(opts.connect_timeout.count()));
        if (!opts.application_name.empty()) params.emplace_back("application_name", opts.application_name);
    }
    if (host_for_ssl.empty()) host_for_ssl = getenv_str("PGHOST");
    if (!opts.sslrootcert.empty()) {
        params.emplace_back("sslrootcert", opts.sslrootcert);
        sslrootcert_given = true;
    }
    if (!getenv_str("PGSSLROOTCERT").empty()) sslrootcert_given = true;
    if (!opts.sslmode.empty()) {
        params.emplace_back("sslmode", opts.sslmode);
    } else if (!sslmode_given && getenv_str("PGSSLMODE").empty() && is_databricks_host(host_for_ssl)) {
        // The password is a workspace-issued token: verify the server's
        // certificate and name, so a man in the middle cannot collect it.
        params.emplace_back("sslmode", "verify-full");
        if (!sslrootcert_given) {
            std::string bundle = system_ca_bundle();
            if (!bundle.empty()) params.emplace_back("sslrootcert", bundle);
        }
    }
    if (opts.statement_timeout.count() > 0)
        params.emplace_back("options", "-c statement_timeout=" + std::to_string(opts.statement_timeout.count()));
    return params;
}

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

// ---------------------------------------------------------------------------
// FastPgCache
// ---------------------------------------------------------------------------

class FastPgCache {
public:
    explicit FastPgCache(Options options) : pool_(std::make_shared<detail::Pool>(std::move(options))) {
        pool_->warm_up();
        if (pool_->options().auto_setup) setup();
    }

    /// From a libpq connection string; other settings from `options`.
    explicit FastPgCache(const std::string& connection_string, Options options = {})
        : FastPgCache(with_connection_string(std::move(options), connection_string)) {}
    explicit FastPgCache(const char* connection_string, Options options = {})
        : FastPgCache(std::string(connection_string), std::move(options)) {}

    ~FastPgCache() { close(); }

    FastPgCache(const FastPgCache&) = delete;
    FastPgCache& operator=(const FastPgCache&) = delete;

    /// Installs the cache functions: CREATE EXTENSION IF NOT EXISTS
    /// fastpgcache, or the pure-SQL fallback where the extension is not
    /// available (or cannot be created by this role).  Idempotent.
    Backend setup() {
        Backend b = with_conn([this](detail::Conn& c) { return do_setup(c); }, false);
        backend_.store(b);
        return b;
    }

    /// What setup() found or installed (Unknown before setup()).
    Backend backend() const { return backend_.load(); }

    bool set(std::string_view key, const std::string& value, Ttl ttl = {}) {
        return set_impl(detail::kSetText, key, value, ttl, false);
    }
    bool set(std::string_view key, const char* value, Ttl ttl = {}) {
        return set_impl(detail::kSetText, key, value, ttl, false);
    }
    bool set(std::string_view key, std::string_view value, Ttl ttl = {}) {
        return set_impl(detail::kSetText, key, value, ttl, false);
    }
    /// Stores the JSON document (as jsonb); read it back with get_json().
    bool set(std::string_view key, const nlohmann::json& value, Ttl ttl = {}) {
        return set_impl(detail::kSetJson, key, value.dump(), ttl, false);
    }
    /// Stores raw bytes (bytea); read them back with get_bytes().
    bool set_bytes(std::string_view key, std::string_view bytes, Ttl ttl = {}) {
        return set_impl(detail::kSetBytes, key, bytes, ttl, true);
    }

    /// The value as text; std::nullopt when missing or expired.
    std::optional<std::string> get(std::string_view key) {
        return with_conn([&](detail::Conn& c) { return detail::op_get(c, detail::kGet, key, 0); });
    }
    /// The value parsed as JSON; std::nullopt when missing or expired.  A
    /// stored JSON null is returned as a json null, not std::nullopt.
    std::optional<nlohmann::json> get_json(std::string_view key) {
        return with_conn([&](detail::Conn& c) { return detail::op_get_json(c, key); });
    }
    std::optional<std::string> get_bytes(std::string_view key) {
        return with_conn([&](detail::Conn& c) { return detail::op_get(c, detail::kGetBytes, key, 1); });
    }
    /// Deletes the key; true if a live entry was deleted.
    bool del(std::string_view key) {
        return with_conn([&](detail::Conn& c) { return detail::op_bool(c, detail::kDelete, key); }, false);
    }
    bool exists(std::string_view key) {
        return with_conn([&](detail::Conn& c) { return detail::op_bool(c, detail::kExists, key); });
    }
    /// Seconds left (rounded up), -1 without expiry, -2 when missing.
    long long ttl(std::string_view key) {
        return with_conn([&](detail::Conn& c) { return detail::op_int(c, detail::kTtl, key); });
    }
    /// Deletes every expired entry; returns how many.
    int cleanup() {
        return with_conn([&](detail::Conn& c) { return detail::op_cleanup(c); }, false);
    }
    /// One result per key, in order (uses cache_mget when the server has it).
    std::vector<std::optional<std::string>> mget(const std::vector<std::string>& keys) {
        return with_conn([&](detail::Conn& c) {
            bool sup = pool_->mget_supported.load();
            auto r = detail::op_mget(c, keys, sup);
            if (!sup) pool_->mget_supported.store(false);
            return r;
        });
    }
    /// Sets all pairs atomically (cache_mset); returns the number set.
    int mset(const std::vector<std::pair<std::string, std::string>>& items, Ttl ttl = {}) {
        return with_conn([&](detail::Conn& c) {
            bool sup = pool_->mset_supported.load();
            int n = detail::op_mset(c, items, ttl, sup);
            if (!sup) pool_->mset_supported.store(false);
            return n;
        });
    }

    /// Leases one connection (e.g. for a transaction mixing cache calls and
    /// application SQL).
    Session session() { return Session(pool_); }

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
            if (PQstatus(s.raw()) == CONNECTION_OK) PQclear(PQexec(s.raw(), "ROLLBACK"));
            throw;
        }
    }

    /// Closes idle connections now and the others when they are returned.
    void close() {
        if (pool_) pool_->close();
    }

    PoolStats pool_stats() const { return pool_->stats(); }

private:
    static Options with_connection_string(Options o, const std::string& cs) {
        o.connection_string = cs;
        return o;
    }

    bool set_impl(detail::Stmt s, std::string_view key, std::string_view value, const Ttl& ttl, bool binary) {
        return with_conn([&](detail::Conn& c) { return detail::op_set(c, s, key, value, ttl, binary); });
    }

    // Runs fn on a pooled connection.  A connection that broke is discarded
    // (connections found dead when checked out are replaced before use).  The
    // operation is retried once on another connection when it cannot have
    // run (the connection broke before its statement was sent), or when it
    // is idempotent: reads, set and mset leave the same state when run twice;
    // del, cleanup and setup are not retried once sent (del's "was it
    // there?" answer would be wrong), the ConnectionError reaches the caller.
    template <class F>
    auto with_conn(F&& fn, bool idempotent = true) -> decltype(fn(std::declval<detail::Conn&>())) {
        for (int attempt = 0;; ++attempt) {
            detail::Lease lease(pool_);
            try {
                return fn(*lease);
            } catch (const detail::ConnectionLost& e) {
                if (attempt >= 1 || (e.sent() && !idempotent)) throw ConnectionError(e.what(), e.sqlstate());
            }
        }
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
    Backend do_setup(detail::Conn& c) {
        const auto& o = pool_->options();
        if (o.use_extension) {
            if (auto schema = detail::extension_schema(c)) {
                pool_->statements().set_schema(c, *schema);
                return Backend::Extension;
            }
            if (!fallback_installed(c)) {
                try {
                    c.exec_sql("CREATE EXTENSION IF NOT EXISTS fastpgcache", PGRES_COMMAND_OK);
                    pool_->statements().set_schema(c, detail::extension_schema(c).value_or("public"));
                    return Backend::Extension;
                } catch (const detail::ConnectionLost&) {
                    throw;
                } catch (const Error& e) {
                    if (!extension_unavailable(e)) throw;
                }
            }
        }
        install_fallback(c, o.fallback_sql_path);
        pool_->statements().set_schema(c, "public");
        return Backend::Fallback;
    }

    // The fallback counts as installed only if public.cache_entries is a
    // plain table carrying the fallback's comment, owned by the current user
    // or a superuser, and every public.cache_* function of the API has the same owner:
    // a table pre-created by another role (where public is writable) is
    // never trusted because of a COMMENT its owner can set.
    static bool fallback_installed(detail::Conn& c) {
        auto r = c.exec_sql(
            "SELECT pg_catalog.obj_description(c.oid, 'pg_class') LIKE 'fastpgcache fallback%' "
            "   AND c.relkind = 'r' "
            "   AND (c.relowner = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user) "
            "        OR (SELECT rolsuper FROM pg_catalog.pg_roles WHERE oid = c.relowner)) "
            "   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_proc p WHERE p.pronamespace = c.relnamespace "
            "                     AND p.proname IN ('cache_set', 'cache_get', 'cache_get_json', 'cache_get_bytes', "
            "                     'cache_delete', 'cache_exists', 'cache_ttl', 'cache_cleanup', 'cache_mget', 'cache_mset') "
            "                     AND p.proowner <> c.relowner) "
            "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relname = 'cache_entries'",
            PGRES_TUPLES_OK);
        return PQntuples(r.get()) == 1 && detail::scalar(r) == "t";
    }

    static void install_fallback(detail::Conn& c, const std::string& path) {
        const std::string sql = detail::fallback_sql(path);
        detail::ResultPtr r(PQexec(c.get(), sql.c_str()));
        try {
            c.check(r, PGRES_COMMAND_OK);
        } catch (const detail::ConnectionLost&) {
            throw;
        } catch (const Error& e) {
            if (!c.bad() && PQtransactionStatus(c.get()) != PQTRANS_IDLE) PQclear(PQexec(c.get(), "ROLLBACK"));
            throw Error("installing the fastpgcache SQL fallback failed: " + std::string(e.what()), e.sqlstate());
        }
    }

    std::shared_ptr<detail::Pool> pool_;
    std::atomic<Backend> backend_{Backend::Unknown};
};

}  // namespace fastpgcache

// fastpgcache/client/databricks.hpp - Databricks Lakebase credentials (needs libcurl)
// Part of the C++ client; include <fastpgcache/client.hpp> (which includes
// this file when <curl/curl.h> is available and FASTPGCACHE_NO_CURL is not
// defined).  Link with -lcurl.
#pragma once

#include <fastpgcache/client/errors.hpp>
#include <fastpgcache/client/token_provider.hpp>
#include <fastpgcache/client/util.hpp>

#include <curl/curl.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace fastpgcache {

/// Log levels for DatabricksTokenProvider's reporter.
enum class LogLevel { Info, Warning, Error };

/// Configuration of DatabricksTokenProvider, resolved in the Databricks
/// SDKs' unified order: the fields set here, then the environment
/// (DATABRICKS_HOST, DATABRICKS_TOKEN, DATABRICKS_CLIENT_ID,
/// DATABRICKS_CLIENT_SECRET, DATABRICKS_AUTH_TYPE, DATABRICKS_CLI_PATH,
/// DATABRICKS_CONFIG_PROFILE, DATABRICKS_CONFIG_FILE), then the profile in
/// ~/.databrickscfg (read when a profile is named, or when no credential is
/// set so far).  The workspace login is, unless auth_type says otherwise: a
/// personal access token ("pat"), OAuth machine-to-machine with a service
/// principal ("oauth-m2m"), or the Databricks CLI ("databricks-cli": runs
/// `databricks auth token`, for developers after `databricks auth login`).
/// More than one of the first two configured without auth_type is a
/// ConfigError, as in the SDKs.
///
/// The database: exactly one of `endpoint` (Lakebase Autoscaling,
/// POST /api/2.0/postgres/credentials) and `instance_names` (Lakebase
/// Provisioned, POST /api/2.0/database/credentials).
struct DatabricksConfig {
    /// Workspace URL.  "https://" is prepended when no scheme is given;
    /// "http://" is accepted only for a loopback address (tests).
    std::string host;
    std::string token;          ///< personal access token (PAT auth)
    std::string client_id;      ///< service principal (OAuth M2M auth)
    std::string client_secret;  ///< service principal secret
    std::string profile;        ///< ~/.databrickscfg section (default "DEFAULT")
    std::string config_file;    ///< default $DATABRICKS_CONFIG_FILE or ~/.databrickscfg
    /// "pat", "oauth-m2m" or "databricks-cli"; empty: the first that is configured.
    std::string auth_type;
    /// The Databricks CLI for auth_type databricks-cli (default: "databricks" on PATH).
    std::string databricks_cli_path;
    /// Lakebase Autoscaling: the endpoint's resource name,
    /// "projects/{project}/branches/{branch}/endpoints/{endpoint}".
    std::string endpoint;
    /// Lakebase Autoscaling: the credential's requested lifetime (0: the
    /// service's default).
    std::chrono::seconds credential_ttl{0};
    /// Lakebase Provisioned: the database instances the credential is for.
    std::vector<std::string> instance_names;
    /// Refresh at least this often, and in any case `refresh_margin` before
    /// the credential expires.
    std::chrono::seconds refresh_interval{3600};
    std::chrono::seconds refresh_margin{300};
    /// Refresh in a background thread so connection opens never wait for HTTP.
    bool auto_refresh = true;
    /// Per HTTP request (and per CLI run); also bounded by the caller's deadline.
    std::chrono::milliseconds http_timeout{15000};
    /// Attempts per refresh, with exponential backoff starting at retry_backoff.
    int max_attempts = 3;
    std::chrono::milliseconds retry_backoff{250};
    /// Receives failures and refreshes (never a token).  Default: stderr for
    /// warnings and errors.  Set to an empty-bodied function to silence it.
    /// It may call the provider's accessors, get_token() and refresh():
    /// called from inside a refresh, those return what is there now instead
    /// of waiting for the refresh they are part of.
    std::function<void(LogLevel, const std::string&)> logger;
};

/// Database credentials for Databricks Lakebase PostgreSQL (Autoscaling or
/// Provisioned).
///
/// get_token() returns the current credential without any HTTP while it is
/// fresh; one thread refreshes (no lock held during HTTP) while the others
/// keep using the current credential; a credential told rejected is dropped
/// and the next get_token() fetches a new one.  Every wait is bounded by the
/// caller's deadline (get_token(deadline)); the destructor aborts HTTP
/// requests and CLI runs in progress.
class DatabricksTokenProvider : public TokenProvider {
public:
    enum class AuthType { Pat, OAuthM2M, DatabricksCli };
    enum class Api { Autoscaling, Provisioned };

    explicit DatabricksTokenProvider(DatabricksConfig config) : cfg_(std::move(config)) {
        resolve_config();
        static std::once_flag curl_once;
        std::call_once(curl_once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
        if (cfg_.auto_refresh) worker_ = std::thread([this] { background_loop(); });
    }

    /// The Python library's signature: instance names (Provisioned), refresh
    /// interval, auto refresh; workspace from the environment / ~/.databrickscfg.
    DatabricksTokenProvider(std::vector<std::string> instance_names, std::chrono::seconds refresh_interval = std::chrono::seconds(3600),
                            bool auto_refresh = true)
        : DatabricksTokenProvider(make_config(std::move(instance_names), refresh_interval, auto_refresh)) {}

    ~DatabricksTokenProvider() override {
        {
            std::lock_guard<std::mutex> lk(mu_);
            stopping_ = true;
            stopping_flag_ = true;  // aborts HTTP transfers and CLI runs
        }
        cv_.notify_all();
        if (worker_.joinable()) worker_.join();
        // Callers still inside get_token() on other threads are the
        // application's error (destroying an object in use).
    }

    DatabricksTokenProvider(const DatabricksTokenProvider&) = delete;
    DatabricksTokenProvider& operator=(const DatabricksTokenProvider&) = delete;

    /// The current credential, fetching one if needed, waiting at most
    /// about max_attempts HTTP timeouts.
    std::string get_token() override {
        return get_token(Clock::now() + cfg_.http_timeout * (cfg_.max_attempts + 1));
    }

    /// The current credential, fetching one if needed; returns or throws
    /// TokenError by `deadline`.
    std::string get_token(Clock::time_point deadline) override {
        std::unique_lock<std::mutex> lk(mu_);
        if (refresher_ == std::this_thread::get_id()) {
            // From the logger, inside a refresh: never wait for ourselves.
            if (token_usable(std::chrono::system_clock::now())) return token_;
            throw TokenError("get_token() was called during a credential refresh on the same thread (from the logger?) "
                             "and there is no usable credential yet");
        }
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
                           Clock::now() < next_fetch_ok_))
                return token_;
            if (refreshing_) {
                // No usable token: wait for the refresh in flight, by the deadline.
                if (cv_.wait_until(lk, deadline) == std::cv_status::timeout && Clock::now() >= deadline) {
                    if (token_usable(std::chrono::system_clock::now())) return token_;
                    throw TokenError("no database credential within the deadline: a refresh from the Databricks workspace " +
                                     cfg_.host + " is still in progress");
                }
                continue;
            }
            if (stopping_) throw TokenError("the Databricks token provider is shutting down");
            if (!usable && last_failure_ && Clock::now() - *last_failure_ < std::chrono::seconds(1)) {
                throw TokenError(failure_message());
            }
            if (refreshed || Clock::now() < next_fetch_ok_) throw TokenError(unusable_message());
            refreshed = true;
            if (!refresh_locked(lk, deadline)) {
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

    /// Fetches a new credential now (blocking, at most about max_attempts
    /// HTTP timeouts).  Returns false on failure, and when called from the
    /// logger during a refresh.
    bool refresh() {
        std::unique_lock<std::mutex> lk(mu_);
        if (refresher_ == std::this_thread::get_id()) return false;
        cv_.wait(lk, [this] { return !refreshing_ || stopping_; });
        if (stopping_) return false;
        return refresh_locked(lk, Clock::now() + cfg_.http_timeout * (cfg_.max_attempts + 1));
    }

    AuthType auth_type() const { return auth_type_; }
    Api api() const { return cfg_.endpoint.empty() ? Api::Provisioned : Api::Autoscaling; }
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

    // -- configuration -----------------------------------------------------------

    void resolve_config() {
        auto fill = [](std::string& field, const std::string& value) {
            if (field.empty()) field = value;
        };
        fill(cfg_.host, detail::getenv_str("DATABRICKS_HOST"));
        fill(cfg_.token, detail::getenv_str("DATABRICKS_TOKEN"));
        fill(cfg_.client_id, detail::getenv_str("DATABRICKS_CLIENT_ID"));
        fill(cfg_.client_secret, detail::getenv_str("DATABRICKS_CLIENT_SECRET"));
        fill(cfg_.auth_type, detail::getenv_str("DATABRICKS_AUTH_TYPE"));
        fill(cfg_.databricks_cli_path, detail::getenv_str("DATABRICKS_CLI_PATH"));
        fill(cfg_.profile, detail::getenv_str("DATABRICKS_CONFIG_PROFILE"));
        profile_explicit_ = !cfg_.profile.empty();
        fill(cfg_.profile, "DEFAULT");
        fill(cfg_.config_file, detail::getenv_str("DATABRICKS_CONFIG_FILE"));
        if (cfg_.config_file.empty()) {
            std::string home = detail::getenv_str("HOME");
            if (!home.empty()) cfg_.config_file = home + "/.databrickscfg";
        }
        // As the SDKs: the profile is read when one is named, or when no
        // credential has been configured explicitly or in the environment.
        const bool any_auth = !cfg_.token.empty() || !cfg_.client_id.empty() || !cfg_.client_secret.empty();
        if (profile_explicit_ || !any_auth) load_profile(profile_explicit_);

        if (cfg_.host.empty())
            throw ConfigError("Databricks workspace host is not configured (set DatabricksConfig::host, DATABRICKS_HOST or a ~/.databrickscfg profile)");
        if (cfg_.host.find("://") == std::string::npos) cfg_.host = "https://" + cfg_.host;
        while (!cfg_.host.empty() && cfg_.host.back() == '/') cfg_.host.pop_back();
        {
            auto u = detail::parse_url_authority(cfg_.host);
            if (!u) throw ConfigError("invalid Databricks workspace host: " + cfg_.host);
            if (!detail::secure_or_loopback(*u))
                throw ConfigError("the Databricks workspace host must be an https:// URL (http:// only for a loopback address): " +
                                  cfg_.host);
        }
        const bool pat = !cfg_.token.empty();
        const bool m2m = !cfg_.client_id.empty() || !cfg_.client_secret.empty();
        if (cfg_.auth_type.empty()) {
            if (pat && m2m)
                throw ConfigError("more than one authorization method configured: oauth and pat (set auth_type to choose one)");
            if (pat) cfg_.auth_type = "pat";
            else if (m2m) cfg_.auth_type = "oauth-m2m";
            else if (!cli_path().empty()) cfg_.auth_type = "databricks-cli";
            else
                throw ConfigError("no Databricks credentials configured: need a personal access token (token / DATABRICKS_TOKEN), "
                                  "OAuth client_id and client_secret, or the Databricks CLI (databricks auth login) on PATH");
        }
        if (cfg_.auth_type == "pat") {
            if (!pat) throw ConfigError("auth_type pat needs a personal access token (token / DATABRICKS_TOKEN)");
            auth_type_ = AuthType::Pat;
        } else if (cfg_.auth_type == "oauth-m2m") {
            if (cfg_.client_id.empty() || cfg_.client_secret.empty())
                throw ConfigError("auth_type oauth-m2m needs client_id and client_secret");
            auth_type_ = AuthType::OAuthM2M;
        } else if (cfg_.auth_type == "databricks-cli") {
            if (cli_path().empty())
                throw ConfigError("auth_type databricks-cli: the Databricks CLI was not found (install it, or set "
                                  "databricks_cli_path / DATABRICKS_CLI_PATH)");
            auth_type_ = AuthType::DatabricksCli;
        } else {
            throw ConfigError("unsupported Databricks auth_type \"" + cfg_.auth_type + "\" (pat, oauth-m2m or databricks-cli)");
        }
        if (cfg_.endpoint.empty() == cfg_.instance_names.empty())
            throw ConfigError(cfg_.endpoint.empty()
                                  ? "DatabricksTokenProvider needs the Lakebase endpoint (Autoscaling: projects/P/branches/B/endpoints/E) or instance names (Provisioned)"
                                  : "DatabricksTokenProvider: set either endpoint (Autoscaling) or instance_names (Provisioned), not both");
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
        std::string host, token, cid, csecret, auth_type, cli;
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
            else if (k == "auth_type") auth_type = v;
            else if (k == "databricks_cli_path") cli = v;
        }
        if (!found) {
            if (must_exist) throw ConfigError("profile [" + cfg_.profile + "] not found in " + cfg_.config_file);
            return;
        }
        // Each attribute: the profile fills only what is not set yet.
        if (cfg_.host.empty()) cfg_.host = host;
        if (cfg_.token.empty()) cfg_.token = token;
        if (cfg_.client_id.empty()) cfg_.client_id = cid;
        if (cfg_.client_secret.empty()) cfg_.client_secret = csecret;
        if (cfg_.auth_type.empty()) cfg_.auth_type = auth_type;
        if (cfg_.databricks_cli_path.empty()) cfg_.databricks_cli_path = cli;
    }

    // The Databricks CLI to run: databricks_cli_path, else "databricks" on PATH.
    std::string cli_path() const {
        if (!cfg_.databricks_cli_path.empty())
            return ::access(cfg_.databricks_cli_path.c_str(), X_OK) == 0 ? cfg_.databricks_cli_path : std::string();
        const std::string path = detail::getenv_str("PATH");
        std::size_t start = 0;
        while (start <= path.size()) {
            std::size_t colon = path.find(':', start);
            std::string dir = path.substr(start, colon == std::string::npos ? std::string::npos : colon - start);
            if (!dir.empty()) {
                std::string candidate = dir + "/databricks";
                if (::access(candidate.c_str(), X_OK) == 0) return candidate;
            }
            if (colon == std::string::npos) break;
            start = colon + 1;
        }
        return {};
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
        const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next_fetch_ok_ - Clock::now());
        return "no usable database credential from the Databricks workspace " + cfg_.host +
               ": the last one was rejected by the server or had expired when it was issued (check the local clock)" +
               (wait.count() > 0 ? "; next refresh allowed in " + std::to_string(wait.count()) + " ms" : std::string());
    }

    std::string failure_message() const {
        return "could not obtain a database credential from the Databricks workspace " + cfg_.host + ": " +
               (last_error_.empty() ? std::string("unknown error") : last_error_);
    }

    // A credential whose expiry is already past when it arrives (by the
    // local clock: the clock is probably wrong, since the workspace just
    // issued it) is used for this long, and the server decides.  Any
    // credential with a real future expiry is never used past it.
    static constexpr std::chrono::seconds kPastExpiryGrace{30};
    // Credentials that live less than 2 s (or expired on arrival) space the
    // following fetches 1 s, 2 s, 4 s ... up to 30 s apart: never a spin.
    static constexpr std::chrono::seconds kMinFetchSpacing{1};
    static constexpr std::chrono::seconds kMaxFetchSpacing{30};

    // Called with lk held and refreshing_ false; releases lk during HTTP and
    // while reporting; returns with lk held.  Gives up at `deadline`.
    // Never throws.
    bool refresh_locked(std::unique_lock<std::mutex>& lk, Clock::time_point deadline) noexcept {
        refreshing_ = true;
        refresher_ = std::this_thread::get_id();
        lk.unlock();
        std::optional<Credential> cred;
        std::string error;
        try {
            std::chrono::milliseconds backoff = cfg_.retry_backoff;
            for (int attempt = 1; attempt <= cfg_.max_attempts; ++attempt) {
                if (Clock::now() >= deadline) {
                    if (error.empty()) error = "the caller's deadline passed";
                    break;
                }
                try {
                    cred = fetch_credential(deadline);
                    break;
                } catch (const std::exception& e) {
                    error = e.what();
                    report(LogLevel::Warning, "credential refresh attempt " + std::to_string(attempt) + "/" +
                                                  std::to_string(cfg_.max_attempts) + " failed: " + error);
                }
                if (attempt < cfg_.max_attempts) {
                    std::unique_lock<std::mutex> wait_lk(mu_);
                    const auto until = std::min(Clock::now() + backoff, deadline);
                    if (cv_.wait_until(wait_lk, until, [this] { return stopping_; })) break;
                    backoff *= 2;
                }
            }
        } catch (...) {  // bad_alloc and the like
            cred.reset();
            error = "unexpected failure during the credential refresh";
        }
        std::vector<std::pair<LogLevel, std::string>> logs;
        lk.lock();
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
                next_fetch_ok_ = Clock::now() + fetch_spacing_;
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
                                      "the new database credential's expiry is " + std::to_string(-secs) +
                                          " s in the past by the local clock (is the clock wrong?); using it for at most " +
                                          std::to_string(kPastExpiryGrace.count()) + " s");
                logs.emplace_back(LogLevel::Info, "database credential refreshed (expires in " + std::to_string(secs) + " s)");
            } else {
                last_error_ = error.empty() ? "refresh aborted" : error;
                last_failure_ = Clock::now();
                logs.emplace_back(LogLevel::Error, failure_message());
            }
        } catch (...) {
        }
        if (!logs.empty()) {
            lk.unlock();
            for (const auto& l : logs) report(l.first, l.second);
            lk.lock();
        }
        refreshing_ = false;
        refresher_ = std::thread::id();
        cv_.notify_all();
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
                if (Clock::now() < next_fetch_ok_) {
                    cv_.wait_until(lk, next_fetch_ok_, [&] { return stopping_; });
                    continue;
                }
                if (refresh_locked(lk, Clock::now() + cfg_.http_timeout * (cfg_.max_attempts + 1))) {
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

    // -- HTTP ----------------------------------------------------------------------

    static std::size_t write_cb(char* data, std::size_t size, std::size_t nmemb, void* user) {
        auto* out = static_cast<std::string*>(user);
        const std::size_t n = size * nmemb;
        if (out->size() + n > (8u << 20)) return 0;  // refuse absurd bodies
        out->append(data, n);
        return n;
    }

    // Aborts the transfer when the provider is being destroyed.
    static int progress_cb(void* self, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
        return static_cast<const DatabricksTokenProvider*>(self)->stopping_flag_.load() ? 1 : 0;
    }

    // Milliseconds for the next blocking step: http_timeout, capped by the
    // deadline; throws when the deadline has passed.
    long step_timeout_ms(Clock::time_point deadline) const {
        if (stopping_flag_.load()) throw TokenError("the Databricks token provider is shutting down");
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        if (left <= 0) throw TokenError("the caller's deadline passed before the Databricks workspace answered");
        return static_cast<long>(std::min<long long>(left, cfg_.http_timeout.count()));
    }

    HttpResponse http(const std::string& method, const std::string& url, const std::vector<std::string>& headers,
                      const std::string& body, Clock::time_point deadline, const std::string& basic_user = {},
                      const std::string& basic_pass = {}) const {
        const long timeout_ms = step_timeout_ms(deadline);
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
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
        curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, &DatabricksTokenProvider::progress_cb);
        curl_easy_setopt(c, CURLOPT_XFERINFODATA, static_cast<const void*>(this));
#if LIBCURL_VERSION_NUM >= 0x075500
        curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#endif
        curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &DatabricksTokenProvider::write_cb);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &resp.body);
        curl_easy_setopt(c, CURLOPT_USERAGENT, "fastpgcache-cpp/1.1");
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
        if (rc == CURLE_ABORTED_BY_CALLBACK) throw TokenError(method + " " + url + " aborted: the token provider is shutting down");
        if (rc != CURLE_OK) {
            std::string msg = errbuf[0] ? errbuf : curl_easy_strerror(rc);
            throw TokenError(method + " " + url + " failed: " + msg);
        }
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp.status);
        return resp;
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

    static nlohmann::json parse_body(const std::string& body, const char* what) {
        try {
            return nlohmann::json::parse(body);
        } catch (const std::exception&) {
            throw TokenError(std::string(what) + " returned a body that is not JSON");
        }
    }

    // -- the Databricks CLI ------------------------------------------------------

    // Runs `databricks auth token --profile P` (a profile was named) or
    // `... --host H`, without a shell, and reads its JSON
    // {"access_token", "token_type", "expiry"}.  Killed at the deadline or
    // when the provider is destroyed.
    std::pair<std::string, std::optional<std::chrono::system_clock::time_point>> cli_token(Clock::time_point deadline) const {
        const std::string cli = cli_path();
        if (cli.empty()) throw TokenError("the Databricks CLI is no longer found");
        std::vector<std::string> args = {cli, "auth", "token"};
        if (profile_explicit_) {
            args.insert(args.end(), {"--profile", cfg_.profile});
        } else {
            args.insert(args.end(), {"--host", cfg_.host});
        }
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        // Close-on-exec everywhere (a CLI started by another thread must not
        // inherit these); dup2 gives the child plain copies on 1 and 2.
        int out[2], err[2];
        if (::pipe2(out, O_CLOEXEC) != 0) throw TokenError(std::string("pipe failed: ") + std::strerror(errno));
        if (::pipe2(err, O_CLOEXEC) != 0) {
            ::close(out[0]);
            ::close(out[1]);
            throw TokenError(std::string("pipe failed: ") + std::strerror(errno));
        }
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, out[1], 1);
        posix_spawn_file_actions_adddup2(&fa, err[1], 2);
        pid_t pid = -1;
        const int rc = ::posix_spawn(&pid, cli.c_str(), &fa, nullptr, argv.data(), environ);
        posix_spawn_file_actions_destroy(&fa);
        ::close(out[1]);
        ::close(err[1]);
        if (rc != 0) {
            ::close(out[0]);
            ::close(err[0]);
            throw TokenError("could not run the Databricks CLI " + cli + ": " + std::strerror(rc));
        }
        std::string sout, serr;
        bool killed = false;
        std::string why;
        pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
        int open_fds = 2;
        while (open_fds > 0) {
            if (stopping_flag_.load() || Clock::now() >= deadline) {
                why = stopping_flag_.load() ? "the token provider is shutting down" : "the deadline passed";
                ::kill(pid, SIGKILL);
                killed = true;
                break;
            }
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count() + 1;
            int n = ::poll(fds, 2, static_cast<int>(std::min<long long>(left, 100)));
            if (n < 0 && errno != EINTR) break;
            for (auto& p : fds) {
                if (p.fd < 0 || !(p.revents & (POLLIN | POLLHUP | POLLERR))) continue;
                char buf[4096];
                ssize_t got = ::read(p.fd, buf, sizeof buf);
                if (got > 0) {
                    std::string& dst = p.fd == out[0] ? sout : serr;
                    if (dst.size() < (1u << 20)) dst.append(buf, static_cast<std::size_t>(got));
                } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
                    ::close(p.fd);
                    p.fd = -1;
                    --open_fds;
                }
            }
        }
        for (auto& p : fds)
            if (p.fd >= 0) ::close(p.fd);
        int status = 0;
        while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
        if (killed) throw TokenError("databricks auth token did not finish: " + why);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            std::string first = serr.substr(0, serr.find('\n')).substr(0, 300);
            throw TokenError("databricks auth token failed (exit status " +
                             std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1) + ")" +
                             (first.empty() ? std::string() : ": " + first) +
                             "; run `databricks auth login --host " + cfg_.host + "`");
        }
        auto j = parse_body(sout, "databricks auth token");
        if (!j.is_object() || !j.contains("access_token") || !j["access_token"].is_string() ||
            j["access_token"].get<std::string>().empty())
            throw TokenError("databricks auth token printed no access_token");
        std::optional<std::chrono::system_clock::time_point> expiry;
        if (j.contains("expiry") && j["expiry"].is_string()) expiry = detail::parse_rfc3339(j["expiry"].get<std::string>());
        return {j["access_token"].get<std::string>(), expiry};
    }

    // -- workspace login and database credentials -----------------------------

    // Workspace bearer token: the PAT, an OAuth M2M access token, or the
    // CLI's token (both cached until shortly before they expire).
    std::string workspace_token(Clock::time_point deadline) {
        if (auth_type_ == AuthType::Pat) return cfg_.token;
        {
            std::lock_guard<std::mutex> lk(oauth_mu_);
            if (!access_token_.empty() && Clock::now() < access_expires_) return access_token_;
        }
        if (auth_type_ == AuthType::DatabricksCli) {
            auto [tok, expiry] = cli_token(std::min(deadline, Clock::now() + cfg_.http_timeout));
            auto life = expiry ? std::chrono::duration_cast<Clock::duration>(*expiry - std::chrono::system_clock::now())
                               : Clock::duration(std::chrono::minutes(10));
            std::lock_guard<std::mutex> lk(oauth_mu_);
            access_token_ = tok;
            access_expires_ = Clock::now() + std::max<Clock::duration>(life - std::chrono::seconds(60), life / 2);
            return access_token_;
        }
        std::string endpoint;
        try {
            auto r = http("GET", cfg_.host + "/oidc/.well-known/oauth-authorization-server", {"Accept: application/json"}, {}, deadline);
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
                      "grant_type=client_credentials&scope=all-apis", deadline, cfg_.client_id, cfg_.client_secret);
        if (r.status != 200) throw TokenError(describe_failure("OAuth token endpoint", r));
        auto j = parse_body(r.body, "OAuth token endpoint");
        if (!j.is_object() || !j.contains("access_token") || !j["access_token"].is_string())
            throw TokenError("OAuth token endpoint response has no access_token");
        long long expires_in = 3600;
        if (j.contains("expires_in") && j["expires_in"].is_number_integer()) expires_in = j["expires_in"].get<long long>();
        std::lock_guard<std::mutex> lk(oauth_mu_);
        access_token_ = j["access_token"].get<std::string>();
        access_expires_ = Clock::now() + std::chrono::seconds(std::max<long long>(expires_in - 60, expires_in / 2));
        return access_token_;
    }

    // Autoscaling: POST /api/2.0/postgres/credentials {"endpoint", ["ttl"]}
    //   -> {"token", "expire_time"}
    // Provisioned: POST /api/2.0/database/credentials {"request_id", "instance_names"}
    //   -> {"token", "expiration_time"}
    Credential fetch_credential(Clock::time_point deadline) {
        const std::string bearer = workspace_token(deadline);
        const bool autoscaling = !cfg_.endpoint.empty();
        nlohmann::json body;
        if (autoscaling) {
            body = {{"endpoint", cfg_.endpoint}};
            if (cfg_.credential_ttl.count() > 0) body["ttl"] = std::to_string(cfg_.credential_ttl.count()) + "s";
        } else {
            body = {{"request_id", detail::uuid4()}, {"instance_names", cfg_.instance_names}};
        }
        auto r = http("POST", cfg_.host + (autoscaling ? "/api/2.0/postgres/credentials" : "/api/2.0/database/credentials"),
                      {"Authorization: Bearer " + bearer, "Content-Type: application/json", "Accept: application/json"},
                      body.dump(), deadline);
        if (r.status == 401 || r.status == 403) {
            std::lock_guard<std::mutex> lk(oauth_mu_);
            access_token_.clear();  // maybe the OAuth/CLI token was revoked: get a new one next time
        }
        if (r.status != 200) throw TokenError(describe_failure("database credentials endpoint", r));
        auto j = parse_body(r.body, "database credentials endpoint");
        if (!j.is_object() || !j.contains("token") || !j["token"].is_string() || j["token"].get<std::string>().empty())
            throw TokenError("database credentials response has no token");
        Credential c;
        c.token = j["token"].get<std::string>();
        const char* field = autoscaling ? "expire_time" : "expiration_time";
        if (j.contains(field) && j[field].is_string()) {
            c.expires = detail::parse_rfc3339(j[field].get<std::string>());
            if (!c.expires)
                report(LogLevel::Warning, std::string("ignoring an unparsable ") + field + " in the credential response: " +
                                              j[field].get<std::string>().substr(0, 64));
        }
        return c;
    }

    DatabricksConfig cfg_;
    AuthType auth_type_ = AuthType::Pat;
    bool profile_explicit_ = false;

    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::string token_;
    bool rejected_ = false;
    bool refreshing_ = false;
    std::thread::id refresher_{};  // the thread inside refresh_locked
    bool stopping_ = false;
    std::atomic<bool> stopping_flag_{false};  // stopping_, readable without mu_ (HTTP, CLI)
    std::chrono::system_clock::time_point expires_at_{};    // the credential's expiry
    std::chrono::system_clock::time_point usable_until_{};  // expires_at_, or the grace for one that arrived expired
    std::chrono::system_clock::time_point refresh_at_{};
    Clock::time_point next_fetch_ok_{};
    std::chrono::seconds fetch_spacing_{0};
    std::optional<Clock::time_point> last_failure_;
    std::string last_error_;
    std::atomic<std::uint64_t> refresh_count_{0};

    std::mutex oauth_mu_;
    std::string access_token_;
    Clock::time_point access_expires_{};

    std::thread worker_;
};

}  // namespace fastpgcache

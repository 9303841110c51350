// fastpgcache/client/databricks.hpp - Databricks Lakebase credentials (needs libcurl)
// Part of the C++ client; include <fastpgcache/client.hpp>.
#pragma once

#include <fastpgcache/client/errors.hpp>
#include <fastpgcache/client/token_provider.hpp>
#include <fastpgcache/client/util.hpp>

#include <curl/curl.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace fastpgcache {

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

}  // namespace fastpgcache

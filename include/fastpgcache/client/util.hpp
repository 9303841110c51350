// fastpgcache/client/util.hpp - internal helpers (strings, URLs, RFC 3339 times)
// Part of the C++ client; include <fastpgcache/client.hpp>.
#pragma once

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <random>
#include <string>
#include <string_view>

namespace fastpgcache {

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

/// A loopback address or name: 127.0.0.0/8, ::1 (with or without brackets)
/// or "localhost".  Other names are not resolved: a name is trusted to be
/// local only when it is "localhost".
inline bool is_loopback_host(std::string_view host) {
    if (host == "localhost" || host == "::1" || host == "[::1]") return true;
    if (host.size() < 9 || host.substr(0, 4) != "127.") return false;
    int dots = 0;
    for (char ch : host) {
        if (ch == '.') ++dots;
        else if (!std::isdigit(static_cast<unsigned char>(ch))) return false;
    }
    return dots == 3;
}

/// Whether every host of a libpq host list ("a,b,c") is local: a loopback
/// address or name, or a Unix-domain socket directory (an absolute path or
/// an abstract socket, "@name").  An empty list means libpq's default, the
/// Unix-domain socket.
inline bool all_hosts_local(std::string_view hosts) {
    std::size_t start = 0;
    for (;;) {
        std::size_t comma = hosts.find(',', start);
        std::string_view h = hosts.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
        if (!h.empty() && h.front() != '/' && h.front() != '@' && !is_loopback_host(h)) return false;
        if (comma == std::string_view::npos) return true;
        start = comma + 1;
    }
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

/// The proleptic Gregorian date of a day counted from 1970-01-01 (the
/// inverse of days_from_civil); any 64-bit day number.
struct CivilDate {
    long long year;
    unsigned month, day;
};
inline CivilDate civil_from_days(long long days) {
    const long long z = days + 719468;  // days since 0000-03-01
    const long long era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = static_cast<unsigned>(z - era * 146097);            // [0, 146096]
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;  // [0, 399]
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);            // [0, 365], from March 1st
    const unsigned mp = (5 * doy + 2) / 153;                                 // [0, 11], March = 0
    const unsigned month = mp < 10 ? mp + 3 : mp - 9;
    return {static_cast<long long>(yoe) + era * 400 + (month <= 2 ? 1 : 0), month, doy - (153 * mp + 2) / 5 + 1};
}

/// A point in time as PostgreSQL timestamptz input in UTC, exact to the
/// microsecond (rounded down): "2030-01-02 03:04:05.123456+00", years before
/// 1 written with BC.  Years PostgreSQL cannot hold make it raise 22008.
template <class Duration>
std::string timestamptz_text(std::chrono::time_point<std::chrono::system_clock, Duration> tp) {
    using namespace std::chrono;
    const auto whole = floor<seconds>(tp);
    const long long us = duration_cast<microseconds>(tp - whole).count();  // [0, 999999]
    const long long secs = whole.time_since_epoch().count();
    long long days = secs / 86400, rem = secs % 86400;
    if (rem < 0) {
        rem += 86400;
        --days;
    }
    const CivilDate date = civil_from_days(days);
    const bool bc = date.year <= 0;
    char buf[96];
    std::snprintf(buf, sizeof buf, "%04lld-%02u-%02u %02lld:%02lld:%02lld.%06lld+00%s", bc ? 1 - date.year : date.year,
                  date.month, date.day, rem / 3600, rem / 60 % 60, rem % 60, us, bc ? " BC" : "");
    return buf;
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

}  // namespace fastpgcache

// Redis's number rules (see redis_values.hpp). Written from the behaviour of
// redis-server's util.c (string2ll, string2ld, ld2string), checked by
// test/redis_diff against a real redis-server.

#include "redis_values.hpp"

#include <cctype>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace fastpgcache {
namespace {

constexpr std::size_t kMaxIntChars = 20;       // "-9223372036854775808"
constexpr std::size_t kMaxFloatChars = 5 * 1024;  // Redis MAX_LONG_DOUBLE_CHARS

}  // namespace

std::optional<int64_t> ParseRedisInt(std::string_view s) noexcept {
  if (s.empty() || s.size() > kMaxIntChars) return std::nullopt;
  if (s == "0") return 0;
  std::size_t i = 0;
  bool negative = false;
  if (s[0] == '-') {
    negative = true;
    i = 1;
    if (i == s.size()) return std::nullopt;
  }
  if (s[i] < '1' || s[i] > '9') return std::nullopt;  // no leading zero, no "-0"
  uint64_t v = 0;
  for (; i < s.size(); i++) {
    char c = s[i];
    if (c < '0' || c > '9') return std::nullopt;
    uint64_t digit = static_cast<uint64_t>(c - '0');
    if (v > (UINT64_MAX - digit) / 10) return std::nullopt;
    v = v * 10 + digit;
  }
  if (negative) {
    if (v > static_cast<uint64_t>(INT64_MAX) + 1) return std::nullopt;
    return v == static_cast<uint64_t>(INT64_MAX) + 1 ? INT64_MIN : -static_cast<int64_t>(v);
  }
  if (v > static_cast<uint64_t>(INT64_MAX)) return std::nullopt;
  return static_cast<int64_t>(v);
}

std::optional<int64_t> AddRedisInt(int64_t value, int64_t by) noexcept {
  int64_t sum;
  if (__builtin_add_overflow(value, by, &sum)) return std::nullopt;
  return sum;
}

std::optional<long double> ParseRedisFloat(std::string_view s) noexcept {
  if (s.empty() || s.size() >= kMaxFloatChars) return std::nullopt;
  char buf[kMaxFloatChars];
  std::memcpy(buf, s.data(), s.size());
  buf[s.size()] = '\0';
  if (std::isspace(static_cast<unsigned char>(buf[0]))) return std::nullopt;
  errno = 0;
  char *end = nullptr;
  long double value = std::strtold(buf, &end);
  if (end != buf + s.size()) return std::nullopt;  // trailing garbage, or an embedded NUL
  if (errno == ERANGE && (value == HUGE_VALL || value == -HUGE_VALL || std::fpclassify(value) == FP_ZERO))
    return std::nullopt;
  if (std::isnan(value)) return std::nullopt;
  return value;
}

std::string FormatRedisFloat(long double value) {
  char buf[kMaxFloatChars];
  int n = std::snprintf(buf, sizeof buf, "%.17Lf", value);
  if (n < 0 || static_cast<std::size_t>(n) + 1 > sizeof buf) return std::string();
  std::size_t len = static_cast<std::size_t>(n);
  if (std::memchr(buf, '.', len) != nullptr) {
    while (len > 0 && buf[len - 1] == '0') len--;
    if (len > 0 && buf[len - 1] == '.') len--;
  }
  if (len == 2 && buf[0] == '-' && buf[1] == '0') return "0";
  return std::string(buf, len);
}

}  // namespace fastpgcache

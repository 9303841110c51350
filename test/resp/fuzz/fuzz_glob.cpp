/*
 * fuzz_glob.cpp
 *
 * libFuzzer target for GlobMatch. Property: GlobMatch agrees with a plain
 * exhaustive-backtracking reference matcher written here from the same rules
 * (no skip-longer-matches shortcut, no nesting bound), for small inputs where
 * the reference stays cheap; and GlobMatch itself returns quickly on any input
 * (a hang is reported by libFuzzer's timeout).
 * Input: byte 0 = pattern length, byte 1 bit 0 = nocase, then pattern, subject.
 */
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <utility>

#include "../../../src/resp/glob.hpp"

using fastpgcache::resp::GlobMatch;

namespace {

int Fold(char c, bool nocase) {
  int v = static_cast<signed char>(c);
  if (nocase && c >= 'A' && c <= 'Z') v = c + 32;
  return v;
}

/*
 * Reference: matches s against p by exhaustive backtracking. The bracket rules
 * (escape inside a set, ranges in either order, "^" negation, an unclosed set
 * running to the end of the pattern) follow Redis's stringmatchlen.
 */
bool Ref(std::string_view p, std::string_view s, bool nocase) {
  if (p.empty() || s.empty()) return p.empty() && s.empty();
  if (p[0] == '*') {
    size_t k = 0;
    while (k < p.size() && p[k] == '*') k++;
    std::string_view rest = p.substr(k);
    if (rest.empty()) return true;
    for (size_t i = 0; i < s.size(); i++) {  /* non-empty suffixes only, as Redis */
      if (Ref(rest, s.substr(i), nocase)) return true;
    }
    return false;
  }
  size_t used = 1;
  bool ok = false;
  if (p[0] == '?') {
    ok = true;
  } else if (p[0] == '[') {
    size_t i = 1;
    bool neg = i < p.size() && p[i] == '^';
    if (neg) i++;
    bool match = false;
    while (true) {
      if (i < p.size() && p[i] == '\\' && p.size() - i >= 2) {
        i++;
        if (p[i] == s[0]) match = true;
      } else if (i < p.size() && p[i] == ']') {
        break;
      } else if (i >= p.size()) {
        i = p.size() - 1; /* unclosed set: ends with the pattern */
        break;
      } else if (p.size() - i >= 3 && p[i + 1] == '-') {
        int a = static_cast<signed char>(p[i]), b = static_cast<signed char>(p[i + 2]);
        int c = static_cast<signed char>(s[0]);
        if (a > b) std::swap(a, b);
        if (nocase) {
          a = Fold(static_cast<char>(a), true);
          b = Fold(static_cast<char>(b), true);
          c = Fold(static_cast<char>(c), true);
        }
        i += 2;
        if (c >= a && c <= b) match = true;
      } else if (Fold(p[i], nocase) == Fold(s[0], nocase)) {
        match = true;
      }
      i++;
    }
    ok = neg ? !match : match;
    used = i + 1;
  } else {
    size_t i = (p[0] == '\\' && p.size() >= 2) ? 1 : 0;
    ok = Fold(p[i], nocase) == Fold(s[0], nocase);
    used = i + 1;
  }
  if (!ok) return false;
  std::string_view rest_p = p.substr(used);
  std::string_view rest_s = s.substr(1);
  if (rest_s.empty()) {
    size_t k = 0; /* the subject is used up: trailing stars match nothing */
    while (k < rest_p.size() && rest_p[k] == '*') k++;
    return k == rest_p.size();
  }
  return Ref(rest_p, rest_s, nocase);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  size_t plen = data[0];
  bool nocase = data[1] & 1;
  const char* rest = reinterpret_cast<const char*>(data) + 2;
  size_t n = size - 2;
  if (plen > n) plen = n;
  std::string_view pattern(rest, plen), subject(rest + plen, n - plen);
  bool got = GlobMatch(pattern, subject, nocase);
  size_t stars = 0;
  for (char c : pattern) stars += c == '*';
  if (pattern.size() <= 24 && subject.size() <= 24 && stars <= 5) {
    if (Ref(pattern, subject, nocase) != got) abort();
  }
  return 0;
}

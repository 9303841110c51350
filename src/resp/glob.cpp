/*
 * glob.cpp
 *
 * GlobMatch(): Redis's stringmatchlen() semantics with explicit bounds (Redis
 * reads one byte past the pattern, relying on sds strings ending in NUL; here
 * the end of the pattern reads as NUL instead).
 */
#include "glob.hpp"

namespace fastpgcache::resp {

namespace {

/* ASCII-only case folding, as tolower() in the C locale. */
int Fold(unsigned char c, bool nocase) noexcept {
  int v = static_cast<signed char>(c); /* Redis compares plain (signed) chars */
  if (nocase && c >= 'A' && c <= 'Z') v = c + ('a' - 'A');
  return v;
}

/*
 * Match: the recursive matcher. `skip_longer` is set once a '*' has tried
 * every position of the remaining string without success: every enclosing '*'
 * can then give up too. `nesting` counts enclosing '*' frames.
 */
bool Match(const char* pattern, size_t plen, const char* str, size_t slen, bool nocase,
           bool* skip_longer, int nesting) noexcept {
  if (nesting > kGlobMaxNesting) return false;
  auto pat_at = [&](size_t i) -> char { return i < plen ? pattern[i] : '\0'; };

  while (plen > 0 && slen > 0) {
    switch (pattern[0]) {
      case '*': {
        while (plen > 1 && pattern[1] == '*') {
          pattern++;
          plen--;
        }
        if (plen == 1) return true;
        while (slen > 0) {
          if (Match(pattern + 1, plen - 1, str, slen, nocase, skip_longer, nesting + 1)) return true;
          if (*skip_longer) return false;
          str++;
          slen--;
        }
        *skip_longer = true;
        return false;
      }
      case '?':
        str++;
        slen--;
        break;
      case '[': {
        pattern++;
        plen--;
        bool negate = pat_at(0) == '^';
        if (negate) {
          pattern++;
          plen--;
        }
        bool matched = false;
        while (true) {
          if (pat_at(0) == '\\' && plen >= 2) {
            pattern++;
            plen--;
            if (pattern[0] == str[0]) matched = true;
          } else if (pat_at(0) == ']') {
            break;
          } else if (plen == 0) {
            /* Unclosed set: stand on its last byte so the step below ends the pattern. */
            pattern--;
            plen++;
            break;
          } else if (plen >= 3 && pattern[1] == '-') {
            int start = static_cast<signed char>(pattern[0]);
            int end = static_cast<signed char>(pattern[2]);
            int c = static_cast<signed char>(str[0]);
            if (start > end) {
              int t = start;
              start = end;
              end = t;
            }
            if (nocase) {
              start = Fold(static_cast<unsigned char>(start), true);
              end = Fold(static_cast<unsigned char>(end), true);
              c = Fold(static_cast<unsigned char>(c), true);
            }
            pattern += 2;
            plen -= 2;
            if (c >= start && c <= end) matched = true;
          } else if (Fold(static_cast<unsigned char>(pattern[0]), nocase) ==
                     Fold(static_cast<unsigned char>(str[0]), nocase)) {
            matched = true;
          }
          pattern++;
          plen--;
        }
        if (negate) matched = !matched;
        if (!matched) return false;
        str++;
        slen--;
        break;
      }
      case '\\':
        if (plen >= 2) {
          pattern++;
          plen--;
        }
        [[fallthrough]];
      default:
        if (Fold(static_cast<unsigned char>(pattern[0]), nocase) !=
            Fold(static_cast<unsigned char>(str[0]), nocase)) {
          return false;
        }
        str++;
        slen--;
        break;
    }
    pattern++;
    plen--;
    if (slen == 0) {
      while (plen > 0 && pattern[0] == '*') {
        pattern++;
        plen--;
      }
      break;
    }
  }
  return plen == 0 && slen == 0;
}

}  // namespace

bool GlobMatch(std::string_view pattern, std::string_view subject, bool nocase) noexcept {
  bool skip_longer = false;
  return Match(pattern.data(), pattern.size(), subject.data(), subject.size(), nocase, &skip_longer, 0);
}

}  // namespace fastpgcache::resp

/*
 * glob.hpp
 *
 * Redis's glob-style pattern matching (util.c stringmatchlen), as KEYS, SCAN
 * MATCH and CONFIG GET use it, and as the SQL functions cache_keys() and
 * cache_scan() must use it: '*' any run of bytes, '?' one byte, '[abc]' a set,
 * '[^a]' a negated set, '[a-z]' a range (reversed ranges are swapped), '\x'
 * the byte x. Malformed patterns behave as in Redis (an unclosed '[' ends the
 * set at the end of the pattern; a trailing '\' matches itself).
 *
 * Pure C++, no PostgreSQL header, no allocation, no exception. Patterns like
 * "a*a*a*...b" cannot blow up: once the rest of a pattern failed to match at
 * every position after a '*', no earlier '*' retries longer matches (Redis's
 * skipLongerMatches), so the work is O(pattern x string); and the recursion
 * depth is bounded by kGlobMaxNesting (deeper patterns do not match, as in
 * redis-server 7.0.15: checked by test/resp/diff_glob.py).
 *
 * Note for callers (KEYS, SCAN MATCH, cache_keys, cache_scan): Redis does not
 * call the matcher for the pattern "*" but lists every key, and an empty
 * subject never matches (GlobMatch("*", "") is false, as stringmatchlen), so
 * the empty key "" is listed by KEYS * and by nothing else. Do the same.
 */
#ifndef FASTPGCACHE_RESP_GLOB_HPP
#define FASTPGCACHE_RESP_GLOB_HPP

#include <string_view>

namespace fastpgcache::resp {

constexpr int kGlobMaxNesting = 1000;

/* True if `subject` matches `pattern` (bytes; nocase folds ASCII letters). */
bool GlobMatch(std::string_view pattern, std::string_view subject, bool nocase = false) noexcept;

}  // namespace fastpgcache::resp

#endif

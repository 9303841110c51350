// Redis's rules for numbers stored as strings (INCR, INCRBY, DECRBY,
// INCRBYFLOAT), so that a counter behaves exactly as in redis-server: what
// parses as an integer or a float, what overflows, and how a float result is
// written back. Pure C++: no PostgreSQL headers, no allocation but the
// returned string, no exception but std::bad_alloc.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace fastpgcache {

// An integer as Redis's string2ll accepts it: an optional '-', then "0" or a
// digit 1-9 followed by digits, nothing else (no '+', no space, no leading
// zero, no "-0"), within int64 and at most 20 characters.
std::optional<int64_t> ParseRedisInt(std::string_view s) noexcept;

// value + by, unless it overflows int64 (Redis: "increment or decrement
// would overflow").
std::optional<int64_t> AddRedisInt(int64_t value, int64_t by) noexcept;

// A float as Redis's string2ld accepts it: strtold() of the whole string
// (at most 5119 bytes, no leading space), not NaN, not out of range
// (overflow or underflow to zero); "inf" is accepted.
std::optional<long double> ParseRedisFloat(std::string_view s) noexcept;

// A float as INCRBYFLOAT writes it back (Redis ld2string, LD_STR_HUMAN):
// "%.17Lf", trailing zeros after the point removed, then a trailing point,
// and "-0" written "0". Empty if it would be longer than Redis allows (5119
// bytes).
std::string FormatRedisFloat(long double value);

}  // namespace fastpgcache

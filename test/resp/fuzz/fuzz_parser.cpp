/*
 * fuzz_parser.cpp
 *
 * libFuzzer target for RequestParser. Property: the same bytes delivered in
 * pieces split at arbitrary points parse exactly as when delivered at once
 * (same commands, same arguments, same error, same unconsumed rest), under
 * default and small limits, authenticated or not. Any divergence or sanitizer
 * report is a crash.
 * Input: byte 0 = flags (bit 0: auth required, bit 1: small limits), byte 1 =
 * seed of the split points, rest = the stream.
 */
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "../parse_all.hpp"

using fastpgcache::resp::ParserLimits;
using fastpgcache::resp::testing::ParseAll;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  bool auth = data[0] & 1;
  ParserLimits limits;
  if (data[0] & 2) {
    limits.max_bulk_len = 64;
    limits.max_multibulk_len = 8;
    limits.max_inline_len = 32;
    limits.unauth_max_bulk_len = 16;
    limits.unauth_max_multibulk_len = 3;
  }
  std::string_view stream(reinterpret_cast<const char*>(data) + 2, size - 2);
  std::string whole = ParseAll(stream, {}, limits, auth);
  uint32_t state = data[1] * 2654435761u + static_cast<uint32_t>(size);
  std::vector<size_t> cuts;
  size_t pos = 0;
  while (stream.size() > 1 && cuts.size() < 16) {
    state = state * 1103515245u + 12345u;
    pos += 1 + (state >> 8) % (stream.size() / 4 + 1);
    if (pos >= stream.size()) break;
    cuts.push_back(pos);
  }
  if (ParseAll(stream, cuts, limits, auth) != whole) abort();
  if (stream.size() <= 200) {
    std::vector<size_t> every;
    for (size_t i = 1; i < stream.size(); i++) every.push_back(i);
    if (ParseAll(stream, every, limits, auth) != whole) abort();
  }
  return 0;
}

/*
 * parse_all.hpp
 *
 * Test helper shared by the unit tests and the parser fuzz target: runs a
 * RequestParser over a byte stream the way the server does (a window that
 * starts at the first unconsumed byte and grows as bytes arrive), delivering
 * the stream in the given pieces, and returns a printable trace of every
 * result. Two deliveries of the same bytes must give the same trace.
 */
#ifndef FASTPGCACHE_TEST_RESP_PARSE_ALL_HPP
#define FASTPGCACHE_TEST_RESP_PARSE_ALL_HPP

#include <string>
#include <string_view>
#include <vector>

#include "../../src/resp/protocol.hpp"

namespace fastpgcache::resp::testing {

/* ParseAll: `cuts` are increasing offsets where the stream is split. */
inline std::string ParseAll(std::string_view stream, const std::vector<size_t>& cuts, const ParserLimits& limits,
                            bool auth_required) {
  RequestParser parser(limits);
  std::string buffer;
  size_t start = 0;
  std::string trace;
  std::vector<std::string_view> argv;
  size_t delivered = 0;
  std::vector<size_t> ends(cuts);
  ends.push_back(stream.size());
  for (size_t end : ends) {
    if (end < delivered || end > stream.size()) continue;
    buffer.append(stream.substr(delivered, end - delivered));
    delivered = end;
    while (start < buffer.size()) {
      size_t consumed = 0;
      std::string error;
      ParseStatus st = parser.Parse(std::string_view(buffer).substr(start), auth_required, &argv, &consumed, &error);
      if (st == ParseStatus::kNeedMore) break;
      if (st == ParseStatus::kError) {
        trace += "E[" + error + "]";
        return trace;
      }
      start += consumed;
      if (st == ParseStatus::kEmpty) {
        trace += "_";
        continue;
      }
      trace += "C" + std::to_string(argv.size()) + "(";
      for (std::string_view a : argv) {
        trace += std::to_string(a.size()) + ":";
        trace.append(a.data(), a.size());
        trace += ",";
      }
      trace += ")";
    }
  }
  trace += "|rest=" + std::to_string(buffer.size() - start);
  return trace;
}

}  // namespace fastpgcache::resp::testing

#endif

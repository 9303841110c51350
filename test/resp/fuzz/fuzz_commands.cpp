/*
 * fuzz_commands.cpp
 *
 * libFuzzer target for command resolution and argument parsing: the input is
 * parsed into requests with RequestParser, and every argv goes through
 * ResolveCommand, ParseRequest (data commands), ParseHello,
 * ValidateClientName, COMMAND INFO/DOCS rendering and a glob match. Checks:
 * no sanitizer report, a resolved command respects its arity, and every view
 * in a parsed request points into the argv it came from.
 */
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "../../../src/resp/commands.hpp"
#include "../../../src/resp/glob.hpp"

using namespace fastpgcache::resp;

namespace {

bool Inside(std::string_view v, const std::vector<std::string_view>& argv) {
  if (v.empty()) return true;
  for (std::string_view a : argv) {
    if (v.data() >= a.data() && v.data() + v.size() <= a.data() + a.size()) return true;
  }
  return v == "default";
}

void Check(bool ok) {
  if (!ok) abort();
}

void CheckViews(const Request& r, const std::vector<std::string_view>& argv) {
  if (auto* k = std::get_if<KeyRequest>(&r.args)) Check(Inside(k->key, argv));
  if (auto* m = std::get_if<MultiKeyRequest>(&r.args)) {
    for (auto k : m->keys) Check(Inside(k, argv));
  }
  if (auto* s = std::get_if<SetRequest>(&r.args)) Check(Inside(s->key, argv) && Inside(s->value, argv));
  if (auto* m = std::get_if<MSetRequest>(&r.args)) {
    for (auto& kv : m->pairs) Check(Inside(kv.first, argv) && Inside(kv.second, argv));
  }
  if (auto* s = std::get_if<ScanRequest>(&r.args)) Check(Inside(s->pattern, argv) && Inside(s->type, argv));
  if (auto* a = std::get_if<AuthRequest>(&r.args)) Check(Inside(a->username, argv) && Inside(a->password, argv));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  RequestParser parser;
  std::vector<std::string_view> argv;
  size_t start = 0;
  for (int n = 0; n < 64 && start < input.size(); n++) {
    size_t consumed = 0;
    std::string error;
    ParseStatus st = parser.Parse(input.substr(start), false, &argv, &consumed, &error);
    if (st == ParseStatus::kNeedMore || st == ParseStatus::kError) break;
    start += consumed;
    if (st == ParseStatus::kEmpty) continue;
    const CommandSpec* spec = ResolveCommand(argv, &error);
    if (spec != nullptr) {
      int argc = static_cast<int>(argv.size());
      Check(spec->arity > 0 ? argc == spec->arity : argc >= -spec->arity);
      if (spec->flags & kFlagExecutor) {
        Request r;
        if (ParseRequest(*spec, argv, 1700000000000LL + static_cast<int64_t>(size), &r, &error)) {
          Check(r.spec == spec);
          CheckViews(r, argv);
        } else {
          Check(!error.empty() && error.find('\r') == std::string::npos && error.find('\n') == std::string::npos);
        }
      }
    } else {
      Check(error.rfind("ERR ", 0) == 0 && error.find('\r') == std::string::npos && error.find('\n') == std::string::npos);
    }
    HelloRequest hello;
    ParseHello(argv, &hello, &error);
    ValidateClientName(argv[0], &error);
    std::string out;
    ReplyWriter w(&out, argv.size() % 2 ? 2 : 3);
    WriteCommandInfo(w, FindCommandByFullName(argv[0]));
    if (argv.size() >= 3) GlobMatch(argv[1].substr(0, 64), argv[2].substr(0, 256), argv.size() > 3);
  }
  return 0;
}

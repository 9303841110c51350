/*
 * bench_parser.cpp
 *
 * Parser throughput: parses a pipelined stream of SET (100-byte values) and
 * GET requests as the server does (one window per request) and prints MB/s
 * and commands/s, for multibulk and for inline requests. A sanity number for
 * the PostgreSQL-backed worker, not a test.
 * Usage: bench_parser [MEGABYTES]
 */
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "../../src/resp/commands.hpp"
#include "../../src/resp/protocol.hpp"

using namespace fastpgcache::resp;

static void Run(const char* name, const std::string& stream, bool resolve) {
  RequestParser parser;
  std::vector<std::string_view> argv;
  std::string error;
  size_t commands = 0;
  auto t0 = std::chrono::steady_clock::now();
  int rounds = 0;
  double secs = 0;
  do {
    size_t start = 0;
    while (start < stream.size()) {
      size_t consumed = 0;
      ParseStatus st = parser.Parse(std::string_view(stream).substr(start), false, &argv, &consumed, &error);
      if (st != ParseStatus::kCommand) {
        std::fprintf(stderr, "unexpected parse status\n");
        std::exit(1);
      }
      if (resolve) {
        const CommandSpec* spec = ResolveCommand(argv, &error);
        Request r;
        if (spec == nullptr || !ParseRequest(*spec, argv, 0, &r, &error)) std::exit(1);
      }
      start += consumed;
      commands++;
    }
    rounds++;
    secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  } while (secs < 1.0);
  double mb = static_cast<double>(stream.size()) * rounds / (1024.0 * 1024.0);
  std::printf("%-34s %8.0f MB/s %12.0f commands/s\n", name, mb / secs, static_cast<double>(commands) / secs);
}

int main(int argc, char** argv) {
  size_t megabytes = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 16;
  std::string value(100, 'v');
  std::string resp, inl;
  for (size_t i = 0; resp.size() < megabytes * 1024 * 1024; i++) {
    std::string key = "key:" + std::to_string(i % 100000);
    if (i % 2 == 0) {
      resp += "*3\r\n$3\r\nSET\r\n$" + std::to_string(key.size()) + "\r\n" + key + "\r\n$100\r\n" + value + "\r\n";
      inl += "SET " + key + " " + value + "\r\n";
    } else {
      resp += "*2\r\n$3\r\nGET\r\n$" + std::to_string(key.size()) + "\r\n" + key + "\r\n";
      inl += "GET " + key + "\r\n";
    }
  }
  Run("multibulk SET/GET (parse)", resp, false);
  Run("multibulk SET/GET (parse+request)", resp, true);
  Run("inline SET/GET (parse)", inl, false);
  return 0;
}

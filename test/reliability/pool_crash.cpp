// An application of the C++ client (include/fastpgcache/client.hpp) that
// loops set/get through the connection pool while crash_restart.sh kills a
// backend (a crash-restart of the whole server). It counts, per phase, the
// operations that worked and the errors the application saw:
//   before: normal operation; the harness switches to "hold" and then kills.
//           Errors here are the operations that were in flight at the kill:
//           at most one per thread.
//   hold:   the application issues nothing (the harness inspects the server).
//   after:  the server is back: the pool must hand out working connections,
//           so the application must see no error at all.
// The phase is read from a file before each operation; "stop" ends the run.
//
// usage: pool_crash CONNINFO PHASE_FILE THREADS
// Prints one line: "RESULT key=value ..." and the first errors seen.
#include <fastpgcache/client.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

enum Phase { kBefore, kHold, kAfter, kStop, kPhases };
const char *const kNames[] = {"before", "hold", "after", "stop"};

Phase ReadPhase(const std::string &path) {
  std::ifstream in(path);
  std::string word;
  in >> word;
  for (int i = 0; i < kPhases; i++)
    if (word == kNames[i]) return static_cast<Phase>(i);
  return kBefore;
}

struct Counts {
  std::array<std::atomic<long>, kPhases> ok{};
  std::array<std::atomic<long>, kPhases> err{};
  std::atomic<long> mismatches{0};
};

}  // namespace

int main(int argc, char **argv) {
  if (argc != 4) {
    std::cerr << "usage: pool_crash CONNINFO PHASE_FILE THREADS\n";
    return 2;
  }
  const std::string conninfo = argv[1], phase_file = argv[2];
  const int threads = std::stoi(argv[3]);

  fastpgcache::Options opts;
  opts.minconn = static_cast<std::size_t>(threads);
  opts.maxconn = static_cast<std::size_t>(threads);
  opts.pool_timeout = std::chrono::milliseconds(20000);
  opts.statement_timeout = std::chrono::milliseconds(20000);
  std::unique_ptr<fastpgcache::FastPgCache> cache;
  try {
    cache = std::make_unique<fastpgcache::FastPgCache>(conninfo, opts);
    if (cache->setup() != fastpgcache::Backend::Extension) {
      std::cerr << "setup() did not find the extension\n";
      return 2;
    }
  } catch (const std::exception &e) {
    std::cerr << "could not start: " << e.what() << "\n";
    return 2;
  }

  Counts counts;
  std::mutex mu;
  std::map<std::string, std::vector<std::string>> first_errors;  // phase -> messages
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; t++) {
    pool.emplace_back([&, t] {
      long n = 0;
      for (;;) {
        Phase phase = ReadPhase(phase_file);
        if (phase == kStop) return;
        if (phase == kHold) {
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
          continue;
        }
        std::string key = "pool:" + std::to_string(t) + ":" + std::to_string(n % 50);
        std::string value = "v" + std::to_string(n);
        n++;
        try {
          cache->set(key, value, 3600);
          std::optional<std::string> got = cache->get(key);
          if (!got || *got != value) counts.mismatches++;
          counts.ok[phase]++;
        } catch (const std::exception &e) {
          counts.err[phase]++;
          std::lock_guard<std::mutex> lk(mu);
          auto &v = first_errors[kNames[phase]];
          if (v.size() < 3) v.push_back(e.what());
          // An application backs off a little after an error.
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
      }
    });
  }
  for (auto &th : pool) th.join();
  fastpgcache::PoolStats ps = cache->pool_stats();
  std::cout << "RESULT";
  for (int i = 0; i < kStop; i++)
    std::cout << " " << kNames[i] << "_ok=" << counts.ok[i].load() << " " << kNames[i] << "_err=" << counts.err[i].load();
  std::cout << " mismatches=" << counts.mismatches.load() << " opened=" << ps.opened << " discarded=" << ps.discarded
            << "\n";
  for (const auto &kv : first_errors)
    for (const auto &m : kv.second) std::cout << "ERROR[" << kv.first << "] " << m << "\n";
  return 0;
}

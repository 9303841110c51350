/*
 * harness_server.cpp
 *
 * The standalone RESP harness: resp::Server with the in-memory TEST DOUBLE
 * executor (memory_executor.hpp), driven the way the PostgreSQL worker will
 * drive it: an outer epoll (standing in for the WaitEventSet) waits on the
 * server's epoll fd plus a shutdown pipe, and calls Poll(). Used by the
 * redis-cli / python3-redis / differential tests and by redis-benchmark.
 *
 * Usage: resp_harness [--port N] [--bind ADDR]... [--unix PATH]
 *          [--requirepass PW] [--maxclients N] [--timeout S]
 *          [--output-limit BYTES] [--max-bulk BYTES] [--batch N]
 *          [--max-seconds S] [--port-file PATH]
 * Prints "listening on port N" and stops on SIGTERM/SIGINT or after
 * --max-seconds (default 3600: a forgotten harness ends by itself).
 */
#include <signal.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "memory_executor.hpp"

using namespace fastpgcache::resp;

namespace {

int g_pipe[2] = {-1, -1};

void OnSignal(int) {
  char b = 1;
  ssize_t ignored = write(g_pipe[1], &b, 1);
  (void)ignored;
}

void LogToStderr(void*, LogLevel level, const char* message) {
  std::fprintf(stderr, "[%s] %s\n", level == LogLevel::kWarning ? "warning" : "info", message);
}

}  // namespace

int main(int argc, char** argv) {
  ServerConfig config;
  config.port = 0;
  config.listen_addresses.clear();
  config.log = LogToStderr;
  testing::MemoryExecutor executor;
  executor.max_recorded_batches = 0;
  int max_seconds = 3600;
  std::string port_file;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "missing value for %s\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--port") config.port = std::atoi(next().c_str());
    else if (a == "--bind") config.listen_addresses.push_back(next());
    else if (a == "--unix") config.unix_socket = next();
    else if (a == "--requirepass") {
      executor.passwords["default"] = next();
      config.require_auth = true;
    } else if (a == "--user") {
      std::string spec = next();
      size_t colon = spec.find(':');
      executor.passwords[spec.substr(0, colon)] = colon == std::string::npos ? "" : spec.substr(colon + 1);
    } else if (a == "--maxclients") config.max_clients = std::strtoull(next().c_str(), nullptr, 10);
    else if (a == "--timeout") config.idle_timeout_s = std::atoi(next().c_str());
    else if (a == "--output-limit") config.output_buffer_limit = std::strtoull(next().c_str(), nullptr, 10);
    else if (a == "--max-bulk") config.limits.max_bulk_len = std::strtoll(next().c_str(), nullptr, 10);
    else if (a == "--batch") config.max_batch_commands = std::strtoull(next().c_str(), nullptr, 10);
    else if (a == "--max-seconds") max_seconds = std::atoi(next().c_str());
    else if (a == "--port-file") port_file = next();
    else {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      return 2;
    }
  }
  if (config.listen_addresses.empty()) config.listen_addresses.push_back("127.0.0.1");
  if (pipe(g_pipe) != 0) return 1;
  signal(SIGTERM, OnSignal);
  signal(SIGINT, OnSignal);
  signal(SIGPIPE, SIG_IGN);

  Server server(config, &executor);
  std::string error;
  if (!server.Start(&error)) {
    std::fprintf(stderr, "resp_harness: %s\n", error.c_str());
    return 1;
  }
  std::printf("listening on port %d\n", server.BoundPort(0));
  std::fflush(stdout);
  if (!port_file.empty()) {
    FILE* f = std::fopen(port_file.c_str(), "w");
    if (f) {
      std::fprintf(f, "%d\n", server.BoundPort(0));
      std::fclose(f);
    }
  }

  /* The outer loop: what the PostgreSQL worker's WaitEventSet will do. */
  int outer = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev;
  std::memset(&ev, 0, sizeof(ev));
  ev.events = EPOLLIN;
  ev.data.u32 = 1;
  epoll_ctl(outer, EPOLL_CTL_ADD, server.EpollFd(), &ev);
  ev.data.u32 = 2;
  epoll_ctl(outer, EPOLL_CTL_ADD, g_pipe[0], &ev);
  int64_t deadline = NowMs() + static_cast<int64_t>(max_seconds) * 1000;
  while (NowMs() < deadline) {
    int timeout = server.HasPendingWork() ? 0 : server.NextTimeoutMs();
    if (timeout < 0 || timeout > 1000) timeout = 1000;
    struct epoll_event events[2];
    int n = epoll_wait(outer, events, 2, timeout);
    bool stop = false;
    for (int i = 0; i < n; i++) stop |= events[i].data.u32 == 2;
    if (stop) break;
    server.Poll();
  }
  server.Stop();
  close(outer);
  return 0;
}

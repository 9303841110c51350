/*
 * fuzz_server.cpp
 *
 * libFuzzer target for the whole connection layer: a resp::Server (with the
 * in-memory TEST DOUBLE executor) listens on a unix socket; each input is
 * split on "\xfe\xfe" into up to three client streams that connect, send
 * their bytes and leave, while the server is polled. Covers dispatch, MULTI/
 * EXEC, HELLO/AUTH/RESET state, CLIENT/COMMAND/CONFIG, errors and closing.
 * Checks: no sanitizer report, Poll() never fails, and every client is gone
 * from the server once its socket is closed.
 * Input byte 0: bit 0 = server requires AUTH (password "pw").
 */
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "../memory_executor.hpp"

using namespace fastpgcache::resp;

namespace {

struct Fixture {
  testing::MemoryExecutor executor;
  std::unique_ptr<Server> server;
  std::string path;
};

Fixture* Make(bool auth) {
  auto* f = new Fixture();
  f->path = "/tmp/fpc_fuzz_server_" + std::to_string(getpid()) + (auth ? "_a" : "_n") + ".sock";
  ServerConfig config;
  config.listen_addresses.clear();
  config.unix_socket = f->path;
  config.require_auth = auth;
  config.limits.max_bulk_len = 4096;
  config.output_buffer_limit = 1 << 20;
  config.max_batch_commands = 64;
  f->executor.passwords["default"] = "pw";
  f->executor.max_recorded_batches = 0;
  f->server = std::make_unique<Server>(config, &f->executor);
  std::string error;
  if (!f->server->Start(&error)) abort();
  return f;
}

int Dial(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un sa;
  std::memset(&sa, 0, sizeof(sa));
  sa.sun_family = AF_UNIX;
  std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
  if (connect(fd, reinterpret_cast<struct sockaddr*>(&sa), sizeof(sa)) != 0) abort();
  fcntl(fd, F_SETFL, O_NONBLOCK);
  return fd;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture* fixtures[2] = {nullptr, nullptr};
  if (size < 1) return 0;
  std::signal(SIGPIPE, SIG_IGN);
  bool auth = data[0] & 1;
  Fixture*& f = fixtures[auth ? 1 : 0];
  if (f == nullptr) f = Make(auth);
  f->executor.data.clear();
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::vector<std::string_view> streams;
  while (streams.size() < 2) {
    size_t sep = input.find("\xfe\xfe");
    if (sep == std::string_view::npos) break;
    streams.push_back(input.substr(0, sep));
    input.remove_prefix(sep + 2);
  }
  streams.push_back(input);
  std::vector<int> fds;
  std::vector<size_t> sent(streams.size(), 0);
  for (size_t i = 0; i < streams.size(); i++) fds.push_back(Dial(f->path));
  char buf[65536];
  for (int round = 0; round < 200; round++) {
    bool pending = false;
    for (size_t i = 0; i < fds.size(); i++) {
      if (sent[i] < streams[i].size()) {
        ssize_t n = send(fds[i], streams[i].data() + sent[i], streams[i].size() - sent[i], MSG_NOSIGNAL);
        if (n > 0) sent[i] += static_cast<size_t>(n);
        else if (n < 0 && errno != EAGAIN) sent[i] = streams[i].size();
        pending |= sent[i] < streams[i].size();
      }
    }
    if (!f->server->Poll().ok) abort();
    bool got = false;
    for (int fd : fds) {
      while (recv(fd, buf, sizeof(buf), 0) > 0) got = true;
    }
    if (!pending && !got && !f->server->HasPendingWork() && round > 2) break;
  }
  for (int fd : fds) close(fd);
  for (int round = 0; round < 1000 && f->server->Stats().connected_clients > 0; round++) f->server->Poll();
  if (f->server->Stats().connected_clients != 0) abort();
  return 0;
}

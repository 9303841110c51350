/*
 * server.cpp
 *
 * Implementation of the epoll server declared in server.hpp. One Poll():
 *   1. epoll_wait(0): accept new connections, read what clients sent (level
 *      triggered, at most 256 KB per client per step), flush pending output;
 *   2. rounds: parse every complete request of every ready client, answer
 *      connection commands at once, collect data commands into ONE batch, run
 *      it through the Executor, then append all replies in request order and
 *      write them. A round stops a client at an AUTH (its result decides how
 *      later requests are treated) and continues it in the next round;
 *   3. close idle clients, free closed ones.
 * Client objects are freed only at the end of a step, so nothing in a batch
 * ever points to freed memory.
 */
#include "server.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>

#include "glob.hpp"

namespace fastpgcache::resp {

namespace {

constexpr uint64_t kListenerTag = 1ULL << 63;
constexpr size_t kReadChunk = 64 * 1024;
constexpr size_t kMaxReadPerStep = 256 * 1024;
constexpr size_t kMaxAcceptPerStep = 1000;
constexpr int kMaxRounds = 8;

std::string ErrnoText(const char* what) {
  return std::string(what) + ": " + std::strerror(errno);
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
  }
  return out;
}

/* A reply rendered into a string with the client's protocol. */
struct Rendered {
  std::string text;
  ReplyWriter w;
  explicit Rendered(int protocol) : w(&text, protocol) {}
};

}  // namespace

int64_t NowMs() noexcept {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

struct Listener {
  int fd = -1;
  bool is_unix = false;
  int port = 0;
  std::string address;
};

struct Client {
  uint64_t id = 0;
  int fd = -1;
  bool is_unix = false;
  std::string addr, laddr;
  std::string in;
  size_t in_pos = 0;
  RequestParser parser;
  std::string out;
  size_t out_pos = 0;
  int protocol = 2;
  bool authenticated = false;
  std::string user = "default";
  std::string name, lib_name, lib_ver;
  bool in_multi = false, multi_dirty = false;
  std::vector<std::vector<std::string>> queued;
  bool close_after_reply = false;
  bool peer_closed = false;
  bool dead = false;
  bool barrier = false;        /* an AUTH is in the batch: parse nothing more */
  bool in_ready = false;
  bool need_more = false;      /* the parser waits for bytes */
  bool has_slots = false;      /* replies of this round must wait for the batch */
  bool touched = false;
  uint32_t events = 0;
  int64_t created_ms = 0, last_ms = 0;
  const char* last_cmd = "NULL";

  explicit Client(const ParserLimits& limits) : parser(limits) {}
};

/* A reply position of the current round. */
struct Slot {
  enum class Kind { kText, kUnit, kAuth, kHello, kExec } kind = Kind::kText;
  Client* client = nullptr;
  std::string text;
  long unit = -1;
  HelloRequest hello;
  std::unique_ptr<std::vector<std::string>> owned_args;              /* inline requests */
  std::unique_ptr<std::vector<std::vector<std::string>>> owned_exec; /* EXEC's queue */
  std::vector<std::pair<long, std::string>> parts;  /* EXEC: unit command index, or -1 + reply */
};

Server::Server(const ServerConfig& config, Executor* executor) : config_(config), executor_(executor) {}

Server::~Server() { Stop(); }

void Server::Log(LogLevel level, const std::string& message) const noexcept {
  if (config_.log != nullptr) config_.log(config_.log_arg, level, message.c_str());
}

/*
 * Start: raise RLIMIT_NOFILE toward what max_clients needs (lowering
 * max_clients, with a warning, when the hard limit is too small), then create
 * the epoll fd and every listener.
 */
bool Server::Start(std::string* error) noexcept {
  try {
    if (started_) {
      *error = "server already started";
      return false;
    }
    max_clients_ = config_.max_clients;
    rlim_t needed = static_cast<rlim_t>(config_.max_clients) + 32 + config_.listen_addresses.size() * 2;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < needed) {
      struct rlimit want = rl;
      want.rlim_cur = rl.rlim_max == RLIM_INFINITY ? needed : std::min<rlim_t>(needed, rl.rlim_max);
      if (setrlimit(RLIMIT_NOFILE, &want) == 0) rl = want;
      if (rl.rlim_cur < needed) {
        size_t usable = rl.rlim_cur > 64 ? static_cast<size_t>(rl.rlim_cur) - 32 - config_.listen_addresses.size() * 2 : 1;
        Log(LogLevel::kWarning, "RESP server: RLIMIT_NOFILE allows " + std::to_string(rl.rlim_cur) +
                                    " open files (hard limit " +
                                    (rl.rlim_max == RLIM_INFINITY ? std::string("unlimited") : std::to_string(rl.rlim_max)) +
                                    "): max clients lowered from " + std::to_string(config_.max_clients) + " to " +
                                    std::to_string(usable) + "; raise the hard limit (ulimit -Hn, LimitNOFILE=)");
        max_clients_ = usable;
      }
    }
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0) {
      *error = ErrnoText("epoll_create1");
      return false;
    }
    spare_fd_ = open("/dev/null", O_RDONLY | O_CLOEXEC);
    scratch_.reset(new char[kReadChunk]);
    for (const std::string& address : config_.listen_addresses) {
      if (!OpenTcpListener(address, error)) {
        Stop();
        return false;
      }
    }
    if (!config_.unix_socket.empty() && !OpenUnixListener(error)) {
      Stop();
      return false;
    }
    start_ms_ = last_idle_check_ms_ = NowMs();
    started_ = true;
    return true;
  } catch (const std::exception& e) {
    *error = std::string("RESP server start failed: ") + e.what();
  } catch (...) {
    *error = "RESP server start failed";
  }
  Stop();
  return false;
}

/* OpenTcpListener: every address the name resolves to ("*": IPv4 and IPv6 any). */
bool Server::OpenTcpListener(const std::string& address, std::string* error) {
  std::vector<std::string> hosts;
  if (address == "*") hosts = {"0.0.0.0", "::"};
  else hosts = {address};
  for (const std::string& host : hosts) {
    struct addrinfo hints;
    std::memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    struct addrinfo* res = nullptr;
    std::string port = std::to_string(config_.port);
    int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &res);
    if (rc != 0) {
      *error = "could not resolve listen address \"" + host + "\": " + gai_strerror(rc);
      return false;
    }
    for (struct addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
      int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (fd < 0) {
        *error = ErrnoText("socket");
        freeaddrinfo(res);
        return false;
      }
      int one = 1;
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
      if (config_.reuse_port) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
      if (ai->ai_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
      char text[INET6_ADDRSTRLEN] = "?";
      if (ai->ai_family == AF_INET)
        inet_ntop(AF_INET, &reinterpret_cast<struct sockaddr_in*>(ai->ai_addr)->sin_addr, text, sizeof(text));
      else
        inet_ntop(AF_INET6, &reinterpret_cast<struct sockaddr_in6*>(ai->ai_addr)->sin6_addr, text, sizeof(text));
      if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, config_.backlog) != 0) {
        *error = "could not listen on " + std::string(text) + " port " + port + ": " + std::strerror(errno);
        close(fd);
        freeaddrinfo(res);
        return false;
      }
      auto l = std::make_unique<Listener>();
      l->fd = fd;
      l->address = text;
      struct sockaddr_storage bound;
      socklen_t len = sizeof(bound);
      if (getsockname(fd, reinterpret_cast<struct sockaddr*>(&bound), &len) == 0) {
        l->port = bound.ss_family == AF_INET ? ntohs(reinterpret_cast<struct sockaddr_in*>(&bound)->sin_port)
                                             : ntohs(reinterpret_cast<struct sockaddr_in6*>(&bound)->sin6_port);
      }
      struct epoll_event ev;
      std::memset(&ev, 0, sizeof(ev));
      ev.events = EPOLLIN;
      ev.data.u64 = kListenerTag | listeners_.size();
      if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
        *error = ErrnoText("epoll_ctl");
        close(fd);
        freeaddrinfo(res);
        return false;
      }
      listeners_.push_back(std::move(l));
    }
    freeaddrinfo(res);
  }
  return true;
}

/* OpenUnixListener: replaces a stale socket file, refuses any other file. */
bool Server::OpenUnixListener(std::string* error) {
  const std::string& path = config_.unix_socket;
  struct sockaddr_un sa;
  std::memset(&sa, 0, sizeof(sa));
  if (path.size() >= sizeof(sa.sun_path)) {
    *error = "unix socket path too long: " + path;
    return false;
  }
  sa.sun_family = AF_UNIX;
  std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
  struct stat st;
  if (lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      *error = "refusing to replace " + path + ": not a socket";
      return false;
    }
    unlink(path.c_str());
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *error = ErrnoText("socket");
    return false;
  }
  if (bind(fd, reinterpret_cast<struct sockaddr*>(&sa), sizeof(sa)) != 0 ||
      chmod(path.c_str(), config_.unix_socket_mode) != 0 || listen(fd, config_.backlog) != 0) {
    *error = "could not listen on unix socket " + path + ": " + std::strerror(errno);
    close(fd);
    return false;
  }
  auto l = std::make_unique<Listener>();
  l->fd = fd;
  l->is_unix = true;
  l->address = path;
  struct epoll_event ev;
  std::memset(&ev, 0, sizeof(ev));
  ev.events = EPOLLIN;
  ev.data.u64 = kListenerTag | listeners_.size();
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    *error = ErrnoText("epoll_ctl");
    close(fd);
    unlink(path.c_str());
    return false;
  }
  listeners_.push_back(std::move(l));
  return true;
}

void Server::Stop() noexcept {
  for (auto& slot : clients_by_fd_) {
    if (slot) {
      if (!slot->dead) close(slot->fd);
      slot.reset();
    }
  }
  client_count_ = 0;
  ready_.clear();
  dead_.clear();
  slots_.clear();
  for (auto& l : listeners_) {
    close(l->fd);
    if (l->is_unix) unlink(l->address.c_str());
  }
  listeners_.clear();
  if (spare_fd_ >= 0) close(spare_fd_);
  spare_fd_ = -1;
  if (epoll_fd_ >= 0) close(epoll_fd_);
  epoll_fd_ = -1;
  started_ = false;
}

int Server::BoundPort(size_t i) const noexcept { return i < listeners_.size() ? listeners_[i]->port : -1; }

bool Server::HasPendingWork() const noexcept { return !ready_.empty(); }

int Server::NextTimeoutMs() const noexcept { return config_.idle_timeout_s > 0 ? 1000 : -1; }

ServerStats Server::Stats() const noexcept {
  ServerStats s = stats_;
  s.connected_clients = client_count_;
  return s;
}

/*
 * AcceptClients: accept until the backlog is empty (bounded per step). Over
 * max clients, Redis's error is written and the connection closed; when out of
 * file descriptors, the spare fd makes room to accept-and-close, so the
 * level-triggered listener does not spin.
 */
void Server::AcceptClients(Listener* listener) {
  for (size_t i = 0; i < kMaxAcceptPerStep; i++) {
    struct sockaddr_storage peer;
    socklen_t peer_len = sizeof(peer);
    int fd = accept4(listener->fd, reinterpret_cast<struct sockaddr*>(&peer), &peer_len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR) continue;
      if ((errno == EMFILE || errno == ENFILE) && spare_fd_ >= 0) {
        close(spare_fd_);
        int victim = accept4(listener->fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (victim >= 0) close(victim);
        spare_fd_ = open("/dev/null", O_RDONLY | O_CLOEXEC);
        stats_.rejected_connections++;
        Log(LogLevel::kWarning, "RESP server: out of file descriptors, connection refused");
        continue;
      }
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ECONNABORTED)
        Log(LogLevel::kWarning, ErrnoText("RESP server: accept"));
      return;
    }
    stats_.connections_received++;
    if (client_count_ >= max_clients_) {
      static const char kMsg[] = "-ERR max number of clients reached\r\n";
      ssize_t ignored = send(fd, kMsg, sizeof(kMsg) - 1, MSG_NOSIGNAL);
      (void)ignored;
      close(fd);
      stats_.rejected_connections++;
      continue;
    }
    auto c = std::make_unique<Client>(config_.limits);
    c->id = next_client_id_++;
    c->fd = fd;
    c->is_unix = listener->is_unix;
    c->authenticated = !config_.require_auth;
    c->created_ms = c->last_ms = now_ms_;
    if (listener->is_unix) {
      c->addr = listener->address + ":0";
      c->laddr = c->addr;
    } else {
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      char host[INET6_ADDRSTRLEN] = "?";
      int port = 0;
      if (peer.ss_family == AF_INET) {
        auto* sin = reinterpret_cast<struct sockaddr_in*>(&peer);
        inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
        port = ntohs(sin->sin_port);
      } else if (peer.ss_family == AF_INET6) {
        auto* sin6 = reinterpret_cast<struct sockaddr_in6*>(&peer);
        inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
        port = ntohs(sin6->sin6_port);
      }
      c->addr = std::string(host) + ":" + std::to_string(port);
      c->laddr = listener->address + ":" + std::to_string(listener->port);
    }
    struct epoll_event ev;
    std::memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.u64 = static_cast<uint64_t>(fd);
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      Log(LogLevel::kWarning, ErrnoText("RESP server: epoll_ctl"));
      close(fd);
      continue;
    }
    c->events = EPOLLIN;
    if (static_cast<size_t>(fd) >= clients_by_fd_.size()) clients_by_fd_.resize(static_cast<size_t>(fd) + 1);
    clients_by_fd_[static_cast<size_t>(fd)] = std::move(c);
    client_count_++;
  }
}

/*
 * ReadClient: reads up to kMaxReadPerStep bytes. Small reads go through the
 * shared scratch buffer, so a client's own buffer holds only its unparsed
 * bytes (10,000 idle clients cost little); the rest of a large pending bulk is
 * read straight into the client's buffer. The consumed prefix of the buffer is
 * dropped first: nothing points into it between steps.
 */
void Server::ReadClient(Client* c) {
  if (c->dead || c->peer_closed) return;
  if (c->in_pos > 0) {
    c->in.erase(0, c->in_pos);
    c->in_pos = 0;
  }
  if (c->in.empty() && c->in.capacity() > 4096) std::string().swap(c->in);
  size_t total = 0;
  bool got = false;
  while (total < kMaxReadPerStep) {
    size_t pending = c->parser.PendingBulkEnd();
    ssize_t n;
    size_t want;
    /* In place only for what the socket already holds: the buffer grows
     * with the bytes received, never with the length a client declared
     * (16 clients declaring 512 MB and sending 1 KB each must not cost
     * gigabytes), and resize() zero-fills only bytes read() overwrites. */
    int available = 0;
    if (pending > c->in.size() + kReadChunk &&
        (ioctl(c->fd, FIONREAD, &available) != 0 || static_cast<size_t>(available) <= kReadChunk))
      pending = 0;
    if (pending > c->in.size() + kReadChunk) {
      want = std::min<size_t>({pending - c->in.size(), static_cast<size_t>(available), 64u * 1024 * 1024});
      size_t old = c->in.size();
      c->in.resize(old + want);
      n = read(c->fd, &c->in[old], want);
      c->in.resize(old + (n > 0 ? static_cast<size_t>(n) : 0));
    } else {
      want = kReadChunk;
      n = read(c->fd, scratch_.get(), want);
      if (n > 0) c->in.append(scratch_.get(), static_cast<size_t>(n));
    }
    if (n > 0) {
      total += static_cast<size_t>(n);
      got = true;
      if (c->in.size() > config_.query_buffer_limit) {
        Log(LogLevel::kWarning, "RESP server: closing client id=" + std::to_string(c->id) + " addr=" + c->addr +
                                    ": query buffer over client-query-buffer-limit");
        stats_.query_limit_disconnections++;
        CloseClient(c);
        return;
      }
      if (static_cast<size_t>(n) < want) break;
      continue;
    }
    if (n == 0) {
      c->peer_closed = true;
      break;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) c->peer_closed = true;
    break;
  }
  if (got) {
    c->last_ms = now_ms_;
    c->need_more = false;
    if (!c->in_ready) {
      c->in_ready = true;
      ready_.push_back(c);
    }
  }
  if (c->peer_closed) {
    /* Complete requests already received still run (as with Redis); the
     * client is closed when its round is over. */
    if (!c->in_ready) CloseClient(c);
    else UpdateEvents(c);
  }
}

/* WriteClient: sends pending output until the socket would block. */
void Server::WriteClient(Client* c) {
  if (c->dead) return;
  while (c->out_pos < c->out.size()) {
    ssize_t n = send(c->fd, c->out.data() + c->out_pos, c->out.size() - c->out_pos, MSG_NOSIGNAL);
    if (n > 0) {
      c->out_pos += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    CloseClient(c); /* EPIPE, ECONNRESET: the peer is gone */
    return;
  }
  if (c->out_pos == c->out.size()) {
    if (c->out.capacity() > 1024 * 1024) std::string().swap(c->out);
    else c->out.clear();
    c->out_pos = 0;
    if (c->close_after_reply || c->peer_closed) {
      CloseClient(c);
      return;
    }
  }
  UpdateEvents(c);
}

/* UpdateEvents: EPOLLIN while the client may send requests, EPOLLOUT while output waits. */
void Server::UpdateEvents(Client* c) {
  if (c->dead) return;
  uint32_t want = 0;
  if (!c->close_after_reply && !c->peer_closed) want |= EPOLLIN;
  if (c->out_pos < c->out.size()) want |= EPOLLOUT;
  if (want == c->events) return;
  struct epoll_event ev;
  std::memset(&ev, 0, sizeof(ev));
  ev.events = want;
  ev.data.u64 = static_cast<uint64_t>(c->fd);
  epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c->fd, &ev);
  c->events = want;
}

/* CloseClient: closes now (the fd may be reused by the next accept), frees
 * at the end of the step: a batch may still point to the client. */
void Server::CloseClient(Client* c) {
  if (c->dead) return;
  c->dead = true;
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, c->fd, nullptr);
  close(c->fd);
  client_count_--;
  size_t fd = static_cast<size_t>(c->fd);
  if (fd < clients_by_fd_.size() && clients_by_fd_[fd].get() == c) dead_.push_back(std::move(clients_by_fd_[fd]));
}

void Server::ReapClosed() { dead_.clear(); }

void Server::CheckIdle(int64_t now_ms) {
  if (config_.idle_timeout_s <= 0 || now_ms - last_idle_check_ms_ < 1000) return;
  last_idle_check_ms_ = now_ms;
  int64_t limit = static_cast<int64_t>(config_.idle_timeout_s) * 1000;
  for (auto& slot : clients_by_fd_) {
    Client* c = slot.get();
    if (c != nullptr && !c->dead && now_ms - c->last_ms > limit) {
      stats_.idle_disconnections++;
      CloseClient(c);
    }
  }
}

/*
 * Poll: one non-blocking step (see the file comment). An exception (out of
 * memory) is logged; the clients of the interrupted round are dropped, since
 * their replies are lost.
 */
PollResult Server::Poll() noexcept {
  PollResult result;
  if (!started_) {
    result.ok = false;
    return result;
  }
  try {
    now_ms_ = NowMs();
    struct epoll_event events[512];
    int n = epoll_wait(epoll_fd_, events, 512, 0);
    if (n < 0 && errno != EINTR) {
      Log(LogLevel::kWarning, ErrnoText("RESP server: epoll_wait"));
      result.ok = false;
    }
    for (int i = 0; i < n; i++) {
      uint64_t tag = events[i].data.u64;
      if (tag & kListenerTag) {
        size_t index = static_cast<size_t>(tag & ~kListenerTag);
        if (index < listeners_.size()) AcceptClients(listeners_[index].get());
        continue;
      }
      size_t fd = static_cast<size_t>(tag);
      Client* c = fd < clients_by_fd_.size() ? clients_by_fd_[fd].get() : nullptr;
      if (c == nullptr || c->dead) continue;
      if (events[i].events & EPOLLOUT) WriteClient(c);
      if (!c->dead && (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) ReadClient(c);
    }
    result.events = n > 0 ? static_cast<size_t>(n) : 0;
    uint64_t before = stats_.commands_processed;
    for (int round = 0; round < kMaxRounds && !ready_.empty(); round++) {
      bool more = false;
      RunRound(&more);
    }
    result.commands = static_cast<size_t>(stats_.commands_processed - before);
    CheckIdle(now_ms_);
    ReapClosed();
  } catch (const std::exception& e) {
    Log(LogLevel::kWarning, std::string("RESP server: internal error: ") + e.what());
    result.ok = false;
  } catch (...) {
    Log(LogLevel::kWarning, "RESP server: internal error");
    result.ok = false;
  }
  if (!result.ok) {
    try {
      for (Slot& s : slots_) {
        if (s.client != nullptr) CloseClient(s.client);
      }
      slots_.clear();
      batch_.units.clear();
      for (Client* c : ready_) c->in_ready = false;
      ready_.clear();
      ReapClosed();
    } catch (...) {
    }
  }
  return result;
}

/*
 * RunRound: parse and dispatch the ready clients (round robin within the
 * batch budget), run the batch, deliver the replies.
 */
void Server::RunRound(bool* more) {
  size_t budget = config_.max_batch_commands > 0 ? config_.max_batch_commands : 1;
  std::vector<Client*> current;
  current.swap(ready_);
  std::vector<Client*> touched;
  for (Client* c : current) {
    c->in_ready = false;
    if (c->dead) continue;
    if (budget > 0) {
      ProcessInput(c, &budget);
      if (!c->touched) {
        c->touched = true;
        touched.push_back(c);
      }
    }
    if (!c->dead && !c->close_after_reply && !c->need_more && c->in_pos < c->in.size()) {
      c->in_ready = true;
      ready_.push_back(c);
    }
  }
  FinishBatch();
  for (Client* c : touched) {
    c->touched = false;
    c->barrier = false;
    if (c->dead) continue;
    if (config_.output_buffer_limit > 0 && c->out.size() - c->out_pos > config_.output_buffer_limit) {
      Log(LogLevel::kWarning, "RESP server: closing client id=" + std::to_string(c->id) + " addr=" + c->addr +
                                  ": output buffer over its limit (" + std::to_string(config_.output_buffer_limit) +
                                  " bytes)");
      stats_.output_limit_disconnections++;
      CloseClient(c);
      continue;
    }
    if (c->peer_closed && !c->in_ready) {
      CloseClient(c);
      continue;
    }
    WriteClient(c);
  }
  *more = !ready_.empty();
}

/* ProcessInput: parses and dispatches complete requests of one client. */
void Server::ProcessInput(Client* c, size_t* budget) {
  while (*budget > 0 && !c->dead && !c->close_after_reply && !c->barrier && c->in_pos < c->in.size()) {
    std::string_view window(c->in.data() + c->in_pos, c->in.size() - c->in_pos);
    size_t consumed = 0;
    std::string error;
    bool auth_required = config_.require_auth && !c->authenticated;
    ParseStatus status = c->parser.Parse(window, auth_required, &argv_, &consumed, &error);
    if (status == ParseStatus::kNeedMore) {
      c->need_more = true;
      return;
    }
    if (status == ParseStatus::kError) {
      stats_.protocol_errors++;
      Rendered r(c->protocol);
      r.w.Error("ERR " + error);
      LocalReply(c, std::move(r.text));
      c->close_after_reply = true;
      return;
    }
    bool is_inline = window[0] != '*';
    c->in_pos += consumed;
    if (status == ParseStatus::kEmpty) continue;
    (*budget)--;
    stats_.commands_processed++;
    if (is_inline) {
      /* Inline arguments live in the parser's scratch space: own a copy. */
      Slot& holder = NewSlot(c);
      holder.kind = Slot::Kind::kText;
      holder.owned_args = std::make_unique<std::vector<std::string>>(argv_.begin(), argv_.end());
      for (size_t i = 0; i < argv_.size(); i++) argv_[i] = (*holder.owned_args)[i];
    }
    Dispatch(c, argv_);
  }
}

Slot& Server::NewSlot(Client* c) {
  slots_.emplace_back();
  Slot& s = slots_.back();
  s.client = c;
  c->has_slots = true;
  return s;
}

/* LocalReply: straight to the output buffer unless earlier replies of this
 * client wait for the batch. */
void Server::LocalReply(Client* c, std::string text) {
  if (c->has_slots) {
    Slot& s = NewSlot(c);
    s.kind = Slot::Kind::kText;
    s.text = std::move(text);
  } else {
    c->out.append(text);
  }
}

ClientContext Server::ContextOf(const Client* c) const {
  ClientContext ctx;
  ctx.client_id = c->id;
  ctx.protocol = c->protocol;
  ctx.authenticated = c->authenticated;
  ctx.user = c->user;
  return ctx;
}

/*
 * Dispatch: processCommand() of Redis 7.0 in order: QUIT, command lookup and
 * arity, authentication, MULTI queueing, then the command itself.
 */
void Server::Dispatch(Client* c, std::vector<std::string_view>& argv) {
  if (OptionIs(argv[0], "quit")) {
    LocalReply(c, "+OK\r\n");
    c->close_after_reply = true;
    return;
  }
  std::string error;
  const CommandSpec* spec = ResolveCommand(argv, &error);
  /* PING answers before AUTH too (health checks of load balancers and
   * pools): issue 13 asks for it; Redis 7.0 says NOAUTH. A deliberate
   * difference, in the README's table. */
  bool allowed_unauthenticated = spec != nullptr && ((spec->flags & kFlagNoAuth) || spec->id == CommandId::kPing);
  if (spec == nullptr || (config_.require_auth && !c->authenticated && !allowed_unauthenticated)) {
    if (spec != nullptr) error = "NOAUTH Authentication required.";
    const CommandSpec* base = FindCommand(argv[0]);
    Rendered r(c->protocol);
    if (base != nullptr && base->id == CommandId::kExec) {
      /* Redis's execCommandAbort(): a rejected EXEC discards the transaction. */
      std::string_view reason(error);
      if (reason.compare(0, 4, "ERR ") == 0) reason.remove_prefix(4);
      r.w.Error("EXECABORT Transaction discarded because of: " + std::string(reason));
      c->in_multi = c->multi_dirty = false;
      c->queued.clear();
    } else {
      r.w.Error(error);
      if (c->in_multi) c->multi_dirty = true;
    }
    LocalReply(c, std::move(r.text));
    return;
  }
  c->last_cmd = spec->name;
  CommandId id = spec->id;
  if (c->in_multi && id != CommandId::kExec && id != CommandId::kDiscard && id != CommandId::kMulti &&
      id != CommandId::kWatch && id != CommandId::kReset && id != CommandId::kQuit) {
    if (spec->flags & kFlagNoMulti) {
      LocalReply(c, "-ERR Command not allowed inside a transaction\r\n");
      c->multi_dirty = true;
      return;
    }
    c->queued.emplace_back(argv.begin(), argv.end());
    LocalReply(c, "+QUEUED\r\n");
    return;
  }
  switch (id) {
    case CommandId::kExec:
      DispatchExec(c);
      return;
    case CommandId::kAuth: {
      Request req;
      if (!ParseRequest(*spec, argv, now_ms_, &req, &error)) {
        Rendered r(c->protocol);
        r.w.Error(error);
        LocalReply(c, std::move(r.text));
        return;
      }
      batch_.units.emplace_back();
      WorkUnit& u = batch_.units.back();
      u.client = ContextOf(c);
      u.commands.emplace_back();
      u.commands.back().request = std::move(req);
      Slot& s = NewSlot(c);
      s.kind = Slot::Kind::kAuth;
      s.unit = static_cast<long>(batch_.units.size() - 1);
      c->barrier = true;
      return;
    }
    case CommandId::kHello: {
      HelloRequest hello;
      if (!ParseHello(argv, &hello, &error)) {
        Rendered r(c->protocol);
        r.w.Error(error);
        LocalReply(c, std::move(r.text));
        return;
      }
      if (!hello.has_auth) {
        if (!c->authenticated) {
          LocalReply(c,
                     "-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH "
                     "<user> <pass> option can be used to authenticate the client and select the RESP protocol "
                     "version at the same time\r\n");
          return;
        }
        if (hello.has_setname) c->name.assign(hello.name);
        if (hello.protocol) c->protocol = static_cast<int>(hello.protocol);
        Rendered r(c->protocol);
        WriteHello(c, r.w);
        LocalReply(c, std::move(r.text));
        return;
      }
      batch_.units.emplace_back();
      WorkUnit& u = batch_.units.back();
      u.client = ContextOf(c);
      u.commands.emplace_back();
      Request& req = u.commands.back().request;
      req.spec = FindCommand("auth");
      req.id = CommandId::kAuth;
      req.args = AuthRequest{hello.username, hello.password};
      Slot& s = NewSlot(c);
      s.kind = Slot::Kind::kHello;
      s.unit = static_cast<long>(batch_.units.size() - 1);
      s.hello = hello;
      c->barrier = true;
      return;
    }
    default:
      break;
  }
  if (spec->flags & kFlagExecutor) {
    Request req;
    if (!ParseRequest(*spec, argv, now_ms_, &req, &error)) {
      Rendered r(c->protocol);
      r.w.Error(error);
      LocalReply(c, std::move(r.text));
      return;
    }
    if (id == CommandId::kInfo) {
      InfoRequest& info = std::get<InfoRequest>(req.args);
      info.server_text = InfoText(argv, &info.keyspace);
    }
    batch_.units.emplace_back();
    WorkUnit& u = batch_.units.back();
    u.client = ContextOf(c);
    u.commands.emplace_back();
    u.commands.back().request = std::move(req);
    Slot& s = NewSlot(c);
    s.kind = Slot::Kind::kUnit;
    s.unit = static_cast<long>(batch_.units.size() - 1);
    return;
  }
  std::string out;
  if (HandleLocal(c, *spec, argv, &out)) LocalReply(c, std::move(out));
}

/*
 * DispatchExec: EXEC. The queued data commands become one transaction unit;
 * an argument error of a queued command is that command's reply (as in Redis,
 * where those errors happen at EXEC time); connection commands queued in the
 * block run now, in order.
 */
void Server::DispatchExec(Client* c) {
  if (!c->in_multi) {
    LocalReply(c, "-ERR EXEC without MULTI\r\n");
    return;
  }
  if (c->multi_dirty) {
    c->queued.clear();
    c->in_multi = c->multi_dirty = false;
    LocalReply(c, "-EXECABORT Transaction discarded because of previous errors.\r\n");
    return;
  }
  auto owned = std::make_unique<std::vector<std::vector<std::string>>>(std::move(c->queued));
  c->queued.clear();
  c->in_multi = false;
  Slot& s = NewSlot(c);
  s.kind = Slot::Kind::kExec;
  s.owned_exec = std::move(owned);
  std::vector<std::string_view> argv;
  for (const std::vector<std::string>& queued : *s.owned_exec) {
    argv.assign(queued.begin(), queued.end());
    std::string error;
    const CommandSpec* spec = ResolveCommand(argv, &error);
    if (spec == nullptr) {
      Rendered r(c->protocol);
      r.w.Error(error);
      s.parts.emplace_back(-1, std::move(r.text));
      continue;
    }
    if (spec->flags & kFlagExecutor) {
      Request req;
      if (!ParseRequest(*spec, argv, now_ms_, &req, &error)) {
        Rendered r(c->protocol);
        r.w.Error(error);
        s.parts.emplace_back(-1, std::move(r.text));
        continue;
      }
      if (spec->id == CommandId::kInfo) {
        InfoRequest& info = std::get<InfoRequest>(req.args);
        info.server_text = InfoText(argv, &info.keyspace);
      }
      if (s.unit < 0) {
        batch_.units.emplace_back();
        batch_.units.back().client = ContextOf(c);
        batch_.units.back().transaction = true;
        s.unit = static_cast<long>(batch_.units.size() - 1);
      }
      WorkUnit& u = batch_.units[static_cast<size_t>(s.unit)];
      u.commands.emplace_back();
      u.commands.back().request = std::move(req);
      s.parts.emplace_back(static_cast<long>(u.commands.size() - 1), std::string());
      continue;
    }
    std::string out;
    HandleLocal(c, *spec, argv, &out);
    s.parts.emplace_back(-1, std::move(out));
  }
}

/*
 * FinishBatch: runs the executor over the batch, then appends every slot's
 * reply to its client's output buffer, in order.
 */
void Server::FinishBatch() {
  if (!batch_.units.empty()) {
    batch_.now_ms = now_ms_;
    if (executor_ != nullptr) executor_->Execute(batch_);
    stats_.batches++;
  }
  static const char kNoReply[] = "-ERR internal error: the executor gave no reply\r\n";
  for (Slot& s : slots_) {
    Client* c = s.client;
    c->has_slots = false;
    if (c->dead) continue;
    WorkUnit* u = s.unit >= 0 ? &batch_.units[static_cast<size_t>(s.unit)] : nullptr;
    switch (s.kind) {
      case Slot::Kind::kText:
        c->out.append(s.text);
        break;
      case Slot::Kind::kUnit:
        if (u->commands[0].reply.empty()) c->out.append(kNoReply);
        else c->out.append(u->commands[0].reply);
        break;
      case Slot::Kind::kAuth:
      case Slot::Kind::kHello: {
        if (!u->auth.ok) {
          ReplyWriter w(&c->out, c->protocol);
          w.Error(u->auth.error.empty() ? std::string("WRONGPASS invalid username-password pair or user is disabled.")
                                        : u->auth.error);
          break;
        }
        c->authenticated = true;
        c->user = u->auth.user.empty() ? std::string("default") : u->auth.user;
        if (s.kind == Slot::Kind::kAuth) {
          c->out.append("+OK\r\n");
          break;
        }
        if (s.hello.has_setname) c->name.assign(s.hello.name);
        if (s.hello.protocol) c->protocol = static_cast<int>(s.hello.protocol);
        ReplyWriter w(&c->out, c->protocol);
        WriteHello(c, w);
        break;
      }
      case Slot::Kind::kExec: {
        if (u != nullptr && u->aborted) {
          ReplyWriter w(&c->out, c->protocol);
          w.Error(u->abort_error.empty() ? std::string("EXECABORT Transaction rolled back") : u->abort_error);
          break;
        }
        ReplyWriter w(&c->out, c->protocol);
        w.Array(s.parts.size());
        for (auto& [index, text] : s.parts) {
          if (index < 0) c->out.append(text);
          else if (u->commands[static_cast<size_t>(index)].reply.empty()) c->out.append(kNoReply);
          else c->out.append(u->commands[static_cast<size_t>(index)].reply);
        }
        break;
      }
    }
  }
  slots_.clear();
  batch_.units.clear();
}

/* HandleLocal: connection commands. Returns false when there is no reply. */
bool Server::HandleLocal(Client* c, const CommandSpec& spec, const std::vector<std::string_view>& argv,
                         std::string* out) {
  ReplyWriter w(out, c->protocol);
  switch (spec.id) {
    case CommandId::kPing:
      if (argv.size() > 2) w.Error(ArityError(spec));
      else if (argv.size() == 2) w.Bulk(argv[1]);
      else w.Simple("PONG");
      return true;
    case CommandId::kEcho:
      w.Bulk(argv[1]);
      return true;
    case CommandId::kSelect: {
      int64_t db = 0;
      if (!ParseLongLong(argv[1], &db)) w.Error("ERR value is not an integer or out of range");
      else if (db < INT32_MIN || db > INT32_MAX)
        w.Error("ERR value is out of range, value must between -2147483648 and 2147483647");
      else if (db != 0) w.Error("ERR DB index is out of range");
      else w.Simple("OK");
      return true;
    }
    case CommandId::kMulti:
      if (c->in_multi) {
        w.Error("ERR MULTI calls can not be nested");
      } else {
        c->in_multi = true;
        c->multi_dirty = false;
        c->queued.clear();
        w.Simple("OK");
      }
      return true;
    case CommandId::kDiscard:
      if (!c->in_multi) {
        w.Error("ERR DISCARD without MULTI");
      } else {
        c->in_multi = c->multi_dirty = false;
        c->queued.clear();
        w.Simple("OK");
      }
      return true;
    case CommandId::kWatch:
      if (c->in_multi) w.Error("ERR WATCH inside MULTI is not allowed");
      else w.Error("ERR WATCH is not supported by FastPgCache (MULTI/EXEC blocks run as one PostgreSQL transaction)");
      return true;
    case CommandId::kUnwatch:
      w.Simple("OK"); /* nothing can be watched */
      return true;
    case CommandId::kReset:
      ResetClient(c);
      out->clear();
      ReplyWriter(out, c->protocol).Simple("RESET");
      return true;
    case CommandId::kClientId: case CommandId::kClientGetName: case CommandId::kClientSetName:
    case CommandId::kClientInfo: case CommandId::kClientList: case CommandId::kClientSetInfo:
      ClientCommand(c, spec, argv, w);
      return true;
    case CommandId::kCommand: case CommandId::kCommandCount: case CommandId::kCommandDocs:
    case CommandId::kCommandInfo: case CommandId::kCommandList:
      CommandCommand(spec, argv, w);
      return true;
    case CommandId::kConfigGet:
      ConfigGet(argv, w);
      return true;
    default:
      w.Error("ERR internal error: no handler for '" + std::string(spec.name) + "'");
      return true;
  }
}

/* ResetClient: RESET's connection state (auth, protocol, name, transaction). */
void Server::ResetClient(Client* c) {
  c->in_multi = c->multi_dirty = false;
  c->queued.clear();
  c->protocol = 2;
  c->name.clear();
  c->user = "default";
  c->authenticated = !config_.require_auth;
}

/* WriteHello: HELLO's map (7 fields, as Redis 7.0 outside sentinel mode). */
void Server::WriteHello(Client* c, ReplyWriter& w) {
  w.Map(7);
  w.Bulk("server");
  w.Bulk("redis");
  w.Bulk("version");
  w.Bulk(config_.version);
  w.Bulk("proto");
  w.Integer(c->protocol);
  w.Bulk("id");
  w.Integer(static_cast<int64_t>(c->id));
  w.Bulk("mode");
  w.Bulk("standalone");
  w.Bulk("role");
  w.Bulk("master");
  w.Bulk("modules");
  w.Array(0);
}

/* ClientInfoLine: the CLIENT LIST/INFO format of Redis 7.2 (a subset of the
 * memory fields, reported as 0 where they have no meaning here). */
std::string Server::ClientInfoLine(const Client* c, std::string_view cmd) const {
  std::string s;
  s.reserve(256);
  s += "id=" + std::to_string(c->id);
  s += " addr=" + c->addr + " laddr=" + c->laddr;
  s += " fd=" + std::to_string(c->fd);
  s += " name=" + c->name;
  s += " age=" + std::to_string((now_ms_ - c->created_ms) / 1000);
  s += " idle=" + std::to_string((now_ms_ - c->last_ms) / 1000);
  s += std::string(" flags=") + (c->in_multi ? "x" : "N");
  s += " db=0 sub=0 psub=0 ssub=0";
  s += " multi=" + std::to_string(c->in_multi ? static_cast<long>(c->queued.size()) : -1L);
  s += " qbuf=" + std::to_string(c->in.size() - c->in_pos);
  s += " qbuf-free=" + std::to_string(c->in.capacity() - c->in.size());
  s += " argv-mem=0 multi-mem=0 rbs=" + std::to_string(c->in.capacity()) + " rbp=0 obl=0 oll=0";
  s += " omem=" + std::to_string(c->out.size() - c->out_pos);
  s += " tot-mem=" + std::to_string(c->in.capacity() + c->out.capacity());
  s += std::string(" events=") + ((c->out_pos < c->out.size()) ? "rw" : "r");
  s += " cmd=" + std::string(cmd);
  s += " user=" + c->user;
  s += " redir=-1 resp=" + std::to_string(c->protocol);
  s += " lib-name=" + c->lib_name + " lib-ver=" + c->lib_ver;
  s += "\n";
  return s;
}

/* ClientCommand: the CLIENT subcommands this server implements. */
void Server::ClientCommand(Client* c, const CommandSpec& spec, const std::vector<std::string_view>& argv,
                           ReplyWriter& w) {
  std::string error;
  switch (spec.id) {
    case CommandId::kClientId:
      w.Integer(static_cast<int64_t>(c->id));
      return;
    case CommandId::kClientGetName:
      if (c->name.empty()) w.Null();
      else w.Bulk(c->name);
      return;
    case CommandId::kClientSetName:
      if (!ValidateClientName(argv[2], &error)) {
        w.Error(error);
        return;
      }
      c->name.assign(argv[2]);
      w.Simple("OK");
      return;
    case CommandId::kClientInfo:
      w.Verbatim(ClientInfoLine(c, "client|info"));
      return;
    case CommandId::kClientSetInfo: {
      std::string* dest = nullptr;
      if (OptionIs(argv[2], "lib-name")) dest = &c->lib_name;
      else if (OptionIs(argv[2], "lib-ver")) dest = &c->lib_ver;
      if (dest == nullptr) {
        w.Error("ERR Unrecognized option '" + std::string(CStr(argv[2])) + "'");
        return;
      }
      for (char ch : argv[3]) {
        if (ch < '!' || ch > '~') {
          w.Error("ERR " + std::string(CStr(argv[2])) + " cannot contain spaces, newlines or special characters.");
          return;
        }
      }
      dest->assign(argv[3]);
      w.Simple("OK");
      return;
    }
    case CommandId::kClientList: {
      std::vector<uint64_t> ids;
      bool by_id = false;
      if (argv.size() == 4 && OptionIs(argv[2], "type")) {
        std::string type = Lower(CStr(argv[3]));
        if (type != "normal" && type != "master" && type != "replica" && type != "slave" && type != "pubsub") {
          w.Error("ERR Unknown client type '" + std::string(CStr(argv[3])) + "'");
          return;
        }
        if (type != "normal") {
          w.Verbatim("");
          return;
        }
      } else if (argv.size() > 3 && OptionIs(argv[2], "id")) {
        by_id = true;
        for (size_t i = 3; i < argv.size(); i++) {
          int64_t id = 0;
          if (!ParseLongLong(argv[i], &id) || id <= 0) {
            w.Error("ERR Invalid client ID");
            return;
          }
          ids.push_back(static_cast<uint64_t>(id));
        }
      } else if (argv.size() != 2) {
        w.Error("ERR syntax error");
        return;
      }
      std::string text;
      for (const auto& slot : clients_by_fd_) {
        const Client* other = slot.get();
        if (other == nullptr || other->dead) continue;
        if (by_id && std::find(ids.begin(), ids.end(), other->id) == ids.end()) continue;
        text += ClientInfoLine(other, other == c ? "client|list" : other->last_cmd);
      }
      w.Verbatim(text);
      return;
    }
    default:
      w.Error("ERR internal error");
  }
}

/* CommandCommand: COMMAND, COMMAND COUNT/LIST/INFO/DOCS from the command table. */
void Server::CommandCommand(const CommandSpec& spec, const std::vector<std::string_view>& argv, ReplyWriter& w) {
  size_t count = 0;
  const CommandSpec* table = CommandTable(&count);
  switch (spec.id) {
    case CommandId::kCommand:
      w.Array(count);
      for (size_t i = 0; i < count; i++) WriteCommandInfo(w, &table[i]);
      return;
    case CommandId::kCommandCount:
      w.Integer(static_cast<int64_t>(count));
      return;
    case CommandId::kCommandList:
      if (argv.size() != 2) {
        w.Error("ERR syntax error");
        return;
      }
      w.Array(count);
      for (size_t i = 0; i < count; i++) w.Bulk(table[i].name);
      return;
    case CommandId::kCommandInfo:
      if (argv.size() == 2) {
        w.Array(count);
        for (size_t i = 0; i < count; i++) WriteCommandInfo(w, &table[i]);
      } else {
        w.Array(argv.size() - 2);
        for (size_t i = 2; i < argv.size(); i++) WriteCommandInfo(w, FindCommandByFullName(argv[i]));
      }
      return;
    case CommandId::kCommandDocs: {
      std::vector<const CommandSpec*> found;
      if (argv.size() == 2) {
        for (size_t i = 0; i < count; i++) found.push_back(&table[i]);
      } else {
        for (size_t i = 2; i < argv.size(); i++) {
          const CommandSpec* s = FindCommandByFullName(argv[i]);
          if (s != nullptr) found.push_back(s);
        }
      }
      w.Map(found.size());
      for (const CommandSpec* s : found) {
        w.Bulk(s->name);
        WriteCommandDocs(w, *s);
      }
      return;
    }
    default:
      w.Error("ERR internal error");
  }
}

/* ConfigGet: the few parameters clients and tools ask for, matched with
 * CONFIG GET's case-insensitive glob, each reported once. */
void Server::ConfigGet(const std::vector<std::string_view>& argv, ReplyWriter& w) {
  std::string bind;
  for (const std::string& a : config_.listen_addresses) bind += (bind.empty() ? "" : " ") + a;
  const std::pair<const char*, std::string> params[] = {
      {"appendonly", "no"},
      {"bind", bind},
      {"client-output-buffer-limit",
       "normal " + std::to_string(config_.output_buffer_limit) + " 0 0 slave 0 0 0 pubsub 0 0 0"},
      {"client-query-buffer-limit", std::to_string(config_.query_buffer_limit)},
      {"cluster-enabled", "no"},
      {"databases", "1"},
      {"maxclients", std::to_string(max_clients_)},
      {"maxmemory", "0"},
      {"port", std::to_string(BoundPort(0) >= 0 ? BoundPort(0) : config_.port)},
      {"proto-max-bulk-len", std::to_string(config_.limits.max_bulk_len)},
      {"save", ""},
      {"timeout", std::to_string(config_.idle_timeout_s)},
      {"unixsocket", config_.unix_socket},
  };
  std::vector<const std::pair<const char*, std::string>*> matches;
  for (size_t i = 2; i < argv.size(); i++) {
    for (const auto& p : params) {
      if (GlobMatch(argv[i], p.first, true) && std::find(matches.begin(), matches.end(), &p) == matches.end())
        matches.push_back(&p);
    }
  }
  w.Map(matches.size());
  for (const auto* p : matches) {
    w.Bulk(p->first);
    w.Bulk(p->second);
  }
}

/* InfoText: the server, clients and stats sections INFO asked for; sets
 * *keyspace when the keyspace section is wanted too (the executor adds it). */
std::string Server::InfoText(const std::vector<std::string_view>& argv, bool* keyspace) {
  bool all = argv.size() == 1;
  bool server = false, clients = false, stats = false;
  *keyspace = false;
  for (size_t i = 1; i < argv.size(); i++) {
    std::string s = Lower(argv[i]);
    if (s == "all" || s == "default" || s == "everything") all = true;
    else if (s == "server") server = true;
    else if (s == "clients") clients = true;
    else if (s == "stats") stats = true;
    else if (s == "keyspace") *keyspace = true;
  }
  if (all) server = clients = stats = *keyspace = true;
  std::string text;
  auto section = [&](const char* title) {
    if (!text.empty()) text += "\r\n";
    text += "# ";
    text += title;
    text += "\r\n";
  };
  if (server) {
    section("Server");
    text += "redis_version:" + config_.version + "\r\n";
    text += "redis_mode:standalone\r\nos:Linux\r\narch_bits:64\r\nmultiplexing_api:epoll\r\n";
    text += "process_id:" + std::to_string(getpid()) + "\r\n";
    text += "tcp_port:" + std::to_string(BoundPort(0) >= 0 ? BoundPort(0) : 0) + "\r\n";
    int64_t up = (now_ms_ - start_ms_) / 1000;
    text += "uptime_in_seconds:" + std::to_string(up) + "\r\n";
    text += "uptime_in_days:" + std::to_string(up / 86400) + "\r\n";
    text += "server_implementation:fastpgcache\r\n";
  }
  if (clients) {
    section("Clients");
    text += "connected_clients:" + std::to_string(client_count_) + "\r\n";
    text += "maxclients:" + std::to_string(max_clients_) + "\r\n";
  }
  if (stats) {
    section("Stats");
    text += "total_connections_received:" + std::to_string(stats_.connections_received) + "\r\n";
    text += "total_commands_processed:" + std::to_string(stats_.commands_processed) + "\r\n";
    text += "rejected_connections:" + std::to_string(stats_.rejected_connections) + "\r\n";
    text += "total_batches:" + std::to_string(stats_.batches) + "\r\n";
    text += "client_output_buffer_limit_disconnections:" + std::to_string(stats_.output_limit_disconnections) + "\r\n";
    text += "client_query_buffer_limit_disconnections:" + std::to_string(stats_.query_limit_disconnections) + "\r\n";
  }
  return text;
}

}  // namespace fastpgcache::resp

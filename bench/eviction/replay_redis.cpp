// Replays a trace (traces.cpp) cache-aside against a real redis-server whose
// maxmemory is calibrated so that it holds a given number of entries.
//
//   replay_redis --port P --cap N [--samples S] [--window W] [--limit R]
//                [--no-limit] TRACE_PREFIX
//
// Prints one CSV line:
//   trace,cap,samples,requests,hits,hit_ratio,dbsize_mean,dbsize_end,maxmemory,evicted_keys,seconds,requests_per_s
//
// Keys are "k:%08u" of the trace's key id (10 bytes), values 32 bytes, so
// every entry costs Redis the same memory.
//
// Exactness of the pipelined replay. A cache-aside request is GET k and, on
// a miss, SET k v; the SET must reach the server before the next request.
// Each request is sent as ONE command, SET k v NX GET (Redis >= 7.0): it
// returns the old value (a hit, and like GET it refreshes the key's LRU
// clock) or nil (a miss), in which case it has stored v, exactly what the
// client's SET would have done next. Redis runs a connection's commands in
// order and evicts before each command while it is over maxmemory, so a
// pipeline of these commands is the sequential replay: no request's outcome
// depends on where the pipeline is cut. The window only bounds the bytes in
// flight (which Redis counts in used_memory, like any client buffer: the
// calibration runs with the same window, so it is accounted for).
//
// Calibration. With maxmemory 0, fill N distinct keys and read used_memory:
// the first maxmemory and the memory per key. The entry count a maxmemory
// buys then drifts during a replay (used_memory per key is not constant under
// the replay's traffic: a distinct-key fill held 10% fewer keys than the
// same maxmemory held late in a replay), so the whole replay is repeated, at
// most 4 times, with maxmemory corrected by (N - mean DBSIZE) x memory per
// key, until the mean DBSIZE (sampled every 1% of the trace once it first
// reaches 95% of N) is within 1% of N. The last replay is reported, with its
// mean and final DBSIZE: the achieved entry count beside the hit ratio.
//
// --no-limit: maxmemory 0 (no eviction): hits must then be requests minus
// distinct keys, which run.sh checks to test the replay's hit counting.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace {

[[noreturn]] void Die(const std::string &msg) {
  std::fprintf(stderr, "replay_redis: %s\n", msg.c_str());
  std::exit(1);
}

class Conn {
 public:
  explicit Conn(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    if (fd_ < 0) Die(std::string("socket: ") + std::strerror(errno));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd_, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0)
      Die("connect to 127.0.0.1:" + std::to_string(port) + ": " + std::strerror(errno));
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~Conn() { close(fd_); }
  Conn(const Conn &) = delete;
  Conn &operator=(const Conn &) = delete;

  void Send(const std::string &buf) {
    size_t off = 0;
    while (off < buf.size()) {
      ssize_t n = write(fd_, buf.data() + off, buf.size() - off);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) Die(std::string("write: ") + std::strerror(errno));
      off += static_cast<size_t>(n);
    }
  }

  // One reply. Kind: '+', '-', ':', '$' (is_null for nil), '*' (elements
  // joined by '\n'). Errors from the server end the program.
  struct Reply {
    char kind;
    bool is_null;
    std::string str;
  };
  Reply Read() {
    std::string line = Line();
    if (line.empty()) Die("empty reply line");
    Reply r{line[0], false, line.substr(1)};
    switch (r.kind) {
      case '+':
      case ':':
        return r;
      case '-':
        Die("server error: " + r.str);
      case '$': {
        long len = std::strtol(r.str.c_str(), nullptr, 10);
        if (len < 0) {
          r.is_null = true;
          r.str.clear();
          return r;
        }
        r.str = Bytes(static_cast<size_t>(len));
        if (Bytes(2) != "\r\n") Die("bad bulk terminator");
        return r;
      }
      case '*': {
        long n = std::strtol(r.str.c_str(), nullptr, 10);
        r.str.clear();
        if (n < 0) {
          r.is_null = true;
          return r;
        }
        for (long i = 0; i < n; i++) {
          Reply e = Read();
          if (i) r.str += '\n';
          r.str += e.str;
        }
        return r;
      }
      default:
        Die("unexpected reply: " + line);
    }
  }

  Reply Cmd(const std::vector<std::string> &args) {
    std::string b;
    Append(b, args);
    Send(b);
    return Read();
  }

  static void Append(std::string &b, const std::vector<std::string> &args) {
    b += '*' + std::to_string(args.size()) + "\r\n";
    for (const auto &a : args) {
      b += '$' + std::to_string(a.size()) + "\r\n";
      b += a;
      b += "\r\n";
    }
  }

 private:
  void Fill() {
    if (pos_ > 0 && pos_ == len_) pos_ = len_ = 0;
    if (len_ == sizeof buf_) {
      std::memmove(buf_, buf_ + pos_, len_ - pos_);
      len_ -= pos_;
      pos_ = 0;
    }
    ssize_t n;
    do n = read(fd_, buf_ + len_, sizeof buf_ - len_);
    while (n < 0 && errno == EINTR);
    if (n <= 0) Die("connection closed by the server");
    len_ += static_cast<size_t>(n);
  }
  std::string Line() {
    std::string out;
    for (;;) {
      for (size_t i = pos_; i + 1 < len_; i++)
        if (buf_[i] == '\r' && buf_[i + 1] == '\n') {
          out.append(buf_ + pos_, i - pos_);
          pos_ = i + 2;
          return out;
        }
      // keep a trailing '\r' for the next round
      size_t keep = len_ > pos_ && buf_[len_ - 1] == '\r' ? 1 : 0;
      out.append(buf_ + pos_, len_ - pos_ - keep);
      pos_ = len_ - keep;
      if (keep) {
        buf_[0] = '\r';
        pos_ = 0;
        len_ = 1;
      } else {
        pos_ = len_ = 0;
      }
      Fill();
    }
  }
  std::string Bytes(size_t n) {
    std::string out;
    while (out.size() < n) {
      if (pos_ == len_) {
        pos_ = len_ = 0;
        Fill();
      }
      size_t take = std::min(n - out.size(), len_ - pos_);
      out.append(buf_ + pos_, take);
      pos_ += take;
    }
    return out;
  }

  int fd_;
  char buf_[1 << 16];
  size_t pos_ = 0, len_ = 0;
};

const std::string kValue(32, 'v');

std::string Key(char prefix, uint32_t id) {
  char k[16];
  std::snprintf(k, sizeof k, "%c:%08u", prefix, id);
  return k;
}

uint64_t DbSize(Conn &c);

// Sends SET k v NX GET for each id, window commands at a time; returns hits.
// With sizes, appends DBSIZE every sample_every requests.
uint64_t Run(Conn &c, char prefix, const uint32_t *ids, size_t n, size_t window,
             std::vector<uint64_t> *sizes = nullptr, size_t sample_every = 0) {
  uint64_t hits = 0;
  std::string buf;
  size_t next_sample = sample_every;
  for (size_t i = 0; i < n; i += window) {
    if (sizes != nullptr && i >= next_sample) {
      sizes->push_back(DbSize(c));
      next_sample += sample_every;
    }
    size_t m = std::min(window, n - i);
    buf.clear();
    for (size_t j = 0; j < m; j++) Conn::Append(buf, {"SET", Key(prefix, ids[i + j]), kValue, "NX", "GET"});
    c.Send(buf);
    for (size_t j = 0; j < m; j++) {
      auto r = c.Read();
      if (r.kind != '$') Die("unexpected reply kind to SET NX GET");
      if (!r.is_null) {
        if (r.str != kValue) Die("a hit returned another value");
        hits++;
      }
    }
  }
  return hits;
}

uint64_t InfoField(Conn &c, const std::string &section, const std::string &field) {
  auto r = c.Cmd({"INFO", section});
  std::istringstream in(r.str);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::strtoull(line.c_str() + field.size() + 1, nullptr, 10);
  }
  Die("INFO " + section + " has no " + field);
}

uint64_t DbSize(Conn &c) {
  auto r = c.Cmd({"DBSIZE"});
  return std::strtoull(r.str.c_str(), nullptr, 10);
}

uint64_t ParseU64(const char *s, const char *what) {
  char *end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0') Die(std::string("bad ") + what + ": " + s);
  return v;
}

}  // namespace

int main(int argc, char **argv) {
  int port = 0;
  uint64_t cap = 0, samples = 5, window = 128, limit = 0;
  bool no_limit = false, keep = false;
  std::string prefix;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto val = [&](const char *what) {
      if (i + 1 >= argc) Die(a + " needs a value");
      return ParseU64(argv[++i], what);
    };
    if (a == "--port") port = static_cast<int>(val("port"));
    else if (a == "--cap") cap = val("cap");
    else if (a == "--samples") samples = val("samples");
    else if (a == "--window") window = val("window");
    else if (a == "--limit") limit = val("limit");
    else if (a == "--no-limit") no_limit = true;
    else if (a == "--keep") keep = true;
    else if (!a.empty() && a[0] != '-') prefix = a;
    else Die("unknown option " + a);
  }
  if (port <= 0 || port > 65535 || prefix.empty() || (cap < 2 && !no_limit) || window < 1 || samples < 1 ||
      samples > 64)
    Die("usage: replay_redis --port P --cap N [--samples S] [--window W] [--limit R] [--no-limit] TRACE_PREFIX");

  std::vector<uint32_t> trace;
  {
    FILE *f = std::fopen((prefix + ".trace").c_str(), "rb");
    if (f == nullptr) Die("cannot read " + prefix + ".trace");
    uint32_t b[65536];
    size_t n;
    while ((n = std::fread(b, 4, 65536, f)) > 0) trace.insert(trace.end(), b, b + n);
    std::fclose(f);
  }
  if (limit > 0 && limit < trace.size()) trace.resize(limit);
  std::string name = prefix.substr(prefix.find_last_of('/') + 1);

  Conn c(port);
  c.Cmd({"CONFIG", "SET", "maxmemory", "0"});
  c.Cmd({"FLUSHALL", "SYNC"});
  c.Cmd({"CONFIG", "SET", "maxmemory-policy", "allkeys-lru"});
  c.Cmd({"CONFIG", "SET", "maxmemory-samples", std::to_string(samples)});

  uint64_t maxmemory = 0;
  double per_key = 0;
  if (!no_limit) {
    std::vector<uint32_t> ids(cap);
    for (uint32_t i = 0; i < ids.size(); i++) ids[i] = i;
    uint64_t base = InfoField(c, "memory", "used_memory");
    Run(c, 'c', ids.data(), cap, window);
    uint64_t full = InfoField(c, "memory", "used_memory");
    per_key = static_cast<double>(full - base) / static_cast<double>(cap);
    maxmemory = full;
  }

  // The replay. The entry count a maxmemory buys is not constant: Redis's
  // used_memory per key drifts during a replay (client buffers, the dict's
  // incremental rehashing, jemalloc size classes), so a fill with distinct
  // keys alone gave 10% more keys than intended in a long replay. So the
  // whole replay is repeated (at most 4 times) with maxmemory corrected by
  // the difference between the target and the mean DBSIZE (sampled every
  // 1% of the trace, from the first sample at 95% of the target on), until
  // that mean is within 1% of the target; the last replay is reported.
  uint64_t hits = 0, dbsize = 0, evicted = 0;
  double secs = 0, mean = 0;
  for (int iter = 0; iter < (no_limit ? 1 : 4); iter++) {
    c.Cmd({"CONFIG", "SET", "maxmemory", "0"});
    c.Cmd({"FLUSHALL", "SYNC"});
    c.Cmd({"CONFIG", "SET", "maxmemory", std::to_string(maxmemory)});
    c.Cmd({"CONFIG", "RESETSTAT"});
    std::vector<uint64_t> sizes;
    auto t0 = std::chrono::steady_clock::now();
    hits = Run(c, 'k', trace.data(), trace.size(), window, &sizes, std::max<size_t>(trace.size() / 100, 1));
    secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    dbsize = DbSize(c);
    evicted = InfoField(c, "stats", "evicted_keys");
    sizes.push_back(dbsize);
    double sum = 0;
    size_t cnt = 0;
    bool warm = false;
    for (uint64_t z : sizes) {
      warm = warm || static_cast<double>(z) >= 0.95 * static_cast<double>(cap);
      if (warm) {
        sum += static_cast<double>(z);
        cnt++;
      }
    }
    mean = cnt ? sum / static_cast<double>(cnt) : static_cast<double>(dbsize);
    if (no_limit) break;
    std::fprintf(stderr, "replay_redis: %s cap %llu samples %llu: maxmemory %llu held %.0f keys on average (end %llu)\n",
                 name.c_str(), static_cast<unsigned long long>(cap), static_cast<unsigned long long>(samples),
                 static_cast<unsigned long long>(maxmemory), mean, static_cast<unsigned long long>(dbsize));
    double diff = static_cast<double>(cap) - mean;
    if (std::abs(diff) <= 0.01 * static_cast<double>(cap)) break;
    maxmemory = static_cast<uint64_t>(static_cast<double>(maxmemory) + diff * per_key);
  }
  if (!keep) {
    c.Cmd({"CONFIG", "SET", "maxmemory", "0"});
    c.Cmd({"FLUSHALL", "SYNC"});
  }
  std::printf("%s,%llu,%llu,%zu,%llu,%.6f,%.0f,%llu,%llu,%llu,%.2f,%.0f\n", name.c_str(),
              static_cast<unsigned long long>(no_limit ? 0 : cap), static_cast<unsigned long long>(samples),
              trace.size(), static_cast<unsigned long long>(hits),
              static_cast<double>(hits) / static_cast<double>(trace.size()), mean, static_cast<unsigned long long>(dbsize),
              static_cast<unsigned long long>(maxmemory), static_cast<unsigned long long>(evicted), secs,
              static_cast<double>(trace.size()) / secs);
  return 0;
}

/*
 * server.hpp
 *
 * The network layer of FastPgCache's Redis front, as pure C++ (Linux epoll,
 * non-blocking sockets, no threads, no PostgreSQL header): TCP listeners
 * (several addresses, SO_REUSEPORT so that several worker processes share a
 * port) and an optional unix socket; per-client read buffer and RESP parser,
 * output buffer with a limit, max clients, idle timeout; connection state and
 * connection commands (HELLO, AUTH hand-off, CLIENT, SELECT, PING, ECHO, QUIT,
 * RESET, COMMAND, CONFIG GET, MULTI/EXEC/DISCARD queueing).
 *
 * It never blocks and never owns the event loop: the caller (PostgreSQL's
 * background worker, waiting in a WaitEventSet on its latch plus ONE extra fd)
 * waits on EpollFd() (nested epoll) and calls Poll() whenever it is readable,
 * at least every NextTimeoutMs(), and again at once while HasPendingWork().
 * The public boundary is noexcept: errors are return values and log callbacks;
 * nothing calls exit() or abort().
 *
 * Data commands (and AUTH, and INFO's keyspace) go to an Executor, which the
 * PostgreSQL side implements. It is built for group commit: each Poll() hands
 * the executor ONE batch with every ready command of every client (a MULTI/EXEC
 * block is one all-or-nothing unit), and replies are written only after
 * Execute() returns, i.e. after the executor committed.
 */
#ifndef FASTPGCACHE_RESP_SERVER_HPP
#define FASTPGCACHE_RESP_SERVER_HPP

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "commands.hpp"
#include "protocol.hpp"

namespace fastpgcache::resp {

/* ---------------- executor interface (implemented by the PostgreSQL side) ---------------- */

/* Who issued a unit of work (a copy: stays valid whatever the client does next). */
struct ClientContext {
  uint64_t client_id = 0;
  int protocol = 2;            /* reply encoding: 2 or 3 (use ReplyWriter) */
  bool authenticated = false;  /* false only when the server does not require AUTH */
  std::string user;            /* the authenticated user ("default" before any AUTH) */
};

/* One parsed data command and its reply. */
struct ExecCommand {
  Request request;             /* views valid during Execute() */
  std::string reply;           /* the executor appends exactly one RESP reply */
};

/* Result of an AuthRequest (AUTH, HELLO ... AUTH): the executor fills this in
 * and writes NO reply; the server answers +OK / the HELLO map / -<error>. */
struct AuthOutcome {
  bool ok = false;
  std::string user;            /* the user now in effect */
  std::string error;           /* e.g. "WRONGPASS invalid username-password pair or user is disabled." */
};

/* A unit of work: one command, or a MULTI/EXEC block that must run all or
 * nothing. Units of different clients are independent: a failure in one must
 * never undo another. */
struct WorkUnit {
  ClientContext client;
  bool transaction = false;    /* commands come from one EXEC */
  std::vector<ExecCommand> commands;
  /* transaction only: set when the block was rolled back as a whole; the
   * client then gets "-<abort_error>" instead of EXEC's array. */
  bool aborted = false;
  std::string abort_error;
  AuthOutcome auth;            /* for an AuthRequest (always a single-command unit) */
};

struct Batch {
  int64_t now_ms = 0;          /* the clock reading relative expiries were computed from */
  std::vector<WorkUnit> units;
};

/*
 * Executor: runs a batch and fills in every reply (commands[i].reply, or
 * auth/aborted). Called from Poll(); must not throw (it is noexcept: an
 * exception would terminate the process) and must return only after the work
 * is durable/visible (committed): replies are sent right after it returns.
 */
class Executor {
 public:
  virtual ~Executor() = default;
  virtual void Execute(Batch& batch) noexcept = 0;
};

/* ---------------- server ---------------- */

enum class LogLevel { kDebug, kInfo, kWarning };

/* Log sink: must not throw (nor longjmp: on the PostgreSQL side, ereport below
 * ERROR only). */
using LogFunction = void (*)(void* arg, LogLevel level, const char* message);

struct ServerConfig {
  std::vector<std::string> listen_addresses{"127.0.0.1"}; /* numeric IPv4/IPv6, "*" = all */
  int port = 6379;                      /* 0: an ephemeral port (tests) */
  std::string unix_socket;              /* empty: none */
  unsigned unix_socket_mode = 0700;
  bool reuse_port = true;               /* SO_REUSEPORT: several processes share the port */
  int backlog = 511;
  size_t max_clients = 10000;
  ParserLimits limits;                  /* bulk length (512 MB), multibulk count, inline 64 KB */
  size_t query_buffer_limit = 1024u * 1024 * 1024;  /* Redis client-query-buffer-limit */
  size_t output_buffer_limit = 256u * 1024 * 1024;  /* 0: unlimited (Redis' normal class) */
  int idle_timeout_s = 0;               /* 0: never (Redis "timeout 0") */
  bool require_auth = false;
  size_t max_batch_commands = 8192;     /* commands per executor batch */
  std::string version = "7.0.0";        /* redis_version reported by HELLO/INFO */
  LogFunction log = nullptr;
  void* log_arg = nullptr;
};

struct ServerStats {
  uint64_t connections_received = 0;
  uint64_t rejected_connections = 0;
  uint64_t commands_processed = 0;
  uint64_t batches = 0;
  uint64_t protocol_errors = 0;
  uint64_t output_limit_disconnections = 0;
  uint64_t query_limit_disconnections = 0;
  uint64_t idle_disconnections = 0;
  size_t connected_clients = 0;
};

struct PollResult {
  bool ok = true;             /* false: an internal error was logged */
  size_t events = 0;
  size_t commands = 0;
};

struct Client;
struct Listener;
struct Slot;

class Server {
 public:
  /* Copies the configuration (may throw std::bad_alloc); no system call. */
  Server(const ServerConfig& config, Executor* executor);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  /* Raises RLIMIT_NOFILE as needed, creates the epoll fd and the listeners.
   * On failure returns false with *error set and holds no resource. */
  bool Start(std::string* error) noexcept;

  /* Closes every client and listener (removing the unix socket file). */
  void Stop() noexcept;

  /* The fd to wait on (readable when Poll() has work). -1 before Start(). */
  int EpollFd() const noexcept { return epoll_fd_; }

  /* One non-blocking step: accept, read, parse, run one batch per round,
   * write replies, close idle/dead clients. */
  PollResult Poll() noexcept;

  /* True when buffered input is waiting: call Poll() again without waiting. */
  bool HasPendingWork() const noexcept;

  /* Longest wait before the next Poll() is due (-1: none needed). */
  int NextTimeoutMs() const noexcept;

  /* The port listener i is bound to (useful with port 0). */
  int BoundPort(size_t i = 0) const noexcept;

  /* Changes the idle timeout (a reloaded setting); 0: never. */
  void SetIdleTimeout(int seconds) noexcept { config_.idle_timeout_s = seconds; }

  /* max_clients after the RLIMIT_NOFILE check. */
  size_t EffectiveMaxClients() const noexcept { return max_clients_; }

  ServerStats Stats() const noexcept;

 private:
  void Log(LogLevel level, const std::string& message) const noexcept;
  bool OpenTcpListener(const std::string& address, std::string* error);
  bool OpenUnixListener(std::string* error);
  void AcceptClients(Listener* listener);
  void ReadClient(Client* c);
  void WriteClient(Client* c);
  void UpdateEvents(Client* c);
  void CloseClient(Client* c);
  void RunRound(bool* more);
  void ProcessInput(Client* c, size_t* budget);
  void Dispatch(Client* c, std::vector<std::string_view>& argv);
  void DispatchExec(Client* c);
  bool HandleLocal(Client* c, const CommandSpec& spec, const std::vector<std::string_view>& argv,
                   std::string* out);
  void ClientCommand(Client* c, const CommandSpec& spec, const std::vector<std::string_view>& argv,
                     ReplyWriter& w);
  void CommandCommand(const CommandSpec& spec, const std::vector<std::string_view>& argv, ReplyWriter& w);
  void ConfigGet(const std::vector<std::string_view>& argv, ReplyWriter& w);
  void WriteHello(Client* c, ReplyWriter& w);
  std::string InfoText(const std::vector<std::string_view>& argv, bool* keyspace);
  std::string ClientInfoLine(const Client* c, std::string_view cmd) const;
  void ResetClient(Client* c);
  Slot& NewSlot(Client* c);
  void LocalReply(Client* c, std::string text);
  ClientContext ContextOf(const Client* c) const;
  void FinishBatch();
  void CheckIdle(int64_t now_ms);
  void ReapClosed();

  ServerConfig config_;
  Executor* executor_;
  int epoll_fd_ = -1;
  int spare_fd_ = -1;
  size_t max_clients_ = 0;
  std::vector<std::unique_ptr<Listener>> listeners_;
  std::vector<std::unique_ptr<Client>> clients_by_fd_;
  size_t client_count_ = 0;
  uint64_t next_client_id_ = 1;
  std::vector<Client*> ready_;        /* clients with unparsed buffered input */
  std::vector<std::unique_ptr<Client>> dead_;  /* closed, freed at the end of the step */
  std::vector<Slot> slots_;           /* replies of this round, in order per client */
  Batch batch_;
  std::vector<std::string_view> argv_;
  std::unique_ptr<char[]> scratch_;   /* read buffer shared by all clients */
  int64_t now_ms_ = 0;
  int64_t last_idle_check_ms_ = 0;
  int64_t start_ms_ = 0;
  ServerStats stats_;
  bool started_ = false;
};

/* Unix time in milliseconds (CLOCK_REALTIME). */
int64_t NowMs() noexcept;

}  // namespace fastpgcache::resp

#endif

// The Redis-protocol worker process.
//
// The launcher (worker/main.cpp) starts fastpgcache.resp_workers of these in
// fastpgcache.resp_database once it exists (again 5 s after one exits, and
// after a crash-restart; never on a standby). Each binds the same TCP port
// with SO_REUSEPORT, so the kernel spreads connections over them; only the
// first also listens on the unix socket (fastpgcache.resp_unix_socket).
//
// The server (resp/server.hpp) is pure C++ and owns no loop: this process
// waits in a WaitEventSet on its latch, postmaster death and the server's
// epoll fd (nested epoll), and calls Poll() when there is something to do.
// Poll() hands each batch of commands to the executor (executor.cpp), which
// runs it in one transaction. A port already in use gives one WARNING and a
// retry every 5 s.
//
// This file is C-style code around the C++ server object: the only
// PostgreSQL calls made while the server's frames are on the stack are the
// executor's, all Guarded(). An error here (outside Poll) is FATAL, as in
// any background worker; no C++ frame is then skipped (FATAL exits, it does
// not longjmp), and the launcher starts the worker again.

#include "resp_worker/resp_worker.hpp"

extern "C" {
#include "access/xact.h"
#include "commands/dbcommands.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/wait_event.h"
}

#include <cstring>
#include <new>
#include <sstream>
#include <string>

#include "guc.hpp"

namespace fastpgcache {
namespace resp_worker {
namespace {

constexpr long kRetryMs = 5000;

// Server log lines from the pure C++ server (below ERROR: never longjmps).
void LogFromServer(void *, resp::LogLevel level, const char *message) {
  int elevel = level == resp::LogLevel::kWarning ? WARNING : level == resp::LogLevel::kInfo ? LOG : DEBUG1;
  ereport(elevel, (errmsg_internal("fastpgcache resp: %s", message)));
}

// The server's configuration from the settings; `first` worker only owns
// the unix socket.
resp::ServerConfig ConfigFromSettings(bool first) {
  resp::ServerConfig config;
  config.listen_addresses.clear();
  std::stringstream addresses(guc::resp_listen_addresses != nullptr ? guc::resp_listen_addresses : "");
  std::string item;
  while (std::getline(addresses, item, ',')) {
    std::size_t b = item.find_first_not_of(" \t");
    std::size_t e = item.find_last_not_of(" \t");
    if (b != std::string::npos) config.listen_addresses.push_back(item.substr(b, e - b + 1));
  }
  config.port = guc::resp_port;
  if (first && guc::resp_unix_socket != nullptr) config.unix_socket = guc::resp_unix_socket;
  config.reuse_port = true;
  config.max_clients = static_cast<size_t>(guc::resp_max_clients);
  config.limits.max_bulk_len = static_cast<int64_t>(guc::resp_max_bulk_kb) * 1024;
  config.output_buffer_limit = static_cast<size_t>(guc::resp_output_buffer_kb) * 1024;
  config.idle_timeout_s = guc::resp_idle_timeout_s;
  config.require_auth = true;
  config.log = LogFromServer;
  return config;
}

resp::Server *g_server = nullptr;
PgExecutor *g_executor = nullptr;

}  // namespace
}  // namespace resp_worker
}  // namespace fastpgcache

using namespace fastpgcache;
using namespace fastpgcache::resp_worker;

// main_arg: the database; bgw_extra[0]: 1 for the first worker.
void fastpgcache_resp_main(Datum main_arg) {
  Oid dboid = DatumGetObjectId(main_arg);
  bool first = MyBgworkerEntry->bgw_extra[0] == 1;
  pqsignal(SIGHUP, SignalHandlerForConfigReload);
  pqsignal(SIGTERM, die);
  pqsignal(SIGINT, StatementCancelHandler);  // the per-command time limit
  BackgroundWorkerUnblockSignals();
  BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
  pgstat_report_appname(kRespWorkerType);
  StartTransactionCommand();
  strlcpy(g_dbname, get_database_name(MyDatabaseId), NAMEDATALEN);
  CommitTransactionCommand();
  // A command waits for a row lock at most as long as it may run (again
  // after each reload of fastpgcache.resp_command_timeout).
  int applied_command_timeout = guc::resp_command_timeout_ms;
  SetConfigOption("lock_timeout", psprintf("%d", applied_command_timeout), PGC_SUSET, PGC_S_OVERRIDE);
  SetConfigOption("default_transaction_isolation", "read committed", PGC_SUSET, PGC_S_OVERRIDE);

  try {
    g_executor = new PgExecutor();
    g_server = new resp::Server(ConfigFromSettings(first), g_executor);
  } catch (...) {
    ereport(FATAL, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("fastpgcache resp: out of memory at start")));
  }

  // Listen; a port in use is retried calmly.
  bool warned = false;
  for (;;) {
    std::string *error = new (std::nothrow) std::string();
    if (error == nullptr) ereport(FATAL, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
    bool started = g_server->Start(error);
    if (started) {
      delete error;
      break;
    }
    ereport(warned ? DEBUG1 : WARNING,
            (errmsg("fastpgcache resp: cannot listen on port %d: %s", guc::resp_port, error->c_str()),
             errdetail("The Redis-protocol worker tries again every %ld s.", kRetryMs / 1000)));
    delete error;
    warned = true;
    (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, kRetryMs, PG_WAIT_EXTENSION);
    ResetLatch(MyLatch);
    CHECK_FOR_INTERRUPTS();
  }
  ereport(LOG, (errmsg("fastpgcache resp: serving the Redis protocol on port %d for database \"%s\"",
                       g_server->BoundPort(0), g_dbname)));

  WaitEventSet *events = CreateWaitEventSet(TopMemoryContext, 3);
  AddWaitEventToSet(events, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, nullptr);
  AddWaitEventToSet(events, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, nullptr, nullptr);
  AddWaitEventToSet(events, WL_SOCKET_READABLE, g_server->EpollFd(), nullptr, nullptr);
  int applied_idle_timeout = guc::resp_idle_timeout_s;
  for (;;) {
    long timeout = g_server->HasPendingWork() ? 0 : g_server->NextTimeoutMs();
    if (timeout < 0 || timeout > 1000) timeout = 1000;  // wake at least once a second
    WaitEvent occurred[3];
    int n = WaitEventSetWait(events, timeout, occurred, 3, PG_WAIT_EXTENSION);
    for (int i = 0; i < n; i++)
      if (occurred[i].events & WL_LATCH_SET) ResetLatch(MyLatch);
    CHECK_FOR_INTERRUPTS();
    if (ConfigReloadPending) {
      ConfigReloadPending = false;
      ProcessConfigFile(PGC_SIGHUP);
      if (guc::resp_idle_timeout_s != applied_idle_timeout) {
        g_server->SetIdleTimeout(guc::resp_idle_timeout_s);
        applied_idle_timeout = guc::resp_idle_timeout_s;
      }
      if (guc::resp_command_timeout_ms != applied_command_timeout) {
        applied_command_timeout = guc::resp_command_timeout_ms;
        SetConfigOption("lock_timeout", psprintf("%d", applied_command_timeout), PGC_SUSET, PGC_S_OVERRIDE);
      }
    }
    g_server->Poll();
  }
}

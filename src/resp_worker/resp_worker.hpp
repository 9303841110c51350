// The Redis-protocol front's PostgreSQL side: a background worker that runs
// the pure C++ server (src/resp/server.hpp) on its latch, and the executor
// that runs each batch of commands against the cache table through the same
// code as the SQL functions.
//
//   main.cpp      the worker process: settings, the wait loop, Poll()
//   executor.cpp  a batch: one transaction, each client's unit apart, every
//                 command mapped onto the cache core (cache.hpp, string_ops.hpp)
//   auth.cpp      AUTH: a PostgreSQL role's own password
//
// A backend header.
#pragma once

#include "pg_bridge.hpp"

extern "C" {
PGDLLEXPORT void fastpgcache_resp_main(Datum main_arg);
}

#include <string>
#include <string_view>

#include "resp/server.hpp"

namespace fastpgcache {
namespace resp_worker {

constexpr const char *kRespWorkerType = "fastpgcache resp";

// The worker's database, for messages (set at start).
extern char g_dbname[NAMEDATALEN];

// Runs every command of a batch in one PostgreSQL transaction; see
// executor.cpp.
class PgExecutor final : public resp::Executor {
 public:
  PgExecutor() = default;
  void Execute(resp::Batch &batch) noexcept override;
};

// AUTH: kOk if `user` is a role that may log in (LOGIN, a password that has
// not expired) with `password` (its stored SCRAM or MD5 secret, checked by
// PostgreSQL's own verifier), is not a superuser and may connect to this
// database. PostgreSQL calls only: call inside a transaction, as one
// Guarded() step.
enum class AuthResult { kOk, kWrongPassword, kSuperuser, kNoConnect };
AuthResult CheckPassword(const char *user, const char *password);

}  // namespace resp_worker
}  // namespace fastpgcache

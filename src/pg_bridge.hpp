// The boundary between C++ and PostgreSQL, for the extension's backend code.
//
// Two rules make C++ safe inside a PostgreSQL backend, and this header is how
// the code keeps them:
//  1. No C++ exception may cross a PostgreSQL frame. Every SQL-callable
//     function is a thin extern "C" shim (FPC_SQL_FUNCTION) that runs the C++
//     body inside try/catch, leaves the C++ scope so every destructor has run,
//     and only then raises the error with ereport().
//  2. No PostgreSQL error (a longjmp) may skip a C++ destructor. Every call
//     into PostgreSQL that can raise an error is made through Guarded(), which
//     catches the error with PG_TRY, copies it, and throws it as PgError; the
//     shim re-raises the copy unchanged, SQLSTATE and all.
//
// Include this header first in a backend source file: postgres.h must come
// before any C++ standard header (port.h redefines snprintf and friends).
#pragma once

extern "C" {
#include "postgres.h"

#include "fmgr.h"
#include "utils/elog.h"
#include "utils/memutils.h"
}

#include <exception>
#include <type_traits>

namespace fastpgcache {

// A PostgreSQL error caught by Guarded(); owns a copy of the ErrorData, made
// in the memory context that was current when the guarded call started.
// edata() is null when the error could not be copied (out of memory while
// copying it): the shim then reports that instead.
class PgError : public std::exception {
 public:
  explicit PgError(ErrorData *edata) noexcept : edata_(edata) {}
  const char *what() const noexcept override {
    return edata_ != nullptr && edata_->message != nullptr ? edata_->message : "PostgreSQL error";
  }
  ErrorData *edata() const noexcept { return edata_; }

 private:
  ErrorData *edata_;
};

// Called in Guarded()'s PG_CATCH, with the caller's memory context current:
// copies the error being handled and flushes the error state. If the copy
// itself fails (out of memory), that second error is caught here too,
// everything is flushed and null is returned: no error may longjmp out of
// the catch block, past the C++ frames above it.
ErrorData *CopyAndFlushError(MemoryContext cxt) noexcept;

// Test-only fault injection (test/selftest): when set, the next
// CopyAndFlushError() fails as if out of memory. Never set in production.
extern bool g_fail_next_error_copy;

// Calls f() as a noexcept function: a C++ exception thrown inside a PG_TRY
// block would leave PostgreSQL's error stack pointing at a dead frame, so it
// ends the process cleanly (std::terminate) instead.
template <typename F>
auto CallNoexcept(F &f) noexcept -> decltype(f()) {
  return f();
}

// Runs f() (which calls PostgreSQL) and turns a PostgreSQL error into PgError.
// f must not create C++ objects with destructors itself, nor throw: it is the
// thin layer that calls PostgreSQL, and a longjmp out of it lands in the
// PG_CATCH below.
template <typename F>
auto Guarded(F &&f) -> decltype(f()) {
  using R = decltype(f());
  if constexpr (!std::is_void_v<R>) {
    static_assert(std::is_scalar_v<R>, "Guarded() returns plain PostgreSQL values only");
    R result{};
    Guarded([&] { result = f(); });
    return result;
  } else {
    MemoryContext cxt = CurrentMemoryContext;
    // volatile: read after a longjmp back into this frame.
    ErrorData *volatile edata = nullptr;
    volatile bool failed = false;
    PG_TRY();
    { CallNoexcept(f); }
    PG_CATCH();
    {
      failed = true;
      edata = CopyAndFlushError(cxt);
    }
    PG_END_TRY();
    if (failed) throw PgError(edata);
  }
}

using SqlFunctionBody = Datum (*)(FunctionCallInfo);

// Calls body(fcinfo) with every C++ exception caught; raises the error with
// ereport() once the C++ scope is gone. Never returns on error.
Datum CallSqlFunction(SqlFunctionBody body, FunctionCallInfo fcinfo);

}  // namespace fastpgcache

// Declares the SQL-callable symbol `name` as a shim over the C++ body
// `name##Impl`, which the same file defines right after.
#define FPC_SQL_FUNCTION(name)                                                 \
  static Datum name##Impl([[maybe_unused]] FunctionCallInfo fcinfo);           \
  extern "C" {                                                                 \
  PG_FUNCTION_INFO_V1(name);                                                   \
  PGDLLEXPORT Datum name(PG_FUNCTION_ARGS) {                                   \
    return ::fastpgcache::CallSqlFunction(name##Impl, fcinfo);                 \
  }                                                                            \
  }                                                                            \
  static Datum name##Impl([[maybe_unused]] FunctionCallInfo fcinfo)

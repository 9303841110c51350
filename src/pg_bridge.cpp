// The catch-all half of every SQL-callable shim: see pg_bridge.hpp.

#include "pg_bridge.hpp"

#include <cstring>
#include <new>

#include "error.hpp"

namespace fastpgcache {
namespace {

// What a caught C++ exception becomes, copied into plain storage so that no
// C++ object is alive when ereport() longjmps away.
struct PendingError {
  enum Kind { kNone, kPostgres, kCache, kOutOfMemory, kOther } kind = kNone;
  ErrorData *edata = nullptr;
  int sqlerrcode = 0;
  char message[1024] = {0};
  char detail[1024] = {0};
  char hint[512] = {0};
};

void CopyText(char *dst, std::size_t size, const char *src) noexcept {
  std::size_t n = std::strlen(src);
  if (n >= size) n = size - 1;
  std::memcpy(dst, src, n);
  dst[n] = '\0';
}

int SqlstateCode(const char *s) noexcept {
  return MAKE_SQLSTATE(s[0], s[1], s[2], s[3], s[4]);
}

}  // namespace

bool g_fail_next_error_copy = false;

ErrorData *CopyAndFlushError(MemoryContext cxt) noexcept {
  // volatile: read after a longjmp back into this frame.
  ErrorData *volatile edata = nullptr;
  MemoryContextSwitchTo(cxt);
  // A nested catch: PG_CATCH of the caller has already restored the outer
  // PG_exception_stack, so an error here would otherwise longjmp to the
  // executor, past every C++ frame of the running function.
  PG_TRY();
  {
    if (g_fail_next_error_copy) {
      g_fail_next_error_copy = false;
      ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory"),
                      errdetail("Simulated failure while copying an error (test only).")));
    }
    edata = CopyErrorData();
  }
  PG_CATCH();
  {
    edata = nullptr;
  }
  PG_END_TRY();
  MemoryContextSwitchTo(cxt);
  FlushErrorState();  // both errors, when the copy failed; cannot fail itself
  return edata;
}

Datum CallSqlFunction(SqlFunctionBody body, FunctionCallInfo fcinfo) {
  PendingError pending;
  Datum result = 0;
  // Where PostgreSQL's error handling stands on entry. If it is different
  // when the body is done, some PG_TRY block was left without PG_END_TRY
  // (say, by a C++ exception) and the next error would longjmp into a C++
  // frame that no longer exists: restore it, and fail this call loudly.
  sigjmp_buf *entry_exception_stack = PG_exception_stack;
  ErrorContextCallback *entry_context_stack = error_context_stack;
  try {
    result = body(fcinfo);
  } catch (const PgError &e) {
    pending.kind = PendingError::kPostgres;
    pending.edata = e.edata();
  } catch (const CacheError &e) {
    pending.kind = PendingError::kCache;
    pending.sqlerrcode = SqlstateCode(e.sqlstate());
    CopyText(pending.message, sizeof pending.message, e.what());
    CopyText(pending.detail, sizeof pending.detail, e.detail().c_str());
    CopyText(pending.hint, sizeof pending.hint, e.hint().c_str());
  } catch (const std::bad_alloc &) {
    pending.kind = PendingError::kOutOfMemory;
  } catch (const std::exception &e) {
    pending.kind = PendingError::kOther;
    CopyText(pending.message, sizeof pending.message, e.what());
  } catch (...) {
    pending.kind = PendingError::kOther;
    CopyText(pending.message, sizeof pending.message, "unknown C++ exception");
  }
  // Every C++ object of the call is destroyed by now.
  if (PG_exception_stack != entry_exception_stack || error_context_stack != entry_context_stack) {
    PG_exception_stack = entry_exception_stack;
    error_context_stack = entry_context_stack;
    ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
                    errmsg("fastpgcache internal error: PostgreSQL's error handling was left pointing into a "
                           "finished C++ frame"),
                    errdetail("It has been restored; %s.",
                              pending.kind == PendingError::kNone ? "the call's result is discarded"
                                                                  : "the call's own error is discarded")));
  }
  switch (pending.kind) {
    case PendingError::kNone:
      return result;
    case PendingError::kPostgres:
      if (pending.edata == nullptr)
        ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory"),
                        errdetail("An error was raised, and there was no memory left to report it.")));
      ReThrowError(pending.edata);
    case PendingError::kCache:
      ereport(ERROR, (errcode(pending.sqlerrcode), errmsg_internal("%s", pending.message),
                      pending.detail[0] ? errdetail_internal("%s", pending.detail) : 0,
                      pending.hint[0] ? errhint("%s", pending.hint) : 0));
      break;
    case PendingError::kOutOfMemory:
      ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory"),
                      errdetail("A C++ allocation in fastpgcache failed.")));
      break;
    case PendingError::kOther:
      ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
                      errmsg("fastpgcache internal error: %s", pending.message)));
      break;
  }
  pg_unreachable();
}

}  // namespace fastpgcache

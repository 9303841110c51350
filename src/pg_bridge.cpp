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

Datum CallSqlFunction(SqlFunctionBody body, FunctionCallInfo fcinfo) {
  PendingError pending;
  Datum result = 0;
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
  switch (pending.kind) {
    case PendingError::kNone:
      return result;
    case PendingError::kPostgres:
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

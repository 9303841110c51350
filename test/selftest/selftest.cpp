// Test-only: exercises the C++ / PostgreSQL boundary (sql/boundary.sql).

#include "pg_bridge.hpp"

extern "C" {
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
}

#include <stdexcept>
#include <string>
#include <vector>

#include "error.hpp"

extern "C" {
PG_MODULE_MAGIC;
}

using namespace fastpgcache;

// fastpgcache_selftest(mode text) RETURNS bigint: exercises the C++ /
// PostgreSQL boundary for the regression tests. Each failing mode raises its
// error while a C++ object with a destructor is alive; 'destructors' returns
// how many of those objects this backend has destroyed, which shows that no
// error skipped one.
namespace {
long g_sentinels_destroyed = 0;

struct Sentinel {
  std::string payload = std::string(64, 'x');  // a real heap allocation to free
  ~Sentinel() { g_sentinels_destroyed++; }
};
}  // namespace

FPC_SQL_FUNCTION(fastpgcache_selftest) {
  std::string mode = Guarded([&] { return text_to_cstring(PG_GETARG_TEXT_PP(0)); });
  if (mode == "destructors") return Int64GetDatum(g_sentinels_destroyed);
  Sentinel alive;
  if (mode == "bad_alloc") {
    // A real allocation that cannot succeed (a petabyte).
    std::vector<char> huge(static_cast<std::size_t>(1) << 50);
    return Int64GetDatum(static_cast<int64>(huge.size()));
  }
  if (mode == "cpp_exception") throw std::runtime_error("selftest C++ exception");
  if (mode == "cache_error") throw CacheError(sqlstate::kInvalidParameterValue, "selftest cache error", "a detail", "a hint");
  if (mode == "pg_error") {
    // A PostgreSQL error raised deep inside a guarded call.
    Guarded([] { return DirectFunctionCall1(int4in, CStringGetDatum("not a number")); });
  }
  if (mode == "copy_fails") {
    // A PostgreSQL error whose copy fails (as if out of memory): the second
    // error must not longjmp past this frame.
    g_fail_next_error_copy = true;
    Guarded([] { return DirectFunctionCall1(int4in, CStringGetDatum("not a number")); });
  }
  if (mode == "dead_frame") {
    // What a PG_TRY block left by a C++ exception would leave behind:
    // PostgreSQL's error handling pointing at a frame that is gone. The shim
    // must notice, restore it and fail the call.
    static sigjmp_buf stale;
    PG_exception_stack = &stale;
    return Int64GetDatum(1);
  }
  throw CacheError(sqlstate::kInvalidParameterValue, "unknown selftest mode \"" + mode + "\"");
}

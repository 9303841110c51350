// Replays a trace (traces.cpp) cache-aside against FastPgCache in a real
// PostgreSQL, pipelined with libpq's pipeline mode.
//
//   replay_pg [--conninfo STR] [--schema NAME] [--mode split|combined]
//             [--window W] [--limit R] [--value-size N] [--cap N] TRACE_PREFIX
//
// Prints one CSV line:
//   trace,mode,requests,hits,hit_ratio,sets,seconds,requests_per_s
// and with --cap N (the cache's max_entries) three more fields,
//   rows_mean,rows_max,rows_end
// the entries the cache held: SELECT count(*) FROM cache_entries over a
// second connection every 1% of the trace and at the end; the mean and the
// maximum from the first sample that reached 95% of N on (as replay_redis
// reports the mean DBSIZE), so that the hit ratio can be read beside the
// number of entries that bought it.
//
// Keys are "k:%08u" of the trace's key id (as in the Redis replay); the value
// of key k is "v:" + k padded with '.' to --value-size bytes (default 32), so
// a hit is checked to return its own key's value (a wrong value is an error).
//
// Modes. A cache-aside request is GET k and, on a miss, SET k v before the
// next request.
//  * split (default): what an application sends, SELECT cache_get($1) and on
//    a miss SELECT cache_set($1, $2), two statements. To pipeline them, the
//    trace is cut into chunks of at most W consecutive requests with no key
//    repeated; a chunk's GETs are sent in one pipeline, then the SETs of its
//    misses in a second one. Within a chunk no GET can observe another
//    request's SET (the keys differ), so the hit count is exactly the
//    sequential replay's as long as nothing is evicted. With eviction, a
//    chunk's SETs run after all of its GETs instead of between them, so an
//    eviction caused by a SET can come up to W - 1 requests late (W = 64 by
//    default, small against any capacity studied here).
//  * combined: one statement per request,
//      SELECT v IS NOT NULL, CASE WHEN v IS NULL THEN cache_set($1, $2) END
//        FROM (SELECT cache_get($1) AS v OFFSET 0) s
//    (OFFSET 0 keeps cache_get from being evaluated twice), so the SET follows
//    its GET inside the same statement and the pipeline is exactly the
//    sequential replay, eviction included (like SET NX GET in the Redis
//    replay), at the price of not being the application's statements.
//
// The schema name is quoted with PQescapeIdentifier; keys and values are
// always bound parameters.
#include <libpq-fe.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unordered_set>
#include <vector>

namespace {

PGconn *g_conn = nullptr;

[[noreturn]] void Die(const std::string &msg) {
  std::fprintf(stderr, "replay_pg: %s\n", msg.c_str());
  if (g_conn != nullptr) PQfinish(g_conn);
  std::exit(1);
}

std::string Key(uint32_t id) {
  char k[16];
  std::snprintf(k, sizeof k, "k:%08u", id);
  return k;
}

std::string Value(const std::string &key, size_t size) {
  std::string v = "v:" + key;
  if (v.size() < size) v.append(size - v.size(), '.');
  return v;
}

void Prepare(const char *name, const std::string &sql, int nparams) {
  Oid types[2] = {25, 25};  // text, text
  PGresult *r = PQprepare(g_conn, name, sql.c_str(), nparams, types);
  if (PQresultStatus(r) != PGRES_COMMAND_OK) {
    std::string msg = PQresultErrorMessage(r);
    PQclear(r);
    Die("prepare failed: " + msg);
  }
  PQclear(r);
}

// Reads the next result of a pipelined query (and the NULL that ends it).
// Returns the result; the caller PQclear()s it.
PGresult *NextResult() {
  PGresult *r = PQgetResult(g_conn);
  if (r == nullptr) Die(std::string("missing result: ") + PQerrorMessage(g_conn));
  ExecStatusType st = PQresultStatus(r);
  if (st != PGRES_TUPLES_OK) {
    std::string msg = PQresultErrorMessage(r);
    PQclear(r);
    Die("query failed: " + msg);
  }
  PGresult *end = PQgetResult(g_conn);
  if (end != nullptr) {
    PQclear(end);
    Die("unexpected extra result");
  }
  return r;
}

void ReadSync() {
  PGresult *r = PQgetResult(g_conn);
  if (r == nullptr || PQresultStatus(r) != PGRES_PIPELINE_SYNC) {
    if (r != nullptr) PQclear(r);
    Die(std::string("expected the end of a pipeline: ") + PQerrorMessage(g_conn));
  }
  PQclear(r);
}

void Send(const char *stmt, int n, const char *const *vals) {
  if (!PQsendQueryPrepared(g_conn, stmt, n, vals, nullptr, nullptr, 0))
    Die(std::string("send failed: ") + PQerrorMessage(g_conn));
}

void Sync() {
  if (!PQpipelineSync(g_conn)) Die(std::string("sync failed: ") + PQerrorMessage(g_conn));
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
  std::string conninfo, schema = "public", mode = "split", prefix;
  uint64_t window = 64, limit = 0, value_size = 32, cap = 0;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto need = [&]() -> const char * {
      if (i + 1 >= argc) Die(a + " needs a value");
      return argv[++i];
    };
    if (a == "--conninfo") conninfo = need();
    else if (a == "--schema") schema = need();
    else if (a == "--mode") mode = need();
    else if (a == "--window") window = ParseU64(need(), "window");
    else if (a == "--limit") limit = ParseU64(need(), "limit");
    else if (a == "--value-size") value_size = ParseU64(need(), "value-size");
    else if (a == "--cap") cap = ParseU64(need(), "cap");
    else if (!a.empty() && a[0] != '-') prefix = a;
    else Die("unknown option " + a);
  }
  if (prefix.empty() || window < 1 || window > 100000 || value_size > 1000000 ||
      (mode != "split" && mode != "combined"))
    Die("usage: replay_pg [--conninfo STR] [--schema NAME] [--mode split|combined] [--window W] [--limit R] "
        "[--value-size N] [--cap N] TRACE_PREFIX");

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

  g_conn = PQconnectdb(conninfo.c_str());
  if (PQstatus(g_conn) != CONNECTION_OK) Die(std::string("connection failed: ") + PQerrorMessage(g_conn));
  char *q = PQescapeIdentifier(g_conn, schema.c_str(), schema.size());
  if (q == nullptr) Die(std::string("bad schema name: ") + PQerrorMessage(g_conn));
  std::string s = q;
  PQfreemem(q);
  Prepare("get", "SELECT " + s + ".cache_get($1)", 1);
  Prepare("set", "SELECT " + s + ".cache_set($1, $2)", 2);
  Prepare("getset",
          "SELECT v IS NOT NULL, CASE WHEN v IS NULL THEN " + s + ".cache_set($1, $2) END FROM (SELECT " + s +
              ".cache_get($1) AS v OFFSET 0) s",
          2);
  if (!PQenterPipelineMode(g_conn)) Die(std::string("pipeline mode: ") + PQerrorMessage(g_conn));

  // --cap: the entries held, counted over a second connection.
  PGconn *counter = nullptr;
  std::string count_sql = "SELECT pg_catalog.count(*) FROM " + s + ".cache_entries";
  std::vector<uint64_t> counts;
  auto count_rows = [&]() {
    PGresult *r = PQexec(counter, count_sql.c_str());
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
      std::string msg = PQresultErrorMessage(r);
      PQclear(r);
      Die("count failed: " + msg);
    }
    counts.push_back(std::strtoull(PQgetvalue(r, 0, 0), nullptr, 10));
    PQclear(r);
  };
  if (cap > 0) {
    counter = PQconnectdb(conninfo.c_str());
    if (PQstatus(counter) != CONNECTION_OK) Die(std::string("second connection failed: ") + PQerrorMessage(counter));
  }
  const size_t sample_every = std::max<size_t>(trace.size() / 100, 1);
  size_t next_sample = sample_every;

  uint64_t hits = 0, sets = 0;
  auto t0 = std::chrono::steady_clock::now();
  std::vector<std::string> keys, values;
  std::vector<size_t> misses;
  std::unordered_set<uint32_t> seen;
  size_t i = 0;
  while (i < trace.size()) {
    if (counter != nullptr && i >= next_sample) {
      count_rows();
      next_sample += sample_every;
    }
    // The next chunk: consecutive requests, no key twice (split mode).
    keys.clear();
    values.clear();
    seen.clear();
    while (i < trace.size() && keys.size() < window) {
      if (mode == "split" && !seen.insert(trace[i]).second) break;
      keys.push_back(Key(trace[i]));
      values.push_back(Value(keys.back(), value_size));
      i++;
    }
    if (mode == "combined") {
      for (size_t j = 0; j < keys.size(); j++) {
        const char *vals[2] = {keys[j].c_str(), values[j].c_str()};
        Send("getset", 2, vals);
      }
      Sync();
      for (size_t j = 0; j < keys.size(); j++) {
        PGresult *r = NextResult();
        if (PQntuples(r) != 1) Die("getset returned no row");
        bool hit = std::strcmp(PQgetvalue(r, 0, 0), "t") == 0;
        if (!hit && std::strcmp(PQgetvalue(r, 0, 1), "t") != 0) Die("cache_set did not report a write");
        hits += hit;
        sets += !hit;
        PQclear(r);
      }
      ReadSync();
      continue;
    }
    for (const auto &k : keys) {
      const char *vals[1] = {k.c_str()};
      Send("get", 1, vals);
    }
    Sync();
    misses.clear();
    for (size_t j = 0; j < keys.size(); j++) {
      PGresult *r = NextResult();
      if (PQntuples(r) != 1) Die("cache_get returned no row");
      if (PQgetisnull(r, 0, 0)) {
        misses.push_back(j);
      } else {
        if (values[j] != PQgetvalue(r, 0, 0)) Die("cache_get(" + keys[j] + ") returned another value");
        hits++;
      }
      PQclear(r);
    }
    ReadSync();
    if (misses.empty()) continue;
    for (size_t j : misses) {
      const char *vals[2] = {keys[j].c_str(), values[j].c_str()};
      Send("set", 2, vals);
    }
    Sync();
    for (size_t n = 0; n < misses.size(); n++) PQclear(NextResult());
    ReadSync();
    sets += misses.size();
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  PQexitPipelineMode(g_conn);
  PQfinish(g_conn);
  g_conn = nullptr;
  std::printf("%s,%s,%zu,%llu,%.6f,%llu,%.2f,%.0f", name.c_str(), mode.c_str(), trace.size(),
              static_cast<unsigned long long>(hits), static_cast<double>(hits) / static_cast<double>(trace.size()),
              static_cast<unsigned long long>(sets), secs, static_cast<double>(trace.size()) / secs);
  if (counter != nullptr) {
    count_rows();
    PQfinish(counter);
    double sum = 0;
    uint64_t n = 0, max = 0;
    bool warm = false;
    for (uint64_t c : counts) {
      warm = warm || static_cast<double>(c) >= 0.95 * static_cast<double>(cap);
      if (!warm) continue;
      sum += static_cast<double>(c);
      n++;
      max = std::max(max, c);
    }
    std::printf(",%.0f,%llu,%llu", n ? sum / static_cast<double>(n) : static_cast<double>(counts.back()),
                static_cast<unsigned long long>(n ? max : counts.back()), static_cast<unsigned long long>(counts.back()));
  }
  std::printf("\n");
  return 0;
}

// Samples the size of the cache once a tick while a benchmark writes to it
// (bench/eviction/measure.py, "the limit holds").
//
//   sampler [--conninfo STR] [--schema NAME] [--interval-ms MS]
//           [--duration S] [--count] OUT.csv
//
// Writes one CSV line per tick (a header first) until --duration seconds
// have passed or it gets SIGTERM / SIGINT:
//
//   t,rows,entries,data_bytes,evicted,total_bytes,heap_bytes,toast_bytes,
//   index_bytes,n_live_tup,n_dead_tup,vacuum_count,autovacuum_count,query_ms
//
//   t            seconds since the sampler started (when the query began)
//   rows         SELECT count(*) FROM cache_entries (only with --count; empty
//                otherwise: on a table of millions of rows it costs a
//                noticeable share of a CPU)
//   entries, data_bytes, evicted   cache_stats() (entries and data_bytes are
//                empty until the worker counted, and without preloading)
//   total_bytes  pg_total_relation_size: heap, TOAST (table and index), the
//                primary key index, free space and visibility maps
//   heap_bytes, toast_bytes, index_bytes   its parts
//   n_live_tup ... autovacuum_count   pg_stat_user_tables (vacuum_count counts
//                the worker's VACUUM, autovacuum_count autovacuum's)
//   query_ms     how long the sample took
//
// Ticks are on a fixed schedule (a slow sample does not shift the next one;
// a tick missed entirely is skipped). One connection for the whole run; the
// schema is quoted with PQescapeIdentifier.
#include <libpq-fe.h>

#include <csignal>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>

namespace {

volatile std::sig_atomic_t g_stop = 0;

void OnSignal(int) { g_stop = 1; }

[[noreturn]] void Die(const std::string &msg) {
  std::fprintf(stderr, "sampler: %s\n", msg.c_str());
  std::exit(1);
}

long ParseLong(const char *s, const char *what) {
  char *end = nullptr;
  errno = 0;
  long v = std::strtol(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v < 0) Die(std::string("bad ") + what + ": " + s);
  return v;
}

}  // namespace

int main(int argc, char **argv) {
  std::string conninfo, schema = "public", out;
  long interval_ms = 1000, duration_s = 0;
  bool count = false;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto need = [&]() -> const char * {
      if (i + 1 >= argc) Die(a + " needs a value");
      return argv[++i];
    };
    if (a == "--conninfo") conninfo = need();
    else if (a == "--schema") schema = need();
    else if (a == "--interval-ms") interval_ms = ParseLong(need(), "interval");
    else if (a == "--duration") duration_s = ParseLong(need(), "duration");
    else if (a == "--count") count = true;
    else if (!a.empty() && a[0] != '-') out = a;
    else Die("unknown option " + a);
  }
  if (out.empty() || interval_ms < 10)
    Die("usage: sampler [--conninfo STR] [--schema NAME] [--interval-ms MS] [--duration S] [--count] OUT.csv");

  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);

  PGconn *conn = PQconnectdb(conninfo.c_str());
  if (PQstatus(conn) != CONNECTION_OK) Die(std::string("connection failed: ") + PQerrorMessage(conn));
  char *q = PQescapeIdentifier(conn, schema.c_str(), schema.size());
  if (q == nullptr) Die(std::string("bad schema name: ") + PQerrorMessage(conn));
  std::string s = q;
  PQfreemem(q);
  std::string rows = count ? "(SELECT pg_catalog.count(*) FROM " + s + ".cache_entries)" : "NULL::int8";
  std::string sql =
      "SELECT " + rows +
      ", st.entries, st.data_bytes, st.evicted,"
      " pg_catalog.pg_total_relation_size(c.oid), pg_catalog.pg_relation_size(c.oid),"
      " CASE WHEN c.reltoastrelid <> 0 THEN pg_catalog.pg_total_relation_size(c.reltoastrelid) ELSE 0 END,"
      " pg_catalog.pg_indexes_size(c.oid), u.n_live_tup, u.n_dead_tup, u.vacuum_count, u.autovacuum_count"
      " FROM " + s + ".cache_stats() st, pg_catalog.pg_class c"
      " JOIN pg_catalog.pg_stat_user_tables u ON u.relid = c.oid"
      " WHERE c.relname = 'cache_entries' AND c.relnamespace = (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = $1)";
  PGresult *r = PQprepare(conn, "sample", sql.c_str(), 1, nullptr);
  if (PQresultStatus(r) != PGRES_COMMAND_OK) Die(std::string("prepare failed: ") + PQresultErrorMessage(r));
  PQclear(r);

  FILE *f = std::fopen(out.c_str(), "w");
  if (f == nullptr) Die("cannot write " + out);
  std::fprintf(f,
               "t,rows,entries,data_bytes,evicted,total_bytes,heap_bytes,toast_bytes,index_bytes,n_live_tup,"
               "n_dead_tup,vacuum_count,autovacuum_count,query_ms\n");
  std::fflush(f);

  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const auto interval = std::chrono::milliseconds(interval_ms);
  auto next = start;
  const char *params[1] = {schema.c_str()};
  while (!g_stop) {
    auto t0 = Clock::now();
    if (duration_s > 0 && t0 - start >= std::chrono::seconds(duration_s)) break;
    r = PQexecPrepared(conn, "sample", 1, params, nullptr, nullptr, 0);
    auto t1 = Clock::now();
    if (PQresultStatus(r) != PGRES_TUPLES_OK) Die(std::string("sample failed: ") + PQresultErrorMessage(r));
    if (PQntuples(r) != 1) Die("sample: no row (is the extension in schema " + schema + "?)");
    std::fprintf(f, "%.3f", std::chrono::duration<double>(t0 - start).count());
    for (int c = 0; c < PQnfields(r); c++) std::fprintf(f, ",%s", PQgetisnull(r, 0, c) ? "" : PQgetvalue(r, 0, c));
    std::fprintf(f, ",%.1f\n", std::chrono::duration<double, std::milli>(t1 - t0).count());
    std::fflush(f);
    PQclear(r);
    // The next tick on the schedule, skipping any already missed.
    next += interval;
    auto now = Clock::now();
    while (next <= now) next += interval;
    auto wait = std::chrono::duration_cast<std::chrono::nanoseconds>(next - now).count();
    struct timespec ts;
    ts.tv_sec = static_cast<time_t>(wait / 1000000000);
    ts.tv_nsec = static_cast<long>(wait % 1000000000);
    nanosleep(&ts, nullptr);  // a signal ends it early: the loop checks g_stop
  }
  std::fclose(f);
  PQfinish(conn);
  return 0;
}

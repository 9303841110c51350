#!/usr/bin/env bash
# Measurements of the background expiry worker (figures for the README).
# Not a test: no assertions. Heavy; run it alone, once.
#
#   test/worker/bench.sh [backlog] [pass] [churn]     (default: all three)
#
# backlog: 1,000,000 expired rows; worker deletion rate with default GUCs,
#          idle and under a pgbench cache_get load (8 clients, 20 s), and the
#          same pgbench run with the worker off (cleanup_interval = 24h).
# pass:    full-pass time of the worker over 10^6 and 10^7 rows, nothing
#          expired (the worker's last_pass_ms), default GUCs.
# churn:   5 minutes of cache_set with ttl 1..10 s on new keys (pgbench,
#          4 clients, -R 2000): table/index size and dead tuples over time.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
. "$ROOT/scripts/lib.sh"

PARTS=${*:-backlog pass churn}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/fpc-bench.XXXXXX")
chmod 755 "$TMP"
C=$TMP/c
trap 'cluster_stop "$C"; rm -rf "$TMP"' EXIT
PORT=$(free_port)
cluster_start "$C" "$PORT" "shared_preload_libraries = 'fastpgcache'" "shared_buffers = '1GB'" \
  "max_wal_size = '4GB'" || exit 1
export PGHOST=$C/sock PGPORT=$PORT PGUSER=postgres PGDATABASE=postgres
q() { psql -X -qAt -v ON_ERROR_STOP=1 -c "$1"; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
set_guc() { q "ALTER SYSTEM SET $1 = '$2'" >/dev/null; q "SELECT pg_reload_conf()" >/dev/null; sleep 1.2; }
reset_guc() { q "ALTER SYSTEM RESET $1" >/dev/null; q "SELECT pg_reload_conf()" >/dev/null; sleep 1.2; }

q "CREATE EXTENSION fastpgcache" >/dev/null
echo "# $(q "SELECT version()")"
echo "# $(nproc) cores; shared_buffers 1GB; fsync off; defaults: $(q "SELECT string_agg(name || '=' || setting || coalesce(unit, ''), ' ') FROM pg_settings WHERE name LIKE 'fastpgcache.cleanup%'")"

# load_rows PREFIX N EXPIRES_SQL: bulk insert with the extension's key hash.
load_rows() {
  q "INSERT INTO cache_entries SELECT encode(substring(sha256(convert_to('$1' || g, 'UTF8')) from 1 for 16), 'hex')::uuid,
       $3, 't', '$1' || g, convert_to(repeat('v', 32), 'UTF8') FROM generate_series(1, $2) g" >/dev/null
}
stat() { q "SELECT $1 FROM cache_stats()"; }

if [[ " $PARTS " == *" backlog "* ]]; then
  echo "## backlog"
  load_rows live: 100000 NULL
  q "VACUUM ANALYZE cache_entries" >/dev/null
  printf '\\set k random(1, 100000)\nSELECT cache_get(%s);\n' "'live:' || :k" >"$TMP/get.sql"
  chmod 644 "$TMP/get.sql"

  # 1. Idle deletion rate.
  q "SELECT cache_stats_reset()" >/dev/null
  t0=$(now_ms)
  load_rows old: 1000000 "now() - interval '1 hour'"
  t1=$(now_ms)
  until [ "$(stat expired_by_worker)" -ge 1000000 ]; do sleep 0.2; done
  t2=$(now_ms)
  echo "idle: 1,000,000 expired rows deleted in $(( t2 - t1 )) ms after the load committed (load took $(( t1 - t0 )) ms): $(( 1000000000 / (t2 - t1) )) rows/s"
  q "VACUUM cache_entries" >/dev/null

  # 2. pgbench with the worker off (interval 24h), backlog present.
  set_guc fastpgcache.cleanup_interval 24h
  load_rows old: 1000000 "now() - interval '1 hour'"
  q "CHECKPOINT" >/dev/null
  off=$(pgbench -n -M prepared -c 8 -j 2 -T 20 -f "$TMP/get.sql" 2>&1 | grep -E '^tps' | grep -oE '[0-9]+\.[0-9]+' | head -1)
  echo "pgbench cache_get, worker off, 1M expired rows present: $off tps"
  q "SELECT cache_cleanup()" >/dev/null
  q "VACUUM cache_entries" >/dev/null

  # 3. The same pgbench run while the worker deletes a fresh backlog.
  load_rows old: 1000000 "now() - interval '1 hour'"
  q "CHECKPOINT" >/dev/null
  q "SELECT cache_stats_reset()" >/dev/null
  t1=$(now_ms)
  reset_guc fastpgcache.cleanup_interval
  pgbench -n -M prepared -c 8 -j 2 -T 20 -f "$TMP/get.sql" >"$TMP/on.out" 2>&1 &
  pb=$!
  done_at=""
  while kill -0 $pb 2>/dev/null; do
    if [ -z "$done_at" ] && [ "$(stat expired_by_worker)" -ge 1000000 ]; then done_at=$(now_ms); fi
    sleep 0.2
  done
  wait $pb
  on=$(grep -E '^tps' "$TMP/on.out" | grep -oE '[0-9]+\.[0-9]+' | head -1)
  deleted=$(stat expired_by_worker)
  if [ -n "$done_at" ]; then
    echo "under load: 1,000,000 rows deleted in $(( done_at - t1 )) ms: $(( 1000000000 / (done_at - t1) )) rows/s"
  else
    echo "under load: $deleted rows deleted during the 20 s run"
  fi
  echo "pgbench cache_get, worker deleting the backlog: $on tps (worker off: $off tps)"
  q "SELECT cache_cleanup()" >/dev/null
  q "DELETE FROM cache_entries" >/dev/null
  q "VACUUM cache_entries" >/dev/null
fi

pass_time() {
  local before
  before=$(stat worker_passes)
  # Two passes: the first may have started before the load finished.
  until [ "$(stat worker_passes)" -ge $(( before + 2 )) ]; do sleep 0.5; done
  echo "$(q "SELECT pg_size_pretty(pg_table_size('cache_entries'))") table, $(q "SELECT pg_relation_size('cache_entries') / 8192") blocks: full pass $(stat "round(last_pass_ms)") ms wall clock (last cycle $(stat "round(last_cycle_ms::numeric, 1)") ms)"
}

if [[ " $PARTS " == *" pass "* ]]; then
  echo "## full pass (nothing expired, default GUCs)"
  q "TRUNCATE cache_entries" >/dev/null
  load_rows p: 1000000 "now() + interval '1 day'"
  echo -n "10^6 rows: "; pass_time
  t0=$(now_ms)
  load_rows q: 9000000 "now() + interval '1 day'"
  echo "# loaded 9,000,000 more rows in $(( $(now_ms) - t0 )) ms"
  echo -n "10^7 rows: "; pass_time
  q "TRUNCATE cache_entries" >/dev/null
fi

if [[ " $PARTS " == *" churn "* ]]; then
  echo "## churn: 5 min of cache_set on new keys, ttl 1..10 s, pgbench -c 4 -R 2000, default GUCs"
  q "TRUNCATE cache_entries" >/dev/null
  q "SELECT cache_stats_reset()" >/dev/null
  printf '\\set k random(1, 1000000000)\n\\set t random(1, 10)\nSELECT cache_set(%s, repeat(%s, 100), :t);\n' \
    "'c:' || :k" "'x'" >"$TMP/set.sql"
  chmod 644 "$TMP/set.sql"
  pgbench -n -M prepared -c 4 -j 2 -R 2000 -T 300 -f "$TMP/set.sql" >"$TMP/churn.out" 2>&1 &
  pb=$!
  echo "t_s  rows  table_kB  index_kB  n_live  n_dead  sets  expired_by_worker"
  s0=$(date +%s)
  while kill -0 $pb 2>/dev/null; do
    echo "$(( $(date +%s) - s0 )) $(q "SELECT count(*) FROM cache_entries") $(q "SELECT pg_table_size('cache_entries') / 1024, pg_indexes_size('cache_entries') / 1024, n_live_tup, n_dead_tup FROM pg_stat_user_tables WHERE relname = 'cache_entries'" | tr '|' ' ') $(stat "sets, expired_by_worker" | tr '|' ' ')"
    sleep 20
  done
  wait $pb
  grep -E '^(tps|latency average)' "$TMP/churn.out"
fi

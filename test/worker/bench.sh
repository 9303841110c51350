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

  # 2./3. The same pgbench run (8 clients, 20 s, -P 1) twice over a fresh
  # backlog of 1,000,000 expired rows: worker off (cleanup_interval = 24h),
  # then worker on from second 5. The backlog is gone in a few seconds, so
  # the comparison is per second: tps during the seconds the worker deleted
  # vs. the same seconds of the worker-off run. Both runs poll cache_stats()
  # every 0.1 s.
  bench_run() {  # $1 = off|on
    load_rows old: 1000000 "now() - interval '1 hour'"
    q "CHECKPOINT" >/dev/null
    q "SELECT cache_stats_reset()" >/dev/null
    local t0 t_on="" t_first="" t_done="" pb n
    t0=$(now_ms)
    pgbench -n -M prepared -c 8 -j 2 -T 20 -P 1 -f "$TMP/get.sql" >"$TMP/$1.out" 2>"$TMP/$1.progress" &
    pb=$!
    while kill -0 $pb 2>/dev/null; do
      if [ "$1" = on ] && [ -z "$t_on" ] && [ $(( $(now_ms) - t0 )) -ge 5000 ]; then
        q "ALTER SYSTEM RESET fastpgcache.cleanup_interval" >/dev/null; q "SELECT pg_reload_conf()" >/dev/null
        t_on=$(now_ms)
      fi
      n=$(stat expired_by_worker)
      if [ -z "$t_first" ] && [ "$n" -gt 0 ]; then t_first=$(now_ms); fi
      if [ -z "$t_done" ] && [ "$n" -ge 1000000 ]; then t_done=$(now_ms); fi
      sleep 0.1
    done
    wait $pb
    tps_all=$(grep -E '^tps' "$TMP/$1.out" | grep -oE '[0-9]+\.[0-9]+' | head -1)
    echo "$1 ${t_first:-0} ${t_done:-0} $t0"
  }
  set_guc fastpgcache.cleanup_interval 24h
  read -r _ _ _ _ < <(bench_run off)
  off_all=$(grep -E '^tps' "$TMP/off.out" | grep -oE '[0-9]+\.[0-9]+' | head -1)
  q "SELECT cache_cleanup()" >/dev/null
  q "VACUUM cache_entries" >/dev/null
  read -r _ first done_ t0 < <(bench_run on)
  on_all=$(grep -E '^tps' "$TMP/on.out" | grep -oE '[0-9]+\.[0-9]+' | head -1)
  # progress lines: "progress: 7.0 s, 53000.1 tps, ..." covering (6 s, 7 s].
  lo=$(( (first - t0) / 1000 )); hi=$(( (done_ - t0 + 999) / 1000 ))
  avg() { awk -v lo="$lo" -v hi="$hi" '/^progress/ { s = $2 + 0; if (s > lo && s <= hi) { sum += $4; n++ } } END { if (n) printf "%.0f", sum / n; else print "n/a" }' "$1"; }
  echo "under load: 1,000,000 rows deleted in $(( done_ - first )) ms (first to last deletion seen): $(( 1000000000 / (done_ - first + 1) )) rows/s"
  echo "pgbench cache_get (8 clients, 20 s): worker off $off_all tps; worker on (deleting in seconds $lo-$hi) $on_all tps"
  echo "pgbench cache_get during seconds $lo-$hi: worker off $(avg "$TMP/off.progress") tps, worker deleting $(avg "$TMP/on.progress") tps"
  echo "per-second tps, off: $(awk '/^progress/ { printf "%.0f ", $4 }' "$TMP/off.progress")"
  echo "per-second tps, on:  $(awk '/^progress/ { printf "%.0f ", $4 }' "$TMP/on.progress")"
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

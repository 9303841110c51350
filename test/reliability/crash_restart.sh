#!/usr/bin/env bash
# Crash and restart: kill -9 in the middle of a write load.
#
# A cluster preloads the extension (the static worker in database postgres);
# database dyn has a dynamic worker (cache_start_worker()). pgbench writes and
# reads the cache, and pool_crash (a small program on the C++ client's pool,
# include/fastpgcache/client.hpp) loops set/get. Each round kills one process
# with SIGKILL (round 1: a pgbench backend in the middle of its writes; round
# 2: the preloaded worker itself; the long version repeats both), then checks:
#  - the server is back (and the crash-restart was logged);
#  - the cache is empty in both databases, and cache_stats() says so: the
#    counters start again from zero, stats_reset is after the kill;
#  - the preloaded worker is back, and expiry resumes in both databases (the
#    dynamic worker's too: issue 9, defect 6);
#  - new writes work;
#  - the C++ pool: the application saw at most one error per thread (the
#    operations in flight at the kill) and none once the server was back.
#
# Env: FPC_CRASH_ROUNDS (default 2, long 10).
# Prints "N passed, M failed" last.
set -u
REL_NAME=crash_restart
. "$(dirname "$0")/lib.sh"
rel_ensure_install || { echo "0 passed, 1 failed"; exit 1; }
ROUNDS=${FPC_CRASH_ROUNDS:-$([ "$REL_LONG" = 1 ] && echo 10 || echo 2)}
THREADS=4

# Build the C++ program (as test/client/run.sh builds its tests) meanwhile.
(
  "$REL_ROOT/fallback/embed.sh" "$REL_TMP/gen" &&
  g++ -std=c++17 -Wall -Wextra -Werror -O1 -g -pthread -I"$REL_ROOT/include" -I"$REL_TMP/gen" \
    $(pkg-config --cflags libpq) "$REL_HERE/pool_crash.cpp" -o "$REL_TMP/pool_crash" $(pkg-config --libs libpq) -lcurl
) >"$REL_TMP/build.log" 2>&1 &
builder=$!
rel_bg $builder

C=crash
rel_cluster $C "shared_preload_libraries = 'fastpgcache'" "fastpgcache.cleanup_interval = '200ms'" \
  "restart_after_crash = on" "max_connections = 50" || { echo "0 passed, 1 failed"; exit 1; }
q $C "CREATE EXTENSION fastpgcache" >/dev/null
q $C "CREATE DATABASE dyn" >/dev/null
q $C "CREATE EXTENSION fastpgcache" dyn >/dev/null
q $C "SELECT cache_start_worker()" dyn >/dev/null
check "a dynamic worker runs in database dyn" "1" \
  "$(q $C "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'fastpgcache worker' AND datname = 'dyn'")"
wait_until 15 q $C "SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'fastpgcache worker' AND datname = 'postgres'" ||
  not_ok "the preloaded worker runs in database postgres"

cat >"$REL_TMP/load.pgbench" <<'EOF'
\set k random(1, 2000)
SELECT cache_set('load:' || :k, md5(random()::text), 600);
SELECT cache_get('load:' || :k);
SELECT cache_mset(ARRAY['load:m' || :k, 'load:n' || :k], ARRAY['a', 'b']);
EOF
chmod 644 "$REL_TMP/load.pgbench"

wait $builder
built=$?
if [ $built -eq 0 ]; then
  ok "pool_crash (C++ client) builds"
  echo before >"$REL_TMP/phase"
  chmod 666 "$REL_TMP/phase"
  "$REL_TMP/pool_crash" "$(conninfo $C)" "$REL_TMP/phase" $THREADS >"$REL_TMP/pool.out" 2>&1 &
  pooler=$!
  rel_bg $pooler
else
  not_ok "pool_crash (C++ client) builds" "$(tail -20 "$REL_TMP/build.log")"
fi

worker_pid() {  # worker_pid DB
  q $C "SELECT coalesce(max(pid), 0) FROM pg_stat_activity WHERE backend_type = 'fastpgcache worker' AND datname = '$1'"
}

for round in $(seq 1 "$ROUNDS"); do
  if [ $((round % 2)) -eq 1 ]; then what="a pgbench backend in the middle of cache_set"; else what="the preloaded fastpgcache worker"; fi
  note "round $round: kill -9 of $what"
  q $C "SELECT count(cache_set('pre:' || g, 'v', 3600)) FROM generate_series(1, 500) g" >/dev/null
  q $C "SELECT count(cache_set('pre:' || g, 'v', 3600)) FROM generate_series(1, 500) g" dyn >/dev/null
  q $C "SELECT cache_get('pre:1'), cache_get('none')" >/dev/null
  pgbench -n -c 4 -j 2 -T 60 -f "$REL_TMP/load.pgbench" -h "$(sock_of $C)" -p "$(port_of $C)" -U postgres postgres \
    >"$REL_TMP/pgbench.$round.out" 2>&1 &
  pb=$!
  rel_bg $pb
  sleep 3
  if [ $((round % 2)) -eq 1 ]; then
    victim=
    for _ in $(seq 1 50); do
      victim=$(q $C "SELECT pid FROM pg_stat_activity WHERE application_name = 'pgbench' AND state = 'active' LIMIT 1")
      [ -n "$victim" ] && break
      sleep 0.05
    done
  else
    victim=$(worker_pid postgres)
  fi
  [ -n "$victim" ] && [ "$victim" != 0 ] || { not_ok "round $round: found a process to kill"; kill $pb 2>/dev/null; continue; }
  sets_before=$(q $C "SELECT sets FROM cache_stats()")
  killed_at=$(q $C "SELECT clock_timestamp()")
  crash_lines=$(grep -c 'all server processes terminated; reinitializing' "$(log_of $C)")
  # The pool's threads are busy at the kill; right after it they hold (so
  # that the checks below see only what the crash left), and the errors they
  # saw are those of the operations in flight.
  kill -9 "$victim"
  [ -n "${pooler:-}" ] && echo hold >"$REL_TMP/phase"
  t0=$(date +%s%N)
  sleep 0.5
  if wait_until 60 server_up $C; then
    ok "round $round: the server is back after kill -9 of $what ($(( ($(date +%s%N) - t0) / 1000000 )) ms)"
  else
    not_ok "round $round: the server is back after kill -9 of $what"
    break
  fi
  wait $pb 2>/dev/null
  check "round $round: the crash-restart was logged" "$((crash_lines + 1))" \
    "$(grep -c 'all server processes terminated; reinitializing' "$(log_of $C)")"
  check "round $round: the cache is empty in both databases" "0|0" \
    "$(q $C "SELECT count(*) FROM cache_entries")|$(q $C "SELECT count(*) FROM cache_entries" dyn)"
  check "round $round: cache_stats() counters start from zero again (sets were $sets_before)" "0|0|0|0|0|0|t" \
    "$(q $C "SELECT hits, misses, sets, deletes, expired_by_worker, removed_by_cleanup, stats_reset >= '$killed_at' FROM cache_stats()")"
  if wait_until 20 q $C "SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'fastpgcache worker' AND datname = 'postgres'"; then
    ok "round $round: the preloaded worker is back"
  else
    not_ok "round $round: the preloaded worker is back"
  fi
  check "round $round: new writes work" "t|v" \
    "$(q $C "SELECT cache_set('after:$round', 'v'); SELECT cache_get('after:$round')" 2>&1 | tr '\n' '|' | sed 's/|$//')"
  for db in postgres dyn; do
    q $C "SELECT count(cache_set('exp:' || g, 'v', 1)) FROM generate_series(1, 100) g" $db >/dev/null
    if wait_until 15 q $C "SELECT count(*) = 0 FROM cache_entries WHERE key LIKE 'exp:%'" $db; then
      ok "round $round: expiry resumes after the crash in database $db"
    else
      not_ok "round $round: expiry resumes after the crash in database $db" \
        "workers: $(q $C "SELECT string_agg(datname, ',') FROM pg_stat_activity WHERE backend_type = 'fastpgcache worker'")" \
        "reproducer: SELECT cache_start_worker() in database $db; kill -9 any backend; cache_set('k','v',1) in $db stays"
    fi
  done
  if [ -n "${pooler:-}" ]; then
    echo after >"$REL_TMP/phase"
    sleep 3
    echo before >"$REL_TMP/phase"
  fi
  # The next round starts from a clean log mark.
done

if [ -n "${pooler:-}" ]; then
  echo stop >"$REL_TMP/phase"
  wait $pooler
  res=$(grep '^RESULT' "$REL_TMP/pool.out")
  note "C++ pool: $res"
  val() { sed -n "s/.* $1=\([0-9]*\).*/\1/p" <<<"$res"; }
  if [ -z "$res" ]; then
    not_ok "pool_crash ran to the end" "$(tail -10 "$REL_TMP/pool.out")"
  else
    check "C++ pool: errors seen by the application while the server ran and at the kills <= $THREADS per kill (in flight)" \
      "yes" "$([ "$(val before_err)" -le $((THREADS * ROUNDS)) ] && echo yes || echo "no: $(val before_err)")" \
      "$(grep '^ERROR' "$REL_TMP/pool.out")"
    check "C++ pool: no error once the server was back (the pool replaced its dead connections)" "0" "$(val after_err)" \
      "$(grep '^ERROR\[after\]' "$REL_TMP/pool.out")"
    check "C++ pool: operations ran after the restarts" "yes" "$([ "$(val after_ok)" -gt 0 ] && echo yes || echo no)"
    check "C++ pool: every get returned the value just set" "0" "$(val mismatches)"
  fi
fi
rel_finish

#!/usr/bin/env bash
# Tests of the background expiry worker and the shared-memory statistics.
#
# Starts two throwaway clusters (scripts/lib.sh), on free ports with private
# socket directories, and stops them on exit:
#   A: shared_preload_libraries = 'fastpgcache', short cleanup interval;
#   B: no preloading (cache_start_worker / cache_stop_worker, no counters).
# Assumes the extension is built and installed (make && make install).
# Prints "N passed, M failed" last; exits non-zero on any failure.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
. "$ROOT/scripts/lib.sh"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/fpc-worker.XXXXXX")
chmod 755 "$TMP"
A=$TMP/a
B=$TMP/b
PASSED=0
FAILED=0
STARTED=$(date +%s)

cleanup() {
  cluster_stop "$A"
  cluster_stop "$B"
  cluster_stop "$TMP/c"
  if [ "$FAILED" -gt 0 ] && [ -n "${KEEP_LOGS:-}" ]; then
    echo "logs kept in $TMP"
  else
    rm -rf "$TMP"
  fi
}
trap cleanup EXIT

pass() { PASSED=$((PASSED + 1)); echo "ok - $1"; }
fail() {
  FAILED=$((FAILED + 1)); echo "not ok - $1"
  [ $# -gt 1 ] && echo "#   $2"
  return 0
}

# q CLUSTER_DIR PORT SQL [DB]: one value (or rows) unaligned; stderr kept.
q() {
  psql -X -qAt -h "$1/sock" -p "$2" -U postgres -d "${4:-postgres}" -v ON_ERROR_STOP=1 -c "$3"
}
qa() { q "$A" "$PORT_A" "$@"; }
qb() { q "$B" "$PORT_B" "$@"; }

# check DESC EXPECTED ACTUAL
check() {
  if [ "$2" = "$3" ]; then pass "$1"; else fail "$1" "expected [$2], got [$3]"; fi
}

# wait_until SECONDS CMD...: polls CMD (which prints t when done) every 0.1 s.
wait_until() {
  local deadline=$(( $(date +%s%N) + $1 * 1000000000 )); shift
  while [ "$(date +%s%N)" -lt "$deadline" ]; do
    [ "$("$@" 2>/dev/null)" = "t" ] && return 0
    sleep 0.1
  done
  return 1
}

worker_pid_a() {
  qa "SELECT coalesce(max(pid), 0) FROM pg_stat_activity WHERE backend_type = 'fastpgcache worker'"
}
stat_a() { qa "SELECT $1 FROM cache_stats()"; }
# log_has N TEXT: t when cluster A's log has at least N lines containing TEXT.
log_has() { [ "$(grep -cF -- "$2" "$A/server.log")" -ge "$1" ] && echo t; }

PORT_A=$(free_port) || exit 1
cluster_start "$A" "$PORT_A" \
  "shared_preload_libraries = 'fastpgcache'" \
  "fastpgcache.cleanup_interval = '200ms'" \
  "restart_after_crash = on" || { echo "0 passed, 1 failed"; exit 1; }
PORT_B=$(free_port) || exit 1
cluster_start "$B" "$PORT_B" "fastpgcache.cleanup_interval = '200ms'" \
  || { echo "0 passed, 1 failed"; exit 1; }

echo "# cluster A (preloaded) on port $PORT_A, cluster B (not preloaded) on port $PORT_B"

############################################################################
# A: the static worker
############################################################################

if wait_until 15 qa "SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'fastpgcache worker'
                     AND application_name = 'fastpgcache worker' AND datname = 'postgres'"; then
  pass "preloaded worker is in pg_stat_activity (backend_type and application_name 'fastpgcache worker', database postgres)"
else
  fail "preloaded worker is in pg_stat_activity"
fi

# Idle until CREATE EXTENSION, logging once, not once per interval.
wait_until 15 log_has 1 'is not installed in database "postgres"' || true
sleep 1.2  # six more intervals of 200 ms: still one line (slowness can only hide a repeat)
check "worker logs once while the extension is missing" 1 \
  "$(grep -c 'is not installed in database "postgres"' "$A/server.log")"

qa "CREATE EXTENSION fastpgcache" >/dev/null
if wait_until 10 qa "SELECT worker_cycles > 0 FROM cache_stats()"; then
  pass "worker runs cycles once the extension exists"
else
  fail "worker runs cycles once the extension exists"
fi

# Stats: exact numbers after a known sequence.
qa "SELECT cache_stats_reset()" >/dev/null
qa "SELECT cache_set('s:a', 'x'), cache_set('s:b', '{\"k\": 1}'::jsonb), cache_set('s:c', '\\x00ff'::bytea)" >/dev/null
qa "SELECT cache_get('s:a'), cache_get_json('s:b'), cache_get_bytes('s:c')" >/dev/null    # 3 hits
qa "SELECT cache_get('s:none'), cache_get_json('s:none2')" >/dev/null                    # 2 misses
qa "SELECT cache_exists('s:a'), cache_ttl('s:a'), cache_exists('s:none')" >/dev/null     # not counted
qa "SELECT cache_delete('s:a'), cache_delete('s:a'), cache_delete('s:none')" >/dev/null  # 1 delete
qa "SELECT cache_set('s:d', 'y', 3600)" >/dev/null                                        # 4th set
check "stats: hits, misses, sets, deletes after a known sequence" "3|2|4|1|0|t" \
  "$(stat_a "hits, misses, sets, deletes, removed_by_cleanup, shared_memory")"
check "cache_stats_reset() zeroes the counters" "t|0|0|0|0|0" \
  "$(qa "SELECT cache_stats_reset(); SELECT hits = 0 AND misses = 0 AND expired_by_worker = 0, sets, deletes, removed_by_cleanup, hits, misses FROM cache_stats()" | tail -1)"
check "cache_stats reports table and index size and a non-negative entries estimate" "t" \
  "$(stat_a "table_bytes > 0 AND index_bytes > 0 AND entries_estimate >= 0 AND stats_reset <= now()")"

# 10,000 keys with ttl=1, nobody reading them: gone within a few intervals;
# keys without expiry and with a long ttl stay.
qa "SELECT cache_stats_reset()" >/dev/null
qa "SELECT count(cache_set('perm:' || g, 'v')) FROM generate_series(1, 100) g" >/dev/null
qa "SELECT count(cache_set('long:' || g, 'v', 3600)) FROM generate_series(1, 100) g" >/dev/null
# Counted in the inserting transaction, which the worker cannot see: however
# slow the machine, none of them can be gone yet.
check "10,000 ttl=1 keys are in the table (counted before commit)" "10000 10000" \
  "$(qa "BEGIN; SELECT count(cache_set('ttl1:' || g, 'v', 1)) FROM generate_series(1, 10000) g;
         SELECT count(*) FROM cache_entries WHERE key LIKE 'ttl1:%'; COMMIT" | tr '\n' ' ' | sed 's/ $//')"
t0=$(date +%s%N)
if wait_until 20 qa "SELECT count(*) = 0 FROM cache_entries WHERE key LIKE 'ttl1:%'"; then
  pass "10,000 ttl=1 keys removed by the worker in $(( ($(date +%s%N) - t0) / 1000000 )) ms (ttl 1 s, interval 200 ms)"
else
  fail "10,000 ttl=1 keys removed by the worker" "$(qa "SELECT count(*) FROM cache_entries WHERE key LIKE 'ttl1:%'") left"
fi
check "keys without expiry and with a long ttl are untouched" "100|100|1" \
  "$(qa "SELECT count(*) FILTER (WHERE key LIKE 'perm:%'), count(*) FILTER (WHERE key LIKE 'long:%'), count(*) FILTER (WHERE key = 's:d') FROM cache_entries")"
# The counter moves just after each batch commits: wait for it, then compare.
wait_until 5 qa "SELECT expired_by_worker >= 10000 FROM cache_stats()" || true
check "expired_by_worker counts exactly the 10,000 removed rows" 10000 "$(stat_a expired_by_worker)"
check "last cycle duration and rows are reported" "t" \
  "$(stat_a "last_cycle_ms >= 0 AND last_cycle_rows >= 0 AND worker_passes > 0")"

# Reloading cleanup_interval takes effect: 1h stops the cycles, 50ms speeds
# them up (the worker's cycle counter is the observation).
qa "ALTER SYSTEM SET fastpgcache.cleanup_interval = '1h'" >/dev/null
qa "SELECT pg_reload_conf()" >/dev/null
# The worker sees the reload when it wakes (a cycle may still run before):
# look for a quiet window of 1.5 s (7 cycles at 200 ms), up to 6 windows.
quiet=no
for _ in 1 2 3 4 5 6; do
  c1=$(stat_a worker_cycles)
  sleep 1.5
  c2=$(stat_a worker_cycles)
  [ "$c1" = "$c2" ] && { quiet=yes; break; }
done
check "cleanup_interval = '1h' after reload: no cycle in a 1.5 s window" "yes" "$quiet"
qa "ALTER SYSTEM SET fastpgcache.cleanup_interval = '50ms'" >/dev/null
qa "SELECT pg_reload_conf()" >/dev/null
if wait_until 10 qa "SELECT worker_cycles >= $c2 + 20 FROM cache_stats()"; then
  pass "cleanup_interval = '50ms' after reload: 20 cycles within 10 s"
else
  fail "cleanup_interval = '50ms' after reload" "cycles $c2 -> $(stat_a worker_cycles)"
fi
qa "ALTER SYSTEM SET fastpgcache.cleanup_interval = '200ms'" >/dev/null
qa "SELECT pg_reload_conf()" >/dev/null

# The static worker in its database: cache_start_worker refuses politely,
# cache_stop_worker does not stop it.
out=$(qa "SELECT cache_start_worker() IS NULL" 2>&1)
case "$out" in
  *"already runs in database"*t) pass "cache_start_worker() refuses politely when the preloaded worker runs" ;;
  *) fail "cache_start_worker() refuses politely when the preloaded worker runs" "$out" ;;
esac
out=$(qa "SELECT cache_stop_worker()" 2>&1)
case "$out" in
  *"shared_preload_libraries"*f) pass "cache_stop_worker() leaves the preloaded worker alone (NOTICE, false)" ;;
  *) fail "cache_stop_worker() leaves the preloaded worker alone" "$out" ;;
esac

# A worker and two cache_cleanup() calls at once: no deadlock, no double count.
qa "SELECT cache_stats_reset()" >/dev/null
qa "INSERT INTO cache_entries SELECT encode(substring(sha256(convert_to('old:' || g, 'UTF8')) from 1 for 16), 'hex')::uuid,
      now() - interval '1 second', 't', 'old:' || g, 'v'::bytea FROM generate_series(1, 100000) g" >/dev/null
# Let the worker start on the backlog, then run two cache_cleanup() at once.
wait_until 5 qa "SELECT expired_by_worker > 0 FROM cache_stats()" || true
qa "SELECT cache_cleanup()" >"$TMP/c1.out" 2>&1 &
p1=$!
qa "SELECT cache_cleanup()" >"$TMP/c2.out" 2>&1 &
p2=$!
wait $p1 $p2
r1=$(cat "$TMP/c1.out"); r2=$(cat "$TMP/c2.out")
case "$r1$r2" in
  *[!0-9]*) fail "concurrent cache_cleanup() calls succeed" "$r1 / $r2"; r1=0; r2=0 ;;
esac
# The worker's counter moves just after each of its batches commits: wait
# until the counts reach the total (a double count would overshoot it).
wait_until 20 qa "SELECT count(*) = 0 FROM cache_entries WHERE key LIKE 'old:%'" || true
wait_until 5 qa "SELECT expired_by_worker + ${r1:-0} + ${r2:-0} >= 100000 FROM cache_stats()" || true
w=$(stat_a expired_by_worker)
echo "# cache_cleanup() #1 removed $r1, #2 removed $r2, the worker $w"
check "worker + 2 concurrent cache_cleanup(): counts add up to the 100,000 expired rows" 100000 \
  "$(( ${r1:-0} + ${r2:-0} + ${w:-0} ))"
check "removed_by_cleanup equals what cache_cleanup() returned" "$(( ${r1:-0} + ${r2:-0} ))" "$(stat_a removed_by_cleanup)"
check "no deadlock reported" 0 "$(grep -c 'deadlock detected' "$A/server.log")"

# DROP EXTENSION / CREATE EXTENSION (in another schema) while the worker runs.
pid=$(worker_pid_a)
check "DROP EXTENSION while the worker runs" "" "$(qa "SET statement_timeout = '10s'; DROP EXTENSION fastpgcache" 2>&1)"
if wait_until 10 log_has 2 'is not installed in database "postgres"'; then
  pass "worker notices the extension is gone (logs once more)"
else
  fail "worker notices the extension is gone"
fi
qa "CREATE SCHEMA fpc; CREATE EXTENSION fastpgcache SCHEMA fpc" >/dev/null
qa "SELECT count(fpc.cache_set('again:' || g, 'v', 1)) FROM generate_series(1, 1000) g" >/dev/null
if wait_until 10 qa "SELECT count(*) = 0 FROM fpc.cache_entries"; then
  pass "after CREATE EXTENSION in schema fpc the same worker (pid unchanged: $([ "$(worker_pid_a)" = "$pid" ] && echo yes || echo no)) removes expired keys"
else
  fail "after CREATE EXTENSION the worker removes expired keys"
fi
check "worker was not restarted by DROP/CREATE EXTENSION" "$pid" "$(worker_pid_a)"

# ALTER SCHEMA ... RENAME while the worker runs (the extension is not
# relocatable; this is how its schema changes name, keeping its oid). The
# worker's kept plan names the schema in its text, which PostgreSQL re-parses
# after an invalidation: the worker must follow the rename and never touch a
# table in a new schema that took the old name.
# 1. fpc -> fpc2, and in the same transaction an impostor fpc.cache_entries
#    with expired rows.
qa "BEGIN; ALTER SCHEMA fpc RENAME TO fpc2; CREATE SCHEMA fpc;
    CREATE TABLE fpc.cache_entries (LIKE fpc2.cache_entries INCLUDING ALL);
    INSERT INTO fpc.cache_entries SELECT encode(substring(sha256(convert_to('imp:' || g, 'UTF8')) from 1 for 16), 'hex')::uuid,
      now() - interval '1 hour', 't', 'imp:' || g, 'v'::bytea FROM generate_series(1, 100) g; COMMIT" >/dev/null
qa "SELECT count(fpc2.cache_set('ren:' || g, 'v', 1)) FROM generate_series(1, 500) g" >/dev/null
if wait_until 20 qa "SELECT count(*) = 0 FROM fpc2.cache_entries WHERE key LIKE 'ren:%'"; then
  pass "after ALTER SCHEMA fpc RENAME TO fpc2 the worker removes expired keys from fpc2.cache_entries"
else
  fail "after ALTER SCHEMA fpc RENAME TO fpc2 the worker removes expired keys" \
    "$(qa "SELECT count(*) FROM fpc2.cache_entries WHERE key LIKE 'ren:%'") left"
fi
check "the worker leaves the expired rows of an impostor fpc.cache_entries alone" 100 \
  "$(qa "SELECT count(*) FROM fpc.cache_entries")"
qa "SET client_min_messages = warning; DROP SCHEMA fpc CASCADE" >/dev/null
# 2. fpc2 -> fpc3 with no schema left under the old name.
qa "ALTER SCHEMA fpc2 RENAME TO fpc3" >/dev/null
qa "SELECT count(fpc3.cache_set('ren2:' || g, 'v', 1)) FROM generate_series(1, 500) g" >/dev/null
if wait_until 20 qa "SELECT count(*) = 0 FROM fpc3.cache_entries WHERE key LIKE 'ren2:%'"; then
  pass "after ALTER SCHEMA fpc2 RENAME TO fpc3 the worker removes expired keys from fpc3.cache_entries"
else
  fail "after ALTER SCHEMA fpc2 RENAME TO fpc3 the worker removes expired keys" \
    "$(qa "SELECT count(*) FROM fpc3.cache_entries WHERE key LIKE 'ren2:%'") left"
fi
check "no worker error about the old schema names" 0 \
  "$(grep -cE 'relation "fpc2?\.cache_entries" does not exist' "$A/server.log")"
check "worker followed both renames without a restart" "$pid" "$(worker_pid_a)"
qa "DROP EXTENSION fastpgcache; DROP SCHEMA fpc3; CREATE EXTENSION fastpgcache" >/dev/null

# The worker never queues behind a lock on the table (it skips the cycle).
qa "BEGIN; LOCK TABLE cache_entries IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(3); COMMIT" >/dev/null 2>&1 &
locker=$!
held_sql="SELECT count(*) FROM pg_locks WHERE relation = 'cache_entries'::regclass AND mode = 'AccessExclusiveLock' AND granted"
wait_until 10 qa "SELECT ($held_sql) > 0" || true
# Sample while the lock is held (counting the samples that saw it held, so
# that a slow machine cannot make this check vacuous).
waits=0
held=0
for _ in 1 2 3 4 5 6 7 8 9 10; do
  r=$(qa "SELECT (SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
                  WHERE NOT l.granted AND a.backend_type = 'fastpgcache worker'), ($held_sql)")
  waits=$(( waits + ${r%%|*} ))
  [ "${r##*|}" -gt 0 ] && held=$(( held + 1 ))
  sleep 0.1
done
wait $locker
check "worker does not wait for a lock held on the table (LOCK TABLE; $held of 10 samples under the lock)" \
  "0 yes" "$waits $([ "$held" -ge 3 ] && echo yes || echo no)"
qa "SELECT count(cache_set('afterlock:' || g, 'v', 1)) FROM generate_series(1, 100) g" >/dev/null
if wait_until 10 qa "SELECT count(*) = 0 FROM cache_entries WHERE key LIKE 'afterlock:%'"; then
  pass "worker resumes after the lock is released"
else
  fail "worker resumes after the lock is released"
fi

# pg_cancel_backend() of the worker: cancels the cycle it is in, if any, and
# is ignored otherwise. Either way the worker stays (same pid) and goes on.
pid=$(worker_pid_a)
# Between cycles (nearly all the time at a 200 ms interval).
for _ in 1 2 3; do qa "SELECT pg_cancel_backend($pid)" >/dev/null; sleep 0.1; done
# Inside a cycle: a row trigger makes the worker's DELETE sleep on one row.
qa "CREATE FUNCTION slow_delete() RETURNS trigger LANGUAGE plpgsql AS \$\$
      BEGIN IF OLD.key = 'cancel:slow' THEN PERFORM pg_sleep(60); END IF; RETURN OLD; END \$\$;
    CREATE TRIGGER slow_delete BEFORE DELETE ON cache_entries FOR EACH ROW EXECUTE FUNCTION slow_delete();
    SELECT cache_set('cancel:slow', 'v', 1)" >/dev/null
cancels0=$(grep -c 'canceling statement due to user request' "$A/server.log")
if wait_until 15 qa "SELECT count(*) = 1 FROM pg_stat_activity WHERE pid = $pid AND wait_event = 'PgSleep'"; then
  # DROP TRIGGER queues behind the worker's batch: once the cancel ends that
  # batch, the trigger goes, and the next cycle deletes the row.
  qa "SET lock_timeout = '20s'; DROP TRIGGER slow_delete ON cache_entries; DROP FUNCTION slow_delete()" \
    >"$TMP/drop.out" 2>&1 &
  dropper=$!
  wait_until 10 qa "SELECT count(*) > 0 FROM pg_locks WHERE relation = 'cache_entries'::regclass AND NOT granted" || true
  qa "SELECT pg_cancel_backend($pid)" >/dev/null
  wait $dropper
  check "pg_cancel_backend() inside a cycle cancels its batch (logged)" "$(( cancels0 + 1 ))|" \
    "$(grep -c 'canceling statement due to user request' "$A/server.log")|$(cat "$TMP/drop.out")"
else
  fail "the worker's DELETE runs the slow trigger" "$(qa "SELECT state, wait_event FROM pg_stat_activity WHERE pid = $pid")"
  qa "DROP TRIGGER slow_delete ON cache_entries; DROP FUNCTION slow_delete()" >/dev/null 2>&1
fi
qa "SELECT count(cache_set('cancel:' || g, 'v', 1)) FROM generate_series(1, 100) g" >/dev/null
if wait_until 20 qa "SELECT count(*) = 0 FROM cache_entries WHERE key LIKE 'cancel:%'"; then
  pass "after pg_cancel_backend() the worker still removes expired keys"
else
  fail "after pg_cancel_backend() the worker still removes expired keys"
fi
check "pg_cancel_backend() does not end the preloaded worker (same pid, no exit logged)" "$pid 0" \
  "$(worker_pid_a) $(grep -c "(PID $pid) exited" "$A/server.log")"

# Privileges: the worker deletes as the table's owner, in a
# security-restricted operation, and never runs a non-superuser's trigger
# with superuser rights. The attack: a role with every privilege on
# cache_entries (TRIGGER included) and a schema of its own plants a BEFORE
# DELETE trigger that makes it a superuser, and waits for an expired row to be
# deleted by the worker.
qa "CREATE ROLE attacker LOGIN; CREATE SCHEMA attacker AUTHORIZATION attacker;
    GRANT ALL ON cache_entries TO attacker; CREATE TABLE public.trigger_log (who text);
    GRANT ALL ON public.trigger_log TO PUBLIC" >/dev/null
psql -X -q -h "$A/sock" -p "$PORT_A" -U attacker -d postgres -v ON_ERROR_STOP=1 >/dev/null 2>"$TMP/attack.err" <<'SQL' \
  || fail "the attacker sets up its trigger" "$(cat "$TMP/attack.err")"
CREATE FUNCTION attacker.escalate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO public.trigger_log VALUES (current_user);
  BEGIN
    EXECUTE 'ALTER ROLE attacker SUPERUSER';
  EXCEPTION WHEN OTHERS THEN NULL;
  END;
  RETURN OLD;
END $$;
CREATE TRIGGER escalate BEFORE DELETE ON public.cache_entries FOR EACH ROW EXECUTE FUNCTION attacker.escalate();
SELECT cache_set('attack:' || g, 'v', 1) FROM generate_series(1, 10) g;
SQL
if wait_until 15 log_has 1 'has trigger "escalate", which is not a superuser'"'"'s code'; then
  pass "worker refuses to run a non-superuser's trigger as a superuser (WARNING logged)"
else
  fail "worker refuses to run a non-superuser's trigger as a superuser"
fi
sleep 1  # several more cycles at 200 ms
check "the attacker is not a superuser, its trigger never ran, the expired rows stay" "f|0|10" \
  "$(qa "SELECT rolsuper FROM pg_roles WHERE rolname = 'attacker'")|$(qa "SELECT count(*) FROM trigger_log")|$(qa "SELECT count(*) FROM cache_entries WHERE key LIKE 'attack:%'")"
check "the refusal is logged once, not every cycle" 1 \
  "$(grep -c 'has trigger "escalate", which is not a superuser' "$A/server.log")"
# With an owner that is not a superuser, the worker deletes as that owner:
# the trigger runs with the owner's rights, which cannot make anyone superuser.
qa "CREATE ROLE cache_owner NOLOGIN; ALTER TABLE cache_entries OWNER TO cache_owner" >/dev/null
if wait_until 15 qa "SELECT count(*) = 0 FROM cache_entries WHERE key LIKE 'attack:%'"; then
  pass "with a non-superuser owner the worker deletes the expired rows"
else
  fail "with a non-superuser owner the worker deletes the expired rows"
fi
check "the trigger ran as the table's owner, and the attacker is still not a superuser" "cache_owner|f" \
  "$(qa "SELECT string_agg(DISTINCT who, ',') FROM trigger_log")|$(qa "SELECT rolsuper FROM pg_roles WHERE rolname = 'attacker'")"
qa "DROP TRIGGER escalate ON cache_entries; ALTER TABLE cache_entries OWNER TO postgres;
    DROP SCHEMA attacker CASCADE; DROP TABLE trigger_log; REVOKE ALL ON cache_entries FROM attacker; DROP ROLE attacker;
    DROP ROLE cache_owner" >/dev/null 2>&1
check "cleanup after the attack test" "0" "$(qa "SELECT count(*) FROM pg_roles WHERE rolname IN ('attacker', 'cache_owner')")"

# The worker never blocks DROP DATABASE of another database, and steps aside
# when its own database is needed exclusively (CREATE DATABASE ... TEMPLATE).
qa "CREATE DATABASE other" >/dev/null
q "$A" "$PORT_A" "CREATE EXTENSION fastpgcache" other >/dev/null
check "DROP DATABASE of another database" "" "$(q "$A" "$PORT_A" "DROP DATABASE other" template1 2>&1)"
pid=$(worker_pid_a)
out=$(q "$A" "$PORT_A" "CREATE DATABASE copy TEMPLATE postgres" template1 2>&1)
check "CREATE DATABASE ... TEMPLATE postgres succeeds: the worker leaves its database" "" "$out"
if wait_until 15 qa "SELECT count(*) = 1 AND max(pid) <> $pid FROM pg_stat_activity WHERE backend_type = 'fastpgcache worker'"; then
  pass "worker is back after stepping aside"
else
  fail "worker is back after stepping aside"
fi
q "$A" "$PORT_A" "DROP DATABASE copy" template1 >/dev/null

# pg_terminate_backend: the worker comes back (bgw_restart_time).
pid=$(worker_pid_a)
qa "SELECT pg_terminate_backend($pid)" >/dev/null
if wait_until 15 qa "SELECT count(*) = 1 AND max(pid) <> $pid FROM pg_stat_activity WHERE backend_type = 'fastpgcache worker'"; then
  pass "worker comes back after pg_terminate_backend"
else
  fail "worker comes back after pg_terminate_backend"
fi

# Crash-restart: kill -9 of a backend; the worker comes back and works.
pid=$(worker_pid_a)
qa "SELECT pg_sleep(60)" >/dev/null 2>&1 &
sleeper=$!
wait_until 5 qa "SELECT count(*) = 1 FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(60)'" || true
victim=$(qa "SELECT pid FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(60)'")
kill -9 "$victim"
wait "$sleeper" 2>/dev/null
if wait_until 30 qa "SELECT count(*) = 1 AND max(pid) <> $pid FROM pg_stat_activity WHERE backend_type = 'fastpgcache worker'"; then
  pass "worker comes back after a crash-restart (kill -9 of a backend)"
else
  fail "worker comes back after a crash-restart"
fi
check "crash-restart logged" 1 "$(grep -c 'all server processes terminated; reinitializing' "$A/server.log")"
qa "SELECT count(cache_set('crash:' || g, 'v', 1)) FROM generate_series(1, 500) g" >/dev/null
if wait_until 10 qa "SELECT count(*) = 0 FROM cache_entries WHERE key LIKE 'crash:%'"; then
  pass "after the crash-restart the worker removes expired keys"
else
  fail "after the crash-restart the worker removes expired keys"
fi

############################################################################
# B: no preloading
############################################################################

qb "CREATE EXTENSION fastpgcache" >/dev/null
check "without preloading cache_stats() says counters are unavailable" "f|t|t|t" \
  "$(qb "SELECT shared_memory, hits IS NULL AND misses IS NULL AND sets IS NULL AND worker_cycles IS NULL, table_bytes > 0, entries_estimate IS NOT NULL FROM cache_stats()")"
out=$(qb "SELECT cache_stats_reset()" 2>&1)
case "$out" in
  *"not available"*f) pass "without preloading cache_stats_reset() returns false with a NOTICE" ;;
  *) fail "without preloading cache_stats_reset()" "$out" ;;
esac
check "no worker without preloading" 0 \
  "$(qb "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'fastpgcache worker'")"
check "cache functions work without a worker" "v|t" \
  "$(qb "SELECT cache_set('nw', 'v'); SELECT cache_get('nw'), cache_delete('nw')" | tail -1)"

pid=$(qb "SELECT cache_start_worker()")
check "cache_start_worker() returns the pid of a worker in this database" "1" \
  "$(qb "SELECT count(*) FROM pg_stat_activity WHERE pid = ${pid:-0} AND backend_type = 'fastpgcache worker' AND datname = 'postgres'")"
out=$(qb "SELECT cache_start_worker() IS NULL" 2>&1)
case "$out" in
  *"already runs in database \"postgres\" (pid $pid)"*t) pass "second cache_start_worker() refuses politely (NOTICE, NULL)" ;;
  *) fail "second cache_start_worker() refuses politely" "$out" ;;
esac
qb "SELECT count(cache_set('dyn:' || g, 'v', 1)) FROM generate_series(1, 2000) g" >/dev/null
if wait_until 10 qb "SELECT count(*) = 0 FROM cache_entries WHERE key LIKE 'dyn:%'"; then
  pass "the dynamic worker removes expired keys"
else
  fail "the dynamic worker removes expired keys"
fi
# pg_cancel_backend() between cycles leaves a dynamic worker (never
# restarted) running and working.
for _ in 1 2 3; do qb "SELECT pg_cancel_backend($pid)" >/dev/null; sleep 0.1; done
qb "SELECT count(cache_set('dyncancel:' || g, 'v', 1)) FROM generate_series(1, 100) g" >/dev/null
if wait_until 20 qb "SELECT count(*) = 0 FROM cache_entries WHERE key LIKE 'dyncancel:%'"; then
  pass "after pg_cancel_backend() the dynamic worker still removes expired keys"
else
  fail "after pg_cancel_backend() the dynamic worker still removes expired keys"
fi
check "pg_cancel_backend() does not end the dynamic worker (same pid, no exit logged)" "1 0" \
  "$(qb "SELECT count(*) FROM pg_stat_activity WHERE pid = ${pid:-0} AND backend_type = 'fastpgcache worker'") $(grep -c "(PID ${pid:-0}) exited" "$B/server.log")"
check "cache_stop_worker() stops it (and waits until it is gone)" "t 0" \
  "$(qb "SELECT cache_stop_worker()") $(qb "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'fastpgcache worker'")"
check "cache_stop_worker() with no worker: false" "f" "$(qb "SELECT cache_stop_worker()" 2>/dev/null)"

# DROP EXTENSION ends a dynamic worker (it does not keep a slot and a
# transaction a second for nothing), and after CREATE EXTENSION a new one
# starts.
pid=$(qb "SELECT cache_start_worker()")
qb "DROP EXTENSION fastpgcache" >/dev/null
if wait_until 10 qb "SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'fastpgcache worker'"; then
  pass "DROP EXTENSION ends the dynamic worker"
else
  fail "DROP EXTENSION ends the dynamic worker"
fi
qb "CREATE EXTENSION fastpgcache" >/dev/null
pid=$(qb "SELECT cache_start_worker()" 2>&1)
case "$pid" in
  ''|*[!0-9]*) fail "after CREATE EXTENSION cache_start_worker() starts a new worker" "$pid" ;;
  *) pass "after CREATE EXTENSION cache_start_worker() starts a new worker" ;;
esac

# Crash-restart: the dynamic worker comes back by itself and expires keys.
qb "SELECT pg_sleep(60)" >/dev/null 2>&1 &
sleeper=$!
wait_until 5 qb "SELECT count(*) = 1 FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(60)'" || true
kill -9 "$(qb "SELECT pid FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(60)'")"
wait "$sleeper" 2>/dev/null
if wait_until 30 qb "SELECT count(*) = 1 AND max(pid) <> ${pid:-0} FROM pg_stat_activity WHERE backend_type = 'fastpgcache worker'"; then
  pass "the dynamic worker comes back after a crash-restart"
else
  fail "the dynamic worker comes back after a crash-restart"
fi
qb "SELECT count(cache_set('dyncrash:' || g, 'v', 1)) FROM generate_series(1, 100) g" >/dev/null
if wait_until 10 qb "SELECT count(*) = 0 FROM cache_entries WHERE key LIKE 'dyncrash:%'"; then
  pass "after the crash-restart the dynamic worker removes expired keys"
else
  fail "after the crash-restart the dynamic worker removes expired keys"
fi
qb "SELECT cache_stop_worker()" >/dev/null

# Two cache_start_worker() at once: one worker in the end.
qb "SELECT cache_start_worker()" >"$TMP/s1.out" 2>&1 &
p1=$!
qb "SELECT cache_start_worker()" >"$TMP/s2.out" 2>&1 &
p2=$!
wait $p1 $p2
# The loser's worker may still be on its way out: wait until one is left.
if wait_until 10 qb "SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'fastpgcache worker'"; then
  pass "two concurrent cache_start_worker(): one worker runs"
else
  fail "two concurrent cache_start_worker(): one worker runs" \
    "$(qb "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'fastpgcache worker'") workers"
fi
qb "SELECT cache_stop_worker()" >/dev/null

# Privileges: starting/stopping workers and resetting counters are not PUBLIC.
qb "CREATE ROLE app LOGIN" >/dev/null
out=$(psql -X -qAt -h "$B/sock" -p "$PORT_B" -U app -d postgres -c "SELECT cache_start_worker()" 2>&1)
case "$out" in
  *"permission denied"*) pass "cache_start_worker() is not granted to PUBLIC" ;;
  *) fail "cache_start_worker() is not granted to PUBLIC" "$out" ;;
esac

# A dynamic worker does not block DROP DATABASE of its own database.
qb "CREATE DATABASE dyn" >/dev/null
q "$B" "$PORT_B" "CREATE EXTENSION fastpgcache" dyn >/dev/null
q "$B" "$PORT_B" "SELECT cache_start_worker()" dyn >/dev/null
check "worker runs in database dyn" 1 \
  "$(qb "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'fastpgcache worker' AND datname = 'dyn'")"
check "DROP DATABASE of the dynamic worker's own database succeeds" "" "$(qb "DROP DATABASE dyn" 2>&1)"

check "no server crashed in cluster B (but for the kill -9 above)" 1 "$(grep -c 'terminated by signal' "$B/server.log")"

############################################################################
# C: preloaded, fastpgcache.database names a database that does not exist
############################################################################

C=$TMP/c
PORT_C=$(free_port) || exit 1
cluster_start "$C" "$PORT_C" "shared_preload_libraries = 'fastpgcache'" "fastpgcache.database = 'later'" \
  "fastpgcache.cleanup_interval = '200ms'" || { echo "$PASSED passed, $((FAILED + 1)) failed"; exit 1; }
qc() { q "$C" "$PORT_C" "$@"; }
wait_until 10 eval "grep -q 'database \"later\" does not exist' '$C/server.log' && echo t" || true
sleep 11  # two more retries of the launcher
check "a missing fastpgcache.database: one WARNING, no FATAL, no worker, the launcher runs" "1|0|0|1" \
  "$(grep -c 'WARNING:  fastpgcache launcher: database "later" does not exist' "$C/server.log")|$(grep -c FATAL "$C/server.log")|$(qc "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'fastpgcache worker'")|$(qc "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'fastpgcache launcher'")"
qc "CREATE DATABASE later" >/dev/null
q "$C" "$PORT_C" "CREATE EXTENSION fastpgcache; SELECT count(cache_set('late:' || g, 'v', 1)) FROM generate_series(1, 100) g" later >/dev/null
if wait_until 20 q "$C" "$PORT_C" "SELECT count(*) = 0 FROM cache_entries WHERE key LIKE 'late:%'" later; then
  pass "once the database is created the launcher starts its worker, which removes expired keys"
else
  fail "once the database is created the launcher starts its worker"
fi
cluster_stop "$C"

echo "# runtime $(( $(date +%s) - STARTED )) s"
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]

#!/usr/bin/env bash
# Concurrency test: 8 sessions upsert, read and delete the same 20 keys at
# once with pgbench, and 4 sessions write 200-key batches in opposite orders;
# then the table must be consistent: no errors, one row per key, every
# key_hash right, and the primary key index intact (amcheck).
# Then the 1.1 commands: 16 sessions x 10,000 cache_incr on one key under
# READ COMMITTED and REPEATABLE READ (serialization failures retried by
# pgbench, none lost); 8 sessions racing cache_set(nx) for the same fresh
# keys (exactly one winner each); concurrent cache_msetnx over overlapping
# key sets (all or nothing, at most one winner per key); a full SCAN while
# other sessions write returns every key that stays.
# Usage: test/concurrency/run.sh DBNAME   (PGHOST/PGPORT/PGUSER set by caller)
# FPC_INCR_TRANSACTIONS (default 10000) sets the increments per session.
set -euo pipefail
db=$1
here=$(cd "$(dirname "$0")" && pwd)
clients=${FPC_CONCURRENCY_CLIENTS:-8}
transactions=${FPC_CONCURRENCY_TRANSACTIONS:-1500}
incr_transactions=${FPC_INCR_TRANSACTIONS:-10000}

export PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning"
psql_q() { psql -X -v ON_ERROR_STOP=1 -qAt -d "$db" "$@"; }

log=$(mktemp)
churn_pid=
trap 'rm -f "$log"; [ -n "$churn_pid" ] && kill "$churn_pid" 2>/dev/null; true' EXIT
# run_pgbench CLIENTS TRANSACTIONS SCRIPT: every transaction must succeed.
# pgbench exits non-zero when a client aborts on an error, but counts a
# deadlock or serialization failure as a "failed transaction" and exits 0:
# so its counts are checked too.
# Extra pgbench options can follow the script (e.g. --max-tries=N).
run_pgbench() {
  local clients=$1 per_client=$2 script=$3; shift 3
  if ! pgbench -n -M prepared -c "$clients" -j 2 -t "$per_client" "$@" -f "$script" "$db" >"$log" 2>&1; then
    cat "$log"; echo "concurrency: pgbench reported errors ($script)"; return 1
  fi
  grep -E "^number of (transactions actually processed|failed transactions|transactions retried)|^total number of retries|^tps" "$log"
  local total=$((clients * per_client))
  if ! grep -q "^number of transactions actually processed: $total/$total$" "$log" \
     || ! grep -q "^number of failed transactions: 0 " "$log"; then
    grep -i "error" "$log" | head -5; echo "concurrency: not every transaction succeeded ($script)"; return 1
  fi
}
run_pgbench "$clients" "$transactions" "$here/upsert_delete.pgbench"
# Batches over the same keys in opposite orders (cache_mset locks its rows in
# key_hash order, whatever the order of the arrays).
run_pgbench 4 100 "$here/mset_orders.pgbench"

fail=0
check() {  # check NAME SQL EXPECTED
  local got
  got=$(psql_q -c "$2")
  if [ "$got" = "$3" ]; then echo "ok - $1"; else echo "not ok - $1: got '$got', expected '$3'"; fail=1; fi
}
check "at most one row per key" \
  "SELECT count(*) FROM (SELECT key FROM cache_entries GROUP BY key HAVING count(*) > 1) d" 0
check "no key outside the ones used" \
  "SELECT count(*) FROM cache_entries WHERE key !~ '^(hot:([1-9]|1[0-9]|20)|batch:([1-9][0-9]?|1[0-9][0-9]|200))$'" 0
check "every row's key_hash matches its key" \
  "SELECT count(*) FROM cache_entries WHERE key_hash <> encode(substring(sha256(convert_to(key, 'UTF8')) FROM 1 FOR 16), 'hex')::uuid" 0
check "every live key reads back its row's value" \
  "SELECT count(*) FROM cache_entries WHERE (expires_at IS NULL OR expires_at > clock_timestamp() + interval '1 second') AND cache_get_bytes(key) IS DISTINCT FROM value" 0
psql_q -c "CREATE EXTENSION IF NOT EXISTS amcheck" >/dev/null
check "primary key index is consistent with the heap (amcheck)" \
  "SELECT count(*) FROM (SELECT bt_index_parent_check(indexrelid, true) FROM pg_index WHERE indrelid = 'cache_entries'::regclass) c" \
  "$(psql_q -c "SELECT count(*) FROM pg_index WHERE indrelid = 'cache_entries'::regclass")"

# 1.1 commands. A suite that fails above still runs these: each checks its own keys.
step() { echo "-- $*"; }
total=$((16 * incr_transactions))

step "16 sessions x $incr_transactions cache_incr on one key, READ COMMITTED"
psql_q -c "SELECT cache_delete(ARRAY['ctr-rc', 'ctr-rr'])" >/dev/null
run_pgbench 16 "$incr_transactions" "$here/incr_rc.pgbench" || fail=1
check "READ COMMITTED: the counter is exactly $total (no lost update)" "SELECT cache_get('ctr-rc')" "$total"

step "16 sessions x $incr_transactions cache_incr on one key, REPEATABLE READ, serialization failures retried"
PGOPTIONS="$PGOPTIONS -c default_transaction_isolation=repeatable\\ read" \
  run_pgbench 16 "$incr_transactions" "$here/incr_rr.pgbench" --max-tries=1000000 || fail=1
retried=$(sed -n 's/^number of transactions retried: \([0-9]*\).*/\1/p' "$log")
check "REPEATABLE READ: the counter equals the $total committed increments" "SELECT cache_get('ctr-rr')" "$total"
if [ "${retried:-0}" -gt 0 ]; then
  echo "ok - REPEATABLE READ: concurrent increments raised serialization failures ($retried transactions retried)"
else
  echo "not ok - REPEATABLE READ: no serialization failure was raised (got '${retried:-}')"; fail=1
fi

step "8 sessions racing cache_set(k, v, nx => true) on the same fresh keys"
psql_q -c "DROP TABLE IF EXISTS fpc_nx_log; DROP SEQUENCE IF EXISTS fpc_nx_seq;
           CREATE UNLOGGED TABLE fpc_nx_log (slot bigint, client integer, won boolean);
           CREATE SEQUENCE fpc_nx_seq MINVALUE 0 START 0;" >/dev/null
run_pgbench 8 1000 "$here/nx_race.pgbench" || fail=1
check "READ COMMITTED: exactly one true per key" \
  "SELECT count(*) FROM (SELECT slot FROM fpc_nx_log GROUP BY slot HAVING count(*) FILTER (WHERE won) <> 1) s" 0
check "READ COMMITTED: 8 attempts per key" "SELECT count(*) FROM (SELECT slot FROM fpc_nx_log GROUP BY slot HAVING count(*) <> 8) s" 0
check "READ COMMITTED: each key holds its winner's value" \
  "SELECT count(*) FROM fpc_nx_log WHERE won AND cache_get('nx:' || slot) IS DISTINCT FROM client::text" 0
echo "   keys tried by 2 or more sessions / by all 8: $(psql_q -c "SELECT count(*) FILTER (WHERE n >= 2) || ' / ' || count(*) FILTER (WHERE n = 8) || ' of ' || count(*) FROM (SELECT count(DISTINCT client) AS n FROM fpc_nx_log GROUP BY slot) s")"
PGOPTIONS="$PGOPTIONS -c default_transaction_isolation=repeatable\\ read" \
  run_pgbench 8 500 "$here/nx_race_rr.pgbench" --max-tries=1000000 || fail=1
check "REPEATABLE READ: exactly one true per key tried (losers: false or a retried serialization failure)" \
  "SELECT count(*) FROM (SELECT slot FROM fpc_nx_log WHERE slot >= 1000 GROUP BY slot HAVING count(*) FILTER (WHERE won) <> 1) s" 0
check "REPEATABLE READ: each key holds its winner's value" \
  "SELECT count(*) FROM fpc_nx_log WHERE slot >= 1000 AND won AND cache_get('nxrr:' || slot) IS DISTINCT FROM client::text" 0

step "8 sessions: cache_msetnx over overlapping key sets"
psql_q -c "DROP TABLE IF EXISTS fpc_msetnx_log; DROP SEQUENCE IF EXISTS fpc_msetnx_seq;
           CREATE UNLOGGED TABLE fpc_msetnx_log (id bigint, keys text[], won boolean);
           CREATE SEQUENCE fpc_msetnx_seq;" >/dev/null
run_pgbench 8 500 "$here/msetnx_race.pgbench" || fail=1
check "msetnx: a winner's keys all hold its value (all or nothing)" \
  "SELECT count(*) FROM fpc_msetnx_log AS w, unnest(w.keys) AS k WHERE w.won AND cache_get(k) IS DISTINCT FROM w.id::text" 0
check "msetnx: at most one winner per key" \
  "SELECT count(*) FROM (SELECT k FROM fpc_msetnx_log, unnest(keys) AS k WHERE won GROUP BY k HAVING count(*) > 1) d" 0
check "msetnx: a loser wrote nothing (every value is the id of a winner listing that key)" \
  "SELECT count(*) FROM cache_entries AS e WHERE e.key LIKE 'mx:%' AND NOT EXISTS
     (SELECT 1 FROM fpc_msetnx_log AS w WHERE w.won AND w.id::text = convert_from(e.value, 'UTF8') AND e.key = ANY (w.keys))" 0
check "msetnx: every loser conflicted with a winner" \
  "SELECT count(*) FROM fpc_msetnx_log AS l WHERE NOT l.won AND NOT EXISTS
     (SELECT 1 FROM fpc_msetnx_log AS w WHERE w.won AND w.keys && l.keys)" 0
echo "   winners / losers: $(psql_q -c "SELECT count(*) FILTER (WHERE won) || ' / ' || count(*) FILTER (WHERE NOT won) FROM fpc_msetnx_log")"

step "a full SCAN while 2 other sessions insert and delete keys"
psql_q -c "SELECT cache_mset(ARRAY(SELECT 'stable:' || i FROM generate_series(1, 1000) i), array_fill('s'::text, ARRAY[1000])),
                  cache_mset(ARRAY(SELECT 'churn:' || i FROM generate_series(1, 3000) i), array_fill('c'::text, ARRAY[3000]))" >/dev/null
pgbench -n -M prepared -c 2 -j 1 -T 600 -f "$here/scan_churn.pgbench" "$db" >"$log.churn" 2>&1 &
churn_pid=$!
sleep 1
scans=$(psql_q <<'SQL' || echo failed
CREATE TEMP TABLE scan_seen (iteration integer, k text);
DO $$
DECLARE
    cur bigint;
    r record;
    calls integer;
BEGIN
    FOR it IN 1 .. 5 LOOP
        cur := 0; calls := 0;
        LOOP
            SELECT * INTO r FROM cache_scan(cur, 'stable:*', 40);
            INSERT INTO scan_seen SELECT it, unnest(r.keys);
            calls := calls + 1;
            PERFORM pg_sleep(0.005);
            cur := r.next_cursor;
            EXIT WHEN cur = 0 OR calls > 100000;
        END LOOP;
    END LOOP;
END
$$;
SELECT count(*) FROM (SELECT iteration FROM scan_seen GROUP BY iteration HAVING count(DISTINCT k) = 1000) s;
SQL
)
kill -TERM "$churn_pid" 2>/dev/null || true; wait "$churn_pid" 2>/dev/null || true; churn_pid=
churned=$(psql_q -c "SELECT count(*) FROM cache_keys('churn:*')")
if [ "$scans" = 5 ]; then echo "ok - 5 full scans under concurrent writes each returned all 1000 stable keys"; else echo "not ok - full scans that returned every stable key: '$scans' of 5"; fail=1; fi
if grep -q "ERROR" "$log.churn"; then echo "not ok - the writers failed:"; grep ERROR "$log.churn" | head -3; fail=1; else echo "ok - the writers ran without errors ($churned churn keys left)"; fi
rm -f "$log.churn"
exit $fail

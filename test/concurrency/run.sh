#!/usr/bin/env bash
# Concurrency test: 8 sessions upsert, read and delete the same 20 keys at
# once with pgbench, and 4 sessions write 200-key batches in opposite orders;
# then the table must be consistent: no errors, one row per key, every
# key_hash right, and the primary key index intact (amcheck).
# Usage: test/concurrency/run.sh DBNAME   (PGHOST/PGPORT/PGUSER set by caller)
set -euo pipefail
db=$1
here=$(cd "$(dirname "$0")" && pwd)
clients=${FPC_CONCURRENCY_CLIENTS:-8}
transactions=${FPC_CONCURRENCY_TRANSACTIONS:-1500}

export PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning"
psql_q() { psql -X -v ON_ERROR_STOP=1 -qAt -d "$db" "$@"; }

log=$(mktemp)
trap 'rm -f "$log"' EXIT
# run_pgbench CLIENTS TRANSACTIONS SCRIPT: every transaction must succeed.
# pgbench exits non-zero when a client aborts on an error, but counts a
# deadlock or serialization failure as a "failed transaction" and exits 0:
# so its counts are checked too.
run_pgbench() {
  local clients=$1 per_client=$2 script=$3
  if ! pgbench -n -M prepared -c "$clients" -j 2 -t "$per_client" -f "$script" "$db" >"$log" 2>&1; then
    cat "$log"; echo "concurrency: pgbench reported errors ($script)"; return 1
  fi
  grep -E "^number of (transactions actually processed|failed transactions)" "$log"
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
exit $fail

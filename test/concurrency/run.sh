#!/usr/bin/env bash
# Concurrency test: 8 sessions upsert, read and delete the same 20 keys at
# once with pgbench, then the table must be consistent: no errors, one row
# per key, every key_hash right, and the primary key index intact (amcheck).
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
# pgbench exits non-zero if any client hits an error (deadlock, unique
# violation, serialization failure ...).
if ! pgbench -n -M prepared -c "$clients" -j 2 -t "$transactions" -f "$here/upsert_delete.pgbench" "$db" >"$log" 2>&1; then
  cat "$log"
  echo "concurrency: pgbench reported errors"
  exit 1
fi
grep -E "^number of (transactions actually processed|failed transactions)" "$log" || true

fail=0
check() {  # check NAME SQL EXPECTED
  local got
  got=$(psql_q -c "$2")
  if [ "$got" = "$3" ]; then echo "ok - $1"; else echo "not ok - $1: got '$got', expected '$3'"; fail=1; fi
}
check "at most one row per key" \
  "SELECT count(*) FROM (SELECT key FROM cache_entries GROUP BY key HAVING count(*) > 1) d" 0
check "no key outside the 20 used" \
  "SELECT count(*) FROM cache_entries WHERE key !~ '^hot:([1-9]|1[0-9]|20)$'" 0
check "every row's key_hash matches its key" \
  "SELECT count(*) FROM cache_entries WHERE key_hash <> encode(substring(sha256(convert_to(key, 'UTF8')) FROM 1 FOR 16), 'hex')::uuid" 0
# The row's bytes: the extension keeps every value in bytea "value"; the SQL
# fallback keeps text in "value" and bytea in "value_bytes".
if [ "$(psql_q -c "SELECT count(*) FROM pg_attribute WHERE attrelid = 'cache_entries'::regclass AND attname = 'value_bytes'")" = 1 ]; then
  row_bytes="coalesce(value_bytes, convert_to(value, 'UTF8'))"
else
  row_bytes="value"
fi
check "every live key reads back its row's value" \
  "SELECT count(*) FROM cache_entries WHERE (expires_at IS NULL OR expires_at > clock_timestamp() + interval '1 second') AND cache_get_bytes(key) IS DISTINCT FROM $row_bytes" 0
psql_q -c "CREATE EXTENSION IF NOT EXISTS amcheck" >/dev/null
check "primary key index is consistent with the heap (amcheck)" \
  "SELECT count(*) FROM (SELECT bt_index_parent_check(indexrelid, true) FROM pg_index WHERE indrelid = 'cache_entries'::regclass) c" \
  "$(psql_q -c "SELECT count(*) FROM pg_index WHERE indrelid = 'cache_entries'::regclass")"
exit $fail

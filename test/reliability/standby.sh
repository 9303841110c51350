#!/usr/bin/env bash
# Hot standby (issue 9, defect 4): a real streaming standby made with
# pg_basebackup -R from a primary that preloads the extension.
#
#  1. standby.py: every function of the extension fails at once on the
#     standby, with a proper SQLSTATE (not 58P01, XX000) and a message naming
#     the cause (the cache lives on the primary).
#  2. cache_start_worker() refuses at once; six calls cancelled by a 1 s
#     statement_timeout leak no background-worker slot (max_worker_processes
#     = 8): no fastpgcache worker is registered or running, and a parallel
#     query still gets every worker it planned.
#  3. The standby replays what the primary does meanwhile, and nothing
#     crashed on either server.
#  4. After pg_promote(): the cache works on the new primary (empty: UNLOGGED
#     tables are not replicated), the preloaded worker runs and expires keys.
# Prints "N passed, M failed" last.
set -u
REL_NAME=standby
. "$(dirname "$0")/lib.sh"
rel_ensure_install || { echo "0 passed, 1 failed"; exit 1; }

conf=("shared_preload_libraries = 'fastpgcache'" "fastpgcache.cleanup_interval = '200ms'"
      "restart_after_crash = on" "max_worker_processes = 8" "max_parallel_workers = 8"
      "wal_level = replica" "max_wal_senders = 5" "hot_standby = on")
P=primary
S=standby
rel_cluster $P "${conf[@]}" || { echo "0 passed, 1 failed"; exit 1; }
q $P "CREATE EXTENSION fastpgcache" >/dev/null
q $P "SELECT cache_set('sb:k', 'on the primary'), cache_set('sb:k2', 'x')" >/dev/null
q $P "CREATE TABLE big AS SELECT g AS id, md5(g::text) AS t FROM generate_series(1, 300000) g; ANALYZE big" >/dev/null
crash_mark $P

mkdir -p "$REL_TMP/$S"
[ "$(id -u)" -eq 0 ] && chown postgres:postgres "$REL_TMP/$S"
if ! as_pg pg_basebackup -D "$REL_TMP/$S/data" -R -X stream -c fast -h "$(sock_of $P)" -p "$(port_of $P)" -U postgres \
    >"$REL_TMP/basebackup.log" 2>&1; then
  not_ok "pg_basebackup -R from the primary" "$(tail -5 "$REL_TMP/basebackup.log")"
  rel_finish; exit 1
fi
rel_cluster $S "${conf[@]}" "primary_conninfo = 'host=$(sock_of $P) port=$(port_of $P) user=postgres'" ||
  { not_ok "the standby starts"; rel_finish; exit 1; }
check "the standby is in recovery, streaming from the primary" "t|1" \
  "$(q $S "SELECT pg_is_in_recovery()")|$(q $P "SELECT count(*) FROM pg_stat_replication")"
# The standby's canary must live on its primary: mark without one.
d="$REL_TMP/$S"
wc -l <"$d/server.log" >"$d/mark.lines"

note "1. every function on the standby"
py_checks "$PYTHON" "$REL_HERE/standby.py" "$(conninfo $S)"

note "2. cache_start_worker() on the standby"
t0=$(date +%s%N)
out=$(q $S "SET statement_timeout = '10s'; SELECT cache_start_worker()" 2>&1)
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
case "$out" in
  *ERROR*) ok "cache_start_worker() on the standby raises an error" ;;
  *) not_ok "cache_start_worker() on the standby raises an error" "got: $out" ;;
esac
check "cache_start_worker() on the standby refuses at once (not by statement_timeout)" "yes" \
  "$([ $ms -lt 5000 ] && ! grep -q 'statement timeout' <<<"$out" && echo yes || echo "no: ${ms} ms")" "$out"
for i in 1 2 3 4 5 6; do
  q $S "SET statement_timeout = '1s'; SELECT cache_start_worker()" >/dev/null 2>&1
done
sleep 1
check "no fastpgcache worker runs on the standby" "0" \
  "$(q $S "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'fastpgcache worker'")"
plan=$(q $S "SET max_parallel_workers_per_gather = 4; SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0;
             SET min_parallel_table_scan_size = 0; SET statement_timeout = '60s';
             EXPLAIN (ANALYZE, FORMAT JSON) SELECT count(*) FROM big" 2>&1)
planned=$(grep -o '"Workers Planned": [0-9]*' <<<"$plan" | head -1 | grep -o '[0-9]*$')
launched=$(grep -o '"Workers Launched": [0-9]*' <<<"$plan" | head -1 | grep -o '[0-9]*$')
note "parallel query on the standby after six cancelled cache_start_worker(): planned ${planned:-?}, launched ${launched:-?}"
check "after six cancelled cache_start_worker() a parallel query gets every worker it planned (no slot leaked)" \
  "yes" "$([ -n "$planned" ] && [ "${planned:-0}" -ge 1 ] && [ "$planned" = "$launched" ] && echo yes ||
           echo "planned ${planned:-?}, launched ${launched:-?}")" \
  "reproducer: on a hot standby with max_worker_processes = 8: six times SET statement_timeout = '1s'; SELECT cache_start_worker(); then a parallel query"

note "3. replay and crashes"
q $P "INSERT INTO big VALUES (0, 'replayed')" >/dev/null
if wait_until 20 q $S "SELECT count(*) = 1 FROM big WHERE id = 0"; then
  ok "the standby still replays the primary's changes"
else
  not_ok "the standby still replays the primary's changes"
fi
no_crash $P "primary"
lines=$(tail -n +"$(( $(cat "$d/mark.lines") + 1 ))" "$d/server.log" | grep -E -A2 "$CRASH_PATTERN" | head -12)
check "no crash: standby (server log)" "" "$lines"

note "4. after pg_promote()"
check "pg_promote() on the standby" "t" "$(q $S "SELECT pg_promote(true, 60)" 2>&1)"
check "the promoted server's cache is empty (UNLOGGED tables are not replicated)" "t" \
  "$(q $S "SELECT cache_get('sb:k') IS NULL" 2>&1)"
check "cache_set/cache_get work on the promoted server" "t|v" \
  "$(q $S "SELECT cache_set('promoted', 'v'); SELECT cache_get('promoted')" 2>&1 | tr '\n' '|' | sed 's/|$//')"
if wait_until 20 q $S "SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'fastpgcache worker'"; then
  ok "the preloaded worker runs after promotion"
else
  not_ok "the preloaded worker runs after promotion" \
    "fastpgcache workers: $(q $S "SELECT count(*) || ' running, pids ' || coalesce(string_agg(pid::text, ','), '-') FROM pg_stat_activity WHERE backend_type = 'fastpgcache worker'")" \
    "$(grep -i 'fastpgcache' "$d/server.log" | tail -4)"
fi
q $S "SELECT cache_set('promoted:ttl', 'v', 1)" >/dev/null 2>&1
if wait_until 15 q $S "SELECT count(*) = 0 FROM cache_entries WHERE key = 'promoted:ttl'"; then
  ok "the worker expires keys on the promoted server"
else
  not_ok "the worker expires keys on the promoted server"
fi
lines=$(tail -n +"$(( $(cat "$d/mark.lines") + 1 ))" "$d/server.log" | grep -E -A2 "$CRASH_PATTERN" | head -12)
check "no crash: promoted standby (server log)" "" "$lines"
rel_finish

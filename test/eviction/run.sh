#!/usr/bin/env bash
# Bounded size (issue 11): fastpgcache.max_entries / max_size, the eviction
# policies, the accounting behind them, the worker and writers evicting
# together, and the degraded mode without shared_preload_libraries.
#
# Two throwaway clusters (helpers of test/reliability/lib.sh):
#   pre: shared_preload_libraries = 'fastpgcache', worker interval 100 ms;
#   deg: not preloaded (no shared memory, no worker: writers evict alone).
# Prints "N passed, M failed" last; non-zero on failure. KEEP_LOGS=1 keeps
# the clusters' logs.
set -u
here=$(cd "$(dirname "$0")" && pwd)
REL_NAME=eviction
. "$here/../reliability/lib.sh"
rel_ensure_install || { echo "0 passed, 1 failed"; exit 1; }

rel_cluster pre "shared_preload_libraries = 'fastpgcache'" "fastpgcache.cleanup_interval = '100ms'" \
  || { echo "0 passed, 1 failed"; exit 1; }
rel_cluster deg || { echo "0 passed, 1 failed"; exit 1; }
qp() { q pre "$@"; }
qd() { q deg "$@"; }
for c in pre deg; do q "$c" "CREATE EXTENSION fastpgcache" >/dev/null; done
crash_mark pre
crash_mark deg

# set_limits CLUSTER ENTRIES SIZE POLICY: ALTER SYSTEM and reload; waits
# until a new session sees them.
set_limits() {
  # ALTER SYSTEM knows a setting only once the library is loaded in the
  # session (not preloaded: LOAD first), and runs outside a transaction.
  psql -X -qAt -h "$(sock_of "$1")" -p "$(port_of "$1")" -U postgres -d postgres -v ON_ERROR_STOP=1 \
    -c "LOAD 'fastpgcache'" -c "ALTER SYSTEM SET fastpgcache.max_entries = $2" \
    -c "ALTER SYSTEM SET fastpgcache.max_size = '$3'" -c "ALTER SYSTEM SET fastpgcache.eviction_policy = '$4'" \
    -c "SELECT pg_reload_conf()" >/dev/null
  wait_until 10 q "$1" "SELECT current_setting('fastpgcache.max_entries') = '$2'
                        AND current_setting('fastpgcache.eviction_policy') = '$4'" || true
  sleep 0.3  # the worker's next wake-up reads them too
}
# What the limits compare with (cache_stats) against the table itself:
# "0|0" when the accounting is exact.
ACCT="SELECT (SELECT entries FROM cache_stats()) - (SELECT count(*) FROM cache_entries),
             (SELECT data_bytes FROM cache_stats())
             - (SELECT coalesce(sum(octet_length(key) + octet_length(value) + 80), 0) FROM cache_entries)"
stat() { qp "SELECT $1 FROM cache_stats()"; }
# sqlstate CLUSTER SQL: the SQLSTATE of the error SQL raises (empty if none).
sqlstate() {
  psql -X -qAt -h "$(sock_of "$1")" -p "$(port_of "$1")" -U postgres -d postgres -v VERBOSITY=verbose \
    -c "$2" 2>&1 | sed -n 's/^ERROR:  \([0-9A-Z]\{5\}\):.*/\1/p'
}
rows() { q "$1" "SELECT count(*) FROM cache_entries${2:+ WHERE $2}"; }

############################################################################
# Settings
############################################################################

check "defaults: no limit, allkeys-lru, 8MB of access counters" "0|0|allkeys-lru|8MB" \
  "$(qp "SELECT current_setting('fastpgcache.max_entries'), current_setting('fastpgcache.max_size'),
               current_setting('fastpgcache.eviction_policy'), current_setting('fastpgcache.eviction_memory')")"
check "an unknown policy is refused (22023), naming the valid ones" \
  'ERROR:  invalid value for parameter "fastpgcache.eviction_policy": "lru"|HINT:  Available values: allkeys-lru, volatile-lru, allkeys-random, volatile-ttl, noeviction.' \
  "$(qp "SET fastpgcache.eviction_policy = 'lru'" 2>&1 | tr '\n' '|' | sed 's/|$//')"
qp "CREATE ROLE app LOGIN; GRANT USAGE ON SCHEMA public TO app" >/dev/null
check "a role that is not a superuser cannot change the limit (42501)" \
  'ERROR:  permission denied to set parameter "fastpgcache.max_entries"' \
  "$(q pre "SET fastpgcache.max_entries = 1" postgres app 2>&1)"
check "max_size takes PostgreSQL's units" "512MB|524288" \
  "$(qp "SET fastpgcache.max_size = '0.5GB'; SELECT current_setting('fastpgcache.max_size'), (SELECT setting FROM pg_settings WHERE name = 'fastpgcache.max_size')")"

############################################################################
# Accounting: every write path moves the counts exactly
############################################################################

set_limits pre 1000000 0 allkeys-lru
wait_until 10 qp "SELECT entries IS NOT NULL FROM cache_stats()" || true
check "the worker counts the entries once a limit is set" "0|0" "$(qp "$ACCT")"
for step in \
  "SELECT cache_set('a', 'x')" \
  "SELECT cache_set('a', repeat('y', 500))" \
  "SELECT cache_set('a', 'z', 100)" \
  "SELECT cache_set('big', repeat(md5(g::text), 100000)) FROM generate_series(1, 1) g" \
  "SELECT cache_set('b', '{\"k\": [1, 2]}'::jsonb), cache_set('c', '\\x00ff'::bytea)" \
  "SELECT cache_mset(ARRAY['b', 'c', 'a', 'd'], ARRAY['1', '22', '333', '4444'])" \
  "SELECT cache_msetnx(ARRAY['e', 'f'], ARRAY['1', '22'])" \
  "SELECT cache_incr('n'), cache_incr('n', 1000000), cache_decr('n', 3), cache_incrbyfloat('fl', 1.5)" \
  "SELECT cache_append('b', repeat('q', 1000)), cache_getset('c', 'new value')" \
  "SELECT cache_getdel('c'), cache_getex('d', 100), cache_expire('e', 100), cache_persist('e')" \
  "SELECT cache_delete(ARRAY['d', 'e', 'nothing'])" \
  "SELECT cache_delete('a'), cache_delete('big')" \
  "SELECT cache_set('s', 'v', nx => true), cache_set('s', 'w', xx => true), cache_set('t', 'v', xx => true)" \
  "SET fastpgcache.direct_writes = off; SELECT cache_set('s', 'a longer value'), cache_set('s2', 'new')" \
  "SET fastpgcache.direct_writes = off; SELECT cache_incr('n'), cache_append('s2', 'more'), cache_getdel('s')" \
  "SET fastpgcache.direct_writes = off; SELECT cache_mset(ARRAY['s', 's3'], ARRAY['1', '22'])" \
  "SELECT cache_set('exp', 'v', 1); SELECT pg_sleep(1.1); SELECT cache_cleanup()" \
  "BEGIN; SELECT cache_set('rb', repeat('r', 100)); ROLLBACK" \
  "BEGIN; SAVEPOINT s; SELECT cache_set('rb2', repeat('r', 100)); ROLLBACK TO s; SELECT cache_set('rb3', 'k'); COMMIT" \
  "SELECT cache_flush()"; do
  got=$(qp "$step" >/dev/null 2>&1; qp "$ACCT")
  check "exact counts after: $step" "0|0" "$got"
done
# Plain SQL bypasses the accounting; the worker's recount (every minute)
# absorbs it. Shown here so that the README's caveat stays true.
qp "INSERT INTO cache_entries VALUES (gen_random_uuid(), NULL, 't', 'by hand', 'v')" >/dev/null
check "a row inserted by plain SQL is not counted until the next recount" "-1|-88" "$(qp "$ACCT")"
qp "DELETE FROM cache_entries WHERE key = 'by hand'" >/dev/null

############################################################################
# Expired entries go first
############################################################################

# The worker sleeps (an interval of an hour) while writers evict: 300 keys
# expired a moment ago and 900 live ones, over a limit of 1000. Writers delete
# expired entries only while any may remain, so no live one goes.
qp "SELECT cache_flush()" >/dev/null
set_limits pre 0 0 allkeys-lru
qp "SELECT count(cache_set('live:' || g, 'v')) FROM generate_series(1, 900) g;
    SELECT count(cache_set('exp:' || g, 'v', 1)) FROM generate_series(1, 300) g" >/dev/null
qp "ALTER SYSTEM SET fastpgcache.cleanup_interval = '1h'" >/dev/null
set_limits pre 1000 0 allkeys-lru
sleep 1.5
ev0=$(stat "evicted")
for i in $(seq 1 20); do qp "SELECT cache_set('new:$i', 'v')" >/dev/null; done
check "writers over the limit delete expired entries first: every live entry is kept" "920|0|0" \
  "$(rows pre "key LIKE 'live:%' OR key LIKE 'new:%'")|$(rows pre "key LIKE 'exp:%'")|$(( $(stat evicted) - ev0 ))"
check "writers counted the expired entries they deleted" "t" "$(stat "expired_by_eviction >= 300")"
qp "ALTER SYSTEM RESET fastpgcache.cleanup_interval" >/dev/null
qp "SELECT pg_reload_conf()" >/dev/null

############################################################################
# allkeys-lru: recency without writes
############################################################################

qp "SELECT cache_flush()" >/dev/null
set_limits pre 0 0 allkeys-lru
qp "SELECT count(cache_set('hot:' || g, 'v')) FROM generate_series(1, 500) g;
    SELECT count(cache_set('cold:' || g, 'v')) FROM generate_series(1, 500) g;
    SELECT count(cache_get('hot:' || g)) FROM generate_series(1, 500) g;
    SELECT count(cache_get('hot:' || g)) FROM generate_series(1, 500) g" >/dev/null
ev0=$(stat "evicted")
set_limits pre 600 0 allkeys-lru
wait_until 20 qp "SELECT count(*) <= 600 FROM cache_entries" || true
check "allkeys-lru: the worker brings 1000 entries down to the limit of 600, 400 evicted" "600|400" \
  "$(rows pre)|$(( $(stat evicted) - ev0 ))"
check "allkeys-lru: the keys read since they were written stay (hot kept >= 490 of 500)" "t" \
  "$(qp "SELECT count(*) >= 490 FROM cache_entries WHERE key LIKE 'hot:%'")"
check "exact counts after eviction" "0|0" "$(qp "$ACCT")"

############################################################################
# Reads write nothing to the table
############################################################################

upd() { qp "SELECT pg_stat_get_tuples_updated('cache_entries'::regclass) + pg_stat_get_tuples_hot_updated('cache_entries'::regclass)"; }
u0=$(upd)
qp "SELECT count(cache_get('hot:' || (g % 500 + 1))) FROM generate_series(1, 1000000) g" >/dev/null
qp "SELECT count(*) FROM cache_mget(ARRAY(SELECT 'hot:' || g FROM generate_series(1, 500) g))" >/dev/null
qp "SELECT sum(cache_exists(ARRAY['hot:1', 'hot:2'])) FROM generate_series(1, 1000)" >/dev/null
sleep 0.5
check "a million gets, mgets and exists with eviction on: no row updated (n_tup_upd unchanged)" "$u0" "$(upd)"

############################################################################
# volatile-lru, volatile-ttl, allkeys-random
############################################################################

qp "SELECT cache_flush()" >/dev/null
set_limits pre 0 0 volatile-lru
qp "SELECT count(cache_set('ttl:' || g, 'v', 3600)) FROM generate_series(1, 300) g;
    SELECT count(cache_set('perm:' || g, 'v')) FROM generate_series(1, 800) g" >/dev/null
set_limits pre 1000 0 volatile-lru
wait_until 20 qp "SELECT count(*) <= 1000 FROM cache_entries" || true
check "volatile-lru evicts only keys with a ttl: 800 without, 200 with" "800|200" \
  "$(rows pre "key LIKE 'perm:%'")|$(rows pre "key LIKE 'ttl:%'")"
qp "SELECT cache_delete(ARRAY(SELECT key FROM cache_entries WHERE key LIKE 'ttl:%'))" >/dev/null
qp "SELECT count(cache_set('perm:' || g, 'v')) FROM generate_series(801, 1000) g" >/dev/null
set_limits pre 900 0 volatile-lru
check "volatile-lru with nothing to evict refuses the write (53400) and writes nothing" \
  "ERROR:  the cache is full and fastpgcache.eviction_policy is volatile-lru, but no entry with an expiry was found to evict|1000|" \
  "$(qp "SELECT cache_set('one more', 'v')" 2>&1 | head -1)|$(rows pre)|$(qp "SELECT cache_get('one more')")"
check "the error's SQLSTATE is 53400" "53400" \
  "$(sqlstate pre "SELECT cache_set('one more', 'v')")"

qp "SELECT cache_flush()" >/dev/null
set_limits pre 0 0 volatile-ttl
qp "SELECT count(cache_set('vt:' || g, 'v', 100 * g)) FROM generate_series(1, 500) g;
    SELECT count(cache_set('perm:' || g, 'v')) FROM generate_series(1, 200) g" >/dev/null
set_limits pre 600 0 volatile-ttl
wait_until 20 qp "SELECT count(*) <= 600 FROM cache_entries" || true
check "volatile-ttl evicts the entries that expire soonest: the 100 shortest ttls go, keys without ttl stay" \
  "200|400|101" \
  "$(rows pre "key LIKE 'perm:%'")|$(rows pre "key LIKE 'vt:%'")|$(qp "SELECT min(substr(key, 4)::int) FROM cache_entries WHERE key LIKE 'vt:%'")"

qp "SELECT cache_flush()" >/dev/null
set_limits pre 0 0 allkeys-random
qp "SELECT count(cache_set('r:' || g, 'v')) FROM generate_series(1, 1000) g" >/dev/null
ev0=$(stat "evicted")
set_limits pre 500 0 allkeys-random
wait_until 20 qp "SELECT count(*) <= 500 FROM cache_entries" || true
check "allkeys-random: down to the limit, 500 evicted" "500|500" "$(rows pre)|$(( $(stat evicted) - ev0 ))"

############################################################################
# noeviction
############################################################################

qp "SELECT cache_flush()" >/dev/null
set_limits pre 100 0 noeviction
qp "SELECT count(cache_set('n:' || g, 'v')) FROM generate_series(1, 100) g" >/dev/null
check "noeviction: a new key over max_entries fails with 53400, naming the setting; nothing is written" \
  "ERROR:  the cache is full: fastpgcache.max_entries (100) reached and fastpgcache.eviction_policy is noeviction|DETAIL:  Nothing was written.|HINT:  Delete entries, raise the limit, or choose another eviction policy.|100|" \
  "$(qp "SELECT cache_set('new', 'v')" 2>&1 | tr '\n' '|')$(rows pre)|$(qp "SELECT cache_get('new')")"
check "noeviction: cache_mset, cache_incr and cache_msetnx of new keys fail the same way; nothing written" \
  "53400|53400|53400|100" \
  "$(for s in "SELECT cache_mset(ARRAY['m1', 'm2'], ARRAY['1', '2'])" "SELECT cache_incr('ctr')" \
                "SELECT cache_msetnx(ARRAY['x1'], ARRAY['1'])"; do
       sqlstate pre "$s"; done | tr '\n' '|')$(rows pre)"
check "noeviction: overwriting an existing key is allowed, and so is a new key after a delete" "t|t|t|100" \
  "$(qp "SELECT cache_set('n:1', 'w'), cache_delete('n:2'), cache_set('new', 'v')" | tr '\n' '|')$(rows pre)"
# Expired entries still in the table make room: the write removes those in
# its way first (bounded work: a small table, in a database of its own,
# where no worker removes them meanwhile).
qp "CREATE DATABASE noev" >/dev/null
q pre "CREATE EXTENSION fastpgcache; SELECT count(cache_set('e:' || g, 'v', 1)) FROM generate_series(1, 100) g" noev >/dev/null
sleep 1.2
x0=$(stat expired_by_eviction)
check "noeviction: a write over the limit removes the expired entries in its way, then succeeds" "t|1|100" \
  "$(q pre "SELECT cache_set('after expiry', 'v')" noev)|$(q pre "SELECT count(*) FROM cache_entries" noev)|$(( $(stat expired_by_eviction) - x0 ))"
qp "SELECT cache_flush()" >/dev/null
set_limits pre 0 64kB noeviction
check "noeviction: max_size names max_size" \
  "ERROR:  the cache is full: fastpgcache.max_size (65536 bytes) reached and fastpgcache.eviction_policy is noeviction" \
  "$(qp "SELECT count(cache_set('s:' || g, repeat('x', 1000))) FROM generate_series(1, 100) g" 2>&1 | head -1)"
check "noeviction: the failed statement wrote nothing" "0" "$(rows pre)"
check "exact counts after refused writes" "0|0" "$(qp "$ACCT")"

############################################################################
# max_size, a limit changed at run time, ALTER DATABASE
############################################################################

set_limits pre 0 1MB allkeys-lru
qp "SELECT count(cache_set('big:' || g, repeat('x', 4000))) FROM generate_series(1, 1000) g" >/dev/null
wait_until 20 qp "SELECT data_bytes <= 1048576 FROM cache_stats()" || true
check "max_size = 1MB with 4 kB values: data_bytes within the limit, and what it counts is key + value + 80" \
  "t|0|0" "$(stat "data_bytes <= 1048576 AND data_bytes > 1048576 - 4200")|$(qp "$ACCT" | tr '\n' '|' | sed 's/|$//')"
check "the table itself holds no more than that" "t" \
  "$(qp "SELECT sum(octet_length(key) + octet_length(value) + 80) <= 1048576 FROM cache_entries")"

set_limits pre 100 0 allkeys-lru
wait_until 20 qp "SELECT count(*) <= 100 FROM cache_entries" || true
check "a lower max_entries by pg_reload_conf() applies at once: max_size off, 100 entries" "100" "$(rows pre)"

qp "ALTER DATABASE postgres SET fastpgcache.max_entries = 40" >/dev/null
if wait_until 40 qp "SELECT count(*) <= 40 FROM cache_entries"; then
  ok "ALTER DATABASE ... SET fastpgcache.max_entries: the worker restarts to apply it and evicts down to 40"
else
  not_ok "ALTER DATABASE ... SET fastpgcache.max_entries applies" "$(rows pre) entries"
fi
check "the worker said why it restarted" "1" \
  "$(grep -c 'the eviction settings of database "postgres" changed; restarting' "$(log_of pre)")"
qp "ALTER DATABASE postgres RESET fastpgcache.max_entries" >/dev/null

############################################################################
# Concurrency: writers and the worker evicting the same rows
############################################################################

qp "SELECT cache_flush(); SELECT cache_stats_reset()" >/dev/null
set_limits pre 5000 0 allkeys-lru
sleep 1.5  # the worker reads the new limit and the floor is known
cat >"$REL_TMP/writers.pgbench" <<'EOF'
SELECT cache_set('w:' || :client_id || ':' || :scale || ':' || random(), repeat('v', 100));
EOF
cat >"$REL_TMP/readers.pgbench" <<'EOF'
\set k random(1, 5000)
SELECT cache_get('w:0:1:' || :k);
EOF
pgbench -n -h "$(sock_of pre)" -p "$(port_of pre)" -U postgres -c 8 -j 2 -T 10 -f "$REL_TMP/writers.pgbench" \
  postgres >"$REL_TMP/writers.out" 2>&1 &
wpid=$!
pgbench -n -h "$(sock_of pre)" -p "$(port_of pre)" -U postgres -c 2 -j 1 -T 10 -f "$REL_TMP/readers.pgbench" \
  postgres >"$REL_TMP/readers.out" 2>&1
wait "$wpid"; wrc=$?
written=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$REL_TMP/writers.out")
failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$REL_TMP/writers.out")
check "8 writers for 10 s over a limit of 5000: no error, no deadlock" "0|${failed:-0}" "$wrc|0"
if [ "$wrc" -ne 0 ]; then tail -5 "$REL_TMP/writers.out" | sed 's/^/#   /'; fi
sleep 0.5
wait_until 20 qp "SELECT count(*) <= 5000 FROM cache_entries" || true
check "every key written is either in the table or counted as evicted ($written written)" "$written" \
  "$(qp "SELECT count(*) + (SELECT evicted FROM cache_stats()) FROM cache_entries")"
check "exact counts after the concurrent run (no recount in between)" "0|0" "$(qp "$ACCT")"
note "writers: $(grep -E '^tps' "$REL_TMP/writers.out" | head -1)"

############################################################################
# Degraded mode: not preloaded
############################################################################

check "without preloading: no shared memory, entries and data_bytes NULL" "f||" \
  "$(qd "SELECT shared_memory, entries, data_bytes FROM cache_stats()")"
set_limits deg 1000 0 allkeys-lru
for i in $(seq 0 29); do
  qd "SELECT count(cache_set('d:' || g, 'v')) FROM generate_series($((i * 100 + 1)), $((i * 100 + 100))) g" >/dev/null
done
n=$(rows deg)
if [ "$n" -ge 900 ] && [ "$n" -le 1300 ]; then
  ok "without preloading, writers evict (FIFO, estimated counts): 3000 written, $n kept for a limit of 1000"
else
  not_ok "without preloading, writers keep the cache near its limit" "$n entries for a limit of 1000"
fi
set_limits deg 1000 0 noeviction
qd "SELECT cache_flush()" >/dev/null
qd "SELECT count(cache_set('d:' || g, 'v')) FROM generate_series(1, 1000) g" >/dev/null
sleep 1.2  # the statistics system's estimate of the live rows
check "without preloading, noeviction refuses a write over the estimated count (53400)" "53400" \
  "$(sqlstate deg "SELECT cache_set('over', 'v')")"

no_crash pre "preloaded cluster"
no_crash deg "cluster without preloading"
rel_finish

#!/usr/bin/env bash
# Random SQL (sqlsmith, Debian package) against a database with the extension
# and a populated cache: zero server crashes.
#
# The database fuzz holds text, jsonb and bytea entries, live and expired
# ones, a row written by hand with bytes that are not valid UTF-8, and objects
# that bring the cache functions into sqlsmith's queries:
#  - fuzz.keys: interesting keys (existing, expired, empty, unicode, long)
#    and arrays of them, for the functions' arguments;
#  - views that call cache_get/get_json/get_bytes/exists/ttl over the table,
#    cache_mget (sqlsmith never calls set-returning functions itself) and
#    cache_stats();
#  - sqlsmith reads its list of functions from pg_proc, unqualified: its role
#    (smith, not a superuser, with the documented application grants and
#    EXECUTE on cache_start_worker/cache_stop_worker/cache_stats_reset) has
#    search_path = smith_catalog, pg_catalog, public, and
#    smith_catalog.pg_proc is a view of pg_catalog.pg_proc holding every
#    function of the extension and a fixed twelfth of the others that smith
#    may execute, so that the cache functions are a real share of the calls
#    sqlsmith generates;
#  - track_functions = 'all' counts every call of a C function.
# sqlsmith runs with fixed seeds (1, 2, 3, ...), each for at most
# FPC_SQLSMITH_QUERIES queries, until FPC_SQLSMITH_SECONDS have passed; its
# queries run in autocommit, so its INSERT/UPDATE/DELETE on cache_entries
# stay. Crashes are detected by the server log ("terminated by signal",
# "was terminated", "reinitializing"), pg_postmaster_start_time() and a
# canary entry in another database; the log names the query that crashed.
# Reported: queries run, queries that named a cache function or a view over
# one, calls of each cache function.
#
# Env: FPC_SQLSMITH_SECONDS (default 120, long 1800), FPC_SQLSMITH_QUERIES
# (per seed, default 3000), FPC_SQLSMITH_SEED (first seed, default 1).
# Prints "N passed, M failed" last.
set -u
REL_NAME=sqlsmith
. "$(dirname "$0")/lib.sh"
rel_ensure_install || { echo "0 passed, 1 failed"; exit 1; }
command -v sqlsmith >/dev/null || { not_ok "sqlsmith is installed (scripts/deps.sh)"; rel_finish; exit 1; }

BUDGET=${FPC_SQLSMITH_SECONDS:-$([ "$REL_LONG" = 1 ] && echo 1800 || echo 120)}
PER_SEED=${FPC_SQLSMITH_QUERIES:-3000}
SEED=${FPC_SQLSMITH_SEED:-1}

C=smith
rel_cluster $C "shared_preload_libraries = 'fastpgcache'" "fastpgcache.cleanup_interval = '200ms'" \
  "restart_after_crash = on" "track_functions = 'all'" "max_connections = 30" \
  "log_min_messages = log" "log_min_error_statement = panic" || { echo "0 passed, 1 failed"; exit 1; }
q $C "CREATE DATABASE fuzz" >/dev/null
qf $C fuzz >/dev/null <<'SQL' || { not_ok "set up database fuzz"; rel_finish; exit 1; }
SET client_min_messages = warning;
CREATE EXTENSION fastpgcache;
CREATE ROLE smith LOGIN;
GRANT SELECT, INSERT, UPDATE, DELETE ON cache_entries TO smith;
-- The worker and counter functions are fuzzed too (a dynamic worker in fuzz).
GRANT EXECUTE ON FUNCTION cache_start_worker(), cache_stop_worker(), cache_stats_reset() TO smith;
-- The populated cache.
SELECT count(cache_set('k' || g, 'value ' || g, CASE WHEN g % 3 = 0 THEN 3600 END)) FROM generate_series(1, 200) g;
SELECT count(cache_set('j' || g, jsonb_build_object('n', g, 'a', jsonb_build_array(g, 'x')))) FROM generate_series(1, 50) g;
SELECT count(cache_set('b' || g, decode(md5(g::text), 'hex'), 600)) FROM generate_series(1, 50) g;
SELECT cache_set('', 'empty key'), cache_set('unicode ✓ 🔑', 'ü'), cache_set('big', repeat('x', 100000)),
       cache_set('badutf8', '\xfffe80'::bytea), cache_set(repeat('long key ', 2000), 'v');
INSERT INTO cache_entries (key_hash, key, value, kind, expires_at)
SELECT encode(substr(sha256(convert_to('expired' || g, 'UTF8')), 1, 16), 'hex')::uuid, 'expired' || g, 'old'::bytea,
       't', now() - interval '1 hour' FROM generate_series(1, 50) g;
INSERT INTO cache_entries (key_hash, key, value, kind)
VALUES (encode(substr(sha256(convert_to('badtext', 'UTF8')), 1, 16), 'hex')::uuid, 'badtext', '\xfffe41'::bytea, 't');
-- Objects that lead sqlsmith to the cache functions.
CREATE SCHEMA fuzz;
GRANT USAGE ON SCHEMA fuzz TO smith;
CREATE TABLE fuzz.keys (k text, j jsonb, b bytea, n int, ks text[]);
INSERT INTO fuzz.keys
SELECT k, '{"a": 1}', '\x00ff', n, ARRAY[k, k, NULL, 'k1']
FROM (VALUES ('k1', 1), ('k3', 3), ('j1', -1), ('b1', 0), ('expired1', 2147483647), ('', NULL), ('unicode ✓ 🔑', 60),
             ('badutf8', 1), ('badtext', 5), ('nope', -2147483648), (NULL, 10)) v(k, n);
CREATE VIEW fuzz.cache_values AS
  SELECT key, kind, expires_at, cache_get(key) AS value, cache_get_bytes(key) AS bytes, cache_exists(key) AS live,
         cache_ttl(key) AS ttl
  FROM cache_entries WHERE key NOT IN ('badutf8', 'badtext');
CREATE VIEW fuzz.cache_json AS SELECT key, cache_get_json(key) AS doc FROM cache_entries WHERE kind = 'j';
CREATE VIEW fuzz.key_lookups AS
  SELECT k, n, cache_get(k) AS value, cache_exists(k) AS live, cache_ttl(k) AS ttl, cache_get_bytes(k) AS bytes
  FROM fuzz.keys WHERE k IS DISTINCT FROM 'badtext' AND k IS DISTINCT FROM 'badutf8';
CREATE VIEW fuzz.batch AS SELECT m.* FROM fuzz.keys, LATERAL cache_mget(ks) m WHERE k NOT IN ('badtext', 'badutf8');
CREATE VIEW fuzz.stats AS SELECT * FROM cache_stats();
GRANT SELECT ON ALL TABLES IN SCHEMA fuzz TO smith;
GRANT INSERT, UPDATE, DELETE ON fuzz.keys TO smith;
-- sqlsmith's list of functions (it reads pg_proc unqualified).
CREATE SCHEMA smith_catalog;
GRANT USAGE ON SCHEMA smith_catalog TO smith;
CREATE VIEW smith_catalog.pg_proc AS
  SELECT p.* FROM pg_catalog.pg_proc p
  WHERE p.oid IN (SELECT objid FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid
                  WHERE e.extname = 'fastpgcache' AND d.classid = 'pg_catalog.pg_proc'::regclass AND d.deptype = 'e')
     OR (p.oid::int8 % 12 = 0 AND pg_catalog.has_function_privilege(p.oid, 'EXECUTE')
         AND p.proname !~ '^(pg_sleep|pg_terminate|pg_cancel|pg_reload|pg_promote|lo_|pg_read|pg_ls|pg_stat_file|pg_current_logfile|dblink)');
GRANT SELECT ON smith_catalog.pg_proc TO smith;
ALTER ROLE smith SET search_path = smith_catalog, pg_catalog, public;
SQL
note "functions sqlsmith can choose from: $(q $C "SELECT count(*) FROM smith_catalog.pg_proc" fuzz), of which cache functions: $(q $C "SELECT count(*) FROM smith_catalog.pg_proc WHERE proname ~ '^cache_'" fuzz)"
crash_mark $C
q $C "SELECT pg_stat_reset()" fuzz >/dev/null

start=$(date +%s)
queries=0
seeds=()
seed=$SEED
: >"$REL_TMP/queries.sql"
while :; do
  left=$(( BUDGET - ($(date +%s) - start) ))
  [ "$left" -gt 5 ] || break
  seeds+=("$seed")
  timeout --signal=INT "$left" nice -n 5 sqlsmith --target="$(conninfo $C fuzz smith)" --seed="$seed" \
    --max-queries="$PER_SEED" --exclude-catalog --dump-all-queries --verbose \
    >"$REL_TMP/sqlsmith.$seed.out" 2>"$REL_TMP/sqlsmith.$seed.err"
  n=$(sed -n 's/^queries: \([0-9]*\).*/\1/p' "$REL_TMP/sqlsmith.$seed.err" | tail -1)
  # sqlsmith prints its totals when it stops by itself; after a timeout,
  # count the statements it dumped (each ends with ";" at the end of a line).
  [ -n "$n" ] || n=$(grep -c ';$' "$REL_TMP/sqlsmith.$seed.out")
  queries=$((queries + n))
  cat "$REL_TMP/sqlsmith.$seed.out" >>"$REL_TMP/queries.sql"
  seed=$((seed + 1))
done
elapsed=$(( $(date +%s) - start ))

# Statements that named a cache function or one of the views over them.
cache_queries=$(awk 'BEGIN { RS = ";\n" } /cache_(get|set|exists|ttl|delete|cleanup|mget|mset|stats|start|stop)|fuzz\.(cache_values|cache_json|key_lookups|batch|stats)/ { n++ } END { print n + 0 }' "$REL_TMP/queries.sql")
calls=$(q $C "SELECT coalesce(string_agg(funcname || ' ' || calls, ', ' ORDER BY funcname), 'none') FROM pg_stat_user_functions WHERE funcname ~ '^cache_'" fuzz)
total_calls=$(q $C "SELECT coalesce(sum(calls), 0) FROM pg_stat_user_functions WHERE funcname ~ '^cache_'" fuzz)
note "sqlsmith: seeds ${seeds[*]}, $queries queries in $elapsed s; $cache_queries named a cache function or a view over one"
note "calls of the cache functions (pg_stat_user_functions): $calls"
check "sqlsmith ran (at least 100 queries)" "yes" "$([ "$queries" -ge 100 ] && echo yes || echo "no: $queries")" \
  "$(tail -5 "$REL_TMP/sqlsmith.$SEED.err" 2>/dev/null)"
check "the cache functions were called (at least 100 calls)" "yes" \
  "$([ "${total_calls:-0}" -ge 100 ] && echo yes || echo "no: ${total_calls:-0}")"
# Errors sqlsmith saw that are never a clear error: a lost connection or an
# internal error.
bad=$(cat "$REL_TMP"/sqlsmith.*.err | grep -E 'server closed the connection|terminating connection|XX000|internal error|could not open file' | sort | uniq -c | sort -rn | head -5)
check "sqlsmith saw no lost connection, internal error or missing file" "" "$bad"
no_crash $C "sqlsmith, $queries queries (seeds ${seeds[*]})" \
  "reproducer: the query in 'Failed process was running' above, against database fuzz as set up in sqlsmith.sh"
rel_finish

#!/usr/bin/env bash
# Extension upgrade 1.0 -> 1.1: install 1.0 and fill the cache, check that
# the new library still serves 1.0's functions, ALTER EXTENSION ... UPDATE,
# check that every entry is kept and the 1.1 functions work, and that the
# upgraded catalog (function definitions, grants, comments, the table) is
# exactly what a fresh CREATE EXTENSION of 1.1 makes.
# Usage: test/upgrade/run.sh   (PGHOST/PGPORT/PGUSER set by the caller, as
# scripts/test.sh does). Prints "N passed, M failed" last.
set -uo pipefail
passed=0
failed=0
check() {  # check DESCRIPTION EXPECTED ACTUAL
  if [ "$2" = "$3" ]; then passed=$((passed + 1)); echo "ok - $1"
  else failed=$((failed + 1)); echo "not ok - $1"; echo "#   expected [$2], got [$3]"; fi
}
# q DB SQL: the result; a failing query is a failed check, never an empty
# string that compares equal to another.
q() {
  psql -X -qAt -v ON_ERROR_STOP=1 -d "$1" -c "SET client_min_messages = warning" -c "$2" \
    || { failed=$((failed + 1)); echo "not ok - query failed in $1: $2" >&2; echo "<query failed>"; }
}

for db in upgrade_from_10 fresh_11; do
  psql -X -q -v ON_ERROR_STOP=1 -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
done

q upgrade_from_10 "CREATE EXTENSION fastpgcache VERSION '1.0'" >/dev/null
check "1.0 installs" "1.0" "$(q upgrade_from_10 "SELECT extversion FROM pg_extension WHERE extname = 'fastpgcache'")"
# A filled cache: text, json, bytes, with and without expiry, through 1.0's
# own signatures (served by the 1.1 library).
q upgrade_from_10 "SELECT count(cache_set('t:' || g, repeat('v', g % 50), CASE WHEN g % 3 = 0 THEN 3600 END)) FROM generate_series(1, 1000) g;
                   SELECT count(cache_set('j:' || g, jsonb_build_object('n', g))) FROM generate_series(1, 100) g;
                   SELECT count(cache_set('b:' || g, int4send(g))) FROM generate_series(1, 100) g;
                   SELECT cache_mset(ARRAY['m1', 'm2'], ARRAY['one', 'two'], 60)" >/dev/null
fingerprint="SELECT count(*) || ':' || md5(string_agg(key || '=' || encode(value, 'hex') || '/' || kind::text || '/' || (expires_at IS NULL), ',' ORDER BY key)) FROM cache_entries"
before=$(q upgrade_from_10 "$fingerprint")
check "1.0 functions work with the 1.1 library before the update" "v|t|2|-1|t" \
  "$(q upgrade_from_10 "SELECT cache_get('t:1'), cache_exists('j:5'), (SELECT count(*) FROM cache_mget(ARRAY['m1', 'm2'])), cache_ttl('t:1'), cache_delete('t:2')")"
q upgrade_from_10 "SELECT cache_set('t:2', 'v')" >/dev/null
before=$(q upgrade_from_10 "$fingerprint")
check "the filled cache has its 1,202 entries" 1202 "${before%%:*}"

q upgrade_from_10 "ALTER EXTENSION fastpgcache UPDATE" >/dev/null
check "ALTER EXTENSION fastpgcache UPDATE reaches 1.1" "1.1" \
  "$(q upgrade_from_10 "SELECT extversion FROM pg_extension WHERE extname = 'fastpgcache'")"
check "every entry is kept, byte for byte, kind and expiry" "$before" "$(q upgrade_from_10 "$fingerprint")"
check "1.1 functions work on the upgraded cache" "t|2|f|3|v|vv" \
  "$(q upgrade_from_10 "SELECT cache_set('t:1', 'x', nx => true) = false AND cache_incr('ctr', 2) = 2, cache_get('ctr'), cache_set('t:1', 'x', nx => true), cache_exists(ARRAY['t:1', 'j:1', 'b:1']), cache_getdel('t:1'), cache_get('t:2') || cache_get('t:2')")"

q fresh_11 "CREATE EXTENSION fastpgcache" >/dev/null
# Everything the extension owns, as text: functions with their definitions,
# owners' grants and comments; the table with its columns, constraints,
# storage options, grants and comments.
catalog="
SELECT string_agg(line, E'\n' ORDER BY line) FROM (
  SELECT 'function ' || p.oid::regprocedure || E'\n' || pg_get_functiondef(p.oid)
         || E'\nacl ' || coalesce(p.proacl::text, 'default') || E'\ncomment ' || coalesce(obj_description(p.oid, 'pg_proc'), '-') AS line
    FROM pg_depend d JOIN pg_proc p ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid
   WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'fastpgcache')
  UNION ALL
  SELECT 'relation ' || c.relname || ' ' || c.relkind::text || ' ' || c.relpersistence::text || ' ' || coalesce(array_to_string(c.reloptions, ','), '')
         || E'\nacl ' || coalesce(c.relacl::text, 'default') || E'\ncomment ' || coalesce(obj_description(c.oid, 'pg_class'), '-')
    FROM pg_depend d JOIN pg_class c ON d.classid = 'pg_class'::regclass AND d.objid = c.oid
   WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'fastpgcache')
  UNION ALL
  SELECT 'column ' || a.attrelid::regclass || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
         || ' notnull=' || a.attnotnull || ' collation=' || coalesce((SELECT collname FROM pg_collation WHERE oid = a.attcollation), '-')
         || ' comment=' || coalesce(col_description(a.attrelid, a.attnum), '-')
    FROM pg_attribute a WHERE a.attrelid = 'cache_entries'::regclass AND a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
  SELECT 'constraint ' || conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'cache_entries'::regclass
  UNION ALL
  SELECT 'index ' || pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = 'cache_entries'::regclass
) s"
a=$(q upgrade_from_10 "$catalog")
b=$(q fresh_11 "$catalog")
if [ -n "$a" ] && [ "$a" = "$b" ]; then
  check "the upgraded catalog is exactly a fresh 1.1's ($(printf '%s\n' "$a" | grep -c '^function ') functions)" same same
else
  check "the upgraded catalog is exactly a fresh 1.1's" same different
  diff <(printf '%s\n' "$a") <(printf '%s\n' "$b") | head -40
fi
check "no 1.0-only function is left (three-argument cache_set, fastpgcache_selftest)" 0 \
  "$(q upgrade_from_10 "SELECT count(*) FROM pg_proc WHERE (proname = 'cache_set' AND pronargs = 3) OR proname = 'fastpgcache_selftest'")"

for db in upgrade_from_10 fresh_11; do
  psql -X -q -c "DROP DATABASE $db" >/dev/null
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

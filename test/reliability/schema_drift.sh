#!/usr/bin/env bash
# Schema drift: what a superuser may do to cache_entries must never crash the
# server, and every cache function must then give the right value or a clear
# error.
#
#  1. For each change below, on a freshly created extension, drift_battery.py
#     runs set/get (text, jsonb, bytea), overwrite, two sets in one statement,
#     ttl, exists, mset (duplicate keys), mget, delete, cleanup and the
#     background worker's expiry, checks that extra columns keep their values
#     across cache_set/cache_mset (a by-value column must not become zeros),
#     and runs amcheck. After each change: no crash (server log, postmaster
#     start time, canary).
#  2. VACUUM FULL, CLUSTER, REINDEX, REINDEX CONCURRENTLY while pgbench runs
#     cache_set/cache_get: no error, no crash, every key reads back its last
#     value, amcheck.
#  3. Nested calls (issue 9, defect 5): a trigger on cache_entries that calls
#     the cache, under load, while ANALYZE/ALTER TABLE send invalidations.
#
# Env: FPC_DRIFT_LOAD_SECONDS (default 20, long 120).
# Prints "N passed, M failed" last.
set -u
REL_NAME=schema_drift
. "$(dirname "$0")/lib.sh"
rel_ensure_install || { echo "0 passed, 1 failed"; exit 1; }

LOAD_SECONDS=${FPC_DRIFT_LOAD_SECONDS:-$([ "$REL_LONG" = 1 ] && echo 120 || echo 20)}
C=drift
rel_cluster $C "shared_preload_libraries = 'fastpgcache'" "fastpgcache.cleanup_interval = '200ms'" \
  "restart_after_crash = on" "max_connections = 50" || { echo "0 passed, 1 failed"; exit 1; }
DSN=$(conninfo $C)
q $C "CREATE EXTENSION amcheck" >/dev/null
crash_mark $C

fresh_extension() {
  q $C "SET client_min_messages = warning; DROP EXTENSION IF EXISTS fastpgcache CASCADE; CREATE EXTENSION fastpgcache" >/dev/null
}

# name|SQL (run after a fresh CREATE EXTENSION)
variants=(
  "unchanged|SELECT 1"
  "add column note text|ALTER TABLE cache_entries ADD COLUMN note text"
  "add and drop column note|ALTER TABLE cache_entries ADD COLUMN note text; ALTER TABLE cache_entries DROP COLUMN note"
  "add column t timestamptz not null default now()|ALTER TABLE cache_entries ADD COLUMN t timestamptz NOT NULL DEFAULT now()"
  "add column n bigint not null default 7|ALTER TABLE cache_entries ADD COLUMN n bigint NOT NULL DEFAULT 7"
  "add generated column g|ALTER TABLE cache_entries ADD COLUMN g int GENERATED ALWAYS AS (length(key)) STORED"
  "add and drop a column, add another|ALTER TABLE cache_entries ADD COLUMN a int; ALTER TABLE cache_entries DROP COLUMN a; ALTER TABLE cache_entries ADD COLUMN note text"
  "value type text|ALTER TABLE cache_entries ALTER COLUMN value TYPE text USING encode(value, 'escape')"
  "value type text and back to bytea|ALTER TABLE cache_entries ALTER COLUMN value TYPE text USING encode(value, 'escape'); ALTER TABLE cache_entries ALTER COLUMN value TYPE bytea USING decode(value, 'escape')"
  "key type varchar|ALTER TABLE cache_entries ALTER COLUMN key TYPE varchar"
  "key type varchar and back to text|ALTER TABLE cache_entries ALTER COLUMN key TYPE varchar; ALTER TABLE cache_entries ALTER COLUMN key TYPE text COLLATE \"C\""
  "expires_at type timestamp (no time zone)|ALTER TABLE cache_entries ALTER COLUMN expires_at TYPE timestamp"
  "kind type text|ALTER TABLE cache_entries ALTER COLUMN kind TYPE text"
  "SET LOGGED|ALTER TABLE cache_entries SET LOGGED"
  "SET LOGGED then SET UNLOGGED|ALTER TABLE cache_entries SET LOGGED; ALTER TABLE cache_entries SET UNLOGGED"
  "a second index (expires_at)|CREATE INDEX cache_entries_expires ON cache_entries (expires_at)"
  "a second index (key prefix expression)|CREATE INDEX cache_entries_keyprefix ON cache_entries (left(key, 16))"
  "pkey rebuilt by REINDEX CONCURRENTLY|REINDEX TABLE CONCURRENTLY cache_entries"
)

note "1. column and table changes"
for v in "${variants[@]}"; do
  name=${v%%|*}
  sql=${v#*|}
  fresh_extension
  # Rows written before the change (by the old table shape).
  q $C "SELECT count(cache_set('pre:' || g, 'v' || g)) FROM generate_series(1, 50) g" >/dev/null
  out=$(q $C "$sql" 2>&1)
  if [ $? -ne 0 ]; then
    not_ok "[$name] the change itself runs" "$out"
    continue
  fi
  py_checks "$PYTHON" "$REL_HERE/drift_battery.py" "$DSN" "$name"
  seen=$(crash_since $C)
  if [ -z "$seen" ]; then
    ok "no crash: [$name]"
    # Read back, or refused with a clear error where a column's new type is
    # one the extension would misread (42804, "... has type ...").
    out=$(q $C "SELECT count(*) FROM generate_series(1, 50) g WHERE cache_get('pre:' || g) = 'v' || g" 2>&1)
    case "$out" in
      *"of cache_entries has type"*) ok "[$name] rows written before the change: refused with a clear error (42804)" ;;
      *) check "[$name] rows written before the change read back" "50" "$out" \
           "$(q $C "SELECT 'pre:1 reads ' || coalesce(quote_literal(cache_get('pre:1')), 'NULL')" 2>&1)" ;;
    esac
  else
    not_ok "no crash: [$name]" "$seen" "reproducer: CREATE EXTENSION fastpgcache; $sql; then drift_battery.py (see its failing step above)"
  fi
  crash_mark $C
done

############################################################################
note "2. VACUUM FULL, CLUSTER, REINDEX (CONCURRENTLY) under a pgbench load of cache_set/cache_get"
fresh_extension
q $C "DROP TABLE IF EXISTS fpc_lastval; CREATE TABLE fpc_lastval (k int PRIMARY KEY, v text NOT NULL)" >/dev/null
cat >"$REL_TMP/load.pgbench" <<'EOF'
\set k random(1, 500)
WITH l AS (INSERT INTO fpc_lastval AS l (k, v) VALUES (:k, md5(random()::text))
           ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v RETURNING k, v)
SELECT cache_set('load:' || k, v) FROM l;
SELECT cache_get('load:' || :k);
SELECT cache_exists('load:' || (:k + 1));
EOF
chmod 644 "$REL_TMP/load.pgbench"
# load_with_maintenance SECONDS PREFIX COMMAND...: pgbench for SECONDS while
# the maintenance commands run in a loop; reports pgbench's errors.
load_with_maintenance() {
  local secs=$1 tag=$2; shift 2
  pgbench -n -c 4 -j 2 -T "$secs" -f "$REL_TMP/load.pgbench" -h "$(sock_of $C)" -p "$(port_of $C)" -U postgres postgres \
    >"$REL_TMP/pgbench.$tag.out" 2>"$REL_TMP/pgbench.$tag.err" &
  local pb=$!
  rel_bg $pb
  local rounds=0 errs=0 cmd out
  local deadline=$(( $(date +%s) + secs ))
  sleep 1
  while [ "$(date +%s)" -lt "$deadline" ] && kill -0 $pb 2>/dev/null; do
    for cmd in "$@"; do
      out=$(PGOPTIONS="-c lock_timeout=30s" q $C "$cmd" 2>&1) || { errs=$((errs + 1)); echo "$cmd: $out" >>"$REL_TMP/maint.$tag.err"; }
    done
    rounds=$((rounds + 1))
    sleep 0.5
  done
  wait $pb
  local rc=$?
  note "$tag: $rounds rounds of maintenance; pgbench: $(grep -E 'number of transactions actually processed|number of failed' "$REL_TMP/pgbench.$tag.out" | tr '\n' ' ')"
  check "$tag: every maintenance command succeeded" 0 "$errs" "$(head -5 "$REL_TMP/maint.$tag.err" 2>/dev/null)"
  check "$tag: pgbench ran without an error (exit status)" 0 "$rc" \
    "$(grep -E 'ERROR|aborted|FATAL|terminated' "$REL_TMP/pgbench.$tag.err" | sort | uniq -c | sort -rn | head -8)"
  check "$tag: no failed transaction" "" "$(grep -E 'number of failed transactions: [1-9]' "$REL_TMP/pgbench.$tag.out")"
  check "$tag: at least one round of maintenance ran during the load" "yes" "$([ $rounds -ge 1 ] && echo yes || echo no)"
}
load_with_maintenance "$LOAD_SECONDS" "rewrite" \
  "VACUUM FULL cache_entries" \
  "CLUSTER cache_entries USING cache_entries_pkey" \
  "REINDEX TABLE cache_entries" \
  "REINDEX TABLE CONCURRENTLY cache_entries" \
  "REINDEX INDEX CONCURRENTLY cache_entries_pkey" \
  "VACUUM (ANALYZE) cache_entries"
check "rewrite: every key reads back its last value" "0" \
  "$(q $C "SELECT count(*) FROM fpc_lastval WHERE cache_get('load:' || k) IS DISTINCT FROM v" 2>&1)" \
  "$(q $C "SELECT k, v, cache_get('load:' || k) FROM fpc_lastval WHERE cache_get('load:' || k) IS DISTINCT FROM v LIMIT 3" 2>&1)"
check "rewrite: one row per key" "0" \
  "$(q $C "SELECT count(*) FROM (SELECT key FROM cache_entries GROUP BY key HAVING count(*) > 1) d" 2>&1)"
check "rewrite: amcheck (heapallindexed) on the primary key" "1" \
  "$(q $C "SELECT count(bt_index_check('cache_entries_pkey'::regclass, true))" 2>&1)"
no_crash $C "VACUUM FULL / CLUSTER / REINDEX (CONCURRENTLY) under load"

############################################################################
note "3. nested calls: a trigger calling the cache while invalidations arrive"
fresh_extension
q $C "TRUNCATE fpc_lastval" >/dev/null
q $C "CREATE FUNCTION fpc_nested() RETURNS trigger LANGUAGE plpgsql AS \$\$
      BEGIN
        PERFORM public.cache_get(NEW.key);
        PERFORM public.cache_exists('load:1');
        PERFORM public.cache_ttl(NEW.key);
        RETURN NEW;
      END \$\$;
      CREATE TRIGGER fpc_nested BEFORE INSERT OR UPDATE ON cache_entries FOR EACH ROW EXECUTE FUNCTION fpc_nested()" >/dev/null
load_with_maintenance "$LOAD_SECONDS" "nested" \
  "ANALYZE cache_entries" \
  "ALTER TABLE cache_entries SET (fillfactor = 90)" \
  "VACUUM cache_entries" \
  "COMMENT ON TABLE cache_entries IS 'FastPgCache entries.'"
check "nested: every key reads back its last value" "0" \
  "$(q $C "SELECT count(*) FROM fpc_lastval WHERE cache_get('load:' || k) IS DISTINCT FROM v" 2>&1)"
no_crash $C "trigger calling cache_get/cache_exists/cache_ttl under load with invalidations" \
  "reproducer: a BEFORE INSERT OR UPDATE trigger on cache_entries calling cache_get(NEW.key); pgbench of cache_set; ANALYZE cache_entries in a loop"

rel_finish

#!/usr/bin/env bash
# The router (fastpgcache_router over PL/Proxy) against 4 partitions on two
# shard clusters, with a third cluster for the router database:
#   - the router's functions have the extension's signatures (catalog diff);
#   - the pgTAP semantic suite t/*.sql runs through the router, except what
#     its files mark "-- router: skip" (ROLLBACK cannot undo a shard's write,
#     MSETNX across partitions, one SCAN call per partition, table grants):
#     test/router/t/ has what holds instead, and what cannot;
#   - where keys land (SHA-256 prefix, checked with sha256sum and on the
#     shards), SCAN against the shards' own scans and under concurrent writes,
#     writes that are not atomic across partitions (a row lock on one shard);
#   - set_shards errors, privileges, a cold and a warm resharding 2 -> 4;
#   - one shard cluster down (errors name its partitions, the others serve),
#     restarted empty (picked up without restarting the router);
#   - the C++ client through a pool;
#   - the shards' password (scram) never in a log or pg_stat_activity, with
#     log_statement = 'all' on every cluster.
# Run by scripts/test.sh (which has installed the code in a private tree);
# run alone, it makes its own private install (never the system's).
# Ends with "N passed, M failed".
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
source "$root/scripts/lib.sh"

work=$(mktemp -d /tmp/fpc-router-test.XXXXXX)
chmod 755 "$work"
bg_pids=()
cleanup() {
  for p in "${bg_pids[@]}"; do kill "$p" 2>/dev/null; done
  for c in router a b; do cluster_stop "$work/$c"; done
  rm -rf "$work"
}
trap cleanup EXIT

passed=0
failed=0
ok() { echo "ok - $*"; passed=$((passed + 1)); }
fail() { echo "not ok - $*"; failed=$((failed + 1)); }
finish() { echo "$passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit $?; }
check_eq() {  # check_eq DESCRIPTION ACTUAL EXPECTED
  if [ "$2" = "$3" ]; then ok "$1"; else fail "$1 (got '$2', expected '$3')"; fi
}

# The code under test: scripts/test.sh's private tree, or one made here.
sys_bindir=$(readlink -f /usr/lib/postgresql/15/bin)
if [ -n "${PGBIN:-}" ] && [ "$(readlink -f "$PGBIN")" != "$sys_bindir" ] &&
   [ -e "$("$PGBIN/pg_config" --sharedir)/extension/fastpgcache_router.control" ]; then
  export PATH="$PGBIN:$PATH" PG_BINDIR="$PGBIN"
else
  bash "$root/scripts/deps.sh" || { fail "scripts/deps.sh"; finish; }
  echo "== private install (build with warnings as errors)"
  private_install "$root" "$work" || { fail "private install"; finish; }
fi
command -v pg_prove >/dev/null || { fail "pg_prove is missing (scripts/deps.sh)"; finish; }

# ---------------------------------------------------------------- clusters
echo "== clusters: router, shards a (partitions 0, 1) and b (partitions 2, 3)"
unset PGHOST PGPORT PGUSER PGDATABASE PGOPTIONS
RP=$(free_port); AP=$(free_port); BP=$(free_port)
while [ "$AP" = "$RP" ]; do AP=$(free_port); done
while [ "$BP" = "$RP" ] || [ "$BP" = "$AP" ]; do BP=$(free_port); done
logconf=("log_statement = 'all'" "log_min_messages = info" "log_min_error_statement = error")
shardconf=("${logconf[@]}" "shared_preload_libraries = 'fastpgcache'" "fastpgcache.worker_enabled = off")
cluster_start "$work/router" "$RP" "${logconf[@]}" || { fail "router cluster"; finish; }
cluster_start "$work/a" "$AP" "${shardconf[@]}" || { fail "shard cluster a"; finish; }
cluster_start "$work/b" "$BP" "${shardconf[@]}" || { fail "shard cluster b"; finish; }

# The router logs in to the shards as fpc_shard with a password (scram).
PW="rt$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
printf '%s\n' "$PW" > "$work/shard.pass"
chmod 600 "$work/shard.pass"
[ "$(id -u)" -eq 0 ] && chown postgres: "$work/shard.pass"
for c in a b; do
  hba="$work/$c/data/pg_hba.conf"
  { echo "host all fpc_shard 127.0.0.1/32 scram-sha-256"; cat "$hba"; } > "$hba.new"
  as_pg cp "$hba.new" "$hba"
  as_pg pg_ctl -D "$work/$c/data" reload >/dev/null
done

sq() {  # sq PORT DB SQL...: psql on a cluster's socket as postgres, tuples only
  local port=$1 db=$2; shift 2
  local args=()
  for s in "$@"; do args+=(-c "$s"); done
  local dir=$work/router
  [ "$port" = "$AP" ] && dir=$work/a
  [ "$port" = "$BP" ] && dir=$work/b
  psql -X -q -At -v ON_ERROR_STOP=1 -h "$dir/sock" -p "$port" -U postgres -d "$db" "${args[@]}"
}
rq() { sq "$RP" router "$@"; }
shard_port() { case $1 in 0|1) echo "$AP";; *) echo "$BP";; esac; }

for c in a b; do
  port=$AP; parts="0 1"
  [ "$c" = b ] && { port=$BP; parts="2 3"; }
  # The role's password is set with statement logging off for that statement.
  sq "$port" postgres "SET log_statement = 'none'" "CREATE ROLE fpc_shard LOGIN PASSWORD '$PW'" \
    || { fail "create the shard role on $c"; finish; }
  for p in $parts; do
    sq "$port" postgres "CREATE DATABASE fpc_p$p" &&
    sq "$port" "fpc_p$p" "CREATE EXTENSION fastpgcache" \
      "GRANT SELECT, INSERT, UPDATE, DELETE ON cache_entries TO fpc_shard" \
      "GRANT EXECUTE ON FUNCTION cache_stats_reset() TO fpc_shard" || { fail "shard database fpc_p$p"; finish; }
  done
done
conninfo() { echo "host=127.0.0.1 port=$(shard_port "$1") dbname=fpc_p$1"; }
SHARDS4="ARRAY['$(conninfo 0)', '$(conninfo 1)', '$(conninfo 2)', '$(conninfo 3)']"
SET4="SELECT cache_router_set_shards($SHARDS4, shard_user => 'fpc_shard', password_file => '$work/shard.pass')"
sq "$RP" postgres "CREATE DATABASE router" &&
rq "SET client_min_messages = warning" "CREATE EXTENSION pgtap" "CREATE EXTENSION fastpgcache_router CASCADE" \
  || { fail "router database"; finish; }
check_eq "cache_router_set_shards: 4 partitions (power of two) on two clusters" "$(rq "$SET4")" 4
check_eq "every partition answers (cache_router_check)" \
  "$(rq "SELECT string_agg(partition || ':' || ok, ' ' ORDER BY partition) FROM cache_router_check()")" \
  "0:true 1:true 2:true 3:true"

# ---------------------------------------------------------------- same API
echo "== the router's functions have the extension's signatures"
sig="SELECT p.proname || '(' || pg_get_function_arguments(p.oid) || ') -> ' || pg_get_function_result(p.oid)
            || CASE WHEN p.proisstrict THEN ' STRICT' ELSE '' END || CASE WHEN p.proretset THEN ' SETOF' ELSE '' END
       FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.deptype = 'e'
       JOIN pg_extension e ON e.oid = d.refobjid
      WHERE e.extname = '%s' AND p.pronamespace = 'public'::regnamespace AND p.proname LIKE 'cache\\_%%'
        AND p.proname NOT LIKE 'cache\\_router\\_%%' AND p.proname NOT IN ('cache_start_worker', 'cache_stop_worker')
      ORDER BY 1"
# shellcheck disable=SC2059
sq "$AP" fpc_p0 "$(printf "$sig" fastpgcache)" > "$work/sig.extension"
# shellcheck disable=SC2059
rq "$(printf "$sig" fastpgcache_router)" > "$work/sig.router"
if diff -u "$work/sig.extension" "$work/sig.router"; then
  ok "same names, argument names, defaults, results and STRICT-ness ($(wc -l < "$work/sig.router") functions)"
else
  fail "the router's signatures differ from the extension's (diff above)"
fi
check_eq "the same grants: cache_stats_reset() is not executable by a role without grants" \
  "$(rq "CREATE ROLE nobody_in_particular" "SELECT has_function_privilege('nobody_in_particular', 'cache_stats_reset()', 'EXECUTE')")" "f"
check_eq "nor is the PL/Proxy function behind it (a direct call would reset the shards' counters as the mapped user)" \
  "$(rq "SELECT has_function_privilege('nobody_in_particular', 'fastpgcache_router.stats_reset()', 'EXECUTE')")" "f"
check_eq "a role granted EXECUTE on cache_stats_reset() resets the shards' counters through it" \
  "$(rq "CREATE ROLE fpc_stats_admin; GRANT EXECUTE ON FUNCTION cache_stats_reset() TO fpc_stats_admin" \
        "SET ROLE fpc_stats_admin; SELECT cache_stats_reset()")" "t"

# ---------------------------------------------------------------- pgTAP
echo "== pgTAP semantic suite (t/) through the router"
export PGHOST="$work/router/sock" PGPORT="$RP" PGUSER=postgres
# What cannot hold across servers is marked in t/ itself: a first line
# "-- router: skip file: WHY" skips the file; a line "-- router: skip: WHY"
# turns the statement that follows (up to its closing ';') into pgTAP's
# skip(WHY), one test, so the plan still counts. Everything else runs as is.
router_view() {
  awk -v q="'" '
    /^-- router: skip: / { why = substr($0, 18); gsub(q, q q, why); skipping = 1; next }
    skipping { if ($0 ~ /;[[:space:]]*$/) { print "SELECT skip(" q why q ");"; skipping = 0 }; next }
    { print }' "$1"
}
mkdir -p "$work/t"
for f in "$root"/t/*.sql; do
  name=$(basename "$f")
  why=$(sed -n '1s/^-- router: skip file: //p' "$f")
  if [ -n "$why" ]; then
    echo "   skip $name: $why"
    continue
  fi
  router_view "$f" > "$work/t/$name"
  echo "   $name: $(grep -c '^-- router: skip: ' "$f") statement(s) skipped through the router"
  rq "SELECT cache_flush()" >/dev/null  # each file starts empty, as its BEGIN/ROLLBACK would leave it on one server
  if pg_prove -v --ext .sql -d router "$work/t/$name" > "$work/prove.out" 2>&1; then
    ok "pgTAP $name through the router"
  else
    grep -v '^ok\|NOTICE' "$work/prove.out"; fail "pgTAP $name through the router"
  fi
done
for f in "$here"/t/*.sql; do
  rq "SELECT cache_flush()" >/dev/null
  if pg_prove -Q --ext .sql -d router "$f" > "$work/prove.out" 2>&1; then
    ok "pgTAP test/router/t/$(basename "$f")"
  else
    grep -v NOTICE "$work/prove.out"; fail "pgTAP test/router/t/$(basename "$f")"
  fi
done
unset PGHOST PGPORT PGUSER

# ---------------------------------------------------------------- placement
echo "== where keys land"
rq "SELECT cache_flush()" >/dev/null
rq "SELECT count(*) FROM generate_series(1, 400) i WHERE cache_set('place:' || i, i::text)" >/dev/null
# Any client can place a key: the first 2 bits of SHA-256 of its UTF-8 bytes.
mismatch=0
for key in 'user:123' 'place:1' 'ключ:日本語:🐘' '' 'session:9f8e7d'; do
  first=$(printf '%s' "$key" | sha256sum | cut -c1)
  expected=$(( 0x$first >> 2 ))
  got=$(rq "SELECT cache_router_partition(\$k\$$key\$k\$)")
  [ "$got" = "$expected" ] || { mismatch=1; echo "   '$key': router says $got, sha256sum says $expected"; }
done
[ "$mismatch" = 0 ] && ok "cache_router_partition(key) = first 2 bits of sha256sum of the key (any client can compute it)" \
  || fail "cache_router_partition disagrees with sha256sum"
total=0; misplaced=0
for p in 0 1 2 3; do
  row=$(sq "$(shard_port $p)" "fpc_p$p" \
    "SELECT count(*) || ' ' || count(*) FILTER (WHERE (('x' || left(key_hash::text, 1))::bit(4)::int >> 2) <> $p) FROM cache_entries")
  total=$((total + ${row% *})); misplaced=$((misplaced + ${row#* }))
done
check_eq "the 400 keys are on the shards, each on the partition of its key_hash's first 2 bits" "$total/$misplaced" "400/0"

# ---------------------------------------------------------------- SCAN
echo "== SCAN: the router's against the shards' own, and under concurrent writes"
scan_sql="WITH RECURSIVE s(cur, keys) AS (
            SELECT r.next_cursor, r.keys FROM cache_scan(0, '%s', %s) r
          UNION ALL
            SELECT r.next_cursor, r.keys FROM s, LATERAL cache_scan(s.cur, '%s', %s) r WHERE s.cur <> 0)
          SELECT k FROM s, unnest(s.keys) k"
# shellcheck disable=SC2059
rq "$(printf "$scan_sql" '*' 13 '*' 13)" | sort > "$work/scan.router"
: > "$work/scan.shards"
for p in 0 1 2 3; do
  # shellcheck disable=SC2059
  sq "$(shard_port $p)" "fpc_p$p" "$(printf "$scan_sql" '*' 13 '*' 13)" >> "$work/scan.shards"
done
sort -o "$work/scan.shards" "$work/scan.shards"
if cmp -s "$work/scan.router" "$work/scan.shards" && [ "$(wc -l < "$work/scan.router")" = 400 ]; then
  ok "a full SCAN through the router returns exactly what the shards' own full scans return (400 keys)"
else
  fail "router SCAN differs from the shards' scans"; diff "$work/scan.router" "$work/scan.shards" | head
fi
# Writers add and delete other keys on every partition during the scan.
cat > "$work/churn.sql" <<'SQL'
\set i random(1, 2000)
SELECT cache_set('churn:' || :i, 'x');
SELECT cache_delete('churn:' || (:i + 7));
SQL
timeout 60 pgbench -n -h "$work/router/sock" -p "$RP" -U postgres -c 2 -T 30 -f "$work/churn.sql" router \
  > "$work/churn.log" 2>&1 &
churn=$!; bg_pids+=("$churn")
sleep 1
# shellcheck disable=SC2059
rq "$(printf "$scan_sql" '*' 5 '*' 5)" | sort > "$work/scan.concurrent"
kill "$churn" 2>/dev/null; wait "$churn" 2>/dev/null
missing=$(comm -23 <(grep '^place:' "$work/scan.router") <(grep '^place:' "$work/scan.concurrent" | sort -u) | wc -l)
churned=$(grep -c '^churn:' "$work/scan.concurrent")
check_eq "a SCAN (count 5) while 2 sessions write: every key that existed throughout is returned ($churned churn keys seen too)" \
  "$missing" 0
check_eq "... and nothing else" "$(grep -vc -e '^place:' -e '^churn:' "$work/scan.concurrent")" 0

# ---------------------------------------------------------------- not atomic across partitions
echo "== writes are not atomic across partitions; MGET is not one snapshot across them"
rq "SELECT cache_flush()" "SELECT cache_mset(ARRAY['k31', 'k7'], ARRAY['old', 'old'])" >/dev/null
p31=$(rq "SELECT cache_router_partition('k31')"); p7=$(rq "SELECT cache_router_partition('k7')")
[ "$p31" != "$p7" ] || fail "k31 and k7 should be on two partitions"
# Hold k7's row locked on its shard: the router's cache_mset commits k31 on
# its partition and waits on k7's.
mkfifo "$work/lock.in"
psql -X -q -h "$work/$( [ "$(shard_port "$p7")" = "$AP" ] && echo a || echo b)/sock" -p "$(shard_port "$p7")" -U postgres \
  -d "fpc_p$p7" < "$work/lock.in" > "$work/lock.out" 2>&1 &
locker=$!; bg_pids+=("$locker")
exec 7> "$work/lock.in"
echo "BEGIN; SELECT 1 FROM cache_entries WHERE key = 'k7' FOR UPDATE; \\echo locked" >&7
for _ in $(seq 1 100); do grep -q locked "$work/lock.out" && break; sleep 0.1; done
rq "SELECT cache_mset(ARRAY['k31', 'k7'], ARRAY['new', 'new'])" > "$work/mset.out" 2>&1 &
writer=$!; bg_pids+=("$writer")
seen=
for _ in $(seq 1 100); do
  seen=$(rq "SELECT string_agg(coalesce(value, '-'), ',') FROM cache_mget(ARRAY['k31', 'k7'])")
  [ "$seen" = "new,old" ] && break
  sleep 0.1
done
check_eq "while one partition's part of a cache_mset waits, cache_mget sees the other part already committed" "$seen" "new,old"
echo "COMMIT;" >&7
exec 7>&-
wait "$writer"; wait "$locker"
check_eq "then the whole cache_mset is there" \
  "$(rq "SELECT string_agg(value, ',') FROM cache_mget(ARRAY['k31', 'k7'])")" "new,new"

# ---------------------------------------------------------------- administration
echo "== cache_router_set_shards, privileges"
err() {  # err SQL: "SQLSTATE message" of the error, or "no error"
  local out
  out=$(psql -X -q -At -v VERBOSITY=verbose -h "$work/router/sock" -p "$RP" -U "${ERR_USER:-postgres}" -d router \
        -c "$1" 2>&1 >/dev/null | grep -m1 '^ERROR' | sed 's/^ERROR:  //')
  echo "${out:-no error}"
}
check_eq "3 shards: 22023" "$(err "SELECT cache_router_set_shards(ARRAY['host=x', 'host=y', 'host=z'])" | cut -c1-5)" 22023
check_eq "NULL: 22004" "$(err "SELECT cache_router_set_shards(NULL)" | cut -c1-5)" 22004
check_eq "a password in a conninfo: 22023, the value not repeated" \
  "$(err "SELECT cache_router_set_shards(ARRAY['host=127.0.0.1 password=notthepassword dbname=x'])" | grep -c notthepassword)" 0
check_eq "... refused with 22023" \
  "$(err "SELECT cache_router_set_shards(ARRAY['host=127.0.0.1 password=notthepassword dbname=x'])" | cut -c1-5)" 22023
check_eq "a user in a conninfo: 22023" "$(err "SELECT cache_router_set_shards(ARRAY['host=h user=u'])" | cut -c1-5)" 22023
check_eq "a URI: 22023" "$(err "SELECT cache_router_set_shards(ARRAY['postgresql://h/db'])" | cut -c1-5)" 22023
check_eq "an unterminated quote: 22023" "$(err "SELECT cache_router_set_shards(ARRAY['host=''h'])" | cut -c1-5)" 22023
down_port=$(free_port)
e=$(err "SELECT cache_router_set_shards(ARRAY['$(conninfo 0)', 'host=127.0.0.1 port=$down_port dbname=fpc_p1'], 'fpc_shard', '$work/shard.pass')")
case $e in
  XX000*"partition 1 (host=127.0.0.1 port=$down_port dbname=fpc_p1) cannot be used"*"failed"*) ok "a shard that is down: refused, naming partition 1 and its conninfo";;
  *) fail "a shard that is down: $e";;
esac
check_eq "... and nothing was changed (still 4 partitions)" "$(rq "SELECT count(*) FROM cache_router_shards()")" 4
sq "$AP" postgres "CREATE DATABASE no_ext"
e=$(err "SELECT cache_router_set_shards(ARRAY['host=127.0.0.1 port=$AP dbname=no_ext'], 'fpc_shard', '$work/shard.pass')")
case $e in 55000*"partition 0"*"not installed"*) ok "a database without fastpgcache: 55000 naming the partition";; *) fail "no extension: $e";; esac
echo "not-$PW" > "$work/wrong.pass"; chmod 644 "$work/wrong.pass"
e=$(err "SELECT cache_router_set_shards($SHARDS4, 'fpc_shard', '$work/wrong.pass')")
case $e in *"partition 0"*"password authentication failed"*) ok "a wrong password: refused, naming the partition";; *) fail "wrong password: $e";; esac
check_eq "a missing password file: 58P01" "$(err "SELECT cache_router_set_shards($SHARDS4, 'fpc_shard', '$work/none.pass')" | cut -c1-5)" 58P01
rq "CREATE ROLE app LOGIN" "GRANT USAGE ON FOREIGN SERVER fastpgcache TO app" "CREATE ROLE stranger LOGIN" >/dev/null
check_eq "cache_router_set_shards is not executable by PUBLIC: 42501" \
  "$(ERR_USER=app err "SELECT cache_router_set_shards($SHARDS4)" | cut -c1-5)" 42501
check_eq "a role without USAGE on the foreign server: 42501" "$(ERR_USER=stranger err "SELECT cache_get('x')" | cut -c1-5)" 42501
check_eq "a role with USAGE uses the cache" \
  "$(psql -X -q -At -h "$work/router/sock" -p "$RP" -U app -d router -c "SELECT cache_set('app:k', 'v') AND cache_get('app:k') = 'v'")" t
check_eq "the user mapping's options are hidden from such a role" \
  "$(psql -X -q -At -h "$work/router/sock" -p "$RP" -U app -d router -c "SELECT coalesce(umoptions::text, 'hidden') FROM pg_user_mappings WHERE srvname = 'fastpgcache'")" hidden

# ---------------------------------------------------------------- resharding
echo "== resharding 2 -> 4 partitions"
SHARDS2="ARRAY['$(conninfo 0)', '$(conninfo 2)']"
rq "SELECT cache_router_set_shards($SHARDS4, 'fpc_shard', '$work/shard.pass')" "SELECT cache_flush()" \
   "SELECT cache_router_set_shards($SHARDS2, 'fpc_shard', '$work/shard.pass')" >/dev/null
rq "SELECT cache_mset(array_agg('rs:' || i), array_agg(i::text)) FROM generate_series(1, 1000) i" >/dev/null
# A session open across the change (its connections made under the old map).
hits_sql="SELECT count(*) FROM generate_series(1, 1000) i WHERE cache_get('rs:' || i) IS NOT NULL"
mkfifo "$work/l.in"
psql -X -q -At -h "$work/router/sock" -p "$RP" -U postgres -d router < "$work/l.in" > "$work/l.out" 2>&1 &
bg_pids+=("$!")
exec 9> "$work/l.in"
echo "$hits_sql; \\echo __l1__" >&9
for _ in $(seq 1 100); do grep -q __l1__ "$work/l.out" && break; sleep 0.1; done
rq "SELECT cache_router_set_shards($SHARDS4, 'fpc_shard', '$work/shard.pass')" >/dev/null
echo "$hits_sql; \\echo __l2__" >&9
exec 9>&-
for _ in $(seq 1 100); do grep -q __l2__ "$work/l.out" && break; sleep 0.1; done
# Doubling keeps partition p's keys on new partitions 2p (the same shard) and
# 2p + 1 (a new, empty one): exactly the keys whose second bit is 1 miss.
hits=$(rq "SELECT count(*) FROM generate_series(1, 1000) i WHERE cache_get('rs:' || i) IS NOT NULL")
stay=$(rq "SELECT count(*) FROM generate_series(1, 1000) i WHERE cache_router_partition('rs:' || i) IN (0, 2)")
check_eq "cold doubling: the keys of partitions 0 and 2 still hit, the others miss ($hits of 1000 hit)" "$hits" "$stay"
check_eq "a session open across cache_router_set_shards routes by the new map at its next call" \
  "$(tr '\n' ' ' < "$work/l.out")" "1000 __l1__ $stay __l2__ "
check_eq "... SCAN returns only the keys the router can find" \
  "$(rq "$(printf "$scan_sql" 'rs:*' 100 'rs:*' 100)" | wc -l)" "$stay"
# The stray half on the old shards: removed with one DELETE per shard.
for p in 0 2; do
  sq "$(shard_port $p)" "fpc_p$p" \
    "DELETE FROM cache_entries WHERE (('x' || left(key_hash::text, 1))::bit(4)::int >> 2) <> $p" >/dev/null
done
check_eq "... after the DELETE of strays on the old shards, cache_dbsize counts the hits" "$(rq "SELECT cache_dbsize()")" "$hits"
# Warm doubling: copy each old shard's table to the new one before switching.
rq "SELECT cache_flush()" "SELECT cache_router_set_shards($SHARDS2, 'fpc_shard', '$work/shard.pass')" >/dev/null
rq "SELECT cache_mset(array_agg('rs:' || i), array_agg(i::text)) FROM generate_series(1, 1000) i" >/dev/null
for pair in "0 1" "2 3"; do
  set -- $pair
  sq "$(shard_port "$1")" "fpc_p$1" "COPY cache_entries TO STDOUT" |
    psql -X -q -h "$work/$( [ "$(shard_port "$2")" = "$AP" ] && echo a || echo b)/sock" -p "$(shard_port "$2")" -U postgres \
      -d "fpc_p$2" -c "COPY cache_entries FROM STDIN"
done
rq "SELECT cache_router_set_shards($SHARDS4, 'fpc_shard', '$work/shard.pass')" >/dev/null
check_eq "warm doubling (each shard's table copied to its new sibling first): all 1000 keys hit" \
  "$(rq "SELECT count(*) FROM generate_series(1, 1000) i WHERE cache_get('rs:' || i) = i::text")" 1000

# ---------------------------------------------------------------- failure
echo "== one shard cluster down, then restarted empty"
rq "SELECT cache_flush()" >/dev/null
rq "SELECT count(*) FROM generate_series(1, 200) i WHERE cache_set('f:' || i, i::text)" >/dev/null
key_on() { rq "SELECT 'f:' || i FROM generate_series(1, 200) i WHERE cache_router_partition('f:' || i) = $1 LIMIT 1"; }
k0=$(key_on 0); k1=$(key_on 1); k2=$(key_on 2); k3=$(key_on 3)
# One router session lives through the whole scenario (coprocess).
coproc ROUTER { psql -X -q -At -v VERBOSITY=verbose -h "$work/router/sock" -p "$RP" -U postgres -d router 2>&1; }
bg_pids+=("$ROUTER_PID")
ask() {  # ask SQL: one line of answer (or the error) from the long-lived session
  local line
  printf '%s\n\\echo __end__\n' "$1" >&"${ROUTER[1]}"
  local out=
  while IFS= read -r -t 30 line <&"${ROUTER[0]}"; do
    [ "$line" = "__end__" ] && break
    out="${out:+$out | }$line"
  done
  echo "$out"
}
ask "SET client_min_messages = warning;" >/dev/null
check_eq "the long-lived router session reads partition 2" "$(ask "SELECT cache_get('$k2');")" "${k2#f:}"
# A second session that used partition 2 before the crash and is idle during it.
mkfifo "$work/s2.in"
psql -X -q -At -h "$work/router/sock" -p "$RP" -U postgres -d router < "$work/s2.in" > "$work/s2.out" 2>&1 &
bg_pids+=("$!")
exec 8> "$work/s2.in"
echo "SET client_min_messages = warning; SELECT cache_get('$k2'); \\echo __s2a__" >&8
as_pg pg_ctl -D "$work/b/data" -m immediate -w stop >/dev/null
e=$(ask "SELECT cache_get('$k2');")
case $e in
  *XX000*"[fpc_p2]"*) ok "shard b crashed: the session's next call on partition 2 fails naming [fpc_p2] (its connection broke)";;
  *) fail "shard down, partition 2, first call: $e";;
esac
e=$(ask "SELECT cache_get('$k2');")
case $e in
  *XX000*"[fpc_p2]"*"port $BP failed"*) ok "... the calls after it fail naming [fpc_p2] and the shard's port (connection refused)";;
  *) fail "shard down, partition 2: $e";;
esac
e=$(ask "SELECT cache_set('$k3', 'x');")
case $e in *"[fpc_p3]"*) ok "... a write on partition 3 names [fpc_p3]";; *) fail "shard down, partition 3: $e";; esac
check_eq "... partitions 0 and 1 keep serving reads" "$(ask "SELECT cache_get('$k0') || ',' || cache_get('$k1');")" "${k0#f:},${k1#f:}"
check_eq "... and writes" "$(ask "SELECT cache_set('$k0', 'w') AND cache_set('$k1', 'w');")" t
check_eq "... cache_router_check names the partitions that are down" \
  "$(rq "SELECT string_agg(partition || ':' || ok, ' ' ORDER BY partition) FROM cache_router_check()")" "0:true 1:true 2:false 3:false"
as_pg env ${FPC_MALLOC_PERTURB:+MALLOC_PERTURB_=$FPC_MALLOC_PERTURB} pg_ctl -D "$work/b/data" -l "$work/b/server.log" -w start >/dev/null
sleep 2.5  # PL/Proxy checks a connection idle for 2 s before reusing it
check_eq "shard b restarted: the same router session reads partition 2 again (empty: the crash emptied the UNLOGGED table)" \
  "$(ask "SELECT coalesce(cache_get('$k2'), 'miss');")" miss
check_eq "... and writes to partition 3" "$(ask "SELECT cache_set('$k3', 'back') AND cache_get('$k3') = 'back';")" t
check_eq "... partition 0 kept its data" "$(ask "SELECT cache_get('$k0');")" w
echo "SELECT coalesce(cache_get('$k2'), 'miss'); \\echo __s2b__" >&8
for _ in $(seq 1 100); do grep -q __s2b__ "$work/s2.out" && break; sleep 0.1; done
# (PL/Proxy may say "WARNING: PL/Proxy: detected unstable connection" as it
# drops the broken one: a warning, not an error.)
check_eq "a session idle while the shard restarted reads partition 2 without an error" \
  "$(sed -n '/__s2a__/,/__s2b__/p' "$work/s2.out" | sed '1d;$d' | grep -v '^WARNING:  PL/Proxy: detected unstable connection$' | tr '\n' ' ')" "miss "
exec 8>&-
printf '\\q\n' >&"${ROUTER[1]}"

# ---------------------------------------------------------------- C++ client
echo "== the C++ client, unchanged, against the router"
CXX=${CXX:-g++}
if $CXX -std=c++17 -O1 -Wall -Wextra -Werror -I"$root/include" $(pkg-config --cflags libpq) "$here/client_router.cpp" \
     -o "$work/client_router" $(pkg-config --libs libpq) -lcurl -pthread > "$work/client.build" 2>&1; then
  if "$work/client_router" "host=127.0.0.1 port=$RP dbname=router user=postgres" > "$work/client.out" 2>&1; then
    ok "C++ client through the pool: $(tail -1 "$work/client.out")"
  else
    cat "$work/client.out"; fail "C++ client against the router"
  fi
else
  cat "$work/client.build"; fail "build test/router/client_router.cpp"
fi

# ---------------------------------------------------------------- the password
echo "== the shards' password in no log and no pg_stat_activity"
activity=$( { rq "SELECT string_agg(coalesce(query, ''), ' ') FROM pg_stat_activity";
              sq "$AP" postgres "SELECT string_agg(coalesce(query, ''), ' ') FROM pg_stat_activity";
              sq "$BP" postgres "SELECT string_agg(coalesce(query, ''), ' ') FROM pg_stat_activity"; } )
check_eq "not in pg_stat_activity of the router or the shards" "$(grep -c -- "$PW" <<< "$activity")" 0
statements=$(grep -c 'LOG:  statement:' "$work/router/server.log")
check_eq "not in the router's or the shards' server logs ($statements statements logged by the router)" \
  "$(cat "$work/router/server.log" "$work/a/server.log" "$work/b/server.log" | grep -c -- "$PW")" 0
check_eq "the shards logged the router's calls (log_statement = 'all' was on)" \
  "$(grep -q 'execute .*cache_get' "$work/a/server.log" && grep -q 'execute .*cache_get' "$work/b/server.log" && echo yes)" yes

finish

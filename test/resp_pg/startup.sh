#!/usr/bin/env bash
# Starting up against obstacles, on a cluster of its own ("startup", 2 RESP
# workers): fastpgcache.resp_database names a database that does not exist yet
# AND another process holds the RESP port.
#   1. the launcher logs one WARNING per worker for the missing database and
#      does not repeat it while it checks every 5 s;
#   2. CREATE DATABASE: the workers start, cannot listen (the port is taken):
#      one WARNING each, naming the port and the cause, not repeated;
#   3. the other process lets the port go: the workers listen within ~5 s and
#      serve the cache of that database (SQL sees what RESP wrote).
# Usage: startup.sh WORKDIR   (called by run.sh)
set -u
work=$1
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../../scripts/lib.sh"
passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok - $1"; }
ko() { failed=$((failed + 1)); echo "not ok - $1"; shift; local l; for l in "$@"; do printf '%s\n' "$l" | sed 's/^/#   /'; done; }
finish() { [ -n "${holder:-}" ] && kill "$holder" 2>/dev/null; echo "$passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit; }
dir="$work/startup"
mkdir -p "$dir"
log="$dir/server.log"
count() { grep -c -- "$1" "$log" 2>/dev/null || true; }
wait_for() {  # wait_for SECONDS PATTERN: until the log has it
  local i
  for i in $(seq 1 $(($1 * 10))); do grep -q -- "$2" "$log" 2>/dev/null && return 0; sleep 0.1; done
  return 1
}

port=$(free_port); resp=$(free_port)
while [ "$resp" = "$port" ]; do resp=$(free_port); done
echo "$port" >"$dir/port"
# Another program holds the RESP port (no SO_REUSEPORT: the workers cannot share it).
/usr/bin/python3 -c "
import socket, sys, time
s = socket.socket(); s.bind(('127.0.0.1', $resp)); s.listen(5)
sys.stdout.write('ready\n'); sys.stdout.flush()
time.sleep(600)" >"$dir/holder.out" 2>&1 &
holder=$!
for _ in $(seq 1 50); do grep -q ready "$dir/holder.out" && break; sleep 0.1; done
if ! cluster_start "$dir" "$port" "log_line_prefix = '%m [%p] %q%a '" "shared_preload_libraries = 'fastpgcache'" \
     "fastpgcache.resp_port = $resp" "fastpgcache.resp_workers = 2" "fastpgcache.resp_database = 'respdb'" \
     >"$dir/start.out" 2>&1; then
  ko "the cluster starts" "$(tail -5 "$dir/start.out")"; finish
fi
q() { psql -X -qAt -h "$dir/sock" -p "$port" -U postgres -d "${2:-postgres}" -v ON_ERROR_STOP=1 -c "$1" 2>&1; }
missing='WARNING:  fastpgcache launcher: database "respdb" does not exist'
if wait_for 10 "$missing"; then ok "a missing fastpgcache.resp_database: a WARNING"; else ko "a missing fastpgcache.resp_database: a WARNING" "$(tail -5 "$log")"; fi
sleep 6   # more than one 5 s retry
n=$(count "$missing")
[ "$n" -ge 1 ] && [ "$n" -le 2 ] && ok "... once per RESP worker, not repeated at each 5 s check ($n lines)" ||
  ko "... once per RESP worker, not repeated at each 5 s check" "$n lines" "$(grep -- "$missing" "$log")"
grep -A2 -- "$missing" "$log" | grep -q 'HINT:  Create the database' && ok "... with a hint" || ko "... with a hint"
got=$(q "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'fastpgcache resp'")
[ "$got" = 0 ] && ok "... and no RESP worker runs" || ko "... and no RESP worker runs" "$got"

q "CREATE DATABASE respdb" >/dev/null
q "CREATE EXTENSION fastpgcache" respdb >/dev/null
q "CREATE ROLE app LOGIN PASSWORD 'app-secret-1'" >/dev/null
q "GRANT SELECT, INSERT, UPDATE, DELETE ON cache_entries TO app" respdb >/dev/null
inuse="cannot listen on port $resp"
if wait_for 10 "$inuse"; then ok "CREATE DATABASE: the workers start, the port is taken: a WARNING"
else ko "CREATE DATABASE: the workers start, the port is taken: a WARNING" "$(tail -8 "$log")"; fi
grep -q 'database "respdb" exists now; starting' "$log" && ok "... the launcher says it found the database" || ko "... the launcher says it found the database"
line=$(grep -- "$inuse" "$log" | head -1)
case "$line" in *"Address already in use"*) ok "... the WARNING names the cause: $(sed 's/.*WARNING: *//' <<<"$line")" ;;
  *) ko "... the WARNING names the cause" "$line" ;; esac
grep -A1 -- "$inuse" "$log" | grep -q 'tries again every 5 s' && ok "... and says it retries" || ko "... and says it retries"
sleep 6
n=$(count "$inuse")
[ "$n" -ge 1 ] && [ "$n" -le 2 ] && ok "... one WARNING per worker, not repeated at each retry ($n lines)" ||
  ko "... one WARNING per worker, not repeated at each retry" "$n lines"
got=$(q "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'fastpgcache resp'")
[ "$got" = 2 ] && ok "... both workers run meanwhile (waiting for the port)" || ko "... both workers run meanwhile" "$got"

kill "$holder"; wait "$holder" 2>/dev/null; holder=
served=no
for _ in $(seq 1 120); do
  [ "$(redis-cli -p "$resp" PING 2>/dev/null)" = PONG ] && { served=yes; break; }
  sleep 0.1
done
[ "$served" = yes ] && ok "the port is freed: the workers serve it within ~5 s" || ko "the port is freed: served within ~5 s" "$(tail -5 "$log")"
cli=(redis-cli -p "$resp" --user app --pass app-secret-1 --no-auth-warning)
got=$("${cli[@]}" SET started yes 2>&1)
[ "$got" = OK ] && ok "... SET over RESP" || ko "... SET over RESP" "$got"
got=$(q "SELECT cache_get('started')" respdb)
[ "$got" = yes ] && ok "... it went to the cache of fastpgcache.resp_database (respdb)" || ko "... the cache of respdb" "$got"
for _ in $(seq 1 70); do [ "$(grep -c 'serving the Redis protocol on port' "$log")" = 2 ] && break; sleep 0.1; done
n=$(grep -c 'serving the Redis protocol on port' "$log")
[ "$n" = 2 ] && ok "... both workers serve (two 'serving' lines)" || ko "... both workers serve" "$n"
if grep -E 'terminated by signal|PANIC:|was terminated' "$log" >/dev/null; then
  ko "no crash" "$(grep -E 'terminated by signal|PANIC:|was terminated' "$log" | head -3)"
else ok "no crash"; fi
as_pg pg_ctl -D "$dir/data" -m fast -w stop >/dev/null 2>&1
finish

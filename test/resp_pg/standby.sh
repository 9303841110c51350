#!/usr/bin/env bash
# A hot standby does not serve the Redis protocol: pg_basebackup -R of the
# "main" cluster (run.sh), started with the same settings (its own ports):
# nothing listens on its RESP port or unix socket, no RESP worker runs, the
# log never says it serves. After pg_promote() it serves (the roles came with
# the base backup; the cache is empty: UNLOGGED tables are not replicated).
# Usage: standby.sh WORKDIR MAIN_CONF_LINE...   (called by run.sh)
set -u
work=$1; shift
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../../scripts/lib.sh"
passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok - $1"; }
ko() { failed=$((failed + 1)); echo "not ok - $1"; shift; local l; for l in "$@"; do printf '%s\n' "$l" | sed 's/^/#   /'; done; }
finish() { echo "$passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit; }

main_sock="$work/main/sock" main_port=$(cat "$work/main/port")
dir="$work/standby"
mkdir -p "$dir"
[ "$(id -u)" -eq 0 ] && chown postgres:postgres "$dir"
redis-cli -p "$RESP_PORT" --user app --pass app-secret-1 --no-auth-warning SET on-primary v >/dev/null
if as_pg pg_basebackup -D "$dir/data" -R -X stream -c fast -h "$main_sock" -p "$main_port" -U postgres >"$dir/basebackup.log" 2>&1; then
  ok "pg_basebackup -R of the primary"
else
  ko "pg_basebackup -R of the primary" "$(tail -5 "$dir/basebackup.log")"; finish
fi
port=$(free_port); sb_resp=$(free_port)
while [ "$sb_resp" = "$port" ] || [ "$sb_resp" = "$RESP_PORT" ]; do sb_resp=$(free_port); done
echo "$port" >"$dir/port"
conf=()
for line in "$@"; do
  case "$line" in
    fastpgcache.resp_port*) conf+=("fastpgcache.resp_port = $sb_resp") ;;
    fastpgcache.resp_unix_socket*) conf+=("fastpgcache.resp_unix_socket = '$work/standby-resp.sock'") ;;
    *) conf+=("$line") ;;
  esac
done
# cluster_start rewrites postgresql.auto.conf: primary_conninfo again (standby.signal stays)
if cluster_start "$dir" "$port" "log_line_prefix = '%m [%p] %q%a '" "${conf[@]}" "hot_standby = on" \
     "primary_conninfo = 'host=$main_sock port=$main_port user=postgres'" >"$dir/start.out" 2>&1; then
  ok "the standby starts"
else
  ko "the standby starts" "$(tail -5 "$dir/start.out")"; finish
fi
q() { psql -X -qAt -h "$dir/sock" -p "$port" -U postgres -d postgres -c "$1" 2>&1; }
got=$(q "SELECT pg_is_in_recovery()")
[ "$got" = t ] && ok "the standby is in recovery" || ko "the standby is in recovery" "$got"
# The launcher would have started the workers within a second; give it three.
sleep 3
listening=no
(exec 3<>"/dev/tcp/127.0.0.1/$sb_resp") 2>/dev/null && listening=yes
[ "$listening" = no ] && ok "nothing listens on the standby's RESP port ($sb_resp)" || ko "nothing listens on the standby's RESP port" "$(redis-cli -p "$sb_resp" PING 2>&1)"
[ ! -e "$work/standby-resp.sock" ] && ok "no unix socket on the standby" || ko "no unix socket on the standby"
got=$(q "SELECT count(*) FROM pg_stat_activity WHERE backend_type IN ('fastpgcache resp', 'fastpgcache worker', 'fastpgcache launcher')")
[ "$got" = 0 ] && ok "no fastpgcache process runs on the standby" || ko "no fastpgcache process runs on the standby" "$got"
if grep -q 'serving the Redis protocol' "$dir/server.log"; then ko "the standby's log never says it serves" "$(grep 'serving' "$dir/server.log")"
else ok "the standby's log never says it serves"; fi
got=$(q "SELECT pg_promote(true, 60)")
[ "$got" = t ] && ok "pg_promote()" || ko "pg_promote()" "$got"
served=no
for _ in $(seq 1 150); do
  [ "$(redis-cli -p "$sb_resp" PING 2>/dev/null)" = PONG ] && { served=yes; break; }
  sleep 0.1
done
[ "$served" = yes ] && ok "after promotion the RESP port serves" || ko "after promotion the RESP port serves" "$(grep -i 'fastpgcache' "$dir/server.log" | tail -5)"
cli=(redis-cli -p "$sb_resp" --user app --pass app-secret-1 --no-auth-warning)
got=$("${cli[@]}" GET on-primary 2>&1)
[ -z "$got" ] && ok "... AUTH as app works (the role came with the base backup); the cache is empty (UNLOGGED)" ||
  ko "AUTH works and the cache is empty after promotion" "$got"
got=$("${cli[@]}" SET promoted v 2>&1; "${cli[@]}" GET promoted 2>&1)
[ "$got" = $'OK\nv' ] && ok "... SET/GET on the promoted server" || ko "SET/GET on the promoted server" "$got"
[ -S "$work/standby-resp.sock" ] && ok "... and its unix socket exists" || ko "the promoted server's unix socket exists"
if grep -E 'terminated by signal|PANIC:|was terminated' "$dir/server.log" >/dev/null; then
  ko "no crash on the standby" "$(grep -E 'terminated by signal|PANIC:|was terminated' "$dir/server.log" | head -3)"
else ok "no crash on the standby"; fi
as_pg pg_ctl -D "$dir/data" -m fast -w stop >/dev/null 2>&1
finish

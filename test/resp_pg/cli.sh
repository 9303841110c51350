#!/usr/bin/env bash
# redis-cli and redis-benchmark (Debian's redis-tools) against the RESP port
# of a real PostgreSQL cluster, with redis-server as the reference:
#  - cli_script.txt (every command of issue 13's list, errors included) and
#    test/resp/cli_commands.txt: redis-cli's output (RESP2, and -3 for RESP3)
#    must be byte-identical to redis-server's; logging in with --user/--pass
#    and with -a alone (fastpgcache.resp_default_user);
#  - --pipe mode, -r repeats, --scan, --bigkeys, a command on the unix socket;
#  - redis-benchmark -t get,set,incr,mset with --user/-a for a few seconds,
#    pipeline 1 and 16: it must complete every test with no error line
#    (no speed is asserted).
# Environment: RESP_PORT, REDIS_PORT, RESP_UNIX (see e2e.py). Prints "N passed, N failed".
set -u
here=$(cd "$(dirname "$0")" && pwd)
passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok - $1"; }
ko() { failed=$((failed + 1)); echo "not ok - $1"; shift; local l; for l in "$@"; do printf '%s\n' "$l" | sed 's/^/#   /'; done; }
fpc=(redis-cli -p "$RESP_PORT" --user app --pass app-secret-1 --no-auth-warning)
ref=(redis-cli -p "$REDIS_PORT")

for script in "$here/cli_script.txt" "$here/../resp/cli_commands.txt"; do
  name=$(basename "$script")
  for proto in 2 3; do
    flag=(); [ "$proto" = 3 ] && flag=(-3)
    want=$("${ref[@]}" "${flag[@]}" <"$script" 2>&1)
    got=$("${fpc[@]}" "${flag[@]}" <"$script" 2>&1)
    if [ "$want" = "$got" ]; then ok "redis-cli RESP$proto: $name gives redis-server's output ($(wc -l <<<"$got") lines)"
    else ko "redis-cli RESP$proto: $name gives redis-server's output" "$(diff <(echo "$want") <(echo "$got") | head -20)"; fi
  done
done

got=$(redis-cli -p "$RESP_PORT" -a app-secret-1 --no-auth-warning SET viaa 1 2>&1)
[ "$got" = "OK" ] && ok "redis-cli -a PASSWORD (fastpgcache.resp_default_user)" || ko "redis-cli -a PASSWORD" "$got"
got=$(redis-cli -p "$RESP_PORT" GET viaa 2>&1)
[ "$got" = "NOAUTH Authentication required." ] && ok "redis-cli without a password: NOAUTH" || ko "redis-cli without a password: NOAUTH" "$got"
got=$(redis-cli -p "$RESP_PORT" --user app --pass wrong --no-auth-warning GET viaa 2>&1)
case "$got" in *WRONGPASS*) ok "redis-cli with a wrong password: WRONGPASS" ;; *) ko "redis-cli with a wrong password: WRONGPASS" "$got" ;; esac
got=$("${fpc[@]}" -3 HELLO 3 2>&1)
grep -qx 'proto 3' <<<"$got" && ok "redis-cli -3 HELLO 3" || ko "redis-cli -3 HELLO 3" "$got"
got=$(printf 'SET p1 a\r\nSET p2 b\r\nGET p1\r\nINCR p1\r\n' | "${fpc[@]}" --pipe 2>&1)
grep -q "errors: 1, replies: 4" <<<"$got" && ok "redis-cli --pipe (4 replies, 1 error)" || ko "redis-cli --pipe" "$got"
"${fpc[@]}" DEL rep >/dev/null
got=$("${fpc[@]}" -r 5 INCR rep | tail -1)
[ "$got" = "5" ] && ok "redis-cli -r 5 INCR" || ko "redis-cli -r 5 INCR" "$got"
[ "$("${fpc[@]}" --no-raw GET missing)" = "(nil)" ] && ok "redis-cli (nil)" || ko "redis-cli (nil)"
"${fpc[@]}" FLUSHDB >/dev/null
for i in $(seq 1 30); do echo "SET scan:$i $i"; done | "${fpc[@]}" >/dev/null
got=$("${fpc[@]}" --scan --pattern 'scan:*' | sort -t: -k2 -n | tr '\n' ' ')
[ "$got" = "$(seq -f 'scan:%g' 1 30 | tr '\n' ' ')" ] && ok "redis-cli --scan --pattern" || ko "redis-cli --scan --pattern" "$got"
got=$("${fpc[@]}" --bigkeys 2>&1)
grep -q '30 strings with' <<<"$got" && ok "redis-cli --bigkeys" || ko "redis-cli --bigkeys" "$(tail -5 <<<"$got")"
got=$(redis-cli -s "$RESP_UNIX" --user app --pass app-secret-1 --no-auth-warning GET scan:7 2>&1)
[ "$got" = "7" ] && ok "redis-cli -s (the unix socket)" || ko "redis-cli -s" "$got"
"${fpc[@]}" INFO keyspace | grep -q '^db0:keys=30,expires=0' && ok "INFO keyspace" || ko "INFO keyspace" "$("${fpc[@]}" INFO keyspace)"

# redis-benchmark: a smoke run, no speed asserted.
for pipeline in 1 16; do
  out=$(timeout 120 redis-benchmark -p "$RESP_PORT" --user app -a app-secret-1 -t get,set,incr,mset -n 20000 -c 20 \
        -r 10000 -d 100 -P "$pipeline" -q 2>&1 | tr '\r' '\n')
  rc=$?
  summary=$(grep -E 'requests per second' <<<"$out" | grep -v 'rps=' )
  errors=$(grep -iE 'error|ERR |NOAUTH|NOPERM|WRONGPASS|refused|reset' <<<"$out")
  if [ $rc -eq 0 ] && [ "$(grep -c . <<<"$summary")" = 4 ] && [ -z "$errors" ]; then
    ok "redis-benchmark -t get,set,incr,mset --user app -a ... -P $pipeline: 4 tests completed, no error line"
    sed 's/^/# /' <<<"$summary"
  else
    ko "redis-benchmark -P $pipeline completes with no error line" "exit $rc" "$summary" "$(head -5 <<<"$errors")"
  fi
done
out=$(timeout 60 redis-benchmark -p "$RESP_PORT" -a app-secret-1 -t set -n 2000 -c 5 -q 2>&1 | tr '\r' '\n')
grep -q 'SET: .*requests per second' <<<"$out" && ! grep -qiE 'error|NOAUTH' <<<"$out" &&
  ok "redis-benchmark with -a alone (the default user)" || ko "redis-benchmark with -a alone" "$(tail -3 <<<"$out")"
out=$(timeout 60 redis-benchmark -p "$RESP_PORT" -t get -n 100 -c 2 -q 2>&1 | tr '\r' '\n')
grep -q 'NOAUTH' <<<"$out" && ok "redis-benchmark without a password reports NOAUTH" || ko "redis-benchmark without a password reports NOAUTH" "$(tail -3 <<<"$out")"
"${fpc[@]}" FLUSHALL >/dev/null
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

#!/usr/bin/env bash
# redis-cli (Debian redis-tools) against the RESP harness: the output of a
# command script must be byte-identical to redis-server's; RESP3 (-3), --pipe
# mode, -r repeats and redis-benchmark must work.
# Usage: cli_test.sh REDIS_PORT HARNESS_PORT
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
redis_port=$1 harness_port=$2
passed=0 failed=0
ok() { passed=$((passed + 1)); }
ko() { failed=$((failed + 1)); echo "FAIL: $*"; }

# The same script, the same output (redis-cli formats every reply type).
want=$(redis-cli -p "$redis_port" < "$here/cli_commands.txt" 2>&1)
got=$(redis-cli -p "$harness_port" < "$here/cli_commands.txt" 2>&1)
if [ "$want" = "$got" ]; then ok; else ko "redis-cli script output differs"; diff <(echo "$want") <(echo "$got") | head -20; fi
want=$(redis-cli -3 -p "$redis_port" < "$here/cli_commands.txt" 2>&1)
got=$(redis-cli -3 -p "$harness_port" < "$here/cli_commands.txt" 2>&1)
if [ "$want" = "$got" ]; then ok; else ko "redis-cli -3 script output differs"; diff <(echo "$want") <(echo "$got") | head -20; fi

redis-cli -p "$harness_port" -3 HELLO 3 | grep -qx 'proto 3' && ok || ko "redis-cli -3 HELLO proto"
out=$(printf 'SET p1 a\r\nSET p2 b\r\nGET p1\r\n' | redis-cli -p "$harness_port" --pipe 2>&1)
echo "$out" | grep -q "errors: 0, replies: 3" && ok || ko "--pipe: $out"
[ "$(redis-cli -p "$harness_port" -r 5 INCR rep | tail -1)" = "5" ] && ok || ko "-r repeat"
[ "$(redis-cli -p "$harness_port" --no-raw GET missing)" = "(nil)" ] && ok || ko "(nil)"
redis-cli -p "$harness_port" INFO keyspace | grep -q '^db0:keys=' && ok || ko "INFO keyspace"
# redis-benchmark runs against the harness (smoke: no timing asserted). Its
# 7.0 test list has MSET but no MGET.
out=$(redis-benchmark -p "$harness_port" -t get,set,incr,mset -n 2000 -c 10 -P 4 -q 2>&1 | tr '\r' '\n')
[ "$(echo "$out" | grep -c 'requests per second')" = "4" ] && ok || ko "redis-benchmark: $out"
echo "cli_test: $passed passed, $failed failed"
[ "$failed" -eq 0 ]

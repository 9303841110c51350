#!/usr/bin/env bash
# The RESP core suite: builds src/resp with warnings as errors, runs the unit
# and socket tests (ASan+UBSan), starts redis-server and the RESP harness (the
# in-memory TEST DOUBLE executor, never PostgreSQL) on free loopback ports,
# runs the differential tests against redis-server (protocol, commands, glob),
# python3-redis and redis-cli compatibility, then the fuzz targets for
# FUZZ_SECONDS (default 60) in total.
# Usage: bash test/resp/run.sh      (needs: scripts/deps.sh)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
source "$root/scripts/lib.sh"
py=/usr/bin/python3   # Debian's python3 with python3-redis (not a pyenv one)
work=$(mktemp -d /tmp/fpc-resp.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

passed=0 failed=0 failed_steps=()
step() {  # step NAME COMMAND...
  local name=$1; shift
  echo "--- $name"
  if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); failed_steps+=("$name"); fi
}

echo "--- build (g++ -Wall -Wextra -Werror, clang++ warning check)"
bash "$here/build.sh" "$work/bin"

step "unit and socket tests (ASan+UBSan)" "$work/bin/resp_unit"

wait_port() {  # wait_port PORT
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listens on port $1" >&2; return 1
}
redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" \
  --logfile "$work/redis.log" --daemonize no &
pids+=($!)
redis_auth_port=$(free_port)
redis-server --port "$redis_auth_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" \
  --requirepass pw --logfile "$work/redis-auth.log" --daemonize no &
pids+=($!)
"$work/bin/resp_harness" --port 0 --port-file "$work/harness.port" --unix "$work/harness.sock" \
  --max-seconds 1800 >"$work/harness.log" 2>&1 &
pids+=($!)
"$work/bin/resp_harness" --port 0 --port-file "$work/harness-auth.port" --requirepass pw \
  --max-seconds 1800 >"$work/harness-auth.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do [ -s "$work/harness.port" ] && [ -s "$work/harness-auth.port" ] && break; sleep 0.05; done
harness_port=$(cat "$work/harness.port")
harness_auth_port=$(cat "$work/harness-auth.port")
wait_port "$redis_port"; wait_port "$redis_auth_port"; wait_port "$harness_port"; wait_port "$harness_auth_port"
echo "redis-server $(redis-server --version | awk '{print $3}') on $redis_port, harness on $harness_port"

cd "$here"
step "differential: raw protocol streams vs redis-server" "$py" diff_protocol.py "$redis_port" "$harness_port"
step "differential: commands vs redis-server" "$py" diff_commands.py "$redis_port" "$harness_port" 3000
step "differential: glob (KEYS) vs redis-server" "$py" diff_glob.py "$redis_port" "$harness_port" 2000
step "python3-redis against redis-server (the expectations are Redis's)" \
  "$py" clients_test.py --port "$redis_port" --auth-port "$redis_auth_port" --target redis
step "python3-redis against the harness" \
  "$py" clients_test.py --port "$harness_port" --auth-port "$harness_auth_port" --unix "$work/harness.sock" \
  --target fastpgcache
step "redis-cli and redis-benchmark against the harness" bash cli_test.sh "$redis_port" "$harness_port"
step "fuzzing (${FUZZ_SECONDS:-60} s, fixed seed)" env FUZZ_WORK="$work/fuzz" bash fuzz.sh "${FUZZ_SECONDS:-60}"

echo
[ "$failed" -eq 0 ] || echo "failed: ${failed_steps[*]}"
echo "RESP core: $passed passed, $failed failed"
[ "$failed" -eq 0 ]

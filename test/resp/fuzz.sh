#!/usr/bin/env bash
# Runs the RESP libFuzzer targets (clang 14, ASan + UBSan) for SECONDS in
# total (default 60, split evenly), from a fixed seed and the committed seed
# inputs, so that CI runs are repeatable. Prints executions per target.
#
# Long run by hand (e.g. an hour, new corpus kept in DIR):
#   FUZZ_CORPUS=/var/tmp/fpc-resp-corpus bash test/resp/fuzz.sh 3600
# A crash leaves crash-* in the work directory printed at the end, and the
# script fails; reproduce with: BIN crash-FILE
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
total=${1:-60}
targets=(parser commands glob server)
per=$(( total / ${#targets[@]} )); [ "$per" -ge 1 ] || per=1
work=${FUZZ_WORK:-$(mktemp -d /tmp/fpc-resp-fuzz.XXXXXX)}
mkdir -p "$work"
cxx=clang++-14; command -v "$cxx" >/dev/null || cxx=clang++
san=(-std=c++17 -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=undefined)
# src/resp is compiled once (instrumented for coverage), then linked per target.
mkdir -p "$work/obj"
objs=()
for f in "$root"/src/resp/*.cpp; do
  o="$work/obj/$(basename "$f" .cpp).o"
  "$cxx" "${san[@]}" -fsanitize=fuzzer-no-link -c -o "$o" "$f" &
  objs+=("$o")
done
wait
status=0
for t in "${targets[@]}"; do
  bin="$work/fuzz_$t"
  "$cxx" "${san[@]}" -fsanitize=fuzzer -o "$bin" "$here/fuzz/fuzz_$t.cpp" "${objs[@]}"
  corpus="${FUZZ_CORPUS:-$work/corpus}/$t"
  mkdir -p "$corpus"
  cp -n "$here"/fuzz/seeds/"$t"/* "$corpus"/ 2>/dev/null || true
  log="$work/$t.log"
  if (cd "$work" && "$bin" -seed=1 -max_total_time="$per" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 "$corpus" >"$log" 2>&1); then
    execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | awk '{print $2}')
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | awk '{print $2}')
    echo "fuzz $t: ${execs:-?} executions in ${per} s, coverage ${cov:-?} edges, no crash"
  else
    echo "fuzz $t: FAILED (see $log)"; tail -40 "$log"; status=1
  fi
done
echo "fuzz work directory: $work"
exit $status

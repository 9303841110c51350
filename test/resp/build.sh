#!/usr/bin/env bash
# Builds the standalone RESP binaries into DIR: resp_unit (ASan+UBSan),
# resp_harness and bench_parser (-O2), with g++ -Wall -Wextra -Werror (and
# more), plus a clang++ warning check of src/resp. Compiles in parallel.
# Usage: bash test/resp/build.sh DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:?usage: build.sh DIR}
mkdir -p "$out/asan" "$out/opt"
flags=(-std=c++17 -Wall -Wextra -Werror -Wshadow -Wconversion -Wno-sign-conversion)
asan=(-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined)
jobs=$(nproc 2>/dev/null || echo 2)
compile() {  # compile OUT.o SRC FLAGS...
  local o=$1 s=$2; shift 2
  g++ "${flags[@]}" "$@" -c -o "$o" "$s"
}
tasks=()
for f in "$root"/src/resp/*.cpp "$here/unit_tests.cpp"; do
  tasks+=("asan $f")
done
for f in "$root"/src/resp/*.cpp "$here/harness_server.cpp" "$here/bench_parser.cpp"; do
  tasks+=("opt $f")
done
if command -v clang++-14 >/dev/null 2>&1; then
  for f in "$root"/src/resp/*.cpp; do tasks+=("clang $f"); done
fi
run_task() {
  local kind=$1 f=$2 base
  base=$(basename "$f" .cpp)
  case $kind in
    asan) compile "$out/asan/$base.o" "$f" "${asan[@]}" ;;
    opt) compile "$out/opt/$base.o" "$f" -O2 ;;
    clang) clang++-14 "${flags[@]}" -fsyntax-only "$f" ;;
  esac
}
running=0 status=0
pids=()
for t in "${tasks[@]}"; do
  run_task $t &
  pids+=($!)
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then wait "${pids[0]}" || status=1; pids=("${pids[@]:1}"); running=$((running - 1)); fi
done
for p in "${pids[@]}"; do wait "$p" || status=1; done
[ "$status" -eq 0 ] || { echo "build failed" >&2; exit 1; }
lib_asan=() lib_opt=()
for f in "$root"/src/resp/*.cpp; do
  b=$(basename "$f" .cpp); lib_asan+=("$out/asan/$b.o"); lib_opt+=("$out/opt/$b.o")
done
g++ "${asan[@]}" -o "$out/resp_unit" "$out/asan/unit_tests.o" "${lib_asan[@]}"
g++ -o "$out/resp_harness" "$out/opt/harness_server.o" "${lib_opt[@]}"
g++ -o "$out/bench_parser" "$out/opt/bench_parser.o" "${lib_opt[@]}"

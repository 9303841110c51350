# Shared by test/client/run.sh and test/client/versions.sh.  Source it.
#   client_deps                 installs what the client tests need (Debian 12)
#   client_build WORK [--no-examples]
#                               builds WORK/build/client_tests (ASan+UBSan) and the
#                               examples, through a cache (FPC_BUILD_CACHE)
#   client_asan_env WORK        sets ASAN_OPTIONS/UBSAN_OPTIONS (LSan probe)
#   client_suite TITLE ARGS...  runs client_tests ARGS, adds to passed/failed
# Callers define: root, here, work, passed, failed, fail().

client_deps() {
  local pkgs=(build-essential pkg-config libpq-dev nlohmann-json3-dev libcurl4-openssl-dev python3
              openssl locales redis-server redis-tools)
  local missing=() p
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then
    echo "client tests need: ${missing[*]} (run as root, or install them)"
    return 1
  fi
  echo "== installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }
}

client_build() {  # client_build WORK [--no-examples]
  local w=$1 with_examples=1
  [ "${2:-}" = --no-examples ] && with_examples=0
  mkdir -p "$w/build"
  "$root/fallback/embed.sh" "$w/build/gen" || { fail "embed fallback SQL"; return 1; }
  PQ_FLAGS=$(pkg-config --cflags libpq 2>/dev/null || echo "-I$("$PGBIN/pg_config" --includedir)")
  PQ_LIBS=$(pkg-config --libs libpq 2>/dev/null || echo "-lpq")
  CXX=${CXX:-g++}
  CXXFLAGS="-std=c++17 -Wall -Wextra -Werror -O0 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -pthread"
  INC="-I$root/include -I$w/build/gen $PQ_FLAGS"
  cache_dir=${FPC_BUILD_CACHE-$root/build/client-tests}
  # What a binary depends on: the compiler, the flags, libpq's and nlohmann's
  # headers (by version), the source, our headers and the generated fallback.
  deps_key=$( { $CXX --version; echo "$CXXFLAGS $INC $PQ_LIBS"; pkg-config --modversion libpq 2>/dev/null;
                dpkg-query -W -f='${Version}' nlohmann-json3-dev libcurl4-openssl-dev 2>/dev/null;
                cat "$root"/include/fastpgcache/client.hpp "$root"/include/fastpgcache/client/*.hpp \
                    "$w/build/gen/fastpgcache/fallback_sql.hpp"; } | sha256sum | cut -c1-16)
  local pids=() names=() i ex n
  _client_build_one "$w/build/client_tests" "$here/client_tests.cpp" & pids+=($!); names+=(client_tests)
  if [ "$with_examples" = 1 ]; then
    for ex in "$root"/examples/*.cpp; do
      [ -e "$ex" ] || continue
      n=$(basename "$ex" .cpp)
      _client_build_one "$w/build/$n" "$ex" & pids+=($!); names+=("example $n")
    done
  fi
  for i in "${!pids[@]}"; do
    if wait "${pids[$i]}"; then
      echo "ok - builds: ${names[$i]}"; passed=$((passed + 1))
    else
      fail "build ${names[$i]}"
    fi
  done
  [ -x "$w/build/client_tests" ]
}

_client_build_one() {  # OUT SRC
  local key=
  if [ -n "$cache_dir" ]; then
    key=$(sha256sum < "$2" | cut -c1-16)-$deps_key
    if [ -x "$cache_dir/$(basename "$1")-$key" ]; then
      cp "$cache_dir/$(basename "$1")-$key" "$1" && return 0
    fi
  fi
  if $CXX $CXXFLAGS $INC "$2" -o "$1" $PQ_LIBS -lcurl >"$1.log" 2>&1; then
    if [ -n "$key" ] && mkdir -p "$cache_dir" 2>/dev/null; then
      rm -f "$cache_dir/$(basename "$1")"-*
      cp "$1" "$cache_dir/$(basename "$1")-$key.tmp$$" && mv "$cache_dir/$(basename "$1")-$key.tmp$$" "$cache_dir/$(basename "$1")-$key"
    fi
    return 0
  fi
  cat "$1.log"
  return 1
}

# LeakSanitizer needs ptrace (it stops the threads to scan them); where that
# is not permitted (some containers, yama ptrace_scope=3) it aborts every
# program.  Probe with a tiny program first and fall back to detect_leaks=0.
client_asan_env() {
  local w=$1
  if [ -z "${ASAN_OPTIONS:-}" ]; then
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
    printf 'int main(){return 0;}\n' > "$w/lsan_probe.cpp"
    if ! ${CXX:-g++} -fsanitize=address "$w/lsan_probe.cpp" -o "$w/lsan_probe" >/dev/null 2>&1; then
      echo "note: could not build the LeakSanitizer probe; leak detection off"
      ASAN_OPTIONS=detect_leaks=0:abort_on_error=0
    elif ! ASAN_OPTIONS=detect_leaks=1 "$w/lsan_probe" >"$w/lsan_probe.out" 2>&1; then
      echo "note: LeakSanitizer does not work here ($(grep -m1 -i 'LeakSanitizer' "$w/lsan_probe.out" || echo "probe failed")); running with detect_leaks=0"
      ASAN_OPTIONS=detect_leaks=0:abort_on_error=0
    fi
  fi
  export ASAN_OPTIONS
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
}

client_suite() {  # client_suite TITLE ARGS... (env set by caller)
  local title=$1; shift
  echo "== $title"
  local out="$work/suite.out" t0=$SECONDS
  "$work/build/client_tests" "$@" >"$out" 2>"$work/suite.err"
  local rc=$?
  grep -v '^RESULT ' "$out"
  local res
  res=$(grep '^RESULT ' "$out" | tail -1)
  if [ -z "$res" ]; then
    fail "$title: no result (exit $rc)"
    tail -40 "$work/suite.err"
    return
  fi
  set -- $res
  passed=$((passed + $2)); failed=$((failed + $3))
  if [ "$rc" != 0 ] && [ "$3" = 0 ]; then
    fail "$title: exit status $rc"
  fi
  if [ -s "$work/suite.err" ] && grep -q 'Sanitizer\|runtime error' "$work/suite.err"; then
    fail "$title: sanitizer report"
    grep -A30 'Sanitizer\|runtime error' "$work/suite.err" | head -60
  fi
  echo "   ($((SECONDS - t0)) s)"
}

# Prints a free TCP port on 127.0.0.1.
client_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

#!/usr/bin/env bash
# Client tests: builds the C++ client tests and examples (ASan+UBSan), starts a
# throwaway PostgreSQL 15 cluster (scram-sha-256 on 127.0.0.1) and a fake
# Databricks workspace, and runs the suites:
#   1. extension mode     (only if the fastpgcache extension is installed)
#   2. forced fallback    (Options::use_extension = false)
#   3. real fallback      (a non-superuser role: CREATE EXTENSION is refused,
#                          or the extension is not available at all)
#   4. misc               (connection-string errors, TLS defaults, the extension
#                          in another schema, a hijacked fallback table)
#   5. Databricks         (PAT, M2M, profiles, env, revocation, endpoint down,
#                          32-thread soak while the credential rotates)
# Env: FPC_SOAK_SECONDS (default 60), PGBIN (default /usr/lib/postgresql/15/bin),
#      CXX (default g++), FPC_BUILD_CACHE (default build/client-tests under the
#      repository: binaries are rebuilt only when a source, header or flag
#      changes; empty = always rebuild).  Ends with a line "N passed, M failed".
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
CXX=${CXX:-g++}
export FPC_SOAK_SECONDS=${FPC_SOAK_SECONDS:-60}
start=$(date +%s)

work=$(mktemp -d /tmp/fpc-client-test.XXXXXX)
chmod 755 "$work"
fake_pid=
as_pg() { "$@"; }
if [ "$(id -u)" = 0 ]; then
    chown postgres: "$work"
    as_pg() { runuser -u postgres -- "$@"; }
fi

cleanup() {
    [ -n "$fake_pid" ] && kill "$fake_pid" 2>/dev/null && wait "$fake_pid" 2>/dev/null
    if [ -f "$work/data/postmaster.pid" ]; then
        as_pg "$PGBIN/pg_ctl" -D "$work/data" -m immediate -w stop >/dev/null 2>&1
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

passed=0
failed=0
fail() { echo "FAIL: $*"; failed=$((failed + 1)); }

# ---------------------------------------------------------------- build
echo "== build (ASan+UBSan)"
mkdir -p "$work/build"
"$root/fallback/embed.sh" "$work/build/gen" || { fail "embed fallback SQL"; echo "$passed passed, $failed failed"; exit 1; }
PQ_FLAGS=$(pkg-config --cflags libpq 2>/dev/null || echo "-I$("$PGBIN/pg_config" --includedir)")
PQ_LIBS=$(pkg-config --libs libpq 2>/dev/null || echo "-lpq")
CXXFLAGS="-std=c++17 -Wall -Wextra -Werror -O0 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -pthread"
INC="-I$root/include -I$work/build/gen $PQ_FLAGS"
cache_dir=${FPC_BUILD_CACHE-$root/build/client-tests}
# What a binary depends on: the compiler, the flags, libpq's and nlohmann's
# headers (by version), the source, our headers and the generated fallback.
deps_key=$( { $CXX --version; echo "$CXXFLAGS $INC $PQ_LIBS"; pkg-config --modversion libpq 2>/dev/null;
              dpkg-query -W -f='${Version}' nlohmann-json3-dev libcurl4-openssl-dev 2>/dev/null;
              cat "$root"/include/fastpgcache/*.hpp "$root"/include/fastpgcache/client/*.hpp "$work/build/gen/fastpgcache/fallback_sql.hpp"; } | sha256sum | cut -c1-16)
build() {  # build OUT SRC
    local key=
    if [ -n "$cache_dir" ]; then
        key=$(cat "$2" | sha256sum | cut -c1-16)-$deps_key
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
pids=()
names=()
build "$work/build/client_tests" "$here/client_tests.cpp" & pids+=($!); names+=(client_tests)
for ex in "$root"/examples/*.cpp; do
    [ -e "$ex" ] || continue
    n=$(basename "$ex" .cpp)
    build "$work/build/$n" "$ex" & pids+=($!); names+=("example $n")
done
for i in "${!pids[@]}"; do
    if wait "${pids[$i]}"; then
        echo "ok - builds: ${names[$i]}"; passed=$((passed + 1))
    else
        fail "build ${names[$i]}"
    fi
done
if [ ! -x "$work/build/client_tests" ]; then
    echo "$passed passed, $failed failed"
    exit 1
fi
echo "   build took $(( $(date +%s) - start )) s"

# ---------------------------------------------------------------- cluster
echo "== PostgreSQL cluster"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
sock="$work/sock"
mkdir -p "$sock" && { [ "$(id -u)" != 0 ] || chown postgres: "$sock"; }
superpw="super-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
apppw="app-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
printf '%s\n' "$superpw" > "$work/pwfile"
[ "$(id -u)" != 0 ] || chown postgres: "$work/pwfile"
as_pg "$PGBIN/initdb" -D "$work/data" -U postgres --pwfile="$work/pwfile" -E UTF8 --locale=C \
    --auth-local=trust --auth-host=scram-sha-256 >"$work/initdb.log" 2>&1 || { cat "$work/initdb.log"; fail initdb; echo "$passed passed, $failed failed"; exit 1; }
cat >> "$work/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$sock'
max_connections = 150
password_encryption = 'scram-sha-256'
fsync = off
CONF
as_pg "$PGBIN/pg_ctl" -D "$work/data" -l "$work/postgres.log" -w start >/dev/null || { cat "$work/postgres.log"; fail "pg_ctl start"; echo "$passed passed, $failed failed"; exit 1; }
PSQL=("$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$sock" -p "$port" -U postgres)
"${PSQL[@]}" -d postgres >/dev/null <<SQL || fail "create roles/databases"
CREATE ROLE app LOGIN PASSWORD '$apppw';
CREATE ROLE dbx LOGIN PASSWORD 'initial-unknown-$RANDOM$RANDOM';
CREATE DATABASE ext_db;
CREATE DATABASE fb_forced;
CREATE DATABASE fb_real OWNER app;
CREATE DATABASE dbx_db OWNER dbx;
SQL
export FPC_HOST=127.0.0.1 FPC_PORT=$port FPC_TMP=$work
export FPC_SUPER_CONNINFO="host=$sock port=$port user=postgres dbname=postgres"
# LeakSanitizer needs ptrace (it stops the threads to scan them); where that
# is not permitted (some containers, yama ptrace_scope=3) it aborts every
# program.  Probe with a tiny program first and fall back to detect_leaks=0.
if [ -z "${ASAN_OPTIONS:-}" ]; then
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
    printf 'int main(){return 0;}\n' > "$work/lsan_probe.cpp"
    if ! $CXX -fsanitize=address "$work/lsan_probe.cpp" -o "$work/lsan_probe" >/dev/null 2>&1; then
        echo "note: could not build the LeakSanitizer probe; leak detection off"
        ASAN_OPTIONS=detect_leaks=0:abort_on_error=0
    elif ! ASAN_OPTIONS=detect_leaks=1 "$work/lsan_probe" >"$work/lsan_probe.out" 2>&1; then
        echo "note: LeakSanitizer does not work here ($(grep -m1 -i 'LeakSanitizer' "$work/lsan_probe.out" || echo "probe failed")); running with detect_leaks=0"
        ASAN_OPTIONS=detect_leaks=0:abort_on_error=0
    fi
fi
export ASAN_OPTIONS
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

run_suite() {  # run_suite TITLE ARGS... (env set by caller)
    local title=$1; shift
    echo "== $title"
    local out="$work/suite.out"
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
}

control="$("$PGBIN/pg_config" --sharedir)/extension/fastpgcache.control"
if [ -f "$control" ]; then
    FPC_DB=ext_db FPC_USER=postgres FPC_PASSWORD=$superpw FPC_EXPECT_BACKEND=extension FPC_USE_EXTENSION=1 \
        run_suite "API, extension (superuser: CREATE EXTENSION)" api
else
    echo "== API, extension: skipped (fastpgcache extension not installed: $control)"
fi
FPC_DB=fb_forced FPC_USER=postgres FPC_PASSWORD=$superpw FPC_EXPECT_BACKEND=fallback FPC_USE_EXTENSION=0 \
    run_suite "API, SQL fallback forced (use_extension=false)" api
FPC_DB=fb_real FPC_USER=app FPC_PASSWORD=$apppw FPC_EXPECT_BACKEND=fallback FPC_USE_EXTENSION=1 \
    run_suite "API, SQL fallback because CREATE EXTENSION fails (non-superuser role)" api
FPC_DB=postgres FPC_USER=postgres FPC_PASSWORD=$superpw FPC_SUPER_PASSWORD=$superpw FPC_APP_PASSWORD=$apppw \
FPC_EXT_AVAILABLE=$([ -f "$control" ] && echo 1 || echo 0) \
    run_suite "misc: connection strings, TLS defaults, extension schemas, hijacked fallback table" misc

# ---------------------------------------------------------------- fake Databricks
echo "== fake Databricks workspace"
pat="dapi-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
cid="sp-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
csecret="dose-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
python3 "$here/fake_databricks.py" --port-file "$work/fake.port" --pghost "$sock" --pgport "$port" \
    --psql "$PGBIN/psql" --role dbx --instance test-instance --pat "$pat" --client-id "$cid" \
    --client-secret "$csecret" >"$work/fake.log" 2>&1 &
fake_pid=$!
for _ in $(seq 100); do [ -s "$work/fake.port" ] && break; sleep 0.1; done
if [ -s "$work/fake.port" ]; then
    FPC_DB=dbx_db FPC_USER=dbx FPC_PASSWORD= FPC_USE_EXTENSION=1 \
    FPC_DBX_URL="http://127.0.0.1:$(cat "$work/fake.port")" FPC_DBX_PAT=$pat FPC_DBX_CLIENT_ID=$cid \
    FPC_DBX_CLIENT_SECRET=$csecret FPC_DBX_INSTANCE=test-instance \
        run_suite "Databricks token rotation (soak ${FPC_SOAK_SECONDS} s)" databricks
else
    fail "fake Databricks server did not start"; cat "$work/fake.log"
fi

# Examples that need only a PostgreSQL server run against the fallback database.
echo "== examples"
for ex in basic_usage connection_string context_manager advanced_usage; do
    [ -x "$work/build/$ex" ] || continue
    if FASTPGCACHE_URL="postgresql://app:$apppw@127.0.0.1:$port/fb_real" "$work/build/$ex" >"$work/ex.out" 2>&1; then
        echo "ok - example runs: $ex"; passed=$((passed + 1))
    else
        fail "example $ex"; cat "$work/ex.out"
    fi
done
if [ -x "$work/build/databricks_token_example" ] && [ -s "$work/fake.port" ]; then
    if DATABRICKS_HOST="http://127.0.0.1:$(cat "$work/fake.port")" DATABRICKS_TOKEN=$pat HOME="$work" \
       FASTPGCACHE_INSTANCE=test-instance FASTPGCACHE_PGHOST=127.0.0.1 FASTPGCACHE_PGPORT=$port \
       FASTPGCACHE_PGUSER=dbx FASTPGCACHE_PGDATABASE=dbx_db \
       "$work/build/databricks_token_example" >"$work/ex.out" 2>&1; then
        echo "ok - example runs: databricks_token_example"; passed=$((passed + 1))
    else
        fail "example databricks_token_example"; cat "$work/ex.out"
    fi
fi

echo "== client tests took $(( $(date +%s) - start )) s"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]

#!/usr/bin/env bash
# Client tests: builds the C++ client tests and examples (ASan+UBSan), starts a
# throwaway PostgreSQL cluster (scram-sha-256 on 127.0.0.1, TLS with a test
# CA), a fake Databricks workspace (and a fake Databricks CLI), a reference
# redis-server (the commands are compared with its answers), a relay that plays a man in the middle, and a second cluster
# that speaks German, and runs the suites:
#   1. extension mode     (only if the fastpgcache extension is installed)
#   2. forced fallback    (Options::use_extension = false)
#   3. real fallback      (a non-superuser role: CREATE EXTENSION is refused,
#                          or the extension is not available at all)
#   4. misc               (connection strings, TLS rules, lc_messages, extension
#                          schemas, odd replies, a hijacked fallback table)
#   4b. upgrade           (fastpgcache 1.0 on the server: the 1.1 commands' 42883
#                          messages; setup() upgrading a 1.0 fallback in place)
#   5. Databricks         (Autoscaling and Provisioned APIs, PAT, M2M, CLI,
#                          unified auth order, revocation, backoff, deadlines,
#                          32-thread soak while the credential rotates)
#   6. frozen server      (SIGSTOP of the postmaster and backends: deadlines)
#   7. server restart     (crash restart: empty cache, re-prepared statements)
# Env: FPC_SOAK_SECONDS (default 20), PGBIN (default /usr/lib/postgresql/15/bin),
#      CXX (default g++), FPC_BUILD_CACHE (default build/client-tests under the
#      repository: binaries are rebuilt only when a source, header or flag
#      changes; empty = always rebuild).  Ends with a line "N passed, M failed".
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
export FPC_SOAK_SECONDS=${FPC_SOAK_SECONDS:-20}
start=$(date +%s)
source "$here/lib.sh"

work=$(mktemp -d /tmp/fpc-client-test.XXXXXX)
chmod 755 "$work"
bg_pids=()
as_pg() { "$@"; }
if [ "$(id -u)" = 0 ]; then
    chown postgres: "$work"
    as_pg() { runuser -u postgres -- "$@"; }
fi

thaw() {  # SIGCONT a cluster's processes (after the freeze suite, whatever happened)
    local pm
    pm=$(head -1 "$1/postmaster.pid" 2>/dev/null) || return 0
    [ -n "$pm" ] || return 0
    kill -CONT "$pm" 2>/dev/null
    for p in /proc/[0-9]*; do
        [ "$(awk '{print $4}' "$p/stat" 2>/dev/null)" = "$pm" ] && kill -CONT "${p#/proc/}" 2>/dev/null
    done
    return 0
}
cleanup() {
    for p in "${bg_pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
    for d in "$work/data" "$work/data-de"; do
        if [ -f "$d/postmaster.pid" ]; then
            thaw "$d"
            as_pg "$(cat "$d.bin" 2>/dev/null || echo "$PGBIN")/pg_ctl" -D "$d" -m immediate -w stop >/dev/null 2>&1
        fi
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

passed=0
failed=0
fail() { echo "FAIL: $*"; failed=$((failed + 1)); }

client_deps || { fail "installing the client tests' dependencies"; echo "$passed passed, $failed failed"; exit 1; }

# ---------------------------------------------------------------- build
echo "== build (ASan+UBSan)"
if ! client_build "$work"; then
    echo "$passed passed, $failed failed"
    exit 1
fi
echo "   build took $(( $(date +%s) - start )) s"

# ---------------------------------------------------------------- TLS material
# A test CA and a server certificate for the name fpc-tls.test (reached
# through hostaddr=127.0.0.1).
tls_host=fpc-tls.test
mkdir -p "$work/tls"
(
    cd "$work/tls" &&
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj "/CN=fastpgcache test CA" &&
    openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "/CN=$tls_host" &&
    printf 'subjectAltName=DNS:%s\n' "$tls_host" > ext.cnf &&
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 -extfile ext.cnf
) >"$work/tls.log" 2>&1 || { cat "$work/tls.log"; fail "test certificates"; }
chmod 600 "$work/tls/server.key"
[ "$(id -u)" != 0 ] || chown postgres: "$work/tls/server.key" "$work/tls/server.crt"

# ---------------------------------------------------------------- cluster
echo "== PostgreSQL cluster"
port=$(client_free_port)
sock="$work/sock"
mkdir -p "$sock" && { [ "$(id -u)" != 0 ] || chown postgres: "$sock"; }
superpw="super-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
apppw="app-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
tlspw="tls-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
printf '%s\n' "$superpw" > "$work/pwfile"
[ "$(id -u)" != 0 ] || chown postgres: "$work/pwfile"
echo "$PGBIN" > "$work/data.bin"
as_pg "$PGBIN/initdb" -D "$work/data" -U postgres --pwfile="$work/pwfile" -E UTF8 --locale=C \
    --auth-local=trust --auth-host=scram-sha-256 >"$work/initdb.log" 2>&1 || { cat "$work/initdb.log"; fail initdb; echo "$passed passed, $failed failed"; exit 1; }
cat >> "$work/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$sock'
max_connections = 150
password_encryption = 'scram-sha-256'
fsync = off
ssl = on
ssl_cert_file = '$work/tls/server.crt'
ssl_key_file = '$work/tls/server.key'
CONF
# The TLS role authenticates with a clear-text password, so that a
# connection without TLS would expose it.
{ echo "host all tlsuser 127.0.0.1/32 password"; cat "$work/data/pg_hba.conf"; } > "$work/pg_hba.new" &&
    cat "$work/pg_hba.new" > "$work/data/pg_hba.conf"
as_pg "$PGBIN/pg_ctl" -D "$work/data" -l "$work/postgres.log" -w start >/dev/null || { cat "$work/postgres.log"; fail "pg_ctl start"; echo "$passed passed, $failed failed"; exit 1; }
PSQL=("$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$sock" -p "$port" -U postgres)
"${PSQL[@]}" -d postgres >/dev/null <<SQL || fail "create roles/databases"
CREATE ROLE app LOGIN PASSWORD '$apppw';
CREATE ROLE dbx LOGIN PASSWORD 'initial-unknown-$RANDOM$RANDOM';
CREATE ROLE tlsuser LOGIN PASSWORD '$tlspw';
CREATE DATABASE ext_db;
CREATE DATABASE fb_forced;
CREATE DATABASE fb_real OWNER app;
CREATE DATABASE dbx_db OWNER dbx;
SQL
export FPC_HOST=127.0.0.1 FPC_PORT=$port FPC_TMP=$work
export FPC_SUPER_CONNINFO="host=$sock port=$port user=postgres dbname=postgres"
client_asan_env "$work"

# ---------------------------------------------------------------- helpers
# The reference redis-server (Redis semantics of multi-key DEL/EXISTS).
redis_port=$(client_free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --daemonize no >"$work/redis.log" 2>&1 &
bg_pids+=($!)
for _ in $(seq 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
redis-cli -p "$redis_port" ping >/dev/null 2>&1 && export FPC_REDIS_PORT=$redis_port || fail "redis-server did not start"

# A relay that answers "no SSL" to SSLRequest (a man in the middle).
python3 "$here/tcp_recorder.py" --port-file "$work/rec.port" --target-port "$port" --record "$work/rec.bin" --refuse-ssl \
    >"$work/rec.log" 2>&1 &
bg_pids+=($!)
for _ in $(seq 50); do [ -s "$work/rec.port" ] && break; sleep 0.1; done
export FPC_RECORDER_PORT=$(cat "$work/rec.port" 2>/dev/null) FPC_RECORD_FILE=$work/rec.bin
export FPC_TLS_CA=$work/tls/ca.crt FPC_TLS_HOSTNAME=$tls_host FPC_TLS_USER=tlsuser FPC_TLS_PASSWORD=$tlspw

# A second cluster whose messages are German (lc_messages), built with the
# system's PostgreSQL 15 (whose translations it finds) and a private copy of
# the de_DE.UTF-8 locale (LOCPATH), so nothing is installed system-wide.
de_bin=/usr/lib/postgresql/15/bin
if [ -x "$de_bin/postgres" ] && mkdir -p "$work/locale" &&
   localedef -i de_DE -c -f UTF-8 "$work/locale/de_DE.UTF-8" >"$work/localedef.log" 2>&1; then
    chmod -R a+rX "$work/locale"
    de_port=$(client_free_port)
    depw="de-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
    printf '%s\n' "$depw" > "$work/pwfile-de"
    [ "$(id -u)" != 0 ] || chown postgres: "$work/pwfile-de"
    echo "$de_bin" > "$work/data-de.bin"
    if as_pg "$de_bin/initdb" -D "$work/data-de" -U postgres --pwfile="$work/pwfile-de" -E UTF8 --locale=C \
           --auth-local=trust --auth-host=scram-sha-256 >"$work/initdb-de.log" 2>&1; then
        printf "listen_addresses = '127.0.0.1'\nport = %s\nunix_socket_directories = '%s'\nfsync = off\nlc_messages = 'de_DE.UTF-8'\n" \
            "$de_port" "$sock" >> "$work/data-de/postgresql.conf"
        if as_pg env LOCPATH="$work/locale" "$de_bin/pg_ctl" -D "$work/data-de" -l "$work/postgres-de.log" -w start >/dev/null; then
            export FPC_DE_PORT=$de_port FPC_DE_USER=postgres FPC_DE_PASSWORD=$depw
        else
            cat "$work/postgres-de.log"
        fi
    else
        cat "$work/initdb-de.log"
    fi
else
    echo "note: no German cluster (system PostgreSQL 15 or localedef missing): $(cat "$work/localedef.log" 2>/dev/null | head -3)"
fi

# ---------------------------------------------------------------- suites
control="$("$PGBIN/pg_config" --sharedir)/extension/fastpgcache.control"
if [ -f "$control" ]; then
    FPC_DB=ext_db FPC_USER=postgres FPC_PASSWORD=$superpw FPC_EXPECT_BACKEND=extension FPC_USE_EXTENSION=1 \
        client_suite "API, extension (superuser: CREATE EXTENSION)" api
else
    echo "== API, extension: skipped (fastpgcache extension not installed: $control)"
fi
FPC_DB=fb_forced FPC_USER=postgres FPC_PASSWORD=$superpw FPC_EXPECT_BACKEND=fallback FPC_USE_EXTENSION=0 \
    client_suite "API, SQL fallback forced (use_extension=false)" api
FPC_DB=fb_real FPC_USER=app FPC_PASSWORD=$apppw FPC_EXPECT_BACKEND=fallback FPC_USE_EXTENSION=1 \
    client_suite "API, SQL fallback because CREATE EXTENSION fails (non-superuser role)" api
FPC_DB=postgres FPC_USER=postgres FPC_PASSWORD=$superpw FPC_SUPER_PASSWORD=$superpw FPC_APP_PASSWORD=$apppw \
FPC_EXT_AVAILABLE=$([ -f "$control" ] && echo 1 || echo 0) \
    client_suite "misc: connection strings, TLS rules, lc_messages, extension schemas, odd replies, hijacked fallback table" misc
FPC_DB=postgres FPC_USER=postgres FPC_SUPER_PASSWORD=$superpw FPC_APP_PASSWORD=$apppw \
FPC_EXT_AVAILABLE=$([ -f "$control" ] && echo 1 || echo 0) FPC_FALLBACK10=$here/fallback-1.0.sql FPC_FALLBACK11=$root/fallback/fastpgcache_fallback.sql \
    client_suite "fastpgcache 1.0 on the server: 42883 messages, setup() upgrading a 1.0 fallback, extension 1.0 -> 1.1" upgrade

# ---------------------------------------------------------------- fake Databricks
echo "== fake Databricks workspace"
pat="dapi-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
cid="sp-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
csecret="dose-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
endpoint="projects/fpc-test/branches/main/endpoints/ep-primary"
python3 "$here/fake_databricks.py" --port-file "$work/fake.port" --pghost "$sock" --pgport "$port" \
    --psql "$PGBIN/psql" --role dbx --instance test-instance --endpoint "$endpoint" --pat "$pat" --client-id "$cid" \
    --client-secret "$csecret" >"$work/fake.log" 2>&1 &
bg_pids+=($!)
mkdir -p "$work/cli-bin" && ln -s "$here/fake_databricks_cli" "$work/cli-bin/databricks"
for _ in $(seq 100); do [ -s "$work/fake.port" ] && break; sleep 0.1; done
if [ -s "$work/fake.port" ]; then
    FPC_DB=dbx_db FPC_USER=dbx FPC_PASSWORD= FPC_USE_EXTENSION=1 \
    FPC_DBX_URL="http://127.0.0.1:$(cat "$work/fake.port")" FPC_DBX_PAT=$pat FPC_DBX_CLIENT_ID=$cid \
    FPC_DBX_CLIENT_SECRET=$csecret FPC_DBX_INSTANCE=test-instance FPC_DBX_ENDPOINT=$endpoint FPC_FAKE_CLI_DIR=$work/cli-bin \
        client_suite "Databricks: Autoscaling/Provisioned, auth order, CLI, backoff, deadlines (soak ${FPC_SOAK_SECONDS} s)" databricks
else
    fail "fake Databricks server did not start"; cat "$work/fake.log"
fi

# Examples that need only a PostgreSQL server run against the fallback database.
echo "== examples"
for ex in basic_usage connection_string context_manager advanced_usage rate_limiter key_scan; do
    [ -x "$work/build/$ex" ] || continue
    if FASTPGCACHE_URL="postgresql://app:$apppw@127.0.0.1:$port/fb_real" "$work/build/$ex" >"$work/ex.out" 2>&1; then
        echo "ok - example runs: $ex"; passed=$((passed + 1))
    else
        fail "example $ex"; cat "$work/ex.out"
    fi
done
if [ -x "$work/build/databricks_token_example" ] && [ -s "$work/fake.port" ]; then
    if DATABRICKS_HOST="http://127.0.0.1:$(cat "$work/fake.port")" DATABRICKS_TOKEN=$pat HOME="$work" \
       FASTPGCACHE_ENDPOINT=$endpoint FASTPGCACHE_PGHOST=127.0.0.1 FASTPGCACHE_PGPORT=$port \
       FASTPGCACHE_PGUSER=dbx FASTPGCACHE_PGDATABASE=dbx_db \
       "$work/build/databricks_token_example" >"$work/ex.out" 2>&1; then
        echo "ok - example runs: databricks_token_example"; passed=$((passed + 1))
    else
        fail "example databricks_token_example"; cat "$work/ex.out"
    fi
fi

# ---------------------------------------------------------------- server failures
FPC_DB=fb_forced FPC_USER=postgres FPC_PASSWORD=$superpw FPC_USE_EXTENSION=0 FPC_PGDATA=$work/data \
    client_suite "frozen server (SIGSTOP of the postmaster and backends)" freeze
thaw "$work/data"
FPC_DB=fb_forced FPC_USER=postgres FPC_PASSWORD=$superpw FPC_USE_EXTENSION=0 \
FPC_RESTART_CMD="$( [ "$(id -u)" = 0 ] && echo "runuser -u postgres -- ")$PGBIN/pg_ctl -D $work/data -m immediate -w stop >/dev/null && $( [ "$(id -u)" = 0 ] && echo "runuser -u postgres -- ")$PGBIN/pg_ctl -D $work/data -l $work/postgres.log -w start >/dev/null" \
    client_suite "server restart (crash restart: empty UNLOGGED table, new sessions)" restart

echo "== client tests took $(( $(date +%s) - start )) s"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]

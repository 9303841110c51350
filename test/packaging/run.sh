#!/usr/bin/env bash
# Packaging tests: every install route of the README, checked as a user would.
#   1. CMake: install the client (cmake --install) into a private prefix; only
#      client headers are installed; an outside CMake project builds with
#      find_package(fastpgcache) + fastpgcache::client, and runs.
#   2. pkg-config: the same program built with `pkg-config --cflags --libs
#      fastpgcache` against the installed files, and run.
#   3. The README's build line for the examples, run as written.
#   4. META.json (PGXN): valid, consistent with the control file and the
#      Debian changelog; the distribution archive carries it.
#   5. Debian: dpkg-buildpackage with debian/ (pg_buildext) produces
#      postgresql-15-fastpgcache; its files are where PostgreSQL 15 looks.
#   6. apt-get install ./postgresql-15-fastpgcache_*.deb, then CREATE
#      EXTENSION works on a cluster of the system's PostgreSQL 15, then the
#      package is purged.  This changes the machine's system tree, so it runs
#      only on a throwaway machine: when CI=true (CI and
#      ../shared/tools/fresh-debian set it) or FPC_PACKAGING_SYSTEM_INSTALL=1.
#      Elsewhere it is reported as skipped, with the reason, not as passed.
# Env: PGBIN (default: pg_config --bindir), FPC_PACKAGING_SKIP_DEB=1 skips 5-6.
# Ends with "N passed, M failed, K skipped".
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
source "$root/scripts/lib.sh"
PGBIN=${PGBIN:-$PG_BINDIR}
start=$SECONDS

work=$(mktemp -d /tmp/fpc-packaging.XXXXXX)
chmod 755 "$work"
installed_pkg=0
cleanup() {
    cluster_stop "$work/pg" 2>/dev/null
    [ -f "$work/syspg/data/postmaster.pid" ] && as_pg /usr/lib/postgresql/15/bin/pg_ctl -D "$work/syspg/data" -m fast -w stop >/dev/null 2>&1
    if [ "$installed_pkg" = 1 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get purge -y -q postgresql-15-fastpgcache >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

passed=0
failed=0
skipped=0
ok() { echo "ok - $*"; passed=$((passed + 1)); }
fail() { echo "not ok - $*"; failed=$((failed + 1)); }
skip() { echo "skip - $*"; skipped=$((skipped + 1)); }
finish() {
    echo "== packaging tests took $((SECONDS - start)) s"
    echo "$passed passed, $failed failed, $skipped skipped"
    [ "$failed" = 0 ]
    exit
}

# ---------------------------------------------------------------- dependencies
need=(build-essential pkg-config cmake libpq-dev nlohmann-json3-dev libcurl4-openssl-dev python3
      debhelper dpkg-dev postgresql-server-dev-all postgresql-server-dev-15)
missing=()
for p in "${need[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        fail "missing packages: ${missing[*]} (run as root or install them)"
        finish
    fi
    echo "== installing ${missing[*]}"
    { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" ||
      { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"; }
    } >"$work/apt.log" 2>&1 || { cat "$work/apt.log"; fail "installing ${missing[*]}"; finish; }
fi

# A source tree without build products (a clean clone, as a user has it).
mkdir -p "$work/src"
if git -C "$root" rev-parse --git-dir >/dev/null 2>&1; then
    git -C "$root" ls-files -z --cached --others --exclude-standard | (cd "$root" && xargs -0 tar -cf - 2>/dev/null) | tar -C "$work/src" -xf -
else
    (cd "$root" && tar --exclude=.git --exclude=build -cf - .) | tar -C "$work/src" -xf -
fi

# A throwaway cluster for the programs to talk to.
port=$(free_port)
cluster_start "$work/pg" "$port" >/dev/null || { fail "cluster start"; finish; }
conninfo="host=$work/pg/sock port=$port dbname=postgres user=postgres"

# ---------------------------------------------------------------- 1. CMake
echo "== CMake install of the client"
prefix=$work/prefix
if cmake -S "$work/src" -B "$work/cmake-build" -DCMAKE_INSTALL_PREFIX="$prefix" >"$work/cmake.log" 2>&1 &&
   cmake --install "$work/cmake-build" >>"$work/cmake.log" 2>&1; then
    ok "cmake configure + cmake --install"
else
    cat "$work/cmake.log"; fail "cmake configure + install"; finish
fi
(cd "$prefix" && find . -type f | sort) > "$work/installed.txt"
unexpected=$(grep '^./include/' "$work/installed.txt" |
             grep -v -E '^./include/fastpgcache/(client\.hpp|fallback_sql\.hpp|client/[a-z_]+\.hpp)$' || true)
if [ -z "$unexpected" ] && grep -q '^./include/fastpgcache/client/cache.hpp$' "$work/installed.txt"; then
    ok "only the client's headers are installed ($(grep -c '^./include/' "$work/installed.txt") files under include/)"
else
    fail "installed headers other than the client's: $unexpected"
fi
for f in share/cmake/fastpgcache/fastpgcacheConfig.cmake share/cmake/fastpgcache/fastpgcacheConfigVersion.cmake \
         share/cmake/fastpgcache/fastpgcacheTargets.cmake share/pkgconfig/fastpgcache.pc share/fastpgcache/fastpgcache_fallback.sql; do
    [ -f "$prefix/$f" ] && ok "installed $f" || fail "missing $f"
done

# The three builds below run in parallel.
echo "== building against the installed files"
( cmake -S "$work/src/test/packaging/consumer" -B "$work/consumer-cmake" -DCMAKE_PREFIX_PATH="$prefix" >"$work/consumer-cmake.log" 2>&1 &&
  cmake --build "$work/consumer-cmake" >>"$work/consumer-cmake.log" 2>&1 ) & pid_cmake=$!
( export PKG_CONFIG_PATH="$prefix/share/pkgconfig"
  g++ -std=c++17 -Wall -Wextra -Werror "$work/src/test/packaging/consumer/main.cpp" -o "$work/consumer-pc" \
      $(pkg-config --cflags --libs fastpgcache) >"$work/consumer-pc.log" 2>&1 ) & pid_pc=$!
readme_line=$(grep -m1 -E '^g\+\+ .*examples/basic_usage\.cpp' "$work/src/README.md" || true)
( [ -n "$readme_line" ] && cd "$work/src" && bash -c "$readme_line" >"$work/readme-build.log" 2>&1 ) & pid_readme=$!

if wait $pid_cmake && [ -x "$work/consumer-cmake/consumer" ]; then
    ok "an outside CMake project builds with find_package(fastpgcache) + fastpgcache::client"
    out=$("$work/consumer-cmake/consumer" "$conninfo" 2>&1)
    [ "$out" = "consumer ok fallback with Databricks" ] && ok "and runs: $out" || fail "the CMake-built consumer: $out"
else
    cat "$work/consumer-cmake.log"; fail "outside CMake project"
fi
if wait $pid_pc && [ -x "$work/consumer-pc" ]; then
    ok "the same program builds with pkg-config --cflags --libs fastpgcache"
    out=$("$work/consumer-pc" "$conninfo" 2>&1)
    [ "$out" = "consumer ok fallback with Databricks" ] && ok "and runs: $out" || fail "the pkg-config-built consumer: $out"
else
    cat "$work/consumer-pc.log"; fail "pkg-config build"
fi

# ---------------------------------------------------------------- 3. README build line
if [ -z "$readme_line" ]; then
    fail "README.md has no build line for examples/basic_usage.cpp (a line starting with g++)"
elif wait $pid_readme && [ -x "$work/src/basic_usage" ]; then
    ok "the README's build line works as written: $readme_line"
    out=$(cd "$work/src" && FASTPGCACHE_FALLBACK_SQL="$work/src/fallback/fastpgcache_fallback.sql" \
          FASTPGCACHE_URL="postgresql://postgres@/postgres?host=$work/pg/sock&port=$port" ./basic_usage 2>&1)
    echo "$out" | grep -q '^greeting: hello$' && ok "and the program it builds runs" || fail "basic_usage from the README line: $out"
else
    cat "$work/readme-build.log"; fail "the README's build line: $readme_line"
fi

# ---------------------------------------------------------------- 4. META.json
echo "== META.json (PGXN)"
if python3 - "$work/src" <<'PY'
import json, re, sys, os
src = sys.argv[1]
meta = json.load(open(os.path.join(src, "META.json")))
errors = []
for key in ("name", "abstract", "version", "maintainer", "license", "provides", "meta-spec"):
    if key not in meta:
        errors.append("missing " + key)
semver = re.compile(r"^\d+\.\d+\.\d+$")
if not semver.match(meta.get("version", "")):
    errors.append("version is not semver: %r" % meta.get("version"))
control = open(os.path.join(src, "fastpgcache.control")).read()
default = re.search(r"default_version\s*=\s*'([^']+)'", control).group(1)
prov = meta.get("provides", {}).get("fastpgcache", {})
if not prov.get("version", "").startswith(default + "."):
    errors.append("provides.fastpgcache.version %r does not match default_version %r" % (prov.get("version"), default))
if not os.path.exists(os.path.join(src, prov.get("file", "-"))):
    errors.append("provides.fastpgcache.file %r does not exist" % prov.get("file"))
changelog = open(os.path.join(src, "debian/changelog")).readline()
deb = re.match(r"fastpgcache \(([^)-]+)", changelog).group(1)
if deb != meta["version"]:
    errors.append("debian/changelog version %s != META.json %s" % (deb, meta["version"]))
if meta.get("meta-spec", {}).get("version") != "1.0.0":
    errors.append("meta-spec version")
print("\n".join(errors))
sys.exit(1 if errors else 0)
PY
then
    ok "META.json: required keys, semver, matches fastpgcache.control and debian/changelog"
else
    fail "META.json"
fi
if git -C "$root" rev-parse --git-dir >/dev/null 2>&1; then
    ver=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' "$work/src/META.json")
    git -C "$root" archive --format=tar --prefix="fastpgcache-$ver/" HEAD 2>/dev/null | tar -tf - > "$work/archive.txt" 2>/dev/null
    if grep -qx "fastpgcache-$ver/META.json" "$work/archive.txt"; then
        ok "the PGXN distribution archive (git archive --prefix=fastpgcache-$ver/) carries META.json at its top"
    else
        skip "PGXN archive: META.json is not committed yet (git archive HEAD)"
    fi
else
    skip "PGXN archive: not a git checkout"
fi

# ---------------------------------------------------------------- 5. Debian package
if [ "${FPC_PACKAGING_SKIP_DEB:-0}" = 1 ]; then
    skip "Debian package (FPC_PACKAGING_SKIP_DEB=1)"
    finish
fi
echo "== Debian package (dpkg-buildpackage, pg_buildext)"
cp -a "$work/src" "$work/debsrc"
# The build runs the pg_regress suite against the built package (dh_pgxs_test:
# pg_buildext installcheck in a pg_virtualenv cluster), as Debian builds do.
# A clean environment, as a packager's shell: the PG* variables of the test
# run (PGPORT of a live cluster, ...) would otherwise reach pg_virtualenv.
if (cd "$work/debsrc" && env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME="${HOME:-/root}" \
        LANG=C.UTF-8 DEB_BUILD_OPTIONS="parallel=2" dpkg-buildpackage -b -us -uc) >"$work/deb.log" 2>&1; then
    ok "dpkg-buildpackage -b builds"
    grep -q 'All [0-9]* tests passed' "$work/deb.log" && ok "and its dh_pgxs_test step ran the regression suite: $(grep -o 'All [0-9]* tests passed' "$work/deb.log" | head -1)" ||
        fail "dh_pgxs_test did not report the regression suite passing"
else
    grep -A40 'installcheck' "$work/deb.log" | tail -60; tail -20 "$work/deb.log"; fail "dpkg-buildpackage"; finish
fi
deb=$(ls "$work"/postgresql-15-fastpgcache_*.deb 2>/dev/null | head -1)
if [ -n "$deb" ]; then
    ok "it produced $(basename "$deb")"
else
    ls "$work"; fail "no postgresql-15-fastpgcache_*.deb"; finish
fi
contents=$(dpkg-deb -c "$deb")
for f in ./usr/lib/postgresql/15/lib/fastpgcache.so ./usr/share/postgresql/15/extension/fastpgcache.control \
         ./usr/share/postgresql/15/extension/fastpgcache--1.0.sql ./usr/share/postgresql/15/extension/fastpgcache--1.1.sql \
         ./usr/share/postgresql/15/extension/fastpgcache--1.0--1.1.sql; do
    echo "$contents" | grep -q " $f\$" && ok "the package holds $f" || fail "the package lacks $f"
done
depends=$(dpkg-deb -f "$deb" Depends)
echo "$depends" | grep -q 'postgresql-15' && ok "it depends on postgresql-15 ($depends)" || fail "Depends: $depends"

# ---------------------------------------------------------------- 6. apt-get install
if [ "${CI:-}" != true ] && [ "${FPC_PACKAGING_SYSTEM_INSTALL:-0}" != 1 ]; then
    skip "apt-get install ./$(basename "$deb") + CREATE EXTENSION: installs into the system tree, so it runs only on a throwaway machine (CI=true, e.g. ../shared/tools/fresh-debian 'bash test/packaging/run.sh')"
    finish
fi
if [ "$(id -u)" != 0 ]; then
    fail "apt-get install needs root"
    finish
fi
if dpkg-query -W -f='${Status}' postgresql-15-fastpgcache 2>/dev/null | grep -q "ok installed"; then
    fail "postgresql-15-fastpgcache is already installed on this machine: not touching it"
    finish
fi
cp "$deb" "$work/pkg.deb" && chmod 644 "$work/pkg.deb"
if DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$work/pkg.deb" >"$work/apt-install.log" 2>&1; then
    installed_pkg=1
    ok "apt-get install ./$(basename "$deb")"
else
    cat "$work/apt-install.log"; fail "apt-get install"; finish
fi
sysbin=/usr/lib/postgresql/15/bin
[ -f /usr/share/postgresql/15/extension/fastpgcache.control ] && [ -f /usr/lib/postgresql/15/lib/fastpgcache.so ] &&
    ok "the files are in the system's PostgreSQL 15 tree" || fail "files not in /usr/share/postgresql/15, /usr/lib/postgresql/15"
mkdir -p "$work/syspg/sock"
chown -R postgres: "$work/syspg"
sysport=$(free_port)
as_pg "$sysbin/initdb" -D "$work/syspg/data" -U postgres --auth=trust --no-sync >/dev/null 2>&1 &&
printf "listen_addresses = ''\nport = %s\nunix_socket_directories = '%s'\nshared_preload_libraries = 'fastpgcache'\n" \
    "$sysport" "$work/syspg/sock" >> "$work/syspg/data/postgresql.conf" &&
as_pg "$sysbin/pg_ctl" -D "$work/syspg/data" -l "$work/syspg/log" -w start >/dev/null ||
    { cat "$work/syspg/log" 2>/dev/null; fail "a cluster of the system's PostgreSQL 15 with the package preloaded"; finish; }
out=$("$sysbin/psql" -X -At -v ON_ERROR_STOP=1 -h "$work/syspg/sock" -p "$sysport" -U postgres -d postgres \
      -c "CREATE EXTENSION fastpgcache" -c "SELECT cache_set('deb:k', 'from the .deb', 60)" -c "SELECT cache_get('deb:k')" \
      -c "SELECT extversion FROM pg_extension WHERE extname = 'fastpgcache'" 2>&1)
if [ "$(echo "$out" | tail -2 | head -1)" = "from the .deb" ]; then
    ok "CREATE EXTENSION fastpgcache from the installed package works (version $(echo "$out" | tail -1), library preloaded)"
else
    fail "CREATE EXTENSION after apt-get install: $out"
fi
finish

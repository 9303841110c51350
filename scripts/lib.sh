# Shared shell helpers: throwaway PostgreSQL clusters. Source this file.
# When run as root (as CI does), PostgreSQL runs as the 'postgres' OS user.

PG_BINDIR=${PG_BINDIR:-$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)}
export PATH="$PG_BINDIR:$PATH"
# The system's pg_config, remembered the first time this file is sourced
# (before any private_install puts a copy first on PATH): builds need its
# header directories, which the private copies do not have.
FPC_SYSTEM_PG_CONFIG=${FPC_SYSTEM_PG_CONFIG:-$(command -v pg_config || echo /usr/bin/pg_config)}
export FPC_SYSTEM_PG_CONFIG

# private_install SRC DIR
# Builds the extension from a copy of the tree SRC (warnings are errors) and
# installs it into a private copy of the PostgreSQL installation in DIR/inst
# (make install DESTDIR=...). PostgreSQL finds its lib and share directories
# relative to its own binary, so the copy holds the server binaries and
# pg_config and links to the rest of the system installation. Exports PATH,
# PG_BINDIR and PGBIN pointing at the copy: clusters started afterwards load
# exactly the code built here, whatever else gets installed on the machine
# meanwhile (several checkouts can test at once).
private_install() {
  local src=$1 dir=$2
  local build="$dir/build" inst="$dir/inst"
  local pgbin pglib pgshare f rel
  local pgc=$FPC_SYSTEM_PG_CONFIG
  pgbin=$($pgc --bindir); pglib=$($pgc --pkglibdir); pgshare=$($pgc --sharedir)
  mkdir -p "$build"
  (cd "$src" && tar --exclude=.git --exclude=bench/results --exclude=build --exclude='*.o' --exclude='*.so' \
      --exclude='*.bc' -cf - .) | tar -C "$build" -xf -
  make -s -C "$build" PG_CONFIG="$pgc" WERROR=1 >"$dir/build.log" 2>&1 || { cat "$dir/build.log"; return 1; }
  make -s -C "$build" PG_CONFIG="$pgc" install DESTDIR="$inst" >>"$dir/build.log" 2>&1 \
    || { cat "$dir/build.log"; return 1; }
  # The test-only extension (sql/boundary.sql): only ever in private trees.
  make -s -C "$build/test/selftest" PG_CONFIG="$pgc" WERROR=1 install DESTDIR="$inst" >>"$dir/build.log" 2>&1 \
    || { cat "$dir/build.log"; return 1; }
  mkdir -p "$inst$pgbin" "$inst$pglib" "$inst$pgshare/extension"
  for f in postgres pg_ctl initdb pg_config pg_basebackup; do
    [ -e "$pgbin/$f" ] && cp "$pgbin/$f" "$inst$pgbin/"
  done
  for f in "$pgbin"/* "$pglib"/* "$pgshare"/* "$pgshare"/extension/*; do
    rel=${f#/}
    [ -e "$inst/$rel" ] || [ "$f" = "$pgshare/extension" ] || ln -s "$f" "$inst/$rel"
  done
  chmod -R a+rX "$dir"
  export PG_BINDIR="$inst$pgbin" PGBIN="$inst$pgbin"
  export PATH="$PG_BINDIR:$PATH"
}

# Runs a command as the OS user that owns the clusters.
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# Prints a TCP port on 127.0.0.1 that nothing listens on.
free_port() {
  # A port below the kernel's ephemeral range (32768-60999 by default): one
  # inside it can become the local end of any outgoing connection between
  # this check and the server's bind, which then fails ("Address already in
  # use") while other jobs on the machine open connections.
  local port lo=10000 hi=32767 eph
  if read -r eph _ < /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null && [ "$eph" -gt $((lo + 1000)) ]; then
    hi=$((eph - 1))
  fi
  for _ in $(seq 1 200); do
    port=$(( lo + RANDOM % (hi - lo + 1) ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return 0; fi
  done
  echo "no free port found" >&2; return 1
}

# cluster_start DIR PORT [postgresql.conf lines...]
# Creates (if needed) and starts a cluster in DIR/data, listening on
# 127.0.0.1:PORT and on a private socket directory DIR/sock.
# With FPC_MALLOC_PERTURB=N in the environment (scripts/test.sh sets it) the
# server runs with glibc's MALLOC_PERTURB_=N: freed memory is overwritten, so
# a use after free crashes the test instead of passing by luck.
cluster_start() {
  local dir=$1 port=$2; shift 2
  local run=(as_pg)
  [ -n "${FPC_MALLOC_PERTURB:-}" ] && run=(as_pg env "MALLOC_PERTURB_=$FPC_MALLOC_PERTURB")
  mkdir -p "$dir/sock"
  [ "$(id -u)" -eq 0 ] && chown -R postgres:postgres "$dir"
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    as_pg initdb -D "$dir/data" -U postgres --auth=trust --no-sync -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log"; return 1; }
  fi
  {
    echo "listen_addresses = '127.0.0.1'"
    echo "port = $port"
    echo "unix_socket_directories = '$dir/sock'"
    echo "fsync = off"
    echo "max_connections = 100"
    for line in "$@"; do echo "$line"; done
  } | as_pg tee "$dir/data/postgresql.auto.conf" >/dev/null
  if as_pg pg_ctl -D "$dir/data" status >/dev/null 2>&1; then
    "${run[@]}" pg_ctl -D "$dir/data" -l "$dir/server.log" -w -t 60 restart >/dev/null || { cat "$dir/server.log"; return 1; }
    return 0
  fi
  "${run[@]}" pg_ctl -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null \
    || { cat "$dir/server.log"; return 1; }
}

cluster_stop() {
  local dir=$1
  [ -f "$dir/data/postmaster.pid" ] && as_pg pg_ctl -D "$dir/data" -m fast -w stop >/dev/null 2>&1
  return 0
}

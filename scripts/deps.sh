#!/usr/bin/env bash
# Installs the Debian 12 packages that building, running and testing
# FastPgCache need. Skips apt-get entirely when everything is present.
set -euo pipefail

packages=(
  build-essential pkg-config ca-certificates
  postgresql-15 postgresql-server-dev-15 postgresql-contrib libpq-dev libssl-dev
  postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl postgresql-15-plproxy
  nlohmann-json3-dev libcurl4-openssl-dev python3
  redis-server redis-tools python3-redis
  sqlsmith python3-psycopg2
  python3-redis clang-14 libclang-rt-14-dev
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "==> installing: ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
# Debian's postgresql-common would create and start a 'main' cluster on port
# 5432; this project starts its own throwaway clusters instead.
if [ ! -e /etc/postgresql-common/createcluster.conf ]; then
  $sudo mkdir -p /etc/postgresql-common
  echo "create_main_cluster = false" | $sudo tee /etc/postgresql-common/createcluster.conf >/dev/null
fi
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"

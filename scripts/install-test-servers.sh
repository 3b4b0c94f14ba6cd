#!/usr/bin/env bash
# Install the real servers the integration tests start on loopback (Debian 12 packages):
# MariaDB 10.11 (stands in for RDS MySQL 8), PostgreSQL 15, openssl for the test CA, and tini
# (the image's PID 1, so the SIGTERM test runs the exact ENTRYPOINT), Chromium with its driver
# (the UI test drives a real browser), and nftables (a test relay drops its packets as a lost
# network does), and libmariadb-dev with pkg-config and gcc (the image's venv builds mysqlclient,
# the image's MySQL driver, against them as the image does). Idempotent: installs only
# what is missing, and does nothing (not even apt-get update) when everything is present.
set -euo pipefail

declare -A wanted=(
  [mariadb-server]=/usr/sbin/mariadbd
  [mariadb-client]=/usr/bin/mariadb
  [postgresql]=/usr/lib/postgresql/15/bin/pg_ctl
  [openssl]=/usr/bin/openssl
  [tini]=/usr/bin/tini
  [util-linux]=/usr/bin/unshare
  [chromium]=/usr/bin/chromium
  [chromium-driver]=/usr/bin/chromedriver
  [nftables]=/usr/sbin/nft
  [libmariadb-dev]=/usr/include/mariadb/mysql.h
  [pkg-config]=/usr/bin/pkg-config
  [gcc]=/usr/bin/gcc
)

missing=()
for pkg in "${!wanted[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' \
     || [ ! -e "${wanted[$pkg]}" ]; then
    missing+=("$pkg")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-test-servers: all present"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-test-servers: need root to install: ${missing[*]}" >&2
  exit 1
fi

echo "install-test-servers: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# The tests start their own server instances in temporary directories; the packages' default
# services are not needed, and policy-rc.d keeps dpkg from starting them where there is no init.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install-test-servers: done"

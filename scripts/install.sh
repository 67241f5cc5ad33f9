#!/bin/bash
# Installs everything weft needs on a fresh Debian 12 machine (run as root), then builds it.
#   scripts/install.sh              Debian packages + npm packages + build
#   scripts/install.sh --neutron    also the packages of the real-Neutron fixture (tests/lab underlay)
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

[ "$(id -u)" = 0 ] || { echo "install.sh: run as root (it installs Debian packages)"; exit 1; }
PKGS=(etcd-server etcd-client iproute2 nftables iptables iperf3 sockperf ethtool tcpdump containernetworking-plugins gcc libc6-dev
      util-linux procps psmisc iputils-ping curl ca-certificates chromium)
missing=()
for p in "${PKGS[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[install] apt-get install ${missing[*]}"
  # keep package postinst scripts from starting services (etcd): weft starts its own, inside namespaces
  [ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; }
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" > /tmp/weft-apt.log 2>&1 || { tail -20 /tmp/weft-apt.log; exit 1; }
fi
if [ "${1:-}" = "--neutron" ]; then
  NEUTRON_CI_DIR=${NEUTRON_CI_DIR:-/tmp/weft-neutron} bash scripts/neutron-fixture.sh install-dataplane
fi
command -v node >/dev/null || { echo "install.sh: Node.js 20 or newer is required"; exit 1; }
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' || { echo "install.sh: Node.js 20 or newer is required (found $(node --version))"; exit 1; }
echo "[install] npm ci"
npm ci --no-audit --no-fund --loglevel=error
echo "[install] build"
npm run --silent build
echo "[install] done"

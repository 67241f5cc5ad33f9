#!/bin/bash
# Installs everything weft needs on a fresh Debian 12 machine (run as root), then builds it.
#   scripts/install.sh                  Debian packages + npm packages + build
#   scripts/install.sh --neutron        also the packages of the real-Neutron fixture (tests/lab underlay)
#   scripts/install.sh --packages-only  the Debian packages alone (no npm, no build)
# WEFT_EXTRA_PACKAGES="a b" installs these Debian packages too.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

neutron=0 packages_only=0
for a in "$@"; do
  case "$a" in
    --neutron) neutron=1 ;;
    --packages-only) packages_only=1 ;;
    *) echo "install.sh: unknown option $a (--neutron, --packages-only)"; exit 2 ;;
  esac
done

[ "$(id -u)" = 0 ] || { echo "install.sh: run as root (it installs Debian packages)"; exit 1; }

# Package postinst scripts must not start services (etcd, rabbitmq…): weft starts its own, inside
# namespaces. A policy-rc.d that says so is put in place for the install only, and removed on every way
# out of this script (success, failure, interrupt). One that was there before is the machine's: kept.
POLICY_RC_D=/usr/sbin/policy-rc.d
created_policy=0
hold_services() {
  [ -e "$POLICY_RC_D" ] && return 0
  printf '#!/bin/sh\n# weft install.sh: no service starts during the install (removed when it ends)\nexit 101\n' > "$POLICY_RC_D"
  chmod +x "$POLICY_RC_D"
  created_policy=1
}
release_services() { if [ "$created_policy" = 1 ]; then rm -f "$POLICY_RC_D"; created_policy=0; fi; }
trap release_services EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

PKGS=(etcd-server etcd-client iproute2 nftables iptables iperf3 sockperf ethtool tcpdump containernetworking-plugins gcc libc6-dev
      util-linux procps psmisc iputils-ping curl ca-certificates chromium openssl systemd python3
      clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev libnftables-dev)  # the last line: BPF (weft trace)
# shellcheck disable=SC2206 # a space-separated list by design
PKGS+=(${WEFT_EXTRA_PACKAGES:-})
missing=()
for p in "${PKGS[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[install] apt-get install ${missing[*]}"
  hold_services
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" > /tmp/weft-apt.log 2>&1 || { tail -20 /tmp/weft-apt.log; exit 1; }
fi
if [ "$neutron" = 1 ]; then
  hold_services # the fixture keeps an existing one: ours, removed below like the rest
  NEUTRON_CI_DIR=${NEUTRON_CI_DIR:-/tmp/weft-neutron} bash scripts/neutron-fixture.sh install-dataplane
fi
release_services
[ "$packages_only" = 1 ] && { echo "[install] packages done"; exit 0; }
command -v node >/dev/null || { echo "install.sh: Node.js 20 or newer is required"; exit 1; }
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' || { echo "install.sh: Node.js 20 or newer is required (found $(node --version))"; exit 1; }
echo "[install] npm ci"
npm ci --no-audit --no-fund --loglevel=error
echo "[install] build"
npm run --silent build
echo "[install] done"

#!/bin/bash
# Quick start: installs everything weft needs, builds a 3-node lab, shows pods reaching each other
# (vxlan, then host-gw), and removes the lab. Run as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec node dist/src/cli/weft.js demo "$@"

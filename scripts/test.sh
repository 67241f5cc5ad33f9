#!/bin/bash
# Installs everything and runs weft's test suite (lint, unit tests, lab and CNI tests against real
# kernel devices in their own network namespaces, Neutron tests against real Neutron).
#   scripts/test.sh [FILTER]    FILTER: only test files whose path contains it
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh --neutron
npm run --silent lint
node scripts/run-tests.mjs "$@"

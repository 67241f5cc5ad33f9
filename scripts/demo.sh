#!/bin/bash
# The talk in one command: installs everything weft needs (with real OpenStack Neutron, unless the
# demo is asked to run on --underlay flat), then runs `weft demo`: a Magnum cluster on Neutron, a
# traced round trip, the overhead beside the talk's table, Flannel's limits with evidence, and the
# live switch to Neutron routing. Writes weft-demo/report.html and weft-demo/result.json; removes the
# lab at the end. Run as root on Debian 12. Arguments go to `weft demo` (see `weft demo --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
neutron=--neutron
prev=
for a in "$@"; do
  case "$a" in --underlay=flat) neutron= ;; flat) [ "$prev" = --underlay ] && neutron= ;; esac
  prev=$a
done
bash scripts/install.sh $neutron
exec node dist/src/cli/weft.js demo "$@"

#!/usr/bin/env bash
# The cost of security (issue 13): the same three-node cluster figures
# (scripts/cluster-bench.sh: 1 and 32 writers, batch 1 and 100) insecure, then secure (TLS on
# every port, the bench authenticated as admin), one after the other on this machine.
# Ratios matter, not absolute numbers: the machine is shared.
# Usage: scripts/tls-cost.sh   (needs target/release/stele)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
echo "### insecure"
SECURE=0 "$ROOT/scripts/cluster-bench.sh" /tmp/stele-tls-cost-insecure
echo "### secure"
SECURE=1 "$ROOT/scripts/cluster-bench.sh" /tmp/stele-tls-cost-secure

#!/usr/bin/env bash
# Runs the deterministic cluster simulation (crates/stele-sim), release build.
#
#   scripts/sim.sh --seeds 100 --voters 3,5          a sweep
#   scripts/sim.sh --seed 42 --verbose               one seed, every event
#   scripts/sim.sh --seed 7 --features injected-bugs --bug ack-before-fsync
#   scripts/sim.sh --soak [minutes]                  seeds until the time is up (default 60)
#
# `--features X` (first) is passed to cargo; everything else to stele-sim. The workspace's
# .cargo/config.toml sets `--cfg tokio_unstable`, which seeded runtimes need.
set -euo pipefail
cd "$(dirname "$0")/.."
features=()
if [ "${1:-}" = "--features" ]; then
    features=(--features "$2")
    shift 2
fi
for arg in "$@"; do
    if [ "$arg" = "--features" ]; then
        echo "put --features first" >&2
        exit 2
    fi
done
cargo build --release -q -p stele-sim "${features[@]}"
if [ "${1:-}" = "--soak" ]; then
    minutes="${2:-60}"
    end=$(($(date +%s) + minutes * 60))
    first=$((RANDOM * 1000))
    while [ "$(date +%s)" -lt "$end" ]; do
        target/release/stele-sim --first "$first" --seeds 20 --voters 3,5 --jobs 2 --fail-fast
        first=$((first + 20))
    done
    exit 0
fi
exec target/release/stele-sim "$@"

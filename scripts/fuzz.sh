#!/usr/bin/env bash
# Fuzzes every decoder that reads outside input (targets in fuzz/fuzz_targets/, described in
# docs/reliability.md). Two modes:
#
#   scripts/fuzz.sh [seconds-per-target]       (default 10; docs/reliability.md uses 600)
#     cargo-fuzz: builds the targets with libFuzzer's coverage instrumentation and runs each
#     for the given time from the committed seed corpus; fails on the first crash. Installs
#     cargo-fuzz if missing. Needs only the pinned stable toolchain: cargo-fuzz passes
#     nightly-only compiler flags, which RUSTC_BOOTSTRAP=1 lets the stable compiler accept.
#     New inputs go to fuzz/target/corpus/ (not committed); a crash is saved in
#     fuzz/artifacts/<target>/ and reproduced with `cargo fuzz run <target> <file>`.
#
#   scripts/fuzz.sh --ci [seconds-per-target]  (default 5; what .ci/run runs)
#     No cargo-fuzz and no instrumentation: the instrumented build of the whole dependency tree
#     takes over ten minutes on two cores, the CI budget is five. The targets are built as
#     plain dev binaries in the main workspace's target directory, reusing every dependency
#     `cargo test --workspace` compiled, then each replays its committed corpus and runs
#     libFuzzer's mutations (blind, without coverage feedback) for the given time.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

if [ "${1:-}" = "--ci" ]; then
    seconds="${2:-5}"
    # Same profile and dependency versions as the main workspace (fuzz/Cargo.toml), so only
    # the stele-fuzz crate and libfuzzer-sys are new.
    cargo build --bins --target-dir ../target
    failed=0
    for target in $(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v '^stele-fuzz$'); do
        log="../target/fuzz-$target.log"
        start=$(date +%s)
        if ../target/debug/"$target" -runs=0 "corpus/$target" >"$log" 2>&1 &&
            ../target/debug/"$target" -max_total_time="$seconds" -max_len=4096 -timeout=10 \
                -print_final_stats=1 -artifact_prefix=../target/fuzz-"$target"- \
                "corpus/$target" >>"$log" 2>&1; then
            seeds=$(find "corpus/$target" -type f | wc -l)
            execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
            echo "$target: ${seeds} seeds replayed, ${execs:-?} mutated inputs in $(($(date +%s) - start)) s, no crash"
        else
            failed=1
            echo "$target: CRASH (log: target/fuzz-$target.log)"
            grep -E "panicked at|ERROR: libFuzzer|stele-fuzz:|Test unit written" "$log" | head -20
            tail -n 40 "$log"
        fi
    done
    exit "$failed"
fi

seconds="${1:-10}"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

# No sanitizer: the code under test is safe Rust, so AddressSanitizer would find little and
# cost a nightly-only std rebuild; panics, aborts, timeouts and the allocation cap
# (fuzz/src/lib.rs) are the failures. Debug assertions turn integer overflow into a crash.
# Sixteen codegen units build the targets about twice as fast as cargo-fuzz's default of one.
build_flags=(--sanitizer none --debug-assertions --codegen-units 16)
cargo fuzz build "${build_flags[@]}"

mkdir -p target/corpus target/logs
failed=0
for target in $(cargo fuzz list); do
    work="target/corpus/$target"
    log="target/logs/$target.log"
    mkdir -p "$work"
    if nice -n 10 cargo fuzz run "${build_flags[@]}" "$target" "$work" "corpus/$target" -- \
        -max_total_time="$seconds" -max_len=4096 -timeout=10 -print_final_stats=1 \
        >"$log" 2>&1; then
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
        took=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
        found=$(find "$work" -type f | wc -l)
        echo "$target: ${execs:-?} execs in ${took:-?} s, ${found} inputs in corpus, no crash"
    else
        failed=1
        echo "$target: CRASH (log: fuzz/$log)"
        grep -E "panicked at|ERROR: libFuzzer|SUMMARY|stele-fuzz:|Test unit written" "$log" | head -20
        tail -n 40 "$log"
    fi
done
exit "$failed"

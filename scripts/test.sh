#!/usr/bin/env bash
# Every test: installs what is missing, runs the whole workspace's tests, then a short smoke run
# of each benchmark so none of them rots. CI runs exactly this (see .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh photo-bench

# Build every binary first: the CLI and crash tests run the real executables.
cargo build --workspace --all-targets
cargo test --workspace --no-fail-fast 2>&1 | tee target/test-output.txt
cargo run -q -p gridwalk-bench -- p4 --smoke > target/bench-p4-smoke.json
echo "benchmark smoke: p4 ok"
cargo run -q -p gridwalk-bench -- photo --smoke > target/bench-photo-smoke.json
echo "benchmark smoke: photo ok"
cargo run -q -p gridwalk-bench -- sync --smoke > target/bench-sync-smoke.json
echo "benchmark smoke: sync ok"

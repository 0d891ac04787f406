#!/usr/bin/env bash
# Every test: installs what is missing, builds the UI and the workspace, runs the UI's unit
# tests, every Rust test, the end-to-end tests in Chromium and in the real app window, then a
# short smoke run of each benchmark so none of them rots. CI runs exactly this (see .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh photo-bench ui-tests
export PATH="$HOME/.cargo/bin:$PATH"
mkdir -p target

# Formatting first: it takes a second and needs no build (rustfmt.toml: 120 columns).
cargo fmt --all --check

# The UI first: the Tauri app embeds ui/dist when it is compiled.
(cd ui && npm run -s check && npm run -s build && npm test)

# Build every binary first: the CLI, crash and end-to-end tests run the real executables.
cargo build --workspace --all-targets
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace --no-fail-fast 2>&1 | tee target/test-output.txt

# End to end, against real relay processes: the walker's app in Chromium (phone size), then the
# real Tauri window through tauri-driver under a virtual display. Screenshots: target/test-output/.
node ui/e2e/walker.mjs
node ui/e2e/hall.mjs
node ui/e2e/lock.mjs
node tests/e2e/window.mjs
node tests/e2e/poison-js.mjs

cargo run -q -p gridwalk-bench -- p4 --smoke > target/bench-p4-smoke.json
echo "benchmark smoke: p4 ok"
cargo run -q -p gridwalk-bench -- photo --smoke > target/bench-photo-smoke.json
echo "benchmark smoke: photo ok"
cargo run -q -p gridwalk-bench -- tap --smoke > target/bench-tap-smoke.json
echo "benchmark smoke: tap ok"
cargo run -q -p gridwalk-bench -- sync --smoke > target/bench-sync-smoke.json
echo "benchmark smoke: sync ok"
cargo run -q -p gridwalk-bench -- load --smoke > target/bench-load-smoke.json
echo "benchmark smoke: load ok"
cargo run -q -p gridwalk-bench -- encryption --smoke > target/bench-encryption-smoke.json
echo "benchmark smoke: encryption ok"
cargo run -q -p gridwalk-bench -- report --smoke > target/bench-report-smoke.json
cargo run -q -p gridwalk-bench -- report --smoke --shape busy > target/bench-report-busy-smoke.json
echo "benchmark smoke: report ok"

#!/usr/bin/env bash
# The main job: build Gridwalk, make a demo town (a street of ten villages, a year of visits and
# requests) in a fresh local store, and walk through what a hall would see in it.
# The relay and the app join this command when their issues land.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

cargo build --release -q -p gridwalk-cli
gw() { ./target/release/gridwalk --store .gridwalk/demo.db "$@"; }

mkdir -p .gridwalk
rm -f .gridwalk/demo.db .gridwalk/demo.db-wal .gridwalk/demo.db-shm
gw init --device hall-pc --walker hall-1
echo "== 生成示范街道 (demo town)"
gw demo --seed 2026
echo
echo "== 网格 (grids)"
gw grids | head -n 8
echo
echo "== 逾期诉求 (overdue requests, most overdue first)"
gw request list --overdue --sort deadline --limit 5
echo
echo "== 搜索 \"路灯\" (search: streetlights)"
gw request search 路灯 --limit 5
first=$(gw --json request list --status rated --limit 1 | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
echo
echo "== 一件诉求的全过程 (one request's whole history)"
gw request show "$first"
echo
echo "== 14天未走访的住户 (households not visited for 14 days, grid v01-g01)"
gw households --grid v01-g01 | head -n 8
echo
gw index check
echo
echo "The demo store is .gridwalk/demo.db; try: ./target/release/gridwalk --store .gridwalk/demo.db --help"

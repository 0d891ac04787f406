#!/usr/bin/env bash
# The main job: build Gridwalk, start a local relay on its embedded SQLite store, fill it with a
# demo town (a street of ten villages, a year of visits and requests) from the hall's PC, enrol a
# walker's phone that receives only her grid, walk through what the hall and the walker see, and
# leave the relay serving. (The app joins this command with issue 5.)
# GRIDWALK_RUN_ONCE=1 stops the relay at the end instead of serving on.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

cargo build --release -q -p gridwalk-cli -p gridwalk-relay
GW=./target/release/gridwalk
RELAY=./target/release/gridwalk-relay
DIR=.gridwalk
PORT=${GRIDWALK_PORT:-8470}
rm -rf "$DIR"
mkdir -p "$DIR"

"$RELAY" --data-dir "$DIR/relay" serve --listen "127.0.0.1:$PORT" > "$DIR/relay.out" 2> "$DIR/relay.log" &
relay_pid=$!
trap 'kill $relay_pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do grep -q "listening on" "$DIR/relay.out" 2>/dev/null && break; sleep 0.1; done
URL=$(sed -n 's/^listening on //p' "$DIR/relay.out")
echo "== 中继已启动 relay serving at $URL (data in $DIR/relay)"

hall() { "$GW" --store "$DIR/hall.db" "$@"; }
phone() { "$GW" --store "$DIR/phone.db" "$@"; }

hall init --device hall-pc --walker hall-1 > /dev/null
echo "== 生成示范街道 (demo town)"
hall demo --seed 2026
hall join --relay "$URL" --code "$("$RELAY" --data-dir "$DIR/relay" enroll --name 服务中心电脑 --role hall 2>/dev/null)" --name 服务中心电脑
echo "== 上传到中继 (hall PC fills the relay)"
hall sync --resend-all

echo
echo "== 网格员王芳的手机 (a walker's phone, grid v01-g01 only)"
phone init --device phone-wangfang --walker w001 > /dev/null
# The phone's reference lists (her grid's households, the offices) come from the hall.
hall export reference --grid v01-g01 --out "$DIR/lists-v01-g01"
for kind in areas households enterprises departments walkers; do
  phone import "$kind" "$DIR/lists-v01-g01/$kind.csv" > /dev/null
done
code=$("$RELAY" --data-dir "$DIR/relay" enroll --name 王芳的手机 --grids v01-g01 2>/dev/null)
phone join --relay "$URL" --code "$code" --name 王芳的手机
phone sync
echo
echo "== 她的网格的诉求 (her grid's requests, overdue first)"
phone request list --sort deadline --limit 5
echo
echo "== 服务中心: 逾期诉求 (hall: overdue requests)"
hall request list --overdue --sort deadline --limit 5
echo
echo "== 搜索 \"路灯\" (search: streetlights)"
hall request search 路灯 --limit 5
first=$(hall --json request list --status rated --limit 1 | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
echo
echo "== 一件诉求的全过程 (one request's whole history, device time and relay receipt time)"
hall request show "$first"
echo
echo "== 14天未走访的住户 (households not visited for 14 days, grid v01-g01)"
hall households --grid v01-g01 | head -n 8
echo
hall index check
"$RELAY" --data-dir "$DIR/relay" devices

if [ "${GRIDWALK_RUN_ONCE:-0}" = 1 ]; then exit 0; fi
echo
echo "The relay keeps serving at $URL (Ctrl-C stops it). Stores: $DIR/hall.db, $DIR/phone.db"
wait $relay_pid

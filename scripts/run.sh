#!/usr/bin/env bash
# The main job: build Gridwalk, start a local relay on its embedded SQLite store, fill it from the
# hall's PC with a demo town (a street of ten villages, a year of visits and requests), publish
# each grid's roster, and open the walker's app against the relay with an enrolment code for
# 王芳 (grid v01-g01). With a display the real app window opens; without one the same app is
# served to a browser at http://127.0.0.1:8471 (browser mode).
# GRIDWALK_RUN_ONCE=1 enrols the app by itself, checks it received its grid, and stops.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

(cd ui && npm run -s build)
cargo build -q -p gridwalk-cli -p gridwalk-relay -p gridwalk-bridge -p gridwalk-app
GW=./target/debug/gridwalk
RELAY=./target/debug/gridwalk-relay
DIR=.gridwalk
PORT=${GRIDWALK_PORT:-8470}
APP_PORT=${GRIDWALK_APP_PORT:-8471}
rm -rf "$DIR"
mkdir -p "$DIR"

pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
"$RELAY" --data-dir "$DIR/relay" serve --listen "127.0.0.1:$PORT" > "$DIR/relay.out" 2> "$DIR/relay.log" &
pids+=($!)
for _ in $(seq 100); do grep -q "listening on" "$DIR/relay.out" 2>/dev/null && break; sleep 0.1; done
URL=$(sed -n 's/^listening on //p' "$DIR/relay.out")
[ -n "$URL" ] || { echo "the relay did not start; see $DIR/relay.log" >&2; exit 1; }
echo "== 中继已启动 relay serving at $URL (data in $DIR/relay)"

hall() { "$GW" --store "$DIR/hall.db" "$@"; }
hall init --device hall-pc --walker hall-1 > /dev/null
echo "== 生成示范街道 (demo town)"
hall demo --seed 2026
hall roster publish
hall join --relay "$URL" --code "$("$RELAY" --data-dir "$DIR/relay" enroll --name 服务中心电脑 --role hall 2>/dev/null)" --name 服务中心电脑
echo "== 上传到中继 (the hall PC fills the relay)"
hall sync --resend-all
# The hall PC is shared by its staff, who sign in with their name and PIN (demo PINs below).
# The relay keeps the staff list: its operator names the admin, who gives the others theirs.
"$RELAY" --data-dir "$DIR/relay" staff add-admin --person admin --name 系统管理员 --pin 9630 > /dev/null
hall sync > /dev/null
hall --as admin staff set-pin --person hall-1 --pin 2580 --my-pin 9630 > /dev/null
hall --as admin staff set-pin --person hall-2 --pin 1357 --my-pin 9630 > /dev/null
hall --as admin staff set-pin --person hall-3 --pin 4680 --my-pin 9630 > /dev/null

echo
echo "== 服务中心: 逾期诉求 (hall: overdue requests)"
hall request list --overdue --sort deadline --limit 5
echo
echo "== 14天未走访的住户 (households not visited for 14 days, grid v01-g01)"
hall households --grid v01-g01 | head -n 6

CODE=$("$RELAY" --data-dir "$DIR/relay" enroll --name 王芳的手机 --grids v01-g01 --walker w001 2>/dev/null)
echo
echo "================================================================"
echo " 服务中心电脑登录 hall PC sign-in: 陈国平 PIN 2580, 王丽华 PIN 1357, 张建军 PIN 4680"
echo "   系统管理员 admin PIN 9630 (gives and resets PINs: 基础信息 → 工作人员)"
echo "----------------------------------------------------------------"
echo " 网格员王芳的手机 / Wang Fang's phone (grid v01-g01)"
echo "   中继地址 relay address : $URL"
echo "   登记码 enrolment code  : $CODE"
echo "================================================================"

if [ "${GRIDWALK_RUN_ONCE:-0}" = 1 ]; then
  ./target/debug/gridwalk-bridge --data-dir "$DIR/app" --listen "127.0.0.1:$APP_PORT" --ui ui/dist > "$DIR/app.out" 2> "$DIR/app.log" &
  pids+=($!)
  for _ in $(seq 100); do grep -q "listening on" "$DIR/app.out" 2>/dev/null && break; sleep 0.1; done
  api() { curl -sf -X POST -H 'content-type: application/json' -d "$2" "http://127.0.0.1:$APP_PORT/api/$1"; }
  api enroll "{\"relay_url\": \"$URL\", \"code\": \"$CODE\", \"device_name\": \"王芳的手机\"}" > /dev/null
  for _ in $(seq 300); do api status '{}' | grep -q '"last_sync_at":[0-9]' && break; sleep 0.2; done
  echo "== the app's grids after its first sync:"
  api grids '{}'
  echo
  api grids '{}' | grep -q '"id":"v01-g01"' || { echo "the app did not receive its grid" >&2; exit 1; }
  exit 0
fi

if [ -n "${DISPLAY:-}" ] && [ "${GRIDWALK_BROWSER:-0}" != 1 ]; then
  echo "== 打开应用 (opening the app window; type the address and code above to enrol)"
  GRIDWALK_DATA_DIR="$DIR/app" ./target/debug/gridwalk-app 2> "$DIR/app.log" &
  pids+=($!)
else
  ./target/debug/gridwalk-bridge --data-dir "$DIR/app" --listen "127.0.0.1:$APP_PORT" --ui ui/dist > "$DIR/app.out" 2> "$DIR/app.log" &
  pids+=($!)
  echo "== 浏览器模式 (no display: the app is served in browser mode)"
  echo "   open http://127.0.0.1:$APP_PORT at phone size and enrol with the address and code above"
fi
echo "Ctrl-C stops the relay and the app. Stores: $DIR/hall.db (hall), $DIR/app (the phone)."
wait "${pids[0]}"

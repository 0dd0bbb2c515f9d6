#!/usr/bin/env bash
# `npm start` with no configuration comes up healthy, survives a SIGKILL, and comes up healthy again
# with the same data folder.
set -euo pipefail
data=$(mktemp -d)
log=$(mktemp)
export DATA_DIR="$data" PORT=3917 TEMPORAL_PORT=7291 TEMPORAL_UI_PORT=8291
pid=

start() {
  setsid npm start >"$log" 2>&1 &
  pid=$!
  for _ in $(seq 1 180); do
    if curl -fsS "http://127.0.0.1:$PORT/api/health" >/dev/null 2>&1; then
      echo "healthy after start #$1"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    sleep 1
  done
  echo "npm start #$1 did not become healthy; its output:"
  tail -50 "$log"
  return 1
}

cleanup() { [ -n "$pid" ] && kill -9 -- -"$pid" 2>/dev/null || true; rm -rf "$data" "$log"; }
trap cleanup EXIT

start 1
curl -fsS "http://127.0.0.1:$TEMPORAL_UI_PORT/" >/dev/null && echo "Temporal UI answers on :$TEMPORAL_UI_PORT"
kill -9 -- -"$pid"   # the whole process group, as a crash or the OOM killer would
sleep 1
start 2
if ! grep -q 'database schema up to date' "$log"; then echo 'second start did not find the migrated database'; exit 1; fi
echo 'second start found the migrated database'
kill -TERM -- -"$pid"
for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
if kill -0 "$pid" 2>/dev/null; then echo "npm start did not stop on SIGTERM"; exit 1; fi
echo "stopped cleanly on SIGTERM"
pid=

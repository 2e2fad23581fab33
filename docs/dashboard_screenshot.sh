#!/usr/bin/env bash
# Screenshot of optuna-dashboard on a study, made with headless Chromium (as the README's).
# Usage: docs/dashboard_screenshot.sh STORAGE_URL STUDY_ID OUT.png
set -euo pipefail
storage=$1 study=$2 out=$3 port=8799
pairsearch dashboard --storage "$storage" --port $port >/dev/null 2>&1 &
server=$!
trap 'kill $server' EXIT
for _ in $(seq 1 60); do curl -sf "http://127.0.0.1:$port/api/studies" >/dev/null && break; sleep 0.5; done
profile=$(mktemp -d)
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$profile" --virtual-time-budget=10000 --window-size=1400,1000 \
    --hide-scrollbars --screenshot="$out" "http://127.0.0.1:$port/dashboard/studies/$study" \
    2>/dev/null
rm -rf "$profile"

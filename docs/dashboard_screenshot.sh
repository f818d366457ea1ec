#!/usr/bin/env bash
# Render optuna-dashboard's Pareto-front page of an experiment to a PNG with headless Chromium,
# for the README. Needs Chromium (Debian: apt-get install chromium); the test suite does not.
#
#   docs/dashboard_screenshot.sh results/<name> [docs/images/dashboard_pareto.png] [PORT]
set -euo pipefail
experiment=${1:?usage: docs/dashboard_screenshot.sh EXPERIMENT_DIR [OUT.png] [PORT]}
out=${2:-docs/images/dashboard_pareto.png}
port=${3:-8765}
here=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$here/.venv/bin/python}
browser=$(command -v chromium || command -v chromium-browser || true)
[ -n "$browser" ] || { echo "chromium not found: apt-get install chromium" >&2; exit 1; }

"$python" -m study.dashboard "$experiment" --port "$port" > /dev/null 2>&1 &
server=$!
trap 'kill $server 2> /dev/null || true' EXIT
for _ in $(seq 60); do  # up to 30 s for the server
  curl -sf "http://127.0.0.1:$port/api/studies" > /dev/null && break
  sleep 0.5
done
study=$(curl -sf "http://127.0.0.1:$port/api/studies" | "$python" -c "import json, sys; print(json.load(sys.stdin)['study_summaries'][0]['study_id'])")
profile=$(mktemp -d)
# the page is drawn by JavaScript: give it virtual time to fetch the trials and plot them
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir="$profile" \
  --window-size=1400,1000 --virtual-time-budget=15000 --screenshot="$out" \
  "http://127.0.0.1:$port/dashboard/studies/$study" > /dev/null 2>&1
rm -rf "$profile"
echo "$out"

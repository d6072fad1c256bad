#!/usr/bin/env bash
# The host beside connectors that compute: with every slot of a CPU-bound
# connector (the `spin` test component, granted 2 s and 16 calls at once)
# taken by calls that spin until their deadline, nonstop, how quickly do
# `GET /healthz` and a trivial call of another plugin (`echo.check`) answer?
# Each is measured by wrk over one connection, first on an idle host, then
# under the spinning load, then while four calls of a workflow that loops
# over an agent's 140,000-item list run nonstop (issue 29), in the same run.
#
# Usage: [DURATION=8s] [BIN=path/to/toolhost] host/benches/fairness.sh
# (BIN runs another build, e.g. an older commit's, for a before/after.)
# Needs wrk (Debian: wrk); installs it when run as root with apt-get at hand.
source "$(dirname "$0")/common.sh"
bin=${BIN:-$bin}
duration=${DURATION:-8s}
command -v wrk >/dev/null || apt-get install -y -q wrk >&2

mkdir -p "$work/plugins/spin"
cp tests/guests/spin/connector.toml tests/guests/spin/*.wasm "$work/plugins/spin/"
sed -i 's/^timeout-ms = .*/timeout-ms = 2000\nmax-concurrency = 16/' "$work/plugins/spin/connector.toml"
ln -s "$root/tests/guests/echo" "$work/plugins/echo"
# A `for` over the agent's list, each turn computing a little.
mkdir -p "$work/plugins/each-item"
cat > "$work/plugins/each-item/workflow.yaml" <<'YAML'
document: { dsl: '1.0.0', namespace: bench, name: each-item, version: '1.0.0' }
do:
  - count:
      for: { each: item, in: '${ .items }', at: i }
      do:
        - add:
            set:
              n: '${ $item + $i }'
YAML
python3 -c 'import json; print(json.dumps({"items": list(range(140000))}))' > "$work/items.json"
# No token's rate limit in the way of the measuring client; room for the
# 140,000-item list (about 1 MB).
printf '[server]\nrate-per-minute = 4000000000\nmax-body-bytes = 4194304\n' > "$work/toolhost.toml"
export TOOLHOST_CONFIG=$work/toolhost.toml
start_server "$work/data" "$work/plugins"

wrk_script GET "" > "$work/health.lua"
wrk_script POST '{"ok": true, "message": "m"}' > "$work/echo.lua"
wrk_script POST '{"seed": 7}' > "$work/spin.lua"

measure() { # NAME PATH SCRIPT LOAD
  local out
  out=$(wrk -t1 -c1 -d"$duration" --timeout 10s -s "$3" "$url$2" | awk '$1 == "RESULT" {$1 = ""; print}')
  read -r n p50 p99 p999 bad <<<"$out"
  awk -v name="$1" -v load="$4" -v n="$n" -v a="$p50" -v b="$p99" -v c="$p999" -v bad="$bad" \
    'BEGIN { printf "| %s | %s | %d | %.2f ms | %.2f ms | %.2f ms | %d |\n", name, load, n, a/1000, b/1000, c/1000, bad }'
}

echo "| request | load | requests | p50 | p99 | p99.9 | non-2xx |"
echo "|---|---|---|---|---|---|---|"
measure "GET /healthz" /healthz "$work/health.lua" idle
measure "echo.check" /v1/tools/echo.check/invoke "$work/echo.lua" idle
# 16 connections keep the spinning plugin's 16 slots busy throughout.
wrk -t2 -c16 -d600s --timeout 10s -s "$work/spin.lua" "$url/v1/tools/spin.spin/invoke" > /dev/null &
spinners=$!
sleep 1
measure "GET /healthz" /healthz "$work/health.lua" "16 spinning"
measure "echo.check" /v1/tools/echo.check/invoke "$work/echo.lua" "16 spinning"
kill "$spinners"; wait "$spinners" 2>/dev/null || true
# Four agents call the workflow with 140,000 items, again as soon as each
# call ends.
flooders=()
for _ in 1 2 3 4; do
  while true; do
    curl -s -o /dev/null -m 120 -X POST -H "Authorization: Bearer $TOOLHOST_AGENT_TOKEN" \
      -H 'Content-Type: application/json' --data-binary @"$work/items.json" "$url/v1/tools/each-item/invoke" || true
  done &
  flooders+=($!)
done
sleep 1
measure "GET /healthz" /healthz "$work/health.lua" "4 x 140,000-item workflow"
measure "echo.check" /v1/tools/echo.check/invoke "$work/echo.lua" "4 x 140,000-item workflow"
kill "${flooders[@]}"; wait "${flooders[@]}" 2>/dev/null || true
stop_server

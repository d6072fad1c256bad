#!/usr/bin/env bash
# toolhost against a peer wasm host, on the same trivial tool, in one run:
#
#   toolhost   POST /v1/tools/echo.check/invoke: bearer check, JSON to
#              component values and back, a fresh instance, a durable audit
#              record (the echo test component)
#   wasmtime   `wasmtime serve` of wasmtime-cli 48.0.8, the wasmtime toolhost
#              embeds: the same check in a wasi:http/proxy component
#              (host/benches/peer), a fresh instance per request with the
#              pooling allocator, no auth, no audit
#              (REUSE=N: both hosts let an instance serve N requests)
#   native     host/examples/native_baseline.rs, as in load.sh
#
# The first run installs wasmtime-cli into target/peer (a release build of
# wasmtime: ten minutes or more on two cores).
#
# Usage: [REUSE=N] [DURATION=8s] host/benches/peer.sh [concurrency ...]   (default: 16 64 256)
# Writes target/bench/peer[-reuseN].md and prints it.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
levels=("$@")
[ ${#levels[@]} -gt 0 ] || levels=(16 64 256)
duration=${DURATION:-8s}
source "$root/host/benches/servers.sh"
need wrk wrk

peer=$root/target/peer/bin/wasmtime
if [ ! -x "$peer" ] || ! "$peer" --version | grep -q '^wasmtime 48\.0\.8 '; then
  cargo install --quiet --locked --root "$root/target/peer" wasmtime-cli@48.0.8 >&2
fi
plugins/build.sh host/benches/peer >&2
component=host/benches/peer/target/wasm32-wasip2/release/peer_echo.wasm

reuse=()
[ -n "${REUSE:-}" ] && reuse=(--max-instance-reuse-count "$REUSE")
start wasmtime "$peer" serve --addr 127.0.0.1:0 -O pooling-allocator=y -S cli=y "${reuse[@]}" "$component"
wasmtime_url=${url%/}

requests echo.check
args=$(args echo.check)
script "$work/peer.lua" POST "$args"

# run URL SCRIPT CONCURRENCY → "rps p50 p99 p99.9 non2xx errors"
run() {
  local threads=2
  [ "$3" -ge 2 ] || threads=1
  wrk -t"$threads" -c"$3" -d"$duration" --timeout 10s -s "$2" "$1" | awk '$1 == "RESULT" {$1 = ""; print}'
}

mkdir -p target/bench
{
  echo "| conns | server | req/s | p50 | p99 | p99.9 | non-2xx | of native |"
  echo "|---|---|---|---|---|---|---|---|"
  for c in "${levels[@]}"; do
    read -r nr n50 n99 n999 nbad _ <<<"$(run "$native_url/v1/tools/echo.check/invoke" "$work/echo.check.native.lua" "$c")"
    for server in toolhost wasmtime; do
      if [ $server = toolhost ]; then
        read -r r p50 p99 p999 bad _ <<<"$(run "$toolhost_url/v1/tools/echo.check/invoke" "$work/echo.check.lua" "$c")"
      else
        read -r r p50 p99 p999 bad _ <<<"$(run "$wasmtime_url/" "$work/peer.lua" "$c")"
      fi
      awk -v c="$c" -v s=$server -v r="$r" -v a="$p50" -v b="$p99" -v d="$p999" -v bad="$bad" -v n="$nr" \
        'BEGIN { printf "| %s | %s | %.0f | %.2f ms | %.2f ms | %.2f ms | %s | %.2f |\n", c, s, r, a / 1000, b / 1000, d / 1000, bad, r / n }'
    done
    awk -v c="$c" -v r="$nr" -v a="$n50" -v b="$n99" -v d="$n999" -v bad="$nbad" \
      'BEGIN { printf "| %s | native | %.0f | %.2f ms | %.2f ms | %.2f ms | %s | 1.00 |\n", c, r, a / 1000, b / 1000, d / 1000, bad }'
  done
} > "target/bench/peer${REUSE:+-reuse$REUSE}.md"
cat "target/bench/peer${REUSE:+-reuse$REUSE}.md"

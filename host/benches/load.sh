#!/usr/bin/env bash
# Load test of POST /v1/tools/echo.check/invoke on loopback: `toolhost serve`
# (the tool in a fresh wasm instance per call) beside the native baseline
# (host/examples/native_baseline.rs: same auth, JSON and durable audit, the
# tool in plain Rust), driven by wrk in the same run, so the ratio is fair on
# a noisy machine.
#
# Usage: [REUSE=N] [DURATION=10s] host/benches/load.sh [concurrency ...]   (default: 64)
# Needs wrk (apt-get install wrk).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
levels=("$@")
[ ${#levels[@]} -gt 0 ] || levels=(64)
duration=${DURATION:-10s}
command -v wrk >/dev/null || { echo "load.sh: needs wrk (apt-get install wrk)" >&2; exit 1; }

plugins/build.sh >&2
cargo build --quiet --release -p toolhost --bin toolhost --example native_baseline

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

token=bench-agent-token-0123456789abcdef
digest=$(printf %s "$token" | sha256sum | cut -d' ' -f1)
mkdir -p "$work/plugins"
ln -s "$root/tests/guests/echo" "$work/plugins/echo"
cat > "$work/toolhost.toml" <<TOML
[server]
data-dir = "$work/data"
plugins-dir = "$work/plugins"

[[tokens]]
name = "bench"
role = "agent"
sha256 = "$digest"
rate-per-minute = 4000000000

[limits]
max-concurrency = 256

[plugins.echo]
max-concurrency = 256
TOML
# REUSE=N: let one instance serve up to N calls of the same caller (the echo
# guest declares itself stateless); unset, a fresh instance per call.
[ -n "${REUSE:-}" ] && echo "reuse-instances = $REUSE" >> "$work/toolhost.toml"

# start NAME COMMAND...: run it, wait for its "listening on http://ADDR" line.
start() {
  local name=$1; shift
  "$@" > "$work/$name.out" 2> "$work/$name.err" &
  pids+=($!)
  for _ in $(seq 100); do
    url=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$work/$name.out")
    [ -n "$url" ] && { echo "$url"; return; }
    sleep 0.1
  done
  echo "load.sh: $name did not start:" >&2; cat "$work/$name.err" >&2; exit 1
}

wasm_url=$(start toolhost target/release/toolhost --config "$work/toolhost.toml" serve --listen 127.0.0.1:0)
native_url=$(TOOLHOST_AGENT_TOKEN=$token start native target/release/examples/native_baseline "$work/native-data")

cat > "$work/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"ok": true, "message": "hello"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $token"
LUA

# run URL CONCURRENCY → "rps p50 p99 non2xx"
run() {
  local out
  local threads=2
  [ "$2" -ge 2 ] || threads=1
  out=$(wrk -t"$threads" -c"$2" -d"$duration" --latency -s "$work/post.lua" "$1/v1/tools/echo.check/invoke")
  local rps p50 p99 bad
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  bad=$(awk '/Non-2xx/ {print $5}' <<<"$out")
  echo "$rps $p50 $p99 ${bad:-0}"
}

printf '%-6s %-8s %12s %10s %10s %8s\n' conc server req/s p50 p99 non-2xx
for c in "${levels[@]}"; do
  read -r wr w50 w99 wbad < <(run "$wasm_url" "$c")
  read -r nr n50 n99 nbad < <(run "$native_url" "$c")
  printf '%-6s %-8s %12s %10s %10s %8s\n' "$c" wasm "$wr" "$w50" "$w99" "$wbad"
  printf '%-6s %-8s %12s %10s %10s %8s\n' "$c" native "$nr" "$n50" "$n99" "$nbad"
  awk -v w="$wr" -v n="$nr" -v c="$c" 'BEGIN { printf "%-6s throughput wasm/native = %.2f\n", c, w / n }'
done

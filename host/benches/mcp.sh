#!/usr/bin/env bash
# The same tool called over MCP and over REST, beside the native baseline,
# in one run, all driven by one closed-loop client
# (host/examples/load_generator.rs: one call in flight per session, every
# session its own keep-alive connection and, over MCP, its own MCP session,
# opened before the clock starts; exact percentiles). One client for every
# path, so the ratios measure the servers, not the clients:
#
#   native         host/examples/native_baseline.rs over REST, as in load.sh
#   rest           toolhost, POST /v1/tools/TOOL/invoke
#   mcp            toolhost, tools/call at /mcp in an MCP session (protocol
#                  2025-06-18: what agent clients speak today)
#   mcp-stateless  toolhost, tools/call at /mcp without a session (protocol
#                  2026-07-28: version and capabilities in each request)
#
# Per run: calls/s, p50/p99/p99.9, failed calls, the server's CPU per call
# (server and client share the machine's cores), and each path's throughput
# over REST's and over native's.
#
# Usage: [BIN=toolhost] [DURATION=8s] [WARMUP=1s] [TOOL=echo.check] [PATHS="rest mcp mcp-stateless"]
#        host/benches/mcp.sh [sessions ...]        (default: 1 16 64 256)
# Writes target/bench/mcp.{tsv,md} and prints the table.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
levels=("$@")
[ ${#levels[@]} -gt 0 ] || levels=(1 16 64 256)
duration=${DURATION:-8s}
warmup=${WARMUP:-1s}
tool=${TOOL:-echo.check}
read -r -a paths <<<"${PATHS:-rest mcp mcp-stateless}"

source "$root/host/benches/servers.sh"
cargo build --quiet --release -p toolhost --example load_generator
arguments=$(args "$tool")

ticks=$(getconf CLK_TCK)
cpu() { local t=0 p; for p in "$@"; do t=$(( t + $(awk '{print $14 + $15}' "/proc/$p/stat") )); done; echo "$t"; }

# run PATH SESSIONS → "calls/s p50 p99 p99.9 failed cpu-µs/call" (latencies in µs)
run() {
  local path=$1 sessions=$2 url=$toolhost_url pid=$toolhost_pid protocol=$1 before after out
  if [ "$path" = native ]; then url=$native_url pid=$native_pid protocol=rest; fi
  # shellcheck disable=SC2046 # serving is a list of pids
  before=$(cpu "$pid" $(serving "$tool"))
  out=$("${CARGO_TARGET_DIR:-target}/release/examples/load_generator" --protocol "$protocol" --url "$url" --token "$token" \
    --tool "$tool" --arguments "$arguments" --sessions "$sessions" --duration "$duration" --warmup "$warmup" |
    awk '$1 == "RESULT" {$1 = ""; print}')
  # shellcheck disable=SC2046
  after=$(cpu "$pid" $(serving "$tool"))
  read -r rate p50 p99 p999 failed <<<"$out"
  # The CPU of the warm-up is counted too, so the whole time the client ran.
  awk -v rate="$rate" -v t=$(( after - before )) -v hz="$ticks" -v d="${duration%s}" -v w="${warmup%s}" \
    -v rest="$p50 $p99 $p999 $failed" \
    'BEGIN { printf "%.0f %s %.1f\n", rate, rest, (t / hz) * 1e6 / (rate * (d + w)) }'
}

mkdir -p target/bench
tsv=target/bench/mcp.tsv
printf 'sessions\tpath\tcalls/s\tp50 µs\tp99 µs\tp99.9 µs\tfailed\tserver CPU µs/call\tof REST\tof native\n' > "$tsv"
for s in "${levels[@]}"; do
  read -r -a native <<<"$(run native "$s")"
  rest=
  for path in "${paths[@]}"; do
    read -r -a r <<<"$(run "$path" "$s")"
    [ "$path" = rest ] && rest=${r[0]}
    of_rest=$(awk -v a="${r[0]}" -v b="$rest" 'BEGIN { if (b > 0) printf "%.2f", a / b }')
    of_native=$(awk -v a="${r[0]}" -v b="${native[0]}" 'BEGIN { printf "%.2f", a / b }')
    printf '%s\t%s\t%s\t%s\t%s\n' "$s" "$path" "$(IFS=$'\t'; echo "${r[*]}")" "$of_rest" "$of_native" >> "$tsv"
    echo "mcp.sh: $path at $s session(s): ${r[0]} calls/s, p99 ${r[2]} µs (of REST ${of_rest:--}, of native $of_native)" >&2
  done
  printf '%s\tnative\t%s\t\t1.00\n' "$s" "$(IFS=$'\t'; echo "${native[*]}")" >> "$tsv"
done

awk -F'\t' 'NR == 1 { print "| sessions | path | calls/s | p50 | p99 | p99.9 | failed | server CPU/call | of REST | of native |"; print "|---|---|---|---|---|---|---|---|---|---|"; next }
  { printf "| %s | %s | %s | %.2f ms | %.2f ms | %.2f ms | %s | %s µs | %s | %s |\n", $1, $2, $3, $4 / 1000, $5 / 1000, $6 / 1000, $7, $8, $9, $10 }' \
  "$tsv" > target/bench/mcp.md
cat target/bench/mcp.md
echo "mcp.sh: wrote $tsv and target/bench/mcp.md" >&2

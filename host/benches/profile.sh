#!/usr/bin/env bash
# Where the time of a call goes: samples `toolhost serve` (and, for
# comparison, the same tool in host/examples/native_baseline.rs) with perf
# while wrk drives the tool,
# and sorts every sample into the phase of the call path it was taken in
# (host/benches/breakdown.py says which frames make which phase).
# Sampling is by CPU clock, so it sees the kernel's share too (page faults,
# madvise, sockets, fsync), which instruction counts would not.
#
# Usage: [TOOL=echo.check] [CONNS=64] [PROFILE_SECONDS=10] [REUSE=N] host/benches/profile.sh
# Writes target/bench/profile-TOOL[-reuseN].md, a flamegraph per server
# (-toolhost.svg, -native.svg; inferno, installed into target/bench-tools) (and the raw samples beside it).
# Needs perf (Debian: linux-perf) and wrk; installs them as root with apt.
set -euo pipefail
source "$(cd "$(dirname "$0")" && pwd)/servers.sh"
need wrk wrk
need perf linux-perf
tool=${TOOL:-echo.check}
conns=${CONNS:-64}
secs=${PROFILE_SECONDS:-10}
out=target/bench/profile-$tool${REUSE:+-reuse$REUSE}
requests "$tool"
mkdir -p target/bench

tools=$root/target/bench-tools/bin
[ -x "$tools/inferno-flamegraph" ] || cargo install --quiet --locked --root "$root/target/bench-tools" inferno >&2

ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# profile NAME URL SCRIPT PID: sample PID for $secs while wrk keeps $conns
# connections busy; prints the breakdown as Markdown.
profile() {
  local name=$1 url=$2 lua=$3 pid=$4 before after
  wrk -t2 -c"$conns" -d$((secs + 3))s -s "$lua" "$url" > "$work/wrk.out" &
  local load=$!
  sleep 1.5
  before=$(cpu "$pid")
  # 16 KiB of stack per sample is enough to unwind from the leaf through
  # hyper's dispatcher, which is what names the phase.
  perf record -q -e cpu-clock -F 499 --call-graph dwarf,16384 -p "$pid" -o "$work/$name.data" -- sleep "$secs" 2>/dev/null
  after=$(cpu "$pid")
  wait "$load"
  local rps
  rps=$(awk '$1 == "RESULT" {print $2}' "$work/wrk.out")
  perf script -i "$work/$name.data" --no-inline -F comm,tid,ip,sym 2>/dev/null > "$out-$name.samples"
  perf script -i "$work/$name.data" --no-inline 2>/dev/null | "$tools/inferno-collapse-perf" |
    "$tools/inferno-flamegraph" --title "$name: $tool at $conns connections" > "$out-$name.svg"
  python3 "$root/host/benches/breakdown.py" "$name" "$out-$name.samples" \
    "$(awk -v t=$(( after - before )) -v hz="$ticks" -v s="$secs" -v r="$rps" 'BEGIN { printf "%.2f", t / hz * 1e6 / (s * r) }')" "$rps"
}

{
  echo "# Where a call's time goes: $tool at $conns connections${REUSE:+, instance reuse $REUSE}"
  echo
  echo "perf, CPU-clock sampling at 499 Hz for ${secs} s per server, $(nproc) cores shared with wrk."
  echo
  profile toolhost "$toolhost_url/v1/tools/$tool/invoke" "$work/$tool.lua" "$toolhost_pid"
  echo
  profile native "$native_url/v1/tools/$tool/invoke" "$work/$tool.native.lua" "$native_pid"
} > "$out.md"
cat "$out.md"
echo "profile.sh: wrote $out.md" >&2

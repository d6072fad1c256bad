#!/usr/bin/env bash
# End-to-end load: `toolhost serve` with the reference connectors (crm, erp,
# logistics, coupon) and the echo test component, the sample upstreams
# behind them, all on 127.0.0.1, driven through POST /v1/tools/{tool}/invoke
# by wrk at several concurrency levels. Beside each, in the same run so the
# ratio is fair on a noisy machine, the same tool as native Rust behind axum
# (host/examples/native_baseline.rs: the same bearer check, JSON and durable
# audit record):
#
#   echo.check        trivial: checks a flag, returns a string
#   crm.get-customer  the reference CRM connector: one GET to the sample CRM,
#                     its fields mapped to the contract's `customer`
#
# Per run: throughput, p50/p99/p99.9 latency, non-2xx and socket errors, the
# CPU the serving processes used (the server, plus the upstream for
# crm.get-customer: cores busy over the run, and CPU time per request) and
# the server's peak resident memory (high-water mark, reset before each
# run). Load generator and servers share the machine's cores.
#
# Usage: [REUSE=N] [BIN=toolhost] [DURATION=8s] [TOOLS="echo.check crm.get-customer"]
#        host/benches/load.sh [concurrency ...]        (default: 1 16 64 256 1024)
# Writes target/bench/load[-reuseN].{tsv,md,png} and prints the table.
# Needs wrk and gnuplot (Debian: wrk, gnuplot-nox); installs them when run
# as root with apt-get at hand.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
levels=("$@")
[ ${#levels[@]} -gt 0 ] || levels=(1 16 64 256 1024)
duration=${DURATION:-8s}
read -r -a tools <<<"${TOOLS:-echo.check crm.get-customer}"

source "$root/host/benches/servers.sh"
need wrk wrk
need gnuplot gnuplot-nox

for tool in "${tools[@]}"; do requests "$tool"; done

ticks=$(getconf CLK_TCK)
# cpu PID...: user + system CPU ticks the processes have used so far.
cpu() { local t=0 p; for p in "$@"; do t=$(( t + $(awk '{print $14 + $15}' "/proc/$p/stat") )); done; echo "$t"; }
# peak_kib PID: resident high-water mark since the last reset.
peak_kib() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }

# run URL SCRIPT CONCURRENCY MEASURED-PID [OTHER-SERVING-PIDS...]
#   → "rps p50 p99 p99.9 non2xx errors cores cpu-us/req peak-MiB"
run() {
  local url=$1 lua=$2 conns=$3 main=$4; shift 4
  local threads=2 before after out
  [ "$conns" -ge 2 ] || threads=1
  echo 5 > "/proc/$main/clear_refs"
  before=$(cpu "$main" "$@")
  out=$(wrk -t"$threads" -c"$conns" -d"$duration" --timeout 10s -s "$lua" "$url" | awk '$1 == "RESULT" {$1 = ""; print}')
  after=$(cpu "$main" "$@")
  read -r rps p50 p99 p999 bad errs <<<"$out"
  awk -v rps="$rps" -v d="${duration%s}" -v t=$(( after - before )) -v hz="$ticks" -v kib="$(peak_kib "$main")" \
    -v rest="$p50 $p99 $p999 $bad $errs" \
    'BEGIN { cpu = t / hz; printf "%.0f %s %.2f %.1f %.1f\n", rps, rest, cpu / d, cpu * 1e6 / (rps * d), kib / 1024 }'
}

out=target/bench/load${REUSE:+-reuse$REUSE}
mkdir -p target/bench "$work/series"
tsv=$out.tsv
printf 'tool\tconns\tserver\treq/s\tp50 µs\tp99 µs\tp99.9 µs\tnon-2xx\tsocket errors\tCPU cores\tCPU µs/req\tpeak MiB\tratio\n' > "$tsv"
for tool in "${tools[@]}"; do
  for c in "${levels[@]}"; do
    # shellcheck disable=SC2046 # serving is a list of pids
    read -r -a w <<<"$(run "$toolhost_url/v1/tools/$tool/invoke" "$work/$tool.lua" "$c" "$toolhost_pid" $(serving "$tool"))"
    # shellcheck disable=SC2046
    read -r -a b <<<"$(run "$native_url/v1/tools/$tool/invoke" "$work/$tool.native.lua" "$c" "$native_pid" $(serving "$tool"))"
    ratio=$(awk -v w="${w[0]}" -v b="${b[0]}" 'BEGIN { printf "%.2f", w / b }')
    printf '%s\t%s\ttoolhost\t%s\t%s\n' "$tool" "$c" "$(IFS=$'\t'; echo "${w[*]}")" "$ratio" >> "$tsv"
    printf '%s\t%s\t%s\t%s\t\n' "$tool" "$c" native "$(IFS=$'\t'; echo "${b[*]}")" >> "$tsv"
    echo "$c ${w[0]} ${w[2]}" >> "$work/series/$tool-toolhost"
    echo "$c ${b[0]} ${b[2]}" >> "$work/series/$tool-native"
    echo "load.sh: $tool at $c connections: ${w[0]} req/s through toolhost, ${b[0]} native ($ratio)" >&2
  done
done

# The table as Markdown, latencies in ms.
awk -F'\t' 'NR == 1 { printf "| tool | conns | server | req/s | p50 | p99 | p99.9 | non-2xx | errors | CPU (cores) | CPU µs/req | peak RSS | toolhost / native |\n"; print "|---|---|---|---|---|---|---|---|---|---|---|---|---|"; next }
  { printf "| %s | %s | %s | %s | %.2f ms | %.2f ms | %.2f ms | %s | %s | %s | %s | %s MiB | %s |\n", $1, $2, $3, $4, $5 / 1000, $6 / 1000, $7 / 1000, $8, $9, $10, $11, $12, $13 }' \
  "$tsv" > "$out.md"

# The plot: throughput and p99 against connections, one line per tool and server.
plots_rps= plots_p99=
for f in "$work"/series/*; do
  name=$(basename "$f")
  plots_rps+="'$f' using 1:2 with linespoints title '$name', "
  plots_p99+="'$f' using 1:(\$3/1000) with linespoints title '$name', "
done
gnuplot <<GP
set terminal pngcairo size 1200,500 font ",10"
set output "$out.png"
set multiplot layout 1,2 title "toolhost load${REUSE:+ (reuse $REUSE)}: $(nproc) cores, $duration per point"
set logscale x 2
set logscale y 10
set xlabel "concurrent connections"
set key left top
set grid
set ylabel "requests / s"
plot ${plots_rps%, }
set ylabel "p99 latency (ms)"
plot ${plots_p99%, }
unset multiplot
GP
cat "$out.md"
echo "load.sh: wrote $tsv, $out.md and $out.png" >&2

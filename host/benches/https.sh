#!/usr/bin/env bash
# Outbound HTTPS: how fast a connector reaches a local HTTPS upstream, and
# how many connections the upstream sees opened per 1,000 calls. The
# `netprobe` test component makes one GET per call to
# https://127.0.0.1:PORT/ok (an upstream whose certificate comes from a CA
# made at start, trusted through `[server] extra-ca-roots`), driven by wrk
# at 1 and 16 connections, 8 s each.
#
# Usage: [DURATION=8s] [BEFORE_BIN=path/to/old/toolhost] host/benches/https.sh
# BEFORE_BIN measures another build in the same run. Builds from before
# `extra-ca-roots` existed trusted only the built-in web roots; such a build
# is expected to trust the CA given in TOOLHOST_BENCH_EXTRA_CA instead
# (BENCHMARKS.md says how the "before" figures were made).
# Needs wrk (Debian: wrk); installs it when run as root with apt-get at hand.
source "$(dirname "$0")/common.sh"
duration=${DURATION:-8s}
command -v wrk >/dev/null || apt-get install -y -q wrk >&2
cargo build --quiet --release -p toolhost-tests --bin https-upstream
upstream_bin=${CARGO_TARGET_DIR:-$root/target}/release/https-upstream

"$upstream_bin" "$work/ca.pem" > "$work/upstream.out" &
upstream_pid=$!
trap 'kill $upstream_pid 2>/dev/null; cleanup' EXIT
for _ in $(seq 500); do
  read -r _ https _ stats < "$work/upstream.out" 2>/dev/null && [ -n "${stats:-}" ] && break
  sleep 0.01
done
# connections requests, as the upstream counts them
seen() { curl -s "http://$stats/"; }

mkdir -p "$work/plugins"
ln -s "$root/tests/guests/netprobe" "$work/plugins/netprobe"
wrk_script POST "{\"method\": \"GET\", \"url\": \"https://$https/ok\", \"host-header\": null}" > "$work/wrk.lua"

# measure NAME BIN CONFIG-EXTRA: one row per concurrency
measure() {
  local name=$1 server_bin=$2 extra=$3
  # No token rate limit: the load is the point.
  printf '[server]\nrate-per-minute = 4000000000\n%s[plugins.netprobe]\nhttp = [{ origin = "https://%s" }]\n' "$extra" "$https" > "$work/$name.toml"
  rm -rf "$work/data"
  bin=$server_bin TOOLHOST_CONFIG="$work/$name.toml" start_server "$work/data" "$work/plugins"
  # One call first: the instance pool and the connection warm up, and a
  # build that cannot reach the upstream shows it here.
  curl -sf -H "Authorization: Bearer $TOOLHOST_AGENT_TOKEN" -H 'Content-Type: application/json' \
    -d "{\"method\": \"GET\", \"url\": \"https://$https/ok\", \"host-header\": null}" \
    "$url/v1/tools/netprobe.fetch/invoke" | grep -q '"result":200' || { echo "$name: the first call failed" >&2; cat "$work/err" >&2; exit 1; }
  for c in 1 16; do
    read -r c0 r0 <<<"$(seen)"
    read -r _ calls p50 p99 _ non2xx <<<"$(wrk -t"$(( c < 2 ? 1 : 2 ))" -c"$c" -d"$duration" -s "$work/wrk.lua" "$url/v1/tools/netprobe.fetch/invoke" | grep '^RESULT')"
    read -r c1 r1 <<<"$(seen)"
    local secs=${duration%s}
    printf '| %s | %d | %d | %d | %d | %d | %.1f | %d |\n' "$name" "$c" $(( calls / secs )) "$p50" "$p99" \
      "$(( r1 - r0 ))" "$(echo "($c1 - $c0) * 1000 / ($r1 - $r0)" | bc -l)" "$non2xx"
  done
  stop_server
}

echo "| build | wrk connections | calls/s | p50 µs | p99 µs | upstream requests | connections opened per 1,000 calls | non-2xx |"
echo "|---|---|---|---|---|---|---|---|"
if [ -n "${BEFORE_BIN:-}" ]; then
  TOOLHOST_BENCH_EXTRA_CA="$work/ca.pem" measure before "$BEFORE_BIN" ""
fi
measure after "$bin" "extra-ca-roots = \"$work/ca.pem\"
"

#!/usr/bin/env bash
# Start-up time and resident memory with 1, 10, 100 and 1000 plugins loaded
# (distinct components: the echo guest with a custom section naming each),
# cold (empty compile cache) and warm, in one run.
# Usage: host/benches/scale.sh [counts ...]   (default: 1 10 100 1000)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(1 10 100 1000)
plugins/build.sh >&2
cargo build --quiet --release -p toolhost --bin toolhost
bin=$root/target/release/toolhost
work=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
export TOOLHOST_ADMIN_TOKEN=bench-admin-token-0123456789 TOOLHOST_AGENT_TOKEN=bench-agent-token-0123456789
now_ms() { date +%s%3N; }

make_plugins() { # DIR N
  python3 "$root/host/benches/make_plugins.py" "$root/tests/guests/echo" "$1" "$2"
}

start() { # DATA PLUGINS → sets pid, ms, rss_kb
  local t0; t0=$(now_ms)
  "$bin" serve --listen 127.0.0.1:0 --data-dir "$1" --plugins-dir "$2" > "$work/out" 2> "$work/err" &
  pid=$!
  for _ in $(seq 30000); do
    grep -q '^toolhost listening on' "$work/out" && break
    sleep 0.01
  done
  ms=$(( $(now_ms) - t0 ))
  rss_kb=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
}

printf '%8s %14s %14s %12s %16s\n' plugins "cold start ms" "warm start ms" "RSS MiB" "RSS KiB/plugin"
base_rss=
for n in "${counts[@]}"; do
  rm -rf "$work/p" "$work/d"; mkdir -p "$work/p"
  make_plugins "$work/p" "$n"
  start "$work/d" "$work/p"; cold=$ms
  start "$work/d" "$work/p"; warm=$ms; rss=$rss_kb
  [ -n "$base_rss" ] || base_rss=$rss
  per=$(( n > 1 ? (rss - base_rss) / (n - 1) : 0 ))
  printf '%8d %14d %14d %12.1f %16s\n' "$n" "$cold" "$warm" "$(awk -v r="$rss" 'BEGIN{print r/1024}')" "$([ "$n" -gt 1 ] && echo "$per" || echo -)"
done

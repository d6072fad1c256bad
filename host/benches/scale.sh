#!/usr/bin/env bash
# Start-up time and resident memory with 1, 10, 100 and 1000 plugins loaded
# (distinct components: the echo guest with a custom section naming each),
# cold (empty compile cache) and warm, in one run.
# Usage: host/benches/scale.sh [counts ...]   (default: 1 10 100 1000)
counts=("$@")
source "$(dirname "$0")/common.sh"
[ ${#counts[@]} -gt 0 ] || counts=(1 10 100 1000)

make_plugins() { # DIR N
  python3 "$root/host/benches/make_plugins.py" "$root/tests/guests/echo" "$1" "$2"
}

start() { # DATA PLUGINS → sets ms, rss_kb
  start_server "$1" "$2"
  ms=$startup_ms
  rss_kb=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  stop_server
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

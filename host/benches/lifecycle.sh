#!/usr/bin/env bash
# Operator-side timings, each beside its cold counterpart in the same run:
#  - upload → serving (PUT /v1/plugins/NAME returns once it serves) for the
#    reference connectors: first upload (compiles) vs the same component
#    again under a new version (compile cache hit);
#  - start-up with 20 plugins (distinct components): empty cache vs warm.
# Usage: host/benches/lifecycle.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
plugins/build.sh >&2
cargo build --quiet --release -p toolhost --bin toolhost
bin=$root/target/release/toolhost
work=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
export TOOLHOST_ADMIN_TOKEN=bench-admin-token-0123456789
export TOOLHOST_AGENT_TOKEN=bench-agent-token-0123456789

now_ms() { date +%s%3N; }

# serve DATA PLUGINS: start, wait for the listening line; sets $pid, $url, $startup_ms.
serve() {
  local t0; t0=$(now_ms)
  "$bin" serve --listen 127.0.0.1:0 --data-dir "$1" --plugins-dir "$2" > "$work/out" 2> "$work/err" &
  pid=$!
  for _ in $(seq 600); do
    url=$(sed -n 's/^toolhost listening on //p' "$work/out")
    if [ -n "$url" ]; then startup_ms=$(( $(now_ms) - t0 )); return; fi
    sleep 0.01
  done
  cat "$work/err" >&2; exit 1
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=; }

upload() { # DIR MANIFEST_FILE → seconds
  local dir=$1 manifest=$2 name wasm
  name=$(sed -n 's/^name *= *"\(.*\)"/\1/p' "$manifest")
  wasm=$(ls "$dir"/*.wasm | head -n 1)
  curl -s -o "$work/upload.json" -w '%{time_total}' -X PUT \
    -H "Authorization: Bearer $TOOLHOST_ADMIN_TOKEN" \
    -F "manifest=<$manifest" -F "component=@$wasm" "$url/v1/plugins/$name"
  grep -q '"state"' "$work/upload.json" || { cat "$work/upload.json" >&2; exit 1; }
}

mkdir -p "$work/empty"
serve "$work/data-upload" "$work/empty"
printf '%-12s %14s %14s %8s\n' connector "cold (ms)" "cache hit (ms)" ratio
for manifest in plugins/*/connector.toml; do
  dir=$(dirname "$manifest")
  cold=$(upload "$dir" "$manifest")
  sed 's/^version *= *".*"/version = "99.0.0"/' "$manifest" > "$work/bumped.toml"
  warm=$(upload "$dir" "$work/bumped.toml")
  awk -v n="$(basename "$dir")" -v c="$cold" -v w="$warm" 'BEGIN { printf "%-12s %14.1f %14.1f %8.1f\n", n, c*1000, w*1000, c/w }'
done
stop

# Twenty distinct components: the echo guest with a custom section naming each.
mkdir -p "$work/twenty"
python3 host/benches/make_plugins.py tests/guests/echo "$work/twenty" 20
serve "$work/data-twenty" "$work/twenty"; cold=$startup_ms; stop
serve "$work/data-twenty" "$work/twenty"; warm=$startup_ms; stop
printf '\nstart-up with 20 plugins: empty cache %d ms, warm cache %d ms, ratio %.1f\n' "$cold" "$warm" "$(awk -v c="$cold" -v w="$warm" 'BEGIN{print c/w}')"

#!/usr/bin/env bash
# Operator-side timings, each beside its cold counterpart in the same run:
#  - upload → serving (PUT /v1/plugins/NAME returns once it serves) for the
#    reference connectors: first upload (compiles) vs the same component
#    again under a new version (compile cache hit);
#  - start-up with 20 plugins (distinct components): empty cache vs warm.
# Usage: host/benches/lifecycle.sh
source "$(dirname "$0")/common.sh"

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
start_server "$work/data-upload" "$work/empty"
printf '%-12s %14s %14s %8s\n' connector "cold (ms)" "cache hit (ms)" ratio
for manifest in plugins/*/connector.toml; do
  dir=$(dirname "$manifest")
  cold=$(upload "$dir" "$manifest")
  sed 's/^version *= *".*"/version = "99.0.0"/' "$manifest" > "$work/bumped.toml"
  warm=$(upload "$dir" "$work/bumped.toml")
  awk -v n="$(basename "$dir")" -v c="$cold" -v w="$warm" 'BEGIN { printf "%-12s %14.1f %14.1f %8.1f\n", n, c*1000, w*1000, c/w }'
done
stop_server

# Twenty distinct components: the echo guest with a custom section naming each.
mkdir -p "$work/twenty"
python3 host/benches/make_plugins.py tests/guests/echo "$work/twenty" 20
start_server "$work/data-twenty" "$work/twenty"; cold=$startup_ms; stop_server
start_server "$work/data-twenty" "$work/twenty"; warm=$startup_ms; stop_server
printf '\nstart-up with 20 plugins: empty cache %d ms, warm cache %d ms, ratio %.1f\n' "$cold" "$warm" "$(awk -v c="$cold" -v w="$warm" 'BEGIN{print c/w}')"

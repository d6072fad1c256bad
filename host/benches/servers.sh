# Sourced by load.sh and profile.sh: builds in release mode and starts, on
# 127.0.0.1, the sample upstreams, `toolhost serve` with the reference
# connectors (crm, erp, logistics, coupon) and the echo test component, and
# the native baseline (host/examples/native_baseline.rs); all are stopped on
# exit. Sets $toolhost_url/$toolhost_pid, $native_url/$native_pid,
# $upstream_url/$upstream_pid, $token (the agent's), $work, and defines
# `script` (a wrk script for one request) and `need`.
# REUSE=N grants instance reuse (N calls per instance) to echo and crm.
# BIN=path/to/toolhost serves with another build (an older commit's, for a
# before/after); the baseline and upstreams are this checkout's.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"

need() {
  command -v "$1" >/dev/null && return
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get install -y -q "$2" >&2
  else
    echo "${0##*/}: needs $1 (Debian package $2)" >&2
    exit 1
  fi
}
plugins/build.sh >&2
cargo build --quiet --release -p toolhost -p sample-upstreams --bins --example native_baseline

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

token=bench-agent-token-0123456789abcdef
mkdir -p "$work/plugins"
ln -s "$root/tests/guests/echo" "$work/plugins/echo"
for c in coupon crm erp logistics; do ln -s "$root/plugins/$c" "$work/plugins/$c"; done

# start NAME COMMAND...: run it in the background and wait for its
# "listening on http://ADDR" line (or `wasmtime serve`'s "Serving HTTP on",
# on either stream); sets $url and the server's pid in $pid.
start() {
  local name=$1; shift
  "$@" > "$work/$name.out" 2> "$work/$name.err" &
  pid=$!
  pids+=("$pid")
  for _ in $(seq 300); do
    url=$(sed -n 's/.*\(listening on\|Serving HTTP on\) \(http:[^ ]*\).*/\2/p' "$work/$name.out" "$work/$name.err" | head -n 1)
    [ -n "$url" ] && return
    sleep 0.1
  done
  echo "${0##*/}: $name did not start:" >&2; cat "$work/$name.err" >&2; exit 1
}

start upstreams "${CARGO_TARGET_DIR:-target}/release/sample-upstreams" "$work/upstreams" 127.0.0.1:0 "$work/grants.toml"
upstream_url=$url upstream_pid=$pid

cat > "$work/toolhost.toml" <<TOML
[server]
data-dir = "$work/data"
plugins-dir = "$work/plugins"
# Sized for the highest level load.sh drives: 1024 calls in flight.
max-instances = 1024
# One token drives every session mcp.sh opens (up to 256 at once, and the
# last level's still closing): above the per-token share of 64.
max-mcp-sessions = 2048
max-mcp-sessions-per-principal = 1024

[[tokens]]
name = "bench"
role = "agent"
sha256 = "$(printf %s "$token" | sha256sum | cut -d' ' -f1)"
rate-per-minute = 4000000000

[limits]
max-concurrency = 1024

TOML
cat "$work/grants.toml" >> "$work/toolhost.toml"
# REUSE=N: let one instance serve up to N calls of the same caller, for the
# connectors that declare themselves stateless; unset, a fresh instance per
# call (the default).
if [ -n "${REUSE:-}" ]; then
  printf '\n[plugins.echo]\nreuse-instances = %s\n' "$REUSE" >> "$work/toolhost.toml"
  sed -i "/^\[plugins\.crm\]/a reuse-instances = $REUSE" "$work/toolhost.toml"
fi

start toolhost "${BIN:-${CARGO_TARGET_DIR:-target}/release/toolhost}" --config "$work/toolhost.toml" serve --listen 127.0.0.1:0
toolhost_url=$url toolhost_pid=$pid
TOOLHOST_AGENT_TOKEN=$token CRM_BASE_URL=$upstream_url/crm/v1 CRM_API_KEY=crm-demo-key \
  start native "${CARGO_TARGET_DIR:-target}/release/examples/native_baseline" "$work/native-data"
native_url=$url native_pid=$pid

# script FILE METHOD BODY HEADER...: a wrk script that sends one request and
# prints, when done, "rps p50 p99 p99.9 non2xx socket-errors" (latencies in µs).
script() {
  local file=$1 method=$2 body=$3; shift 3
  {
    echo "wrk.method = \"$method\""
    [ -n "$body" ] && echo "wrk.body = '$body'" && echo 'wrk.headers["Content-Type"] = "application/json"'
    for h in "$@"; do echo "wrk.headers[\"${h%%:*}\"] = \"${h#*: }\""; done
    cat <<'LUA'
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %.1f %d %d %d %d %d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9),
    e.status, e.connect + e.read + e.write + e.timeout))
end
LUA
  } > "$file"
}


# args TOOL: the arguments the benchmarks call TOOL with; each has a native
# twin in host/examples/native_baseline.rs.
args() {
  case $1 in
    echo.check) echo '{"ok": true, "message": "hello"}' ;;
    crm.get-customer) echo '{"customer-id": "C-1001"}' ;;
    *) echo "${0##*/}: no native baseline for $1 (known: echo.check crm.get-customer)" >&2; exit 1 ;;
  esac
}

# requests TOOL: write the wrk scripts that call TOOL through toolhost
# ($work/TOOL.lua) and natively ($work/TOOL.native.lua).
requests() {
  local args
  args=$(args "$1")
  script "$work/$1.lua" POST "$args" "Authorization: Bearer $token"
  script "$work/$1.native.lua" POST "$args" "Authorization: Bearer $token"
}

# serving TOOL: the pids besides the server's whose CPU a call of TOOL uses
# (the upstream a connector calls).
serving() { [ "$1" = echo.check ] || echo "$upstream_pid"; }

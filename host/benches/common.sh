# Sourced by the operator benchmarks (lifecycle.sh, scale.sh): the repository
# root, components and a release `toolhost` built, a scratch folder removed
# on exit, and a server to start and stop.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
plugins/build.sh >&2
cargo build --quiet --release -p toolhost --bin toolhost
# BIN=path/to/toolhost measures another build (an older commit's, for a
# before/after in one run).
bin=${BIN:-${CARGO_TARGET_DIR:-$root/target}/release/toolhost}
work=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
# Killed from outside (a timeout), still stop the server: bash runs the
# EXIT trap on a signal only if the signal is trapped.
trap 'exit 143' TERM INT
export TOOLHOST_ADMIN_TOKEN=bench-admin-token-0123456789
export TOOLHOST_AGENT_TOKEN=bench-agent-token-0123456789

now_ms() { date +%s%3N; }

# start_server DATA PLUGINS: start `toolhost serve` and wait for its
# listening line (up to 5 minutes: a cold start compiles every plugin);
# sets $pid, $url and $startup_ms.
start_server() {
  local t0; t0=$(now_ms)
  "$bin" serve --listen 127.0.0.1:0 --data-dir "$1" --plugins-dir "$2" > "$work/out" 2> "$work/err" &
  pid=$!
  for _ in $(seq 30000); do
    url=$(sed -n 's/^toolhost listening on //p' "$work/out")
    if [ -n "$url" ]; then startup_ms=$(( $(now_ms) - t0 )); return; fi
    sleep 0.01
  done
  cat "$work/err" >&2; exit 1
}

stop_server() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=; }

# wrk_script METHOD BODY: a wrk script, as the agent, that prints "RESULT
# requests p50 p99 p99.9 non-2xx" (latencies in µs) when done.
wrk_script() {
  cat <<LUA
wrk.method = "$1"
wrk.headers["Authorization"] = "Bearer $TOOLHOST_AGENT_TOKEN"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '$2'
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %d %d %d\n", summary.requests,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), summary.errors.status))
end
LUA
}

#!/usr/bin/env bash
# One node on sled, one node on PostgreSQL, two nodes on one PostgreSQL:
# the same calls through each, in one run, so that the ratios are fair on a
# noisy machine (issue 16). All on 127.0.0.1: the sample upstreams, the
# native baseline, the toolhost nodes and a PostgreSQL that this script
# initialises in a temporary folder and runs as the unprivileged `postgres`
# user (Debian's `postgresql` package, installed when missing).
#
# Per tool and setup: throughput, p50/p99, and CPU per call: the toolhost
# processes', and the database's (every process of the PostgreSQL server)
# beside it. With two nodes, wrk drives each with half the connections and
# the throughputs add up. On a 2-core machine the nodes, the database, the
# upstream and wrk share the cores: read CPU per call, not speed-up.
#
# Then the audit trail: AUDIT_RECORDS (default 1,000,000) records written
# through each backend's store, and a query by session timed on each
# (host/examples/audit_query.rs).
#
# Usage: [DURATION=8s] [CONNS=64] [AUDIT_RECORDS=1000000] host/benches/nodes.sh
# Writes target/bench/nodes.{tsv,md} and prints the table.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
duration=${DURATION:-8s}
conns=${CONNS:-64}
records=${AUDIT_RECORDS:-1000000}

source "$root/host/benches/servers.sh"
need wrk wrk
cargo build --quiet --release -p toolhost --example audit_query

# PostgreSQL, as in tests/src/postgres.rs: initdb and pg_ctl as `postgres`.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || { echo "nodes.sh: needs Debian's postgresql" >&2; exit 1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2
fi
pg_bin=$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb | tail -n 1)")
pg_dir=$(mktemp -d /tmp/toolhost-bench-pg.XXXXXX)
chown postgres "$pg_dir"
pg_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_pg() { runuser -u postgres -- "$@"; }
as_pg "$pg_bin/initdb" -D "$pg_dir/data" -U toolhost --auth=trust >/dev/null
as_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" -w \
  -o "-c listen_addresses=127.0.0.1 -p $pg_port -k $pg_dir -c max_connections=200" start >/dev/null
stop_pg() { as_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -m fast stop >/dev/null 2>&1 || true; rm -rf "$pg_dir"; }
trap 'stop_pg; cleanup' EXIT
pg_url() { echo "postgres://toolhost@127.0.0.1:$pg_port/$1"; }
as_pg "$pg_bin/createdb" -h 127.0.0.1 -p "$pg_port" -U toolhost nodes
as_pg "$pg_bin/createdb" -h 127.0.0.1 -p "$pg_port" -U toolhost single
pg_pids() { pgrep -u postgres -d ' ' -f "postgres" || true; }

# node NAME DATABASE: a toolhost node on PostgreSQL; sets $url and $pid.
node() {
  start "node-$1" "${BIN:-target/release/toolhost}" --config "$work/toolhost.toml" \
    --data-dir "$work/data-$1" --storage-url "$(pg_url "$2")" --node "$1" serve --listen 127.0.0.1:0
}
node single single
single_url=$url single_pid=$pid
node a nodes
a_url=$url a_pid=$pid
node b nodes
b_url=$url b_pid=$pid

ticks=$(getconf CLK_TCK)
cpu() { local t=0 p; for p in "$@"; do [ -r "/proc/$p/stat" ] && t=$(( t + $(awk '{print $14 + $15}' "/proc/$p/stat") )); done; echo "$t"; }

# measure TOOL "URL..." "NODE-PIDS": wrk on each URL at once (the
# connections split between them) → "rps p50 p99 node-µs/call db-µs/call".
measure() {
  local tool=$1 urls=($2) nodes=($3) n each before_n before_db after_n after_db
  n=${#urls[@]}
  each=$(( conns / n ))
  local db; db=$(pg_pids)
  # shellcheck disable=SC2086
  before_n=$(cpu "${nodes[@]}"); before_db=$(cpu $db)
  local i=0 drivers=()
  for u in "${urls[@]}"; do
    wrk -t1 -c"$each" -d"$duration" --timeout 10s -s "$work/$tool.lua" "$u/v1/tools/$tool/invoke" \
      | awk '$1 == "RESULT" {$1 = ""; print}' > "$work/wrk.$i" &
    drivers+=("$!")
    i=$(( i + 1 ))
  done
  wait "${drivers[@]}"
  # shellcheck disable=SC2086
  after_n=$(cpu "${nodes[@]}"); after_db=$(cpu $db)
  cat "$work"/wrk.* | awk -v d="${duration%s}" -v tn=$(( after_n - before_n )) -v td=$(( after_db - before_db )) -v hz="$ticks" '
    { rps += $1; if ($2 > p50) p50 = $2; if ($3 > p99) p99 = $3 }
    END { calls = rps * d; printf "%.0f %d %d %.0f %.0f\n", rps, p50, p99, tn / hz * 1e6 / calls, td / hz * 1e6 / calls }'
  rm -f "$work"/wrk.*
}

mkdir -p target/bench
tsv=target/bench/nodes.tsv
printf 'tool\tsetup\treq/s\tp50 µs\tp99 µs\ttoolhost CPU µs/call\tdatabase CPU µs/call\tratio to native\n' > "$tsv"
for tool in echo.check crm.get-customer; do
  requests "$tool"
  read -r -a n <<<"$(measure "$tool" "$native_url" "$native_pid")"
  printf '%s\tnative baseline\t%s\t%s\t%s\t%s\t-\t1.00\n' "$tool" "${n[0]}" "${n[1]}" "${n[2]}" "${n[3]}" >> "$tsv"
  for setup in "1 node, sled|$toolhost_url|$toolhost_pid" "1 node, PostgreSQL|$single_url|$single_pid" \
               "2 nodes, PostgreSQL|$a_url $b_url|$a_pid $b_pid"; do
    IFS='|' read -r name urls pids <<<"$setup"
    read -r -a r <<<"$(measure "$tool" "$urls" "$pids")"
    db=${r[4]}; [ "$name" = "1 node, sled" ] && db=-
    ratio=$(awk -v a="${r[0]}" -v b="${n[0]}" 'BEGIN { printf "%.2f", a / b }')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$name" "${r[0]}" "${r[1]}" "${r[2]}" "${r[3]}" "$db" "$ratio" >> "$tsv"
    echo "nodes.sh: $tool, $name: ${r[0]} calls/s (native ${n[0]})" >&2
  done
done

# The audit trail: records written through each store, then a query by session.
audit=$(target/release/examples/audit_query --records "$records" \
  --sled "$work/audit-sled" --postgres "$(pg_url nodes)")
{
  printf '\n| tool | setup | calls/s | p50 ms | p99 ms | toolhost CPU µs/call | database CPU µs/call | ratio to native |\n'
  printf '|---|---|---:|---:|---:|---:|---:|---:|\n'
  tail -n +2 "$tsv" | awk -F'\t' '{ printf "| %s | %s | %s | %.2f | %.2f | %s | %s | %s |\n", $1, $2, $3, $4 / 1000, $5 / 1000, $6, $7, $8 }'
  printf '\n%s\n' "$audit"
} | tee target/bench/nodes.md

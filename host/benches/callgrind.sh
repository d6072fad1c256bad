#!/usr/bin/env bash
# Instruction counts (callgrind) for one `toolhost call echo.check` as a whole
# process, and the pieces of the call path inside it. Counts do not move with
# the machine's load, so two builds compare exactly.
#
# valgrind cannot reserve the instance pool's default address space, so the
# run sizes it for one instance (`max-instances = 1`). Under valgrind threads
# take turns, which makes sled's start-up spin-wait look huge: read the
# toolhost and wasmtime rows, not the total.
#
# Usage: host/benches/callgrind.sh        Needs valgrind (Debian: valgrind).
set -euo pipefail
source "$(cd "$(dirname "$0")" && pwd)/common.sh"
command -v valgrind >/dev/null || { echo "callgrind.sh: needs valgrind" >&2; exit 1; }
mkdir -p "$work/plugins"
ln -s "$root/tests/guests/echo" "$work/plugins/echo"
printf '[server]\nmax-instances = 1\n' > "$work/toolhost.toml"
call() { "$@" "$bin" --config "$work/toolhost.toml" --plugins-dir "$work/plugins" --data-dir "$work/data" \
  call echo.check '{"ok": true, "message": "hi"}'; }
# Once under valgrind to fill the compile cache for the CPU valgrind
# presents, then the measured run.
call valgrind -q --tool=callgrind --callgrind-out-file=/dev/null > /dev/null
call valgrind -q --tool=callgrind --callgrind-out-file="$work/out" > /dev/null
# Inclusive instructions of the pieces: start-up (contract, runtime, storage,
# plugin load from the compile cache) and the call (store set-up, the
# instantiate-and-call block, the conversions, the audit writes: the
# plugin-loaded event and the call record).
pieces='plugin::Plugin::load|contract::Contract::parse|runtime::Runtime::new|storage::Storage::open'
pieces+='|invoke::new_store|invoke::call::\{\{closure\}\}::\{\{closure\}\}|values::args_from_json|values::to_json'
pieces+='|audit::AuditLog::write::\{\{closure\}\}'
callgrind_annotate --inclusive=yes --threshold=100 "$work/out" |
  grep -E "toolhost::($pieces) \[" | tr -d , |
  awk '{ for (i = 2; i <= NF; i++) if ($i ~ /toolhost::/) { n = $i; sub(/.*toolhost::/, "", n) }; printf "%12d  %s\n", $1, n }' | sort -rn

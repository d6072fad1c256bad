#!/usr/bin/env python3
"""Sort perf samples of a server into the phases of a call.

Usage: breakdown.py NAME SAMPLES CPU_US_PER_REQUEST REQUESTS_PER_SECOND

SAMPLES is `perf script -F comm,tid,ip,sym` output with call graphs. Each
sample goes to the first phase in PHASES that any frame of its stack
matches, so the order is the priority: a sled insert made by the audit log
counts as the audit record, a page fault inside instantiation as
instantiation. Prints a Markdown table: each phase's share of the samples
and, from the CPU time per request measured in the same run, its cost per
request.
"""

import re
import sys
from collections import Counter

PHASES = [
    # Async functions are state machines polled inline, so an inner call
    # often shows without its caller's frame: each phase also names the
    # wasmtime internals that only it runs.
    ("outbound HTTP (wasi-http, grant checks, connect, send, receive)",
     r"wasmtime_wasi_http::|toolhost::capabilities::http|hyper::client|hyper_util::client|proto::h1::role::Client"),
    ("instantiate (pooling allocator, core instances, start)",
     r"InstancePre<.*>::instantiate|Instantiator|vm::instance::Instance::new|OwnedImports|index_allocator::.*alloc"
     r"|ModuleRegistry::register|lookup_vmdef|store_invariant_func|InstanceLayout|CompiledModule::func_loc"
     r"|HostFunc::lowering|MemoryImageSlot::instantiate|PoolingInstanceAllocator.*allocate"),
    ("store and instance drop (teardown)",
     r"drop_in_place<wasmtime::runtime::store::Store|drop_in_place<wasmtime::runtime::module::registry"
     r"|index_allocator::Inner::remove|deallocate|MemoryImageSlot::clear_and_remain_ready|decommit"),
    ("store, WASI context, limits (set-up)",
     r"toolhost::call::invoke::new_store|Store<.*>::new|CallState::new|WasiCtxBuilder|StoreOpaque::new"),
    ("guest code and its host calls (WASI, kv, log; lowering, lifting)",
     r"component::func::Func::call|HostFn::cabi_entrypoint|HostFn::entrypoint|array_call_trampoline"
     r"|vm::libcalls|component::libcalls|LowerContext|LiftContext|typed::Lower|typed::Lift"),
    ("JSON <-> component values", r"toolhost::call::values::"),
    ("instance reuse (warm pool)", r"toolhost::plugins::plugin::Plugin::(take|put)_warm"),
    # The audit record is the only sled insert on these paths (a guest's kv
    # writes sit under its host calls, above), and often shows without the
    # audit frame that made it.
    ("audit record (JSON, sled insert)", r"toolhost::storage::audit::|sled::tree::Tree::insert"),
    ("storage group commit (fsync)", r"toolhost::storage::|sled::"),
    ("auth and rate limit", r"toolhost::app::auth::|governor::"),
    ("request and response JSON", r"serde_json::"),
    ("inbound HTTP (hyper, axum, sockets)", r"hyper::|axum::|tower::|tokio::net::|mio::"),
    ("tokio scheduling and wake-ups", r"tokio::runtime::"),
    ("epoch ticker", r"toolhost::wasm::engine::"),
]
COMPILED = [(name, re.compile(pattern)) for name, pattern in PHASES]


def samples(path):
    """Yield each sample's frames (symbol names, leaf first)."""
    frames = []
    with open(path, errors="replace") as f:
        for line in f:
            if not line.strip():
                if frames:
                    yield frames
                frames = []
            elif line[0].isspace():
                parts = line.split(None, 1)
                frames.append(parts[1].strip() if len(parts) > 1 else "[unknown]")
    if frames:
        yield frames


def phase(frames):
    for name, pattern in COMPILED:
        if any(pattern.search(frame) for frame in frames):
            return name
    if all(frame.startswith("[unknown]") for frame in frames):
        # perf cannot unwind through JIT-compiled code: a stack of nothing
        # but unknown frames is the guest's own code.
        return "guest code (JIT frames, not unwound)"
    return "other"


def main():
    name, path, cpu_us, rps = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
    counts = Counter(phase(frames) for frames in samples(path))
    total = sum(counts.values()) or 1
    print(f"## {name}: {rps:,.0f} req/s, {cpu_us:.1f} µs of CPU per request, {total} samples")
    print()
    print("| phase | share of samples | CPU per request |")
    print("|---|---|---|")
    order = [n for n, _ in PHASES] + ["guest code (JIT frames, not unwound)", "other"]
    for n in order:
        if counts[n]:
            share = counts[n] / total
            print(f"| {n} | {share:.1%} | {share * cpu_us:.1f} µs |")


if __name__ == "__main__":
    main()

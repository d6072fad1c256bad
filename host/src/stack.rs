//! Work that recurses as deep as its input nests (a CEL or jq parser, an
//! evaluator), run where the stack is known: on a thread of its own with as
//! much stack as the input's bound needs, never on a thread whose stack
//! something else chose (an API worker's 2 MiB). Only the pages the work
//! touches are mapped, so a large stack costs address space, not memory;
//! the thread costs tens of microseconds.

/// Run `work` on a thread named `name` with `bytes` of stack, and wait for
/// it: `None` if no thread could be made or `work` panicked.
pub fn on_own_stack<T: Send>(name: &str, bytes: usize, work: impl FnOnce() -> T + Send) -> Option<T> {
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name(name.into())
            .stack_size(bytes)
            .spawn_scoped(scope, work)
            .ok()?
            .join()
            .ok()
    })
}

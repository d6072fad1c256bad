//! A component's imports checked against the host's linker *before* the
//! component is compiled: compiling an 18 MB Python or JavaScript component
//! takes cranelift tens of seconds of CPU, which a bundle whose imports the
//! host does not offer must not cost.
//!
//! The check asks the linker itself, so it cannot drift from what links: the
//! component's imports are read (the WIT world its type section describes;
//! function bodies are neither validated nor compiled), a stand-in
//! component with exactly those imports and no code of its own is made from
//! them, compiled (only the host-call trampolines, a few milliseconds) and
//! pre-instantiated with the linker. That resolves every import by name,
//! with wasmtime's semver matching, and type-checks every function and
//! resource, just as the real component's `instantiate_pre` will.

use wasmtime::component::{Component, Linker};
use wit_component::{ComponentEncoder, StringEncoding};
use wit_parser::decoding::DecodedWasm;
use wit_parser::ManglingAndAbi;

use crate::capabilities::CallState;

/// What the check found.
#[derive(Debug, thiserror::Error)]
pub enum ImportsError {
    /// An import the linker does not define, or defines with another type:
    /// the linker's words, which name it.
    #[error("{0}")]
    NotOffered(String),
    /// The imports could not be read as a WIT world (a component whose type
    /// no WIT describes): the compiler and the link after it decide.
    #[error("cannot read the component's imports: {0}")]
    Unreadable(String),
}

/// Whether the linker offers everything `wasm` (a component) imports.
pub fn check(wasm: &[u8], engine: &wasmtime::Engine, linker: &Linker<CallState>) -> Result<(), ImportsError> {
    let unreadable = |e: &dyn std::fmt::Display| ImportsError::Unreadable(format!("{e:#}"));
    let (mut resolve, world) = match wit_parser::decoding::decode(wasm).map_err(|e| unreadable(&e))? {
        DecodedWasm::Component(resolve, world) => (resolve, world),
        DecodedWasm::WitPackage(..) => return Err(unreadable(&"a WIT package, not a component")),
    };
    // Only the imports are checked; exports need code the stand-in lacks.
    resolve.worlds[world].exports.clear();
    let mut module = wit_component::dummy_module(&resolve, world, ManglingAndAbi::Standard32);
    wit_component::embed_component_metadata(&mut module, &resolve, world, StringEncoding::UTF8)
        .map_err(|e| unreadable(&e))?;
    let stand_in = ComponentEncoder::default()
        .module(&module)
        .and_then(|mut encoder| encoder.encode())
        .map_err(|e| unreadable(&e))?;
    let stand_in = Component::new(engine, &stand_in).map_err(|e| unreadable(&e))?;
    linker
        .instantiate_pre(&stand_in)
        .map(drop)
        .map_err(|e| ImportsError::NotOffered(format!("{e:#}")))
}

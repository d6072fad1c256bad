//! Wasm set-up every plugin shares: the wasmtime [`engine`] with its
//! instance pool and epoch ticker, compiled code kept on disk
//! ([`compile_cache`]), the guest threads ([`executor`]) and the idle
//! instances kept for reuse ([`warm`]). The host's imports are linked in
//! `capabilities`.

pub mod compile_cache;
pub mod engine;
pub mod executor;
pub mod warm;

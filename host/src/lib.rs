//! toolhost: a WebAssembly plugin host for AI-agent tool connectors.
//!
//! One folder per concern:
//! - [`call`]: the call path, top to bottom in [`call::invoke`];
//! - [`wasm`]: the engine, compiled code, guest threads, reused instances;
//! - [`capabilities`]: the host's imports, each one checking its grant;
//! - [`plugins`]: bundles, manifests, signatures, the registry, and the one
//!   owner of their lifecycle;
//! - [`policy`]: what the operator grants and what each connector gets;
//! - [`storage`]: what the host keeps (kv, audit, idempotency, grants,
//!   history) behind the storage seam, sled by default;
//! - [`server`]: HTTP and MCP, tokens, metrics;
//! - [`logs`]: the host's own log, one record a line;
//! - [`stack`]: deeply recursing work on a thread with a known stack;
//! - [`runtime`]: the facade the server and the command line use.

pub mod app;
pub mod audit;
pub mod call;
pub mod capabilities;
pub mod check;
pub mod config;
pub mod console;
pub mod devkit;
pub mod logs;
pub mod model;
pub mod net;
pub mod plugins;
pub mod policy;
pub mod runtime;
pub mod server;
pub mod stack;
pub mod storage;
pub mod wasm;
pub mod workflow;

pub use call::invoke::{CallError, CallOutcome};
pub use runtime::{Runtime, RuntimeOptions, ToolInfo};

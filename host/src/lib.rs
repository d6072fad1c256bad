//! toolhost: a WebAssembly plugin host for AI-agent tool connectors.
//!
//! The call path reads top to bottom in [`invoke`]; everything else hangs off
//! it: [`plugin`] loads bundles, [`policy`] decides grants, [`capabilities`]
//! enforces them at the imports, [`schema`] and [`values`] turn WIT types
//! into JSON Schema and JSON into component values.

pub mod api;
pub mod audit;
pub mod auth;
pub mod capabilities;
pub mod compile_cache;
pub mod config;
pub mod contract;
pub mod engine;
pub mod executor;
pub mod idempotency;
pub mod invoke;
pub mod manifest;
pub mod metrics;
pub mod names;
pub mod plugin;
pub mod policy;
pub mod registry;
pub mod runtime;
pub mod schema;
pub mod server;
pub mod signing;
pub mod storage;
pub mod values;
pub mod versions;
pub mod warm;
pub mod watcher;
pub mod worlds;

pub use invoke::{CallError, CallOutcome};
pub use runtime::{Runtime, RuntimeOptions, ToolInfo};

//! toolhost: a WebAssembly plugin host for AI-agent tool connectors.
//!
//! One folder per concern, roughly from the floor up. No file imports one
//! that imports it back, the floors (`model`, `storage`) import nothing
//! above them, and `app` nothing of the adapters: `.ci/layers.py` checks
//! all three in CI.
//!
//! - [`model`]: the records (audit record, approval, run, problem, version, ids, times), importing nothing;
//! - [`net`]: origins, HTTP methods, IP networks and the public internet;
//! - [`config`]: `toolhost.toml` and the grants and rules as written;
//! - [`storage`]: what the host keeps, behind one seam (sled, PostgreSQL); imports only `model` and `config`;
//! - [`policy`]: what each connector gets of what it asks, and which calls wait for a person;
//! - [`stack`]: deeply recursing work on a thread with a known stack;
//! - [`logs`]: the host's own log, one record a line;
//! - [`wasm`]: the engine, compiled code, guest threads, reused instances;
//! - [`capabilities`]: the host's imports, each one checking its grant;
//! - [`audit`]: the recording service: ids, redaction, bounds, queries;
//! - [`workflow`]: workflow documents, jq expressions, the engine that runs them;
//! - [`call`]: one call of a connector, top to bottom in [`call::invoke`];
//! - [`plugins`]: bundles, the registry, and the one owner of their lifecycle;
//! - [`runtime`]: the engine, storage, audit and plugins assembled, for the server and the CLI;
//! - [`app`]: the application: calls, approvals, workflow runs, tokens, idempotency, metrics, the operator's actions;
//! - [`server`]: the HTTP adapter (REST, MCP), its connections, readiness and `serve`;
//! - [`console`]: the operator's web console, an adapter over the same application;
//! - [`check`], [`devkit`]: the `toolhost check` and `toolhost dev` commands;
//! - [`demo`]: `toolhost demo`, the reference connectors served against the SAMPLE systems (feature `demo`).

pub mod app;
pub mod audit;
pub mod call;
pub mod capabilities;
pub mod check;
pub mod config;
pub mod console;
#[cfg(feature = "demo")]
pub mod demo;
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

pub use call::invoke::CallOutcome;
pub use model::call::CallError;
pub use runtime::{Runtime, RuntimeOptions, ToolInfo};

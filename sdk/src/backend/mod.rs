//! Where the SDK's calls go: the host's imports inside a component, or the
//! in-process [`crate::testing::TestHost`] when connector logic is unit-tested
//! natively. The public modules (`http`, `kv`, ...) call only this.

#[cfg(target_arch = "wasm32")]
mod wasi;
#[cfg(target_arch = "wasm32")]
pub(crate) use wasi::*;

#[cfg(not(target_arch = "wasm32"))]
pub(crate) use crate::testing::backend::*;

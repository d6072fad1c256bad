//! Why a bundle was not loaded: one error for every step from reading the
//! bundle to linking its component.

use crate::plugins::kind::Kind;
use crate::plugins::manifest::ManifestError;
use crate::plugins::signing::SigningError;

/// Why a bundle was not loaded. The previous version, if any, keeps serving.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("cannot read component {path}: {message}")]
    Component { path: String, message: String },
    #[error("{plugin}: not a valid component: {message}")]
    Compile { plugin: String, message: String },
    #[error("{plugin}: imports something the host does not offer: {message}")]
    Link { plugin: String, message: String },
    #[error("{plugin}: manifest says world {world:?}, but the component does not export {missing}")]
    WrongWorld {
        plugin: String,
        world: String,
        missing: String,
    },
    #[error("{plugin}: the component's exports do not have world {world:?}'s types: {message}")]
    WorldTypes {
        plugin: String,
        world: String,
        message: String,
    },
    #[error("{plugin}: function {function:?} cannot be a tool: {message}")]
    Tool {
        plugin: String,
        function: String,
        message: String,
    },
    #[error("{plugin}: signature refused: {source}")]
    Signature { plugin: String, source: SigningError },
    #[error("{plugin}: the operator pinned digest {expected}, but this component is {actual}")]
    Pinned {
        plugin: String,
        expected: String,
        actual: String,
    },
    #[error("{plugin}: exports no functions")]
    NoTools { plugin: String },
    #[error("{plugin}: storage: {message}")]
    Storage { plugin: String, message: String },
    #[error("{path} is not a workflow toolhost can run: {message}")]
    Workflow { path: String, message: String },
    #[error("{plugin} is a {actual}, not a {expected}")]
    Kind {
        plugin: String,
        expected: Kind,
        actual: Kind,
    },
    /// A caller's mistake, not the bundle's: the plugin it holds the lock of
    /// is another.
    #[error("{plugin}: the caller holds the lock of plugin {owned:?}, not of this one")]
    NotOwned { plugin: String, owned: String },
}

//! Plugins from bundle to serving. A bundle (a component and its
//! [`manifest`], maybe [`signing`]-signed) comes in from the plugins folder
//! ([`watcher`]) or the API; [`lifecycle`] is the one owner of every change
//! to what serves: it checks the component against its [`contract`] world
//! ([`worlds`]), checks its imports before compiling ([`imports`]), compiles and links it ([`plugin`]), records it in the
//! version history ([`versions`]) and swaps it into the [`registry`] that
//! calls read.

pub mod bundle;
pub mod contract;
pub mod error;
pub mod folder;
pub mod imports;
pub mod kind;
pub mod lifecycle;
pub mod manifest;
pub mod oci;
pub mod owners;
pub mod plugin;
pub mod registry;
pub mod signing;
pub mod versions;
pub mod watcher;
pub mod worlds;

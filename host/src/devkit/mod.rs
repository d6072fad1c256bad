//! The vendor's first day: `toolhost new` writes a connector project for
//! one of the contract's worlds ([`new`], from the SDK's [`templates`]),
//! `toolhost build` makes its component ([`build`]), and `toolhost dev`
//! serves it on loopback with a development grant and reloads it on every
//! change ([`dev`]).

pub mod build;
pub mod dev;
pub mod new;
pub mod templates;

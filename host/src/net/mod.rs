//! The network vocabulary grants are written in, with no policy of its own:
//! [`origin`] patterns and HTTP methods, [`ip`] networks and the public
//! internet.

pub mod ip;
pub mod origin;

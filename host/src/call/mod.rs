//! The call path, top to bottom in [`invoke`]: a tool's name ([`names`]),
//! its arguments checked and converted against the function's WIT types
//! ([`values`]), the JSON Schema agents see for them ([`schema`]) and its
//! form for strict function calling ([`strict`]), what a connector that
//! trapped said before it did ([`fault`]).

pub mod fault;
pub mod invoke;
pub mod names;
pub mod schema;
pub mod strict;
pub mod values;

//! The records: what the host keeps and passes between its layers, with no
//! behaviour beyond reading and naming them. The floor of the house: this
//! folder imports nothing else of the crate, and every other folder may
//! import it.
//!
//! - [`audit`]: the audit record and the closed sets it is named by;
//! - [`call`]: how a call ends when it has no result ([`call::CallError`]);
//! - [`effects`]: what a connector did at its imports;
//! - [`approval`]: a held call and its decisions;
//! - [`run`], [`problem`]: a workflow run, its journal, and its errors;
//! - [`version`]: a plugin's version history;
//! - [`digest`], [`time`], [`text`]: the digests, times and bounded text
//!   records are made of.

pub mod approval;
pub mod audit;
pub mod call;
pub mod digest;
pub mod effects;
pub mod problem;
pub mod run;
pub mod text;
pub mod time;
pub mod version;

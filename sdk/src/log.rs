//! Logging into the host's log, tagged with the connector and the call.

use crate::backend;
pub use crate::bindings::host::toolhost::connector::log::Level;

/// Write one log line.
pub fn write(level: Level, message: &str) {
    backend::log(level, message)
}

/// Log at debug level.
pub fn debug(message: &str) {
    write(Level::Debug, message)
}

/// Log at info level.
pub fn info(message: &str) {
    write(Level::Info, message)
}

/// Log at warn level.
pub fn warn(message: &str) {
    write(Level::Warn, message)
}

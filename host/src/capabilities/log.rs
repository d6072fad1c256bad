//! `log`: into the host's tracing, tagged with the plugin, bounded in length
//! and count so a connector cannot flood the operator's logs.

use super::wit::log::{Host, Level};
use super::CallState;

const MAX_LINE: usize = 2048;
const MAX_LINES_PER_CALL: u32 = 256;

impl Host for CallState {
    fn write(&mut self, level: Level, message: String) {
        let lines = {
            let mut journal = self.journal.lock().unwrap_or_else(|p| p.into_inner());
            journal.log_lines += 1;
            journal.log_lines
        };
        if lines > MAX_LINES_PER_CALL {
            return;
        }
        let mut message = message;
        if message.len() > MAX_LINE {
            let cut = (0..=MAX_LINE).rev().find(|&i| message.is_char_boundary(i)).unwrap_or(0);
            message.truncate(cut);
            message.push('…');
        }
        let plugin = self.plugin.name.as_str();
        match level {
            Level::Trace => tracing::trace!(target: "connector", plugin, "{message}"),
            Level::Debug => tracing::debug!(target: "connector", plugin, "{message}"),
            Level::Info => tracing::info!(target: "connector", plugin, "{message}"),
            Level::Warn => tracing::warn!(target: "connector", plugin, "{message}"),
            Level::Error => tracing::error!(target: "connector", plugin, "{message}"),
        }
    }
}

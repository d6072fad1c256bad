//! `log`, and the guest's stdout and stderr: into the host's tracing, tagged
//! with the plugin, bounded in length and count so a connector cannot flood
//! the operator's logs. All three share one budget per call. The end of
//! stderr is also kept in the call's journal, whatever the budget: a panic
//! writes its message and location there just before it traps.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use super::wit::log::{Host, Level};
use super::{truncated, CallState, PluginContext, SharedJournal, Sink};

const MAX_LINE: usize = 2048;
const MAX_LINES_PER_CALL: u32 = 256;

impl Host for CallState {
    fn write(&mut self, level: Level, message: String) {
        emit(&self.plugin.name, &self.journal, level, None, message);
    }
}

/// Where a line came from, when not from the `log` import.
#[derive(Clone, Copy)]
pub enum Stdio {
    Stdout,
    Stderr,
}

/// One line of a connector's into the host's log, if the call's budget
/// has room; every attempt is counted.
fn emit(plugin: &str, journal: &SharedJournal, level: Level, stdio: Option<Stdio>, mut message: String) {
    {
        let mut journal = journal.lock().unwrap_or_else(|p| p.into_inner());
        journal.log_lines += 1;
        if journal.log_lines > MAX_LINES_PER_CALL {
            return;
        }
        // Masked whole, before it is cut: a cut could leave part of a value.
        journal.mask(&mut message, Sink::Log);
    }
    let message = truncated(message, MAX_LINE);
    match stdio {
        Some(Stdio::Stdout) => tracing::info!(target: "connector", plugin, stream = "stdout", "{message}"),
        Some(Stdio::Stderr) => tracing::warn!(target: "connector", plugin, stream = "stderr", "{message}"),
        None => match level {
            Level::Trace => tracing::trace!(target: "connector", plugin, "{message}"),
            Level::Debug => tracing::debug!(target: "connector", plugin, "{message}"),
            Level::Info => tracing::info!(target: "connector", plugin, "{message}"),
            Level::Warn => tracing::warn!(target: "connector", plugin, "{message}"),
            Level::Error => tracing::error!(target: "connector", plugin, "{message}"),
        },
    }
}

/// A guest's stdout or stderr: bytes are cut into lines, each sent to the
/// host's log as if through the `log` import (same budget, same length
/// limit). A reused instance keeps its streams, so the journal they count
/// against is swapped for each call.
#[derive(Clone)]
pub struct GuestOutput(Arc<OutputSink>);

struct OutputSink {
    /// Shared with the call, not copied: two streams are made per call.
    plugin: Arc<PluginContext>,
    stdio: Stdio,
    journal: Mutex<SharedJournal>,
    /// The line being written, up to [`MAX_LINE`] bytes; past that the rest
    /// of the line is dropped.
    partial: Mutex<Partial>,
}

#[derive(Default)]
struct Partial {
    bytes: Vec<u8>,
    overflowed: bool,
}

impl GuestOutput {
    pub fn new(plugin: Arc<PluginContext>, stdio: Stdio, journal: SharedJournal) -> GuestOutput {
        GuestOutput(Arc::new(OutputSink {
            plugin,
            stdio,
            journal: Mutex::new(journal),
            partial: Mutex::default(),
        }))
    }

    /// Count and log this call's lines against `journal` from now on; a
    /// line left unfinished by the previous call is logged first.
    pub fn reset(&self, journal: SharedJournal) {
        self.0.finish_line();
        *self.0.journal.lock().unwrap_or_else(|p| p.into_inner()) = journal;
    }

    fn write_bytes(&self, bytes: &[u8]) {
        self.0.write_bytes(bytes);
    }
}

impl OutputSink {
    /// Log what is buffered of an unfinished line.
    fn finish_line(&self) {
        let line = std::mem::take(&mut *self.partial.lock().unwrap_or_else(|p| p.into_inner()));
        if !line.bytes.is_empty() {
            self.log(line);
        }
    }

    fn log(&self, line: Partial) {
        let mut text = String::from_utf8_lossy(&line.bytes).into_owned();
        if line.overflowed {
            text.push('…');
        }
        let journal = self.journal.lock().unwrap_or_else(|p| p.into_inner()).clone();
        emit(&self.plugin.name, &journal, Level::Info, Some(self.stdio), text);
    }

    fn longest_secret(&self) -> usize {
        let journal = self.journal.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let longest = journal.lock().unwrap_or_else(|p| p.into_inner()).longest_secret();
        longest
    }

    fn write_bytes(&self, mut bytes: &[u8]) {
        if let Stdio::Stderr = self.stdio {
            // Kept whether or not the log has room: a panic's last words.
            let journal = self.journal.lock().unwrap_or_else(|p| p.into_inner()).clone();
            journal.lock().unwrap_or_else(|p| p.into_inner()).keep_stderr(bytes);
        }
        while !bytes.is_empty() {
            let end = bytes.iter().position(|&b| b == b'\n');
            let (chunk, rest) = match end {
                Some(i) => (&bytes[..i], &bytes[i + 1..]),
                None => (bytes, &[][..]),
            };
            // A line is kept past its bound by the longest secret value, so
            // that it is masked whole before `emit` cuts it.
            let kept = MAX_LINE + self.longest_secret();
            let done = {
                let mut partial = self.partial.lock().unwrap_or_else(|p| p.into_inner());
                let room = kept.saturating_sub(partial.bytes.len());
                partial.bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
                partial.overflowed |= chunk.len() > room;
                end.map(|_| std::mem::take(&mut *partial))
            };
            if let Some(line) = done {
                self.log(line);
            }
            bytes = rest;
        }
    }
}

/// A line the guest left unfinished is logged when its instance goes.
impl Drop for OutputSink {
    fn drop(&mut self) {
        self.finish_line();
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

/// Writes never wait: the host's log takes a line at once, or drops it.
const WRITE_BUDGET: usize = 64 * 1024;

#[wasmtime_wasi::async_trait]
impl Pollable for GuestOutput {
    async fn ready(&mut self) {}
}

impl OutputStream for GuestOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.write_bytes(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_BUDGET)
    }
}

impl tokio::io::AsyncWrite for GuestOutput {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.write_bytes(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

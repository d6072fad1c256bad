//! The host's own log: one record, one line, whatever a record carries.
//!
//! A record's message or fields may hold text the host did not write: a
//! connector's log line, an agent's argument a connector echoes, a
//! refused host name. In the text format a newline in such text would start
//! a line of its own, which a reader (or a log collector splitting on
//! newlines) takes for a record of the host's, unattributed:
//! `…\n2026-12-07T00:00:00Z  WARN toolhost::server: FORGED`. So every record
//! is written with its line breaks and other control characters escaped
//! (`\n`, `\r`, `\x07`), where it is written, whatever wrote it; the JSON
//! format escapes them already and passes through unchanged.

use std::io;

use tracing_subscriber::fmt::MakeWriter;

/// A [`MakeWriter`] whose writers keep each record on one line.
pub struct OneLine<M> {
    inner: M,
    /// Whether the log is coloured: then ESC starts the formatter's own
    /// colour codes and is left alone.
    ansi: bool,
}

impl<M> OneLine<M> {
    pub fn new(inner: M, ansi: bool) -> OneLine<M> {
        OneLine { inner, ansi }
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for OneLine<M> {
    type Writer = Escaping<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        Escaping {
            inner: self.inner.make_writer(),
            ansi: self.ansi,
        }
    }
}

/// Writes one formatted record (the formatter hands it over in one write)
/// with every control character but its final newline escaped.
pub struct Escaping<W> {
    inner: W,
    ansi: bool,
}

impl<W: io::Write> io::Write for Escaping<W> {
    fn write(&mut self, record: &[u8]) -> io::Result<usize> {
        let (body, end) = match record.strip_suffix(b"\n") {
            Some(body) => (body, &b"\n"[..]),
            None => (record, &b""[..]),
        };
        if !body.iter().any(|&b| escaped(b, self.ansi)) {
            self.inner.write_all(record)?;
            return Ok(record.len());
        }
        let mut line = Vec::with_capacity(record.len() + 16);
        for &b in body {
            match b {
                b'\n' => line.extend_from_slice(b"\\n"),
                b'\r' => line.extend_from_slice(b"\\r"),
                b if escaped(b, self.ansi) => line.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
                b => line.push(b),
            }
        }
        line.extend_from_slice(end);
        self.inner.write_all(&line)?;
        Ok(record.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Whether `b` is written escaped: the C0 controls and DEL, but a tab, and
/// ESC where the log is coloured.
fn escaped(b: u8, ansi: bool) -> bool {
    (b < 0x20 && b != b'\t' && !(ansi && b == 0x1b)) || b == 0x7f
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn written(record: &[u8], ansi: bool) -> String {
        let mut out = Vec::new();
        let mut writer = Escaping { inner: &mut out, ansi };
        assert_eq!(writer.write(record).unwrap(), record.len());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_record_stays_one_line_whatever_it_carries() {
        let record = b"2026-12-07T10:00:00Z  INFO connector: hi\n2026-12-07T00:00:00Z  WARN toolhost::server: FORGED\r\x07 plugin=echo\n";
        assert_eq!(
            written(record, false),
            "2026-12-07T10:00:00Z  INFO connector: hi\\n2026-12-07T00:00:00Z  WARN toolhost::server: FORGED\\r\\x07 plugin=echo\n"
        );
    }

    #[test]
    fn tabs_and_plain_text_pass_and_colours_stay_where_the_log_is_coloured() {
        assert_eq!(written(b"a\tb\n", false), "a\tb\n");
        assert_eq!(written(b"\x1b[32mINFO\x1b[0m x\n", true), "\x1b[32mINFO\x1b[0m x\n");
        assert_eq!(written(b"\x1b[2J x\n", false), "\\x1b[2J x\n");
        assert_eq!(written(b"no newline", false), "no newline");
    }
}

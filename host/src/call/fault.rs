//! What a connector that trapped has to say for itself. A trap alone says
//! little (`unreachable`, frames named `<wasm function N>` in a stripped
//! build); but a Rust guest's panic hook writes the message and location to
//! stderr just before it aborts, and other languages' runtimes write their
//! own last words there too. The host keeps the end of the call's stderr
//! (`Journal::stderr_tail`), so this works for any guest without help from
//! its SDK.

use crate::model::text::truncated;

/// Longest panic message (or stderr excerpt) a fault carries.
const MESSAGE_MAX: usize = 1024;
/// Longest location (`src/lib.rs:12:5`).
const LOCATION_MAX: usize = 256;
/// Most of a stderr tail quoted when it holds no panic.
const EXCERPT_MAX: usize = 512;

/// A Rust panic, as its default hook printed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Panic {
    /// `file:line:column`.
    pub location: String,
    /// The panic's payload; empty if stderr ended before it.
    pub message: String,
}

/// The last panic in what the guest wrote to stderr. The default hook
/// writes `thread '...' panicked at src/lib.rs:12:5:\nMESSAGE\nnote: run
/// with `RUST_BACKTRACE=1` ...` (Rust 1.73 and later); before 1.73 it
/// was `panicked at 'MESSAGE', src/lib.rs:12:5`.
pub fn find_panic(stderr: &str) -> Option<Panic> {
    const MARK: &str = "panicked at ";
    let start = stderr.rfind(MARK)? + MARK.len();
    let after = &stderr[start..];
    let (head, rest) = after.split_once('\n').unwrap_or((after, ""));
    let panic = match head.strip_suffix(':') {
        Some(location) => {
            // The message runs to the hook's note, or to the end.
            let end = rest.find("\nnote: ").unwrap_or(rest.len());
            let message = rest[..end].strip_prefix("note: ").map_or(&rest[..end], |_| "");
            Panic {
                location: location.to_string(),
                message: message.trim().to_string(),
            }
        }
        None => match head.strip_prefix('\'').and_then(|h| h.rsplit_once("', ")) {
            Some((message, location)) => Panic {
                location: location.to_string(),
                message: message.to_string(),
            },
            None => Panic {
                location: head.to_string(),
                message: String::new(),
            },
        },
    };
    Some(Panic {
        location: truncated(panic.location, LOCATION_MAX),
        message: truncated(panic.message, MESSAGE_MAX),
    })
}

/// The message of a fault: the panic if stderr shows one, else the trap
/// with what the guest last wrote to stderr, else the trap alone.
pub fn message(trap: &str, stderr: &[u8]) -> String {
    let stderr = String::from_utf8_lossy(stderr);
    if let Some(panic) = find_panic(&stderr) {
        return match panic.message.is_empty() {
            true => format!("the connector panicked at {}", panic.location),
            false => format!("the connector panicked at {}: {}", panic.location, panic.message),
        };
    }
    let last = stderr.trim_end();
    if last.is_empty() {
        return format!("the connector trapped: {trap}");
    }
    // The end of what it wrote, cut on a character boundary.
    let from = last.len().saturating_sub(EXCERPT_MAX);
    let from = (from..=last.len()).find(|&i| last.is_char_boundary(i)).unwrap_or(0);
    let cut = if from > 0 { "…" } else { "" };
    format!(
        "the connector trapped: {trap}; the last it wrote to stderr: {cut}{}",
        last[from..].trim_start()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_of_todays_rust_gives_its_location_and_message() {
        let stderr = "starting\nthread '<unnamed>' panicked at src/lib.rs:12:5:\nindex out of bounds: the len is 3 but the index is 10\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n";
        assert_eq!(
            message("wasm trap: wasm `unreachable` instruction executed", stderr.as_bytes()),
            "the connector panicked at src/lib.rs:12:5: index out of bounds: the len is 3 but the index is 10"
        );
    }

    #[test]
    fn a_multi_line_message_is_kept_whole_and_the_last_panic_counts() {
        let stderr = "thread 'main' panicked at src/a.rs:1:1:\nfirst\nthread 'main' panicked at src/b.rs:2:3:\nline one\nline two\n";
        assert_eq!(
            find_panic(stderr),
            Some(Panic {
                location: "src/b.rs:2:3".into(),
                message: "line one\nline two".into(),
            })
        );
    }

    #[test]
    fn a_panic_of_older_rust_is_read_too() {
        let stderr = "thread 'main' panicked at 'boom', src/lib.rs:4:9\nnote: run with ...\n";
        assert_eq!(
            find_panic(stderr),
            Some(Panic {
                location: "src/lib.rs:4:9".into(),
                message: "boom".into(),
            })
        );
    }

    #[test]
    fn without_a_panic_the_trap_comes_with_the_end_of_stderr() {
        assert_eq!(message("wasm trap: x", b""), "the connector trapped: wasm trap: x");
        assert_eq!(
            message("wasm trap: x", b"fatal: out of cheese\n"),
            "the connector trapped: wasm trap: x; the last it wrote to stderr: fatal: out of cheese"
        );
        let long = format!("{}é{}", "a".repeat(600), "z".repeat(100));
        let got = message("t", long.as_bytes());
        assert!(got.ends_with(&"z".repeat(100)), "{got}");
        assert!(got.len() < 600, "{}", got.len());
    }

    #[test]
    fn a_huge_panic_message_is_bounded() {
        let stderr = format!("panicked at src/lib.rs:1:1:\n{}\n", "x".repeat(10_000));
        let got = message("t", stderr.as_bytes());
        assert!(got.len() < MESSAGE_MAX + 100, "{}", got.len());
        assert!(got.ends_with('…'));
    }
}

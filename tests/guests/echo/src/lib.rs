//! Returns what it is given: every WIT type the host converts, both ways.
wit_bindgen::generate!({
    inline: r#"
        package toolhost-test:echo;

        interface echo {
            record point { x: f64, y: f64, label: option<string> }
            variant shape { circle(f64), polygon(list<point>), empty }
            enum color { red, green, blue }
            flags perms { read, write, admin }
            record everything {
                name: string,
                count: u32,
                delta: s64,
                ratio: f32,
                initial: char,
                small: s8,
                tags: list<string>,
                color: color,
                perms: perms,
                shape: shape,
                maybe: option<u8>,
                pair: tuple<string, u16>,
                outcome: result<u32, string>,
                flag: bool,
            }

            /// Return the value unchanged.
            echo: func(value: everything) -> everything;
            /// Succeed with `message` when `ok`, else fail with it.
            check: func(ok: bool, message: string) -> result<string, string>;
            /// A string of `bytes` bytes.
            blob: func(bytes: u32) -> string;
            /// `count` bytes: a result whose JSON is far larger than its wire form.
            bytes: func(count: u32) -> list<u8>;
            /// How many times this instance has been called here: shows
            /// whether the host reused it.
            counter: func() -> u32;
            /// Trap.
            crash: func();
            /// Write `lines` log lines of `size` bytes each.
            shout: func(lines: u32, size: u32);
            /// Print `lines` lines of `size` bytes each to stdout and as
            /// many to stderr, and then `tail` to stdout with no newline.
            print: func(lines: u32, size: u32, tail: string);
        }

        world echo-guest { export echo; }
    "#,
});

use exports::toolhost_test::echo::echo::{Everything, Guest};

struct Echo;

static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl Guest for Echo {
    fn echo(value: Everything) -> Everything {
        value
    }

    fn check(ok: bool, message: String) -> Result<String, String> {
        if ok {
            Ok(message)
        } else {
            Err(message)
        }
    }

    fn blob(bytes: u32) -> String {
        "x".repeat(bytes as usize)
    }

    fn bytes(count: u32) -> Vec<u8> {
        vec![255; count as usize]
    }

    fn counter() -> u32 {
        CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1
    }

    fn crash() {
        std::process::abort()
    }

    fn shout(lines: u32, size: u32) {
        let line = "!".repeat(size as usize);
        for _ in 0..lines {
            toolhost_sdk::log::info(&line);
        }
    }

    fn print(lines: u32, size: u32, tail: String) {
        use std::io::Write;
        let line = "o".repeat(size as usize);
        for i in 0..lines {
            println!("out {i} {line}");
            eprintln!("err {i} {line}");
        }
        print!("{tail}");
        let _ = std::io::stdout().flush();
    }
}

export!(Echo);

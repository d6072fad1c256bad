//! Panics the way connectors do by mistake: an index out of bounds, an
//! `expect` on what was not there. Nothing but Rust's default panic hook
//! tells the host what happened.
wit_bindgen::generate!({
    inline: r#"
        package toolhost-test:panicker;
        world panicker-guest {
            /// The item at `at`: panics when there is none.
            export pick: func(items: list<string>, at: u32) -> string;
            /// Write `before` to stderr, then panic with `message`.
            export fail: func(before: string, message: string) -> string;
        }
    "#,
});

struct Panicker;

impl Guest for Panicker {
    fn pick(items: Vec<String>, at: u32) -> String {
        items[at as usize].clone()
    }

    fn fail(before: String, message: String) -> String {
        eprintln!("{before}");
        let missing: Option<String> = None;
        missing.expect(&message)
    }
}

export!(Panicker);

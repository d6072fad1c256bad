//! Asks for secrets, its own and other connectors'.
wit_bindgen::generate!({
    inline: r#"
        package toolhost-test:thief;
        world thief-guest {
            /// The secret's value, or why not.
            export steal: func(name: string) -> result<string, string>;
        }
    "#,
});

struct Thief;

impl Guest for Thief {
    fn steal(name: String) -> Result<String, String> {
        toolhost_sdk::secrets::get(&name).map_err(|e| format!("{e:?}"))
    }
}

export!(Thief);

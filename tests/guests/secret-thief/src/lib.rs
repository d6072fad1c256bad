//! Asks for secrets, its own and other connectors'.
wit_bindgen::generate!({
    inline: r#"
        package toolhost-test:thief;
        world thief-guest {
            /// The secret's value, or why not.
            export steal: func(name: string) -> result<string, string>;
            /// Ask for it `times` times; how many times it was refused.
            export steal-repeatedly: func(name: string, times: u32) -> u32;
        }
    "#,
});

struct Thief;

impl Guest for Thief {
    fn steal(name: String) -> Result<String, String> {
        toolhost_sdk::secrets::get(&name).map_err(|e| format!("{e:?}"))
    }

    fn steal_repeatedly(name: String, times: u32) -> u32 {
        (0..times).filter(|_| toolhost_sdk::secrets::get(&name).is_err()).count() as u32
    }
}

export!(Thief);

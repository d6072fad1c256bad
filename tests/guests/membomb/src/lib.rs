//! Allocates until something gives: the host's memory grant must.
wit_bindgen::generate!({
    inline: r#"
        package toolhost-test:membomb;
        world membomb-guest {
            /// Hold `megabytes` MiB at once, touching every page.
            export hold: func(megabytes: u32) -> u32;
            /// Hold `count` host resources (HTTP header fields) at once.
            export handles: func(count: u32) -> u32;
        }
    "#,
});

struct Bomb;

impl Guest for Bomb {
    fn hold(megabytes: u32) -> u32 {
        let mut chunks: Vec<Vec<u8>> = Vec::new();
        for i in 0..megabytes {
            chunks.push(vec![i as u8 | 1; 1024 * 1024]);
        }
        chunks
            .iter()
            .map(|c| c[c.len() - 1] as u32)
            .sum::<u32>()
            .min(megabytes)
    }

    fn handles(count: u32) -> u32 {
        use toolhost_sdk::bindings::host::wasi::http::types::Fields;
        let held: Vec<Fields> = (0..count).map(|_| Fields::new()).collect();
        held.len() as u32
    }
}

export!(Bomb);

//! Stores until the quota stops it.
wit_bindgen::generate!({
    inline: r#"
        package toolhost-test:hog;
        world hog-guest {
            /// Write `count` values of `size` bytes; how many were written
            /// before the first refusal, and the refusal.
            export fill: func(prefix: string, count: u32, size: u32) -> tuple<u32, option<string>>;
            /// Read one value's length back.
            export size-of: func(key: string) -> option<u32>;
        }
    "#,
});

use toolhost_sdk::kv;

struct Hog;

impl Guest for Hog {
    fn fill(prefix: String, count: u32, size: u32) -> (u32, Option<String>) {
        let value = vec![7u8; size as usize];
        for i in 0..count {
            if let Err(e) = kv::set(&format!("{prefix}{i}"), &value) {
                return (i, Some(format!("{e:?}")));
            }
        }
        (count, None)
    }

    fn size_of(key: String) -> Option<u32> {
        kv::get(&key).ok().flatten().map(|v| v.len() as u32)
    }
}

export!(Hog);

//! Computes forever: the host's deadline must end it. Or floods the
//! caller with progress reports: the host's bounds must hold them.
wit_bindgen::generate!({
    inline: r#"
        package toolhost-test:spin;
        world spin-guest {
            /// Loop until stopped.
            export spin: func(seed: u64) -> u64;
            /// Return at once.
            export quick: func() -> string;
            /// Report progress `reports` times in a tight loop, each report
            /// followed by one that goes back (not larger), every message
            /// `message-bytes` long; how many reports it made.
            export flood-progress: func(reports: u32, message-bytes: u32) -> u32;
        }
    "#,
});

struct Spin;

impl Guest for Spin {
    fn spin(seed: u64) -> u64 {
        let mut x = seed;
        loop {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            if x == u64::MAX {
                return x;
            }
        }
    }

    fn quick() -> String {
        "still here".into()
    }

    fn flood_progress(reports: u32, message_bytes: u32) -> u32 {
        let message = "p".repeat(message_bytes as usize);
        for done in 1..=u64::from(reports) {
            toolhost_sdk::progress::report_with(done, Some(u64::from(reports)), &message);
            toolhost_sdk::progress::report_with(done - 1, None, &message);
        }
        reports * 2
    }
}

export!(Spin);

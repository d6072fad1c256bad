//! Computes forever: the host's deadline must end it.
wit_bindgen::generate!({
    inline: r#"
        package toolhost-test:spin;
        world spin-guest {
            /// Loop until stopped.
            export spin: func(seed: u64) -> u64;
            /// Return at once.
            export quick: func() -> string;
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
}

export!(Spin);

//! The conformance suite's fixture tools that a connector can serve: each
//! answers as the suite's scenario asks. (The others need what a connector
//! cannot express: images, audio, embedded resources, logging, sampling,
//! elicitation; tests/mcp-conformance-expected-failures.toml says which and
//! why.)
wit_bindgen::generate!({
    inline: r#"
        package toolhost-test:conformance;
        world conformance-guest {
            /// A tool that returns simple text (scenario tools-call-simple-text).
            export simple-text: func() -> string;
            /// A tool that always fails (scenario tools-call-error).
            export error-handling: func() -> result<string, string>;
            /// A tool that reports 0, 50 and 100 of 100, 50 ms apart
            /// (scenario tools-call-with-progress).
            export tool-with-progress: func() -> string;
        }
    "#,
});

struct Conformance;

impl Guest for Conformance {
    fn simple_text() -> String {
        "This is a simple text response for testing.".into()
    }

    fn error_handling() -> Result<String, String> {
        Err("This tool intentionally returns an error for testing".into())
    }

    fn tool_with_progress() -> String {
        for done in [0, 50, 100] {
            if done > 0 {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            toolhost_sdk::progress::report(done, Some(100));
        }
        "Progress reported: 0, 50 and 100 of 100.".into()
    }
}

export!(Conformance);

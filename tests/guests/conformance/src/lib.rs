//! The conformance suite's fixture tools that a connector can serve: each
//! answers as the suite's scenario asks. (The others need what a connector
//! cannot express: images, audio, embedded resources, progress, logging,
//! sampling, elicitation; tests/mcp-conformance-expected-failures.toml
//! says which and why.)
wit_bindgen::generate!({
    inline: r#"
        package toolhost-test:conformance;
        world conformance-guest {
            /// A tool that returns simple text (scenario tools-call-simple-text).
            export simple-text: func() -> string;
            /// A tool that always fails (scenario tools-call-error).
            export error-handling: func() -> result<string, string>;
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
}

export!(Conformance);

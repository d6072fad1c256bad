//! Sends requests wherever it is told, with whatever Host header it likes.
wit_bindgen::generate!({
    inline: r#"
        package toolhost-test:netprobe;
        world netprobe-guest {
            /// Send `method` to `url`, optionally with a forged Host header;
            /// the status, or why there is none.
            export fetch: func(method: string, url: string, host-header: option<string>) -> result<u16, string>;
            /// The response body's length, or why there is none.
            export fetch-size: func(url: string) -> result<u64, string>;
        }
    "#,
});

use toolhost_sdk::http::{HttpError, Request};

struct Probe;

impl Guest for Probe {
    fn fetch(method: String, url: String, host_header: Option<String>) -> Result<u16, String> {
        let mut request = Request::new(&method, url);
        if let Some(host) = host_header {
            request = request.header("host", &host);
        }
        request.send().map(|r| r.status).map_err(describe)
    }

    fn fetch_size(url: String) -> Result<u64, String> {
        Request::get(url)
            .max_response_bytes(usize::MAX)
            .send()
            .map(|r| r.body.len() as u64)
            .map_err(describe)
    }
}

fn describe(e: HttpError) -> String {
    match e {
        HttpError::Denied(_) => "denied".into(),
        other => other.to_string(),
    }
}

export!(Probe);

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
            /// GET `url` up to `times` times: how many answered, and why
            /// the first that did not.
            export fetch-many: func(url: string, times: u32) -> tuple<u32, option<string>>;
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

    fn fetch_many(url: String, times: u32) -> (u32, Option<String>) {
        Probe::many(&url, times)
    }

    fn fetch_size(url: String) -> Result<u64, String> {
        Request::get(url)
            .max_response_bytes(usize::MAX)
            .send()
            .map(|r| r.body.len() as u64)
            .map_err(describe)
    }
}

impl Probe {
    fn many(url: &str, times: u32) -> (u32, Option<String>) {
        for i in 0..times {
            if let Err(e) = Request::get(url).send() {
                return (i, Some(describe(e)));
            }
        }
        (times, None)
    }
}

fn describe(e: HttpError) -> String {
    match e {
        HttpError::Denied(_) => "denied".into(),
        other => other.to_string(),
    }
}

export!(Probe);

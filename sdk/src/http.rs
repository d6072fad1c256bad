//! An HTTP client over the host's `wasi:http/outgoing-handler`.
//!
//! Every request leaves through the host, which checks it against the
//! operator's grant (scheme, host, port, method) and bounds its time and
//! response size; a refused request comes back as [`HttpError::Denied`].
//!
//! ```no_run
//! # fn demo() -> Result<(), toolhost_sdk::Error> {
//! use toolhost_sdk::http::Request;
//! let order: serde_json::Value = Request::get("https://erp.example.com/api/orders/SO-1")
//!     .bearer(&toolhost_sdk::secrets::get("erp-token")?)
//!     .send()?
//!     .error_for_status()?
//!     .json()?;
//! # Ok(()) }
//! ```

use std::time::Duration;

use serde::{de::DeserializeOwned, Serialize};

use crate::backend;
use crate::error::Error;

/// The default bound on one request, connect to last byte.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The default bound on a response body the client buffers.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// Why a request did not produce a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The host refused it: the destination or method is not granted.
    Denied(String),
    /// The request itself is malformed (bad URL, bad header).
    InvalidRequest(String),
    /// No response within the timeout.
    Timeout,
    /// Could not connect (refused, DNS, TLS).
    Connection(String),
    /// The response body was larger than allowed.
    TooLarge(usize),
    /// The exchange broke off or violated HTTP.
    Protocol(String),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::Denied(m) => write!(f, "request denied: {m}"),
            HttpError::InvalidRequest(m) => write!(f, "invalid request: {m}"),
            HttpError::Timeout => write!(f, "request timed out"),
            HttpError::Connection(m) => write!(f, "connection failed: {m}"),
            HttpError::TooLarge(n) => write!(f, "response body larger than {n} bytes"),
            HttpError::Protocol(m) => write!(f, "HTTP protocol error: {m}"),
        }
    }
}

impl std::error::Error for HttpError {}

/// An outgoing request, built step by step and sent with [`Request::send`].
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub timeout: Duration,
    pub max_response_bytes: usize,
}

impl Request {
    /// A request with any method.
    pub fn new(method: &str, url: impl Into<String>) -> Request {
        Request {
            method: method.to_ascii_uppercase(),
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }

    pub fn get(url: impl Into<String>) -> Request {
        Request::new("GET", url)
    }

    pub fn post(url: impl Into<String>) -> Request {
        Request::new("POST", url)
    }

    pub fn put(url: impl Into<String>) -> Request {
        Request::new("PUT", url)
    }

    pub fn patch(url: impl Into<String>) -> Request {
        Request::new("PATCH", url)
    }

    pub fn delete(url: impl Into<String>) -> Request {
        Request::new("DELETE", url)
    }

    /// Add a header.
    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.to_ascii_lowercase(), value.to_string()));
        self
    }

    /// The first value of a header, by case-insensitive name.
    pub fn header_value(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// `Authorization: Bearer <token>`.
    pub fn bearer(self, token: &str) -> Request {
        self.header("authorization", &format!("Bearer {token}"))
    }

    /// A JSON body, with its content type.
    pub fn json<T: Serialize + ?Sized>(mut self, value: &T) -> Request {
        // Serialising our own plain data types cannot fail; an exotic map key
        // would, and then the upstream gets `null` and says what it thinks.
        self.body = serde_json::to_vec(value).unwrap_or_else(|_| b"null".to_vec());
        self.header("content-type", "application/json")
    }

    /// A raw body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = body.into();
        self
    }

    /// Bound the whole exchange.
    pub fn timeout(mut self, timeout: Duration) -> Request {
        self.timeout = timeout;
        self
    }

    /// Bound the response body.
    pub fn max_response_bytes(mut self, limit: usize) -> Request {
        self.max_response_bytes = limit;
        self
    }

    /// Send it through the host and wait for the whole response.
    pub fn send(self) -> Result<Response, HttpError> {
        backend::http_send(&self)
    }
}

/// A response, with its body read in full.
#[derive(Debug, Clone, Default)]
pub struct Response {
    pub status: u16,
    /// Header names are lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// A response with a JSON body; handy in tests.
    pub fn json_body<T: Serialize + ?Sized>(status: u16, value: &T) -> Response {
        Response {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: serde_json::to_vec(value).unwrap_or_default(),
        }
    }

    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The response itself when its status is 2xx, else the typed error the
    /// status means (404 → not-found, 429 → rate-limited, ...).
    pub fn error_for_status(self) -> Result<Response, Error> {
        if self.is_success() {
            Ok(self)
        } else {
            Err(Error::from_status(&self))
        }
    }

    /// Parse the body as JSON; a body that does not parse is an upstream error.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.body).map_err(Error::malformed)
    }

    /// What the upstream said went wrong, in words: the message of a JSON
    /// error body (RFC 9457's `detail` or `title`, or the usual `message`
    /// and `error` fields), else the start of the body. An agent then reads
    /// "customer not found", not the upstream's JSON escaped inside the
    /// host's.
    pub fn error_message(&self, max_chars: usize) -> String {
        let said = serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|body| {
                let fields = [
                    &body["detail"],
                    &body["message"],
                    &body["error"],
                    &body["error"]["message"],
                    &body["title"],
                ];
                fields.into_iter().find_map(|v| v.as_str().map(str::to_string))
            })
            .filter(|said| !said.trim().is_empty());
        match said {
            Some(said) => excerpt(&said, max_chars),
            None => self.body_excerpt(max_chars),
        }
    }

    /// The start of the body as text, for error messages.
    pub fn body_excerpt(&self, max_chars: usize) -> String {
        let excerpt = excerpt(&String::from_utf8_lossy(&self.body), max_chars);
        if excerpt.trim().is_empty() {
            format!("HTTP {}", self.status)
        } else {
            excerpt
        }
    }
}

/// The first `max_chars` characters of `text`, marked when cut.
fn excerpt(text: &str, max_chars: usize) -> String {
    let mut excerpt: String = text.chars().take(max_chars).collect();
    if text.chars().count() > max_chars {
        excerpt.push('…');
    }
    excerpt
}

fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// A URL split into what `wasi:http` wants.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct UrlParts<'a> {
    pub scheme: &'a str,
    pub authority: &'a str,
    pub path_with_query: &'a str,
}

pub(crate) fn split_url(url: &str) -> Result<UrlParts<'_>, HttpError> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| HttpError::InvalidRequest(format!("{url:?} is not an absolute URL")))?;
    if !matches!(scheme, "http" | "https") {
        return Err(HttpError::InvalidRequest(format!(
            "scheme {scheme:?} is not http or https"
        )));
    }
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    if authority.is_empty() || authority.contains('@') {
        return Err(HttpError::InvalidRequest(format!("{url:?} has no plain host")));
    }
    Ok(UrlParts {
        scheme,
        authority,
        path_with_query: if path.is_empty() { "/" } else { path },
    })
}

/// Percent-encode one path segment or query value.
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_urls() {
        let p = split_url("https://api.example.com:8443/v1/x?y=1").unwrap();
        assert_eq!(
            p,
            UrlParts {
                scheme: "https",
                authority: "api.example.com:8443",
                path_with_query: "/v1/x?y=1"
            }
        );
        assert_eq!(split_url("http://h").unwrap().path_with_query, "/");
        assert_eq!(split_url("http://h?q").unwrap().path_with_query, "?q");
        assert!(split_url("ftp://h/").is_err());
        assert!(split_url("http://user@h/").is_err());
        assert!(split_url("/relative").is_err());
    }

    #[test]
    fn an_error_body_gives_its_message_not_its_json() {
        let said = |body: serde_json::Value| Response::json_body(404, &body).error_message(200);
        assert_eq!(
            said(serde_json::json!({ "error": "customer not found" })),
            "customer not found"
        );
        assert_eq!(
            said(serde_json::json!({ "error": { "message": "no such order" } })),
            "no such order"
        );
        assert_eq!(
            said(serde_json::json!({ "title": "Not Found", "detail": "case 7" })),
            "case 7"
        );
        assert_eq!(said(serde_json::json!({ "code": 7 })), r#"{"code":7}"#);
        let text = Response {
            status: 404,
            headers: Vec::new(),
            body: b"gone".to_vec(),
        };
        assert_eq!(text.error_message(200), "gone");
        let long = Response::json_body(404, &serde_json::json!({ "message": "x".repeat(300) }));
        assert_eq!(long.error_message(10), format!("{}…", "x".repeat(10)));
    }

    #[test]
    fn encodes_components() {
        assert_eq!(encode_component("a b/c?d"), "a%20b%2Fc%3Fd");
    }
}

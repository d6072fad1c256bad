//! A client for one upstream REST API: its base URL from the operator's
//! config, its credential from a secret, applied the way that API wants it.
//!
//! ```no_run
//! use toolhost_sdk::api::{Api, Auth};
//! # fn demo() -> toolhost_sdk::Result<()> {
//! let erp = Api::configured("base-url", "api-key", Auth::Bearer)?;
//! let order: serde_json::Value = erp.get("/orders/SO-1001")?;
//! # Ok(()) }
//! ```

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::http::{encode_component, Request};
use crate::{config, secrets, Result};

/// Where the credential goes.
#[derive(Debug, Clone)]
pub enum Auth {
    /// `Authorization: Bearer <secret>`.
    Bearer(String),
    /// A header of the API's choosing, e.g. `X-Api-Key`.
    Header(&'static str, String),
    /// A query parameter, e.g. `?apikey=`.
    Query(&'static str, String),
}

#[derive(Debug, Clone)]
pub struct Api {
    base: String,
    auth: Auth,
}

impl Api {
    pub fn new(base: impl Into<String>, auth: Auth) -> Api {
        Api {
            base: base.into().trim_end_matches('/').to_string(),
            auth,
        }
    }

    /// Base URL from config `base_setting`, credential from secret `secret`,
    /// placed by `auth` (e.g. `Auth::Bearer`, or `|k| Auth::Header("x-api-key", k)`).
    pub fn configured(base_setting: &str, secret: &str, auth: impl FnOnce(String) -> Auth) -> Result<Api> {
        Ok(Api::new(config::require(base_setting)?, auth(secrets::get(secret)?)))
    }

    /// A request to `path` (with its query, if any), credential applied.
    pub fn request(&self, method: &str, path: &str) -> Request {
        let mut url = format!("{}{path}", self.base);
        match &self.auth {
            Auth::Query(name, key) => {
                url.push(if path.contains('?') { '&' } else { '?' });
                url.push_str(&format!("{name}={}", encode_component(key)));
                Request::new(method, url)
            }
            Auth::Bearer(key) => Request::new(method, url).bearer(key),
            Auth::Header(name, key) => Request::new(method, url).header(name, key),
        }
    }

    /// Send, turn an error status into the typed error, parse the JSON body.
    pub fn send<T: DeserializeOwned>(&self, request: Request) -> Result<T> {
        request.send()?.error_for_status()?.json()
    }

    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.send(self.request("GET", path))
    }

    pub fn post<T: DeserializeOwned, B: Serialize + ?Sized>(&self, path: &str, body: &B) -> Result<T> {
        self.send(self.request("POST", path).json(body))
    }

    pub fn patch<T: DeserializeOwned, B: Serialize + ?Sized>(&self, path: &str, body: &B) -> Result<T> {
        self.send(self.request("PATCH", path).json(body))
    }
}

/// Check an identifier before it goes into a URL: not empty, not too long,
/// not a dot segment, and encoded as one path segment. `.` and `..` are
/// refused rather than encoded: servers resolve `%2E%2E` as `..` too, so an
/// agent's `order-id: ".."` would reach the path above the one meant.
pub fn segment(field: &str, value: &str) -> Result<String> {
    if value.trim().is_empty() || value.len() > 128 {
        return Err(crate::Error::InvalidInput(format!(
            "{field} must be 1 to 128 characters"
        )));
    }
    if value == "." || value == ".." {
        return Err(crate::Error::InvalidInput(format!("{field} must not be {value:?}")));
    }
    Ok(encode_component(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_segment_is_one_segment_and_never_a_dot_segment() {
        assert_eq!(segment("id", "a/b").unwrap(), "a%2Fb");
        assert_eq!(segment("id", "..a").unwrap(), "..a");
        for bad in [".", "..", "", " ", &"x".repeat(129)] {
            assert!(segment("id", bad).is_err(), "{bad:?}");
        }
    }
}

//! Unit-test connector logic natively, without building a component or
//! running a host: install a [`TestHost`] with the secrets, settings, stored
//! data and upstream answers a test needs, then call the connector's functions.
//!
//! ```
//! use toolhost_sdk::http::Response;
//! use toolhost_sdk::testing::TestHost;
//!
//! let mut host = TestHost::new()
//!     .secret("api-key", "k1")
//!     .config("base-url", "https://crm.example.com")
//!     .on_http(|req| {
//!         assert_eq!(req.header_value("authorization"), Some("Bearer k1"));
//!         Ok(Response::json_body(200, &serde_json::json!({"ok": true})))
//!     });
//! let status = host.run(|| {
//!     let key = toolhost_sdk::secrets::get("api-key").unwrap();
//!     toolhost_sdk::http::Request::get("https://crm.example.com/ping").bearer(&key).send().unwrap().status
//! });
//! assert_eq!(status, 200);
//! ```

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use crate::http::{HttpError, Request, Response};
use crate::kv::KvError;
use crate::log::Level;
use crate::progress::Report;
use crate::secrets::SecretError;

type Responder = Box<dyn FnMut(&Request) -> Result<Response, HttpError>>;

/// An in-process stand-in for the host, for native unit tests of a connector.
#[derive(Default)]
pub struct TestHost {
    kv: BTreeMap<String, Vec<u8>>,
    kv_quota: Option<usize>,
    secrets: HashMap<String, String>,
    config: HashMap<String, String>,
    now: Option<i64>,
    random_state: u64,
    responder: Option<Responder>,
    requests: Vec<Request>,
    logs: Vec<(Level, String)>,
    progress: Vec<Report>,
}

impl TestHost {
    pub fn new() -> TestHost {
        TestHost::default()
    }

    /// Grant a secret with this value.
    pub fn secret(mut self, name: &str, value: &str) -> TestHost {
        self.secrets.insert(name.into(), value.into());
        self
    }

    /// Set a config value.
    pub fn config(mut self, name: &str, value: &str) -> TestHost {
        self.config.insert(name.into(), value.into());
        self
    }

    /// Bound the bytes kv may hold (keys plus values), as a grant would.
    pub fn kv_quota(mut self, bytes: usize) -> TestHost {
        self.kv_quota = Some(bytes);
        self
    }

    /// Fix the wall clock at this Unix time.
    pub fn now(mut self, unix: i64) -> TestHost {
        self.now = Some(unix);
        self
    }

    /// Answer outbound requests with this function; without one, every
    /// request is denied, as a host with no HTTP grant would.
    pub fn on_http(mut self, f: impl FnMut(&Request) -> Result<Response, HttpError> + 'static) -> TestHost {
        self.responder = Some(Box::new(f));
        self
    }

    /// Run `f` with this host installed. The host keeps what `f` did to it
    /// (stored data, requests made, log lines) for the test to inspect.
    pub fn run<R>(&mut self, f: impl FnOnce() -> R) -> R {
        CURRENT.with(|c| *c.borrow_mut() = Some(std::mem::take(self)));
        // Put the state back even when `f` panics, so a failed assertion
        // inside reports itself instead of a confusing second panic.
        struct Restore<'a>(&'a mut TestHost);
        impl Drop for Restore<'_> {
            fn drop(&mut self) {
                if let Some(state) = CURRENT.with(|c| c.borrow_mut().take()) {
                    *self.0 = state;
                }
            }
        }
        let _restore = Restore(self);
        f()
    }

    /// The requests the connector sent, in order.
    pub fn requests(&self) -> &[Request] {
        &self.requests
    }

    /// The lines the connector logged.
    pub fn logs(&self) -> &[(Level, String)] {
        &self.logs
    }

    /// The progress the connector reported, every report (the host would
    /// pass on only those whose `done` grows).
    pub fn progress(&self) -> &[Report] {
        &self.progress
    }

    /// What the connector stored under `key`.
    pub fn stored(&self, key: &str) -> Option<&[u8]> {
        self.kv.get(key).map(Vec::as_slice)
    }

    fn kv_used_with(&self, key: &str, value_len: usize) -> usize {
        let current: usize = self.kv.iter().map(|(k, v)| k.len() + v.len()).sum();
        let replaced = self.kv.get(key).map_or(0, |v| key.len() + v.len());
        current - replaced + key.len() + value_len
    }

    fn kv_write(&mut self, key: &str, value: &[u8]) -> Result<(), KvError> {
        if let Some(quota) = self.kv_quota {
            if self.kv_used_with(key, value.len()) > quota {
                return Err(KvError::QuotaExceeded(format!("quota of {quota} bytes")));
            }
        }
        self.kv.insert(key.to_string(), value.to_vec());
        Ok(())
    }
}

thread_local! {
    static CURRENT: RefCell<Option<TestHost>> = const { RefCell::new(None) };
}

fn with_host<R>(f: impl FnOnce(&mut TestHost) -> R) -> R {
    CURRENT.with(|c| {
        let mut current = c.borrow_mut();
        let host = current
            .as_mut()
            .expect("no test host: call the connector inside toolhost_sdk::testing::TestHost::run");
        f(host)
    })
}

/// The native backend the SDK's public functions call outside a component.
pub(crate) mod backend {
    use super::*;

    pub(crate) fn kv_get(key: &str) -> Result<Option<Vec<u8>>, KvError> {
        with_host(|h| Ok(h.kv.get(key).cloned()))
    }

    pub(crate) fn kv_set(key: &str, value: &[u8]) -> Result<(), KvError> {
        with_host(|h| h.kv_write(key, value))
    }

    pub(crate) fn kv_set_if_absent(key: &str, value: &[u8]) -> Result<bool, KvError> {
        with_host(|h| {
            if h.kv.contains_key(key) {
                return Ok(false);
            }
            h.kv_write(key, value).map(|()| true)
        })
    }

    pub(crate) fn kv_delete(key: &str) -> Result<bool, KvError> {
        with_host(|h| Ok(h.kv.remove(key).is_some()))
    }

    pub(crate) fn kv_list_keys(prefix: &str, limit: u32) -> Result<Vec<String>, KvError> {
        with_host(|h| {
            Ok(h.kv
                .range(prefix.to_string()..)
                .take_while(|(k, _)| k.starts_with(prefix))
                .take(limit as usize)
                .map(|(k, _)| k.clone())
                .collect())
        })
    }

    pub(crate) fn secret(name: &str) -> Result<String, SecretError> {
        with_host(|h| {
            h.secrets
                .get(name)
                .cloned()
                .ok_or_else(|| SecretError::NotGranted(name.into()))
        })
    }

    pub(crate) fn config(name: &str) -> Option<String> {
        with_host(|h| h.config.get(name).cloned())
    }

    pub(crate) fn log(level: Level, message: &str) {
        with_host(|h| h.logs.push((level, message.to_string())))
    }

    pub(crate) fn progress(done: u64, total: Option<u64>, message: Option<&str>) {
        let message = message.map(str::to_string);
        with_host(|h| h.progress.push(Report { done, total, message }))
    }

    pub(crate) fn now_unix() -> i64 {
        with_host(|h| h.now).unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64)
        })
    }

    pub(crate) fn random_u64() -> u64 {
        // Deterministic per host, so a test can rely on what it sees twice.
        with_host(|h| {
            h.random_state = h.random_state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = h.random_state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        })
    }

    pub(crate) fn http_send(req: &Request) -> Result<Response, HttpError> {
        crate::http::split_url(&req.url)?;
        // Take the responder out while it runs, so it may itself call
        // anything but the host (which is borrowed for the duration).
        let responder = with_host(|h| {
            h.requests.push(req.clone());
            h.responder.take()
        });
        let Some(mut responder) = responder else {
            return Err(HttpError::Denied("the test host has no HTTP responder".into()));
        };
        let result = responder(req);
        with_host(|h| h.responder = Some(responder));
        result
    }
}

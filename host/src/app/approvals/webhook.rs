//! The reviewers' webhook: each held call is POSTed as JSON to the URL the
//! operator configured (`[approvals.webhook]`), signed so the receiver can
//! tell it came from this host and is fresh, and retried with backoff until
//! the receiver answers 2xx.
//!
//! Signature: `X-Toolhost-Signature: sha256=HEX`, the HMAC-SHA256 with the
//! shared secret of `TIMESTAMP.BODY`, where `TIMESTAMP` is the
//! `X-Toolhost-Timestamp` header (Unix seconds). A receiver recomputes it,
//! compares in constant time, and refuses timestamps more than a few minutes
//! old (a replay). `X-Toolhost-Delivery` is the approval id: the same on
//! every retry, so a receiver can drop duplicates.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use sha2::Sha256;
use tokio::sync::Semaphore;

use crate::config::approvals::WebhookConfig;

/// Deliveries in progress at once (retries included); past this, new ones
/// are dropped with an error in the log (reviewers still see the held calls
/// in the API and the event stream).
pub const MAX_IN_FLIGHT: usize = 256;
/// How long one attempt may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("approvals webhook: {0}")]
    Config(String),
}

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

pub struct Webhook {
    inner: Arc<Inner>,
}

struct Inner {
    url: http::Uri,
    secret: SecretString,
    attempts: u32,
    backoff: Duration,
    client: HttpsClient,
    room: Arc<Semaphore>,
}

impl Webhook {
    pub fn new(config: &WebhookConfig) -> Result<Webhook, WebhookError> {
        let url: http::Uri = config
            .url
            .parse()
            .map_err(|e| WebhookError::Config(format!("url {:?}: {e}", config.url)))?;
        let secret = std::env::var(&config.secret_env).map_err(|_| {
            WebhookError::Config(format!(
                "secret-env names {:?}, which is not set in the environment",
                config.secret_env
            ))
        })?;
        if secret.len() < 16 {
            return Err(WebhookError::Config(format!(
                "the secret in {:?} is shorter than 16 bytes",
                config.secret_env
            )));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| WebhookError::Config(format!("TLS: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Webhook {
            inner: Arc::new(Inner {
                url,
                secret: SecretString::from(secret),
                attempts: config.attempts,
                backoff: Duration::from_millis(config.backoff_ms),
                client: Client::builder(TokioExecutor::new()).build(connector),
                room: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            }),
        })
    }

    /// Send `body` in the background, retrying until it is taken.
    pub fn deliver(&self, delivery: String, body: Value) {
        let Ok(permit) = self.inner.room.clone().try_acquire_owned() else {
            tracing::error!(
                delivery,
                "approvals webhook: {MAX_IN_FLIGHT} deliveries already in progress; this one is dropped"
            );
            return;
        };
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let body = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
            let mut wait = inner.backoff;
            for attempt in 1..=inner.attempts {
                match inner.send(&delivery, body.clone()).await {
                    Ok(()) => return,
                    Err(e) if attempt < inner.attempts => {
                        tracing::warn!(delivery, attempt, "approvals webhook: {e}; retrying in {wait:?}");
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(Duration::from_secs(300));
                    }
                    Err(e) => {
                        tracing::error!(delivery, attempt, "approvals webhook: {e}; giving up");
                    }
                }
            }
        });
    }
}

impl Inner {
    async fn send(&self, delivery: &str, body: Bytes) -> Result<(), String> {
        let timestamp = crate::model::time::now_secs().to_string();
        let signature = sign(self.secret.expose_secret().as_bytes(), &timestamp, &body);
        let request = http::Request::post(self.url.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(
                http::header::USER_AGENT,
                concat!("toolhost/", env!("CARGO_PKG_VERSION")),
            )
            .header("x-toolhost-timestamp", &timestamp)
            .header("x-toolhost-signature", format!("sha256={signature}"))
            .header("x-toolhost-delivery", delivery)
            .body(Full::new(body))
            .map_err(|e| e.to_string())?;
        let response = tokio::time::timeout(ATTEMPT_TIMEOUT, self.client.request(request))
            .await
            .map_err(|_| format!("no answer within {ATTEMPT_TIMEOUT:?}"))?
            .map_err(|e| format!("{e}"))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("the receiver answered {}", response.status()))
        }
    }
}

/// HMAC-SHA256 of `TIMESTAMP.BODY`, hex.
pub fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

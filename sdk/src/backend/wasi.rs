//! The real thing: calls into the host's imports.

use crate::bindings::host::toolhost::connector::{config, kv, log, progress, secrets};
use crate::bindings::host::wasi::clocks::wall_clock;
use crate::bindings::host::wasi::http::outgoing_handler;
use crate::bindings::host::wasi::http::types::{
    http_error_code, ErrorCode, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
};
use crate::bindings::host::wasi::io::streams::StreamError;
use crate::http::{split_url, HttpError, Request, Response};

pub(crate) fn kv_get(key: &str) -> Result<Option<Vec<u8>>, kv::KvError> {
    kv::get(key)
}

pub(crate) fn kv_set(key: &str, value: &[u8]) -> Result<(), kv::KvError> {
    kv::set(key, value)
}

pub(crate) fn kv_set_if_absent(key: &str, value: &[u8]) -> Result<bool, kv::KvError> {
    kv::set_if_absent(key, value)
}

pub(crate) fn kv_delete(key: &str) -> Result<bool, kv::KvError> {
    kv::delete(key)
}

pub(crate) fn kv_list_keys(prefix: &str, limit: u32) -> Result<Vec<String>, kv::KvError> {
    kv::list_keys(prefix, limit)
}

pub(crate) fn secret(name: &str) -> Result<String, secrets::SecretError> {
    secrets::get(name)
}

pub(crate) fn config(name: &str) -> Option<String> {
    config::get(name)
}

pub(crate) fn log(level: log::Level, message: &str) {
    log::write(level, message)
}

pub(crate) fn progress(done: u64, total: Option<u64>, message: Option<&str>) {
    progress::report(done, total, message)
}

pub(crate) fn now_unix() -> i64 {
    wall_clock::now().seconds as i64
}

pub(crate) fn random_u64() -> u64 {
    crate::bindings::host::wasi::random::random::get_random_u64()
}

pub(crate) fn http_send(req: &Request) -> Result<Response, HttpError> {
    let url = split_url(&req.url)?;
    let invalid = |what: &str| HttpError::InvalidRequest(format!("{what} of {}", req.url));

    let fields: Vec<(String, Vec<u8>)> = req
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), v.as_bytes().to_vec()))
        .collect();
    let headers = Fields::from_list(&fields).map_err(|e| HttpError::InvalidRequest(format!("header: {e:?}")))?;
    let outgoing = OutgoingRequest::new(headers);
    outgoing
        .set_method(&method(&req.method))
        .map_err(|()| invalid("method"))?;
    let scheme = if url.scheme == "https" {
        Scheme::Https
    } else {
        Scheme::Http
    };
    outgoing.set_scheme(Some(&scheme)).map_err(|()| invalid("scheme"))?;
    outgoing
        .set_authority(Some(url.authority))
        .map_err(|()| invalid("authority"))?;
    outgoing
        .set_path_with_query(Some(url.path_with_query))
        .map_err(|()| invalid("path"))?;

    let options = RequestOptions::new();
    let nanos = req.timeout.as_nanos().min(u64::MAX as u128) as u64;
    // The host caps these at the operator's limits; refusing a value is fine.
    let _ = options.set_connect_timeout(Some(nanos));
    let _ = options.set_first_byte_timeout(Some(nanos));
    let _ = options.set_between_bytes_timeout(Some(nanos));

    let body = outgoing.body().map_err(|()| invalid("body"))?;
    let future = outgoing_handler::handle(outgoing, Some(options)).map_err(error_code)?;
    // When the host refuses the request (or the connection fails) the body
    // stream closes; the reason is in the response future, so a failed write
    // only counts if the future has nothing better to say.
    let written = write_body(&body, &req.body).and_then(|()| OutgoingBody::finish(body, None).map_err(error_code));

    let incoming = loop {
        match future.get() {
            Some(result) => break result,
            None => future.subscribe().block(),
        }
    };
    let incoming = incoming
        .map_err(|()| HttpError::Protocol("response already taken".into()))?
        .map_err(error_code)?;
    written?;

    let status = incoming.status();
    let headers = incoming
        .headers()
        .entries()
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), String::from_utf8_lossy(&v).into_owned()))
        .collect();
    let body = incoming
        .consume()
        .map_err(|()| HttpError::Protocol("body already taken".into()))?;
    let mut bytes = Vec::new();
    {
        let stream = body
            .stream()
            .map_err(|()| HttpError::Protocol("body stream already taken".into()))?;
        loop {
            match stream.blocking_read(64 * 1024) {
                Ok(chunk) => {
                    if bytes.len() + chunk.len() > req.max_response_bytes {
                        return Err(HttpError::TooLarge(req.max_response_bytes));
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => {
                    // Why the body failed (a stall past the grant's timeout,
                    // a size cap) should come as an HTTP error code; hosts on
                    // wasmtime 48 only give its text, so a timeout is known
                    // by name.
                    return Err(match http_error_code(&e) {
                        Some(code) => error_code(code),
                        None => {
                            let text = e.to_debug_string();
                            if text.contains("timeout") {
                                HttpError::Timeout
                            } else {
                                HttpError::Protocol(text)
                            }
                        }
                    });
                }
            }
        }
    }
    drop(IncomingBody::finish(body));
    Ok(Response {
        status,
        headers,
        body: bytes,
    })
}

fn write_body(body: &OutgoingBody, bytes: &[u8]) -> Result<(), HttpError> {
    let stream = body
        .write()
        .map_err(|()| HttpError::Protocol("request body already taken".into()))?;
    for chunk in bytes.chunks(4096) {
        stream
            .blocking_write_and_flush(chunk)
            .map_err(|e| HttpError::Protocol(format!("writing request body: {e:?}")))?;
    }
    Ok(())
}

fn method(m: &str) -> Method {
    match m {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "CONNECT" => Method::Connect,
        "OPTIONS" => Method::Options,
        "TRACE" => Method::Trace,
        "PATCH" => Method::Patch,
        other => Method::Other(other.to_string()),
    }
}

fn error_code(code: ErrorCode) -> HttpError {
    match code {
        ErrorCode::HttpRequestDenied => {
            HttpError::Denied("the operator's grant does not allow this destination or method".into())
        }
        ErrorCode::ConnectionTimeout | ErrorCode::ConnectionReadTimeout | ErrorCode::ConnectionWriteTimeout => {
            HttpError::Timeout
        }
        ErrorCode::HttpResponseTimeout => HttpError::Timeout,
        ErrorCode::HttpResponseBodySize(n) => HttpError::TooLarge(n.unwrap_or(0) as usize),
        ErrorCode::DnsTimeout => HttpError::Timeout,
        ErrorCode::DnsError(e) => HttpError::Connection(format!("DNS: {:?}", e.rcode)),
        ErrorCode::ConnectionRefused => HttpError::Connection("connection refused".into()),
        ErrorCode::DestinationNotFound | ErrorCode::DestinationUnavailable => {
            HttpError::Connection("destination unreachable".into())
        }
        ErrorCode::TlsCertificateError | ErrorCode::TlsProtocolError | ErrorCode::TlsAlertReceived(_) => {
            HttpError::Connection(format!("TLS: {code:?}"))
        }
        ErrorCode::HttpRequestUriInvalid | ErrorCode::HttpRequestMethodInvalid => {
            HttpError::InvalidRequest(format!("{code:?}"))
        }
        other => HttpError::Protocol(format!("{other:?}")),
    }
}

//! What a client can hold of the host through its connections alone, no
//! token needed: a head sent a byte at a time (slowloris), keep-alive
//! connections left idle, a body sent at 1 KiB/s, more connections than the
//! process may open files. Each is bounded ([server] header-timeout-secs,
//! connection-idle-secs, body-timeout-secs with body-min-bytes-per-sec,
//! max-connections with health-connections), and the host keeps answering
//! `/healthz` and agents' calls throughout.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use toolhost_tests::*;

/// How long a test waits for what the host must do within its (short)
/// timeouts; far more than they are, so that only a missing bound fails.
const WITHIN: Duration = Duration::from_secs(20);

fn addr(server: &ServerProcess) -> SocketAddr {
    server
        .base
        .trim_start_matches("http://")
        .parse()
        .expect("the base is http://ADDR")
}

/// `[server]` with the given lines, then `rest`.
fn config(server: &str, rest: &str) -> String {
    format!("[server]\n{server}\n{rest}")
}

/// Read until the peer closes (or resets) the connection, discarding what
/// comes; whether that happened within `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// Read one response (head and a `Content-Length` body) off `stream`; its
/// text, or `None` if the connection ended first.
async fn read_response(stream: &mut TcpStream) -> Option<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&got).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(str::to_string)
                })
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if got.len() >= end + 4 + length {
                return Some(text);
            }
        }
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// A connection that has been answered one `/healthz` and is kept open.
async fn answered_once(server: &ServerProcess) -> TcpStream {
    let mut stream = TcpStream::connect(addr(server)).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let answer = read_response(&mut stream).await.expect("an answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    stream
}

/// Send a head a line at a time, `every` apart, never finishing it, until
/// the host closes the connection; whether it did within `within`.
async fn slowloris(addr: SocketAddr, every: Duration, within: Duration) -> bool {
    let Ok(Ok(mut stream)) = tokio::time::timeout(within, TcpStream::connect(addr)).await else {
        return false;
    };
    if stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .is_err()
    {
        return true;
    }
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 64];
    while Instant::now() < deadline {
        tokio::select! {
            read = stream.read(&mut buf) => if matches!(read, Ok(0) | Err(_)) { return true },
            () = tokio::time::sleep(every) => {
                if stream.write_all(b"X-Slow: a\r\n").await.is_err() {
                    return true;
                }
            }
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread")]
async fn a_head_that_never_ends_is_cut_at_the_header_timeout() {
    let server = ServerProcess::start(&config("header-timeout-secs = 1\nconnection-idle-secs = 600", ""), &[]);
    // A head a line every 200 ms, and a connection that sends nothing.
    let dribbling = tokio::spawn(slowloris(addr(&server), Duration::from_millis(200), WITHIN));
    let mut silent = TcpStream::connect(addr(&server)).await.unwrap();
    assert!(
        closed_within(&mut silent, WITHIN).await,
        "a silent connection was never closed"
    );
    assert!(dribbling.await.unwrap(), "a head sent slowly was never cut");
    // A whole head in time is answered, on a connection that stays open for
    // the next one.
    let mut kept = answered_once(&server).await;
    kept.write_all(b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    assert!(read_response(&mut kept)
        .await
        .is_some_and(|a| a.starts_with("HTTP/1.1 200")));
}

/// An upstream whose `/held` answers only once `release` is notified; the
/// count of requests it has had.
async fn held_upstream() -> (SocketAddr, Arc<tokio::sync::Notify>, Arc<AtomicUsize>) {
    let release = Arc::new(tokio::sync::Notify::new());
    let arrived = Arc::new(AtomicUsize::new(0));
    let (r, a) = (release.clone(), arrived.clone());
    let router = axum::Router::new().route(
        "/held",
        axum::routing::get(move || {
            let (release, arrived) = (r.clone(), a.clone());
            async move {
                let released = release.notified();
                arrived.fetch_add(1, Ordering::SeqCst);
                released.await;
                "released"
            }
        }),
    );
    (serve(router).await, release, arrived)
}

fn fetch_held(upstream: SocketAddr) -> Value {
    json!({ "method": "GET", "url": format!("http://{upstream}/held"), "host-header": null })
}

/// Wait (polling) until `done`, at most `within`.
async fn until(within: Duration, done: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while !done() {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_connection_is_closed_but_a_running_call_and_an_event_stream_are_not() {
    let (upstream, release, arrived) = held_upstream().await;
    let server = ServerProcess::start(
        &config(
            "header-timeout-secs = 600\nconnection-idle-secs = 1",
            &format!(
                "{}timeout-ms = 60000\n\n[[approvals.rules]]\nname = \"posts\"\ntools = [\"netprobe.fetch\"]\n\
                 when = \"args.method == 'POST'\"\n",
                netprobe_grant(upstream)
            ),
        ),
        &["netprobe"],
    );
    // A call waiting on its upstream, and an event stream: both busy.
    let call = tokio::spawn({
        let (url, token) = (server.url("/v1/tools/netprobe.fetch/invoke"), AGENT_TOKEN);
        async move {
            let r = reqwest::Client::new()
                .post(url)
                .bearer_auth(token)
                .json(&fetch_held(upstream))
                .send()
                .await
                .expect("the call is answered");
            (r.status().as_u16(), r.json::<Value>().await.unwrap_or(Value::Null))
        }
    });
    assert!(until(WITHIN, || arrived.load(Ordering::SeqCst) == 1).await);
    let mut stream = reqwest::Client::new()
        .get(server.url("/v1/approvals/stream"))
        .bearer_auth(APPROVER_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);

    // A connection answered once, then left idle, is closed...
    let mut idle = answered_once(&server).await;
    assert!(
        closed_within(&mut idle, WITHIN).await,
        "an idle connection was never closed"
    );

    // ... while the call and the stream, open longer than that, go on.
    release.notify_one();
    let (status, body) = call.await.unwrap();
    assert_eq!((status, &body["result"]), (200, &json!(200)), "{body}");
    // The stream still carries the next event: a call held for review.
    let held = json!({ "method": "POST", "url": format!("http://{upstream}/effect"), "host-header": null });
    let (status, body) = invoke(&server, AGENT_TOKEN, "netprobe.fetch", held).await;
    assert_eq!(status, 202, "{body}");
    let mut seen = String::new();
    let event = tokio::time::timeout(WITHIN, async {
        while !seen.contains("event: held") {
            match stream.chunk().await {
                Ok(Some(chunk)) => seen.push_str(&String::from_utf8_lossy(&chunk)),
                other => return Err(format!("the event stream was cut: {other:?}")),
            }
        }
        Ok(())
    })
    .await;
    assert!(matches!(event, Ok(Ok(()))), "{event:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_sent_slowly_is_answered_408() {
    let server = ServerProcess::start(
        &config("body-timeout-secs = 1\nbody-min-bytes-per-sec = 4096", ""),
        &["echo"],
    );
    // At the host's pace, a body is read and the call made.
    let (status, body) = echo_check(&server, AGENT_TOKEN).await;
    assert_eq!(status, 200, "{body}");

    // 100 KB announced, sent at 1 KB/s (100 bytes every 100 ms): it would
    // take 100 s.
    let stream = TcpStream::connect(addr(&server)).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let head = format!(
        "POST /v1/tools/echo.check/invoke HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {AGENT_TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{{\"ok\": true, \"message\": \""
    );
    writer.write_all(head.as_bytes()).await.unwrap();
    let trickle = tokio::spawn(async move {
        while writer.write_all(&[b'a'; 100]).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut got = Vec::new();
    let answered = tokio::time::timeout(WITHIN, reader.read_to_end(&mut got)).await;
    trickle.abort();
    let text = String::from_utf8_lossy(&got);
    assert!(answered.is_ok(), "the slow body was still being read after {WITHIN:?}");
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("\"kind\":\"request_timeout\""), "{text}");
    assert!(text.contains("body-min-bytes-per-sec"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn at_the_cap_a_new_connection_closes_the_oldest_idle_one() {
    let server = ServerProcess::start(&config("max-connections = 2\nhealth-connections = 1", ""), &[]);
    let mut oldest = answered_once(&server).await;
    let mut second = answered_once(&server).await;
    // A third is served; the oldest without a request running makes room.
    let _third = answered_once(&server).await;
    assert!(
        closed_within(&mut oldest, WITHIN).await,
        "the oldest idle connection stayed open"
    );
    second
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let answer = read_response(&mut second).await;
    assert!(
        answer.is_some_and(|a| a.starts_with("HTTP/1.1 200")),
        "the second one was closed too"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn when_every_connection_has_a_call_running_health_checks_are_still_answered() {
    let (upstream, release, arrived) = held_upstream().await;
    let server = ServerProcess::start(
        &config(
            "max-connections = 2\nhealth-connections = 2",
            &format!("{}timeout-ms = 60000\n", netprobe_grant(upstream)),
        ),
        &["netprobe"],
    );
    let calls: Vec<_> = (0..2)
        .map(|_| {
            let url = server.url("/v1/tools/netprobe.fetch/invoke");
            tokio::spawn(async move {
                let r = reqwest::Client::new()
                    .post(url)
                    .bearer_auth(AGENT_TOKEN)
                    .json(&fetch_held(upstream))
                    .send()
                    .await
                    .expect("the call is answered");
                r.status().as_u16()
            })
        })
        .collect();
    assert!(until(WITHIN, || arrived.load(Ordering::SeqCst) == 2).await);

    // Both slots are busy: a new connection answers probes only.
    let (status, ready) = get_json(&server, ADMIN_TOKEN, "/readyz").await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(get_text(&server, ADMIN_TOKEN, "/healthz").await, "ok");
    let (status, refused) = get_json(&server, AGENT_TOKEN, "/v1/tools").await;
    assert_eq!(status, 503, "{refused}");
    assert_eq!(refused["error"]["kind"], "too_many_connections", "{refused}");

    release.notify_waiters();
    for call in calls {
        assert_eq!(call.await.unwrap(), 200);
    }
    let (status, tools) = get_json(&server, AGENT_TOKEN, "/v1/tools").await;
    assert_eq!(status, 200, "{tools}");
}

/// Send a request, and once more if its connection was closed before any
/// answer came (counted in `retried`).
async fn send_twice(
    retried: &mut usize,
    request: impl Fn() -> reqwest::RequestBuilder,
) -> reqwest::Result<reqwest::Response> {
    match request().send().await {
        Err(e) if e.is_request() && !e.is_timeout() => {
            *retried += 1;
            request().send().await
        }
        other => other,
    }
}

/// An idle keep-alive connection: one `/healthz`, then nothing, until the
/// host closes it; whether it did within `within`.
async fn idle_keep_alive(addr: SocketAddr, within: Duration) -> bool {
    let Ok(Ok(mut stream)) = tokio::time::timeout(within, TcpStream::connect(addr)).await else {
        return false;
    };
    // Under the flood it may be closed before it is answered: closed either way.
    if stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .is_err()
    {
        return true;
    }
    closed_within(&mut stream, within).await
}

#[tokio::test(flavor = "multi_thread")]
async fn two_thousand_slow_heads_and_two_thousand_idle_connections_under_1024_files() {
    // The test holds 4,000 sockets of its own.
    toolhost::server::connections::raise_fd_limit().expect("raise the test's open-file limit");
    let server = ServerProcess::start_limited(
        &config("header-timeout-secs = 2\nconnection-idle-secs = 2", ""),
        |plugins| ServerProcess::link_bundles(plugins, &["echo"]),
        Some(1024),
    );
    let target = addr(&server);
    let closed = Arc::new(AtomicUsize::new(0));
    let attackers = 4000;
    let flood = tokio::spawn({
        let closed = closed.clone();
        async move {
            let mut tasks = Vec::new();
            for i in 0..attackers {
                let closed = closed.clone();
                tasks.push(tokio::spawn(async move {
                    let by_host = if i % 2 == 0 {
                        slowloris(target, Duration::from_millis(500), WITHIN).await
                    } else {
                        idle_keep_alive(target, WITHIN).await
                    };
                    if by_host {
                        closed.fetch_add(1, Ordering::SeqCst);
                    }
                }));
                if i % 100 == 99 {
                    tokio::task::yield_now().await;
                }
            }
            futures::future::join_all(tasks).await;
        }
    });

    // Health checks and an agent's calls, each on a new connection, until
    // every attacking connection has ended.
    let probes = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut answered = 0;
    let mut retried = 0;
    let mut failures = Vec::new();
    while !flood.is_finished() {
        // A probe's connection may be the oldest one not yet read when an
        // attacker's takes its place (the cap's rule, see
        // `server::connections`): the host closed it unanswered, and a
        // client tries once more, as a balancer does. An answer that is not
        // 200, or two closes in a row, fail the test.
        let health = send_twice(&mut retried, || probes.get(server.url("/healthz"))).await;
        match health {
            Ok(r) if r.status() == 200 => answered += 1,
            other => failures.push(format!("/healthz: {other:?}")),
        }
        if answered % 5 == 0 {
            let call = send_twice(&mut retried, || {
                probes
                    .post(server.url("/v1/tools/echo.check/invoke"))
                    .bearer_auth(AGENT_TOKEN)
                    .json(&json!({ "ok": true, "message": "m" }))
            })
            .await;
            match call {
                Ok(r) if r.status() == 200 => {}
                other => failures.push(format!("echo.check: {other:?}")),
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    flood.await.unwrap();
    assert!(
        failures.is_empty(),
        "{} failed, {answered} answered: {failures:?}",
        failures.len()
    );
    assert!(answered >= 5, "only {answered} health checks ran during the flood");
    // Closed unanswered is the exception, not the rule.
    assert!(
        retried * 10 <= answered,
        "{retried} of {answered} probes had to try again"
    );
    assert_eq!(
        closed.load(Ordering::SeqCst),
        attackers,
        "attacking connections the host did not close"
    );
    // The host logged why it serves fewer than max-connections.
    assert!(
        server.log().contains("max-connections 4096 lowered to"),
        "{}",
        server.log()
    );
}

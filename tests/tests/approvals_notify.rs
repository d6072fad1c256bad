//! How people hear of held calls, and how an agent follows one: the
//! reviewers' webhook (signed, retried until taken, no more than the
//! configured attempts), the reviewers' event stream (every step of an
//! approval, ending cleanly when the host stops), and an unmodified MCP
//! client (the official Python SDK) waiting on `toolhost.await-approval`.
//! The held call's side effect is a POST to a local upstream that counts
//! what it got.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use futures::stream::BoxStream;
use futures::StreamExt;
use serde_json::{json, Value};
use toolhost_tests::{
    counting_upstream, decide, get_json, held_id, invoke, mcp_initialized, mcp_python, mcp_rpc, mcp_task_ended,
    netprobe_grant, repo_root, serve, ServerProcess, ADMIN_TOKEN, AGENT_TOKEN, APPROVER_TOKEN, WEBHOOK_SECRET,
};

/// `netprobe.fetch` arguments: a POST to the upstream's `/effect`, which
/// the rule holds.
fn post_effect(upstream: SocketAddr) -> Value {
    json!({ "method": "POST", "url": format!("http://{upstream}/effect"), "host-header": null })
}

/// The grant for netprobe, then `[approvals]` holding every POST of
/// `netprobe.fetch`, with the webhook at `hook` if any.
fn config(upstream: SocketAddr, hook: Option<(SocketAddr, u32)>) -> String {
    let webhook = match hook {
        Some((addr, attempts)) => format!(
            "[approvals.webhook]\nurl = \"http://{addr}/hook\"\nsecret-env = \"TOOLHOST_WEBHOOK_SECRET\"\n\
             attempts = {attempts}\nbackoff-ms = 100\n\n"
        ),
        None => String::new(),
    };
    format!(
        "{}\n[approvals]\nexpiry-secs = 3600\n\n{webhook}\
         [[approvals.rules]]\nname = \"posts\"\ntools = [\"netprobe.fetch\"]\nwhen = \"args.method == 'POST'\"\n",
        netprobe_grant(upstream)
    )
}

/// Poll `done` every 20 ms until it is true or `within` has passed.
async fn eventually(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------
// HMAC-SHA256 (RFC 2104), by hand over sha2: the tests do not take the
// host's `hmac` dependency, so a mistake there cannot hide here.

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    const BLOCK: usize = 64;
    let mut block_key = [0u8; BLOCK];
    if key.len() > BLOCK {
        block_key[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block_key[..key.len()].copy_from_slice(key);
    }
    let ipad: Vec<u8> = block_key.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = block_key.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new().chain_update(&ipad).chain_update(message).finalize();
    Sha256::new().chain_update(&opad).chain_update(inner).finalize().into()
}

#[test]
fn the_hand_made_hmac_matches_rfc_4231() {
    // Test case 2 (a short key) and test case 6 (a key longer than a block).
    assert_eq!(
        hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    assert_eq!(
        hex::encode(hmac_sha256(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First"
        )),
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
    );
}

// ---------------------------------------------------------------------------
// A webhook receiver that records every request.

#[derive(Debug, Clone)]
struct Delivery {
    at: Instant,
    headers: HeaderMap,
    body: Bytes,
    /// What the receiver answered.
    answered: u16,
}

type Deliveries = Arc<Mutex<Vec<Delivery>>>;

/// A receiver at `/hook` answering the `n`th request (from 0) with
/// `answer(n)`.
async fn receiver(answer: fn(usize) -> u16) -> (SocketAddr, Deliveries) {
    let seen: Deliveries = Arc::default();
    let record = seen.clone();
    let router = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: Bytes| {
            let record = record.clone();
            async move {
                let mut seen = record.lock().unwrap();
                let answered = answer(seen.len());
                seen.push(Delivery {
                    at: Instant::now(),
                    headers,
                    body,
                    answered,
                });
                StatusCode::from_u16(answered).unwrap()
            }
        }),
    );
    (serve(router).await, seen)
}

fn header<'a>(d: &'a Delivery, name: &str) -> &'a str {
    d.headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header in {:?}", d.headers))
        .to_str()
        .unwrap()
}

/// Check one delivery of the `held` notice of approval `id`: the
/// signature verifies with the shared secret over `TIMESTAMP.BODY`, the
/// timestamp is now, and the body is the held approval.
fn check_delivery(d: &Delivery, id: &str) {
    assert_eq!(header(d, "x-toolhost-delivery"), id, "{:?}", d.headers);
    assert!(
        header(d, "content-type").starts_with("application/json"),
        "{:?}",
        d.headers
    );

    let timestamp = header(d, "x-toolhost-timestamp");
    let unix: u64 = timestamp
        .parse()
        .unwrap_or_else(|_| panic!("timestamp {timestamp:?} is not Unix seconds"));
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    assert!(now.abs_diff(unix) <= 60, "timestamp {unix} is not now ({now})");

    let mut signed = timestamp.as_bytes().to_vec();
    signed.push(b'.');
    signed.extend_from_slice(&d.body);
    let expected = format!(
        "sha256={}",
        hex::encode(hmac_sha256(WEBHOOK_SECRET.as_bytes(), &signed))
    );
    assert_eq!(
        header(d, "x-toolhost-signature"),
        expected,
        "signature over {timestamp}.<body>"
    );
    // And not by accident: another secret gives another signature.
    let forged = format!(
        "sha256={}",
        hex::encode(hmac_sha256(b"not-the-webhook-secret-0123456789", &signed))
    );
    assert_ne!(header(d, "x-toolhost-signature"), forged);

    let body: Value = serde_json::from_slice(&d.body).expect("the body is JSON");
    assert_eq!(body["event"], "held", "{body}");
    assert_eq!(body["approval"]["id"], id, "{body}");
    assert_eq!(body["approval"]["state"], "pending", "{body}");
    assert_eq!(body["approval"]["tool"], "netprobe.fetch", "{body}");
    assert_eq!(body["approval"]["rule"], "posts", "{body}");
    assert_eq!(body["approval"]["arguments"]["method"], "POST", "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn reviewers_are_told_by_a_signed_webhook_that_is_retried() {
    let (upstream, effects) = counting_upstream().await;

    // Refused twice, then taken: three deliveries, then no more.
    let (hook, deliveries) = receiver(|n| if n < 2 { 500 } else { 200 }).await;
    let server = ServerProcess::start(&config(upstream, Some((hook, 3))), &["netprobe"]);
    let (status, held) = invoke(&server, AGENT_TOKEN, "netprobe.fetch", post_effect(upstream)).await;
    assert_eq!(status, 202, "{held}");
    let id = held_id(&held);

    assert!(
        eventually(Duration::from_secs(20), || deliveries.lock().unwrap().len() >= 3).await,
        "three deliveries expected, got {:?}",
        deliveries.lock().unwrap()
    );
    // Taken at the third: nothing follows (the next retry would have come
    // 400 ms after the third).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let seen = deliveries.lock().unwrap().clone();
    assert_eq!(
        seen.iter().map(|d| d.answered).collect::<Vec<_>>(),
        [500, 500, 200],
        "{seen:?}"
    );
    for d in &seen {
        check_delivery(d, &id);
    }
    // The same notice each time, and retried with a backoff that doubles
    // from 100 ms (each wait is at least that; a slow machine only adds).
    assert!(seen.iter().all(|d| d.body == seen[0].body), "{seen:?}");
    let gaps: Vec<Duration> = seen.windows(2).map(|w| w[1].at - w[0].at).collect();
    assert!(
        gaps[0] >= Duration::from_millis(90) && gaps[1] >= Duration::from_millis(190),
        "retries came after {gaps:?}"
    );
    // Telling reviewers did not run the call.
    assert_eq!(effects.load(Ordering::SeqCst), 0);
    let (status, pending) = get_json(&server, AGENT_TOKEN, &format!("/v1/approvals/{id}")).await;
    assert_eq!(
        (status.as_u16(), &pending["approval"]["state"]),
        (202, &json!("pending")),
        "{pending}"
    );
    drop(server);

    // A receiver that never takes it: exactly `attempts` deliveries, then
    // the host gives up and says so in its log.
    let (hook, deliveries) = receiver(|_| 500).await;
    let server = ServerProcess::start(&config(upstream, Some((hook, 2))), &["netprobe"]);
    let (status, held) = invoke(&server, AGENT_TOKEN, "netprobe.fetch", post_effect(upstream)).await;
    assert_eq!(status, 202, "{held}");
    let id = held_id(&held);
    assert!(
        eventually(Duration::from_secs(20), || deliveries.lock().unwrap().len() >= 2).await,
        "two deliveries expected, got {:?}",
        deliveries.lock().unwrap()
    );
    assert!(
        eventually(Duration::from_secs(10), || server.log().contains("giving up")).await,
        "no word of giving up in the log:\n{}",
        server.log()
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let seen = deliveries.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    for d in &seen {
        check_delivery(d, &id);
    }
    assert_eq!(effects.load(Ordering::SeqCst), 0);
}

// ---------------------------------------------------------------------------
// The reviewers' event stream.

/// Server-sent events read off a response, one at a time.
struct Events {
    body: BoxStream<'static, reqwest::Result<Bytes>>,
    buffer: String,
}

/// What reading the stream gave.
#[derive(Debug)]
enum Next {
    Event(String, Value),
    /// The stream ended cleanly.
    End,
    Failed(String),
}

impl Events {
    fn new(response: reqwest::Response) -> Events {
        Events {
            body: response.bytes_stream().boxed(),
            buffer: String::new(),
        }
    }

    /// The next event (keep-alive comments skipped).
    async fn next(&mut self) -> Next {
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let (mut name, mut data) = (None, Vec::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = Some(v.trim_start().to_string());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push(v.strip_prefix(' ').unwrap_or(v).to_string());
                    }
                }
                if name.is_none() && data.is_empty() {
                    continue;
                }
                let data = data.join("\n");
                let value = serde_json::from_str(&data).unwrap_or(Value::String(data));
                return Next::Event(name.unwrap_or_else(|| "message".into()), value);
            }
            match self.body.next().await {
                Some(Ok(chunk)) => self
                    .buffer
                    .push_str(&String::from_utf8_lossy(&chunk).replace("\r\n", "\n")),
                Some(Err(e)) => return Next::Failed(e.to_string()),
                None => return Next::End,
            }
        }
    }

    /// The next event about approval `id`, within `within`; the names of
    /// events about others are skipped.
    async fn next_about(&mut self, id: &str, within: Duration) -> (String, Value) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.next()).await {
                Ok(Next::Event(name, data)) if data["id"] == id => return (name, data),
                Ok(Next::Event(..)) => {}
                Ok(Next::Failed(e)) => panic!("the stream failed before an event about {id}: {e}"),
                Ok(Next::End) => panic!("the stream ended before an event about {id}"),
                Err(_) => panic!("no event about {id} within {within:?}"),
            }
        }
    }
}

/// A client without an overall timeout, for a stream that stays open.
fn streaming_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_event_stream_follows_an_approval_and_ends_at_shutdown() {
    let (upstream, effects) = counting_upstream().await;
    let mut server = ServerProcess::start(&config(upstream, None), &["netprobe"]);

    // Reviewers only.
    let (status, refused) = get_json(&server, AGENT_TOKEN, "/v1/approvals/stream").await;
    assert_eq!(status, 403, "{refused}");
    assert_eq!(refused["error"]["kind"], "forbidden", "{refused}");

    let http = streaming_client();
    let response = http
        .get(server.url("/v1/approvals/stream"))
        .bearer_auth(APPROVER_TOKEN)
        .send()
        .await
        .expect("the stream opens");
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"),
        "{:?}",
        response.headers()
    );
    let mut events = Events::new(response);

    let (status, held) = invoke(&server, AGENT_TOKEN, "netprobe.fetch", post_effect(upstream)).await;
    assert_eq!(status, 202, "{held}");
    let id = held_id(&held);

    let within = Duration::from_secs(15);
    let (name, data) = events.next_about(&id, within).await;
    assert_eq!(name, "held", "{data}");
    assert_eq!(data["state"], "pending", "{data}");
    assert_eq!(data["tool"], "netprobe.fetch", "{data}");
    assert_eq!(data["rule"], "posts", "{data}");
    assert_eq!(effects.load(Ordering::SeqCst), 0);

    let (status, decided) = decide(&server, APPROVER_TOKEN, &id, "approve", "expected POST").await;
    assert_eq!(status, 200, "{decided}");

    // Every step, in order, each with the approval as it then stood.
    let (name, data) = events.next_about(&id, within).await;
    assert_eq!(name, "approved", "{data}");
    assert_eq!(data["state"], "approved", "{data}");
    assert_eq!(data["decisions"][0]["by"], "approver", "{data}");
    assert_eq!(data["decisions"][0]["verdict"], "approve", "{data}");
    let (name, data) = events.next_about(&id, within).await;
    assert_eq!(name, "executing", "{data}");
    let (name, data) = events.next_about(&id, within).await;
    assert_eq!(name, "done", "{data}");
    assert_eq!(data["state"], "done", "{data}");
    assert!(data["call_audit_id"].is_string(), "{data}");

    // It ran, once, and the agent has its answer.
    let (status, answer) = get_json(&server, AGENT_TOKEN, &format!("/v1/approvals/{id}?wait=10")).await;
    assert_eq!((status.as_u16(), &answer["result"]), (200, &json!(200)), "{answer}");
    assert_eq!(effects.load(Ordering::SeqCst), 1);

    // Stopping the host ends the open stream, cleanly and promptly, and
    // the host exits well (without waiting out the connection deadline).
    let stopping = Instant::now();
    let stopper = tokio::task::spawn_blocking(move || {
        let status = server.stop();
        (server, status)
    });
    let ended = tokio::time::timeout(Duration::from_secs(8), async {
        loop {
            match events.next().await {
                Next::Event(..) => {}
                other => return other,
            }
        }
    })
    .await;
    match ended {
        Ok(Next::End) => {}
        Ok(Next::Failed(e)) => panic!("the stream broke off at shutdown instead of ending: {e}"),
        Ok(Next::Event(..)) => unreachable!(),
        Err(_) => panic!("the stream was still open 8 s after the host was told to stop"),
    }
    let (server, status) = tokio::time::timeout(Duration::from_secs(30), stopper)
        .await
        .expect("the host stops")
        .unwrap();
    assert!(status.success(), "{status:?}\n{}", server.log());
    assert!(
        stopping.elapsed() < Duration::from_secs(9),
        "stopping took {:?}",
        stopping.elapsed()
    );
    assert!(!server.log().contains("connections still open"), "{}", server.log());
}

// ---------------------------------------------------------------------------
// An unmodified MCP client.

/// The client's next line, which must be step `step`.
async fn next(lines: &mut tokio::sync::mpsc::UnboundedReceiver<String>, step: &str) -> Value {
    let line = tokio::time::timeout(Duration::from_secs(120), lines.recv())
        .await
        .unwrap_or_else(|_| panic!("no {step} from the client in time"))
        .unwrap_or_else(|| panic!("the client ended before {step}"));
    let v: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
    assert_eq!(v["step"], step, "{v}");
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unmodified_mcp_client_can_follow_a_held_call() {
    a_held_call_followed_by_the_python_sdk("session").await;
}

/// The SDK's default `Client`, which negotiates protocol 2026-07-28 (no
/// session): the same held call, the same waiting tool.
#[tokio::test(flavor = "multi_thread")]
async fn the_python_sdks_default_client_follows_a_held_call_on_protocol_2026_07_28() {
    a_held_call_followed_by_the_python_sdk("auto").await;
}

/// Two held calls of the official Python SDK's, in `mode` (see
/// tests/mcp_approval.py): one approved while it waits, one rejected.
async fn a_held_call_followed_by_the_python_sdk(mode: &str) {
    let (upstream, effects) = counting_upstream().await;
    let server = ServerProcess::start(&config(upstream, None), &["netprobe"]);
    let effect_url = format!("http://{upstream}/effect");

    let mut python = Command::new(mcp_python())
        .arg(repo_root().join("tests/mcp_approval.py"))
        .args([server.base.as_str(), AGENT_TOKEN, effect_url.as_str(), "2", mode])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the MCP client");
    // Read the client's lines on a thread, so the test's runtime stays free.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let stdout = python.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    assert_eq!(next(&mut rx, "initialized").await["server"], "toolhost");
    let tools = next(&mut rx, "tools").await;
    let names: Vec<&str> = tools["names"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        names.contains(&"toolhost.await-approval") && names.contains(&"netprobe.fetch"),
        "{names:?}"
    );

    // Round 1: held, approved while the client waits, then its result.
    let held = next(&mut rx, "held").await;
    assert_eq!(held["is_error"], true, "{held}");
    assert_eq!(held["body"]["kind"], "approval_required", "{held}");
    assert_eq!(held["body"]["approval"]["state"], "pending", "{held}");
    assert_eq!(held["body"]["approval"]["tool"], "netprobe.fetch", "{held}");
    let id = held["body"]["approval"]["id"]
        .as_str()
        .expect("an approval id")
        .to_string();
    assert!(
        held["body"]["message"]
            .as_str()
            .unwrap()
            .contains("toolhost.await-approval"),
        "{held}"
    );
    assert_eq!(effects.load(Ordering::SeqCst), 0, "a held call ran");
    // The same approval is in the reviewers' queue.
    let (_, queue) = get_json(&server, APPROVER_TOKEN, "/v1/approvals").await;
    assert!(
        queue["approvals"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["id"] == id.as_str()),
        "{queue}"
    );

    assert_eq!(next(&mut rx, "awaiting").await["approval"], id.as_str());
    // Let the client get into its wait, so the decision reaches it there.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(effects.load(Ordering::SeqCst), 0, "a held call ran");
    let (status, decided) = decide(&server, APPROVER_TOKEN, &id, "approve", "expected POST").await;
    assert_eq!(status, 200, "{decided}");
    let result = next(&mut rx, "result").await;
    assert_eq!(result["is_error"], false, "{result}");
    assert_eq!(result["text"], "200", "{result}");
    // It waited for the decision rather than answering at once.
    assert!(result["waited_secs"].as_f64().unwrap() >= 0.3, "{result}");
    assert_eq!(effects.load(Ordering::SeqCst), 1, "the approved call ran once");

    // Round 2: held, rejected: the client hears why, and nothing ran.
    let held = next(&mut rx, "held").await;
    assert_eq!(held["is_error"], true, "{held}");
    assert_eq!(held["body"]["kind"], "approval_required", "{held}");
    let id = held["body"]["approval"]["id"]
        .as_str()
        .expect("an approval id")
        .to_string();
    assert_eq!(next(&mut rx, "awaiting").await["approval"], id.as_str());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, decided) = decide(&server, ADMIN_TOKEN, &id, "reject", "not today").await;
    assert_eq!(status, 200, "{decided}");
    let result = next(&mut rx, "result").await;
    assert_eq!(result["is_error"], true, "{result}");
    assert_eq!(result["body"]["kind"], "approval_rejected", "{result}");
    assert_eq!(result["body"]["approval"], id.as_str(), "{result}");
    assert!(
        result["body"]["message"].as_str().unwrap().contains("not today"),
        "{result}"
    );

    let exit = tokio::task::spawn_blocking(move || python.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "the MCP client failed: {exit:?}");
    assert_eq!(effects.load(Ordering::SeqCst), 1, "a rejected call ran");
}

// ---------------------------------------------------------------------------
// An MCP client that takes tasks (SEP-2663), spoken by hand: no client
// library we could run here implements the extension yet.

/// One JSON-RPC request over `/mcp`; its response, from a JSON body or the
/// event stream the server answered with.
#[tokio::test(flavor = "multi_thread")]
async fn an_mcp_client_that_takes_tasks_gets_a_held_call_as_a_task() {
    let (upstream, effects) = counting_upstream().await;
    let server = ServerProcess::start(&config(upstream, None), &["netprobe"]);
    let tasks = "io.modelcontextprotocol/tasks";
    let (session, init) = mcp_rpc(
        &server,
        None,
        json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": { "extensions": { tasks: {} } },
            "clientInfo": { "name": "tasks-by-hand", "version": "0" } } }),
    )
    .await;
    assert!(
        init["result"]["capabilities"]["extensions"][tasks].is_object(),
        "{init}"
    );
    let session = session.expect("a session id");
    let s = Some(session.as_str());
    mcp_initialized(&server, &session).await;

    let call = |n: u64| {
        json!({ "jsonrpc": "2.0", "id": n, "method": "tools/call",
                "params": { "name": "netprobe.fetch", "arguments": post_effect(upstream) } })
    };
    let get =
        |n: u64, id: &str| json!({ "jsonrpc": "2.0", "id": n, "method": "tasks/get", "params": { "taskId": id } });

    // Held: a task, working, and nothing ran.
    let (_, created) = mcp_rpc(&server, s, call(2)).await;
    assert_eq!(created["result"]["resultType"], "task", "{created}");
    assert_eq!(created["result"]["status"], "working", "{created}");
    let id = created["result"]["taskId"].as_str().unwrap().to_string();
    let (_, queue) = get_json(&server, APPROVER_TOKEN, "/v1/approvals").await;
    assert_eq!(queue["approvals"][0]["id"], id.as_str(), "the task is the approval");
    let (_, working) = mcp_rpc(&server, s, get(3, &id)).await;
    assert_eq!(working["result"]["status"], "working", "{working}");
    assert_eq!(effects.load(Ordering::SeqCst), 0);

    // Approved: completed with the call's own result.
    assert_eq!(
        decide(&server, APPROVER_TOKEN, &id, "approve", "expected POST").await.0,
        200
    );
    let done = mcp_task_ended(&server, s, &id).await;
    assert_eq!(done["result"]["status"], "completed", "{done}");
    assert_eq!(done["result"]["result"]["isError"], false, "{done}");
    assert_eq!(done["result"]["result"]["content"][0]["text"], "200", "{done}");
    assert_eq!(effects.load(Ordering::SeqCst), 1);

    // Rejected: completed, as an error result saying why; nothing ran.
    let (_, created) = mcp_rpc(&server, s, call(300)).await;
    let id = created["result"]["taskId"].as_str().unwrap().to_string();
    assert_eq!(decide(&server, APPROVER_TOKEN, &id, "reject", "not today").await.0, 200);
    let (_, done) = mcp_rpc(&server, s, get(301, &id)).await;
    assert_eq!(done["result"]["status"], "completed", "{done}");
    assert_eq!(done["result"]["result"]["isError"], true, "{done}");
    assert!(
        done["result"]["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("approval_rejected"),
        "{done}"
    );
    assert_eq!(effects.load(Ordering::SeqCst), 1);

    // An id that is no task of this agent's is an error.
    let (_, unknown) = mcp_rpc(&server, s, get(302, "nope")).await;
    assert!(unknown["error"].is_object(), "{unknown}");

    // Waiting on an approval that is unknown, or naming none, is the await
    // tool's failure, which the model reads: a result with `isError`, not
    // a protocol error.
    for (n, args, kind) in [
        (303, json!({ "approval": "nope" }), "not_found"),
        (304, json!({}), "invalid_input"),
    ] {
        let request = json!({
            "jsonrpc": "2.0", "id": n, "method": "tools/call",
            "params": { "name": "toolhost.await-approval", "arguments": args },
        });
        let (_, answered) = mcp_rpc(&server, s, request).await;
        assert_eq!(answered["result"]["isError"], true, "{answered}");
        let text = answered["result"]["content"][0]["text"].as_str().unwrap_or_default();
        assert!(text.contains(kind), "{answered}");
    }
}

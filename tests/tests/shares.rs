//! Each principal's share, through the real server: MCP sessions, console
//! sessions and calls waiting for a reviewer are capped per token, so one
//! token filling its share (at once, from many connections) never keeps
//! another out; and the console's queue is paged, whatever waits.

use futures::future::join_all;
use futures::StreamExt;
use serde_json::{json, Value};
use toolhost_tests::{
    client, decide, get_json, held_id, mcp_open, mcp_post, ServerProcess, ADMIN_TOKEN, AGENT_TOKEN, APPROVER_TOKEN,
};

/// A second agent and an observer, configured by digest.
const AGENT_Y: &str = "test-agent-y-token-0123456789";
const OBSERVER: &str = "test-observer-token-0123456789";

fn digest(token: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// The two extra tokens, and `server` settings.
fn config(server: &str) -> String {
    format!(
        "[server]\n{server}\n\n\
         [[tokens]]\nname = \"agent-y\"\nrole = \"agent\"\nsha256 = \"{}\"\n\n\
         [[tokens]]\nname = \"observer\"\nrole = \"observer\"\nsha256 = \"{}\"\nrate-per-minute = 6000\n\n",
        digest(AGENT_Y),
        digest(OBSERVER)
    )
}

/// Every call of `echo.check` waits for a reviewer.
const HOLD_ECHO: &str = "[[approvals.rules]]\nname = \"every echo\"\ntools = [\"echo.check\"]\nhold = \"always\"\n";

/// `initialize` as `token`: the session's id, or the refusal's status,
/// `Retry-After` and body.
async fn initialize(server: &ServerProcess, token: &str) -> Result<String, (u16, bool, Value)> {
    let init = json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": { "name": "shares", "version": "0" } } });
    let r = client()
        .post(server.url("/mcp"))
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .json(&init)
        .send()
        .await
        .expect("MCP answers");
    if r.status() == 200 {
        return Ok(r.headers()["mcp-session-id"].to_str().unwrap().to_string());
    }
    let status = r.status().as_u16();
    let retry = r.headers().contains_key("retry-after");
    Err((status, retry, r.json().await.unwrap_or(Value::Null)))
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_at_its_mcp_session_share_keeps_no_other_agent_out() {
    // The host has room for 4, each token for 2: agent X asking for 8 at
    // once gets its 2, and agent Y, asking at the same moment, gets in.
    let server = ServerProcess::start(
        &config("max-mcp-sessions = 4\nmax-mcp-sessions-per-principal = 2"),
        &["echo"],
    );
    let x_flood = join_all((0..8).map(|_| initialize(&server, AGENT_TOKEN)));
    let y = initialize(&server, AGENT_Y);
    let (x, y) = tokio::join!(x_flood, y);
    let y = y.expect("agent Y initializes while agent X floods");
    let opened: Vec<&String> = x.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(opened.len(), 2, "agent X gets its share and no more: {x:?}");
    for refused in x.iter().filter_map(|r| r.as_ref().err()) {
        let (status, retry, body) = refused;
        assert_eq!(*status, 429, "{body}");
        assert!(*retry, "a share frees with time: Retry-After");
        assert_eq!(body["error"]["kind"], "too_many_sessions_for_token", "{body}");
    }
    // Y's session works, and Y has room for its second.
    let list = json!({ "jsonrpc": "2.0", "id": 2, "method": "tools/list" });
    let listed = client()
        .post(server.url("/mcp"))
        .bearer_auth(AGENT_Y)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &y)
        .json(&list)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);
    initialize(&server, AGENT_Y).await.expect("Y's second session");

    // A session X closes gives X its place back.
    let closed = client()
        .delete(server.url("/mcp"))
        .bearer_auth(AGENT_TOKEN)
        .header("mcp-session-id", opened[0].as_str())
        .send()
        .await
        .unwrap();
    assert!(closed.status().is_success(), "{}", closed.status());
    initialize(&server, AGENT_TOKEN)
        .await
        .expect("X opens one again once it closed one");
}

/// Sign in to the console with `token`: the session cookie (`name=value`).
async fn console_sign_in(server: &ServerProcess, token: &str) -> Result<String, u16> {
    let r = no_redirects()
        .post(server.url("/console/sign-in"))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    match r.headers().get("set-cookie") {
        Some(cookie) => Ok(cookie.to_str().unwrap().split(';').next().unwrap().to_string()),
        None => Err(r.status().as_u16()),
    }
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// `GET path` of the console with `cookie`: its status and page.
async fn console_get(server: &ServerProcess, cookie: &str, path: &str) -> (u16, String) {
    let r = no_redirects()
        .get(server.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_observer_signing_in_past_its_share_ends_its_own_oldest_sessions_only() {
    let server = ServerProcess::start(&config("max-console-sessions-per-principal = 3"), &[]);
    let admin = console_sign_in(&server, ADMIN_TOKEN).await.expect("the admin signs in");
    let first = console_sign_in(&server, OBSERVER).await.expect("the observer signs in");
    // The observer signs in again and again, many at once, while the admin
    // signs in too: nobody is refused.
    let (flood, second_admin) = tokio::join!(
        join_all((0..20).map(|_| console_sign_in(&server, OBSERVER))),
        console_sign_in(&server, ADMIN_TOKEN)
    );
    let second_admin = second_admin.expect("the admin signs in during the flood");
    assert!(flood.iter().all(Result::is_ok), "{flood:?}");
    let newest = console_sign_in(&server, OBSERVER).await.expect("and once more");

    // The observer's oldest session is gone, its newest works; it has its
    // share and no more; the admin's sessions are untouched.
    assert_eq!(
        console_get(&server, &first, "/console").await.0,
        303,
        "the oldest is gone"
    );
    assert_eq!(
        console_get(&server, &newest, "/console").await.0,
        200,
        "the newest works"
    );
    let mut live = 0;
    for cookie in flood.iter().flatten().chain([&first, &newest]) {
        if console_get(&server, cookie, "/console").await.0 == 200 {
            live += 1;
        }
    }
    assert_eq!(live, 3, "the observer keeps its share of sessions");
    for cookie in [&admin, &second_admin] {
        assert_eq!(console_get(&server, cookie, "/console").await.0, 200);
    }
}

/// `echo.check` as `token` over REST: status, `Retry-After`, body.
async fn echo(server: &ServerProcess, token: &str) -> (u16, bool, Value) {
    let r = client()
        .post(server.url("/v1/tools/echo.check/invoke"))
        .bearer_auth(token)
        .json(&json!({ "ok": true, "message": "m" }))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let retry = r.headers().contains_key("retry-after");
    (status, retry, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_at_its_share_of_held_calls_keeps_no_other_agents_call_from_being_held() {
    let server = ServerProcess::start(
        &format!("{}{HOLD_ECHO}", config("max-pending-approvals-per-principal = 3")),
        &["echo"],
    );
    // Agent X makes 8 calls at once while agent Y makes one: X gets its 3
    // held and is refused the rest; Y's is held.
    let (x, y) = tokio::join!(
        join_all((0..8).map(|_| echo(&server, AGENT_TOKEN))),
        echo(&server, AGENT_Y)
    );
    assert_eq!(y.0, 202, "agent Y's call is held: {}", y.2);
    let held: Vec<String> = x.iter().filter(|(s, ..)| *s == 202).map(|(.., b)| held_id(b)).collect();
    assert_eq!(held.len(), 3, "agent X gets its share held: {x:?}");
    for (status, retry, body) in x.iter().filter(|(s, ..)| *s != 202) {
        assert_eq!(*status, 429, "{body}");
        assert!(*retry, "a reviewer's decision frees a place: Retry-After");
        assert_eq!(body["error"]["kind"], "too_many_pending_approvals", "{body}");
        assert_eq!(body["error"]["retry_after"], 60, "{body}");
    }
    // Over MCP, the refusal is a failed tool result saying the same.
    let session = mcp_open(&server).await.expect("a session");
    let call = json!({ "jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": { "name": "echo.check", "arguments": { "ok": true, "message": "m" } } });
    let answer = mcp_post(&server, &client(), Some(&session), call)
        .await
        .text()
        .await
        .unwrap();
    assert!(answer.contains("too_many_pending_approvals"), "{answer}");
    assert!(answer.contains(r#""isError":true"#), "{answer}");

    // A reviewer decides one of X's: X has room for one more.
    let (status, body) = decide(&server, APPROVER_TOKEN, &held[0], "reject", "no").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(echo(&server, AGENT_TOKEN).await.0, 202);
    assert_eq!(echo(&server, AGENT_TOKEN).await.0, 429);
}

/// The ids of the held calls a queue page shows, in order.
fn listed(page: &str) -> Vec<String> {
    page.split("data-id=\"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_string())
        .collect()
}

/// The `after` of the page's link to the next, if it has one.
fn next_link(page: &str) -> Option<String> {
    let at = page.find("rel=\"next\"")?;
    let tag = &page[page[..at].rfind("<a ")?..at];
    let href = tag.split("href=\"").nth(1)?.split('"').next()?;
    Some(href.split("after=").nth(1)?.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_queue_is_paged_and_followed_item_by_item() {
    let server = ServerProcess::start(&format!("{}{HOLD_ECHO}", config("")), &["echo"]);
    let waiting = join_all((0..60).map(|i| echo(&server, if i % 2 == 0 { AGENT_TOKEN } else { AGENT_Y }))).await;
    assert!(waiting.iter().all(|(s, ..)| *s == 202), "{waiting:?}");
    let (_, queue) = get_json(&server, ADMIN_TOKEN, "/v1/approvals").await;
    let mut ids: Vec<String> = queue["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    assert_eq!(ids.len(), 60);

    // The first page: the 50 oldest, the count of all, a link to the rest.
    let cookie = console_sign_in(&server, APPROVER_TOKEN).await.unwrap();
    let (status, page) = console_get(&server, &cookie, "/console/approvals").await;
    assert_eq!(status, 200);
    assert_eq!(listed(&page), ids[..50], "one page, oldest first");
    assert!(page.contains(r#"<span id="queue-count">60</span>"#));
    let after = next_link(&page).expect("the page links the next");
    assert_eq!(after, ids[49]);
    let (_, rest) = console_get(&server, &cookie, &format!("/console/approvals?after={after}")).await;
    assert_eq!(listed(&rest), ids[50..]);
    assert_eq!(next_link(&rest), None, "the last page links no further");
    let (_, fragment) = console_get(&server, &cookie, &format!("/console/approvals/queue?after={after}")).await;
    assert_eq!(listed(&fragment), ids[50..], "the script's read of its own page");

    // The page's stream names each change and the call it concerns; the
    // script fetches that call alone.
    let stream = no_redirects()
        .get(server.url("/console/approvals/stream"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let mut events = stream.bytes_stream();
    let (_, _, body) = echo(&server, AGENT_Y).await;
    let joined = held_id(&body);
    let (status, _) = decide(&server, APPROVER_TOKEN, &ids[0], "reject", "no").await;
    assert_eq!(status, 200);
    let mut seen = String::new();
    let expected = [
        format!("event: joined\ndata: {joined}"),
        format!("event: left\ndata: {}", ids[0]),
    ];
    while !expected.iter().all(|e| seen.contains(e.as_str())) {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), events.next())
            .await
            .unwrap_or_else(|_| panic!("no more events; seen {seen:?}"))
            .expect("the stream goes on")
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    let (status, one) = console_get(&server, &cookie, &format!("/console/approvals/queue/{joined}")).await;
    assert_eq!(status, 200);
    assert_eq!(listed(&one), [joined], "one held call alone");
    let (status, _) = console_get(&server, &cookie, &format!("/console/approvals/queue/{}", ids[0])).await;
    assert_eq!(status, 404, "a decided call is no longer in the queue");
}

/// An MCP session answers only the principal that opened it: agent Y
/// holding agent X's `Mcp-Session-Id` finds no such session, whatever it
/// asks (a tool call, a listing, the event stream, `DELETE`), so it can
/// neither act in X's conversation (its calls audited there, counted in
/// X's approval rules) nor end it; X's session goes on.
#[tokio::test(flavor = "multi_thread")]
async fn an_mcp_session_answers_only_the_principal_that_opened_it() {
    let server = ServerProcess::start(&config(""), &["echo"]);
    let x = mcp_open(&server).await.expect("X opens a session");
    let call = json!({ "jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": { "name": "echo.check", "arguments": { "ok": true, "message": "y" } } });
    let list = json!({ "jsonrpc": "2.0", "id": 8, "method": "tools/list" });
    let as_y = |method: reqwest::Method| {
        client()
            .request(method, server.url("/mcp"))
            .bearer_auth(AGENT_Y)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", &x)
    };
    for (what, request) in [
        ("a tool call", as_y(reqwest::Method::POST).json(&call)),
        ("a listing", as_y(reqwest::Method::POST).json(&list)),
        ("the event stream", as_y(reqwest::Method::GET)),
        ("DELETE", as_y(reqwest::Method::DELETE)),
    ] {
        let r = request.send().await.unwrap();
        assert_eq!(r.status(), 404, "{what} in X's session as Y");
    }
    // The same requests as an unknown session's, for comparison.
    let unknown = client()
        .post(server.url("/mcp"))
        .bearer_auth(AGENT_Y)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", "no-such-session")
        .json(&list)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);

    // X's session is untouched, and only X's call is on record.
    let answered = mcp_post(&server, &client(), Some(&x), call).await;
    assert_eq!(answered.status(), 200);
    assert!(answered.text().await.unwrap().contains("\"isError\":false"));
    let (_, page) = get_json(&server, ADMIN_TOKEN, "/v1/audit?tool=echo.check").await;
    let records = page["records"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{page}");
    assert_ne!(records[0]["token"], "agent-y", "{page}");
}

//! `toolhost serve` as a real process on 127.0.0.1: every route, every error
//! status, auth roles, idempotency, audit content, operator changes.

use std::time::Duration;

use axum::routing::get;
use axum::Router;
use reqwest::StatusCode;
use serde_json::{json, Value};
use toolhost_tests::{
    client, echo_check, get_json, get_text, invoke, named, netprobe_grant, put_grant, serve, upstream_with_slow,
    ServerProcess, ADMIN_TOKEN, AGENT_TOKEN,
};

const RESTRICTED: &str = "restricted-agent-token-0123456789";

fn config() -> String {
    format!(
        r#"
[[tokens]]
name = "restricted"
role = "agent"
sha256 = "{}"
tools = ["echo.check"]
rate-per-minute = 5

[plugins.spin]
timeout-ms = 200
"#,
        sha256_hex(RESTRICTED)
    )
}

fn sha256_hex(s: &str) -> String {
    use std::fmt::Write;
    // The tests avoid a sha2 dependency of their own: `sha256sum` is on every machine.
    let out = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write as _;
            c.stdin.take().unwrap().write_all(s.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    let mut hex = String::new();
    write!(
        hex,
        "{}",
        String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap()
    )
    .unwrap();
    hex
}

#[tokio::test(flavor = "multi_thread")]
async fn agents_list_and_call_tools_with_typed_errors() {
    let server = ServerProcess::start(&config(), &["echo", "spin", "plugins/coupon"]);

    // Health needs no token; everything else does.
    assert_eq!(client().get(server.url("/healthz")).send().await.unwrap().status(), 200);
    assert_eq!(client().get(server.url("/readyz")).send().await.unwrap().status(), 200);
    let r = client().get(server.url("/v1/tools")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["kind"], "unauthorized");
    assert_eq!(get_json(&server, "wrong-token", "/v1/tools").await.0, 401);
    // The scheme's name is case-insensitive (RFC 9110); a token is not.
    let with = |authorization: String| {
        client()
            .get(server.url("/v1/tools"))
            .header("authorization", authorization)
            .send()
    };
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let r = with(format!("{scheme} {AGENT_TOKEN}")).await.unwrap();
        assert_eq!(r.status(), 200, "{scheme}");
    }
    let r = with(format!("Basic {AGENT_TOKEN}")).await.unwrap();
    assert_eq!(r.status(), 401);
    let r = with(format!("Bearer {}", AGENT_TOKEN.to_uppercase())).await.unwrap();
    assert_eq!(r.status(), 401);

    let (status, tools) = get_json(&server, AGENT_TOKEN, "/v1/tools").await;
    assert_eq!(status, 200);
    let names: Vec<&str> = tools
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "deterministic order");
    assert!(names.contains(&"coupon.issue-voucher") && names.contains(&"echo.check"));
    let check = named(&tools, "echo.check").unwrap();
    assert_eq!(check["function_name"], "echo_check");
    assert_eq!(check["parameters"]["required"], json!(["ok", "message"]));

    // A restricted agent sees and calls only its tools.
    let (_, tools) = get_json(&server, RESTRICTED, "/v1/tools").await;
    assert_eq!(tools.as_array().unwrap().len(), 1);
    let (status, body) = invoke(&server, RESTRICTED, "echo.blob", json!({ "bytes": 1 })).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["kind"], "denied");

    // Results and each error kind with its status.
    let (status, body) = invoke(
        &server,
        AGENT_TOKEN,
        "echo.check",
        json!({ "ok": true, "message": "hi" }),
    )
    .await;
    assert_eq!((status, &body["result"]), (StatusCode::OK, &json!("hi")));
    assert!(body["audit_id"].is_string());
    let (status, body) = invoke(
        &server,
        AGENT_TOKEN,
        "echo.check",
        json!({ "ok": "yes", "message": "hi" }),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(body["error"]["kind"], "invalid_input");
    assert_eq!(body["error"]["field"], "ok");
    let (status, body) = invoke(
        &server,
        AGENT_TOKEN,
        "echo.check",
        json!({ "ok": false, "message": "no" }),
    )
    .await;
    assert_eq!(status, 502);
    assert_eq!(body["error"]["kind"], "plugin_error");
    let (status, body) = invoke(&server, AGENT_TOKEN, "nothing.here", json!({})).await;
    assert_eq!(
        (status, body["error"]["kind"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (status, body) = invoke(&server, AGENT_TOKEN, "spin.spin", json!({ "seed": 1 })).await;
    assert_eq!(
        (status, body["error"]["kind"].as_str()),
        (StatusCode::GATEWAY_TIMEOUT, Some("timeout"))
    );
    // Over the output bound: 507, not 429 (a retry gets the same result).
    let (status, body) = invoke(&server, AGENT_TOKEN, "echo.blob", json!({ "bytes": 2_000_000 })).await;
    assert_eq!(status, 507);
    assert_eq!(body["error"]["kind"], "resource_exhausted");
    assert_eq!(body["error"]["reason"], "output");
    // A connector's typed not-found is a 404.
    let (status, body) = invoke(
        &server,
        AGENT_TOKEN,
        "coupon.redeem-voucher",
        json!({ "code": "V-X", "order-id": "O", "idempotency-key": "k" }),
    )
    .await;
    assert_eq!(status, 404);
    assert!(body["error"]["error"]["not-found"].is_string(), "{body}");

    // Bad input of every shape: a clear 4xx, and the server keeps serving.
    let raw = |body: &'static str, content_type: &'static str| {
        client()
            .post(server.url("/v1/tools/echo.check/invoke"))
            .bearer_auth(AGENT_TOKEN)
            .header("content-type", content_type)
            .body(body)
    };
    assert_eq!(raw("{not json", "application/json").send().await.unwrap().status(), 400);
    assert_eq!(raw("{}", "text/plain").send().await.unwrap().status(), 415);
    assert_eq!(raw("[1,2]", "application/json").send().await.unwrap().status(), 422);
    let huge = "x".repeat(2 * 1024 * 1024);
    let r = client()
        .post(server.url("/v1/tools/echo.check/invoke"))
        .bearer_auth(AGENT_TOKEN)
        .header("content-type", "application/json")
        .body(format!("{{\"message\": \"{huge}\", \"ok\": true}}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    for path in [
        "/v1/tools/..%2F..%2Fetc%2Fpasswd/invoke",
        "/v1/tools/echo.check/../../x",
        "/v1/nope",
        "/../../etc/passwd",
    ] {
        let r = client()
            .post(server.url(path))
            .bearer_auth(AGENT_TOKEN)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert!(r.status() == 404 || r.status() == 405, "{path}: {}", r.status());
    }
    let r = client()
        .post(server.url("/v1/tools/echo.check/invoke"))
        .bearer_auth(AGENT_TOKEN)
        .header("idempotency-key", "x".repeat(500))
        .json(&json!({ "ok": true, "message": "m" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(client().get(server.url("/healthz")).send().await.unwrap().status(), 200);
    assert_eq!(echo_check(&server, AGENT_TOKEN).await.0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limits_answer_429() {
    let server = ServerProcess::start(&config(), &["echo"]);
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let r = client()
            .post(server.url("/v1/tools/echo.check/invoke"))
            .bearer_auth(RESTRICTED)
            .json(&json!({ "ok": true, "message": "m" }))
            .send()
            .await
            .unwrap();
        if r.status() == 429 {
            assert_eq!(r.headers()["retry-after"], "1");
        }
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 5, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 3, "{statuses:?}");
    // Other tokens have their own budget.
    assert_eq!(echo_check(&server, AGENT_TOKEN).await.0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_saturated_host_turns_calls_away_at_once_instead_of_queueing() {
    // Two instances host-wide, while the plugin alone would allow 32 calls:
    // the host's own bound is the one that bites.
    let upstream = upstream_with_slow(Duration::from_millis(2000)).await;
    let config = format!(
        "[server]\nmax-instances = 2\n\n{}max-concurrency = 32\n",
        netprobe_grant(upstream)
    );
    let server = ServerProcess::start(&config, &["netprobe"]);
    let slow = json!({ "method": "GET", "url": format!("http://{upstream}/slow"), "host-header": null });
    let started = std::time::Instant::now();
    let calls: Vec<_> = (0..12)
        .map(|_| {
            let request = client()
                .post(server.url("/v1/tools/netprobe.fetch/invoke"))
                .bearer_auth(AGENT_TOKEN)
                .json(&slow)
                .send();
            async move {
                let response = request.await.unwrap();
                let (status, retry) = (response.status(), response.headers().get("retry-after").cloned());
                let body: Value = response.json().await.unwrap();
                (started.elapsed(), status, retry, body)
            }
        })
        .map(tokio::spawn)
        .collect();
    let mut answers = Vec::new();
    for call in calls {
        answers.push(call.await.unwrap());
    }

    let served: Vec<_> = answers.iter().filter(|a| a.1 == StatusCode::OK).collect();
    let refused: Vec<_> = answers
        .iter()
        .filter(|a| a.1 == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert_eq!((served.len(), refused.len()), (2, 10), "{answers:?}");
    for (_, _, retry, body) in &refused {
        assert_eq!(body["error"]["kind"], "resource_exhausted");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("no free instance slot"),
            "{body}"
        );
        assert_eq!(retry.as_ref().map(|v| v.to_str().unwrap()), Some("1"));
    }
    // Every refusal came back while the two admitted calls were still
    // waiting on the upstream: nothing queued behind them.
    let first_served = served.iter().map(|a| a.0).min().unwrap();
    let last_refused = refused.iter().map(|a| a.0).max().unwrap();
    assert!(
        last_refused < first_served,
        "refused at {last_refused:?}, served at {first_served:?}"
    );
    for (_, _, _, body) in &served {
        assert_eq!(body["result"], 200);
    }
    // The slots are free again once the slow calls are done.
    let fine = json!({ "method": "GET", "url": format!("http://{upstream}/ok"), "host-header": null });
    let (status, body) = invoke(&server, AGENT_TOKEN, "netprobe.fetch", fine).await;
    assert_eq!((status, &body["result"]), (StatusCode::OK, &json!(200)), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idempotency_key_makes_a_retry_return_the_first_result() {
    // Vouchers are `risk = "high"`: without this rule they wait for a reviewer.
    let rules = "[[approvals.rules]]\nname = \"no review\"\ntools = [\"coupon.*\"]\nhold = \"never\"\n";
    let server = ServerProcess::start(rules, &["plugins/coupon"]);
    let issue = |amount: i64| {
        json!({ "request": {
            "idempotency-key": "not-the-header", "customer-id": "C-1", "reason": "r", "order-id": null, "valid-days": 5,
            "value": { "amount-minor": amount, "currency": "EUR" },
        }})
    };
    let send = |args: Value, key: &'static str| {
        client()
            .post(server.url("/v1/tools/coupon.issue-voucher/invoke"))
            .bearer_auth(AGENT_TOKEN)
            .header("idempotency-key", key)
            .json(&args)
            .send()
    };
    let first = send(issue(100), "retry-1").await.unwrap();
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.unwrap();
    let again = send(issue(100), "retry-1").await.unwrap();
    assert_eq!(again.headers()["idempotent-replay"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(first, again);
    let other = send(issue(999), "retry-1").await.unwrap();
    assert_eq!(other.status(), 422);
    assert_eq!(
        other.json::<Value>().await.unwrap()["error"]["kind"],
        "idempotency_mismatch"
    );
    // The replay did not run the tool again: one audit record for the key.
    let (_, audit) = get_json(&server, ADMIN_TOKEN, "/v1/audit?tool=coupon.issue-voucher").await;
    assert_eq!(audit["records"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_audit_trail_records_requests_denials_and_sessions() {
    let upstream = serve(Router::new().route("/ok", get(|| async { "fine" }))).await;
    let config = netprobe_grant(upstream);
    let server = ServerProcess::start(&config, &["netprobe", "secret-thief"]);
    let call = |args: Value, session: &'static str| {
        client()
            .post(server.url("/v1/tools/netprobe.fetch/invoke"))
            .bearer_auth(AGENT_TOKEN)
            .header("x-session-id", session)
            .json(&args)
            .send()
    };
    let ok = call(
        json!({ "method": "GET", "url": format!("http://127.0.0.1:{}/ok", upstream.port()), "host-header": null }),
        "conv-1",
    )
    .await
    .unwrap();
    assert_eq!(ok.status(), 200);
    let denied = call(
        json!({ "method": "GET", "url": "http://169.254.169.254/latest", "host-header": null }),
        "conv-2",
    )
    .await
    .unwrap();
    assert_eq!(denied.status(), 502);
    let (status, _) = invoke(
        &server,
        AGENT_TOKEN,
        "secret-thief.steal",
        json!({ "name": "password" }),
    )
    .await;
    assert_eq!(status, 502);

    assert_eq!(get_json(&server, AGENT_TOKEN, "/v1/audit").await.0, 403);
    let (status, page) = get_json(&server, ADMIN_TOKEN, "/v1/audit?session=conv-1").await;
    assert_eq!(status, 200);
    let records = page["records"].as_array().unwrap();
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(r["tool"], "netprobe.fetch");
    assert_eq!(r["token"], "agent");
    assert_eq!(r["outcome"], "ok");
    assert_eq!(r["outbound"][0]["method"], "GET");
    assert_eq!(r["outbound"][0]["status"], 200);
    assert_eq!(
        r["outbound"][0]["origin"],
        format!("http://127.0.0.1:{}", upstream.port())
    );
    assert_eq!(r["plugin_version"], "1.0.0");
    assert_eq!(r["plugin_digest"].as_str().unwrap().len(), 64);
    assert!(r["duration_us"].as_u64().unwrap() >= r["execute_us"].as_u64().unwrap());

    let (_, page) = get_json(&server, ADMIN_TOKEN, "/v1/audit?session=conv-2").await;
    let r = &page["records"][0];
    assert_eq!(r["outcome"], "plugin_error");
    assert_eq!(r["denials"][0]["capability"], "http");

    // Secret-looking argument values never reach the audit trail.
    let (_, page) = get_json(&server, ADMIN_TOKEN, "/v1/audit?tool=secret-thief.steal").await;
    assert_eq!(
        page["records"][0]["arguments"]["name"], "password",
        "the field `name` is not secret"
    );
    assert_eq!(page["records"][0]["denials"][0]["capability"], "secret");

    // Paging, newest first.
    let (_, p1) = get_json(&server, ADMIN_TOKEN, "/v1/audit?via=http&limit=2").await;
    assert_eq!(p1["records"].as_array().unwrap().len(), 2);
    let next = p1["next"].as_str().unwrap();
    let (_, p2) = get_json(
        &server,
        ADMIN_TOKEN,
        &format!("/v1/audit?via=http&limit=2&before={next}"),
    )
    .await;
    assert_eq!(p2["records"].as_array().unwrap().len(), 1);
    assert!(p2["next"].is_null());
    let ids: Vec<u64> = p1["records"]
        .as_array()
        .unwrap()
        .iter()
        .chain(p2["records"].as_array().unwrap())
        .map(|r| r["id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");
    let (status, _) = get_json(&server, ADMIN_TOKEN, "/v1/audit?since=yesterday").await;
    assert_eq!(status, 400);
    // `via` and `outcome` are closed sets: a value outside them is an
    // error naming the field, not a query that quietly matches nothing.
    for bad in ["via=carrier-pigeon", "outcome=fine"] {
        let (status, body) = get_json(&server, ADMIN_TOKEN, &format!("/v1/audit?{bad}")).await;
        assert_eq!(status, 400, "{bad}: {body}");
        let field = bad.split('=').next().unwrap();
        assert!(body.to_string().contains(field), "{bad}: {body}");
    }
    let (status, refused) = get_json(&server, ADMIN_TOKEN, "/v1/audit?outcome=denied&via=http").await;
    assert_eq!(status, 200);
    assert!(refused["records"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["outcome"] == "denied"));
    let (_, future) = get_json(&server, ADMIN_TOKEN, "/v1/audit?since=2100-01-01T00:00:00Z").await;
    assert!(future["records"].as_array().unwrap().is_empty());
    // Seconds past what a record id can hold are a range like any other,
    // not an overflow (a panic in a debug build, a wrong range in release).
    for (far, expect_all) in [
        ("since=99999999999999", false),
        ("until=99999999999999", true),
        ("until=18446744073709551615", true),
    ] {
        let (status, body) = get_json(&server, ADMIN_TOKEN, &format!("/v1/audit?via=http&{far}")).await;
        assert_eq!(status, 200, "{far}: {body}");
        assert_eq!(
            body["records"].as_array().unwrap().len(),
            if expect_all { 3 } else { 0 },
            "{far}: {body}"
        );
    }

    let export = client()
        .get(server.url("/v1/audit/export?via=http"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(export.headers()["content-type"], "application/x-ndjson");
    let text = export.text().await.unwrap();
    assert_eq!(text.lines().count(), 3);
    // Unfiltered, the two plugin loads at start-up are in the trail too.
    let all = get_text(&server, ADMIN_TOKEN, "/v1/audit/export").await;
    assert_eq!(all.lines().filter(|l| l.contains("\"outcome\":\"loaded\"")).count(), 2);
    for line in text.lines() {
        serde_json::from_str::<Value>(line).unwrap();
    }
}

/// Records the export must page through: two and a half pages of
/// `MAX_PAGE` (1000), each page (16 MB of arguments) more than the sockets
/// between server and client hold, so that a server that streams cannot
/// have reached the last page while the client has read only the first line.
const EXPORTED: i64 = 2500;
const PAD: i32 = 16_000;

/// Write audit records with ids `ids` straight into the database, as a
/// node would have: session `export`, `PAD` bytes of arguments each.
async fn write_records(db: &tokio_postgres::Client, ids: &[i64]) {
    db.execute(
        "INSERT INTO audit (id, record, tool, outcome, via, session, node)
         SELECT i, jsonb_build_object(
                'id', i::text, 'time', '2026-12-04T00:00:00Z', 'via', 'http', 'token', 'agent',
                'session', 'export', 'idempotency_key', null, 'tool', 'echo.check',
                'plugin_version', '1.0.0', 'plugin_digest', 'd',
                'arguments', jsonb_build_object('pad', repeat('x', $2)), 'outcome', 'ok',
                'error', null, 'duration_us', 5, 'instantiate_us', 1, 'execute_us', 2,
                'outbound', '[]'::jsonb, 'denials', '[]'::jsonb),
                'echo.check', 'ok', 'http', 'export', 'a'
         FROM unnest($1::bigint[]) AS i",
        &[&ids, &PAD],
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_audit_export_streams_page_by_page_as_the_client_reads() {
    let url = toolhost_tests::postgres::Postgres::shared().database();
    let config = format!("[storage]\nurl = \"{url}\"\nnode = \"a\"\n");
    let server = ServerProcess::start(&config, &[]);
    let (db, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    let driver = tokio::spawn(connection);
    // Ids 2, 4, ..., 5000: the newest first, the last page the oldest.
    let ids: Vec<i64> = (1..=EXPORTED).map(|i| 2 * i).collect();
    write_records(&db, &ids).await;

    let mut export = client()
        .get(server.url("/v1/audit/export?session=export"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(export.status(), 200);
    assert_eq!(export.headers()["content-type"], "application/x-ndjson");
    let headers = export.headers().clone();
    let mut body = Vec::new();
    while !body.contains(&b'\n') {
        let chunk = export.chunk().await.unwrap().expect("a first line");
        body.extend_from_slice(&chunk);
    }
    // The first line is read: a record older than every other (so on the
    // last page) written now is in the export only if the server queries
    // that page after this, as the client reads, not before answering.
    write_records(&db, &[1]).await;
    while let Some(chunk) = export.chunk().await.unwrap() {
        body.extend_from_slice(&chunk);
    }
    let exported: Vec<i64> = body
        .split(|b| *b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| {
            let record: Value = serde_json::from_slice(line).unwrap();
            record["id"].as_str().unwrap().parse().unwrap()
        })
        .collect();
    let mut expected: Vec<i64> = ids.into_iter().rev().collect();
    expected.push(1);
    assert_eq!(exported.len(), expected.len(), "the export's records");
    assert!(
        exported == expected,
        "the export, newest first, ends with the record written during it"
    );
    // Streamed: no length known before the last page.
    assert!(headers.get("content-length").is_none(), "{headers:?}");
    assert_eq!(headers["transfer-encoding"], "chunked");
    driver.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn operators_change_grants_and_disable_plugins_while_serving() {
    let upstream = serve(Router::new().route("/ok", get(|| async { "fine" }))).await;
    let mut server = ServerProcess::start("", &["netprobe", "echo"]);
    let fetch =
        json!({ "method": "GET", "url": format!("http://127.0.0.1:{}/ok", upstream.port()), "host-header": null });

    assert_eq!(get_json(&server, AGENT_TOKEN, "/v1/plugins").await.0, 403);
    let (status, plugins) = get_json(&server, ADMIN_TOKEN, "/v1/plugins").await;
    assert_eq!(status, 200);
    let netprobe = named(&plugins, "netprobe").unwrap();
    assert_eq!(netprobe["version"], "1.0.0");
    assert_eq!(netprobe["state"], "enabled");
    assert_eq!(netprobe["digest"].as_str().unwrap().len(), 64);

    // No grant: denied. Grant it: the next call goes through.
    assert_eq!(
        invoke(&server, AGENT_TOKEN, "netprobe.fetch", fetch.clone()).await.0,
        502
    );
    let grant = json!({ "http": [{ "origin": format!("http://127.0.0.1:{}", upstream.port()), "methods": ["GET"] }] });
    assert_eq!(put_grant(&server, "netprobe", &grant).await.0, 200);
    let (status, body) = invoke(&server, AGENT_TOKEN, "netprobe.fetch", fetch.clone()).await;
    assert_eq!((status, &body["result"]), (StatusCode::OK, &json!(200)));
    let (_, grants) = get_json(&server, ADMIN_TOKEN, "/v1/plugins/netprobe/grants").await;
    assert_eq!(grants["operator"]["http"][0]["methods"], json!(["GET"]));

    // A bad grant is refused and changes nothing.
    let bad = json!({ "http": [{ "origin": "*" }] });
    assert_eq!(put_grant(&server, "netprobe", &bad).await.0, 422);
    assert_eq!(put_grant(&server, "nope", &grant).await.0, 404);
    assert_eq!(
        invoke(&server, AGENT_TOKEN, "netprobe.fetch", fetch.clone()).await.0,
        200
    );

    // Disable: 503 and gone from the list; enable: back.
    let r = client()
        .post(server.url("/v1/plugins/echo/disable"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (status, body) = invoke(
        &server,
        AGENT_TOKEN,
        "echo.check",
        json!({ "ok": true, "message": "m" }),
    )
    .await;
    assert_eq!(
        (status, body["error"]["kind"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("unavailable"))
    );
    let (_, tools) = get_json(&server, AGENT_TOKEN, "/v1/tools").await;
    assert!(tools.as_array().unwrap().iter().all(|t| t["plugin"] != "echo"));

    // Grants and state survive a restart (they are in sled).
    server.restart();
    assert_eq!(
        invoke(&server, AGENT_TOKEN, "netprobe.fetch", fetch.clone()).await.0,
        200
    );
    assert_eq!(echo_check(&server, AGENT_TOKEN).await.0, 503);
    let r = client()
        .post(server.url("/v1/plugins/echo/enable"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(echo_check(&server, AGENT_TOKEN).await.0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_calls_and_denials() {
    let server = ServerProcess::start("", &["echo", "secret-thief"]);
    invoke(
        &server,
        AGENT_TOKEN,
        "echo.check",
        json!({ "ok": true, "message": "m" }),
    )
    .await;
    invoke(
        &server,
        AGENT_TOKEN,
        "echo.check",
        json!({ "ok": false, "message": "m" }),
    )
    .await;
    invoke(&server, AGENT_TOKEN, "secret-thief.steal", json!({ "name": "x" })).await;
    assert_eq!(
        client()
            .get(server.url("/metrics"))
            .bearer_auth(AGENT_TOKEN)
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    let text = client()
        .get(server.url("/metrics"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(r#"toolhost_calls_total{tool="echo.check",outcome="ok"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"toolhost_calls_total{tool="echo.check",outcome="plugin_error"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"toolhost_denials_total{plugin="secret-thief",capability="secret"} 1"#),
        "{text}"
    );
    assert!(text.contains("toolhost_call_duration_seconds_bucket"), "{text}");
    assert!(text.contains("toolhost_instances_in_use 0"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_lets_calls_in_flight_finish() {
    let upstream = upstream_with_slow(Duration::from_millis(1500)).await;
    let config = netprobe_grant(upstream);
    let mut server = ServerProcess::start(&config, &["netprobe"]);
    let url = server.url("/v1/tools/netprobe.fetch/invoke");
    let slow = tokio::spawn(
        client()
            .post(url)
            .bearer_auth(AGENT_TOKEN)
            .json(&json!({ "method": "GET", "url": format!("http://127.0.0.1:{}/slow", upstream.port()), "host-header": null }))
            .send(),
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let status = tokio::task::spawn_blocking(move || {
        let status = server.stop();
        (status, server)
    })
    .await
    .unwrap();
    assert!(status.0.success(), "{:?}", status.0);
    let response = slow.await.unwrap().unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap()["result"], 200);
}

/// Failed bearer checks are counted and logged (at a bounded rate, with
/// where they came from), and one source's repeated failures are slowed
/// (429 once its small budget is spent) while a valid token from the same
/// source passes all the same.
#[tokio::test(flavor = "multi_thread")]
async fn failed_bearer_checks_are_counted_logged_and_slowed_per_source_never_a_valid_token() {
    let server = ServerProcess::start(&config(), &["echo"]);
    let mut statuses = Vec::new();
    for i in 0..40 {
        let (status, body) = get_json(&server, &format!("guess-{i:04}-0123456789abcdef"), "/v1/tools").await;
        if status == 429 {
            assert_eq!(body["error"]["kind"], "too_many_failures", "{body}");
        }
        statuses.push(status.as_u16());
        // The valid token from the same address is never slowed.
        assert_eq!(
            get_json(&server, AGENT_TOKEN, "/v1/tools").await.0,
            200,
            "after {i} failures"
        );
    }
    let refused = statuses.iter().filter(|&&s| s == 401).count();
    assert!(
        (20..24).contains(&refused),
        "401 for the budget, then 429: {statuses:?}"
    );
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    let r = client()
        .get(server.url("/v1/tools"))
        .bearer_auth("guess-last")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=3).contains(&retry), "{retry}");

    let metrics = get_text(&server, ADMIN_TOKEN, "/metrics").await;
    let unknown = metrics
        .lines()
        .find(|l| l.starts_with("toolhost_bearer_failures_total{reason=\"Unknown\"}"))
        .unwrap_or_else(|| panic!("no bearer failures counted:\n{metrics}"));
    let counted: u64 = unknown.rsplit(' ').next().unwrap().parse().unwrap();
    assert_eq!(counted, 41, "{unknown}");
    let log = server.log();
    let logged = log.lines().filter(|l| l.contains("bearer check failed")).count();
    assert!((1..=10).contains(&logged), "{logged} lines for 41 failures");
    assert!(log.contains("source=127.0.0.1"), "the source is named");
}

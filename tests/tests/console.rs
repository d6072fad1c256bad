//! The operator console in a real headless Chromium (Debian's, driven over
//! WebDriver) against a real `toolhost serve` with the reference connectors
//! and the sample systems: a reviewer approves a held voucher and finds it in
//! the conversation's timeline but cannot roll back; an admin sees the
//! connectors, uploads and rolls back a plugin, edits a grant, and follows
//! calls and runs. A third test checks the session and change guards over
//! plain HTTP.
//!
//! Screenshots of the pages go to `$TOOLHOST_SCREENSHOTS` when it is set
//! (the README's come from `TOOLHOST_SCREENSHOTS=tests/screenshots`).

use std::net::SocketAddr;
use std::path::PathBuf;

use fantoccini::key::Key;
use fantoccini::Locator;
use sample_upstreams::scenario::{demo_config, handle_complaint};
use serde_json::{json, Value};
use toolhost_tests::browser::Browser;
use toolhost_tests::{
    client, get_json, invoke, reference, repo_root, upload, Scratch, ServerProcess, ADMIN_TOKEN, AGENT_TOKEN,
    APPROVER_TOKEN,
};

/// The host with the four reference connectors and the late-parcel
/// workflow, granted the sample systems at `addr`.
fn toolhost(addr: SocketAddr) -> ServerProcess {
    ServerProcess::start_prepared(&demo_config(addr), |plugins| {
        for name in ["crm", "erp", "coupon", "logistics", "late-parcel"] {
            std::os::unix::fs::symlink(reference(name), plugins.join(name)).unwrap();
        }
    })
}

/// Where screenshots go: the folder named by `TOOLHOST_SCREENSHOTS`
/// (relative to the repository), or a scratch folder.
fn screenshots(scratch: &Scratch) -> PathBuf {
    match std::env::var_os("TOOLHOST_SCREENSHOTS") {
        Some(dir) => repo_root().join(dir),
        None => scratch.path().join("screenshots"),
    }
}

/// A second version of the reference `name` connector (the same component,
/// its manifest at `version`), as a bundle folder: connector.toml, name.wasm.
fn bumped(name: &str, version: &str, into: &Scratch) -> PathBuf {
    let dir = into.path().join(format!("{name}-{version}"));
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = std::fs::read_to_string(reference(name).join("connector.toml")).unwrap();
    let manifest = manifest.replacen("version = \"0.1.0\"", &format!("version = \"{version}\""), 1);
    assert!(manifest.contains(version), "the manifest names its version as expected");
    std::fs::write(dir.join("connector.toml"), manifest).unwrap();
    std::fs::copy(
        reference(name).join(format!("{name}.wasm")),
        dir.join(format!("{name}.wasm")),
    )
    .unwrap();
    dir
}

async fn serving_version(server: &ServerProcess, name: &str) -> String {
    let (_, plugins) = get_json(server, ADMIN_TOKEN, "/v1/plugins").await;
    plugins
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .map(|p| p["version"].as_str().unwrap().to_string())
        .unwrap()
}

async fn sign_in(b: &Browser, server: &ServerProcess, token: &str) {
    b.client.goto(&server.url("/console")).await.unwrap();
    // Not signed in yet: the console sends the browser to its sign-in page.
    b.wait_for("#token").await.send_keys(token).await.unwrap();
    b.wait_for("#sign-in").await.click().await.unwrap();
    b.wait_for("#signed-in").await;
}

/// The path of the page the browser shows.
async fn path(b: &Browser) -> String {
    b.client.current_url().await.unwrap().path().to_string()
}

/// Texts of every element matching `css`.
async fn texts(b: &Browser, css: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in b.client.find_all(Locator::Css(css)).await.unwrap() {
        out.push(e.text().await.unwrap());
    }
    out
}

/// Wait until the element matching `css` says `wanted`.
async fn wait_text(b: &Browser, css: &str, wanted: &str) {
    for _ in 0..100 {
        if let Ok(e) = b.client.find(Locator::Css(css)).await {
            if e.text().await.unwrap_or_default().contains(wanted) {
                return;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!(
        "{css:?} never said {wanted:?}; the page: {}",
        b.client.source().await.unwrap()
    );
}

/// What a screen reader would miss on the page: form controls without a
/// label, buttons without a name, held calls not named by their heading,
/// and whether the first thing a Tab reaches is the skip link.
const ACCESSIBILITY: &str = r##"
const problems = [];
for (const c of document.querySelectorAll("main input:not([type=hidden]), main textarea, main select")) {
  const labelled = (c.id && document.querySelector(`label[for="${c.id}"]`)) || c.getAttribute("aria-label") || c.getAttribute("aria-labelledby");
  if (!labelled) problems.push("no label: " + c.outerHTML.slice(0, 80));
}
for (const b of document.querySelectorAll("button")) {
  if (!b.textContent.trim() && !b.getAttribute("aria-label")) problems.push("unnamed button");
}
for (const li of document.querySelectorAll("#queue > li")) {
  const by = li.getAttribute("aria-labelledby");
  if (!by || !document.getElementById(by)) problems.push("held call without a name: " + li.id);
  for (const b of li.querySelectorAll("button")) {
    const d = b.getAttribute("aria-describedby");
    if (!d || !document.getElementById(d)) problems.push("a decision button does not say which call: " + li.id);
  }
}
const first = document.querySelector("a[href], button, input:not([type=hidden]), textarea, select");
if (!first || !first.classList.contains("skip")) problems.push("the first focusable element is not the skip link");
if (!document.querySelector("[aria-live]")) problems.push("no live region announces new held calls");
return problems;
"##;

#[tokio::test(flavor = "multi_thread")]
async fn a_reviewer_approves_a_held_voucher_sees_the_call_complete_and_in_the_timeline_but_cannot_roll_back() {
    let data = Scratch::new("console-review");
    let upstreams = sample_upstreams::start(data.path(), "127.0.0.1:0".parse().unwrap(), Default::default())
        .await
        .unwrap();
    let server = toolhost(upstreams.addr);
    // crm has a version to go back to, so that only the role can refuse it.
    let next = bumped("crm", "0.1.1", &data);
    let (status, body) = upload(
        &server,
        "crm",
        std::fs::read_to_string(next.join("connector.toml")).unwrap(),
        std::fs::read(next.join("crm.wasm")).unwrap(),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let shots = screenshots(&data);
    let b = Browser::start().await;

    sign_in(&b, &server, APPROVER_TOKEN).await;
    assert_eq!(path(&b).await, "/console");
    assert!(b.text("#signed-in").await.contains("approver"));
    // The reviewer sees what is loaded, but no way into a plugin's controls.
    let names = texts(&b, "#plugins tbody th").await;
    for name in ["coupon", "crm", "erp", "logistics", "late-parcel"] {
        assert!(names.iter().any(|n| n == name), "{name} in {names:?}");
    }
    assert!(b
        .client
        .find_all(Locator::Css("a[href^='/console/plugins/']"))
        .await
        .unwrap()
        .is_empty());

    // The approvals page is open before the call is held: the call appears
    // without a reload.
    b.wait_for("nav a[href='/console/approvals']")
        .await
        .click()
        .await
        .unwrap();
    b.wait_for("#queue").await;
    b.run("window.notReloaded = true; return null;", vec![]).await;
    let base = server.base.clone();
    let agent = tokio::spawn(async move { handle_complaint(&base, AGENT_TOKEN, "SO-1003", "It never arrived.").await });
    let held = b.wait_for("#queue > li.held-call").await;
    assert_eq!(b.run("return window.notReloaded === true;", vec![]).await, json!(true));
    let held_text = held.text().await.unwrap();
    assert!(held_text.contains("coupon.issue-voucher"), "{held_text}");
    assert!(b.text("#queue .rule").await.contains("vouchers over 50.00"));
    assert!(b.text("#queue pre.arguments").await.contains("amount-minor"));
    assert_eq!(b.text("#queue-count").await, "1");
    assert_eq!(b.run(ACCESSIBILITY, vec![]).await, json!([]));
    b.screenshot(&shots, "approvals").await;

    // Decided with the keyboard alone: type the reason, Tab to Approve, Enter.
    let reason = b.wait_for("#queue textarea[name=reason]").await;
    reason.click().await.unwrap();
    reason.send_keys("claim confirmed by the carrier").await.unwrap();
    reason.send_keys(&char::from(Key::Tab).to_string()).await.unwrap();
    let focused = b.client.active_element().await.unwrap();
    assert_eq!(focused.text().await.unwrap(), "Approve");
    focused.send_keys(&char::from(Key::Enter).to_string()).await.unwrap();
    wait_text(&b, "main .flash.ok", "is approved").await;

    // The agent, waiting on its call, gets the voucher.
    let outcome = tokio::time::timeout(std::time::Duration::from_secs(60), agent)
        .await
        .expect("the agent's call completes")
        .unwrap()
        .unwrap();
    assert!(outcome.voucher.is_some(), "{outcome:?}");
    let review = outcome.review.clone().expect("held for review");
    assert_eq!(
        review.by,
        vec![("approver".to_string(), "claim confirmed by the carrier".to_string())]
    );
    wait_text(&b, "#queue-count", "0").await;

    // The audit search finds the conversation; its timeline shows the hold,
    // the decision and the call with its upstream request, in order.
    b.wait_for("nav a[href='/console/audit']").await.click().await.unwrap();
    b.wait_for("#session").await.send_keys(&outcome.session).await.unwrap();
    b.wait_for("#search").await.click().await.unwrap();
    b.wait_for("#records tbody tr").await;
    let tools = texts(&b, "#records tbody td:nth-child(2)").await;
    assert!(tools.iter().any(|t| t == "coupon.issue-voucher"), "{tools:?}");
    b.wait_for("#records tbody td a").await.click().await.unwrap();
    b.wait_for("#timeline").await;
    let outcomes: Vec<String> = b
        .run(
            "return [...document.querySelectorAll('#timeline > li')].filter(li => li.querySelector('code').textContent === 'coupon.issue-voucher').map(li => li.dataset.outcome);",
            vec![],
        )
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(outcomes, ["held", "approved", "ok"]);
    let timeline = b.text("#timeline").await;
    assert!(timeline.contains("claim confirmed by the carrier"), "{timeline}");
    assert!(timeline.contains("vouchers over 50.00"), "{timeline}");
    assert!(
        timeline.contains("/ledger/v1/"),
        "the voucher's upstream request: {timeline}"
    );
    b.run(
        "document.querySelector('#timeline > li[data-outcome=held]').scrollIntoView(); return null;",
        vec![],
    )
    .await;
    b.screenshot(&shots, "timeline").await;

    // No rollback for a reviewer: the page is refused, and so is a post
    // carrying the session's own CSRF token.
    b.client.goto(&server.url("/console/plugins/crm")).await.unwrap();
    assert!(b
        .text("#problem")
        .await
        .contains("managing plugins needs an admin token"));
    b.client.goto(&server.url("/console")).await.unwrap();
    let status = b
        .client
        .execute_async(
            r#"const done = arguments[arguments.length - 1];
               const csrf = document.querySelector("input[name=csrf]").value;
               fetch("/console/plugins/crm/rollback", { method: "POST", body: new URLSearchParams({ csrf }), redirect: "manual" })
                 .then(r => done(r.status), e => done(String(e)));"#,
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(status, json!(403));
    assert_eq!(serving_version(&server, "crm").await, "0.1.1");

    // Signing out ends the session.
    b.wait_for(".who button").await.click().await.unwrap();
    b.wait_for("#token").await;
    b.client.goto(&server.url("/console/approvals")).await.unwrap();
    b.wait_for("#token").await;
    assert_eq!(path(&b).await, "/console/sign-in");
    b.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_sees_the_connectors_uploads_edits_and_rolls_back_a_plugin_and_follows_calls_and_runs() {
    let data = Scratch::new("console-admin");
    let upstreams = sample_upstreams::start(data.path(), "127.0.0.1:0".parse().unwrap(), Default::default())
        .await
        .unwrap();
    let server = toolhost(upstreams.addr);
    let shots = screenshots(&data);
    // Some traffic for the chart: one complaint handled by the scripted agent.
    handle_complaint(&server.base, AGENT_TOKEN, "SO-1001", "Two days late!")
        .await
        .unwrap();
    let b = Browser::start().await;

    sign_in(&b, &server, ADMIN_TOKEN).await;
    let names = texts(&b, "#plugins tbody th").await;
    assert_eq!(names, ["coupon", "crm", "erp", "late-parcel", "logistics"]);
    let bars: u64 = b
        .run(
            "return [...document.querySelectorAll('.chart .bar')].reduce((s, r) => s + Number(r.getAttribute('height')), 0);",
            vec![],
        )
        .await
        .as_u64()
        .unwrap();
    assert!(bars > 0, "the chart shows the calls just made");
    b.screenshot(&shots, "overview").await;

    // Live calls: a call made now appears as it finishes.
    b.wait_for("nav a[href='/console/live']").await.click().await.unwrap();
    wait_text(&b, "#live-state", "Following").await;
    let (status, _) = invoke(&server, AGENT_TOKEN, "erp.get-order", json!({ "order-id": "SO-1002" })).await;
    assert_eq!(status, 200);
    wait_text(&b, "#live tbody", "erp.get-order").await;
    b.screenshot(&shots, "live").await;

    // A plugin's page: upload a new version from files, then roll it back.
    b.client.goto(&server.url("/console")).await.unwrap();
    b.wait_for("#plugins a[href='/console/plugins/crm']")
        .await
        .click()
        .await
        .unwrap();
    assert_eq!(b.text("#serving-version").await, "0.1.0");
    assert!(
        b.client.find(Locator::Css("#rollback")).await.is_err(),
        "one version: nothing to go back to"
    );
    let next = bumped("crm", "0.1.1", &data);
    b.wait_for("#manifest")
        .await
        .send_keys(&next.join("connector.toml").display().to_string())
        .await
        .unwrap();
    b.wait_for("#component")
        .await
        .send_keys(&next.join("crm.wasm").display().to_string())
        .await
        .unwrap();
    b.wait_for("#upload").await.click().await.unwrap();
    wait_text(&b, "main .flash.ok", "crm 0.1.1 is uploaded").await;
    assert_eq!(b.text("#serving-version").await, "0.1.1");
    assert_eq!(serving_version(&server, "crm").await, "0.1.1");
    assert_eq!(texts(&b, "#versions tbody tr").await.len(), 2);
    b.screenshot(&shots, "plugin").await;
    b.wait_for("#rollback").await.click().await.unwrap();
    wait_text(&b, "main .flash.ok", "rolled back to version 0.1.0").await;
    assert_eq!(b.text("#serving-version").await, "0.1.0");
    assert_eq!(serving_version(&server, "crm").await, "0.1.0");

    // The operator's grant, edited as JSON: a mistake is refused with its
    // reason and changes nothing; a good one serves.
    let grant_box = b.wait_for("#grant").await;
    let grant: Value = serde_json::from_str(&grant_box.prop("value").await.unwrap().unwrap()).unwrap();
    grant_box.clear().await.unwrap();
    grant_box.send_keys("{ \"timeout-ms\": \"soon\" }").await.unwrap();
    b.wait_for("#save-grant").await.click().await.unwrap();
    wait_text(&b, "main .flash.failed", "the grant is not valid").await;
    let mut changed = grant.clone();
    changed["timeout-ms"] = json!(4321);
    let grant_box = b.wait_for("#grant").await;
    grant_box.clear().await.unwrap();
    grant_box.send_keys(&changed.to_string()).await.unwrap();
    b.wait_for("#save-grant").await.click().await.unwrap();
    wait_text(&b, "main .flash.ok", "grant of crm is changed").await;
    let (_, grants) = get_json(&server, ADMIN_TOKEN, "/v1/plugins/crm/grants").await;
    assert_eq!(grants["operator"]["timeout-ms"], 4321);
    assert_eq!(grants["plugin_state"]["effective_grant"]["timeout_ms"], 4321);
    assert_eq!(
        grants["operator"]["http"], grant["http"],
        "the rest of the grant is kept as it was"
    );

    // Disable, and the agent is refused; enable, and it is served.
    b.wait_for("#disable").await.click().await.unwrap();
    wait_text(&b, "#plugin-state", "disabled").await;
    let (status, _) = invoke(
        &server,
        AGENT_TOKEN,
        "crm.get-customer",
        json!({ "customer-id": "C-1001" }),
    )
    .await;
    assert_ne!(status, 200);
    b.wait_for("#enable").await.click().await.unwrap();
    wait_text(&b, "#plugin-state", "enabled").await;
    let (status, body) = invoke(
        &server,
        AGENT_TOKEN,
        "crm.get-customer",
        json!({ "customer-id": "C-1001" }),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // Runs: the late-parcel workflow's run, with its steps.
    let (status, body) = invoke(
        &server,
        AGENT_TOKEN,
        "late-parcel",
        json!({ "order-id": "SO-1002", "complaint": "On time?" }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let run = body["run"]["id"].as_str().or(body["run"].as_str()).unwrap().to_string();
    b.wait_for("nav a[href='/console/runs']").await.click().await.unwrap();
    b.wait_for(&format!("#runs a[href='/console/runs/{run}']"))
        .await
        .click()
        .await
        .unwrap();
    assert_eq!(b.text("#run-state").await, "completed");
    let steps = texts(&b, "#steps tbody tr").await;
    assert!(steps.len() >= 5, "{steps:?}");
    assert!(steps.iter().any(|s| s.contains("erp.get-order")), "{steps:?}");
    b.screenshot(&shots, "run").await;

    // The audit page and its search by outcome.
    b.client
        .goto(&server.url("/console/audit?outcome=loaded"))
        .await
        .unwrap();
    let tools = texts(&b, "#records tbody td:nth-child(2)").await;
    assert!(tools.iter().any(|t| t == "(plugin) crm"), "{tools:?}");
    // By time (UTC, as the form's fields say): nothing after the year 2999.
    b.client
        .goto(&server.url("/console/audit?since=2999-01-01T00%3A00"))
        .await
        .unwrap();
    assert!(b.text("main").await.contains("No record matches."));
    // A misspelt outcome is named, not ignored.
    b.client.goto(&server.url("/console/audit?outcome=okay")).await.unwrap();
    assert!(b.text("#problem").await.contains("there is no outcome \"okay\""));
    b.client.goto(&server.url("/console/audit")).await.unwrap();
    b.wait_for("#records tbody tr").await;
    b.screenshot(&shots, "audit").await;
    b.close().await;
}

/// A cookie for `token`'s session, from a sign-in over plain HTTP.
async fn session_cookie(server: &ServerProcess, token: &str) -> String {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = http
        .post(server.url("/console/sign-in"))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let set = r.headers()["set-cookie"].to_str().unwrap();
    set.split(';').next().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_guards_its_sessions_and_every_change() {
    let server = ServerProcess::start("", &["plugins/crm"]);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // Not signed in: every page sends the browser to sign in.
    for page in [
        "/console",
        "/console/audit",
        "/console/plugins/crm",
        "/console/approvals/stream",
    ] {
        let r = http.get(server.url(page)).send().await.unwrap();
        assert_eq!(r.status(), 303, "{page}");
        assert_eq!(r.headers()["location"], "/console/sign-in");
    }

    // Agent and unknown tokens get no session, and the same answer.
    for (token, status) in [(AGENT_TOKEN, 401), ("not-a-token-at-all-0000", 401)] {
        let r = http
            .post(server.url("/console/sign-in"))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status);
        assert!(r.headers().get("set-cookie").is_none());
    }

    // The cookie: HttpOnly, SameSite=Strict, expiring, for the console only;
    // Secure when a TLS proxy in front says the browser came over HTTPS.
    let r = http
        .post(server.url("/console/sign-in"))
        .form(&[("token", ADMIN_TOKEN)])
        .send()
        .await
        .unwrap();
    let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/console", "Max-Age=28800"] {
        assert!(set.contains(attribute), "{attribute} in {set}");
    }
    assert!(!set.contains("Secure"), "{set}");
    let r = http
        .post(server.url("/console/sign-in"))
        .header("x-forwarded-proto", "https")
        .form(&[("token", ADMIN_TOKEN)])
        .send()
        .await
        .unwrap();
    assert!(r.headers()["set-cookie"].to_str().unwrap().contains("; Secure"));

    // Pages: a policy that allows no inline script, and none in them.
    let cookie = session_cookie(&server, ADMIN_TOKEN).await;
    let r = http
        .get(server.url("/console"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    assert_eq!(r.headers()["cache-control"], "no-store");
    let html = r.text().await.unwrap();
    assert!(!html.contains("<script>") && !html.contains(" onclick=") && !html.contains(" style="));
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_string();

    // A change without the session's CSRF token, with another's, or from
    // another origin is refused and changes nothing.
    let disable = server.url("/console/plugins/crm/disable");
    let refused = [
        http.post(&disable)
            .header("cookie", &cookie)
            .form(&[("csrf", "0".repeat(64))]),
        http.post(&disable).header("cookie", &cookie).form(&[("other", "x")]),
        http.post(&disable)
            .header("cookie", &cookie)
            .header("origin", "http://evil.example")
            .form(&[("csrf", csrf.as_str())]),
    ];
    for request in refused {
        let r = request.send().await.unwrap();
        assert!(r.status() == 403 || r.status() == 400, "{}", r.status());
    }
    let (_, plugins) = get_json(&server, ADMIN_TOKEN, "/v1/plugins").await;
    assert_eq!(plugins[0]["state"], "enabled");
    // With all three it goes through.
    let r = http
        .post(&disable)
        .header("cookie", &cookie)
        .header("origin", server.base.as_str())
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let (_, plugins) = get_json(&server, ADMIN_TOKEN, "/v1/plugins").await;
    assert_eq!(plugins[0]["state"], "disabled");

    // An approver's session may not change plugins even with its own token.
    let reviewer = session_cookie(&server, APPROVER_TOKEN).await;
    let html = http
        .get(server.url("/console"))
        .header("cookie", &reviewer)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let reviewer_csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let r = http
        .post(server.url("/console/plugins/crm/enable"))
        .header("cookie", &reviewer)
        .form(&[("csrf", reviewer_csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let (_, plugins) = get_json(&server, ADMIN_TOKEN, "/v1/plugins").await;
    assert_eq!(plugins[0]["state"], "disabled");

    // Signing out ends the session on the server, not only in the browser.
    let r = http
        .post(server.url("/console/sign-out"))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(r.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    let r = http
        .get(server.url("/console"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);

    // An agent's session id may hold `/` or be `..`: the timeline is found
    // by a query parameter, so neither misroutes it.
    let admin = session_cookie(&server, ADMIN_TOKEN).await;
    for session in ["case/7", ".."] {
        let page = http
            .get(server.url("/console/audit/timeline"))
            .query(&[("session", session)])
            .header("cookie", &admin)
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200);
        assert!(page.text().await.unwrap().contains(&format!("<code>{session}</code>")));
    }

    // The assets are embedded, and served without a session.
    for asset in ["console.css", "console.js"] {
        let r = http
            .get(server.url(&format!("/console/assets/{asset}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{asset}");
        assert!(r.bytes().await.unwrap().len() > 1000);
    }
}

/// Every page paints over a trail of real calls, and what that takes: time
/// to first paint and page weight of the overview and the audit pages, from
/// headless Chromium's navigation and paint timing (printed, never asserted
/// on: timings belong to benchmarks). The suite runs it over 2,000 records;
/// BENCHMARKS.md's figures come from `TRAIL=100000` against a release host
/// (`TOOLHOST_BIN=target/release/toolhost ... -- --nocapture first_paint`).
#[tokio::test(flavor = "multi_thread")]
async fn first_paint_and_page_weight_with_a_large_trail() {
    let records: usize = std::env::var("TRAIL")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    // No request rate limit in the way of filling the trail.
    let server = ServerProcess::start("[server]\nrate-per-minute = 100000000\n", &["echo"]);
    // The trail, filled by real calls (one in fifty failing): 16 clients,
    // 2,000 conversations.
    let started = std::time::Instant::now();
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let workers: Vec<_> = (0..16)
        .map(|_| {
            let (next, url, http) = (next.clone(), server.url("/v1/tools/echo.check/invoke"), client());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= records {
                        return;
                    }
                    http.post(&url)
                        .bearer_auth(AGENT_TOKEN)
                        .header("x-session-id", format!("conversation-{}", i % 2000))
                        .json(&json!({ "ok": i % 50 != 0, "message": format!("call {i}") }))
                        .send()
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    eprintln!("trail: {records} calls in {:.1?}", started.elapsed());

    let b = Browser::start().await;
    sign_in(&b, &server, ADMIN_TOKEN).await;
    const TIMING: &str = r#"
        const nav = performance.getEntriesByType("navigation")[0];
        const paint = Object.fromEntries(performance.getEntriesByType("paint").map(p => [p.name, p.startTime]));
        const resources = performance.getEntriesByType("resource");
        return {
          first_contentful_paint_ms: paint["first-contentful-paint"],
          response_start_ms: nav.responseStart,
          html_bytes: nav.encodedBodySize,
          assets_bytes: resources.reduce((s, r) => s + r.encodedBodySize, 0),
          transferred_bytes: nav.transferSize + resources.reduce((s, r) => s + r.transferSize, 0),
          elements: document.getElementsByTagName("*").length,
        };"#;
    let pages = [
        ("overview", "/console".to_string()),
        ("audit (newest 50)", "/console/audit".to_string()),
        (
            "audit, one session",
            "/console/audit?session=conversation-1000".to_string(),
        ),
        ("audit, one outcome", "/console/audit?outcome=plugin_error".to_string()),
        (
            "timeline of one conversation",
            "/console/audit/timeline?session=conversation-1000".to_string(),
        ),
    ];
    println!("| page | first contentful paint (median of 5) | server answer starts | HTML | elements |");
    println!("|---|---|---|---|---|");
    let mut assets: f64 = 0.0;
    for (name, page) in pages {
        let mut samples = Vec::new();
        for _ in 0..5 {
            b.client.goto(&server.url(&page)).await.unwrap();
            b.wait_for("main").await;
            let mut t = b.run(TIMING, vec![]).await;
            for _ in 0..20 {
                if !t["first_contentful_paint_ms"].is_null() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                t = b.run(TIMING, vec![]).await;
            }
            assets = assets.max(t["assets_bytes"].as_f64().unwrap_or(0.0));
            samples.push(t);
        }
        samples.sort_by(|a, b| {
            a["first_contentful_paint_ms"]
                .as_f64()
                .partial_cmp(&b["first_contentful_paint_ms"].as_f64())
                .unwrap()
        });
        assert!(
            samples.iter().all(|t| t["first_contentful_paint_ms"].is_number()),
            "{name} painted nothing: {samples:?}"
        );
        let median = &samples[2];
        println!(
            "| {name} | {:.0} ms | {:.0} ms | {:.1} KB | {} |",
            median["first_contentful_paint_ms"].as_f64().unwrap_or(f64::NAN),
            median["response_start_ms"].as_f64().unwrap_or(f64::NAN),
            median["html_bytes"].as_f64().unwrap_or(0.0) / 1024.0,
            median["elements"],
        );
    }
    println!(
        "stylesheet and script, once per browser (cached after): {:.1} KB",
        assets / 1024.0
    );
    b.close().await;
}

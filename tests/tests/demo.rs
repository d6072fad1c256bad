//! The README's first command, `toolhost demo`, run as written: its first
//! `sh` block in a bash in a folder laid out like the reader's checkout,
//! with the binary the tests built standing in for `cargo run --release`
//! and a free port (TOOLHOST_LISTEN) for 8080. Then the lines it says to
//! try (the README's block after the test command) are the ones it
//! printed, and run as written; every tool it serves is called with valid
//! arguments and answers, held calls are approved and answer; the console
//! answers; Ctrl-C stops the host and the sample systems. And `serve`
//! starts no sample system and writes no grant.

use std::collections::BTreeSet;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use toolhost_tests::process::{children, free_port, listening_ports};
use toolhost_tests::readme::{section_blocks, Checkout};
use toolhost_tests::*;

const SECTION: &str = "## Two commands, on a fresh machine";
/// What the README runs the host with; the test runs the built binary.
const CARGO_RUN: &str = "cargo run --release -p toolhost --";
/// The demo's last line once it serves.
const READY: &str = "toolhost demo: Ctrl-C stops it";

/// The first block running: a terminal's foreground job.
struct Running {
    checkout: Checkout,
    bash: Child,
}

impl Running {
    fn output(&self) -> (String, String) {
        let read = |name: &str| std::fs::read_to_string(self.checkout.path().join(name)).unwrap_or_default();
        (read("stdout"), read("stderr"))
    }

    fn said(&self) -> String {
        let (stdout, stderr) = self.output();
        format!("--- stdout\n{stdout}\n--- stderr\n{stderr}")
    }

    /// Until the demo says it serves; fails if the block ends first.
    fn wait_serving(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.output().0.contains(READY) {
            if let Some(status) = self.bash.try_wait().unwrap() {
                panic!("the first block ended ({status}) before serving:\n{}", self.said());
            }
            assert!(
                Instant::now() < deadline,
                "not serving within {limit:?}:\n{}",
                self.said()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Ctrl-C, as a terminal sends it: SIGINT to the whole job. The exit
    /// status, within [`STOP_TIMEOUT`].
    fn interrupt(&mut self) -> std::process::ExitStatus {
        let group = format!("-{}", self.bash.id());
        Command::new("kill").args(["-INT", "--", &group]).status().unwrap();
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = self.bash.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "not stopped by Ctrl-C:\n{}", self.said());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.bash.try_wait().ok().flatten().is_none() {
            let group = format!("-{}", self.bash.id());
            let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
            let _ = self.bash.wait();
        }
    }
}

/// The number after `http://127.0.0.1:` in `line`.
fn port_in(line: &str) -> u16 {
    let after = line.split("http://127.0.0.1:").nth(1).expect("an address");
    after[..after.find(|c: char| !c.is_ascii_digit()).unwrap_or(after.len())]
        .parse()
        .unwrap()
}

fn refused(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
}

#[test]
fn the_first_command_serves_every_tool_against_the_sample_systems() {
    let blocks = section_blocks(SECTION);
    assert!(blocks.len() >= 3, "run it, test it, try it: {blocks:#?}");
    let (first, to_try) = (&blocks[0], &blocks[2]);
    assert!(first.contains(&format!("{CARGO_RUN} demo")), "{first}");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let checkout = Checkout::new("demo");
    let listen = format!("127.0.0.1:{port}");
    let bash = checkout.spawn(&first.replace(CARGO_RUN, "toolhost"), &[("TOOLHOST_LISTEN", &listen)]);
    let mut demo = Running { checkout, bash };
    demo.wait_serving(Duration::from_secs(600));
    let said = demo.said();
    let (stdout, _) = demo.output();

    // It prints the README's lines to try, for its address.
    let printed = to_try.replace("127.0.0.1:8080", &listen);
    assert!(
        stdout.contains(printed.trim_end()),
        "the README's lines to try:\n{printed}\nare not what it printed:\n{said}"
    );
    assert!(stdout.contains(&format!("{base}/console")), "{said}");
    assert!(stdout.contains("20 tools from plugins"), "{said}");

    // One process serves both: the host's port and the sample systems'.
    let samples = port_in(
        stdout
            .lines()
            .find(|l| l.contains("SAMPLE"))
            .expect("where the samples are"),
    );
    let host = children(demo.bash.id());
    assert_eq!(host.len(), 1, "bash runs toolhost: {host:?}");
    assert_eq!(
        listening_ports(host[0]),
        {
            let mut p = vec![port, samples];
            p.sort();
            p
        },
        "{said}"
    );

    // The lines to try, run as written.
    let tried = demo.checkout.run(&printed, 120);
    let out = String::from_utf8_lossy(&tried.stdout).to_string();
    let all = format!("{out}\n{}\n{said}", String::from_utf8_lossy(&tried.stderr));
    assert!(tried.status.success(), "{all}");
    for want in [
        r#""status":"delivered""#,
        r#""voucher":"V-"#,
        r#""rule":"vouchers over 50.00""#,
        r#""code":"V-"#,
    ] {
        assert!(out.contains(want), "no {want} in:\n{all}");
    }

    let tokens: Value =
        serde_json::from_str(&std::fs::read_to_string(demo.checkout.path().join("demo/tokens.json")).unwrap()).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut agent = Agent::new(&base, &tokens);
        call_every_tool(&mut agent).await;
        let served = agent.served().await;
        assert_eq!(agent.called, served, "every tool served is called once at least");
        assert_eq!(served.len(), 20, "{served:?}");
        console_shows_the_plugins(&base, tokens["admin"].as_str().unwrap()).await;
    });

    // Ctrl-C stops the host and the sample systems, cleanly.
    let status = demo.interrupt();
    let said = demo.said();
    assert!(status.success(), "{status}:\n{said}");
    assert!(said.contains("stopped; storage flushed"), "{said}");
    assert!(
        said.contains("toolhost demo: stopped, and the sample systems with it"),
        "{said}"
    );
    assert!(refused(port) && refused(samples), "{said}");
}

/// An agent of the demo: its calls, and the admin who approves held ones.
struct Agent {
    http: reqwest::Client,
    base: String,
    agent: String,
    admin: String,
    called: BTreeSet<String>,
}

impl Agent {
    fn new(base: &str, tokens: &Value) -> Agent {
        Agent {
            http: client(),
            base: base.into(),
            agent: tokens["agent"].as_str().unwrap().into(),
            admin: tokens["admin"].as_str().unwrap().into(),
            called: BTreeSet::new(),
        }
    }

    async fn invoke(&mut self, tool: &str, args: Value) -> (u16, Value) {
        self.called.insert(tool.to_string());
        let r = self
            .http
            .post(format!("{}/v1/tools/{tool}/invoke", self.base))
            .bearer_auth(&self.agent)
            .json(&args)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    /// The result of a call that runs at once.
    async fn ok(&mut self, tool: &str, args: Value) -> Value {
        let (status, body) = self.invoke(tool, args).await;
        assert_eq!(status, 200, "{tool}: {body}");
        body["result"].clone()
    }

    /// The result of a call held for a reviewer, once the admin approved.
    async fn approved(&mut self, tool: &str, args: Value) -> (String, Value) {
        let (status, held) = self.invoke(tool, args).await;
        assert_eq!(status, 202, "{tool} waits for a reviewer: {held}");
        let id = held_id(&held);
        let r = self
            .http
            .post(format!("{}/v1/approvals/{id}/approve", self.base))
            .bearer_auth(&self.admin)
            .json(&json!({ "reason": "checked" }))
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_success(),
            "{tool}: approving: {}",
            r.text().await.unwrap()
        );
        let waited = self.get(&format!("/v1/approvals/{id}?wait=30")).await;
        assert!(waited["error"].is_null(), "{tool}: {waited}");
        let rule = held["approval"]["rule"].as_str().unwrap_or_default().to_string();
        (rule, waited["result"].clone())
    }

    /// `GET path` as the agent: the JSON body.
    async fn get(&self, path: &str) -> Value {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.agent)
            .send()
            .await
            .unwrap();
        r.json().await.unwrap()
    }

    async fn served(&self) -> BTreeSet<String> {
        let tools = self.get("/v1/tools").await;
        field(&tools, "name").into_iter().map(String::from).collect()
    }
}

/// Each tool of the reference connectors and the workflow, with arguments
/// from the sample systems' data, checking what each answers.
async fn call_every_tool(a: &mut Agent) {
    let customer = json!("C-1001");
    let email = a.ok("crm.get-customer", json!({ "customer-id": customer })).await["email"].clone();
    let found = a
        .ok("crm.find-customers", json!({ "query": { "by-email": email } }))
        .await;
    assert_eq!(found[0]["customer-id"], customer, "{found}");
    let order = a.ok("erp.get-order", json!({ "order-id": "SO-1001" })).await;
    assert_eq!(order["customer-id"], customer, "{order}");
    let orders = a
        .ok("erp.list-orders", json!({ "customer-id": customer, "limit": 5 }))
        .await;
    assert!(orders.as_array().is_some_and(|o| !o.is_empty()), "{orders}");
    let contract = a
        .ok("erp.get-contract", json!({ "contract-id": order["contract-id"] }))
        .await;
    assert!(contract["sla"]["grace-hours"].is_u64(), "{contract}");

    let shipments = a
        .ok("logistics.find-shipments", json!({ "order-reference": "SO-1001" }))
        .await;
    let parcel = json!({ "tracking-number": shipments[0]["tracking-number"] });
    let tracked = a.ok("logistics.track-shipment", parcel.clone()).await;
    assert_eq!(tracked["tracking-number"], parcel["tracking-number"], "{tracked}");
    let events = a.ok("logistics.list-events", parcel.clone()).await;
    assert!(events.as_array().is_some_and(|e| !e.is_empty()), "{events}");
    let delay = a.ok("logistics.report-delay", parcel).await;
    assert!(delay["hours-late"].is_u64(), "{delay}");

    let case = json!({ "customer-id": customer, "subject": "demo", "priority": "normal", "order-id": "SO-1001",
        "description": "where is my parcel", "idempotency-key": "demo-test-case" });
    let id = a.ok("crm.open-case", json!({ "case": case })).await["case-id"].clone();
    let noted = a
        .ok(
            "crm.add-note",
            json!({ "case-id": id, "author": "agent", "text": "looking" }),
        )
        .await;
    assert_eq!(noted["notes"].as_array().map(|n| n.len() >= 2), Some(true), "{noted}");
    let resolved = json!({ "case-id": id, "status": "resolved", "resolution": "found" });
    assert_eq!(a.ok("crm.set-case-status", resolved).await["status"], "resolved");
    let cases = a.ok("crm.list-cases", json!({ "customer-id": customer })).await;
    assert!(field(&cases, "case-id").contains(&id.as_str().unwrap()), "{cases}");

    // Under the operator's limit a voucher is issued at once; over it,
    // it waits for a reviewer (the rule the demo set).
    let voucher = |key: &str, minor: u32| {
        json!({ "request": { "idempotency-key": key, "customer-id": customer, "order-id": null, "valid-days": 30,
            "value": { "amount-minor": minor, "currency": "EUR" }, "reason": "demo" } })
    };
    let small = a.ok("coupon.issue-voucher", voucher("demo-test-small", 1500)).await["code"].clone();
    let valid = a
        .ok(
            "coupon.validate-voucher",
            json!({ "code": small, "customer-id": customer }),
        )
        .await;
    assert_eq!(valid["valid"], true, "{valid}");
    let listed = a.ok("coupon.list-vouchers", json!({ "customer-id": customer })).await;
    assert!(field(&listed, "code").contains(&small.as_str().unwrap()), "{listed}");
    let redeem = json!({ "code": small, "order-id": "SO-1001", "idempotency-key": "demo-test-redeem" });
    assert_eq!(a.ok("coupon.redeem-voucher", redeem).await["status"], "redeemed");
    let (rule, large) = a
        .approved("coupon.issue-voucher", voucher("demo-test-large", 8000))
        .await;
    assert_eq!(rule, "vouchers over 50.00");
    let revoke = json!({ "code": large["code"], "reason": "issued twice" });
    assert_eq!(a.ok("coupon.revoke-voucher", revoke).await["status"], "revoked");

    // A credit note is `risk = "high"` and named by no rule: it waits too.
    let credit = json!({ "order-id": "SO-1001", "amount": { "amount-minor": 500, "currency": "EUR" },
        "reason": "late", "idempotency-key": "demo-test-credit" });
    let (_, note) = a.approved("erp.create-credit-note", credit).await;
    assert_eq!(note["order-id"], "SO-1001", "{note}");

    let run = a
        .ok("late-parcel", json!({ "order-id": "SO-1001", "complaint": "late" }))
        .await;
    assert!(run["voucher"].as_str().is_some_and(|v| v.starts_with("V-")), "{run}");
}

/// The console signs the admin in and lists what the demo loaded.
async fn console_shows_the_plugins(base: &str, admin: &str) {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let signed = http
        .post(format!("{base}/console/sign-in"))
        .form(&[("token", admin)])
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), 303);
    let cookie = signed.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let page = http
        .get(format!("{base}/console"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    for plugin in ["crm", "erp", "logistics", "coupon", "late-parcel"] {
        assert!(html.contains(plugin), "the console's overview has no {plugin}");
    }
}

/// `serve`, the production command, over the same plugins and no
/// configuration: it starts no sample system (it listens on its own port
/// only), writes no grant, and the connectors have no upstream.
#[tokio::test(flavor = "multi_thread")]
async fn serve_starts_no_sample_systems() {
    let plugins = ["crm", "erp", "logistics", "coupon", "late-parcel"].map(|p| format!("plugins/{p}"));
    let server = ServerProcess::start("", &plugins.each_ref().map(String::as_str));
    let port = port_in(&server.base);
    assert_eq!(listening_ports(server.pid()), vec![port], "{}", server.log());

    let (status, body) = invoke(
        &server,
        AGENT_TOKEN,
        "crm.get-customer",
        json!({ "customer-id": "C-1001" }),
    )
    .await;
    assert_eq!(status, 500, "{body}");
    assert!(body.to_string().contains("base-url"), "{body}");
    let (status, body) = invoke(
        &server,
        AGENT_TOKEN,
        "late-parcel",
        json!({ "order-id": "SO-1001", "complaint": "late" }),
    )
    .await;
    assert_ne!(status, 200, "{body}");

    let mut files: Vec<String> = std::fs::read_dir(server.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    files.sort();
    assert_eq!(
        std::fs::read_to_string(server.dir.path().join("toolhost.toml")).unwrap(),
        ""
    );
    assert!(
        !files
            .iter()
            .any(|f| f == "demo" || f.contains("grants") || f.contains("upstreams")),
        "{files:?}"
    );
}

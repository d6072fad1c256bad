//! The REST API's OpenAPI document, against a real `toolhost serve`: what
//! it serves at `/openapi.json` is the copy kept in the repository
//! (host/openapi.json), is a valid OpenAPI 3.1 document (checked by
//! `openapi-spec-validator`), and matches the routes: every documented
//! operation is routed, and every route the router registers is
//! documented.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::{json, Value};
use toolhost_tests::*;

const REGENERATE: &str = "cargo run -p toolhost --example openapi > host/openapi.json";

/// `openapi-spec-validator` (PyPI), in a virtualenv under target/ made on
/// first use: it checks a document against the OpenAPI 3.1 schema and
/// resolves its references.
fn validator() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        python_venv("py-openapi", "openapi-spec-validator==0.9.0", "openapi_spec_validator")
            .join("bin/openapi-spec-validator")
    })
}

async fn served_document(server: &ServerProcess) -> String {
    // No token: the document describes the API and reveals nothing.
    let r = client()
        .get(server.url("/openapi.json"))
        .send()
        .await
        .expect("the server answers");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers().get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    r.text().await.expect("a text body")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_served_document_is_the_checked_in_one_and_valid_openapi_3_1() {
    let server = ServerProcess::start("", &[]);
    let served = served_document(&server).await;

    let kept_path = repo_root().join("host/openapi.json");
    let kept = std::fs::read_to_string(&kept_path).unwrap_or_default();
    if served != kept {
        let line = served
            .lines()
            .zip(kept.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| served.lines().count().min(kept.lines().count()));
        panic!(
            "host/openapi.json is not the document the host serves (they first differ at line {}: served {:?}, \
             kept {:?}); a handler's description changed without regenerating it. Run `{REGENERATE}` and commit \
             the file.",
            line + 1,
            served.lines().nth(line).unwrap_or("<end>"),
            kept.lines().nth(line).unwrap_or("<end>"),
        );
    }

    let document: Value = serde_json::from_str(&served).expect("the document is JSON");
    let version = document["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with("3.1"), "openapi is {version:?}, not 3.1");

    let scratch = Scratch::new("openapi");
    let file = scratch.path().join("openapi.json");
    std::fs::write(&file, &served).unwrap();
    let output = Command::new(validator())
        .arg(&file)
        .output()
        .expect("run the validator");
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && said.trim_end().ends_with(": OK"),
        "openapi-spec-validator refuses the document: {}{}",
        said.chars().take(2000).collect::<String>(),
        String::from_utf8_lossy(&output.stderr)
            .chars()
            .take(2000)
            .collect::<String>()
    );

    // The validator does refuse a broken document (a reference to nothing),
    // so its OK above means something.
    let mut broken = document.clone();
    broken["paths"]["/v1/tools"]["get"]["responses"]["401"] =
        serde_json::json!({"$ref": "#/components/responses/Nothing"});
    std::fs::write(&file, broken.to_string()).unwrap();
    let output = Command::new(validator())
        .arg(&file)
        .output()
        .expect("run the validator");
    assert!(!output.status.success(), "the validator took a dangling reference");
}

/// Whether `answer` is the router's own "no such route" (the fallback, or
/// the `/v1` catch-all) rather than a route's.
fn is_no_such_route(status: u16, body: &Value) -> bool {
    status == 404 && body["error"]["message"] == "no such route"
}

async fn call(server: &ServerProcess, method: &str, path: &str) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes()).expect("an HTTP method");
    let r = client()
        .request(method, server.url(path))
        .bearer_auth("not-a-token")
        .send()
        .await
        .expect("the server answers");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The paths `.route`, `.route_service`, `.nest` and `.nest_service` name
/// in `source`: routes registered without going through `routes!`.
fn plain_routes(source: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for call in [".route(", ".route_service(", ".nest(", ".nest_service("] {
        for (at, _) in source.match_indices(call) {
            let rest = source[at + call.len()..].trim_start();
            if let Some(literal) = rest.strip_prefix('"') {
                let end = literal.find('"').expect("a closed string");
                found.insert(literal[..end].to_string());
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn every_route_is_documented_and_every_documented_operation_is_routed() {
    // Every operation is called without a valid token, from one address:
    // more failures than an address may make by default before 429.
    let server = ServerProcess::start("[server]\nfailed-bearer-burst = 1000\n", &[]);
    let document: Value = serde_json::from_str(&served_document(&server).await).unwrap();
    let paths = document["paths"].as_object().expect("paths");

    // Every documented operation answers as a route, not as the fallback:
    // with a token that is not one, a /v1 route says 401; an unrouted
    // method would be 405, an unrouted path 404 "no such route".
    let mut operations = 0;
    for (path, item) in paths {
        let concrete = path
            .split('/')
            .map(|s| if s.starts_with('{') { "x" } else { s })
            .collect::<Vec<_>>()
            .join("/");
        for method in ["get", "put", "post", "delete", "patch"] {
            if item.get(method).is_none() {
                continue;
            }
            operations += 1;
            let (status, body) = call(&server, method, &concrete).await;
            assert!(
                !is_no_such_route(status, &body) && status != 405,
                "{} {path} is documented but not routed: {status} {body}",
                method.to_uppercase()
            );
            if path.starts_with("/v1/") || path == "/mcp" || path == "/metrics" {
                assert_eq!(
                    status,
                    401,
                    "{} {path} answered {status} {body} without a valid token",
                    method.to_uppercase()
                );
            }
        }
    }
    assert!(operations >= 30, "only {operations} operations documented");

    // The check can fail: an unknown path is the fallback, an undocumented
    // method on a documented path is 405.
    let (status, body) = call(&server, "get", "/v1/no-such-route").await;
    assert!(is_no_such_route(status, &body), "{status} {body}");
    assert_eq!(call(&server, "delete", "/v1/tools").await.0, 405);

    // The other way: a route registered with a plain `.route(...)` would
    // be served undocumented. The router registers REST routes only through
    // `routes!` (which carries each handler's description into the
    // document); the plain ones left are MCP's transport (documented as one
    // path) and the /v1 catch-all that answers "no such route".
    let router = std::fs::read_to_string(repo_root().join("host/src/server/api/mod.rs")).unwrap();
    assert!(
        router.contains("routes!("),
        "the router no longer registers through routes!"
    );
    let catch_all = "/v1/{*rest}";
    for path in plain_routes(&router) {
        assert!(
            path == catch_all || paths.contains_key(&path),
            "host/src/server/api/mod.rs registers {path:?} with a plain route, so it is not in the OpenAPI document: \
             register its handler with `.routes(routes!(handler))` and a #[utoipa::path] on the handler, then run \
             `{REGENERATE}`"
        );
    }
    let (status, body) = call(&server, "get", "/v1/plugins/x/nothing/here").await;
    assert!(is_no_such_route(status, &body), "the catch-all answers {status} {body}");

    // The console's pages are not part of the REST API, and not listed.
    assert!(paths.keys().all(|p| !p.starts_with("/console")));
}

/// The schema at `pointer` in `document`, with `$ref`s followed.
fn resolved<'a>(document: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let target = document
                .pointer(reference.trim_start_matches('#'))
                .unwrap_or_else(|| panic!("{reference} points at nothing"));
            resolved(document, target)
        }
        None => schema,
    }
}

/// Every success body is typed (the document itself aside): no 2xx JSON
/// response is a bare `{"type": "object"}`, and every operation that reads
/// a body says it may be too large (413).
#[tokio::test(flavor = "multi_thread")]
async fn every_success_body_is_typed_and_every_body_read_may_be_413() {
    let server = ServerProcess::start("", &[]);
    let document: Value = serde_json::from_str(&served_document(&server).await).unwrap();
    let mut untyped = Vec::new();
    let mut unbounded = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let name = format!("{} {path}", method.to_uppercase());
            let responses = operation["responses"].as_object().unwrap();
            for (status, response) in responses {
                let response = resolved(&document, response);
                let Some(schema) = response.pointer("/content/application~1json/schema") else {
                    continue;
                };
                let schema = resolved(&document, schema);
                let bare = schema.get("properties").is_none()
                    && schema.get("oneOf").is_none()
                    && schema.get("anyOf").is_none()
                    && schema.get("items").is_none()
                    && schema.get("additionalProperties").is_none();
                if status.starts_with('2') && bare && path != "/openapi.json" {
                    untyped.push(format!("{name} {status}: {schema}"));
                }
            }
            if operation.get("requestBody").is_some() && !responses.contains_key("413") {
                unbounded.push(name);
            }
        }
    }
    assert!(untyped.is_empty(), "untyped success bodies: {untyped:#?}");
    assert!(
        unbounded.is_empty(),
        "bodies read without a documented 413: {unbounded:?}"
    );
}

/// The limits the host enforces are in the document: page sizes, the
/// reason's length, the audit times' format, the keys' pattern, the
/// approval rules' bounds, and `additionalProperties: false` on the
/// bodies that refuse unknown fields.
#[tokio::test(flavor = "multi_thread")]
async fn the_enforced_limits_are_stated() {
    let server = ServerProcess::start("", &[]);
    let document: Value = serde_json::from_str(&served_document(&server).await).unwrap();
    let parameter = |path: &str, method: &str, name: &str| -> Value {
        document["paths"][path][method]["parameters"]
            .as_array()
            .and_then(|list| list.iter().find(|p| p["name"] == name))
            .map(|p| p["schema"].clone())
            .unwrap_or_else(|| panic!("{method} {path} has no parameter {name}"))
    };
    assert_eq!(parameter("/v1/audit", "get", "limit")["maximum"], 1000);
    assert_eq!(parameter("/v1/approvals", "get", "limit")["maximum"], 1000);
    assert_eq!(parameter("/v1/runs", "get", "limit")["maximum"], 500);
    for name in ["since", "until"] {
        let pattern = parameter("/v1/audit", "get", name)["pattern"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(pattern.contains("[T ]"), "{name}: {pattern}");
    }
    for name in ["Idempotency-Key", "X-Session-Id"] {
        let schema = parameter("/v1/tools/{tool}/invoke", "post", name);
        assert!(
            schema["pattern"].is_string() && schema["maxLength"] == 200,
            "{name}: {schema}"
        );
    }
    let schemas = &document["components"]["schemas"];
    let reason = &schemas["DecisionBody"]["properties"]["reason"];
    assert_eq!((&reason["minLength"], &reason["maxLength"]), (&json!(1), &json!(2048)));
    let rule = &schemas["RuleConfig"]["properties"];
    assert_eq!(
        (&rule["approvers"]["minimum"], &rule["approvers"]["maximum"]),
        (&json!(1), &json!(2))
    );
    assert_eq!(
        (&rule["sample"]["minimum"], &rule["sample"]["maximum"]),
        (&json!(0), &json!(1))
    );
    for body in ["DecisionBody", "Grant", "HttpGrant", "ApprovalConfig", "RuleConfig"] {
        assert_eq!(
            schemas[body]["additionalProperties"], false,
            "{body}: {}",
            schemas[body]
        );
    }
}

/// Every refusal is JSON in the API's error shape: a method a path does not
/// have (405, with `Allow`), no token (401, with `WWW-Authenticate:
/// Bearer`), and `/mcp`'s own refusals (406 for an `Accept` it cannot
/// answer, 400 for a missing session), each with its Content-Type.
#[tokio::test(flavor = "multi_thread")]
async fn every_refusal_is_json_with_its_headers() {
    let server = ServerProcess::start("", &[]);
    let error_kind = |r: reqwest::Response| async move {
        assert_eq!(
            r.headers().get("content-type").and_then(|v| v.to_str().ok()),
            Some("application/json"),
            "{r:?}"
        );
        let body: Value = r.json().await.expect("a JSON body");
        body["error"]["kind"].as_str().unwrap_or_default().to_string()
    };

    let r = client()
        .patch(server.url("/v1/tools"))
        .bearer_auth(AGENT_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET,HEAD");
    assert_eq!(error_kind(r).await, "method_not_allowed");

    let r = client().get(server.url("/v1/tools")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    assert_eq!(error_kind(r).await, "unauthorized");

    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let r = client()
        .post(server.url("/mcp"))
        .bearer_auth(AGENT_TOKEN)
        .header("accept", "text/html")
        .json(&initialize)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 406);
    assert_eq!(error_kind(r).await, "not_acceptable");

    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let r = client()
        .get(server.url("/mcp"))
        .bearer_auth(AGENT_TOKEN)
        .header("accept", "text/event-stream")
        .json(&list)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "{r:?}");
    assert_eq!(error_kind(r).await, "bad_request");
}

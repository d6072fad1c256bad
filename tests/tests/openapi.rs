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

use serde_json::Value;
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

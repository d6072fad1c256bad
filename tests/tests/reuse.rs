//! Opt-in instance reuse: only for a manifest that declares itself stateless
//! and a grant that allows it; never across tokens or sessions; an instance
//! is discarded after its allowed number of calls and after any trap.

use reqwest::StatusCode;
use serde_json::{json, Value};
use toolhost_tests::{client, ServerProcess, ADMIN_TOKEN, AGENT_TOKEN};

async fn counter(server: &ServerProcess, token: &str, session: &str) -> Value {
    let r = client()
        .post(server.url("/v1/tools/echo.counter/invoke"))
        .bearer_auth(token)
        .header("x-session-id", session)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json::<Value>().await.unwrap()["result"].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn fresh_instances_by_default() {
    let server = ServerProcess::start("", &["echo"]);
    for _ in 0..3 {
        assert_eq!(counter(&server, AGENT_TOKEN, "s1").await, 1);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_granted_stateless_plugin_reuses_per_token_and_session() {
    let server = ServerProcess::start("[plugins.echo]\nreuse-instances = 3\n", &["echo"]);
    // One caller: the same instance for three calls, then a new one.
    let seen: Vec<Value> = {
        let mut v = Vec::new();
        for _ in 0..4 {
            v.push(counter(&server, AGENT_TOKEN, "s1").await);
        }
        v
    };
    assert_eq!(seen, [1, 2, 3, 1]);
    // Another session of the same token, and another token: their own.
    assert_eq!(counter(&server, AGENT_TOKEN, "s2").await, 1);
    assert_eq!(counter(&server, ADMIN_TOKEN, "s1").await, 1);
    assert_eq!(counter(&server, AGENT_TOKEN, "s1").await, 2);

    // A trap discards the instance.
    let r = client()
        .post(server.url("/v1/tools/echo.crash/invoke"))
        .bearer_auth(AGENT_TOKEN)
        .header("x-session-id", "s1")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["kind"], "plugin_fault");
    assert_eq!(counter(&server, AGENT_TOKEN, "s1").await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_that_does_not_declare_itself_stateless_is_never_reused() {
    // The grant asks for reuse, but the manifest does not allow it.
    let server = ServerProcess::start_prepared("[plugins.echo]\nreuse-instances = 3\n", |plugins| {
        let dir = plugins.join("echo");
        toolhost_tests::copy_bundle(&toolhost_tests::guest("echo"), &dir);
        let manifest = std::fs::read_to_string(dir.join("connector.toml"))
            .unwrap()
            .replace("stateless = true", "stateless = false");
        std::fs::write(dir.join("connector.toml"), manifest).unwrap();
    });
    for _ in 0..3 {
        assert_eq!(counter(&server, AGENT_TOKEN, "s1").await, 1);
    }
}

//! Operators load, upgrade, sign and roll back connectors while the host
//! serves: through the plugins folder and the API, under load.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use toolhost_tests::{
    client, copy_bundle, echo_check, field, get_json, guest, invoke, named, netprobe_grant, put_grant, toolhost_bin,
    upload, upstream_with_slow, ServerProcess, ADMIN_TOKEN, AGENT_TOKEN,
};

fn echo_manifest(version: &str) -> String {
    std::fs::read_to_string(guest("echo").join("connector.toml"))
        .unwrap()
        .replace("version = \"1.0.0\"", &format!("version = \"{version}\""))
}

fn echo_wasm() -> Vec<u8> {
    std::fs::read(guest("echo").join("echo.wasm")).unwrap()
}

async fn plugin(server: &ServerProcess, name: &str) -> Option<Value> {
    let (_, plugins) = get_json(server, ADMIN_TOKEN, "/v1/plugins").await;
    named(&plugins, name).cloned()
}

async fn wait_for_version(server: &ServerProcess, name: &str, version: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if plugin(server, name).await.is_some_and(|p| p["version"] == version) {
            return;
        }
        assert!(Instant::now() < deadline, "{name} never reached {version}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn check(server: &ServerProcess) -> (u16, Value) {
    let (status, body) = echo_check(server, AGENT_TOKEN).await;
    (status.as_u16(), body)
}

const ROOMY: &str =
    "[server]\nrate-per-minute = 4000000000\n[limits]\nmax-concurrency = 64\n[plugins.echo]\nmax-concurrency = 64\n";

#[tokio::test(flavor = "multi_thread")]
async fn ten_upgrades_under_load_drop_no_call() {
    let server = ServerProcess::start_prepared(ROOMY, |plugins| copy_bundle(&guest("echo"), &plugins.join("echo")));
    let folder = server.dir.path().join("plugins/echo");
    let server = Arc::new(server);
    let stop = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<Vec<(u16, String)>>> = Arc::default();
    let mut load = Vec::new();
    for _ in 0..6 {
        let (server, stop, seen) = (server.clone(), stop.clone(), seen.clone());
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let (status, body) = check(&server).await;
                let version = body["plugin_version"].as_str().unwrap_or("?").to_string();
                seen.lock().unwrap().push((status, version));
            }
        }));
    }

    let mut versions = HashSet::from(["1.0.0".to_string()]);
    for k in 1..=10 {
        let version = format!("1.0.{k}");
        versions.insert(version.clone());
        if k % 2 == 1 {
            // Through the folder, written in place (the watcher must not
            // take a half-written file).
            std::fs::write(folder.join("connector.toml"), echo_manifest(&version)).unwrap();
        } else {
            let (status, body) = upload(&server, "echo", echo_manifest(&version), echo_wasm(), None).await;
            assert_eq!(status, 200, "{body}");
        }
        wait_for_version(&server, "echo", &version).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
        if k == 5 {
            // A bad bundle during load, both ways in: refused, old one serves.
            let (status, body) = upload(&server, "echo", echo_manifest("9.9.9"), b"\0asm garbage".to_vec(), None).await;
            assert_eq!(status, 422, "{body}");
            assert_eq!(body["error"]["kind"], "bundle_refused");
            std::fs::write(folder.join("connector.toml"), "name = \"echo\"\nversion = ").unwrap();
            tokio::time::sleep(Duration::from_millis(1200)).await;
            assert_eq!(plugin(&server, "echo").await.unwrap()["version"], version);
            std::fs::write(folder.join("connector.toml"), echo_manifest(&version)).unwrap();
            tokio::time::sleep(Duration::from_millis(700)).await;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.await.unwrap();
    }
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    assert!(seen.len() > 100, "only {} calls", seen.len());
    let failed: Vec<_> = seen.iter().filter(|(s, _)| *s != 200).collect();
    assert!(
        failed.is_empty(),
        "{} of {} calls failed: {:?}",
        failed.len(),
        seen.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(
        seen.iter().all(|(_, v)| versions.contains(v)),
        "a response from an unknown version"
    );
    let distinct: HashSet<&String> = seen.iter().map(|(_, v)| v).collect();
    assert!(distinct.len() >= 5, "load saw only {distinct:?}");

    // The trail has every load and both refusals.
    let (_, audit) = get_json(&server, ADMIN_TOKEN, "/v1/audit?tool=(plugin)%20echo&limit=100").await;
    let outcomes = field(&audit["records"], "outcome");
    assert!(
        outcomes.iter().filter(|o| **o == "refused").count() >= 2,
        "{outcomes:?}"
    );
    assert!(
        outcomes.iter().filter(|o| **o == "loaded").count() >= 11,
        "{outcomes:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rollback_returns_to_the_previous_version() {
    let mut server = ServerProcess::start_prepared("", |plugins| copy_bundle(&guest("echo"), &plugins.join("echo")));
    for v in ["1.1.0", "1.2.0"] {
        assert_eq!(
            upload(&server, "echo", echo_manifest(v), echo_wasm(), None).await.0,
            200
        );
    }
    let (_, history) = get_json(&server, ADMIN_TOKEN, "/v1/plugins/echo/versions").await;
    let listed = field(&history["versions"], "version");
    assert_eq!(listed, ["1.0.0", "1.1.0", "1.2.0"]);

    let rollback = || {
        client()
            .post(server.url("/v1/plugins/echo/rollback"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
    };
    let r = rollback().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["version"], "1.1.0");
    assert_eq!(check(&server).await.1["plugin_version"], "1.1.0");
    assert_eq!(rollback().await.unwrap().status(), 200);
    assert_eq!(check(&server).await.1["plugin_version"], "1.0.0");
    let r = rollback().await.unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["kind"], "no_previous_version");
    // The history keeps every version, those rolled back from marked so.
    let (_, history) = get_json(&server, ADMIN_TOKEN, "/v1/plugins/echo/versions").await;
    assert_eq!(field(&history["versions"], "version"), ["1.0.0", "1.1.0", "1.2.0"]);
    let marked: Vec<bool> = history["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["rolled_back"].is_string())
        .collect();
    assert_eq!(marked, [false, true, true], "{history}");
    // The next upload is a new entry, and a rollback from it skips the
    // versions rolled back from.
    assert_eq!(
        upload(&server, "echo", echo_manifest("1.3.0"), echo_wasm(), None)
            .await
            .0,
        200
    );
    assert_eq!(rollback().await.unwrap().status(), 200);
    assert_eq!(check(&server).await.1["plugin_version"], "1.0.0");
    let r = client()
        .post(server.url("/v1/plugins/nope/rollback"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // What the API installed is what a restart serves: the rolled-back echo,
    // and a plugin that only ever came in by upload.
    let thief = guest("secret-thief");
    let manifest = std::fs::read_to_string(thief.join("connector.toml")).unwrap();
    let wasm = std::fs::read(thief.join("secret-thief.wasm")).unwrap();
    assert_eq!(upload(&server, "secret-thief", manifest, wasm, None).await.0, 200);
    server.restart();
    assert_eq!(check(&server).await.1["plugin_version"], "1.0.0");
    assert!(plugin(&server, "secret-thief").await.is_some());
}

fn toolhost(args: &[&str], cwd: &Path) -> std::process::Output {
    std::process::Command::new(toolhost_bin())
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn signatures_are_required_when_the_operator_says_so() {
    let keys = toolhost_tests::Scratch::new("keys");
    let out = toolhost(&["plugin", "keygen", "--out", "vendor.key"], keys.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let public = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(public.len(), 64);
    let config = format!("[signing]\nrequire = true\ntrusted-keys = [\"{public}\"]\n");

    // Unsigned in the folder: refused at start, nothing serves.
    let server = ServerProcess::start_prepared(&config, |plugins| copy_bundle(&guest("echo"), &plugins.join("echo")));
    assert!(plugin(&server, "echo").await.is_none());
    assert_eq!(check(&server).await.0, 404);

    // Signed in place: the watcher loads it.
    let folder = server.dir.path().join("plugins/echo");
    let key = keys.path().join("vendor.key");
    let out = toolhost(
        &[
            "plugin",
            "sign",
            folder.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ],
        keys.path(),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = toolhost(
        &["plugin", "verify", folder.to_str().unwrap(), "--public-key", &public],
        keys.path(),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let deadline = Instant::now() + Duration::from_secs(20);
    while plugin(&server, "echo").await.is_none() {
        assert!(Instant::now() < deadline, "the signed bundle was not loaded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(plugin(&server, "echo").await.unwrap()["signed_by"], public.as_str());
    assert_eq!(check(&server).await.0, 200);

    // Uploads: unsigned refused; signed accepted; a signed component with a
    // changed manifest refused.
    let (status, body) = upload(&server, "echo", echo_manifest("2.0.0"), echo_wasm(), None).await;
    assert_eq!(status, 422);
    assert!(
        body["error"]["message"].as_str().unwrap().contains("unsigned"),
        "{body}"
    );
    let signature = std::fs::read_to_string(folder.join("connector.sig")).unwrap();
    let manifest = std::fs::read_to_string(folder.join("connector.toml")).unwrap();
    let (status, _) = upload(&server, "echo", manifest.clone(), echo_wasm(), Some(signature.clone())).await;
    assert_eq!(status, 200);
    let (status, body) = upload(
        &server,
        "echo",
        manifest.replace("1.0.0", "1.0.1"),
        echo_wasm(),
        Some(signature),
    )
    .await;
    assert_eq!(status, 422);
    assert!(
        body["error"]["message"].as_str().unwrap().contains("does not match"),
        "{body}"
    );
    let (_, other) = toolhost_signing_keypair(&keys);
    let out = toolhost(
        &["plugin", "verify", folder.to_str().unwrap(), "--public-key", &other],
        keys.path(),
    );
    assert!(!out.status.success());
    assert_eq!(check(&server).await.0, 200);
}

fn toolhost_signing_keypair(dir: &toolhost_tests::Scratch) -> (String, String) {
    let out = toolhost(&["plugin", "keygen", "--out", "other.key"], dir.path());
    (
        dir.path().join("other.key").display().to_string(),
        String::from_utf8(out.stdout).unwrap().trim().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pinned_digest_refuses_other_components() {
    let config = format!("[plugins.echo]\ndigest = \"{}\"\n", "0".repeat(64));
    let server = ServerProcess::start(&config, &["echo"]);
    assert!(plugin(&server, "echo").await.is_none());
    let (_, audit) = get_json(&server, ADMIN_TOKEN, "/v1/audit?outcome=refused").await;
    assert!(
        audit["records"][0]["error"].as_str().unwrap().contains("pinned digest"),
        "{audit}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn restarts_use_the_compile_cache_and_rebuild_a_corrupt_entry() {
    // Its own cache, not the one the test servers share.
    let config = "[server]\ncompile-cache-dir = \"data/compile-cache\"\n";
    let mut server = ServerProcess::start(config, &["echo", "plugins/coupon"]);
    assert_eq!(plugin(&server, "echo").await.unwrap()["compiled"], "compiled");
    server.restart();
    for name in ["echo", "coupon"] {
        assert_eq!(plugin(&server, name).await.unwrap()["compiled"], "cache", "{name}");
    }
    // Flip bytes in every cache entry: detected, recompiled, serving.
    for entry in std::fs::read_dir(server.dir.path().join("data/compile-cache")).unwrap() {
        let path = entry.unwrap().path();
        let mut bytes = std::fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n / 2] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
    }
    server.restart();
    assert_eq!(plugin(&server, "echo").await.unwrap()["compiled"], "compiled");
    assert_eq!(check(&server).await.0, 200);
    server.restart();
    assert_eq!(plugin(&server, "echo").await.unwrap()["compiled"], "cache");
}

#[tokio::test(flavor = "multi_thread")]
async fn unloading_waits_for_calls_in_flight_and_a_removed_folder_unloads() {
    let upstream = upstream_with_slow(Duration::from_millis(1500)).await;
    let config = netprobe_grant(upstream);
    let server = ServerProcess::start_prepared(&config, |plugins| {
        copy_bundle(&guest("netprobe"), &plugins.join("netprobe"));
        copy_bundle(&guest("echo"), &plugins.join("echo"));
    });
    // A call that takes 1.5 s upstream is in flight when DELETE comes.
    let slow = tokio::spawn(
        client()
            .post(server.url("/v1/tools/netprobe.fetch/invoke"))
            .bearer_auth(AGENT_TOKEN)
            .json(&json!({ "method": "GET", "url": format!("http://127.0.0.1:{}/slow", upstream.port()), "host-header": null }))
            .send(),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let r = client()
        .delete(server.url("/v1/plugins/netprobe"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["drained"], true);
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "DELETE returned before the call finished"
    );
    let finished = slow.await.unwrap().unwrap();
    assert_eq!(finished.status(), 200);
    assert_eq!(finished.json::<Value>().await.unwrap()["result"], 200);
    let r = client()
        .post(server.url("/v1/tools/netprobe.fetch/invoke"))
        .bearer_auth(AGENT_TOKEN)
        .json(&json!({ "method": "GET", "url": "http://127.0.0.1:1/", "host-header": null }))
        .send()
        .await
        .unwrap();
    let (_, audit) = get_json(&server, ADMIN_TOKEN, "/v1/audit?limit=20").await;
    assert_eq!(r.status(), 404, "{audit:#}");

    std::fs::remove_dir_all(server.dir.path().join("plugins/echo")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while plugin(&server, "echo").await.is_some() {
        assert!(Instant::now() < deadline, "removing the folder did not unload echo");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_component_that_does_not_fit_its_world_is_refused() {
    let server = ServerProcess::start("", &["echo"]);
    let wrong = echo_manifest("2.0.0").replace(
        "world = \"toolhost-test:echo/echo-guest\"",
        "world = \"coupon-connector\"",
    );
    let (status, body) = upload(&server, "echo", wrong, echo_wasm(), None).await;
    assert_eq!(status, 422);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("does not export toolhost:connector/coupon"),
        "{body}"
    );
    let (status, body) = upload(&server, "other", echo_manifest("2.0.0"), echo_wasm(), None).await;
    assert_eq!(status, 422);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("names plugin \"echo\""),
        "{body}"
    );
    let (status, _) = upload(&server, "echo", "name = \"echo\"".into(), echo_wasm(), None).await;
    assert_eq!(status, 422);
    assert_eq!(plugin(&server, "echo").await.unwrap()["version"], "1.0.0");
    assert_eq!(check(&server).await.0, 200);
}

/// An upload and a grant change at the same moment, again and again: the
/// grant change must never put back the version the upload replaced, and
/// what serves, what the history says last and the grant in force agree.
#[tokio::test(flavor = "multi_thread")]
async fn an_upload_racing_a_grant_change_is_never_undone() {
    let server = ServerProcess::start_prepared(ROOMY, |plugins| copy_bundle(&guest("echo"), &plugins.join("echo")));
    for round in 1..=40u32 {
        let version = format!("1.0.{round}");
        let grant = json!({ "max-concurrency": 64, "timeout-ms": 1000 + round });
        let set_grant = async {
            // Sweep the grant change across the upload's time in flight.
            tokio::time::sleep(Duration::from_micros(u64::from(round % 10) * 1500)).await;
            put_grant(&server, "echo", &grant).await.0
        };
        let (uploaded, granted) = tokio::join!(
            upload(&server, "echo", echo_manifest(&version), echo_wasm(), None),
            set_grant
        );
        assert_eq!((uploaded.0, granted), (200, 200), "round {round}: {}", uploaded.1);

        let serving = plugin(&server, "echo").await.expect("echo is loaded");
        assert_eq!(serving["version"], version, "round {round}: the upload was undone");
        assert_eq!(
            serving["effective_grant"]["timeout_ms"],
            1000 + round,
            "round {round}: the grant was lost"
        );
        let (_, history) = get_json(&server, ADMIN_TOKEN, "/v1/plugins/echo/versions").await;
        let last = history["versions"].as_array().and_then(|v| v.last()).cloned();
        assert_eq!(
            last.map(|v| v["version"].clone()),
            Some(json!(version)),
            "round {round}"
        );
    }
}

/// Wait until `name` is loaded (`true`) or not (`false`).
async fn wait_loaded(server: &ServerProcess, name: &str, loaded: bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while plugin(server, name).await.is_some() != loaded {
        assert!(Instant::now() < deadline, "{name} never became loaded={loaded}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The plugins folder agrees with what serves: DELETE takes the folder
/// with it (so a restart does not bring the plugin back); deleting the
/// folder of a plugin that came in through the API unloads it; renaming a
/// plugin's folder keeps it serving.
#[tokio::test(flavor = "multi_thread")]
async fn the_plugins_folder_and_what_serves_agree() {
    let mut server = ServerProcess::start_prepared("", |plugins| {
        copy_bundle(&guest("echo"), &plugins.join("echo"));
        copy_bundle(&guest("spin"), &plugins.join("spin"));
    });
    let plugins = server.dir.path().join("plugins");

    // DELETE, then restart.
    let r = client()
        .delete(server.url("/v1/plugins/spin"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(!plugins.join("spin").exists(), "DELETE left the folder");
    server.restart();
    assert!(
        plugin(&server, "spin").await.is_none(),
        "spin came back after a restart"
    );

    // An upload writes a folder; deleting that folder unloads the plugin.
    let thief = guest("secret-thief");
    let manifest = std::fs::read_to_string(thief.join("connector.toml")).unwrap();
    let wasm = std::fs::read(thief.join("secret-thief.wasm")).unwrap();
    assert_eq!(upload(&server, "secret-thief", manifest, wasm, None).await.0, 200);
    let folder = plugins.join("secret-thief");
    assert!(folder.join("connector.toml").is_file());
    // Give the watcher time to see the folder the upload wrote.
    tokio::time::sleep(Duration::from_secs(1)).await;
    std::fs::remove_dir_all(&folder).unwrap();
    wait_loaded(&server, "secret-thief", false).await;

    // A renamed folder: still serving once the watcher has settled both.
    // A folder dropped in after the rename is settled no sooner, so once it
    // serves, the rename has been seen.
    std::fs::rename(plugins.join("echo"), plugins.join("echo-renamed")).unwrap();
    copy_bundle(&guest("spin"), &plugins.join("spin"));
    wait_loaded(&server, "spin", true).await;
    assert!(
        plugin(&server, "echo").await.is_some(),
        "renaming the folder unloaded echo"
    );
    assert_eq!(check(&server).await.0, 200);
    // The watcher knows echo lives in the renamed folder: removing that one
    // unloads it (a watcher that ignored the rename would not know).
    std::fs::remove_dir_all(plugins.join("echo-renamed")).unwrap();
    wait_loaded(&server, "echo", false).await;
}

/// An upload whose bundle cannot be kept (here: the version archive's
/// place is taken by a file) is refused with the reason, and does not
/// serve, rather than serving with only a line in the log.
#[tokio::test(flavor = "multi_thread")]
async fn an_upload_that_cannot_be_kept_is_refused_not_served() {
    let server = ServerProcess::start("", &["echo"]);
    let archive = server.dir.path().join("data/bundles/secret-thief");
    std::fs::create_dir_all(archive.parent().unwrap()).unwrap();
    std::fs::write(&archive, b"in the way").unwrap();
    let thief = guest("secret-thief");
    let manifest = std::fs::read_to_string(thief.join("connector.toml")).unwrap();
    let wasm = std::fs::read(thief.join("secret-thief.wasm")).unwrap();
    let (status, body) = upload(&server, "secret-thief", manifest, wasm, None).await;
    assert_eq!(status, 422, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("version history"), "{message}");
    assert!(
        plugin(&server, "secret-thief").await.is_none(),
        "it serves all the same"
    );
}

/// An upload whose bundle cannot be written into the plugins folder (here
/// the place it is written aside in is taken by a file) is refused, and
/// leaves no trace that would contradict what serves: the version history
/// is put back as it was, and a restart does not bring the bundle back.
#[tokio::test(flavor = "multi_thread")]
async fn an_upload_the_folder_cannot_take_leaves_the_history_as_it_was() {
    let mut server = ServerProcess::start_prepared(ROOMY, |plugins| copy_bundle(&guest("echo"), &plugins.join("echo")));
    let plugins = server.dir.path().join("plugins");
    let before = get_json(&server, ADMIN_TOKEN, "/v1/plugins/echo/versions").await.1["versions"].clone();
    std::fs::write(plugins.join(format!(".incoming-echo-{}", server.pid())), b"in the way").unwrap();
    let (status, body) = upload(&server, "echo", echo_manifest("9.0.0"), echo_wasm(), None).await;
    assert_eq!(status, 422, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("plugins folder"), "{message}");

    let serving = plugin(&server, "echo").await.expect("echo still serves")["version"].clone();
    assert_ne!(serving, "9.0.0");
    let after = get_json(&server, ADMIN_TOKEN, "/v1/plugins/echo/versions").await.1["versions"].clone();
    assert_eq!(after, before, "the history names a version that never served");
    let folder = std::fs::read_to_string(plugins.join("echo/connector.toml")).unwrap();
    assert!(!folder.contains("9.0.0"), "{folder}");

    server.restart();
    assert_eq!(plugin(&server, "echo").await.expect("echo serves")["version"], serving);
}

/// Rollbacks racing uploads: whatever order they land in, what serves, the
/// history's last entry and the plugins folder name the same version.
#[tokio::test(flavor = "multi_thread")]
async fn rollbacks_racing_uploads_leave_serving_history_and_folder_agreeing() {
    let server = ServerProcess::start_prepared(ROOMY, |plugins| copy_bundle(&guest("echo"), &plugins.join("echo")));
    assert_eq!(
        upload(&server, "echo", echo_manifest("1.1.0"), echo_wasm(), None)
            .await
            .0,
        200
    );
    for round in 1..=15u32 {
        let rollback = async {
            tokio::time::sleep(Duration::from_micros(u64::from(round % 5) * 2000)).await;
            client()
                .post(server.url("/v1/plugins/echo/rollback"))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        };
        let version = format!("2.0.{round}");
        let (uploaded, rolled) = tokio::join!(
            upload(&server, "echo", echo_manifest(&version), echo_wasm(), None),
            rollback
        );
        assert_eq!(uploaded.0, 200, "round {round}: {}", uploaded.1);
        assert!([200, 409].contains(&rolled), "round {round}: rollback {rolled}");

        let serving = plugin(&server, "echo").await.expect("echo is loaded")["version"].clone();
        let (_, history) = get_json(&server, ADMIN_TOKEN, "/v1/plugins/echo/versions").await;
        // What serves is the newest entry not rolled back from.
        let last = history["versions"]
            .as_array()
            .and_then(|v| v.iter().rev().find(|e| e["rolled_back"].is_null()))
            .map(|v| v["version"].clone());
        assert_eq!(last, Some(serving.clone()), "round {round}: history {history}");
        let folder = std::fs::read_to_string(server.dir.path().join("plugins/echo/connector.toml")).unwrap();
        assert!(
            folder.contains(&format!("version = {serving}")),
            "round {round}: serving {serving}, folder has\n{folder}"
        );
    }
}

/// A component that exports the contract's `crm` interface by name but not
/// its functions with their types (here one function, of other types; the
/// rest missing) is refused for the world its manifest names, with the
/// function named, and never serves.
#[tokio::test(flavor = "multi_thread")]
async fn a_component_with_the_worlds_names_but_other_types_is_refused() {
    let server = ServerProcess::start("", &["echo"]);
    let bundle = guest("crm-mismatch");
    let manifest = std::fs::read_to_string(bundle.join("connector.toml")).unwrap();
    let wasm = std::fs::read(bundle.join("crm-mismatch.wasm")).unwrap();
    let (status, body) = upload(&server, "crm-mismatch", manifest, wasm, None).await;
    assert_eq!(status, 422, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("crm-connector"), "{message}");
    assert!(message.contains("toolhost:connector/crm@0.1.0"), "{message}");
    assert!(
        message.contains("find-customers"),
        "the first function it lacks: {message}"
    );
    assert!(plugin(&server, "crm-mismatch").await.is_none());
}

/// Folders that an interrupted write left in the plugins folder (a bundle
/// written aside, the folder it was to replace moved aside) are never
/// loaded as plugins: a restart puts a plugin's moved-aside folder back
/// when nothing took its place, and removes the rest.
#[tokio::test(flavor = "multi_thread")]
async fn folders_left_by_an_interrupted_write_are_not_plugins() {
    let mut server = ServerProcess::start_prepared("", |plugins| {
        copy_bundle(&guest("echo"), &plugins.join("echo"));
        copy_bundle(&guest("spin"), &plugins.join("spin"));
    });
    let plugins = server.dir.path().join("plugins");
    server.crash();
    // An upgrade of echo written aside, never renamed into place.
    copy_bundle(&guest("echo"), &plugins.join(".incoming-echo-1"));
    std::fs::write(plugins.join(".incoming-echo-1/connector.toml"), echo_manifest("9.0.0")).unwrap();
    // A new plugin's upload, cut off before it was renamed into place.
    copy_bundle(&guest("secret-thief"), &plugins.join(".incoming-secret-thief-2"));
    // spin's folder moved aside, with nothing yet in its place.
    std::fs::rename(plugins.join("spin"), plugins.join(".retired-spin-3")).unwrap();
    server.start_again();

    assert_eq!(plugin(&server, "echo").await.expect("echo serves")["version"], "1.0.0");
    assert!(
        plugin(&server, "secret-thief").await.is_none(),
        "a half-done upload was loaded"
    );
    assert!(
        plugin(&server, "spin").await.is_some(),
        "spin's folder was not put back"
    );
    assert!(plugins.join("spin/connector.toml").is_file());
    let hidden: Vec<String> = std::fs::read_dir(&plugins)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(hidden.is_empty(), "left behind: {hidden:?}");
    assert_eq!(check(&server).await.0, 200);
}

/// What serves, the history's last entry and the folder's manifest, once
/// the watcher has had time to settle.
async fn settled_agreement(server: &ServerProcess, name: &str, round: u32) -> String {
    let manifest = server.dir.path().join(format!("plugins/{name}/connector.toml"));
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        // The watcher waits 400 ms for a folder to settle, then loads.
        tokio::time::sleep(Duration::from_millis(600)).await;
        let serving = plugin(server, name).await.expect("it serves")["version"].clone();
        let (_, history) = get_json(server, ADMIN_TOKEN, &format!("/v1/plugins/{name}/versions")).await;
        let last = history["versions"]
            .as_array()
            .and_then(|v| v.last())
            .map(|v| v["version"].clone());
        let folder = std::fs::read_to_string(&manifest).unwrap_or_default();
        let agree = last.as_ref() == Some(&serving) && folder.contains(&format!("version = {serving}"));
        if agree {
            return serving.as_str().unwrap_or_default().to_string();
        }
        assert!(
            Instant::now() < deadline,
            "round {round}: serving {serving}, history ends {last:?}, folder has\n{folder}"
        );
    }
}

/// The watcher and the API on one name: the folder rewritten in place
/// while an upload of another version is in flight. Whichever lands last,
/// once the watcher has settled what serves, the history and the folder
/// name one version, one of the two written.
#[tokio::test(flavor = "multi_thread")]
async fn the_watcher_and_the_api_on_one_name_agree() {
    let server = ServerProcess::start_prepared(ROOMY, |plugins| copy_bundle(&guest("echo"), &plugins.join("echo")));
    let manifest = server.dir.path().join("plugins/echo/connector.toml");
    for round in 1..=10u32 {
        let (by_folder, by_api) = (format!("3.{round}.1"), format!("3.{round}.2"));
        let write = async {
            tokio::time::sleep(Duration::from_micros(u64::from(round % 5) * 3000)).await;
            std::fs::write(&manifest, echo_manifest(&by_folder)).unwrap();
        };
        let (uploaded, ()) = tokio::join!(
            upload(&server, "echo", echo_manifest(&by_api), echo_wasm(), None),
            write
        );
        assert_eq!(uploaded.0, 200, "round {round}: {}", uploaded.1);
        let agreed = settled_agreement(&server, "echo", round).await;
        assert!(
            agreed == by_folder || agreed == by_api,
            "round {round}: {agreed} was never written"
        );
    }
    assert_eq!(check(&server).await.0, 200);
}

/// `wasm` with a custom section appended: the same code under another
/// digest, so the host must compile it afresh (the cache is by digest).
fn recompiled(wasm: &[u8], tag: u32) -> Vec<u8> {
    let name = b"toolhost-test";
    let payload = tag.to_le_bytes();
    let size = 1 + name.len() + payload.len();
    let mut out = wasm.to_vec();
    out.push(0); // custom section
    out.push(u8::try_from(size).unwrap());
    out.push(u8::try_from(name.len()).unwrap());
    out.extend_from_slice(name);
    out.extend_from_slice(&payload);
    out
}

/// A grant revoked while an upload compiles (a component the cache has
/// never seen, so the compile takes a while): the revocation holds for the
/// version the upload brings in, and for every one after it.
#[tokio::test(flavor = "multi_thread")]
async fn a_grant_revoked_during_a_cold_compile_holds_for_the_new_version() {
    let upstream = upstream_with_slow(Duration::from_millis(10)).await;
    let server = ServerProcess::start(&netprobe_grant(upstream), &["echo", "netprobe"]);
    let bundle = guest("netprobe");
    let manifest = std::fs::read_to_string(bundle.join("connector.toml")).unwrap();
    let wasm = std::fs::read(bundle.join("netprobe.wasm")).unwrap();
    let fetch = json!({ "method": "GET", "url": format!("http://{upstream}/ok"), "host-header": null });
    let granted = json!({ "http": [{ "origin": format!("http://{upstream}") }] });
    let revoked = json!({ "http": [] });
    for round in 1..=8u32 {
        assert_eq!(put_grant(&server, "netprobe", &granted).await.0, 200);
        let (status, body) = invoke(&server, AGENT_TOKEN, "netprobe.fetch", fetch.clone()).await;
        assert_eq!(status, 200, "round {round}: granted, yet {body}");

        let version = format!("1.{round}.0");
        let revoke = async {
            // Into the compile, which takes far longer than this.
            tokio::time::sleep(Duration::from_millis(5 + u64::from(round) * 3)).await;
            put_grant(&server, "netprobe", &revoked).await.0
        };
        let (uploaded, revoked_status) = tokio::join!(
            upload(
                &server,
                "netprobe",
                manifest.replace("version = \"1.0.0\"", &format!("version = \"{version}\"")),
                recompiled(&wasm, round),
                None
            ),
            revoke
        );
        assert_eq!(
            (uploaded.0, revoked_status),
            (200, 200),
            "round {round}: {}",
            uploaded.1
        );
        let serving = plugin(&server, "netprobe").await.expect("netprobe serves");
        assert_eq!(serving["version"], version.as_str(), "round {round}");
        assert_eq!(
            serving["effective_grant"]["http"],
            json!([]),
            "round {round}: the revocation was lost"
        );
        let (status, body) = invoke(&server, AGENT_TOKEN, "netprobe.fetch", fetch.clone()).await;
        assert_eq!(status, 502, "round {round}: revoked, yet {body}");
    }
}

/// One call sees one version of its tool (issue 31). While calls of
/// `echo.check` stream, an upload raises the tool's risk to high (so the
/// rules hold every call of it) and marks its `message` secret. Every
/// call's record must be held and redacted exactly as the version that
/// served it requires: none runs on the new version without its hold, none
/// of the new version is recorded unredacted, none of the old is held. Each
/// round sweeps the upload a little further across the calls in flight.
#[tokio::test(flavor = "multi_thread")]
async fn a_call_racing_an_upgrade_is_held_and_redacted_as_its_version_requires() {
    let server = Arc::new(ServerProcess::start_prepared(ROOMY, |plugins| {
        copy_bundle(&guest("echo"), &plugins.join("echo"))
    }));
    let secret = "secret-fields = [\"message\"]";
    let plain = |version: &str| echo_manifest(version).replace(secret, "");
    let guarded = |version: &str| echo_manifest(version).replace(secret, &format!("{secret}\nrisk = \"high\""));
    for round in 1..=12u32 {
        let (status, body) = upload(&server, "echo", plain(&format!("1.0.{round}")), echo_wasm(), None).await;
        assert_eq!(status, 200, "round {round}: {body}");
        let stop = Arc::new(AtomicBool::new(false));
        let callers: Vec<_> = (0..12)
            .map(|caller| {
                let (server, stop) = (server.clone(), stop.clone());
                tokio::spawn(async move {
                    for n in 0..40 {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let message = format!("told-{round}-{caller}-{n}");
                        let args = json!({ "ok": true, "message": message });
                        let (status, body) = invoke(&server, AGENT_TOKEN, "echo.check", args).await;
                        assert!(status == 200 || status == 202, "round {round}: {status} {body}");
                    }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_micros(u64::from(round % 6) * 2000)).await;
        let (status, body) = upload(&server, "echo", guarded(&format!("2.0.{round}")), echo_wasm(), None).await;
        assert_eq!(status, 200, "round {round}: {body}");
        stop.store(true, Ordering::Relaxed);
        for caller in callers {
            caller.await.unwrap();
        }
    }

    let (mut ran, mut held, mut before) = (0, 0, String::new());
    loop {
        let page = format!("/v1/audit?tool=echo.check&limit=1000{before}");
        let (_, body) = get_json(&server, ADMIN_TOKEN, &page).await;
        for record in body["records"].as_array().unwrap() {
            let (version, outcome) = (record["plugin_version"].as_str().unwrap_or(""), &record["outcome"]);
            let message = &record["arguments"]["message"];
            if version.starts_with("2.") {
                assert_eq!(
                    outcome, "held",
                    "a call ran on the guarded version without its hold: {record}"
                );
                assert_eq!(
                    message, "[redacted]",
                    "the guarded version's record is unredacted: {record}"
                );
                held += 1;
            } else if version.starts_with("1.0.") && version != "1.0.0" {
                assert_eq!(outcome, "ok", "a call of the plain version was held: {record}");
                assert_ne!(
                    message, "[redacted]",
                    "the plain version's record is redacted: {record}"
                );
                ran += 1;
            }
        }
        match body["next"].as_str() {
            Some(next) => before = format!("&before={next}"),
            None => break,
        }
    }
    assert!(ran > 0 && held > 0, "the race was not run: {ran} ran, {held} held");
}

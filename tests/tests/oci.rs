//! Bundles through a real OCI registry (Debian's docker-registry on
//! 127.0.0.1): `toolhost plugin push` and `pull`, and `[sources]` pulled by
//! `toolhost serve` at start, pinned by digest, and still checked like any
//! other bundle (signature, the operator's digest pin) when they load.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use toolhost_tests::registry::Registry;
use toolhost_tests::{copy_bundle, get_json, guest, invoke, named, toolhost_bin, Scratch, ServerProcess};
use toolhost_tests::{ADMIN_TOKEN, AGENT_TOKEN};

fn toolhost(args: &[&str], dir: &Path) -> Output {
    std::process::Command::new(toolhost_bin())
        .args(args)
        .current_dir(dir)
        .env_remove("TOOLHOST_CONFIG")
        .env_remove("TOOLHOST_PLUGINS_DIR")
        .env_remove("TOOLHOST_DATA_DIR")
        .env_remove("TOOLHOST_REGISTRY_USER")
        .env_remove("TOOLHOST_REGISTRY_PASSWORD")
        .output()
        .expect("run toolhost")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "toolhost failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A vendor's key pair in `dir`: the private key file and the public key.
fn keygen(dir: &Path) -> (PathBuf, String) {
    let out = toolhost(&["plugin", "keygen", "--out", "vendor.key"], dir);
    (dir.join("vendor.key"), ok(&out).trim().to_string())
}

/// The echo test connector at `version`, signed with `key`, in `dir`.
fn signed_echo(dir: &Path, key: &Path, version: &str) -> PathBuf {
    copy_bundle(&guest("echo"), dir);
    let manifest = std::fs::read_to_string(dir.join("connector.toml")).unwrap();
    std::fs::write(
        dir.join("connector.toml"),
        manifest.replace("version = \"1.0.0\"", &format!("version = \"{version}\"")),
    )
    .unwrap();
    ok(&toolhost(
        &["plugin", "sign", dir.to_str().unwrap(), "--key", key.to_str().unwrap()],
        dir,
    ));
    dir.to_path_buf()
}

/// `toolhost plugin push DIR REF`: the digest and the pinned reference it prints.
fn push(dir: &Path, reference: &str) -> (String, String) {
    let out = ok(&toolhost(&["plugin", "push", dir.to_str().unwrap(), reference], dir));
    let mut lines = out.lines();
    let digest = lines.next().expect("a digest line").to_string();
    let pinned = lines.next().expect("a reference line").to_string();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "not a digest: {digest}"
    );
    (digest, pinned)
}

/// Every file in `dir`, by name.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&path).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

async fn plugin(server: &ServerProcess, name: &str) -> Option<Value> {
    let (_, plugins) = get_json(server, ADMIN_TOKEN, "/v1/plugins").await;
    named(&plugins, name).cloned()
}

async fn echo_status(server: &ServerProcess) -> (u16, Value) {
    let (status, body) = invoke(
        server,
        AGENT_TOKEN,
        "echo.check",
        json!({ "ok": true, "message": "from the registry" }),
    )
    .await;
    (status.as_u16(), body)
}

/// A configuration that requires signatures by `public`, with `extra` after.
fn signed_config(public: &str, extra: &str) -> String {
    format!("[signing]\nrequire = true\ntrusted-keys = [\"{public}\"]\n{extra}")
}

#[test]
fn a_signed_bundle_pushed_and_pulled_comes_back_byte_for_byte() {
    let registry = Registry::shared();
    let dir = Scratch::new("oci-roundtrip");
    let (key, public) = keygen(dir.path());
    let bundle = signed_echo(&dir.path().join("bundle"), &key, "1.0.0");
    let tag = format!("oci://{}/toolhost/roundtrip-echo:1.0.0", registry.host_port());

    let (digest, pinned) = push(&bundle, &tag);
    assert_eq!(
        pinned,
        format!("oci://{}/toolhost/roundtrip-echo@{digest}", registry.host_port())
    );
    // The manifest has no time in it: the same bundle, the same digest.
    assert_eq!(push(&bundle, &tag).0, digest);

    // By tag: the same files, byte for byte, the signature among them and
    // still good.
    let pulled = dir.path().join("pulled");
    let out = ok(&toolhost(
        &["plugin", "pull", &tag, pulled.to_str().unwrap()],
        dir.path(),
    ));
    assert_eq!(out.trim(), digest);
    let original = files(&bundle);
    assert_eq!(
        original.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        ["connector.sig", "connector.toml", "echo.wasm"]
    );
    assert_eq!(files(&pulled), original);
    ok(&toolhost(
        &["plugin", "verify", pulled.to_str().unwrap(), "--public-key", &public],
        dir.path(),
    ));

    // By the digest the push printed, without `oci://` too.
    let by_digest = dir.path().join("by-digest");
    let bare = pinned.strip_prefix("oci://").unwrap();
    let out = ok(&toolhost(
        &["plugin", "pull", bare, by_digest.to_str().unwrap()],
        dir.path(),
    ));
    assert_eq!(out.trim(), digest);
    assert_eq!(files(&by_digest), original);

    // A digest that is not this artifact's: refused, nothing written.
    let wrong = format!("sha256:{}", sha256_hex(b"some other manifest"));
    let elsewhere = dir.path().join("wrong");
    let out = toolhost(
        &[
            "plugin",
            "pull",
            &format!("{}/toolhost/roundtrip-echo@{wrong}", registry.host_port()),
            elsewhere.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert!(!out.status.success(), "a wrong digest was pulled");
    assert!(stderr(&out).contains(&wrong), "{}", stderr(&out));
    assert!(!elsewhere.exists());

    // A folder that already holds something is not written over.
    let out = toolhost(&["plugin", "pull", &tag, pulled.to_str().unwrap()], dir.path());
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not empty"), "{}", stderr(&out));
}

/// Push an artifact by hand through the distribution API, as a hostile or
/// careless publisher could: layers named `files`, our media types.
async fn push_by_hand(registry: &str, repository: &str, tag: &str, files: &[(&str, Vec<u8>)]) {
    let client = toolhost_tests::client();
    let upload = |bytes: Vec<u8>| {
        let client = client.clone();
        async move {
            let digest = format!("sha256:{}", sha256_hex(&bytes));
            let started = client
                .post(format!("http://{registry}/v2/{repository}/blobs/uploads/"))
                .send()
                .await
                .unwrap();
            assert_eq!(started.status(), 202);
            let location = started.headers()["location"].to_str().unwrap().to_string();
            let location = if location.starts_with('/') {
                format!("http://{registry}{location}")
            } else {
                location
            };
            let separator = if location.contains('?') { '&' } else { '?' };
            let size = bytes.len();
            let put = client
                .put(format!("{location}{separator}digest={digest}"))
                .header("content-type", "application/octet-stream")
                .body(bytes)
                .send()
                .await
                .unwrap();
            assert_eq!(put.status(), 201, "{}", put.text().await.unwrap());
            (digest, size)
        }
    };
    let config = json!({ "name": "echo", "version": "1.0.0", "kind": "connector", "digest": sha256_hex(&files[0].1) });
    let (config_digest, config_size) = upload(serde_json::to_vec(&config).unwrap()).await;
    let mut layers = Vec::new();
    for (name, bytes) in files {
        let (digest, size) = upload(bytes.clone()).await;
        layers.push(json!({
            "mediaType": "application/vnd.toolhost.bundle.file.v1",
            "digest": digest,
            "size": size,
            "annotations": { "org.opencontainers.image.title": name },
        }));
    }
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.toolhost.bundle.v1",
        "config": {
            "mediaType": "application/vnd.toolhost.bundle.config.v1+json",
            "digest": config_digest,
            "size": config_size,
        },
        "layers": layers,
    });
    let put = client
        .put(format!("http://{registry}/v2/{repository}/manifests/{tag}"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(serde_json::to_vec(&manifest).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201, "{}", put.text().await.unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_refuses_layers_whose_names_are_not_plain_file_names() {
    let registry = Registry::shared();
    let dir = Scratch::new("oci-names");
    let wasm = std::fs::read(guest("echo").join("echo.wasm")).unwrap();
    let manifest = std::fs::read(guest("echo").join("connector.toml")).unwrap();

    // Laid out by hand the way push does it, the artifact pulls: the
    // refusals below are about the names alone.
    push_by_hand(
        registry.host_port(),
        "toolhost/names",
        "plain",
        &[("echo.wasm", wasm.clone()), ("connector.toml", manifest.clone())],
    )
    .await;
    let plain = dir.path().join("plain");
    let out = toolhost(
        &[
            "plugin",
            "pull",
            &format!("{}/toolhost/names:plain", registry.host_port()),
            plain.to_str().unwrap(),
        ],
        dir.path(),
    );
    ok(&out);
    assert_eq!(files(&plain).len(), 2);

    let target = dir.path().join("nested/target");
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    for (tag, name) in [
        ("dotdot", "../connector.toml"),
        ("absolute", "/tmp/connector.toml"),
        ("nested", "sub/connector.toml"),
        ("hidden", ".oci-digest"),
    ] {
        push_by_hand(
            registry.host_port(),
            "toolhost/names",
            tag,
            &[("echo.wasm", wasm.clone()), (name, manifest.clone())],
        )
        .await;
        let out = toolhost(
            &[
                "plugin",
                "pull",
                &format!("{}/toolhost/names:{tag}", registry.host_port()),
                target.to_str().unwrap(),
            ],
            dir.path(),
        );
        assert!(!out.status.success(), "{name:?} was accepted");
        assert!(
            stderr(&out).contains("is not a plain file name"),
            "{name:?}: {}",
            stderr(&out)
        );
        assert!(!target.exists(), "{name:?}: the target was written");
        assert!(
            !dir.path().join("nested/connector.toml").exists() && !dir.path().join("nested/sub").exists(),
            "{name:?}: a file was written outside the target"
        );
        // Nothing left aside either.
        assert_eq!(
            std::fs::read_dir(dir.path().join("nested")).unwrap().count(),
            0,
            "{name:?}"
        );
    }
}

/// The echo component with a custom section appended: still a component,
/// a different digest, and not what its signature covers.
fn tampered_wasm() -> Vec<u8> {
    let mut wasm = std::fs::read(guest("echo").join("echo.wasm")).unwrap();
    // Section 0 (custom), 4 bytes: a 3-byte name "xyz" and no payload.
    wasm.extend_from_slice(&[0x00, 0x04, 0x03, b'x', b'y', b'z']);
    wasm
}

#[tokio::test(flavor = "multi_thread")]
async fn a_component_replaced_under_the_same_tag_fails_the_pin_or_the_signature() {
    let registry = Registry::shared();
    let keys = Scratch::new("oci-tamper");
    let (key, public) = keygen(keys.path());
    let bundle = signed_echo(&keys.path().join("bundle"), &key, "1.0.0");
    let tag = format!("oci://{}/toolhost/tamper-echo:1.0.0", registry.host_port());
    let (good, _) = push(&bundle, &tag);

    let pin = sha256_hex(&std::fs::read(bundle.join("echo.wasm")).unwrap());
    let pinned_config = signed_config(
        &public,
        &format!("[sources]\necho = \"{tag}\"\n[plugins.echo]\ndigest = \"{pin}\"\n"),
    );
    let mut server = ServerProcess::start_prepared(&pinned_config, |_| {});
    let (status, body) = echo_status(&server).await;
    assert_eq!((status, &body["result"]), (200, &json!("from the registry")), "{body}");

    // The same manifest and signature, another component, the same tag.
    let tampered = keys.path().join("tampered");
    copy_bundle(&bundle, &tampered);
    std::fs::write(tampered.join("echo.wasm"), tampered_wasm()).unwrap();
    let (bad, _) = push(&tampered, &tag);
    assert_ne!(bad, good);

    // The tag now names the tampered artifact: pulled, and refused by the
    // operator's digest pin.
    server.restart();
    assert_eq!(echo_status(&server).await.0, 404, "the tampered component serves");
    assert!(plugin(&server, "echo").await.is_none());
    let log = server.log();
    assert!(log.contains(&format!("pulled {tag}, pinned by digest {bad}")), "{log}");
    assert!(log.contains(&format!("the operator pinned digest {pin}")), "{log}");

    // Without the pin, the signature catches it.
    std::fs::write(
        server.dir.path().join("toolhost.toml"),
        signed_config(&public, &format!("[sources]\necho = \"{tag}\"\n")),
    )
    .unwrap();
    server.restart();
    assert_eq!(echo_status(&server).await.0, 404, "the tampered component serves");
    let (_, audit) = get_json(&server, ADMIN_TOKEN, "/v1/audit?outcome=refused").await;
    let refusals = audit["records"].to_string();
    assert!(refusals.contains("does not match"), "{audit}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_serves_its_source_and_keeps_the_pinned_copy_when_the_registry_is_gone() {
    let mut registry = Registry::start();
    let keys = Scratch::new("oci-serve");
    let (key, public) = keygen(keys.path());
    let bundle = signed_echo(&keys.path().join("bundle"), &key, "1.0.0");
    let tag = format!("oci://{}/toolhost/echo:1.0.0", registry.host_port());
    let (digest, _) = push(&bundle, &tag);

    let config = signed_config(&public, &format!("[sources]\necho = \"{tag}\"\n"));
    let mut server = ServerProcess::start_prepared(&config, |_| {});
    let (status, body) = echo_status(&server).await;
    assert_eq!((status, &body["result"]), (200, &json!("from the registry")), "{body}");
    // Loaded through the normal path: its signature checked.
    assert_eq!(plugin(&server, "echo").await.unwrap()["signed_by"], public.as_str());
    let folder = server.dir.path().join("plugins/echo");
    assert_eq!(files(&bundle), {
        let mut pulled = files(&folder);
        pulled.retain(|(name, _)| name != ".oci-digest");
        pulled
    });
    let kept = std::fs::read_to_string(folder.join(".oci-digest")).unwrap();
    assert_eq!(kept.lines().next(), Some(digest.as_str()), "{kept}");
    assert!(
        server
            .log()
            .contains(&format!("pulled {tag}, pinned by digest {digest}")),
        "{}",
        server.log()
    );

    // The registry gone: the copy pinned by digest from the earlier pull serves.
    registry.stop();
    server.restart();
    let (status, body) = echo_status(&server).await;
    assert_eq!((status, &body["result"]), (200, &json!("from the registry")), "{body}");
    assert!(
        server.log().contains(&format!(
            "serving the copy pinned by digest {digest} from an earlier pull"
        )),
        "{}",
        server.log()
    );

    // A server that never pulled it has nothing to serve, and says so; it
    // starts all the same.
    let fresh = ServerProcess::start_prepared(&config, |_| {});
    assert_eq!(echo_status(&fresh).await.0, 404);
    assert!(fresh.log().contains("not loaded: source echo"), "{}", fresh.log());
    assert!(fresh.log().contains("Connection refused"), "{}", fresh.log());

    // A reference pinned to another digest than the folder holds, with the
    // registry gone: not loaded (the folder's copy is not what it names),
    // and the error names both.
    let other = format!("sha256:{}", sha256_hex(b"another manifest"));
    let repository = tag.strip_suffix(":1.0.0").unwrap();
    std::fs::write(
        server.dir.path().join("toolhost.toml"),
        signed_config(&public, &format!("[sources]\necho = \"{repository}@{other}\"\n")),
    )
    .unwrap();
    server.restart();
    assert_eq!(
        echo_status(&server).await.0,
        404,
        "a copy the reference does not name serves"
    );
    let log = server.log();
    let refusal = log
        .lines()
        .rfind(|l| l.contains("not loaded: source echo"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(refusal.contains(&other) && refusal.contains(&digest), "{refusal}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_digest_reference_serves_that_manifest_whatever_the_tag_says() {
    let mut registry = Registry::start();
    let keys = Scratch::new("oci-digest");
    let (key, public) = keygen(keys.path());
    let tag = format!("oci://{}/toolhost/echo:stable", registry.host_port());
    let (first, first_pinned) = push(&signed_echo(&keys.path().join("v1"), &key, "1.0.0"), &tag);
    let (second, second_pinned) = push(&signed_echo(&keys.path().join("v2"), &key, "1.0.1"), &tag);
    assert_ne!(first, second);

    // The tag now names 1.0.1; the reference pins 1.0.0's manifest.
    let config = |reference: &str| signed_config(&public, &format!("[sources]\necho = \"{reference}\"\n"));
    let mut server = ServerProcess::start_prepared(&config(&first_pinned), |_| {});
    assert_eq!(plugin(&server, "echo").await.unwrap()["version"], "1.0.0");
    assert_eq!(echo_status(&server).await.0, 200);

    // Pinned to the other digest: that one replaces it.
    std::fs::write(server.dir.path().join("toolhost.toml"), config(&second_pinned)).unwrap();
    server.restart();
    assert_eq!(plugin(&server, "echo").await.unwrap()["version"], "1.0.1");
    let kept = std::fs::read_to_string(server.dir.path().join("plugins/echo/.oci-digest")).unwrap();
    assert_eq!(kept.lines().next(), Some(second.as_str()));

    // The folder holds that exact digest: nothing to fetch, so no registry
    // is needed to start.
    registry.stop();
    server.restart();
    assert_eq!(plugin(&server, "echo").await.unwrap()["version"], "1.0.1");
    assert_eq!(echo_status(&server).await.0, 200);
    assert!(
        server
            .log()
            .contains(&format!("is {second}, already in the plugins folder")),
        "{}",
        server.log()
    );

    // A file changed in the folder: it no longer holds that digest, and
    // with the registry gone nothing serves.
    assert!(server.stop().success());
    let manifest = server.dir.path().join("plugins/echo/connector.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, format!("{text}\n# edited\n")).unwrap();
    server.start_again();
    assert_eq!(
        echo_status(&server).await.0,
        404,
        "an edited copy serves as the pinned digest"
    );
}

#[test]
fn one_shot_commands_pull_sources_and_bad_references_are_refused_at_parse() {
    let registry = Registry::shared();
    let dir = Scratch::new("oci-cli");
    let (key, _) = keygen(dir.path());
    let bundle = signed_echo(&dir.path().join("bundle"), &key, "1.0.0");
    let tag = format!("oci://{}/toolhost/cli-echo:1.0.0", registry.host_port());
    push(&bundle, &tag);

    std::fs::write(
        dir.path().join("toolhost.toml"),
        format!("[sources]\necho = \"{tag}\"\n"),
    )
    .unwrap();
    let out = ok(&toolhost(&["tools"], dir.path()));
    let tools: Value = serde_json::from_str(&out).unwrap();
    assert!(tools.to_string().contains("echo"), "{tools}");
    assert!(dir.path().join("plugins/echo/.oci-digest").is_file());
    let out = ok(&toolhost(
        &["call", "echo.check", r#"{"ok":true,"message":"cli"}"#],
        dir.path(),
    ));
    assert_eq!(out.trim(), "\"cli\"");

    for (source, expected) in [
        ("echo = \"toolhost/echo:1.0.0\"", "is not a registry host"),
        (
            "echo = \"127.0.0.1:5000/toolhost/echo\"",
            "names neither a tag nor a digest",
        ),
        (
            "echo = \"https://127.0.0.1:5000/toolhost/echo:1\"",
            "the only scheme it takes is oci://",
        ),
        (
            "Echo = \"oci://127.0.0.1:5000/toolhost/echo:1\"",
            "is not a plugin name",
        ),
    ] {
        std::fs::write(dir.path().join("toolhost.toml"), format!("[sources]\n{source}\n")).unwrap();
        let out = toolhost(&["tools"], dir.path());
        assert_eq!(out.status.code(), Some(2), "{source}");
        assert!(stderr(&out).contains(expected), "{source}: {}", stderr(&out));
    }
}

/// A registry that answers `/v2/` and then, for the manifest of
/// `huge/...` 400 MB by its `Content-Length`, of `endless/...` 400 MB
/// without one (chunked), and of `trickle/...` one byte a second.
async fn hostile_registry() -> std::net::SocketAddr {
    use axum::body::{Body, Bytes};
    use axum::extract::Path as UrlPath;
    use axum::response::Response;
    const HUGE: usize = 400_000_000;
    let chunk = Bytes::from(vec![b' '; 64 * 1024]);
    let blanks = move || {
        futures::stream::iter((0..HUGE / chunk.len()).map({
            let chunk = chunk.clone();
            move |_| Ok::<_, std::io::Error>(chunk.clone())
        }))
    };
    let manifest = move |UrlPath(rest): UrlPath<String>| {
        let blanks = blanks.clone();
        async move {
            let response = Response::builder().header("content-type", "application/vnd.oci.image.manifest.v1+json");
            if rest.starts_with("huge/") {
                response
                    .header("content-length", HUGE.to_string())
                    .body(Body::from_stream(blanks()))
            } else if rest.starts_with("endless/") {
                response.body(Body::from_stream(blanks()))
            } else {
                let slowly = futures::stream::unfold((), |()| async {
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    Some((Ok::<_, std::io::Error>(Bytes::from_static(b" ")), ()))
                });
                response
                    .header("content-length", "1000")
                    .body(Body::from_stream(slowly))
            }
            .unwrap()
        }
    };
    let router = axum::Router::new()
        .route("/v2/", axum::routing::get(|| async { "{}" }))
        .route("/v2/{*rest}", axum::routing::get(manifest));
    toolhost_tests::serve(router).await
}

/// The peak resident memory of process `pid`, in bytes (`VmHWM`).
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status");
    kb * 1024
}

/// A server whose `[sources]` are `sources` (name = reference), once it
/// serves; a pull that hangs would hold its start, which fails the test
/// after 60 s (on a thread of its own, which a failing test leaves behind).
async fn serve_sources(extra: &str, sources: &[(&str, String)]) -> ServerProcess {
    let mut config = format!("{extra}\n[sources]\n");
    for (name, reference) in sources {
        config.push_str(&format!("{name} = \"{reference}\"\n"));
    }
    let (sender, started) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || sender.send(ServerProcess::start(&config, &[])));
    let server = tokio::time::timeout(std::time::Duration::from_secs(60), started)
        .await
        .expect("serve became ready within 60 s")
        .unwrap();
    let (status, ready) = get_json(&server, ADMIN_TOKEN, "/readyz").await;
    assert_eq!(status, 200, "{ready}");
    server
}

#[tokio::test(flavor = "multi_thread")]
async fn a_huge_manifest_is_refused_by_its_bound_before_it_is_read() {
    let registry = hostile_registry().await;
    let server = serve_sources(
        "",
        &[
            ("huge", format!("{registry}/huge/echo:1")),
            ("endless", format!("{registry}/endless/echo:1")),
        ],
    )
    .await;
    let log = server.log();
    let refused = |source: &str, size: &str| {
        log.lines().any(|l| {
            l.contains("not loaded: source")
                && l.contains(source)
                && l.contains(size)
                && l.contains("over the bound of 65536 bytes on a bundle's manifest")
        })
    };
    assert!(refused("huge", "400000000 bytes by its Content-Length"), "{log}");
    assert!(refused("endless", "more than 65536 bytes"), "{log}");
    let peak = peak_rss(server.pid());
    eprintln!("the host's peak RSS: {} MB", peak >> 20);
    assert!(peak < 200 << 20, "the host's memory peaked at {} MB", peak >> 20);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_manifest_sent_a_byte_a_second_is_abandoned_and_serve_becomes_ready() {
    let registry = hostile_registry().await;
    let server = serve_sources(
        "[registries]\npull-timeout-secs = 3\n",
        &[("slow", format!("{registry}/trickle/echo:1"))],
    )
    .await;
    let log = server.log();
    assert!(
        log.lines()
            .any(|l| l.contains("slow") && l.contains("longer than 3 s ([registries] pull-timeout-secs)")),
        "{log}"
    );
}

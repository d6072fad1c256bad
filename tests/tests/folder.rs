//! The plugins folder is read off the threads that serve the API, once per
//! folder event, and a bundle file that would block its reader (a FIFO:
//! opening one for reading waits for a writer that never comes) is refused
//! with a clear error, at start-up and while the host serves (issue 31
//! item 6).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::io::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use toolhost_tests::{
    client, copy_bundle, echo_check, get_json, guest, named, toolhost_bin, upload, ServerProcess, ADMIN_TOKEN,
    AGENT_TOKEN,
};

/// How long anything here may take before the test calls it a hang.
const PATIENCE: Duration = Duration::from_secs(30);

fn mkfifo(path: &Path) {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo only creates a file.
    assert_eq!(
        unsafe { libc::mkfifo(c.as_ptr(), 0o644) },
        0,
        "mkfifo {}",
        path.display()
    );
}

fn echo_manifest_named(name: &str, version: &str) -> String {
    std::fs::read_to_string(guest("echo").join("connector.toml"))
        .unwrap()
        .replace("name = \"echo\"", &format!("name = \"{name}\""))
        .replace("version = \"1.0.0\"", &format!("version = \"{version}\""))
}

fn echo_wasm() -> Vec<u8> {
    std::fs::read(guest("echo").join("echo.wasm")).unwrap()
}

/// Bundles that each hold one FIFO where a file is read: a connector's
/// component, a connector's signature, a workflow's signature. Written
/// aside and renamed in, as an operator's copy would land.
const JAMMED: [&str; 3] = ["jam-wasm", "jam-sig", "jam-flow"];

fn write_jammed(plugins: &Path) {
    for name in JAMMED {
        let aside = plugins.join(format!(".{name}"));
        std::fs::create_dir_all(&aside).unwrap();
        match name {
            "jam-wasm" => {
                std::fs::write(aside.join("connector.toml"), echo_manifest_named(name, "1.0.0")).unwrap();
                mkfifo(&aside.join("jam-wasm.wasm"));
            }
            "jam-sig" => {
                std::fs::write(aside.join("connector.toml"), echo_manifest_named(name, "1.0.0")).unwrap();
                std::fs::write(aside.join("jam-sig.wasm"), echo_wasm()).unwrap();
                mkfifo(&aside.join("connector.sig"));
            }
            _ => {
                std::fs::write(
                    aside.join("workflow.yaml"),
                    "document: { dsl: '1.0.0', namespace: toolhost-tests, name: jam-flow, version: '1.0.0' }\n\
                     do:\n  - one:\n      set:\n        n: 1\n",
                )
                .unwrap();
                mkfifo(&aside.join("workflow.sig"));
            }
        }
        std::fs::rename(&aside, plugins.join(name)).unwrap();
    }
}

/// Wait until each jammed bundle's refusal is in the audit trail, naming the
/// file that is not a regular one.
async fn wait_refused(server: &ServerProcess) {
    for name in JAMMED {
        let deadline = Instant::now() + PATIENCE;
        let error = loop {
            let (_, audit) = get_json(
                server,
                ADMIN_TOKEN,
                &format!("/v1/audit?tool=(plugin)%20{name}&limit=10"),
            )
            .await;
            let refused = audit["records"]
                .as_array()
                .and_then(|records| records.iter().find(|r| r["outcome"] == "refused"))
                .map(|r| r["error"].as_str().unwrap_or_default().to_string());
            if let Some(error) = refused {
                break error;
            }
            assert!(Instant::now() < deadline, "{name} was never refused");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(
            error.contains("not a regular file") && error.contains("FIFO"),
            "{name}: {error}"
        );
    }
    assert!(
        server.log().contains("is a FIFO, not a regular file"),
        "the refusal is not in the log"
    );
    let (_, plugins) = get_json(server, ADMIN_TOKEN, "/v1/plugins").await;
    for name in JAMMED {
        assert!(named(&plugins, name).is_none(), "{name} was loaded");
    }
}

/// `/healthz` and an ordinary plugin's call answer.
async fn still_serves(server: &ServerProcess) {
    let health = tokio::time::timeout(PATIENCE, client().get(server.url("/healthz")).send())
        .await
        .expect("/healthz answers")
        .expect("/healthz answers");
    assert_eq!(health.status(), 200);
    let (status, body) = tokio::time::timeout(PATIENCE, echo_check(server, AGENT_TOKEN))
        .await
        .expect("echo.check answers");
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fifo_in_a_bundle_at_start_up_is_refused_and_the_host_starts() {
    // Built before the clock starts: the patience is the host's start-up's.
    tokio::task::spawn_blocking(|| (toolhost_bin(), guest("echo")))
        .await
        .unwrap();
    let start = tokio::task::spawn_blocking(|| {
        ServerProcess::start_prepared("", |plugins| {
            copy_bundle(&guest("echo"), &plugins.join("echo"));
            write_jammed(plugins);
        })
    });
    let server = tokio::time::timeout(PATIENCE, start)
        .await
        .expect("the host starts (a FIFO in the plugins folder hung its start-up)")
        .unwrap();
    still_serves(&server).await;
    wait_refused(&server).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fifos_dropped_into_a_serving_host_are_refused_and_it_keeps_answering() {
    let server = ServerProcess::start_prepared("", |plugins| copy_bundle(&guest("echo"), &plugins.join("echo")));
    still_serves(&server).await;
    write_jammed(&server.dir.path().join("plugins"));
    // More uploads at once than the host's runtime has worker threads:
    // each writes its bundle into the folder, which looks through the
    // folder's bundles for one of the same name.
    let uploads = std::thread::available_parallelism().map_or(2, |n| n.get()) + 1;
    let uploads: Vec<_> =
        (0..uploads)
            .map(|i| {
                let (manifest, wasm) = (echo_manifest_named(&format!("copy-{i}"), "1.0.0"), echo_wasm());
                let server = &server;
                async move {
                    tokio::time::timeout(PATIENCE, upload(server, &format!("copy-{i}"), manifest, wasm, None)).await
                }
            })
            .collect();
    for (i, answer) in futures::future::join_all(uploads).await.into_iter().enumerate() {
        let (status, body) = answer.unwrap_or_else(|_| panic!("upload copy-{i} never answered"));
        assert_eq!(status, 200, "copy-{i}: {body}");
    }
    still_serves(&server).await;
    wait_refused(&server).await;
    // The watcher goes on: a bundle dropped in after the jammed ones loads.
    let aside = server.dir.path().join("plugins/.late");
    std::fs::create_dir(&aside).unwrap();
    std::fs::write(aside.join("connector.toml"), echo_manifest_named("late", "1.0.0")).unwrap();
    std::fs::write(aside.join("late.wasm"), echo_wasm()).unwrap();
    std::fs::rename(&aside, server.dir.path().join("plugins/late")).unwrap();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (_, plugins) = get_json(&server, ADMIN_TOKEN, "/v1/plugins").await;
        if named(&plugins, "late").is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "late was never loaded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An inotify watch on `dir` for files opened in it.
fn watch_opens(dir: &Path) -> OwnedFd {
    // SAFETY: plain syscalls; the descriptor is owned from here on.
    let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
    assert!(fd >= 0, "inotify_init1");
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let c = CString::new(dir.as_os_str().as_bytes()).unwrap();
    assert!(unsafe { libc::inotify_add_watch(fd.as_raw_fd(), c.as_ptr(), libc::IN_OPEN) } >= 0);
    fd
}

/// How many times `file` was opened since the last look.
fn opens_of(fd: &OwnedFd, file: &str) -> usize {
    let mut count = 0;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // SAFETY: reads into a buffer of the length given.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            return count;
        }
        let mut at = 0;
        while at + 16 <= n as usize {
            // struct inotify_event { int wd; u32 mask; u32 cookie; u32 len; char name[]; }
            let len = u32::from_ne_bytes(buf[at + 12..at + 16].try_into().unwrap()) as usize;
            let name = &buf[at + 16..at + 16 + len];
            let name = name.split(|b| *b == 0).next().unwrap_or_default();
            if name == file.as_bytes() {
                count += 1;
            }
            at += 16 + len;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_folder_event_reads_its_bundle_once() {
    let server = ServerProcess::start_prepared("", |plugins| copy_bundle(&guest("echo"), &plugins.join("echo")));
    let folder = server.dir.path().join("plugins/echo");
    let opens = watch_opens(&folder);
    for version in ["1.0.1", "1.0.2"] {
        opens_of(&opens, "echo.wasm");
        std::fs::write(folder.join("connector.toml"), echo_manifest_named("echo", version)).unwrap();
        let deadline = Instant::now() + PATIENCE;
        loop {
            let (_, plugins) = get_json(&server, ADMIN_TOKEN, "/v1/plugins").await;
            if named(&plugins, "echo").is_some_and(|p: &Value| p["version"] == version) {
                break;
            }
            assert!(Instant::now() < deadline, "echo never reached {version}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Every read of this event came before the swap that serves it.
        assert_eq!(
            opens_of(&opens, "echo.wasm"),
            1,
            "times the component was read for {version}"
        );
    }
}

//! A real OCI registry for the tests: Debian's `docker-registry` (the CNCF
//! Distribution registry), installed on first use when missing, run as the
//! unprivileged `docker-registry` user the package makes, its storage in a
//! temporary folder, listening on 127.0.0.1 only, and stopped when the test
//! process exits (or, for one a test starts itself, when it stops it).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const BINARY: &str = "/usr/bin/docker-registry";
/// The user the package runs its registry as.
const USER: &str = "docker-registry";

/// A registry process on 127.0.0.1.
pub struct Registry {
    /// `127.0.0.1:PORT`: the registry part of a reference.
    pub addr: String,
    dir: PathBuf,
    process: Option<Child>,
    /// Outlives this process on purpose: it stops the registry after it.
    _watcher: Child,
}

fn installed() {
    if Path::new(BINARY).exists() {
        return;
    }
    let lock = super::repo_root().join("target/.apt.lock");
    let script = format!(
        "set -e; mkdir -p '{dir}'; exec 9>'{lock}'; flock 9; export DEBIAN_FRONTEND=noninteractive; \
         test -x {BINARY} || apt-get install -y -q docker-registry >&2 || \
         (apt-get update -q >&2 && apt-get install -y -q docker-registry >&2)",
        dir = lock.parent().unwrap().display(),
        lock = lock.display(),
    );
    let status = Command::new("bash")
        .args(["-c", &script])
        .status()
        .expect("run apt-get");
    assert!(status.success(), "installing docker-registry failed");
    assert!(Path::new(BINARY).exists(), "{BINARY} after installing docker-registry");
}

impl Registry {
    /// The registry most tests share, started on first use.
    pub fn shared() -> &'static Registry {
        static REGISTRY: OnceLock<Registry> = OnceLock::new();
        REGISTRY.get_or_init(Registry::start)
    }

    /// A registry of the caller's own, which it may stop.
    pub fn start() -> Registry {
        installed();
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("toolhost-test-registry-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("storage")).unwrap();
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let addr = format!("127.0.0.1:{port}");
        let config = format!(
            "version: 0.1\n\
             log:\n  level: warn\n\
             storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n\
             http:\n  addr: {addr}\n",
            storage = dir.join("storage").display(),
        );
        std::fs::write(dir.join("config.yml"), config).unwrap();
        let chown = Command::new("chown")
            .args(["-R", &format!("{USER}:{USER}")])
            .arg(&dir)
            .status();
        assert!(chown.is_ok_and(|s| s.success()), "chown the registry folder");
        let log = std::fs::File::create(dir.join("registry.log")).unwrap();
        // setpriv execs the registry itself, so the child is the registry.
        let process = Command::new("setpriv")
            .args([
                &format!("--reuid={USER}"),
                &format!("--regid={USER}"),
                "--init-groups",
                "--",
                BINARY,
                "serve",
            ])
            .arg(dir.join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        // Stop the registry, and remove its folder, once this test process
        // has exited; a registry stopped before that ends the watcher.
        let watcher = format!(
            "while kill -0 {pid} 2>/dev/null && kill -0 {registry} 2>/dev/null; do sleep 0.5; done; \
             kill -0 {pid} 2>/dev/null || kill {registry} 2>/dev/null; \
             kill -0 {pid} 2>/dev/null || rm -rf '{dir}'",
            pid = std::process::id(),
            registry = process.id(),
            dir = dir.display(),
        );
        let watcher = Command::new("bash")
            .args(["-c", &watcher])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the registry watcher");
        let mut registry = Registry {
            addr,
            dir,
            process: Some(process),
            _watcher: watcher,
        };
        registry.wait_ready();
        registry
    }

    /// Until `GET /v2/` answers 200.
    fn wait_ready(&mut self) {
        use std::io::{Read, Write};
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let answered = std::net::TcpStream::connect(&self.addr).ok().and_then(|mut s| {
                s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
                write!(s, "GET /v2/ HTTP/1.0\r\nHost: {}\r\n\r\n", self.addr).ok()?;
                let mut head = [0u8; 12];
                s.read_exact(&mut head).ok()?;
                Some(head.ends_with(b"200"))
            });
            if answered == Some(true) {
                return;
            }
            let exited = self.process.as_mut().and_then(|p| p.try_wait().ok().flatten());
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "docker-registry did not start ({exited:?}): {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `host:port`, for references.
    pub fn host_port(&self) -> &str {
        &self.addr
    }

    /// What the registry logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default()
    }

    /// Stop it: its port is closed from now on.
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.kill();
            let _ = process.wait();
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

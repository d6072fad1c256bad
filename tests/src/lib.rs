//! What the end-to-end tests share: building the components and the binary
//! once, scratch folders, a runtime over real files, and upstream HTTP
//! servers on 127.0.0.1.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use toolhost::policy::Policy;
use toolhost::{Runtime, RuntimeOptions};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

fn run(mut command: Command, what: &str) {
    let output = command.output().unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Build the reference connectors and the test components (once per test
/// process; quick when nothing changed).
pub fn components() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let root = repo_root();
        let mut build = Command::new(root.join("plugins/build.sh"));
        build.current_dir(&root);
        run(build, "plugins/build.sh");
        root
    })
}

pub fn guest(name: &str) -> PathBuf {
    components().join("tests/guests").join(name)
}

pub fn reference(name: &str) -> PathBuf {
    components().join("plugins").join(name)
}

/// The `toolhost` binary, built if needed.
pub fn toolhost_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let root = repo_root();
        let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        build
            .args(["build", "--quiet", "-p", "toolhost", "--bin", "toolhost"])
            .current_dir(&root);
        run(build, "cargo build -p toolhost");
        let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
        target.join("debug/toolhost")
    })
}

/// A folder removed when dropped.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("toolhost-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create scratch folder");
        Scratch(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A runtime with its data in `data` and the given policy (TOML).
pub fn runtime_in(data: &Path, policy: &str) -> Runtime {
    Runtime::new(RuntimeOptions {
        plugins_dir: components().join("tests/guests"),
        data_dir: data.to_path_buf(),
        policy: Policy::parse(policy, "test policy").expect("test policy parses"),
        engine: Default::default(),
    })
    .expect("runtime starts")
}

/// Serve `router` on a free port of 127.0.0.1 for the rest of the test.
pub async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

//! A real PostgreSQL for the tests: Debian's `postgresql`, installed on first
//! use when missing, run as the unprivileged `postgres` user from a
//! temporary folder, listening on 127.0.0.1 only, and stopped when the test
//! process lets go of it. One server per test process; each test takes a
//! database of its own.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

/// The PostgreSQL server of this test process.
pub struct Postgres {
    bin: PathBuf,
    pub port: u16,
    /// Outlives this process on purpose: it stops the server after it.
    _watcher: std::process::Child,
}

fn installed() -> PathBuf {
    let find = || {
        std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(Result::ok)
            .map(|e| e.path().join("bin"))
            .find(|bin| bin.join("initdb").exists() && bin.join("pg_ctl").exists())
    };
    if let Some(bin) = find() {
        return bin;
    }
    let lock = super::repo_root().join("target/.apt.lock");
    let script = format!(
        "set -e; exec 9>'{}'; flock 9; export DEBIAN_FRONTEND=noninteractive; \
         ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
         (apt-get update -q >&2 && apt-get install -y -q postgresql >&2)",
        lock.display()
    );
    let status = Command::new("bash")
        .args(["-c", &script])
        .status()
        .expect("run apt-get");
    assert!(status.success(), "installing postgresql failed");
    find().expect("initdb after installing postgresql")
}

/// Run `program args` as the `postgres` user.
fn as_postgres(program: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", program.display()))
}

impl Postgres {
    /// The server, started on first use.
    pub fn shared() -> &'static Postgres {
        static SERVER: OnceLock<Postgres> = OnceLock::new();
        SERVER.get_or_init(Postgres::start)
    }

    fn start() -> Postgres {
        let bin = installed();
        let dir = std::env::temp_dir().join(format!("toolhost-test-postgres-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let chown = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&dir)
            .status();
        assert!(chown.is_ok_and(|s| s.success()), "chown the PostgreSQL folder");
        let data = dir.join("data");
        let out = as_postgres(
            &bin.join("initdb"),
            &[
                "-D",
                &data.display().to_string(),
                "-A",
                "trust",
                "-U",
                "toolhost",
                "--no-sync",
            ],
        );
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let options = format!(
            "-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={} -c fsync=on -c max_connections=200",
            dir.display()
        );
        let out = as_postgres(
            &bin.join("pg_ctl"),
            &[
                "-D",
                &data.display().to_string(),
                "-l",
                &dir.join("server.log").display().to_string(),
                "-o",
                &options,
                "-w",
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start: {}{}",
            String::from_utf8_lossy(&out.stdout),
            std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
        );
        // Statics are never dropped: a watcher stops the server, and
        // removes its folder, once this test process has exited.
        let watcher = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; \
             runuser -u postgres -- '{pg_ctl}' -D '{data}' -m immediate stop >/dev/null 2>&1; rm -rf '{dir}'",
            pid = std::process::id(),
            pg_ctl = bin.join("pg_ctl").display(),
            data = data.display(),
            dir = dir.display(),
        );
        let watcher = Command::new("bash")
            .args(["-c", &watcher])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start the PostgreSQL watcher");
        Postgres {
            bin,
            port,
            _watcher: watcher,
        }
    }

    /// A new, empty database; its URL.
    pub fn database(&self) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!("t{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let out = as_postgres(
            &self.bin.join("createdb"),
            &["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "toolhost", &name],
        );
        assert!(
            out.status.success(),
            "createdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        format!("postgres://toolhost@127.0.0.1:{}/{name}", self.port)
    }
}

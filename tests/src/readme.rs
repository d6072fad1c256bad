//! The README's `sh` blocks, run as written: a section's blocks in order,
//! in a folder laid out like the reader's checkout, with the real binaries
//! on `PATH` where the README says to install or `cargo run` them.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use crate::{components, repo_root, sample_upstreams_bin, toolhost_bin, Scratch};

/// The `sh` blocks of the README section under `heading` (up to the next
/// `## `), in order.
pub fn section_blocks(heading: &str) -> Vec<String> {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let start = readme
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("the README has a section {heading:?}"));
    let body = &readme[start + heading.len() + 2..];
    let body = &body[..body.find("\n## ").unwrap_or(body.len())];
    let mut blocks = Vec::new();
    let mut rest = body;
    while let Some(open) = rest.find("```sh\n") {
        let code = &rest[open + "```sh\n".len()..];
        let close = code.find("```").expect("a closed block");
        blocks.push(code[..close].to_string());
        rest = &code[close + 3..];
    }
    blocks
}

/// A scratch folder laid out as the reader's checkout: this repository's
/// `plugins` (built) and `tests` (plugins/build.sh builds its guests too),
/// and `toolhost` and `sample-upstreams` on `PATH`.
pub struct Checkout {
    pub dir: Scratch,
    path: String,
}

impl Checkout {
    pub fn new(tag: &str) -> Checkout {
        components();
        let dir = Scratch::new(tag);
        for linked in ["plugins", "tests"] {
            std::os::unix::fs::symlink(repo_root().join(linked), dir.path().join(linked)).unwrap();
        }
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        std::os::unix::fs::symlink(toolhost_bin(), bin.join("toolhost")).unwrap();
        std::os::unix::fs::symlink(sample_upstreams_bin(), bin.join("sample-upstreams")).unwrap();
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
        Checkout { dir, path }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `script` in one bash with `set -euo pipefail`, in the checkout, in
    /// the reader's environment (none of the test's TOOLHOST_* settings),
    /// killed after `limit_secs` if given; nothing it starts in the
    /// background outlives it.
    fn bash(&self, limit_secs: Option<u32>, script: &str) -> Command {
        let wrapped = format!("set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n{script}");
        let mut command = match limit_secs {
            Some(secs) => {
                let mut timeout = Command::new("timeout");
                timeout.args([secs.to_string().as_str(), "bash"]);
                timeout
            }
            None => Command::new("bash"),
        };
        command
            .args(["-c", &wrapped])
            .current_dir(self.path())
            .env("PATH", &self.path);
        for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("TOOLHOST_")) {
            command.env_remove(name);
        }
        // plugins/build.sh, run from the checkout, finds the guest
        // toolchain where the repository's own run installed it.
        let tools =
            std::env::var_os("TOOLHOST_GUEST_TOOLS").unwrap_or_else(|| repo_root().join("target/guest-tools").into());
        command.env("TOOLHOST_GUEST_TOOLS", tools);
        command
    }

    /// Run `script` to its end (killed after `limit_secs`).
    pub fn run(&self, script: &str, limit_secs: u32) -> Output {
        self.bash(Some(limit_secs), script).output().expect("bash runs")
    }

    /// Start `script` in a process group of its own (a terminal's
    /// foreground job: Ctrl-C reaches all of it), with `env` set and its
    /// output in `stdout` and `stderr` of the checkout.
    pub fn spawn(&self, script: &str, env: &[(&str, &str)]) -> Child {
        use std::os::unix::process::CommandExt;
        let file = |name: &str| Stdio::from(std::fs::File::create(self.path().join(name)).unwrap());
        self.bash(None, script)
            .envs(env.iter().copied())
            .process_group(0)
            .stdout(file("stdout"))
            .stderr(file("stderr"))
            .spawn()
            .expect("bash starts")
    }
}

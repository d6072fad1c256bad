//! `toolhost build`: connector projects into components, each put beside
//! its `connector.toml` under the name the host loads. It runs
//! `plugins/build.sh`, compiled into the binary, so that CI, the tests and
//! a vendor with nothing but the binary build the same way.

use std::path::{Path, PathBuf};
use std::process::ExitStatus;

/// The script, as it was when this binary was built.
const SCRIPT: &str = include_str!("../../../plugins/build.sh");

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot run bash for the build script: {0}")]
    Spawn(std::io::Error),
    #[error("the build failed ({0}); the messages above say why")]
    Failed(ExitStatus),
}

/// Which cargo profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Profile {
    /// Small and fast; what ships.
    #[default]
    Release,
    /// Quicker to compile.
    Debug,
}

impl Profile {
    fn flag(self) -> &'static str {
        match self {
            Profile::Release => "--release",
            Profile::Debug => "--debug",
        }
    }
}

/// What to build and how.
#[derive(Debug, Clone, Default)]
pub struct Build {
    /// Connector projects, or workspaces whose members are.
    pub dirs: Vec<PathBuf>,
    pub profile: Profile,
    /// One cargo target folder for all of them instead of each one's own.
    pub target_dir: Option<PathBuf>,
}

impl Build {
    /// The build as a command: the script with its arguments and the
    /// folders it should use; its progress goes to standard error.
    pub fn command(&self) -> tokio::process::Command {
        let mut command = tokio::process::Command::new("bash");
        // `bash -c SCRIPT NAME ARGS...`: NAME is the script's $0.
        command
            .arg("-c")
            .arg(SCRIPT)
            .arg("toolhost-build")
            .arg(self.profile.flag());
        command.args(&self.dirs);
        command.env("TOOLHOST_GUEST_TOOLS", tools_dir());
        if let Some(dir) = &self.target_dir {
            command.env("TOOLHOST_GUEST_TARGET_DIR", dir);
        }
        command.stdin(std::process::Stdio::null());
        command
    }

    /// Run it to the end.
    pub async fn run(&self) -> Result<(), BuildError> {
        let status = self.command().status().await.map_err(BuildError::Spawn)?;
        if status.success() {
            Ok(())
        } else {
            Err(BuildError::Failed(status))
        }
    }
}

/// Where the installed guest tools go: the checkout's, beside what
/// `plugins/build.sh` installs, when this binary was built in one that
/// still exists; else the user's cache. `TOOLHOST_GUEST_TOOLS` wins.
fn tools_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("TOOLHOST_GUEST_TOOLS") {
        return PathBuf::from(dir);
    }
    if let Some(root) = super::new::checkout() {
        return root.join("target/guest-tools");
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    cache.join("toolhost/guest-tools")
}

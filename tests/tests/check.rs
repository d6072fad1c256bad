//! `toolhost check`, the real binary, on configurations and plugins folders
//! made for each case: one line per finding, `error:`/`warning:`, where
//! (`file:line:column` or the bundle) and what to do; exit 1 on errors,
//! 0 on warnings alone.

use std::path::Path;
use std::process::Command;

use serde_json::json;
use toolhost_tests::*;

/// What `toolhost check --config toolhost.toml` says in `dir`.
struct Checked {
    code: i32,
    lines: Vec<String>,
}

impl Checked {
    fn line(&self, starts: &str, contains: &[&str]) -> &str {
        self.lines
            .iter()
            .find(|l| l.starts_with(starts) && contains.iter().all(|c| l.contains(c)))
            .unwrap_or_else(|| panic!("no line {starts}… with {contains:?} in {:#?}", self.lines))
    }

    fn findings(&self) -> Vec<&String> {
        self.lines
            .iter()
            .filter(|l| l.starts_with("error:") || l.starts_with("warning:"))
            .collect()
    }
}

fn check_in(dir: &Path) -> Checked {
    let out = Command::new(toolhost_bin())
        .args(["check", "--config", "toolhost.toml"])
        .current_dir(dir)
        .env_remove("TOOLHOST_PLUGINS_DIR")
        .env_remove("TOOLHOST_DATA_DIR")
        .env_remove("TOOLHOST_CONFIG")
        .env_remove("TOOLHOST_STORAGE_URL")
        .output()
        .expect("run toolhost check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    Checked {
        code: out.status.code().expect("an exit code"),
        lines: stdout.lines().map(str::to_string).collect(),
    }
}

/// A folder with `config` as toolhost.toml and the named test components
/// in its plugins folder.
fn workdir(config: &str, bundles: &[&str]) -> Scratch {
    let dir = Scratch::new("check");
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    for b in bundles {
        std::os::unix::fs::symlink(guest(b), plugins.join(b)).unwrap();
    }
    std::fs::write(dir.path().join("toolhost.toml"), config).unwrap();
    dir
}

#[test]
fn a_clean_configuration_passes() {
    let dir = workdir(
        "[server]\nlisten = \"127.0.0.1:8080\"\n\n[plugins.echo]\ntimeout-ms = 5000\n",
        &["echo"],
    );
    let checked = check_in(dir.path());
    assert_eq!(checked.findings(), Vec::<&String>::new());
    assert_eq!(checked.code, 0);
}

#[test]
fn a_misspelt_plugin_name_is_an_error_with_a_suggestion() {
    let dir = workdir(
        "[limits]\ntimeout-ms = 9000\n\n[plugins.ecoh]\ntimeout-ms = 100\n",
        &["echo"],
    );
    let checked = check_in(dir.path());
    checked.line(
        "error: toolhost.toml:4:10: ",
        &["[plugins.ecoh]", "did you mean [plugins.echo]?"],
    );
    assert_eq!(checked.code, 1);
}

#[test]
fn an_unknown_key_is_an_error_at_its_line() {
    let dir = workdir(
        "[server]\nlisten = \"127.0.0.1:8080\"\n\n[plugins.echo]\ntimeout-ms = 100\ntimeot-ms = 5\n",
        &["echo"],
    );
    let checked = check_in(dir.path());
    checked.line(
        "error: toolhost.toml:6:1: ",
        &["unknown field `timeot-ms`", "`timeout-ms`"],
    );
    assert_eq!(checked.code, 1);

    let dir = workdir("[server\nlisten = 1\n", &["echo"]);
    let checked = check_in(dir.path());
    checked.line("error: toolhost.toml:1:", &["invalid table header"]);
    assert_eq!(checked.lines.len(), 1, "{:?}", checked.lines);
    assert_eq!(checked.code, 1);
}

#[test]
fn a_secret_whose_variable_is_unset_is_a_warning_naming_it() {
    const VARIABLE: &str = "TOOLHOST_TEST_CHECK_NEVER_SET_0001";
    assert!(std::env::var_os(VARIABLE).is_none());
    let dir = workdir(
        // Its outbound HTTP granted, so the secret is the one finding.
        &format!(
            "[plugins.secret-thief]\nsecrets = {{ mine = {{ env = \"{VARIABLE}\" }} }}\nhttp = [{{ origin = \"http://127.0.0.1:9\" }}]\n"
        ),
        &["secret-thief"],
    );
    let checked = check_in(dir.path());
    checked.line("warning: toolhost.toml:2:13: ", &["secret-thief", "\"mine\"", VARIABLE]);
    assert_eq!(checked.findings().len(), 1, "{:?}", checked.lines);
    assert_eq!(checked.code, 0, "warnings alone pass");
}

#[test]
fn requested_but_ungranted_capabilities_are_warnings() {
    let dir = workdir("", &["secret-thief", "netprobe"]);
    let checked = check_in(dir.path());
    checked.line(
        "warning: toolhost.toml: ",
        &["secret-thief", "requests secret \"mine\""],
    );
    checked.line("warning: toolhost.toml: ", &["netprobe", "outbound HTTP"]);
    assert_eq!(checked.code, 0);
}

#[test]
fn a_broken_bundle_is_an_error_naming_the_bundle_and_the_line() {
    let dir = workdir("", &[]);
    let plugins = dir.path().join("plugins");
    // A manifest with a key that does not exist, on line 6.
    copy_bundle(&guest("echo"), &plugins.join("echo"));
    let manifest = std::fs::read_to_string(plugins.join("echo/connector.toml")).unwrap();
    let mut lines: Vec<&str> = manifest.lines().collect();
    assert_eq!(lines[5], "[capabilities]", "echo's manifest: {manifest}");
    lines.insert(5, "vendr = \"x\"");
    std::fs::write(plugins.join("echo/connector.toml"), lines.join("\n")).unwrap();
    // A component under another name than the manifest's.
    copy_bundle(&guest("netprobe"), &plugins.join("netprobe"));
    std::fs::rename(
        plugins.join("netprobe/netprobe.wasm"),
        plugins.join("netprobe/probe.wasm"),
    )
    .unwrap();
    let checked = check_in(dir.path());
    checked.line("error: plugins/echo: ", &["line 6, column 1", "unknown field `vendr`"]);
    checked.line(
        "error: plugins/netprobe: ",
        &[
            "netprobe.wasm",
            "rename it to netprobe.wasm, or set component = \"probe.wasm\"",
        ],
    );
    assert_eq!(checked.code, 1);
}

#[test]
fn approval_rules_and_tokens_that_would_not_load_are_errors() {
    let dir = workdir(
        "[[tokens]]\nname = \"ci\"\nrole = \"agent\"\nsha256 = \"not-hex\"\n\n[approvals]\nrules = [{ name = \"big\", tools = [\"echo.*\"], when = \"args.amount >\" }]\n",
        &["echo"],
    );
    let checked = check_in(dir.path());
    checked.line("error: toolhost.toml:2:8: ", &["token \"ci\"", "sha256"]);
    checked.line("error: toolhost.toml:6:1: ", &["approval rule", "big"]);
    assert_eq!(checked.code, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_grant_set_through_the_api_that_differs_from_the_file_is_a_warning() {
    let mut server = ServerProcess::start("[plugins.echo]\ntimeout-ms = 5000\n", &["echo"]);
    let (status, body) = put_grant(&server, "echo", &json!({ "timeout-ms": 4000 })).await;
    assert_eq!(status, 200, "{body}");
    assert!(server.stop().success());
    let checked = check_in(server.dir.path());
    checked.line(
        "warning: toolhost.toml:1:10: ",
        &[
            "the grant set through the API is in force",
            "DELETE /v1/plugins/echo/grants",
        ],
    );
    assert_eq!(checked.code, 0);
}

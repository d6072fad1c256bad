//! A real headless Chromium for the console's tests, driven over WebDriver:
//! Debian's `chromium` and `chromium-driver`, installed on first use the way
//! the guest toolchain is, and a `chromedriver` started on 127.0.0.1 for the
//! test and stopped with it.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Install Chromium and its WebDriver from Debian when they are missing
/// (once per machine: later runs find them).
fn installed() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        if Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists() {
            return;
        }
        let lock = super::repo_root().join("target/.apt.lock");
        let script = format!(
            "set -e; exec 9>'{}'; flock 9; \
             if [ ! -x {CHROMIUM} ] || [ ! -x {CHROMEDRIVER} ]; then \
               export DEBIAN_FRONTEND=noninteractive; \
               apt-get update -q >&2 && apt-get install -y -q chromium chromium-driver >&2; \
             fi",
            lock.display()
        );
        let status = Command::new("bash")
            .args(["-c", &script])
            .status()
            .expect("run apt-get");
        assert!(status.success(), "installing chromium and chromium-driver failed");
    });
}

/// A headless Chromium session; the driver stops when this is dropped.
pub struct Browser {
    pub client: Client,
    driver: Child,
    profile: super::Scratch,
}

impl Browser {
    pub async fn start() -> Browser {
        installed();
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let mut driver = Command::new(CHROMEDRIVER)
            .args([format!("--port={port}"), "--allowed-ips=127.0.0.1".into()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let profile = super::Scratch::new("chromium");
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let mut last = None;
        for _ in 0..100 {
            match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
            {
                Ok(client) => {
                    return Browser {
                        client,
                        driver,
                        profile,
                    }
                }
                Err(e) => last = Some(e),
            }
            if let Ok(Some(status)) = driver.try_wait() {
                panic!("chromedriver exited: {status}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no WebDriver session: {last:?}");
    }

    /// The element matching `css`, waiting up to ten seconds for it.
    pub async fn wait_for(&self, css: &str) -> fantoccini::elements::Element {
        match self
            .client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await
        {
            Ok(element) => element,
            Err(e) => {
                let url = self
                    .client
                    .current_url()
                    .await
                    .map(|u| u.to_string())
                    .unwrap_or_default();
                let source = self.client.source().await.unwrap_or_default();
                panic!("no {css:?} on {url} ({e}); the page:\n{source}")
            }
        }
    }

    /// The text of the element matching `css`.
    pub async fn text(&self, css: &str) -> String {
        self.wait_for(css).await.text().await.unwrap()
    }

    /// Run `script` in the page (its body; `arguments` are `args`).
    pub async fn run(&self, script: &str, args: Vec<Value>) -> Value {
        self.client.execute(script, args).await.unwrap()
    }

    /// Save a PNG of the window as `dir/name.png`.
    pub async fn screenshot(&self, dir: &Path, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }
}

impl Browser {
    /// End the session (and its Chromium), then the driver.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // A test that panics never closes its session: its Chromium, a child
        // of the driver, would outlive the driver and the test. Every one of
        // its processes names this session's profile folder.
        let _ = Command::new("pkill")
            .args([
                "-KILL",
                "-f",
                "--",
                &format!("--user-data-dir={}( |$)", self.profile.path().display()),
            ])
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

//! Headless Chromium for the browser tests, driven through chromedriver by fantoccini (a maintained W3C WebDriver
//! client): pages in separate browser profiles, find (waiting), click, read text, run scripts.

use fantoccini::wd::Capabilities;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Debian's Chromium.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Debian's ChromeDriver.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A running chromedriver (killed on drop).
#[derive(Debug)]
pub struct Driver {
    child: Child,
    base: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // chromedriver runs in a process group of its own, with the browsers it started: a test that fails before
        // quitting its sessions leaves no Chromium behind.
        // `-s KILL --` and only then the negative group id: procps' `kill -9 -10` reads `-10` as a second signal
        // and ends up calling kill(-1, SIGKILL) — every process the user may signal (seen here: as root it took
        // down the whole machine's session). With `--` the group id cannot be taken for anything else.
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &format!("-{}", self.child.id())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser with its own profile.
#[derive(Debug)]
pub struct Session<'a> {
    _driver: &'a Driver,
    client: Client,
    _profile: tempfile::TempDir,
}

impl Driver {
    /// Starts chromedriver, or returns None (with a loud notice) when Chromium is not installed outside CI.
    pub async fn start() -> Option<Driver> {
        let ci = crate::is_ci();
        if !std::path::Path::new(CHROMIUM).exists() || !std::path::Path::new(CHROMEDRIVER).exists() {
            assert!(
                !ci,
                "CI=true but chromium / chromium-driver are not installed (.ci/run installs them)"
            );
            eprintln!("\n*** SKIPPING the browser test: install Debian's chromium and chromium-driver to run it ***\n");
            return None;
        }
        let port = crate::free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let driver = Driver {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let http = reqwest::Client::new();
        for _ in 0..100 {
            if let Ok(r) = http.get(format!("{}/status", driver.base)).send().await
                && r.status().is_success()
            {
                return Some(driver);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not become ready");
    }

    /// A fresh browser with its own empty profile (cookies, so a fresh WeChat identity).
    pub async fn session(&self) -> Session<'_> {
        self.session_as(None).await
    }

    /// [`session`](Self::session) with another user agent (a phone's browser, WeChat's webview).
    pub async fn session_as(&self, user_agent: Option<&str>) -> Session<'_> {
        let profile = tempfile::tempdir().unwrap();
        let mut caps = Capabilities::new();
        caps.insert("browserName".into(), json!("chrome"));
        let mut args = vec![
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        if let Some(ua) = user_agent {
            args.push(format!("--user-agent={ua}"));
        }
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": args,
            }),
        );
        let client = ClientBuilder::rustls()
            .expect("a TLS configuration")
            .capabilities(caps)
            .connect(&self.base)
            .await
            .expect("a WebDriver session");
        Session {
            _driver: self,
            client,
            _profile: profile,
        }
    }
}

impl Session<'_> {
    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigation");
    }

    /// The first element matching `css`, waiting up to 10 s for it.
    async fn element(&self, css: &str) -> fantoccini::elements::Element {
        match self
            .client
            .wait()
            .at_most(Duration::from_secs(10))
            .every(Duration::from_millis(100))
            .for_element(Locator::Css(css))
            .await
        {
            Ok(e) => e,
            Err(e) => panic!("no element {css} on {}: {e}", self.url().await),
        }
    }

    /// The WebDriver reference of the first element matching `css`, waiting up to 10 s for it.
    pub async fn find(&self, css: &str) -> String {
        self.element(css).await.element_id().to_string()
    }

    pub async fn click(&self, css: &str) {
        self.element(css).await.click().await.expect("click");
    }

    pub async fn text(&self, css: &str) -> String {
        self.element(css).await.text().await.expect("element text")
    }

    pub async fn script(&self, script: &str) -> Value {
        self.client.execute(script, Vec::new()).await.expect("script")
    }

    /// A PNG screenshot of the viewport.
    pub async fn screenshot(&self) -> Vec<u8> {
        self.client.screenshot().await.expect("screenshot")
    }

    /// Resizes the window (a phone's screen: 375 × 812).
    pub async fn resize(&self, width: u32, height: u32) {
        self.client.set_window_size(width, height).await.expect("window size");
    }

    pub async fn url(&self) -> String {
        self.client
            .current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_default()
    }

    pub async fn quit(self) {
        let _ = self.client.close().await;
    }
}

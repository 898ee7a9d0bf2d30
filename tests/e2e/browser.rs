//! The sandbox demo in a real browser (Debian's headless Chromium through chromedriver, W3C WebDriver over HTTP):
//! open a coupon as the customer and see its QR, scan it as staff, confirm, see "redeemed".

use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use wxkit::configuration::Settings;
use wxkit::startup::Application;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

struct Driver {
    child: Child,
    base: String,
    http: reqwest::Client,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Session<'a> {
    driver: &'a Driver,
    id: String,
    _profile: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Driver {
    /// Starts chromedriver, or returns None (with a loud notice) when Chromium is not installed outside CI.
    async fn start() -> Option<Driver> {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
        if !std::path::Path::new(CHROMIUM).exists() || !std::path::Path::new(CHROMEDRIVER).exists() {
            assert!(
                !ci,
                "CI=true but chromium / chromium-driver are not installed (.ci/run installs them)"
            );
            eprintln!("\n*** SKIPPING the browser test: install Debian's chromium and chromium-driver to run it ***\n");
            return None;
        }
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let driver = Driver {
            child,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        };
        for _ in 0..100 {
            if let Ok(r) = driver.http.get(format!("{}/status", driver.base)).send().await
                && r.status().is_success()
            {
                return Some(driver);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not become ready");
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let response: Value = req.send().await.unwrap().json().await.unwrap();
        if response["value"].get("error").is_some() {
            panic!("WebDriver {path}: {}", response["value"]);
        }
        response["value"].clone()
    }

    /// A fresh browser with its own empty profile (cookies, so a fresh WeChat identity).
    async fn session(&self) -> Session<'_> {
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                         "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                         format!("--user-data-dir={}", profile.path().display())],
            },
        }}});
        let value = self.call(reqwest::Method::POST, "/session", Some(caps)).await;
        Session {
            driver: self,
            id: value["sessionId"].as_str().unwrap().to_owned(),
            _profile: profile,
        }
    }
}

impl Session<'_> {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        self.driver
            .call(method, &format!("/session/{}{path}", self.id), body)
            .await
    }

    async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    /// The first element matching `css`, waiting up to 10 s for it.
    async fn find(&self, css: &str) -> String {
        for _ in 0..100 {
            let r: Value = self
                .driver
                .http
                .post(format!("{}/session/{}/element", self.driver.base, self.id))
                .json(&json!({"using": "css selector", "value": css}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            // The W3C element reference is the object's only value, whatever its key.
            if let Some(id) = r["value"]
                .as_object()
                .and_then(|o| o.values().next())
                .and_then(Value::as_str)
                && r["value"].get("error").is_none()
            {
                return id.to_owned();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no element {css} on {}", self.url().await);
    }

    async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{id}/click"), Some(json!({})))
            .await;
    }

    async fn text(&self, css: &str) -> String {
        let id = self.find(css).await;
        self.call(reqwest::Method::GET, &format!("/element/{id}/text"), None)
            .await
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    async fn script(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    async fn quit(self) {
        self.call(reqwest::Method::DELETE, "", None).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_sandbox_demo_redeems_a_coupon_in_a_real_browser() {
    let Some(driver) = Driver::start().await else { return };
    // The sandbox exactly as `wxkit serve --sandbox` runs it with no other configuration (on a temp SQLite file).
    let dir = tempfile::tempdir().unwrap();
    let env = vec![
        (
            "DATABASE_URL".to_owned(),
            format!("sqlite://{}", dir.path().join("demo.db").display()),
        ),
        ("WXKIT__SERVER__ADDR".to_owned(), "127.0.0.1:0".to_owned()),
        ("WXKIT__SERVER__MODE".to_owned(), "sandbox".to_owned()),
    ];
    let app = Application::build(Settings::load_from(None, env).unwrap())
        .await
        .unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let code = app.demo().unwrap().customer_coupons[0].clone();
    tokio::spawn(app.run_until_stopped());

    // The customer opens their coupon from the demo page, picks who they are on WeChat's (simulated) page, sees the QR.
    let customer = driver.session().await;
    customer.goto(&format!("{base}/")).await;
    customer.click(&format!("a[href='/c/{code}']")).await;
    customer.click("button[data-openid='o-demo-customer']").await;
    customer.find("#qr").await;
    let loaded = customer
        .script("const i = document.getElementById('qr'); return i.complete && i.naturalWidth > 0;")
        .await;
    assert_eq!(loaded, json!(true), "the QR image loads");
    assert!(customer.url().await.ends_with(&format!("/c/{code}")));
    assert_eq!(
        customer.script("return document.getElementById('confirm')").await,
        Value::Null
    );

    // Staff scan the same URL on their own phone: WeChat (simulated) identifies them, they confirm.
    let staff = driver.session().await;
    staff.goto(&format!("{base}/c/{code}")).await;
    staff.click("button[data-openid='o-demo-staff']").await;
    staff.click("#confirm").await;
    let result = staff.text("#result").await;
    assert!(result.contains("已核销") && result.contains("Redeemed"), "{result}");
    staff.quit().await;

    // The customer's page now says redeemed.
    customer.goto(&format!("{base}/c/{code}")).await;
    let status = customer
        .script("return document.getElementById('status').dataset.status")
        .await;
    assert_eq!(status, json!("redeemed"));
    customer.quit().await;
}

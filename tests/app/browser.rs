//! The sandbox demo in a real browser (Debian's headless Chromium through chromedriver, W3C WebDriver over HTTP):
//! open a coupon as the customer and see its QR, scan it as staff, confirm, see "redeemed".

use serde_json::{Value, json};
use wxkit::configuration::Settings;
use wxkit::startup::Application;
use wxkit_testkit::browser::Driver;

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

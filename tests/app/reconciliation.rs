//! Daily reconciliation (对账): the simulator's bill of today (built from its order book in WeChat's format) against
//! the server's ledger — clean after ordinary trading, and each kind of difference found when the two disagree; the
//! API (JSON and CSV), `wxkit pay reconcile` (exit 1 with differences), `wxkit pay bill`, and the daily job.

use crate::pay::{order, refund, wait_paid, web_session};
use diesel::prelude::*;
use reqwest::Method;
use serde_json::{Value, json};
use wxkit::db::schema::{pay_orders, pay_reconciliations, pay_refunds};
use wxkit_e2e::{DbKind, TEST_ADMIN_TOKEN, TEST_APP_ID, TEST_MCH_ID, TEST_PAY_KEY, TestApp, spawn_app, spawn_app_with};

on_both_backends!(an_ordinary_day_reconciles_clean, each_kind_of_difference_is_found,);

fn today() -> String {
    (chrono::Utc::now() + chrono::Duration::hours(8))
        .format("%Y-%m-%d")
        .to_string()
}

async fn report(app: &TestApp, date: &str) -> Value {
    let r = app
        .admin(
            Method::GET,
            &format!("/api/v1/pay/reconciliations?date={date}&refresh=true"),
            json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn paid_order(app: &TestApp, cookie: &str, fee: i64) -> String {
    let (s, b) = order(
        app,
        cookie,
        json!({"description": "对账", "total_fee": fee, "trade_type": "NATIVE"}),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let no = b["out_trade_no"].as_str().unwrap().to_owned();
    app.sim.handle().pay_order(&no, None, None).unwrap();
    wait_paid(app, cookie, &no).await;
    no
}

async fn an_ordinary_day_reconciles_clean(kind: DbKind) {
    let Some(app) = spawn_app(kind).await else { return };
    let cookie = web_session(&app, "o-ledger").await;
    let no = paid_order(&app, &cookie, 990).await;
    paid_order(&app, &cookie, 500).await;
    let (s, b) = refund(&app, &no, json!({"refund_fee": 300})).await;
    assert_eq!(s, 201, "{b}");
    // `refunding` is seen only until the refund notify lands (a loaded machine may poll after it): wait for the
    // refund itself.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, st) = crate::pay::order_status(&app, None, &no).await;
        if st["refunds"][0]["status"] == "succeeded" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{st}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let r = report(&app, &today()).await;
    assert_eq!(r["clean"], true, "{r}");
    assert_eq!(r["bill_rows"], 3, "two payments and a refund: {r}");
    // A day without trades is clean too (WeChat: "No Bill Exist").
    let quiet = report(&app, "2020-01-01").await;
    assert_eq!(
        (quiet["clean"].as_bool(), quiet["bill_rows"].as_i64()),
        (Some(true), Some(0))
    );
    // Bad dates are refused.
    let r = app
        .admin(Method::GET, "/api/v1/pay/reconciliations?date=2026-13-40", json!({}))
        .await;
    assert_eq!(r.status(), 400);
}

async fn each_kind_of_difference_is_found(kind: DbKind) {
    let Some(app) = spawn_app(kind).await else { return };
    let cookie = web_session(&app, "o-ledger").await;
    let mismatched = paid_order(&app, &cookie, 990).await;
    let unpaid_here = paid_order(&app, &cookie, 100).await;
    let refunded = paid_order(&app, &cookie, 800).await;
    let (s, b) = refund(&app, &refunded, json!({"refund_fee": 200})).await;
    assert_eq!(s, 201, "{b}");
    let rno = b["out_refund_no"].as_str().unwrap().to_owned();
    let refunded_too = paid_order(&app, &cookie, 700).await;
    let (_, b) = refund(&app, &refunded_too, json!({"refund_fee": 700})).await;
    let rno_too = b["out_refund_no"].as_str().unwrap().to_owned();
    for (no, rno) in [(&refunded, &rno), (&refunded_too, &rno_too)] {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let (_, st) = crate::pay::order_status(&app, None, no).await;
            if st["refunds"].as_array().is_some_and(|a| {
                a.iter()
                    .any(|r| r["out_refund_no"] == rno.as_str() && r["status"] == "succeeded")
            }) {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{st}");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    // An order paid at WeChat that this server never placed (another system of the merchant's).
    let foreign = wechat::Pay::builder()
        .app_id(TEST_APP_ID)
        .mch_id(TEST_MCH_ID)
        .v2_key(wechat_pay::PayKey::new(TEST_PAY_KEY))
        .v2_sign_type(wechat_pay::SignType::HmacSha256)
        .base_url(&app.sim.base_url())
        .build()
        .unwrap();
    let other = wechat_pay::UnifiedOrder::builder()
        .body("别的系统")
        .out_trade_no("FOREIGN0001")
        .total_fee(wechat_pay::Fen(50))
        .client_ip("127.0.0.1")
        .notify_url("http://127.0.0.1:9/notify")
        .trade_type(wechat_pay::TradeType::Native { product_id: "p".into() })
        .build()
        .unwrap();
    foreign.v2().unwrap().unified_order(&other).await.unwrap();
    app.sim.handle().pay_order("FOREIGN0001", None, None).unwrap();
    // The ledger goes wrong in every other way.
    let now = chrono::Utc::now().timestamp_millis();
    let (pool, m, u, r1, r2) = (
        app.state.db.clone(),
        mismatched.clone(),
        unpaid_here.clone(),
        rno.clone(),
        rno_too.clone(),
    );
    tokio::task::spawn_blocking(move || {
        let write = |conn: &mut wxkit::db::DbConnection| {
            diesel::update(pay_orders::table.filter(pay_orders::out_trade_no.eq(&m)))
                .set(pay_orders::total_fee.eq(1990i64))
                .execute(conn)
                .unwrap();
            diesel::update(pay_orders::table.filter(pay_orders::out_trade_no.eq(&u)))
                .set((pay_orders::status.eq("created"), pay_orders::paid_at.eq(None::<i64>)))
                .execute(conn)
                .unwrap();
            // Paid here only: an order WeChat never saw, marked paid.
            diesel::insert_into(pay_orders::table)
                .values((
                    pay_orders::out_trade_no.eq("GHOST0001"),
                    pay_orders::description.eq("ghost"),
                    pay_orders::total_fee.eq(300i64),
                    pay_orders::trade_type.eq("NATIVE"),
                    pay_orders::status.eq("paid"),
                    pay_orders::paid_at.eq(now),
                    pay_orders::expires_at.eq(now / 1000 + 600),
                    pay_orders::created_at.eq(now),
                    pay_orders::updated_at.eq(now),
                ))
                .execute(conn)
                .unwrap();
            diesel::update(pay_refunds::table.filter(pay_refunds::out_refund_no.eq(&r1)))
                .set(pay_refunds::refund_fee.eq(250i64))
                .execute(conn)
                .unwrap();
            diesel::delete(pay_refunds::table.filter(pay_refunds::out_refund_no.eq(&r2)))
                .execute(conn)
                .unwrap();
            diesel::insert_into(pay_refunds::table)
                .values((
                    pay_refunds::out_refund_no.eq("rGHOST0001"),
                    pay_refunds::out_trade_no.eq(&m),
                    pay_refunds::refund_fee.eq(10i64),
                    pay_refunds::status.eq("succeeded"),
                    pay_refunds::created_at.eq(now),
                    pay_refunds::updated_at.eq(now),
                ))
                .execute(conn)
                .unwrap();
        };
        write(&mut pool.get().unwrap())
    })
    .await
    .unwrap();
    let r = report(&app, &today()).await;
    assert_eq!(r["clean"], false);
    let kinds: Vec<(String, String)> = r["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["kind"].as_str().unwrap().to_owned(),
                d["out_refund_no"]
                    .as_str()
                    .or(d["out_trade_no"].as_str())
                    .unwrap()
                    .to_owned(),
            )
        })
        .collect();
    for want in [
        ("amount_mismatch", mismatched.as_str()),
        ("status_mismatch", unpaid_here.as_str()),
        ("paid_at_wechat_only", "FOREIGN0001"),
        ("paid_here_only", "GHOST0001"),
        ("refund_amount_mismatch", rno.as_str()),
        ("refund_at_wechat_only", rno_too.as_str()),
        ("refund_here_only", "rGHOST0001"),
    ] {
        assert!(
            kinds.iter().any(|(k, n)| k == want.0 && n == want.1),
            "{want:?} missing: {kinds:?}"
        );
    }
    assert_eq!(kinds.len(), 7, "{kinds:?}");
    // CSV for a spreadsheet: a BOM, a header and one line per difference.
    let csv = app
        .http
        .get(format!("{}/api/v1/pay/reconciliations?date={}", app.address, today()))
        .bearer_auth(TEST_ADMIN_TOKEN)
        .header("accept", "text/csv")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        csv.starts_with("\u{feff}kind,out_trade_no,out_refund_no,ours,wechat"),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 8, "{csv}");
    // The CLI: exit 1 listing them; the raw bill saved.
    let cli = |args: Vec<String>| {
        let address = app.address.clone();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(wxkit_e2e::wxkit_bin())
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("WXKIT__ADMIN__TOKEN", TEST_ADMIN_TOKEN)
                .env("RUST_LOG", "warn")
                .current_dir(std::env::temp_dir())
                .args(&args)
                .args(["--server", &address])
                .output()
                .unwrap()
        })
    };
    let out = cli(vec!["pay".into(), "reconcile".into(), "--date".into(), today()])
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("paid_here_only\tGHOST0001"), "{text}");
    let file = tempfile::NamedTempFile::new().unwrap();
    let out = cli(vec![
        "pay".into(),
        "bill".into(),
        "--date".into(),
        today(),
        "-o".into(),
        file.path().display().to_string(),
    ])
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let bill = std::fs::read_to_string(file.path()).unwrap();
    assert!(bill.starts_with("交易时间,") && bill.contains("`FOREIGN0001"), "{bill}");
}

/// The daily job reconciles yesterday once the configured Beijing time has passed (here: at once).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_daily_job_reconciles_yesterday() {
    let Some(app) = spawn_app_with(DbKind::Sqlite, &[("WXKIT__PAY__RECONCILE_BILLS_AT", "00:00")]).await else {
        return;
    };
    let yesterday = (chrono::Utc::now() + chrono::Duration::hours(8) - chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let (pool, day) = (app.state.db.clone(), yesterday.clone());
        let found: Option<bool> = tokio::task::spawn_blocking(move || {
            let read = |conn: &mut wxkit::db::DbConnection| {
                pay_reconciliations::table
                    .find(day)
                    .select(pay_reconciliations::clean)
                    .first::<bool>(conn)
                    .optional()
                    .unwrap()
            };
            read(&mut pool.get().unwrap())
        })
        .await
        .unwrap();
        if let Some(clean) = found {
            assert!(clean, "a quiet day is clean");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "yesterday was not reconciled");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

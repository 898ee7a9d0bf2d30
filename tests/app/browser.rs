//! The sandbox demo in a real browser (Debian's headless Chromium through chromedriver, W3C WebDriver over HTTP):
//! open a coupon as the customer and see its QR, scan it as staff, confirm, see "redeemed".

use serde_json::{Value, json};
use wxkit::configuration::Settings;
use wxkit::startup::Application;
use wxkit_e2e::AppState as _;
use wxkit_testkit::browser::Driver;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_sandbox_demo_redeems_a_coupon_in_a_real_browser() {
    let Some(driver) = Driver::start().await else { return };
    // The sandbox exactly as `wxkit serve --sandbox` runs it with no other configuration (on a temp SQLite file).
    let (_dir, app, base) = sandbox().await;
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
    assert!(result.contains("Staff Wang"), "{result}");
    assert!(staff.text("#headline").await.contains("核销成功"));
    // The confirm was answered with a redirect: the result page is a GET, safe to reload.
    assert!(staff.url().await.ends_with(&format!("/c/{code}/result")));

    // The customer's page, never reloaded, flips to 核销成功 by itself and its QR is gone.
    wait_for(
        &customer,
        "the customer's page to follow the redemption",
        "return document.getElementById('status').dataset.status === 'redeemed'",
    )
    .await;
    let notice = customer.text("#live-text").await;
    assert!(notice.contains("核销成功"), "{notice}");
    assert_eq!(
        customer.script("return document.getElementById('qr')").await,
        Value::Null
    );

    // Another shop's coupon: the staff member is told so in words, with no confirm button.
    let admin = app_admin_token(&base).await;
    let http = reqwest::Client::new();
    let post = async |path: &str, body: Value| -> Value {
        let r = http
            .post(format!("{base}{path}"))
            .bearer_auth(&admin)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.unwrap()
    };
    let other = post("/api/v1/merchants", json!({"name": "隔壁面包店 Bakery next door"})).await;
    let other_campaign = post(
        "/api/v1/campaigns",
        json!({"merchant_id": other["id"], "title": "面包券 Bread coupon", "value_fen": 1000}),
    )
    .await;
    let other_coupon = post(
        &format!("/api/v1/campaigns/{}/coupons", other_campaign["id"]),
        json!({"owner_openid": "o-demo-customer"}),
    )
    .await;
    staff
        .goto(&format!("{base}/c/{}", other_coupon["code"].as_str().unwrap()))
        .await;
    let reason = staff.text("#cannot").await;
    assert!(reason.contains("不是本店的券"), "{reason}");
    assert_eq!(
        staff.script("return document.getElementById('confirm')").await,
        Value::Null
    );
    staff.quit().await;

    // A coupon not valid yet: the customer is told from when, and there is no QR to scan.
    let merchant = post("/api/v1/merchants", json!({"name": "早餐店 Breakfast"})).await;
    let later = post(
        "/api/v1/campaigns",
        json!({"merchant_id": merchant["id"], "title": "下周早餐券 Breakfast next week",
               "valid_from": "2099-01-01T00:00:00+08:00", "valid_until": "2099-02-01T00:00:00+08:00"}),
    )
    .await;
    let pending = post(
        &format!("/api/v1/campaigns/{}/coupons", later["id"]),
        json!({"owner_openid": "o-demo-customer"}),
    )
    .await;
    customer
        .goto(&format!("{base}/c/{}", pending["code"].as_str().unwrap()))
        .await;
    let notice = customer.text("#notice").await;
    assert!(
        notice.contains("起可用") && notice.contains("2099-01-01 00:00"),
        "{notice}"
    );
    assert_eq!(
        customer.script("return document.getElementById('qr')").await,
        Value::Null
    );
    customer.quit().await;
}

/// The sandbox's admin token, as its start page's server keeps it (one per database).
async fn app_admin_token(base: &str) -> String {
    SANDBOX_ADMIN
        .lock()
        .unwrap()
        .get(base)
        .cloned()
        .expect("sandbox() recorded the admin token")
}

static SANDBOX_ADMIN: std::sync::LazyLock<std::sync::Mutex<std::collections::HashMap<String, String>>> =
    std::sync::LazyLock::new(Default::default);

/// The sandbox exactly as `wxkit serve --sandbox` runs it with no other configuration, on a temp SQLite file (kept
/// while the returned directory lives), and its address.
async fn sandbox() -> (tempfile::TempDir, Application, String) {
    sandbox_with(&[]).await
}

/// The sandbox with some settings added.
async fn sandbox_with(extra: &[(&str, &str)]) -> (tempfile::TempDir, Application, String) {
    let dir = tempfile::tempdir().unwrap();
    let (app, base) = sandbox_in(dir.path(), extra).await;
    (dir, app, base)
}

/// The sandbox on the SQLite file `demo.db` in `dir` (a second call is a restart on the same database).
async fn sandbox_in(dir: &std::path::Path, extra: &[(&str, &str)]) -> (Application, String) {
    let mut env = vec![
        (
            "DATABASE_URL".to_owned(),
            format!("sqlite://{}", dir.join("demo.db").display()),
        ),
        ("WXKIT__SERVER__ADDR".to_owned(), "127.0.0.1:0".to_owned()),
        ("WXKIT__SERVER__MODE".to_owned(), "sandbox".to_owned()),
    ];
    for (k, v) in extra {
        // A later value of the same setting replaces the default (the database of a PostgreSQL run).
        env.retain(|(have, _)| have != k);
        env.push(((*k).to_owned(), (*v).to_owned()));
    }
    let app = Application::build(Settings::load_from(None, env).unwrap())
        .await
        .unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    if let Some(token) = &app.state().admin_token {
        SANDBOX_ADMIN
            .lock()
            .unwrap()
            .insert(base.clone(), token.secret().to_owned());
    }
    (app, base)
}

/// Polls `script` in `session` until it returns something other than null/false (up to 15 s).
async fn wait_for(session: &wxkit_testkit::browser::Session<'_>, what: &str, script: &str) -> Value {
    for _ in 0..150 {
        let v = session.script(script).await;
        if !(v.is_null() || v == json!(false)) {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what} on {}", session.url().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scanning_a_mini_program_code_logs_the_website_in_in_a_real_browser() {
    let Some(driver) = Driver::start().await else { return };
    let (_dir, app, base) = sandbox().await;
    tokio::spawn(app.run_until_stopped());

    // The website: the sandbox's start page links to the login page, which shows a mini-program code.
    let website = driver.session().await;
    website.goto(&format!("{base}/")).await;
    website.click("#login-link").await;
    let src = wait_for(
        &website,
        "the login code",
        "const i = document.getElementById('qr'); return i.complete && i.naturalWidth > 0 ? i.src : null;",
    )
    .await;
    assert_eq!(
        wait_for(
            &website,
            "the waiting state",
            "return document.getElementById('status').dataset.state === 'waiting';"
        )
        .await,
        json!(true)
    );
    // What the phone's camera reads from the code: the (simulated) mini program's page for this scene.
    let png = reqwest::get(src.as_str().unwrap())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let phone_url = wxkit_testkit::decode_qr(&png);
    assert!(phone_url.contains("/_sim/wxa/open?"), "{phone_url}");
    // The sandbox page offers the same address as a link, for a person without a second camera.
    let link = wait_for(
        &website,
        "the sandbox phone link",
        "const p = document.getElementById('sandbox-phone'); return p.hidden ? null : document.getElementById('phone-link').href;",
    )
    .await;
    let scene = |u: &str| {
        url::Url::parse(u)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "scene")
            .map(|(_, v)| v.into_owned())
    };
    assert_eq!(scene(link.as_str().unwrap()), scene(&phone_url));

    // The phone (another browser): pick who you are; the mini program logs in and reports the scan.
    let phone = driver.session().await;
    phone.goto(&phone_url).await;
    phone.click("button[data-openid='o-mp-demo-customer']").await;
    assert!(phone.text("#who").await.contains("顾客小李"));
    // The website shows who scanned, before anything is confirmed.
    let scanned = wait_for(
        &website,
        "the scanned state",
        "const s = document.getElementById('status'); return s.dataset.state === 'scanned' ? s.textContent : null;",
    )
    .await;
    assert!(scanned.as_str().unwrap().contains("顾客小李"), "{scanned}");
    assert!(website.url().await.ends_with("/login"));

    // Confirm on the phone: the website asks "log in as 顾客小李?" before it spends the ticket (a photographed code
    // confirmed by someone else must not log this browser in unseen), then lands on the account page.
    phone.click("#confirm").await;
    assert!(phone.text("#done").await.contains("已在网站上登录"));
    let asked = wait_for(
        &website,
        "the confirm question",
        "const s = document.getElementById('status'); return s.dataset.state === 'confirm' && !document.getElementById('confirm-login').hidden ? s.textContent : null;",
    )
    .await;
    assert!(asked.as_str().unwrap().contains("顾客小李"), "{asked}");
    assert!(
        website.url().await.ends_with("/login"),
        "not logged in before the answer"
    );
    website.click("#continue-login").await;
    wait_for(
        &website,
        "the account page",
        "return location.pathname === '/account' && document.getElementById('nickname') !== null;",
    )
    .await;
    assert!(website.text("#nickname").await.contains("顾客小李"));
    // Known to us through the mini program (the official account has not seen this person log in yet).
    assert_eq!(website.text("#openid").await, "o-mp-demo-customer");
    phone.quit().await;

    // Logging out from the account page ends the session: /account sends the browser back to /login.
    website.click("#logout").await;
    wait_for(&website, "the login page", "return location.pathname === '/login';").await;
    website.goto(&format!("{base}/account")).await;
    wait_for(
        &website,
        "the redirect to login",
        "return location.pathname === '/login';",
    )
    .await;
    website.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_share_demo_reaches_wx_ready_and_a_tampered_config_wx_error() {
    let Some(driver) = Driver::start().await else { return };
    let (_dir, app, base) = sandbox().await;
    tokio::spawn(app.run_until_stopped());
    let page = driver.session().await;
    page.goto(&format!("{base}/")).await;
    page.click("#share-link").await;
    let state = |s: &'static str| {
        format!("const e = document.getElementById('status'); return e.dataset.state === '{s}' ? e.textContent : null;")
    };
    let ready = wait_for(&page, "wx.ready", &state("ready")).await;
    assert!(ready.as_str().unwrap().contains("wx.ready"), "{ready}");
    page.goto(&format!("{base}/demo/share?tamper=1#top")).await;
    let error = wait_for(&page, "wx.error", &state("error")).await;
    assert!(error.as_str().unwrap().contains("config:invalid signature"), "{error}");
    page.quit().await;
}

/// On WeChat's (simulated) authorize page, picks the demo customer; a browser already logged in is not asked.
async fn pick_customer_if_asked(page: &wxkit_testkit::browser::Session<'_>) {
    let picker = "return document.querySelector(\"button[data-openid='o-demo-customer']\") !== null \
                  || document.getElementById('buy-button') !== null";
    wait_for(page, "the picker or the page", picker).await;
    let asked = page
        .script("return document.querySelector(\"button[data-openid='o-demo-customer']\") !== null")
        .await;
    if asked == json!(true) {
        page.click("button[data-openid='o-demo-customer']").await;
        // The login's redirects land before the caller navigates on (else they could overtake its navigation).
        wait_for(
            page,
            "back on the page after the login",
            "return document.readyState === 'complete' && document.getElementById('buy-button') !== null ? true : null",
        )
        .await;
    }
}

/// Serve, stop, serve again on the same database: the new run's simulator never issued the first run's tickets, and
/// the sandbox forgot them at start — the share demo, a JSAPI purchase and Add to WeChat work in the browser.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_sandbox_still_shares_pays_and_adds_cards() {
    let Some(driver) = Driver::start().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let state = |s: &'static str| {
        format!("const e = document.getElementById('status'); return e.dataset.state === '{s}' ? e.textContent : null;")
    };
    // The first run caches its simulator's jsapi_ticket (the share demo) and wx_card ticket (a card's cardExt).
    let (first, base) = sandbox_in(dir.path(), &[]).await;
    let card_coupon = first.demo().unwrap().card_coupon.clone().unwrap();
    let first_sale = first.demo().unwrap().sale_campaign_id;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(first.run_until(async move {
        let _ = stopped.await;
        "test"
    }));
    let page = driver.session().await;
    page.goto(&format!("{base}/demo/share")).await;
    wait_for(&page, "wx.ready (first run)", &state("ready")).await;
    page.goto(&format!("{base}/c/buy/{first_sale}?pay=jsapi")).await;
    pick_customer_if_asked(&page).await;
    page.goto(&format!("{base}/c/{card_coupon}")).await;
    page.click("#add-card").await;
    wait_for(
        &page,
        "the card (first run)",
        "return document.getElementById('in-wallet')",
    )
    .await;
    let _ = stop.send(());
    running.await.unwrap().unwrap();

    // The restart: a new simulator, the same database.
    let (second, base) = sandbox_in(dir.path(), &[]).await;
    let demo = second.demo().unwrap().clone();
    tokio::spawn(second.run_until_stopped());
    page.goto(&format!("{base}/demo/share")).await;
    let ready = wait_for(&page, "wx.ready after the restart", &state("ready")).await;
    assert!(ready.as_str().unwrap().contains("wx.ready"), "{ready}");
    page.goto(&format!("{base}/c/buy/{}?pay=jsapi", demo.sale_campaign_id))
        .await;
    pick_customer_if_asked(&page).await;
    page.click("#buy-button").await;
    wait_for(&page, "the cashier", "return document.getElementById('pay')").await;
    page.click("#pay").await;
    wait_for(&page, "the bought coupon", "return location.pathname.startsWith('/c/') && !location.pathname.startsWith('/c/buy') && document.getElementById('qr')").await;
    let card_coupon = demo.card_coupon.clone().unwrap();
    page.goto(&format!("{base}/c/{card_coupon}")).await;
    page.click("#add-card").await;
    let in_wallet = wait_for(
        &page,
        "the card in the wallet after the restart",
        "const e = document.getElementById('in-wallet'); return e ? e.textContent : null;",
    )
    .await;
    assert!(in_wallet.as_str().unwrap().contains("WeChat"), "{in_wallet}");
    page.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn buying_a_voucher_goes_from_buy_to_its_qr_and_add_to_wechat_links_a_card() {
    let Some(driver) = Driver::start().await else { return };
    let (_dir, app, base) = sandbox().await;
    let sale = app.demo().unwrap().sale_campaign_id;
    let card_coupon = app
        .demo()
        .unwrap()
        .card_coupon
        .clone()
        .expect("the sandbox made its WeChat card");
    tokio::spawn(app.run_until_stopped());
    // Inside WeChat (JSAPI): WeChat (simulated) identifies the customer, the page orders and calls wx.chooseWXPay.
    let page = driver.session().await;
    page.goto(&format!("{base}/c/buy/{sale}?pay=jsapi")).await;
    page.click("button[data-openid='o-demo-customer']").await;
    let title = page.text("#title").await;
    assert!(title.contains("Latte"), "{title}");
    page.click("#buy-button").await;
    // The simulator's cashier checked paySign and shows the amount.
    wait_for(
        &page,
        "the cashier",
        "return document.getElementById('pay') && document.getElementById('amount').textContent",
    )
    .await;
    assert_eq!(page.text("#amount").await, "¥9.90");
    page.click("#pay").await;
    // Back on our page, which waits for the server to see the payment, then opens the coupon with its QR.
    wait_for(&page, "the coupon page", "return location.pathname.startsWith('/c/') && !location.pathname.startsWith('/c/buy') && document.getElementById('qr')").await;
    let loaded = wait_for(
        &page,
        "the QR image",
        "const i = document.getElementById('qr'); return i.complete && i.naturalWidth > 0;",
    )
    .await;
    assert_eq!(loaded, json!(true));
    let status = page
        .script("return document.getElementById('status').dataset.status")
        .await;
    assert_eq!(status, json!("issued"));

    // Cancelling at the cashier comes back to the page, which says so and lets the customer try again.
    page.goto(&format!("{base}/c/buy/{sale}?pay=jsapi")).await;
    page.click("#buy-button").await;
    wait_for(&page, "the cashier", "return document.getElementById('cancel')").await;
    page.click("#cancel").await;
    let said = wait_for(
        &page,
        "the cancellation",
        "const e = document.getElementById('status'); return e && e.dataset.state === 'cancelled' ? e.textContent : null;",
    )
    .await;
    assert!(said.as_str().unwrap().contains("cancelled"), "{said}");

    // "Add to WeChat" on the card-backed coupon: cardExt from our server, wx.addCard at the (simulated) WeChat, its
    // user_get_card push links the card; the page then says the coupon is in the card bag.
    page.goto(&format!("{base}/c/{card_coupon}")).await;
    // First with the cardExt's signature spoiled on its way to wx.addCard: WeChat (simulated) refuses it.
    page.script(
        "const real = window.fetch; window.fetch = function (u, o) { return real(u, o).then(function (r) { \
           if (String(u).indexOf('/card-ext') < 0) { return r; } \
           return r.json().then(function (b) { const e = JSON.parse(b.cardExt); e.signature = '0'.repeat(40); \
             b.cardExt = JSON.stringify(e); return new Response(JSON.stringify(b), {status: 200}); }); }); }; return true;",
    )
    .await;
    page.click("#add-card").await;
    let refused = wait_for(
        &page,
        "the refusal",
        "const e = document.getElementById('card-status'); return e.dataset.state === 'error' ? e.textContent : null;",
    )
    .await;
    assert!(refused.as_str().unwrap().contains("invalid signature"), "{refused}");
    page.goto(&format!("{base}/c/{card_coupon}")).await;
    page.click("#add-card").await;
    let in_wallet = wait_for(
        &page,
        "the card in the wallet",
        "const e = document.getElementById('in-wallet'); return e ? e.textContent : null;",
    )
    .await;
    assert!(in_wallet.as_str().unwrap().contains("WeChat"), "{in_wallet}");
    page.quit().await;
}

/// The same purchase with the sandbox on WeChat Pay v3: RSA `paySign` checked by the cashier, a signed v3 notify
/// verified with the simulator's public key, the coupon opened.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn buying_a_voucher_on_pay_v3_in_a_real_browser() {
    let Some(driver) = Driver::start().await else { return };
    let (_dir, app, base) = sandbox_with(&[("WXKIT__PAY__API_VERSION", "v3")]).await;
    assert_eq!(app.state().pay.as_ref().map(|p| p.version()), Some("v3"));
    let sale = app.demo().unwrap().sale_campaign_id;
    tokio::spawn(app.run_until_stopped());
    let page = driver.session().await;
    page.goto(&format!("{base}/c/buy/{sale}?pay=jsapi")).await;
    page.click("button[data-openid='o-demo-customer']").await;
    page.click("#buy-button").await;
    wait_for(
        &page,
        "the cashier",
        "return document.getElementById('pay') && document.getElementById('amount').textContent",
    )
    .await;
    assert_eq!(page.text("#amount").await, "¥9.90");
    page.click("#pay").await;
    wait_for(&page, "the coupon page", "return location.pathname.startsWith('/c/') && !location.pathname.startsWith('/c/buy') && document.getElementById('qr')").await;
    let status = page
        .script("return document.getElementById('status').dataset.status")
        .await;
    assert_eq!(status, json!("issued"));
    page.quit().await;
}

/// A phone's browser outside WeChat buys by H5: the purchase page offers WeChat Pay, sends the browser to WeChat's H5
/// cashier (the simulator's, at WeChat's path), and — coming back to `redirect_url` with no word on the outcome —
/// asks the server until the order is paid, then opens the coupon.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_phone_browser_outside_wechat_buys_by_h5() {
    let Some(driver) = Driver::start().await else { return };
    let (_dir, app, base) = sandbox().await;
    let sale = app.demo().unwrap().sale_campaign_id;
    tokio::spawn(app.run_until_stopped());
    let phone = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Mobile Safari/537.36";
    let page = driver.session_as(Some(phone)).await;
    // Logged in once (the simulated WeChat login), then the page as a phone browser sees it.
    page.goto(&format!("{base}/c/buy/{sale}?pay=jsapi")).await;
    page.click("button[data-openid='o-demo-customer']").await;
    // The login's redirects land first (else they could overtake the next navigation and leave the jsapi page).
    wait_for(
        &page,
        "back on the buy page after the login",
        "return location.search === '?pay=jsapi' && document.readyState === 'complete' && document.getElementById('buy') ? true : null",
    )
    .await;
    page.goto(&format!("{base}/c/buy/{sale}")).await;
    let mode = wait_for(
        &page,
        "the buy page as a phone browser sees it",
        "return location.search === '' && document.readyState === 'complete' && document.getElementById('buy') ? document.getElementById('buy').dataset.mode : null",
    )
    .await;
    assert_eq!(mode, json!("h5"), "a phone outside WeChat pays by H5");
    assert!(page.text("#buy-button").await.contains("微信支付"));
    page.click("#buy-button").await;
    wait_for(
        &page,
        "WeChat's H5 cashier",
        "return location.pathname === '/cgi-bin/mmpayweb-bin/checkmweb' && document.getElementById('pay') && document.getElementById('amount').textContent",
    )
    .await;
    assert_eq!(page.text("#amount").await, "¥9.90");
    page.click("#pay").await;
    wait_for(&page, "the coupon page", "return location.pathname.startsWith('/c/') && !location.pathname.startsWith('/c/buy') && document.getElementById('qr')").await;
    let status = page
        .script("return document.getElementById('status').dataset.status")
        .await;
    assert_eq!(status, json!("issued"));
    page.quit().await;
}

/// The sandbox on `kind`'s database (a fresh PostgreSQL database, or the temp SQLite file), with the database kept
/// while the returned guard lives.
async fn sandbox_on(
    kind: wxkit_e2e::DbKind,
) -> Option<(tempfile::TempDir, wxkit_e2e::TestDatabase, Application, String)> {
    let db = wxkit_e2e::TestDatabase::create(kind)?;
    let url = db.url.clone();
    let (dir, app, base) = sandbox_with(&[("DATABASE_URL", url.as_str())]).await;
    Some((dir, db, app, base))
}

/// The owner's console in a real browser, on SQLite and PostgreSQL: logged in by scanning on a desktop, a campaign
/// made, a staff invite shown and scanned in the (simulated) WeChat by a new staff member who then redeems; the
/// figures, the list and the CSV (with its BOM); a purchase refunded; the sale campaign ended with refunds, which
/// the buyer's page explains; then the owner's common tasks on a phone inside WeChat.
async fn the_owner_runs_the_shop_from_the_console(kind: wxkit_e2e::DbKind) {
    let Some(driver) = Driver::start().await else { return };
    let Some((_dir, _db, app, base)) = sandbox_on(kind).await else {
        return;
    };
    let demo = app.demo().unwrap().clone();
    tokio::spawn(app.run_until_stopped());

    // The owner, on a computer: the console sends them to the scan-to-login page; the phone confirms.
    let owner = driver.session().await;
    owner.goto(&format!("{base}/console")).await;
    let link = wait_for(
        &owner,
        "the sandbox phone link",
        "const p = document.getElementById('sandbox-phone'); return p && !p.hidden ? document.getElementById('phone-link').href : null;",
    )
    .await;
    let phone = driver.session().await;
    phone.goto(link.as_str().unwrap()).await;
    phone.click("button[data-openid='o-mp-demo-owner']").await;
    phone.click("#confirm").await;
    wait_for(
        &owner,
        "the confirm question",
        "const b = document.getElementById('confirm-login'); return b && !b.hidden;",
    )
    .await;
    owner.click("#continue-login").await;
    wait_for(
        &owner,
        "the dashboard",
        "return document.getElementById('dashboard') !== null;",
    )
    .await;
    phone.quit().await;
    let mid = owner
        .script("return document.getElementById('console').dataset.merchant")
        .await;
    let mid = mid.as_str().unwrap().to_owned();
    assert_eq!(
        owner
            .script("return document.getElementById('console').dataset.role")
            .await,
        json!("owner")
    );

    // A campaign, from the form.
    owner.goto(&format!("{base}/console/{mid}/campaigns")).await;
    owner
        .script(
            "const f = document.getElementById('new-campaign'); const set = (n, v) => { f.querySelector('[name=' + n + ']').value = v; }; \
             set('title', '周末套餐 Weekend set'); set('value', '30'); set('price', '19.9'); set('quantity', '5'); return true;",
        )
        .await;
    owner.click("#create-campaign").await;
    wait_for(
        &owner,
        "the new campaign",
        "return document.getElementById('campaign') !== null;",
    )
    .await;
    assert!(owner.text("h1").await.contains("Weekend set"));

    // A staff invite: its QR code, read the way a phone's camera would.
    owner.goto(&format!("{base}/console/{mid}/staff")).await;
    owner.click("#make-invite").await;
    let png = wait_for(
        &owner,
        "the invite's QR code",
        "const i = document.querySelector('img[id^=invite-qr-]'); if (!i || !i.complete || !i.naturalWidth) return null; \
         const c = document.createElement('canvas'); c.width = i.naturalWidth; c.height = i.naturalHeight; \
         c.getContext('2d').drawImage(i, 0, 0); return c.toDataURL('image/png').split(',')[1];",
    )
    .await;
    use base64::Engine as _;
    let png = base64::engine::general_purpose::STANDARD
        .decode(png.as_str().unwrap())
        .unwrap();
    let invite = wxkit_testkit::decode_qr(&png);
    assert!(invite.contains("/join/"), "{invite}");

    // The new staff member scans it with WeChat: the official account's login, a name, joined.
    let staff = driver.session_as(Some(WECHAT_UA)).await;
    staff.goto(&invite).await;
    staff.click("button[data-openid='o-demo-visitor']").await;
    wait_for(
        &staff,
        "the join page",
        "return document.getElementById('join-form') !== null;",
    )
    .await;
    staff
        .script("document.getElementById('name').value = '新店员小赵'; return true;")
        .await;
    staff.click("#accept").await;
    let joined = staff.text("#message-title").await;
    assert!(joined.contains("已加入"), "{joined}");
    // They redeem a customer's coupon.
    let code = demo.customer_coupons[0].clone();
    staff.goto(&format!("{base}/c/{code}")).await;
    staff.click("#confirm").await;
    assert!(staff.text("#headline").await.contains("核销成功"));
    assert!(staff.text("#result").await.contains("小赵"));
    staff.quit().await;

    // The owner sees it: the figure, the list, and a CSV that Excel opens (a UTF-8 BOM first).
    owner.goto(&format!("{base}/console/{mid}")).await;
    assert_eq!(owner.text("#today-redeemed").await, "1");
    owner.goto(&format!("{base}/console/{mid}/redemptions")).await;
    let table = owner.text("#redemptions").await;
    assert!(table.contains(&code[22..]) && table.contains("小赵"), "{table}");
    // The raw bytes (a text decoder would drop the BOM): fetched as a download is, read as an array buffer.
    owner
        .script(
            "window.csvHead = null; fetch(document.getElementById('csv').href).then(r => r.arrayBuffer().then(b => \
             { window.csvHead = [r.status].concat(Array.from(new Uint8Array(b).slice(0, 3))); })); return true;",
        )
        .await;
    let first = wait_for(&owner, "the CSV", "return window.csvHead;").await;
    assert_eq!(first, json!([200, 0xEF, 0xBB, 0xBF]));

    // Two customers buy the sale voucher; the owner refunds the first from the orders page.
    let sale = demo.sale_campaign_id;
    let buy = async |who: &str| -> String {
        let page = driver.session().await;
        page.goto(&format!("{base}/c/buy/{sale}?pay=jsapi")).await;
        page.click(&format!("button[data-openid='{who}']")).await;
        page.click("#buy-button").await;
        wait_for(&page, "the cashier", "return document.getElementById('pay')").await;
        page.click("#pay").await;
        let path = wait_for(
            &page,
            "the coupon page",
            "return location.pathname.startsWith('/c/') && !location.pathname.startsWith('/c/buy') && document.getElementById('qr') ? location.pathname : null;",
        )
        .await;
        page.quit().await;
        path.as_str().unwrap().trim_start_matches("/c/").to_owned()
    };
    let _refunded_coupon = buy("o-demo-customer").await;
    owner.goto(&format!("{base}/console/{mid}/orders")).await;
    owner.click("a[id^=refund-]").await;
    wait_for(
        &owner,
        "the refund confirmation",
        "return document.getElementById('confirm-page') !== null;",
    )
    .await;
    owner.click("#confirm").await;
    assert!(owner.text("#flash").await.contains("退款"));
    let refunded = wait_for(
        &owner,
        "the refund to settle",
        "if (!document.querySelector('tr[data-status=refunded]')) { location.reload(); return null; } return true;",
    )
    .await;
    assert_eq!(refunded, json!(true));

    // The second buyer's coupon is sold and unused when the owner ends the campaign, choosing refund.
    let kept = buy("o-demo-customer").await;
    owner.goto(&format!("{base}/console/{mid}/campaigns/{sale}/end")).await;
    let facts = owner.text("#facts").await;
    assert!(facts.contains("1 张") && facts.contains("¥9.90"), "{facts}");
    owner.click("#choice-refund").await;
    owner.click("#confirm").await;
    assert!(owner.text("#flash").await.contains("活动已结束"));
    assert_eq!(
        owner
            .script("return document.getElementById('campaign').dataset.status")
            .await,
        json!("ended")
    );
    let customer = driver.session().await;
    customer.goto(&format!("{base}/c/{kept}")).await;
    customer.click("button[data-openid='o-demo-customer']").await;
    let note = customer.text("#ended-early").await;
    assert!(note.contains("活动已提前结束") && note.contains("¥9.90"), "{note}");
    assert_eq!(
        customer.script("return document.getElementById('qr')").await,
        Value::Null
    );
    // Refunded once: both orders refunded in full, nothing more.
    let admin = app_admin_token(&base).await;
    let orders: Value = reqwest::Client::new()
        .get(format!("{base}/api/v1/pay/orders?campaign_id={sale}"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paid: Vec<&Value> = orders["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["order_status"] == "paid")
        .collect();
    assert_eq!(paid.len(), 2, "{orders}");
    assert!(
        paid.iter()
            .all(|o| o["refunded_fee"].as_i64().unwrap_or(0) + o["refunding_fee"].as_i64().unwrap_or(0) == 990),
        "{orders}"
    );
    customer.quit().await;
    owner.quit().await;

    // On a phone inside WeChat: the official account's login, the common pages fit the screen.
    let phone_owner = driver.session_as(Some(WECHAT_UA)).await;
    phone_owner.resize(375, 812).await;
    phone_owner.goto(&format!("{base}/console")).await;
    phone_owner.click("button[data-openid='o-demo-owner']").await;
    wait_for(
        &phone_owner,
        "the dashboard",
        "return document.getElementById('dashboard') !== null;",
    )
    .await;
    for page in [
        "",
        "/campaigns",
        "/staff",
        "/redemptions",
        "/orders",
        &format!("/coupons?q={}", &code[22..]),
    ] {
        phone_owner.goto(&format!("{base}/console/{mid}{page}")).await;
        let fits = phone_owner
            .script("return document.documentElement.scrollWidth <= window.innerWidth + 1;")
            .await;
        assert_eq!(fits, json!(true), "{page} fits a phone's width");
    }
    let found = phone_owner.text("#coupons").await;
    assert!(found.contains("已核销"), "{found}");
    phone_owner.quit().await;
}

/// WeChat's in-app browser, as its user agent says.
const WECHAT_UA: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) \
                         Mobile/15E148 MicroMessenger/8.0.47(0x18002f2c) NetType/WIFI Language/zh_CN";

mod the_owner_runs_the_shop_from_the_console {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sqlite() {
        super::the_owner_runs_the_shop_from_the_console(wxkit_e2e::DbKind::Sqlite).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn postgres() {
        super::the_owner_runs_the_shop_from_the_console(wxkit_e2e::DbKind::Postgres).await
    }
    #[cfg(feature = "mysql")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn mysql() {
        super::the_owner_runs_the_shop_from_the_console(wxkit_e2e::DbKind::Mysql).await
    }
}

/// Saves a screenshot under the test's target directory (a person can look at them) and checks it is a PNG of the
/// phone-sized window.
async fn screenshot(session: &wxkit_testkit::browser::Session<'_>, name: &str) {
    let png = session.screenshot().await;
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{name} is a PNG");
    let width = u32::from_be_bytes([png[16], png[17], png[18], png[19]]);
    assert!(
        (300..=1200).contains(&width),
        "{name}: a phone-sized screenshot, {width} px wide"
    );
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

/// The pages people read, on a phone: one calm value line, no status said twice, the code's tail in the list, next
/// steps on the account page, pinch-zoom allowed, an icon, a bilingual "cancelled" before a new login code, and an
/// ended offer that offers nothing to buy.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_customer_pages_say_each_thing_once_on_a_phone() {
    let Some(driver) = Driver::start().await else { return };
    let (_dir, app, base) = sandbox().await;
    let demo = app.demo().unwrap().clone();
    tokio::spawn(app.run_until_stopped());
    let phone = driver.session_as(Some(WECHAT_UA)).await;
    phone.resize(375, 812).await;
    let code = demo.customer_coupons[0].clone();
    phone.goto(&format!("{base}/c/{code}")).await;
    phone.click("button[data-openid='o-demo-customer']").await;
    phone.find("#qr").await;
    screenshot(&phone, "coupon").await;
    let checks = phone
        .script(
            "const v = document.querySelectorAll('#value'); const meta = document.querySelector('meta[name=viewport]').content; \
             return [v.length, v[0].textContent, getComputedStyle(v[0]).whiteSpace, meta.includes('maximum-scale'), \
             document.querySelector('.hint').textContent.includes('上方'), \
             document.documentElement.scrollWidth <= window.innerWidth + 1];",
        )
        .await;
    assert_eq!(
        checks,
        json!([1, "面值 ¥18 · face value", "nowrap", false, true, true]),
        "{checks}"
    );
    let icon = phone
        .script("const x = new XMLHttpRequest(); x.open('GET', '/favicon.ico', false); x.send(); return [x.status, x.getResponseHeader('content-type')];")
        .await;
    assert_eq!(icon, json!([200, "image/png"]));

    // Redeemed by staff, then reloaded: the time appears once, the status once.
    let staff = driver.session().await;
    staff.goto(&format!("{base}/c/{code}")).await;
    staff.click("button[data-openid='o-demo-staff']").await;
    staff.click("#confirm").await;
    // The redemption has landed once the staff page says so (closing before then could cancel the form's POST).
    assert!(staff.text("#headline").await.contains("核销成功"));
    staff.quit().await;
    phone.goto(&format!("{base}/c/{code}")).await;
    wait_for(
        &phone,
        "the redeemed page",
        "return document.getElementById('redeemed-at')",
    )
    .await;
    let said = phone
        .script(
            "const t = document.body.innerText; const at = document.getElementById('redeemed-at').textContent.match(/\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d/)[0]; \
             return [t.split(at).length - 1, t.split('已核销').length - 1];",
        )
        .await;
    assert_eq!(said, json!([1, 1]), "the time and the status once each");
    screenshot(&phone, "coupon-redeemed").await;

    // My coupons: the code's last group tells identical titles apart; status and expiry on each line.
    phone.goto(&format!("{base}/coupons/mine")).await;
    let list = phone
        .script(
            "const li = [...document.querySelectorAll('#coupons li')]; const tails = li.map(l => l.querySelector('.tail').textContent); \
             return [li.length >= 3, new Set(tails).size === tails.length, li.every(l => l.textContent.includes('until') && l.querySelector('.status'))];",
        )
        .await;
    assert_eq!(list, json!([true, true, true]), "{list}");
    screenshot(&phone, "mine").await;

    // The account page leads somewhere.
    phone.goto(&format!("{base}/account")).await;
    let links = phone
        .script("return [...document.querySelectorAll('#next-steps a')].map(a => a.getAttribute('href'));")
        .await;
    assert!(
        links.as_array().unwrap().iter().any(|h| h == "/coupons/mine")
            && links.as_array().unwrap().iter().any(|h| h == "/"),
        "{links}"
    );
    screenshot(&phone, "account").await;

    // An ended offer: no stock count, no way to pay.
    let admin = app_admin_token(&base).await;
    let r = reqwest::Client::new()
        .post(format!("{base}/api/v1/campaigns/{}/end", demo.sale_campaign_id))
        .bearer_auth(&admin)
        .json(&json!({"sold": "keep"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    phone
        .goto(&format!("{base}/c/buy/{}?pay=jsapi", demo.sale_campaign_id))
        .await;
    let ended = phone
        .script(
            "return [document.getElementById('closed').textContent, !!document.getElementById('left'), \
             !!document.getElementById('buy-button'), document.body.innerText.includes('扫码支付')];",
        )
        .await;
    assert_eq!(
        ended.as_array().unwrap()[1..],
        [json!(false), json!(false), json!(false)],
        "{ended}"
    );
    assert!(ended[0].as_str().unwrap().contains("提前结束"), "{ended}");
    screenshot(&phone, "buy-ended").await;
    phone.quit().await;

    // Scan-to-login cancelled on the phone: the page says so before a new code.
    let website = driver.session().await;
    website.resize(375, 812).await;
    website.goto(&format!("{base}/login")).await;
    let link = wait_for(
        &website,
        "the sandbox phone link",
        "const p = document.getElementById('sandbox-phone'); return p && !p.hidden ? document.getElementById('phone-link').href : null;",
    )
    .await;
    let scanner = driver.session().await;
    scanner.goto(link.as_str().unwrap()).await;
    scanner.click("button[data-openid='o-mp-demo-customer']").await;
    scanner.click("#cancel").await;
    let cancelled = wait_for(
        &website,
        "the cancellation",
        "const s = document.getElementById('status'); return s.dataset.state === 'cancelled' ? s.textContent : null;",
    )
    .await;
    assert!(
        cancelled.as_str().unwrap().contains("已取消") && cancelled.as_str().unwrap().contains("Cancelled"),
        "{cancelled}"
    );
    screenshot(&website, "login-cancelled").await;
    wait_for(
        &website,
        "a new code",
        "return document.getElementById('status').dataset.state === 'waiting';",
    )
    .await;
    scanner.quit().await;
    website.quit().await;
}

/// One person across channels: a voucher bought on a computer (logged in by the mini program) is the same person's
/// inside WeChat, after the one linking step; and it is in their list there.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_coupon_bought_on_a_computer_is_yours_inside_wechat() {
    let Some(driver) = Driver::start().await else { return };
    let (_dir, app, base) = sandbox().await;
    let sale = app.demo().unwrap().sale_campaign_id;
    tokio::spawn(app.run_until_stopped());
    // On the computer: the buy page asks for a login; the phone's mini program confirms; then pay by scanning.
    let desk = driver.session().await;
    desk.goto(&format!("{base}/c/buy/{sale}?pay=native")).await;
    let link = wait_for(
        &desk,
        "the sandbox phone link",
        "const p = document.getElementById('sandbox-phone'); return p && !p.hidden ? document.getElementById('phone-link').href : null;",
    )
    .await;
    let mp = driver.session().await;
    mp.goto(link.as_str().unwrap()).await;
    mp.click("button[data-openid='o-mp-demo-customer']").await;
    mp.click("#confirm").await;
    // The phone's confirm has landed before the phone goes away (quitting mid-POST would lose it).
    assert!(mp.text("#done").await.contains("已在网站上登录"));
    mp.quit().await;
    wait_for(
        &desk,
        "the confirm question",
        "const b = document.getElementById('confirm-login'); return b && !b.hidden;",
    )
    .await;
    desk.click("#continue-login").await;
    desk.click("#buy-button").await;
    let scan = wait_for(
        &desk,
        "the code to scan",
        "const a = document.getElementById('sim-scan'); return a && a.getAttribute('href') !== '#' ? a.href : null;",
    )
    .await;
    // The phone that scans pays and stays on WeChat's own "paid" screen.
    let payer = driver.session_as(Some(WECHAT_UA)).await;
    payer.goto(scan.as_str().unwrap()).await;
    payer.click("#pay").await;
    assert!(payer.text("#paid").await.contains("支付成功"));
    payer.quit().await;
    let path = wait_for(
        &desk,
        "the coupon page",
        "return location.pathname.startsWith('/c/') && !location.pathname.startsWith('/c/buy') && document.getElementById('qr') ? location.pathname : null;",
    )
    .await;
    let code = path.as_str().unwrap().trim_start_matches("/c/").to_owned();
    desk.quit().await;

    // Inside WeChat the official account's silent login knows no unionid: the page offers the linking step.
    let phone = driver.session_as(Some(WECHAT_UA)).await;
    phone.goto(&format!("{base}/c/{code}")).await;
    phone.click("button[data-openid='o-demo-customer']").await;
    assert_eq!(phone.script("return document.getElementById('qr')").await, Value::Null);
    phone.click("#link-account-button").await;
    phone.click("button[data-openid='o-demo-customer']").await;
    phone.find("#qr").await;
    assert!(phone.url().await.ends_with(&format!("/c/{code}")));
    phone.goto(&format!("{base}/coupons/mine")).await;
    let mine = phone.text("#coupons").await;
    assert!(mine.contains(&code[22..]), "{mine}");
    phone.quit().await;
}

/// 商家券 in headless Chromium, in the sandbox: the customer adds their coupon to the WeChat card bag through
/// WeChat's (simulated) H5 领券 page and comes back to see it there; a staff member opens the scanner page, which
/// configures the JS-SDK and opens `wx.scanQRCode`; what the camera "saw" (the card-bag code) is redeemed → 核销成功;
/// WeChat Pay then has the coupon used.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wechat_pay_coupon_goes_to_the_card_bag_and_staff_scan_it() {
    let Some(driver) = Driver::start().await else { return };
    let (_dir, app, base) = sandbox().await;
    let code = app
        .demo()
        .unwrap()
        .busifavor_coupon
        .clone()
        .expect("the sandbox made its 商家券 stock");
    let sim = app.sandbox_url().unwrap().to_owned();
    tokio::spawn(app.run_until_stopped());

    let customer = driver.session().await;
    customer.goto(&format!("{base}/c/{code}")).await;
    customer.click("button[data-openid='o-demo-customer']").await;
    customer.click("#add-busifavor").await;
    // WeChat's page: the stock, and 领取.
    wait_for(
        &customer,
        "WeChat's 领券 page",
        "return document.getElementById('busifavor-receive')",
    )
    .await;
    assert!(
        customer
            .url()
            .await
            .starts_with(&format!("{sim}/busifavor/getcouponinfo"))
    );
    customer.click("#busifavor-receive").await;
    let outcome = wait_for(
        &customer,
        "received",
        "const e = document.getElementById('busifavor-result'); return e ? e.dataset.outcome : null;",
    )
    .await;
    assert_eq!(outcome, json!("received"));
    // Back to the shop's page: it asked WeChat, and shows the coupon in the card bag.
    customer.goto(&format!("{base}/c/{code}")).await;
    let in_bag = wait_for(
        &customer,
        "in the card bag",
        "const e = document.getElementById('in-wallet'); return e ? e.textContent : null;",
    )
    .await;
    assert!(in_bag.as_str().unwrap().contains("WeChat"), "{in_bag}");
    assert_eq!(
        customer.script("return document.getElementById('add-busifavor')").await,
        Value::Null
    );

    // The staff member's scanner: JS-SDK ready, wx.scanQRCode opens, the card-bag code is "seen".
    let staff = driver.session().await;
    staff.goto(&format!("{base}/staff/scan")).await;
    staff.click("button[data-openid='o-demo-staff']").await;
    wait_for(
        &staff,
        "the scanner ready",
        "const e = document.getElementById('scan-status'); return e && e.dataset.state === 'ready' ? true : null;",
    )
    .await;
    staff.click("#scan").await;
    wait_for(
        &staff,
        "WeChat's scanner",
        "return document.getElementById('wx-scan-input')",
    )
    .await;
    staff
        .script(&format!(
            "document.getElementById('wx-scan-input').value = '{code}'; return true;"
        ))
        .await;
    staff.click("#wx-scan-ok").await;
    wait_for(
        &staff,
        "the result page",
        "return location.pathname.endsWith('/result') && document.getElementById('headline') ? true : null;",
    )
    .await;
    let headline = staff.text("#headline").await;
    assert!(headline.contains("核销成功"), "{headline}");
    assert!(staff.text("#result").await.contains("Staff Wang"));
    // WeChat Pay has the coupon used (the outbox's use call), once.
    let coupon: Value = reqwest::get(format!("{base}/api/v1/coupons/{code}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let stock = coupon["wechat_pay_stock_id"].as_str().unwrap().to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let list: Value = reqwest::get(format!("{sim}/_sim/pay/busifavor/coupons?stock_id={stock}"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mine = list["coupons"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["coupon_code"] == code.as_str())
            .cloned();
        if mine.as_ref().is_some_and(|c| c["state"] == "USED") {
            assert_eq!(mine.unwrap()["uses"], 1);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not used at WeChat Pay: {list}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    customer.quit().await;
    staff.quit().await;
}

//! `wxkit serve` (and the sandbox banner), `wxkit migrate` and `wxkit sim`.

use super::CliError;
use crate::configuration::Settings;
use crate::db;
use crate::startup::Application;

/// `wxkit serve`: builds the application, says where it is (and, in sandbox mode, what to try), serves until stopped.
pub(super) async fn serve(
    config: Option<&std::path::Path>,
    addr: Option<String>,
    sandbox: bool,
    sandbox_sim_addr: Option<String>,
) -> Result<(), CliError> {
    // `--sandbox` is `server.mode = "sandbox"` from the start: every setting is read and checked as in sandbox mode
    // (a v3 pay setting then needs no merchant of its own, as with the setting).
    let mut env: Vec<(String, String)> = std::env::vars().collect();
    if sandbox {
        env.retain(|(k, _)| k != "WXKIT__SERVER__MODE");
        env.push(("WXKIT__SERVER__MODE".to_owned(), "sandbox".to_owned()));
    }
    let mut settings = Settings::load_from(config, env)?;
    if let Some(sim_addr) = sandbox_sim_addr {
        if sim_addr.parse::<std::net::SocketAddr>().is_err() {
            return Err(CliError::Usage(format!(
                "--sandbox-sim-addr {sim_addr:?} is not HOST:PORT (e.g. 0.0.0.0:9000)"
            )));
        }
        settings.server.sandbox_sim_addr = sim_addr;
    }
    if let Some(addr) = addr {
        if addr.parse::<std::net::SocketAddr>().is_err() {
            return Err(CliError::Usage(format!(
                "--addr {addr:?} is not HOST:PORT (e.g. 127.0.0.1:8080)"
            )));
        }
        settings.server.addr = addr;
    }
    let settings_admin_pinned = settings.admin.token.is_some();
    let app = Application::build(settings).await?;
    let base = app.platform().public_base_url.clone();
    let admin_pinned = settings_admin_pinned;
    // The banner is for people: on stdout, so that stderr carries only log lines (JSON lines with
    // `--log-format json`).
    println!(
        "wxkit listening on http://{} (database: {})",
        app.addr(),
        app.platform().backend.target()
    );
    // 商家券 (WeChat Pay coupons in the card bag): on, or which setting keeps it off.
    match (&app.wechat().busifavor, &app.wechat().pay) {
        (Some(b), _) => println!("  WeChat Pay 商家券: on (merchant {})", b.mch_id),
        (None, Some(pay)) if pay.web.v3().is_ok() => {
            println!("  WeChat Pay 商家券: off — set pay.key (the API v2 key signs its H5 and mini-program sends)")
        }
        _ => {}
    }
    if let Some(sim) = app.sandbox_url() {
        println!("sandbox mode: WeChat simulator at {sim}");
    }
    println!("  health:    {base}/healthz");
    println!("  readiness: {base}/readyz");
    if let Some(demo) = app.demo() {
        println!("sandbox demo (pick a simulated WeChat user on the authorize page):");
        println!("  start here:        {base}/");
        for code in &demo.customer_coupons {
            println!("  customer's coupon: {base}/c/{code}");
        }
        if let Some(code) = &demo.card_coupon {
            println!("  add to WeChat:     {base}/c/{code}   (a card-backed coupon: 加入微信卡包)");
        }
        if let Some(code) = &demo.busifavor_coupon {
            println!("  WeChat Pay coupon: {base}/c/{code}   (商家券: 加入微信卡包 through WeChat's 领券 page)");
        }
        println!("  staff scanner:     {base}/staff/scan   (pick 店员小王 Staff Wang; wx.scanQRCode)");
        println!("  my coupons:        {base}/coupons/mine");
        println!("  merchant console:  {base}/console   (log in by scanning, pick 店主老陈 Owner Chen)");
        println!("  scan-to-login:     {base}/login   (open the page's phone link in another browser)");
        println!("  JS-SDK share demo: {base}/demo/share");
        println!(
            "  buy a voucher:     {base}/c/buy/{}   (simulated WeChat Pay cashier)",
            demo.sale_campaign_id
        );
        println!(
            "  POS redemption:    curl -X POST {base}/api/v1/redemptions -H 'Authorization: Bearer {}' \\",
            demo.staff_token
        );
        println!(
            "                       -H 'Content-Type: application/json' -d '{{\"code\":\"{}\"}}'",
            demo.customer_coupons.first().map(String::as_str).unwrap_or("CODE")
        );
        match (&app.slices().keys.admin_token, admin_pinned) {
            // A pinned token is the operator's: never echoed.
            (Some(_), true) => println!("  admin API token:   the one in admin.token"),
            (Some(admin), false) => {
                println!("  admin API token:   {}   (kept in this database)", admin.secret())
            }
            (None, _) => {}
        }
    }
    app.run_until_stopped().await?;
    Ok(())
}

/// `wxkit migrate [--create-database]`.
pub(super) async fn migrate(config: Option<&std::path::Path>, create_database: bool) -> Result<(), CliError> {
    let settings = Settings::load(config)?;
    let backend = db::Backend::from_url(&settings.database.url)?;
    let target = backend.target();
    let applied = tokio::task::spawn_blocking(move || {
        if create_database && backend.create_database_if_missing()? {
            println!("created {}", backend.target());
        }
        backend.migrate()
    })
    .await
    .map_err(|e| db::DbError::Task(e.to_string()))??;
    if applied.is_empty() {
        println!("{target}: up to date");
    } else {
        for name in applied {
            println!("applied {name}");
        }
    }
    Ok(())
}

/// `wxkit backup --to FILE`.
pub(super) async fn backup(config: Option<&std::path::Path>, to: &std::path::Path) -> Result<(), CliError> {
    let settings = Settings::load(config)?;
    let backend = db::Backend::from_url(&settings.database.url)?;
    let target = backend.target();
    let dest = to.to_path_buf();
    let bytes = tokio::task::spawn_blocking(move || db::backup(&backend, &dest))
        .await
        .map_err(|e| db::DbError::Task(e.to_string()))??;
    println!("backed up {target} to {} ({bytes} bytes)", to.display());
    Ok(())
}

/// `wxkit sim`: the simulator alone, until stopped.
#[cfg(feature = "sandbox")]
pub(super) async fn sim(
    addr: String,
    apps: Vec<(String, String)>,
    merchants: Vec<(String, String)>,
) -> Result<(), CliError> {
    if addr.parse::<std::net::SocketAddr>().is_err() {
        return Err(CliError::Usage(format!(
            "--addr {addr:?} is not HOST:PORT (e.g. 127.0.0.1:9000)"
        )));
    }
    let handle = wechat_sim::SimHandle::default();
    for (id, secret) in &apps {
        handle.add_app(id, secret);
    }
    for (mch_id, key) in &merchants {
        handle.add_merchant(mch_id, key);
    }
    let sim = wechat_sim::SimServer::start_with(&addr, handle, true)
        .await
        .map_err(|e| CliError::Usage(format!("cannot listen on {addr}: {e} (pick another --addr)")))?;
    eprintln!("WeChat simulator listening on {}", sim.base_url());
    for (id, _) in &apps {
        eprintln!("  app {id}");
    }
    for (mch_id, _) in &merchants {
        eprintln!("  merchant {mch_id}");
    }
    eprintln!(
        "  control API: {}/_sim/counters, /_sim/clock, /_sim/faults, /_sim/reset",
        sim.base_url()
    );
    sim.wait().await?;
    Ok(())
}

//! The three product handles against one simulator started in this process: an official account (H5 login, a
//! JS-SDK config, a template message), a mini program (login) and a WeChat Pay merchant (a v2 order) — each built
//! from one builder, each API group of an app sharing that app's one access token.
//!
//! `cargo run -p wxkit-wechat --example official_account`

use wechat::wechat_message::send::{Data, TemplateMessage};
use wechat::wechat_pay::{Fen, PayKey, TradeType, UnifiedOrder};
use wechat::{MiniProgram, OfficialAccount, Pay};

const OA_ID: &str = "wxexample0000001";
const OA_SECRET: &str = "example-secret-0123456789abcdef0";
const MP_ID: &str = "wxexamplemp00001";
const MP_SECRET: &str = "example-mp-secret-0123456789abcd";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sim = wechat_sim::SimServer::start("127.0.0.1:0", &[(OA_ID, OA_SECRET), (MP_ID, MP_SECRET)]).await?;
    let base_url = sim.base_url(); // leave `.base_url(..)` out to talk to WeChat itself

    // The official account.
    let oa = OfficialAccount::builder()
        .app_id(OA_ID)
        .secret(OA_SECRET)
        .base_url(&base_url)
        .build()?;
    let code = sim
        .handle()
        .issue_oauth_code(OA_ID, "o-alice", "snsapi_base")
        .ok_or("no code")?;
    let login = oa.oauth().exchange_code(&code).await?;
    println!("H5 login: {}", login.openid.as_str());
    let config = oa.jssdk_config("https://shop.example/c/ABC", 1_800_000_000).await?;
    println!("wx.config signature: {}", config.signature);
    sim.handle().follow(OA_ID, "o-alice");
    sim.handle().add_template(OA_ID, "tpl-redeemed", &["thing1", "time2"]);
    let message = TemplateMessage::new(
        "o-alice",
        "tpl-redeemed",
        Data::new()
            .with("thing1", "拿铁 · 核销成功")
            .with("time2", "2026-11-27 10:00"),
    )?;
    let msgid = oa.messages().send_template(&message).await?;
    println!("template message sent: msgid {msgid}");
    // The JS-SDK ticket and the template send both needed the access token: one fetch served them.
    println!("access tokens fetched: {}", sim.handle().calls("/cgi-bin/token"));

    // The mini program.
    let mp = MiniProgram::builder()
        .app_id(MP_ID)
        .secret(MP_SECRET)
        .base_url(&base_url)
        .build()?;
    let js_code = sim.handle().issue_js_code(MP_ID, "o-mini").ok_or("no js_code")?;
    let session = mp.client().code_to_session(&js_code).await?;
    println!("mini-program login: {}", session.openid.as_str());

    // The merchant.
    sim.handle()
        .add_merchant("1900000109", "examplepaykey0123456789abcdefghi");
    let pay = Pay::builder()
        .app_id(OA_ID)
        .mch_id("1900000109")
        .v2_key(PayKey::new("examplepaykey0123456789abcdefghi"))
        .base_url(&base_url)
        .build()?;
    let order = UnifiedOrder::builder()
        .body("拿铁")
        .out_trade_no("EXAMPLEHANDLE01")
        .total_fee(Fen(1800))
        .client_ip("127.0.0.1")
        .notify_url("https://shop.example/wechat/pay/notify")
        .trade_type(TradeType::Jsapi {
            openid: login.openid.as_str().into(),
        })
        .build()?;
    let prepay = pay.v2()?.unified_order(&order).await?;
    println!(
        "wx.requestPayment package: {}",
        pay.v2()?.jsapi_params(&prepay.prepay_id, 1_800_000_000).package
    );
    sim.stop().await;
    Ok(())
}

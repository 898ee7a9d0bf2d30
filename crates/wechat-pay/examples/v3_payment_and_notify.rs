//! A WeChat Pay v3 payment with its notify, against the simulator started in this process.
//!
//! `cargo run -p wxkit-wechat-pay --example v3_payment_and_notify`
//!
//! The simulator checks every request's RSA signature (a wrong key gets 401 SIGN_ERROR, as WeChat answers) and
//! signs its answers and notifies with its WeChat Pay public key; the client verifies them.

use std::sync::Arc;
use wechat_core::AppId;
use wechat_pay::v3::{ApiV3Key, Channel, Client, Event, MerchantPrivateKey, Order, Prepay, PublicKey, RequestSigner};
use wechat_pay::{Fen, OrderRef, TradeState};

const APP_ID: &str = "wxexample0000001";
const MCH_ID: &str = "1900000109";
const API_V3_KEY: &str = "exampleapiv3key0123456789abcdefg";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sim = wechat_sim::SimServer::start("127.0.0.1:0", &[(APP_ID, "example-secret-0123456789abcdef0")]).await?;
    // The merchant, registered with the simulator: its API certificate's serial and public key, its APIv3 key.
    let info = sim.handle().add_v3_merchant(
        MCH_ID,
        API_V3_KEY,
        wechat_sim::SANDBOX_MERCHANT_SERIAL,
        wechat_sim::SANDBOX_MERCHANT_CERT,
        wechat_sim::SigningMode::PublicKey,
    )?;
    let signer = RequestSigner::new(
        MCH_ID,
        wechat_sim::SANDBOX_MERCHANT_SERIAL,
        MerchantPrivateKey::from_pem(wechat_sim::SANDBOX_MERCHANT_KEY)?,
    );
    let pay = Client::builder(signer, ApiV3Key::new(API_V3_KEY))
        .base_url(&sim.base_url())
        .transport(Arc::new(wechat_core::ReqwestTransport::new()?))
        .public_key(info.public_key_id, PublicKey::from_pem(&info.public_key_pem)?)
        .build()?;

    // Place a JSAPI order and build what the page passes to wx.requestPayment.
    let app = AppId::new(APP_ID);
    let order = Order::new(
        &app,
        "拿铁",
        "EXAMPLE0000001",
        Fen(1800),
        "http://127.0.0.1:9/wechat/pay/v3/notify",
        Channel::Jsapi {
            openid: "o-alice".into(),
        },
    )?;
    let Prepay::PrepayId(prepay_id) = pay.prepay(&order).await? else {
        return Err("no prepay_id".into());
    };
    let params = pay.jsapi_params(&app, &prepay_id, 1_800_000_000);
    println!(
        "wx.requestPayment: package={} signType={} paySign={}…",
        params.package,
        params.sign_type,
        &params.pay_sign[..16]
    );

    // The customer pays; WeChat Pay sends the notify. Verify and decrypt it as a notify handler would.
    sim.handle()
        .pay_order("EXAMPLE0000001", None, None)
        .map_err(|e| format!("{e:?}"))?;
    let notify = sim
        .handle()
        .notifications()
        .into_iter()
        .find(|n| n.out_trade_no == "EXAMPLE0000001")
        .ok_or("no notify queued")?;
    let body = notify.body().as_bytes().to_vec();
    let headers = sim.handle().sign_v3_notify(MCH_ID, &body);
    let mut map = http::HeaderMap::new();
    for (k, v) in headers {
        map.insert(k, v.parse()?);
    }
    let verified = pay.verify_notify(&map, &body).await?;
    if let Event::TransactionSuccess(t) = verified.event {
        println!(
            "notify verified: {} paid {:?}, transaction {:?}",
            t.out_trade_no,
            t.amount.map(|a| a.total),
            t.transaction_id
        );
    }

    // And the order as WeChat Pay reports it.
    let t = pay.query(&OrderRef::OutTradeNo("EXAMPLE0000001".into())).await?;
    assert_eq!(t.trade_state, TradeState::Success);
    println!("query: {:?}", t.trade_state);
    sim.stop().await;
    Ok(())
}

//! A WeChat card (卡券) issued and redeemed, against the simulator started in this process: the logo uploaded, a
//! GENERAL_COUPON created, the `cardExt` for `wx.addCard` signed, the customer adding it to their card bag, and
//! the code decrypted, looked up and consumed by the cashier — once.
//!
//! `cargo run -p wxkit-wechat-card --example card_issue_and_consume`

use wechat_card::{BaseInfo, CardClient, CardDefinition, CardExt, CardKind, DateInfo, Error};
use wechat_core::App;

const APP_ID: &str = "wxexample0000001";
const SECRET: &str = "example-secret-0123456789abcdef0";

/// A 1×1 PNG: the simulator checks the type and size of an upload, as WeChat does.
const LOGO: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4, 0x89, 0x00, 0x00, 0x00, 0x0d, 0x49,
    0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0xf0, 0x1f, 0x00, 0x05, 0x00, 0x01, 0xff, 0x89, 0x99, 0x3d,
    0x1d, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sim = wechat_sim::SimServer::start("127.0.0.1:0", &[(APP_ID, SECRET)]).await?;
    let app = App::builder()
        .app_id(APP_ID)
        .secret(SECRET)
        .base_url(&sim.base_url())
        .build()?;
    let cards = CardClient::from_app(&app);

    // The merchant creates the coupon.
    let logo_url = cards.upload_logo(LOGO).await?;
    let base = BaseInfo::builder()
        .logo_url(&logo_url)
        .brand_name("wxkit咖啡")
        .title("免费咖啡一杯")
        .color("Color010")
        .notice("请出示二维码核销")
        .description("每人限领一张，不与其他优惠同享")
        .date_info(DateInfo::FixTerm {
            fixed_term: 30,
            fixed_begin_term: 0,
        })
        .quantity(100)
        .build()?
        .get_limit(1);
    let card = CardDefinition::new(
        CardKind::GeneralCoupon {
            default_detail: "美式咖啡一杯".into(),
        },
        base,
    )?;
    let card_id = cards.create(&card).await?;
    println!("card created: {card_id}");

    // The page calls wx.addCard with this cardExt (signed with the cached wx_card api_ticket).
    let card_ext = cards
        .card_ext(&CardExt::new(&card_id).outer_str("campaign-7"), 1_800_000_000)
        .await?;
    println!("cardExt: {card_ext}");

    // The customer taps "add to card bag" (in the simulator, as WeChat's page would).
    let added: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/_sim/cards/{card_id}/add", sim.base_url()))
        .json(&serde_json::json!({"openid": "o-alice", "outer_str": "campaign-7"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let encrypt_code = added["encrypt_code"].as_str().ok_or("no encrypt_code")?;

    // At the counter: the code the customer shows, looked up and consumed.
    let code = cards.decrypt_code(encrypt_code).await?;
    let info = cards.get_code(&code, Some(&card_id), true).await?;
    println!("code {code}: holder {}, usable {}", info.openid, info.can_consume);
    let consumed = cards.consume_code(&code, Some(&card_id)).await?;
    println!("consumed for {}", consumed.openid);
    // A second scan of the same code is refused (40099), never redeemed twice.
    match cards.consume_code(&code, Some(&card_id)).await {
        Err(Error::AlreadyConsumed { .. }) => println!("second consume refused: already consumed"),
        other => return Err(format!("a second consume must be refused, got {other:?}").into()),
    }
    sim.stop().await;
    Ok(())
}

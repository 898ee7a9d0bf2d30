//! Mini-program login, the phone number and a mini-program code, against the simulator started in this process.
//!
//! `cargo run -p wxkit-wechat-oauth --example miniprogram_login`

use wechat_core::App;
use wechat_oauth::miniprogram::{MiniProgramClient, WxaCodeRequest};

const MP_ID: &str = "wxexamplemp00001";
const SECRET: &str = "example-mp-secret-0123456789abcd";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sim = wechat_sim::SimServer::start("127.0.0.1:0", &[(MP_ID, SECRET)]).await?;
    let app = App::builder()
        .app_id(MP_ID)
        .secret(SECRET)
        .base_url(&sim.base_url())
        .build()?;
    let mp = MiniProgramClient::from_app(&app);

    // What wx.login gives the mini program, sent to our server: exchanged once for the openid and session key.
    let js_code = sim.handle().issue_js_code(MP_ID, "o-mini").ok_or("no js_code")?;
    let session = mp.code_to_session(&js_code).await?;
    println!("logged in: {}", session.openid.as_str());
    // A second exchange of the same code is refused (40163), as WeChat does.
    assert!(mp.code_to_session(&js_code).await.is_err());

    // The getPhoneNumber button's code → the verified number (checked to belong to this openid).
    let phone_code = sim.handle().issue_phone_code(MP_ID, "o-mini").ok_or("no phone code")?;
    let phone = mp.phone_number(&phone_code, Some(&session.openid)).await?;
    let digits = &phone.pure_phone_number;
    println!(
        "phone: {}****{}",
        &digits[..3.min(digits.len())],
        &digits[digits.len().saturating_sub(2)..]
    );

    // An unlimited mini-program code (a PNG), e.g. for scan-to-login on a website.
    let code = mp
        .unlimited_code(&WxaCodeRequest::new("login=abc123")?.check_path(false))
        .await?;
    assert!(code.bytes.starts_with(b"\x89PNG"));
    println!("mini-program code: {} bytes of PNG", code.bytes.len());
    sim.stop().await;
    Ok(())
}

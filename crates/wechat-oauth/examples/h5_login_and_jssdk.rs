//! H5 login and a JS-SDK config, against the simulator started in this process — no WeChat account needed.
//!
//! `cargo run -p wxkit-wechat-oauth --example h5_login_and_jssdk`
//!
//! 1. The authorize URL a page sends the user to (with a signed, single-use `state`).
//! 2. The user approves (here the simulator issues the code a real redirect would carry).
//! 3. The code is exchanged for the openid (and, with `snsapi_userinfo`, the profile).
//! 4. A `wx.config` for a page, signed with the cached `jsapi_ticket`.

use wechat_core::App;
use wechat_oauth::state::{MemoryStateStore, StateSigner};
use wechat_oauth::web::{Lang, OAuthClient, Scope};

const APP_ID: &str = "wxexample0000001";
const SECRET: &str = "example-secret-0123456789abcdef0";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sim = wechat_sim::SimServer::start("127.0.0.1:0", &[(APP_ID, SECRET)]).await?;
    // The app, wired once: its client and its one token manager (the simulator's address instead of WeChat's).
    let app = App::builder()
        .app_id(APP_ID)
        .secret(SECRET)
        .base_url(&sim.base_url())
        .build()?;
    let oauth = OAuthClient::from_app(&app);

    // 1. Where the page sends the user.
    let signer = StateSigner::new(b"a-32-byte-or-longer-server-secret-key")?;
    let now = 1_800_000_000;
    let state = signer.issue("/shop?id=7", now, 600)?;
    let url = oauth.authorize_url(
        "https://shop.example/auth/callback",
        Scope::UserInfo,
        Some(&state.value),
    )?;
    println!("authorize: {url}");

    // 2–3. The user approved as o-alice; the callback exchanges the code.
    let code = sim
        .handle()
        .issue_oauth_code(APP_ID, "o-alice", "snsapi_userinfo")
        .ok_or("the simulator did not issue a code")?;
    let verified = signer
        .verify_once(&state.value, now + 5, &MemoryStateStore::default())
        .await?;
    let token = oauth.exchange_code(&code).await?;
    let profile = oauth.user_info(&token.access_token, &token.openid, Lang::ZhCn).await?;
    println!(
        "logged in: {} ({}), back to {}",
        token.openid.as_str(),
        profile.nickname,
        verified.return_path
    );

    // 4. A JS-SDK config for the page (the token and ticket are cached and shared by the manager).
    let config = wechat_oauth::jssdk::config(app.tokens(), "https://shop.example/shop?id=7", now).await?;
    println!(
        "wx.config: appId={} timestamp={} nonceStr={} signature={}",
        config.app_id, config.timestamp, config.nonce_str, config.signature
    );
    sim.stop().await;
    Ok(())
}

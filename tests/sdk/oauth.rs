//! wechat-oauth against the simulator over HTTP: web OAuth, mini-program login, wxacode, JS-SDK.

use crate::account;
use serde_json::json;
use wechat_core::{AccessTokenManager, OpenId};
use wechat_oauth::Error;
use wechat_oauth::miniprogram::{DataError, MiniProgramClient, SessionKey, WxaCodeRequest};
use wechat_oauth::state::{MemoryStateStore, StateError, StateSigner};
use wechat_oauth::web::{Lang, OAuthClient, RefreshToken, Scope, Sex};
use wechat_sim::{SimServer, SimUser};
use wxkit_testkit::{TEST_APP_ID, TEST_APP_SECRET, decode_qr, spawn_sim};

fn oauth(sim: &SimServer) -> OAuthClient {
    account(sim).oauth()
}

fn tokens(sim: &SimServer) -> AccessTokenManager {
    account(sim).app().tokens().clone()
}

fn mini(sim: &SimServer) -> MiniProgramClient {
    wechat::MiniProgram::builder()
        .app_id(TEST_APP_ID)
        .secret(TEST_APP_SECRET)
        .base_url(&sim.base_url())
        .build()
        .unwrap()
        .client()
}

fn user(openid: &str) -> SimUser {
    SimUser {
        appid: TEST_APP_ID.into(),
        openid: openid.into(),
        nickname: "小明".into(),
        sex: 1,
        province: "广东".into(),
        city: "广州".into(),
        country: "中国".into(),
        headimgurl: "http://example.com/a.png".into(),
        unionid: Some("union-1".into()),
        snapshot: false,
        blocked: false,
        phone: None,
    }
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn query_param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

#[tokio::test]
async fn the_h5_round_trip_through_the_authorize_page_with_a_signed_state() {
    let sim = spawn_sim().await;
    sim.handle().add_user(user("o-alice"));
    let client = oauth(&sim);
    let signer = StateSigner::new(&[42u8; 32]).unwrap();
    let used = MemoryStateStore::default();
    let now = sim.handle().now();
    let state = signer.issue("/c/COUPON234", now, 600).unwrap();
    let authorize = client
        .authorize_url(
            "http://shop.example/auth/callback?x=1",
            Scope::UserInfo,
            Some(&state.value),
        )
        .unwrap();
    let http = no_redirects();

    // The person sees the page listing simulated users, and approves as Alice.
    let page = http
        .get(authorize.split('#').next().unwrap())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("o-alice") && page.contains("小明"), "{page}");
    let confirm = http
        .post(format!("{}/connect/oauth2/authorize/confirm", sim.base_url()))
        .form(&[
            ("appid", TEST_APP_ID),
            ("redirect_uri", "http://shop.example/auth/callback?x=1"),
            ("scope", "snsapi_userinfo"),
            ("state", &state.value),
            ("openid", "o-alice"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(confirm.status(), 302);
    let location = confirm.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with("http://shop.example/auth/callback?x=1&code="),
        "{location}"
    );
    let code = query_param(&location, "code").unwrap();
    let returned_state = query_param(&location, "state").unwrap();

    let verified = signer.verify_once(&returned_state, now, &used).await.unwrap();
    assert_eq!(verified.return_path, "/c/COUPON234");
    let token = client.exchange_code(&code).await.unwrap();
    assert_eq!(token.openid.as_str(), "o-alice");
    assert!(token.has_userinfo_scope());
    assert_eq!(token.unionid.as_ref().unwrap().as_str(), "union-1");
    assert!(!token.is_snapshotuser);

    let me = client
        .user_info(&token.access_token, &token.openid, Lang::ZhCn)
        .await
        .unwrap();
    assert_eq!(me.nickname, "小明");
    assert_eq!(me.sex, Sex::Male);
    assert!(client.check_auth(&token.access_token, &token.openid).await.unwrap());
    assert!(
        !client
            .check_auth(&token.access_token, &OpenId::new("o-bob"))
            .await
            .unwrap()
    );

    // A replayed callback: the state is refused, and the code too.
    assert_eq!(
        signer.verify_once(&returned_state, now, &used).await,
        Err(StateError::Replayed)
    );
    assert!(matches!(client.exchange_code(&code).await, Err(Error::CodeUsed { .. })));
    // A tampered state and an expired one.
    let mut tampered = returned_state.clone().into_bytes();
    tampered[10] = if tampered[10] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert!(signer.verify(&tampered, now).is_err());
    assert_eq!(signer.verify(&returned_state, now + 601), Err(StateError::Expired));
    // An open redirect cannot even be issued.
    assert_eq!(
        signer.issue("//evil.example/steal", now, 600),
        Err(StateError::InvalidReturnPath)
    );
}

#[tokio::test]
async fn snsapi_base_is_silent_once_the_user_is_known_and_userinfo_is_refused() {
    let sim = spawn_sim().await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap();
    let client = oauth(&sim);
    let authorize = client
        .authorize_url("http://shop.example/cb", Scope::Base, Some("abc"))
        .unwrap();
    // First visit: a new user picks a nickname.
    let first = http
        .post(format!("{}/connect/oauth2/authorize/confirm", sim.base_url()))
        .form(&[
            ("appid", TEST_APP_ID),
            ("redirect_uri", "http://shop.example/cb"),
            ("scope", "snsapi_base"),
            ("state", "abc"),
            ("nickname", "新人"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 302);
    // Second visit: WeChat remembers who this is and redirects without a page.
    let second = http.get(authorize.split('#').next().unwrap()).send().await.unwrap();
    assert_eq!(second.status(), 302);
    let location = second.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(query_param(&location, "state").as_deref(), Some("abc"));
    let token = client
        .exchange_code(&query_param(&location, "code").unwrap())
        .await
        .unwrap();
    assert!(!token.has_userinfo_scope());
    assert!(token.unionid.is_none());

    let err = client
        .user_info(&token.access_token, &token.openid, Lang::En)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
}

#[tokio::test]
async fn the_authorize_page_refuses_bad_parameters_like_wechat() {
    let sim = spawn_sim().await;
    let base = sim.base_url();
    for (query, code) in [
        (
            "redirect_uri=http%3A%2F%2Fx&response_type=code&scope=snsapi_base".to_owned(),
            "10012",
        ),
        (
            "appid=wxnope&redirect_uri=http%3A%2F%2Fx&response_type=code&scope=snsapi_base".to_owned(),
            "40013",
        ),
        (
            format!("appid={TEST_APP_ID}&response_type=code&scope=snsapi_base"),
            "10011",
        ),
        (
            format!("appid={TEST_APP_ID}&redirect_uri=http%3A%2F%2Fx&response_type=code&scope=snsapi_login"),
            "10005",
        ),
        (
            format!("appid={TEST_APP_ID}&redirect_uri=http%3A%2F%2Fx&response_type=code&scope=snsapi_base&state=a-b"),
            "10013",
        ),
        (
            format!("appid={TEST_APP_ID}&redirect_uri=javascript%3Aalert(1)&response_type=code&scope=snsapi_base"),
            "10003",
        ),
    ] {
        let page = reqwest::get(format!("{base}/connect/oauth2/authorize?{query}"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(page.contains(&format!("data-errcode=\"{code}\"")), "{query}: {page}");
    }
}

#[tokio::test]
async fn codes_are_single_use_and_expire_after_five_minutes() {
    let sim = spawn_sim().await;
    let client = oauth(&sim);
    let code = sim
        .handle()
        .issue_oauth_code(TEST_APP_ID, "o-carol", "snsapi_base")
        .unwrap();
    client.exchange_code(&code).await.unwrap();
    assert!(matches!(client.exchange_code(&code).await, Err(Error::CodeUsed { .. })));

    let late = sim
        .handle()
        .issue_oauth_code(TEST_APP_ID, "o-carol", "snsapi_base")
        .unwrap();
    sim.handle().advance_clock(301);
    assert!(matches!(
        client.exchange_code(&late).await,
        Err(Error::InvalidCode { .. })
    ));
    assert!(matches!(
        client.exchange_code("made-up").await,
        Err(Error::InvalidCode { .. })
    ));

    // The control API mints codes over HTTP too.
    let minted: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/_sim/oauth/code", sim.base_url()))
        .json(&json!({"appid": TEST_APP_ID, "openid": "o-dave", "scope": "snsapi_userinfo"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = client.exchange_code(minted["code"].as_str().unwrap()).await.unwrap();
    assert_eq!(token.openid.as_str(), "o-dave");
}

#[tokio::test]
async fn refresh_tokens_work_for_thirty_days() {
    let sim = spawn_sim().await;
    let client = oauth(&sim);
    let code = sim
        .handle()
        .issue_oauth_code(TEST_APP_ID, "o-erin", "snsapi_userinfo")
        .unwrap();
    let token = client.exchange_code(&code).await.unwrap();

    sim.handle().advance_clock(7201);
    let err = client
        .user_info(&token.access_token, &token.openid, Lang::ZhCn)
        .await
        .unwrap_err();
    assert_eq!(err.errcode(), Some(42001));
    let refreshed = client.refresh(&token.refresh_token).await.unwrap();
    assert_ne!(refreshed.access_token.secret(), token.access_token.secret());
    assert!(
        client
            .user_info(&refreshed.access_token, &refreshed.openid, Lang::ZhCn)
            .await
            .is_ok()
    );

    assert!(matches!(
        client.refresh(&RefreshToken::new("bogus")).await,
        Err(Error::InvalidRefreshToken { .. })
    ));
    sim.handle().advance_clock(30 * 86_400);
    assert!(matches!(
        client.refresh(&token.refresh_token).await,
        Err(Error::RefreshTokenExpired { .. })
    ));
}

#[tokio::test]
async fn snapshot_users_are_flagged() {
    let sim = spawn_sim().await;
    sim.handle().add_user(SimUser {
        snapshot: true,
        ..user("o-snap")
    });
    let code = sim
        .handle()
        .issue_oauth_code(TEST_APP_ID, "o-snap", "snsapi_base")
        .unwrap();
    assert!(oauth(&sim).exchange_code(&code).await.unwrap().is_snapshotuser);
}

#[tokio::test]
async fn a_wrong_secret_is_a_config_error() {
    let sim = spawn_sim().await;
    let client = wechat::OfficialAccount::builder()
        .app_id(TEST_APP_ID)
        .secret("nope")
        .base_url(&sim.base_url())
        .build()
        .unwrap()
        .oauth();
    let code = sim
        .handle()
        .issue_oauth_code(TEST_APP_ID, "o-x", "snsapi_base")
        .unwrap();
    let err = client.exchange_code(&code).await.unwrap_err();
    assert_eq!(err.errcode(), Some(40125));
}

#[tokio::test]
async fn mini_program_login_decrypts_the_users_data() {
    let sim = spawn_sim().await;
    sim.handle().add_user(user("o-mini"));
    let mp = mini(&sim);
    let http = reqwest::Client::new();
    let login: serde_json::Value = http
        .post(format!("{}/_sim/miniprogram/login", sim.base_url()))
        .json(&json!({"appid": TEST_APP_ID, "openid": "o-mini"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let js_code = login["js_code"].as_str().unwrap();

    let session = mp.code_to_session(js_code).await.unwrap();
    assert_eq!(session.openid.as_str(), "o-mini");
    assert_eq!(session.unionid.as_ref().unwrap().as_str(), "union-1");
    assert!(!format!("{session:?}").contains(session.session_key.secret()));
    assert!(matches!(mp.code_to_session(js_code).await, Err(Error::CodeUsed { .. })));

    let encrypted: serde_json::Value = http
        .post(format!("{}/_sim/miniprogram/encrypt", sim.base_url()))
        .json(&json!({"appid": TEST_APP_ID, "openid": "o-mini", "data": {"phoneNumber": "13800138000"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (data, iv) = (
        encrypted["encryptedData"].as_str().unwrap(),
        encrypted["iv"].as_str().unwrap(),
    );
    let plain = mp.decrypt(&session.session_key, data, iv).unwrap();
    assert_eq!(plain["phoneNumber"], "13800138000");

    // Another app's client refuses it (watermark), and a wrong session key cannot decrypt it.
    let other = wechat_oauth::miniprogram::decrypt_data(&"wxother".into(), &session.session_key, data, iv);
    assert_eq!(other.unwrap_err(), DataError::WatermarkMismatch);
    let wrong_key = mp.decrypt(&SessionKey::new("AAAAAAAAAAAAAAAAAAAAAA=="), data, iv);
    assert!(matches!(
        wrong_key,
        Err(Error::Data(DataError::Decrypt | DataError::NotJson))
    ));
}

#[tokio::test]
async fn mini_program_login_errors() {
    let sim = spawn_sim().await;
    sim.handle().add_user(SimUser {
        blocked: true,
        ..user("o-risky")
    });
    let mp = mini(&sim);
    let blocked = sim.handle().issue_js_code(TEST_APP_ID, "o-risky").unwrap();
    assert!(matches!(
        mp.code_to_session(&blocked).await,
        Err(Error::CodeBlocked { .. })
    ));

    let late = sim.handle().issue_js_code(TEST_APP_ID, "o-late").unwrap();
    sim.handle().advance_clock(301);
    assert!(matches!(
        mp.code_to_session(&late).await,
        Err(Error::InvalidCode { .. })
    ));

    // 100 logins per user per minute, then 45011.
    for _ in 0..100 {
        let code = sim.handle().issue_js_code(TEST_APP_ID, "o-busy").unwrap();
        mp.code_to_session(&code).await.unwrap();
    }
    let code = sim.handle().issue_js_code(TEST_APP_ID, "o-busy").unwrap();
    assert!(matches!(
        mp.code_to_session(&code).await,
        Err(Error::RateLimited { code: 45011, .. })
    ));
}

/// Decodes a PNG QR image to its text.
#[tokio::test]
async fn unlimited_mini_program_codes_are_real_qr_images_and_errors_are_typed() {
    let sim = spawn_sim().await;
    let mp = mini(&sim);
    sim.handle().set_pages(TEST_APP_ID, vec!["pages/login/index".into()]);

    let request = WxaCodeRequest::new("login=ab12")
        .unwrap()
        .page("pages/login/index")
        .unwrap();
    let code = mp.unlimited_code(&request).await.unwrap();
    assert_eq!(code.content_type, "image/png");
    let opened_url = decode_qr(&code.bytes);
    let opened: serde_json::Value = reqwest::Client::new()
        .get(&opened_url)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(opened["scene"], "login=ab12");
    assert_eq!(opened["page"], "pages/login/index");

    let unknown_page = WxaCodeRequest::new("s").unwrap().page("pages/nope").unwrap();
    assert!(matches!(
        mp.unlimited_code(&unknown_page).await,
        Err(Error::InvalidPage { .. })
    ));
    let unchecked = WxaCodeRequest::new("s")
        .unwrap()
        .page("pages/nope")
        .unwrap()
        .check_path(false);
    assert!(mp.unlimited_code(&unchecked).await.is_ok());

    // The client validates scenes before sending; the simulator is just as strict with raw requests.
    assert!(WxaCodeRequest::new(&"x".repeat(33)).is_err());
    let token = tokens(&sim).access_token().await.unwrap();
    let http = reqwest::Client::new();
    for (body, errcode) in [
        (json!({"scene": "x".repeat(33)}), 40169),
        (json!({"scene": "中文"}), 40129),
        (json!({"scene": "ok", "page": "/pages/login/index"}), 41030),
    ] {
        let response: serde_json::Value = http
            .post(format!(
                "{}/wxa/getwxacodeunlimit?access_token={}",
                sim.base_url(),
                token.secret()
            ))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(response["errcode"], errcode, "{body}");
    }

    // A token WeChat rejects is refreshed once and the call retried.
    sim.handle().inject(wechat_sim::Fault {
        path: "/wxa/getwxacodeunlimit".into(),
        count: 1,
        errcode: Some(40001),
        errmsg: None,
        http_status: None,
        delay_ms: None,
    });
    assert!(mp.unlimited_code(&request).await.is_ok());
}

#[tokio::test]
async fn jssdk_config_is_signed_with_the_cached_ticket() {
    let sim = spawn_sim().await;
    let tokens = tokens(&sim);
    let now = sim.handle().now();
    let page = "https://shop.example/coupons?id=1#section";
    let a = wechat_oauth::jssdk::config(&tokens, page, now).await.unwrap();
    let b = wechat_oauth::jssdk::config(&tokens, page, now).await.unwrap();
    assert_ne!(a.nonce_str, b.nonce_str, "a fresh nonce every time");
    let ticket = tokens.jsapi_ticket().await.unwrap();
    let expected = wechat_oauth::jssdk::signature(
        ticket.secret(),
        &a.nonce_str,
        &now.to_string(),
        "https://shop.example/coupons?id=1",
    );
    assert_eq!(a.signature, expected);
    assert_eq!(a.app_id, TEST_APP_ID);
    assert_eq!(sim.handle().calls("/cgi-bin/ticket/getticket"), 1);
    let json = serde_json::to_value(&a).unwrap();
    assert!(json.get("appId").is_some() && json.get("nonceStr").is_some());
    assert!(wechat_oauth::jssdk::config(&tokens, "ftp://x", now).await.is_err());
}

#[tokio::test]
async fn every_code_type_is_an_image_and_links_and_schemes_are_issued() {
    use wechat_oauth::miniprogram::EnvVersion;
    let sim = spawn_sim().await;
    let mp = mini(&sim);
    let unlimited = mp
        .unlimited_code(&WxaCodeRequest::new("c=42").unwrap().check_path(false))
        .await
        .unwrap();
    let path = mp.path_code("pages/coupon/coupon?code=ABCD", Some(430)).await.unwrap();
    let square = mp.qr_code("pages/coupon/coupon?code=ABCD", None).await.unwrap();
    for (name, code) in [
        ("unlimited", &unlimited),
        ("getwxacode", &path),
        ("createwxaqrcode", &square),
    ] {
        assert!(code.bytes.starts_with(b"\x89PNG"), "{name} is a PNG");
        assert!(
            decode_qr(&code.bytes).contains("/_sim/wxa/open?appid="),
            "{name} opens the mini program"
        );
    }
    assert!(decode_qr(&path.bytes).contains("path=pages%2Fcoupon%2Fcoupon%3Fcode%3DABCD"));
    // Bad paths are refused before WeChat hears of them; WeChat's own refusals are typed.
    assert!(mp.path_code("/pages/x", None).await.is_err());
    assert!(mp.qr_code("", None).await.is_err());
    assert!(mp.path_code("pages/x", Some(100)).await.is_err());
    let link = mp
        .url_link("pages/coupon/coupon", "code=ABCD", EnvVersion::Release, 30)
        .await
        .unwrap();
    assert!(link.starts_with("https://wxaurl.cn/"), "{link}");
    assert!(mp.url_link("pages/c", "", EnvVersion::Release, 31).await.is_err());
    let scheme = mp
        .scheme(
            "pages/coupon/coupon",
            "code=ABCD",
            EnvVersion::Trial,
            Some(1_900_000_000),
        )
        .await
        .unwrap();
    assert!(scheme.starts_with("weixin://dl/business/?t="), "{scheme}");
    assert!(mp.scheme("/pages/c", "", EnvVersion::Release, None).await.is_err());
    sim.stop().await;
}

#[tokio::test]
async fn content_checks_pass_review_and_flag_risky_content() {
    use wechat_oauth::miniprogram::Suggest;
    let sim = spawn_sim().await;
    let mp = mini(&sim);
    let who = OpenId::new("o-writer");
    let pass = mp.msg_sec_check("今天的拿铁很好喝", &who, 2).await.unwrap();
    assert_eq!(pass.suggest, Suggest::Pass);
    let risky = mp
        .msg_sec_check(&format!("来玩{}", wechat_sim::RISKY_WORDS[0]), &who, 2)
        .await
        .unwrap();
    assert_eq!((risky.suggest, risky.label), (Suggest::Risky, 20001));
    let review = mp.msg_sec_check(wechat_sim::REVIEW_WORDS[1], &who, 3).await.unwrap();
    assert_eq!(review.suggest, Suggest::Review);
    assert!(mp.msg_sec_check("x", &who, 9).await.is_err());
    assert!(mp.msg_sec_check("", &who, 1).await.is_err());
    // An image check is asynchronous: a trace id now, the verdict pushed later (see the messages tests).
    let trace = mp
        .media_check_async("https://shop.example/risky.png", 1, &who, 1)
        .await
        .unwrap();
    assert_eq!(trace.len(), 24);
    assert!(mp.media_check_async("ftp://x", 1, &who, 1).await.is_err());
    sim.stop().await;
}

/// The open platform's website login (`qrconnect`, snsapi_login) with a website app's own appid and secret.
#[tokio::test]
async fn website_qr_login_through_qrconnect() {
    const WEB_APP: &str = "wxweb00000000001";
    const WEB_SECRET: &str = "web-app-secret-0123456789abcdef0";
    let sim = spawn_sim().await;
    sim.handle().add_app(WEB_APP, WEB_SECRET);
    // A website app has no official account, but its web OAuth is the same group.
    let website = wechat::OfficialAccount::builder()
        .app_id(WEB_APP)
        .secret(WEB_SECRET)
        .base_url(&sim.base_url())
        .build()
        .unwrap()
        .oauth();
    let back = "https://shop.example/auth/qrconnect/callback";
    let url = website.qrconnect_url(back, Some("s1")).unwrap();
    assert!(
        url.contains("/connect/qrconnect?") && url.contains("scope=snsapi_login") && url.ends_with("#wechat_redirect")
    );
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = http.get(url.trim_end_matches("#wechat_redirect")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("snsapi_login"));
    // The person scans and confirms (as a new user here); WeChat sends the browser back with a code.
    let confirm = http
        .post(format!("{}/connect/oauth2/authorize/confirm", sim.base_url()))
        .form(&[
            ("appid", WEB_APP),
            ("redirect_uri", back),
            ("scope", "snsapi_login"),
            ("state", "s1"),
            ("nickname", "网站用户"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(confirm.status(), 302);
    let location = url::Url::parse(confirm.headers()["location"].to_str().unwrap()).unwrap();
    let q: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(q["state"], "s1");
    let token = website.exchange_code(&q["code"]).await.unwrap();
    assert!(token.has_userinfo_scope(), "a website login may read the profile");
    let info = website
        .user_info(&token.access_token, &token.openid, Lang::ZhCn)
        .await
        .unwrap();
    assert_eq!(info.nickname, "网站用户");
    // Each scope on its own page: snsapi_login is not an in-WeChat scope, and the website page takes no other.
    let wrong = http
        .get(format!(
            "{}/connect/oauth2/authorize?appid={WEB_APP}&redirect_uri={}&response_type=code&scope=snsapi_login",
            sim.base_url(),
            wechat_oauth::web::percent_encode(back)
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(wrong.contains("10005"), "{wrong}");
    let wrong = http
        .get(format!(
            "{}/connect/qrconnect?appid={WEB_APP}&redirect_uri={}&response_type=code&scope=snsapi_base",
            sim.base_url(),
            wechat_oauth::web::percent_encode(back)
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(wrong.contains("10005"), "{wrong}");
    sim.stop().await;
}

//! wechat-card against the simulator: upload → create → add to bag → decrypt → get → consume → consume again,
//! with the pushed events received, verified and decrypted by a test server.

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use wechat_card::events::{CardEvent, ConsumeSource, Push, PushQuery, PushSecurity, receive};
use wechat_card::{BaseInfo, CardClient, CardDefinition, CardExt, CardKind, DateInfo, Error};
use wechat_core::AccessTokenManager;
use wechat_core::push::MessageCrypto;
use wechat_sim::SimServer;
use wxkit_testkit::{TEST_APP_ID, TEST_APP_SECRET, eventually, spawn_sim};

const TOKEN: &str = "push-token";
const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

fn cards(sim: &SimServer) -> (CardClient, AccessTokenManager) {
    let account = crate::account(sim);
    (account.cards(), account.app().tokens().clone())
}

/// The official account's server URL: verifies every push (signature, msg_signature, appid) before accepting it.
async fn start_push_receiver() -> (String, Arc<Mutex<Vec<Push>>>, Arc<Mutex<usize>>) {
    let received = Arc::new(Mutex::new(Vec::new()));
    let rejected = Arc::new(Mutex::new(0usize));
    let (r, x) = (received.clone(), rejected.clone());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(move || {
        let (r, x) = (r.clone(), x.clone());
        App::new().route(
            "/wechat/push",
            web::post().to(move |req: HttpRequest, body: web::Bytes| {
                let (r, x) = (r.clone(), x.clone());
                async move {
                    let q: HashMap<String, String> = serde_urlencoded::from_str(req.query_string()).unwrap();
                    let query = PushQuery {
                        signature: q.get("signature").cloned().unwrap_or_default(),
                        timestamp: q.get("timestamp").cloned().unwrap_or_default(),
                        nonce: q.get("nonce").cloned().unwrap_or_default(),
                        encrypt_type: q.get("encrypt_type").cloned(),
                        msg_signature: q.get("msg_signature").cloned(),
                    };
                    let crypto = MessageCrypto::new(TOKEN, AES_KEY, TEST_APP_ID).unwrap();
                    match receive(TOKEN, PushSecurity::Safe(&crypto), &query, &body) {
                        Ok(push) => {
                            assert_eq!(
                                query.encrypt_type.as_deref(),
                                Some("aes"),
                                "safe mode pushes are encrypted"
                            );
                            r.lock().unwrap().push(push);
                            HttpResponse::Ok().body("success")
                        }
                        Err(_) => {
                            *x.lock().unwrap() += 1;
                            HttpResponse::BadRequest().finish()
                        }
                    }
                }
            }),
        )
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    (format!("http://127.0.0.1:{port}/wechat/push"), received, rejected)
}

fn logo() -> Vec<u8> {
    qr_render::render_png(
        "logo",
        &qr_render::RenderOptions {
            size_px: 120,
            ..Default::default()
        },
    )
    .unwrap()
}

#[tokio::test]
async fn upload_create_add_decrypt_get_consume_and_consume_again() {
    let sim = spawn_sim().await;
    let (url, received, rejected) = start_push_receiver().await;
    reqwest::Client::new()
        .post(format!("{}/_sim/push", sim.base_url()))
        .json(&serde_json::json!({"appid": TEST_APP_ID, "url": url, "token": TOKEN, "encoding_aes_key": AES_KEY}))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    let (cards, tokens) = cards(&sim);

    let logo_url = cards.upload_logo(&logo()).await.unwrap();
    let base = BaseInfo::builder()
        .logo_url(logo_url)
        .brand_name("wxkit咖啡")
        .title("免费咖啡一杯")
        .color("Color010")
        .notice("请出示二维码核销")
        .description("每人限领一张")
        .date_info(DateInfo::FixTerm {
            fixed_term: 30,
            fixed_begin_term: 0,
        })
        .quantity(100)
        .build()
        .unwrap()
        .get_limit(1);
    let card = CardDefinition::new(
        CardKind::GeneralCoupon {
            default_detail: "美式咖啡一杯".into(),
        },
        base,
    )
    .unwrap();
    let card_id = cards.create(&card).await.unwrap();
    assert!(cards.colors().await.unwrap().iter().any(|c| c.name == "Color010"));

    // The cardExt for wx.addCard verifies with the wx_card ticket.
    let ext_json = cards
        .card_ext(&CardExt::new(&card_id).outer_str("c7"), 1_700_000_000)
        .await
        .unwrap();
    let ext: serde_json::Value = serde_json::from_str(&ext_json).unwrap();
    let ticket = tokens.wx_card_ticket().await.unwrap();
    let expected = wechat_card::ext::card_signature(
        ticket.secret(),
        "1700000000",
        &card_id,
        "",
        "",
        ext["nonce_str"].as_str().unwrap(),
    );
    assert_eq!(ext["signature"], expected);

    // The user taps "add to card bag".
    let added: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/_sim/cards/{card_id}/add", sim.base_url()))
        .json(&serde_json::json!({"openid": "o-holder", "outer_str": "c7"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let code = cards
        .decrypt_code(added["encrypt_code"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(code, added["code"].as_str().unwrap());

    let info = cards.get_code(&code, Some(&card_id), true).await.unwrap();
    assert!(info.can_consume);
    assert_eq!(info.openid, "o-holder");
    assert_eq!(info.user_card_status, "NORMAL");

    let consumed = cards.consume_code(&code, Some(&card_id)).await.unwrap();
    assert_eq!(consumed.openid, "o-holder");
    assert!(matches!(
        cards.consume_code(&code, Some(&card_id)).await,
        Err(Error::AlreadyConsumed { .. })
    ));
    assert!(matches!(
        cards.get_code(&code, None, true).await,
        Err(Error::AlreadyConsumed { .. })
    ));
    assert_eq!(
        cards.get_code(&code, None, false).await.unwrap().user_card_status,
        "CONSUMED"
    );
    assert!(matches!(
        cards.get_code("000000000000", None, true).await,
        Err(Error::InvalidCode { .. })
    ));
    assert!(matches!(
        cards.decrypt_code("not-an-encrypt-code").await,
        Err(Error::InvalidEncryptCode { .. })
    ));

    eventually("three pushes", || received.lock().unwrap().len() == 3).await;
    let pushes = received.lock().unwrap().clone();
    assert!(matches!(&pushes[0].event, CardEvent::CardPassCheck { card_id: c } if *c == card_id));
    assert!(
        matches!(&pushes[1].event, CardEvent::UserGetCard { user_card_code, outer_str, .. }
        if *user_card_code == code && outer_str.as_deref() == Some("c7"))
    );
    assert!(matches!(
        &pushes[2].event,
        CardEvent::UserConsumeCard {
            consume_source: ConsumeSource::Api,
            ..
        }
    ));
    assert_eq!(pushes[1].from_user_name, "o-holder");
    assert_eq!(*rejected.lock().unwrap(), 0);
}

#[tokio::test]
async fn a_code_deleted_by_the_user_is_unavailable_and_get_limit_holds() {
    let sim = spawn_sim().await;
    let (cards, _) = cards(&sim);
    let logo_url = cards.upload_logo(&logo()).await.unwrap();
    let base = BaseInfo::builder()
        .logo_url(logo_url)
        .brand_name("b")
        .title("t")
        .color("Color020")
        .notice("n")
        .description("d")
        .date_info(DateInfo::FixTerm {
            fixed_term: 1,
            fixed_begin_term: 0,
        })
        .quantity(5)
        .build()
        .unwrap()
        .get_limit(1);
    let card_id = cards
        .create(
            &CardDefinition::new(
                CardKind::Cash {
                    least_cost: 1000,
                    reduce_cost: 200,
                },
                base,
            )
            .unwrap(),
        )
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let add = |openid: &'static str| {
        let http = http.clone();
        let url = format!("{}/_sim/cards/{card_id}/add", sim.base_url());
        async move {
            http.post(url)
                .json(&serde_json::json!({"openid": openid}))
                .send()
                .await
                .unwrap()
        }
    };
    let first: serde_json::Value = add("o-a").await.json().await.unwrap();
    assert_eq!(add("o-a").await.status(), 409, "get_limit 1");
    let code = first["code"].as_str().unwrap().to_owned();
    http.post(format!("{}/_sim/cards/{card_id}/codes/{code}/delete", sim.base_url()))
        .send()
        .await
        .unwrap();
    assert!(matches!(
        cards.consume_code(&code, None).await,
        Err(Error::Unavailable { .. })
    ));

    // Expired after its fixed term.
    let second: serde_json::Value = add("o-b").await.json().await.unwrap();
    sim.handle().advance_clock(2 * 86_400);
    assert!(matches!(
        cards.get_code(second["code"].as_str().unwrap(), None, true).await,
        Err(Error::Unavailable { .. })
    ));
}

#[tokio::test]
async fn uploads_and_card_fields_are_checked_on_both_sides() {
    let sim = spawn_sim().await;
    let (cards, tokens) = cards(&sim);
    assert!(matches!(
        cards.upload_logo(b"GIF89a....").await,
        Err(Error::InvalidInput { .. })
    ));
    let mut big = logo();
    big.resize(1024 * 1024 + 1, 0);
    assert!(matches!(cards.upload_logo(&big).await, Err(Error::InvalidInput { .. })));
    assert!(cards.upload_temp_image(&logo()).await.unwrap().media_id.len() > 10);

    // The simulator is as strict with raw requests.
    let token = tokens.access_token().await.unwrap();
    let http = reqwest::Client::new();
    let upload = |bytes: Vec<u8>| {
        let form =
            reqwest::multipart::Form::new().part("buffer", reqwest::multipart::Part::bytes(bytes).file_name("x.png"));
        http.post(format!(
            "{}/cgi-bin/media/uploadimg?access_token={}",
            sim.base_url(),
            token.secret()
        ))
        .multipart(form)
        .send()
    };
    let r: serde_json::Value = upload(b"plain text".to_vec()).await.unwrap().json().await.unwrap();
    assert_eq!(r["errcode"], 40005);
    let r: serde_json::Value = upload(big).await.unwrap().json().await.unwrap();
    assert_eq!(r["errcode"], 40009);

    let create = |body: serde_json::Value| {
        http.post(format!(
            "{}/card/create?access_token={}",
            sim.base_url(),
            token.secret()
        ))
        .json(&body)
        .send()
    };
    let title_too_long = serde_json::json!({"card": {"card_type": "GIFT", "gift": {"gift": "g", "base_info": {
        "logo_url": "http://mmbiz.qpic.cn/x", "brand_name": "b", "code_type": "CODE_TYPE_QRCODE", "title": "十个汉字十个汉字十个",
        "color": "Color010", "notice": "n", "description": "d", "sku": {"quantity": 1},
        "date_info": {"type": "DATE_TYPE_FIX_TERM", "fixed_term": 1, "fixed_begin_term": 0}}}}});
    let r: serde_json::Value = create(title_too_long).await.unwrap().json().await.unwrap();
    assert_eq!(r["errcode"], 47001, "{r}");
    let millis = serde_json::json!({"card": {"card_type": "GIFT", "gift": {"gift": "g", "base_info": {
        "logo_url": "http://mmbiz.qpic.cn/x", "brand_name": "b", "code_type": "CODE_TYPE_QRCODE", "title": "t",
        "color": "Color010", "notice": "n", "description": "d", "sku": {"quantity": 1},
        "date_info": {"type": "DATE_TYPE_FIX_TIME_RANGE", "begin_timestamp": 1790000000000i64, "end_timestamp": 1800000000000i64}}}}});
    let r: serde_json::Value = create(millis).await.unwrap().json().await.unwrap();
    assert_eq!(r["errcode"], 47001, "{r}");
    let r: serde_json::Value = http
        .post(format!("{}/card/create?access_token=bogus", sim.base_url()))
        .body("{}")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["errcode"], 40001);
}

#[tokio::test]
async fn card_create_and_consume_are_sent_once_even_when_the_answer_is_lost() {
    let sim = spawn_sim().await;
    // A client that gives up after 1 s, against a WeChat that answers card/create after 1.5 s.
    let cards = wechat::OfficialAccount::builder()
        .app_id(TEST_APP_ID)
        .secret(TEST_APP_SECRET)
        .base_url(&sim.base_url())
        .transport(Arc::new(
            wechat_core::ReqwestTransport::with_timeout(std::time::Duration::from_secs(1)).unwrap(),
        ))
        .build()
        .unwrap()
        .cards();
    let logo_url = cards.upload_logo(&logo()).await.unwrap();
    let definition = || {
        CardDefinition::new(
            CardKind::GeneralCoupon {
                default_detail: "咖啡".into(),
            },
            BaseInfo::builder()
                .logo_url(&logo_url)
                .brand_name("wxkit咖啡")
                .title("免费咖啡一杯")
                .color("Color010")
                .notice("出示核销")
                .description("每人一张")
                .date_info(DateInfo::FixTerm {
                    fixed_term: 30,
                    fixed_begin_term: 0,
                })
                .quantity(10)
                .build()
                .unwrap(),
        )
        .unwrap()
    };
    let fault = |errcode: Option<i64>, delay_ms: Option<u64>| wechat_sim::Fault {
        path: "/card/create".into(),
        count: 10,
        errcode,
        errmsg: None,
        http_status: None,
        delay_ms,
    };
    // A timeout: WeChat may have created the card. Sending again could create a second one.
    sim.handle().inject(fault(None, Some(1500)));
    assert!(cards.create(&definition()).await.is_err());
    assert_eq!(
        sim.handle().calls("/card/create"),
        1,
        "one upstream call after a timeout"
    );
    sim.handle().reset_faults();
    // "System busy" is not retried on a mutation either.
    sim.handle().inject(fault(Some(-1), None));
    assert!(cards.create(&definition()).await.is_err());
    assert_eq!(
        sim.handle().calls("/card/create"),
        2,
        "one more upstream call after errcode -1"
    );
    sim.handle().reset_faults();
    let card_id = cards.create(&definition()).await.unwrap();
    assert!(!card_id.is_empty());
}

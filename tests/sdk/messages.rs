//! wechat-message against the simulator: a user's text message routed to a handler whose passive reply the simulator
//! reads (plaintext and safe mode); a parametric QR code created, shown and scanned — `subscribe` with its scene,
//! then `SCAN` — routed by scene; a push retried after a failed answer handled once.

use crate::account;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use wechat_core::push::{MessageCrypto, PushQuery, PushSecurity, open_push};
use wechat_message::qrcode::{QrCodeRequest, Scene};
use wechat_message::{Article, Incoming, MemoryDedupeStore, NO_REPLY, Reply, Router, incoming};
use wechat_sim::SimServer;
use wxkit_testkit::{TEST_APP_ID, TEST_APP_SECRET, eventually, spawn_sim};

const TOKEN: &str = "push-token";
const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

/// The account's server URL: verifies, parses, dispatches once, replies (encrypted in safe mode). The first
/// `fail_first` answers are 500 after the handler ran (an answer WeChat never got), so WeChat resends.
async fn start_server(router: Router, safe: bool, fail_first: usize) -> String {
    let store = Arc::new(MemoryDedupeStore::new(600));
    let failures = Arc::new(AtomicUsize::new(fail_first));
    let state = (Arc::new(router), store, failures);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(move || {
        let state = state.clone();
        App::new().route(
            "/wechat/push",
            web::post().to(move |req: HttpRequest, body: web::Bytes| {
                let (router, store, failures) = state.clone();
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
                    let security = if safe {
                        PushSecurity::Safe(&crypto)
                    } else {
                        PushSecurity::Plaintext
                    };
                    let Ok(plain) = open_push(TOKEN, security, &query, &body) else {
                        return HttpResponse::Forbidden().finish();
                    };
                    let message = incoming::parse(plain.as_bytes()).unwrap();
                    let (to, from) = (message.from_user_name.clone(), message.to_user_name.clone());
                    let now = wechat_core::SystemClock;
                    let outcome = router
                        .dispatch_once(store.as_ref(), message, wechat_core::Clock::now_ms(&now))
                        .await;
                    if failures.load(Ordering::SeqCst) > 0 {
                        failures.fetch_sub(1, Ordering::SeqCst);
                        return HttpResponse::InternalServerError().finish();
                    }
                    match outcome {
                        Ok(Some(reply)) if safe => HttpResponse::Ok().body(reply.render_encrypted(
                            &crypto,
                            &to,
                            &from,
                            1_700_000_000,
                            &query.nonce,
                        )),
                        Ok(Some(reply)) => HttpResponse::Ok().body(reply.render(&to, &from, 1_700_000_000)),
                        Ok(None) => HttpResponse::Ok().body(NO_REPLY),
                        Err(_) => HttpResponse::InternalServerError().finish(),
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
    format!("http://127.0.0.1:{port}/wechat/push")
}

async fn messages(sim: &SimServer) -> Vec<serde_json::Value> {
    let v: serde_json::Value = reqwest::get(format!("{}/_sim/messages", sim.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["messages"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_text_message_gets_its_passive_reply_in_plaintext_and_safe_mode() {
    for safe in [false, true] {
        let sim = spawn_sim().await;
        let router = Router::new().on_message("text", |m: Incoming| async move {
            Ok(Some(Reply::text(format!("收到：{}", m.fields["Content"]))))
        });
        let url = start_server(router, safe, 0).await;
        assert!(sim.handle().set_push(TEST_APP_ID, &url, TOKEN, safe.then_some(AES_KEY)));
        sim.handle().send_text(TEST_APP_ID, "o-user", "你好 ]]> <x>");
        eventually("the reply", || {
            sim.handle()
                .notifications()
                .iter()
                .any(|n| n.kind == "push" && n.delivered)
        })
        .await;
        let got = messages(&sim).await;
        assert_eq!(got.len(), 1);
        let reply = got[0]["reply"].as_str().unwrap_or_else(|| panic!("{got:?}"));
        let f = wechat_core::xml::parse_push(reply.as_bytes()).unwrap();
        assert_eq!(
            (f["MsgType"].as_str(), f["Content"].as_str()),
            ("text", "收到：你好 ]]> <x>")
        );
        assert_eq!(f["ToUserName"], "o-user");
        sim.stop().await;
    }
}

#[tokio::test]
async fn a_parametric_code_is_created_shown_and_scanned_into_scene_routes() {
    let sim = spawn_sim().await;
    let qr = account(&sim).qrcodes();
    let ticket = qr
        .create(&QrCodeRequest::temporary(Scene::Str("c42".into()), 3600).unwrap())
        .await
        .unwrap();
    assert_eq!(ticket.expire_seconds, Some(3600));
    let image = reqwest::get(ticket.image_url(&sim.base_url())).await.unwrap();
    assert_eq!(image.status(), 200);
    let png = image.bytes().await.unwrap();
    assert_eq!(wxkit_testkit::decode_qr(&png), ticket.url);
    let permanent = qr
        .create(&QrCodeRequest::permanent(Scene::Id(7)).unwrap())
        .await
        .unwrap();
    assert_eq!(permanent.expire_seconds, None);
    let unknown = reqwest::get(format!("{}/cgi-bin/showqrcode?ticket=nope", sim.base_url()))
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);

    let scans = Arc::new(Mutex::new(Vec::new()));
    let s = scans.clone();
    let router = Router::new().on_scene("c42", move |m: Incoming| {
        let s = s.clone();
        async move {
            s.lock().unwrap().push(m.event_name().unwrap_or("").to_owned());
            Ok(Some(Reply::News(Article {
                title: "领取成功".into(),
                description: "点此查看你的券".into(),
                pic_url: "https://shop.example/p.png".into(),
                url: "https://shop.example/c/ABCD".into(),
            })))
        }
    });
    let url = start_server(router, true, 0).await;
    assert!(sim.handle().set_push(TEST_APP_ID, &url, TOKEN, Some(AES_KEY)));
    assert_eq!(sim.handle().scan_qrcode(&ticket.ticket, "o-new"), Ok("subscribe"));
    eventually("the subscribe push", || scans.lock().unwrap().len() == 1).await;
    assert!(sim.handle().follows(TEST_APP_ID, "o-new"));
    assert_eq!(sim.handle().scan_qrcode(&ticket.ticket, "o-new"), Ok("SCAN"));
    eventually("the SCAN push", || scans.lock().unwrap().len() == 2).await;
    assert_eq!(*scans.lock().unwrap(), vec!["subscribe", "SCAN"]);
    eventually("replies recorded", || {
        sim.handle()
            .notifications()
            .iter()
            .filter(|n| n.kind == "push" && n.delivered)
            .count()
            == 2
    })
    .await;
    for m in messages(&sim).await {
        let reply = m["reply"].as_str().unwrap();
        assert!(
            reply.contains("<MsgType><![CDATA[news]]></MsgType>") && reply.contains("/c/ABCD"),
            "{reply}"
        );
    }
    // What the code opens in the simulator: a page to scan as a chosen user (a phone in the sandbox uses it).
    let page = reqwest::get(&ticket.url).await.unwrap().text().await.unwrap();
    assert!(page.contains("id=\"scan\"") && page.contains("c42"), "{page}");
    let done = reqwest::Client::new()
        .post(format!("{}/_sim/qrcode/scan/page", sim.base_url()))
        .form(&[("ticket", ticket.ticket.as_str()), ("openid", "o-phone")])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(done.contains("data-event=\"subscribe\""), "{done}");
    eventually("the phone's subscribe push", || scans.lock().unwrap().len() == 3).await;
    // An expired code scans to nothing.
    sim.handle().advance_clock(3601);
    assert!(sim.handle().scan_qrcode(&ticket.ticket, "o-late").is_err());
    sim.stop().await;
}

#[tokio::test]
async fn a_push_whose_answer_failed_is_resent_and_handled_once() {
    let sim = spawn_sim().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let router = Router::new().on_message("text", move |_m: Incoming| {
        let c = c.clone();
        async move {
            c.fetch_add(1, Ordering::SeqCst);
            Ok(Some(Reply::text("once")))
        }
    });
    // The first two answers fail (WeChat resends), the third is read.
    let url = start_server(router, false, 2).await;
    assert!(sim.handle().set_push(TEST_APP_ID, &url, TOKEN, None));
    sim.handle().send_text(TEST_APP_ID, "o-user", "hi");
    eventually("delivered after retries", || {
        sim.handle()
            .notifications()
            .iter()
            .any(|n| n.kind == "push" && n.delivered)
    })
    .await;
    let n = sim
        .handle()
        .notifications()
        .into_iter()
        .find(|n| n.kind == "push")
        .unwrap();
    assert_eq!(n.attempts, 3);
    assert_eq!(calls.load(Ordering::SeqCst), 1, "handled once across three deliveries");
    sim.stop().await;
}

fn mini_program(sim: &SimServer, app_id: &str, secret: &str) -> wechat::MiniProgram {
    wechat::MiniProgram::builder()
        .app_id(app_id)
        .secret(secret)
        .base_url(&sim.base_url())
        .build()
        .unwrap()
}

#[tokio::test]
async fn template_subscribe_and_customer_service_messages_and_their_refusals() {
    use wechat_message::send::{CustomMessage, Data, Refusal, SubscribeMessage, TemplateMessage};
    let sim = spawn_sim().await;
    let oa = account(&sim).messages();
    let mp = mini_program(&sim, wxkit_testkit::TEST_MP_APP_ID, wxkit_testkit::TEST_MP_APP_SECRET).messages();
    let data = || {
        Data::new()
            .with("thing1", "拿铁 · 核销成功")
            .with("time2", "2026-11-27 10:00")
    };
    let template = |tpl: &str| {
        TemplateMessage::new("o-fan", tpl, data())
            .unwrap()
            .url("https://shop.example/c/A")
            .unwrap()
    };

    // Template messages: only to followers, only registered templates, only the template's keys.
    sim.handle()
        .add_template(TEST_APP_ID, "TPL-REDEEMED", &["thing1", "time2"]);
    let e = oa.send_template(&template("TPL-REDEEMED")).await.unwrap_err();
    assert_eq!(e.refusal(), Some(Refusal::NotFollowing), "{e}");
    sim.handle().follow(TEST_APP_ID, "o-fan");
    let e = oa.send_template(&template("TPL-NOPE")).await.unwrap_err();
    assert_eq!(e.refusal(), Some(Refusal::TemplateInvalid), "{e}");
    let wrong_keys = TemplateMessage::new("o-fan", "TPL-REDEEMED", Data::new().with("thing1", "x")).unwrap();
    assert_eq!(
        oa.send_template(&wrong_keys).await.unwrap_err().refusal(),
        Some(Refusal::ArgumentInvalid)
    );
    let msgid = oa.send_template(&template("TPL-REDEEMED")).await.unwrap();
    assert!(msgid > 0);

    // Mini-program subscribe messages: one allowance, one message; then 43101.
    sim.handle()
        .add_template(wxkit_testkit::TEST_MP_APP_ID, "SUB-REDEEMED", &["thing1", "time2"]);
    let sub = SubscribeMessage::new("o-mp", "SUB-REDEEMED", data())
        .unwrap()
        .page("pages/coupon/coupon");
    assert_eq!(
        mp.send_subscribe(&sub).await.unwrap_err().refusal(),
        Some(Refusal::UserRefused)
    );
    sim.handle()
        .allow_subscription(wxkit_testkit::TEST_MP_APP_ID, "o-mp", "SUB-REDEEMED", 1);
    mp.send_subscribe(&sub).await.unwrap();
    assert_eq!(
        mp.send_subscribe(&sub).await.unwrap_err().refusal(),
        Some(Refusal::UserRefused)
    );
    // The official account's subscribe notice (bizsend) follows the same rule.
    sim.handle().add_template(TEST_APP_ID, "BIZ-1", &["thing1", "time2"]);
    let biz = SubscribeMessage::new("o-fan", "BIZ-1", data()).unwrap();
    assert_eq!(
        oa.send_biz_subscribe(&biz).await.unwrap_err().refusal(),
        Some(Refusal::UserRefused)
    );
    sim.handle().allow_subscription(TEST_APP_ID, "o-fan", "BIZ-1", 1);
    oa.send_biz_subscribe(&biz).await.unwrap();

    // Customer service: only within 48 h of the user's last message.
    let custom = CustomMessage::Text("您的券已核销".into());
    assert_eq!(
        oa.send_custom("o-quiet", &custom).await.unwrap_err().refusal(),
        Some(Refusal::ReplyWindowOver)
    );
    sim.handle().send_text(TEST_APP_ID, "o-talker", "hi");
    oa.send_custom("o-talker", &custom).await.unwrap();
    sim.handle().advance_clock(48 * 3600 + 1);
    assert_eq!(
        oa.send_custom("o-talker", &custom).await.unwrap_err().refusal(),
        Some(Refusal::ReplyWindowOver)
    );

    let sent = sim.handle().sent_messages();
    let kinds: Vec<&str> = sent.iter().map(|m| m.kind).collect();
    assert_eq!(kinds, vec!["template", "subscribe", "bizsend", "custom"]);
    assert_eq!(sent[0].body["data"]["thing1"]["value"], "拿铁 · 核销成功");
    sim.stop().await;
}

#[tokio::test]
async fn a_media_check_verdict_arrives_as_a_routed_event() {
    let sim = spawn_sim().await;
    let verdicts = Arc::new(Mutex::new(Vec::new()));
    let v = verdicts.clone();
    let router = Router::new().on_event("wxa_media_check", move |m: Incoming| {
        let v = v.clone();
        async move {
            if let wechat_message::Kind::Event(wechat_message::Event::MediaCheck { trace_id, suggest, .. }) = m.kind {
                v.lock().unwrap().push((trace_id, suggest));
            }
            Ok(None)
        }
    });
    let url = start_server(router, true, 0).await;
    assert!(sim.handle().set_push(TEST_APP_ID, &url, TOKEN, Some(AES_KEY)));
    let mp = mini_program(&sim, TEST_APP_ID, TEST_APP_SECRET).client();
    let who = wechat_core::OpenId::new("o-poster");
    let risky = mp
        .media_check_async("https://shop.example/risky.png", 1, &who, 1)
        .await
        .unwrap();
    let fine = mp
        .media_check_async("https://shop.example/latte.png", 1, &who, 1)
        .await
        .unwrap();
    eventually("both verdicts", || verdicts.lock().unwrap().len() == 2).await;
    let got = verdicts.lock().unwrap().clone();
    assert!(got.contains(&(risky, "risky".to_owned())), "{got:?}");
    assert!(got.contains(&(fine, "pass".to_owned())), "{got:?}");
    sim.stop().await;
}

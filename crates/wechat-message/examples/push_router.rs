//! An official account's server URL with a push router, against the simulator started in this process: a user's
//! text message and a parametric-code scan are routed to handlers, whose passive replies (encrypted: safe mode) the
//! simulator reads back as WeChat would.
//!
//! `cargo run -p wxkit-wechat-message --example push_router`

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use std::collections::HashMap;
use wechat_core::push::{MessageCrypto, PushQuery, PushSecurity, open_push};
use wechat_message::qrcode::{QrCodeClient, QrCodeRequest, Scene};
use wechat_message::{Article, Incoming, MemoryDedupeStore, NO_REPLY, Reply, Router, incoming};

const APP_ID: &str = "wxexample0000001";
const SECRET: &str = "example-secret-0123456789abcdef0";
const TOKEN: &str = "example-push-token";
const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

/// `POST /wechat/push`: verify (safe mode), parse, handle once, reply encrypted.
async fn push(req: HttpRequest, body: web::Bytes, router: web::Data<(Router, MemoryDedupeStore)>) -> HttpResponse {
    let q: HashMap<String, String> = serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    let query = PushQuery {
        signature: get("signature"),
        timestamp: get("timestamp"),
        nonce: get("nonce"),
        encrypt_type: q.get("encrypt_type").cloned(),
        msg_signature: q.get("msg_signature").cloned(),
    };
    let Ok(crypto) = MessageCrypto::new(TOKEN, AES_KEY, APP_ID) else {
        return HttpResponse::InternalServerError().finish();
    };
    let Ok(plain) = open_push(TOKEN, PushSecurity::Safe(&crypto), &query, &body) else {
        return HttpResponse::Forbidden().finish();
    };
    let Ok(message) = incoming::parse(plain.as_bytes()) else {
        return HttpResponse::BadRequest().finish();
    };
    let (to, from) = (message.from_user_name.clone(), message.to_user_name.clone());
    let now = wechat_core::Clock::now_ms(&wechat_core::SystemClock);
    match router.0.dispatch_once(&router.1, message, now).await {
        Ok(Some(reply)) => {
            HttpResponse::Ok().body(reply.render_encrypted(&crypto, &to, &from, now / 1000, &query.nonce))
        }
        Ok(None) => HttpResponse::Ok().body(NO_REPLY),
        // Not acknowledged: WeChat sends it again.
        Err(_) => HttpResponse::InternalServerError().finish(),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sim = wechat_sim::SimServer::start("127.0.0.1:0", &[(APP_ID, SECRET)]).await?;
    let router = Router::new()
        .on_message("text", |m: Incoming| async move {
            Ok(Some(Reply::text(format!(
                "收到：{}",
                m.fields.get("Content").cloned().unwrap_or_default()
            ))))
        })
        .on_scene("welcome-42", |_m: Incoming| async {
            Ok(Some(Reply::News(Article {
                title: "欢迎 · Welcome".into(),
                description: "点此领取你的券 · Tap for your coupon".into(),
                pic_url: String::new(),
                url: "https://shop.example/c/ABCD".into(),
            })))
        });
    let state = web::Data::new((router, MemoryDedupeStore::new(600)));
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .route("/wechat/push", web::post().to(push))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    if !sim.handle().set_push(
        APP_ID,
        &format!("http://127.0.0.1:{port}/wechat/push"),
        TOKEN,
        Some(AES_KEY),
    ) {
        return Err("the simulator refused the push configuration".into());
    }

    // A user writes; another scans the account's parametric code.
    sim.handle().send_text(APP_ID, "o-alice", "你好");
    let account = wechat_core::App::builder()
        .app_id(APP_ID)
        .secret(SECRET)
        .base_url(&sim.base_url())
        .build()?;
    let ticket = QrCodeClient::from_app(&account)
        .create(&QrCodeRequest::temporary(Scene::Str("welcome-42".into()), 600)?)
        .await?;
    sim.handle().scan_qrcode(&ticket.ticket, "o-bob")?;

    // What WeChat read back (the simulator decrypts the safe-mode replies after checking their MsgSignature).
    for _ in 0..250 {
        if sim
            .handle()
            .notifications()
            .iter()
            .filter(|n| n.kind == "push" && n.delivered)
            .count()
            == 2
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let messages: serde_json::Value = reqwest::get(format!("{}/_sim/messages", sim.base_url()))
        .await?
        .json()
        .await?;
    let replies = messages["messages"].as_array().cloned().unwrap_or_default();
    for m in &replies {
        println!("{} → {}", m["event"], m["reply"].as_str().unwrap_or("(none)"));
    }
    if replies.len() != 2 || replies.iter().any(|m| m["reply"].as_str().is_none_or(str::is_empty)) {
        return Err("both pushes should have been answered".into());
    }
    handle.stop(true).await;
    sim.stop().await;
    Ok(())
}

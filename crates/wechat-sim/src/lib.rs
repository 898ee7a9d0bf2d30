//! # wechat-sim
//!
//! A strict, stateful simulator of the WeChat APIs wxkit uses, so that every flow runs — and is tested — on a laptop
//! with no WeChat account. It answers like WeChat, including the failures: a wrong secret gets 40125, a replaced token
//! dies 5 minutes after its replacement with 40001, an expired one gets 42001.
//!
//! Beside the WeChat endpoints it serves a control API under `/_sim`:
//!
//! | route | effect |
//! |---|---|
//! | `GET /_sim/clock` | `{"now": unix_seconds}` (simulated time) |
//! | `POST /_sim/clock/advance {"seconds": N}` | moves the simulated clock forward |
//! | `POST /_sim/faults {"path", "count"?, "errcode"?, "errmsg"?, "http_status"?, "delay_ms"?}` | the next `count` calls of `path` fail that way |
//! | `GET /_sim/faults` / `DELETE /_sim/faults` | list / clear pending faults |
//! | `GET /_sim/counters` | `{"counters": {path: calls}}` |
//! | `POST /_sim/reset` | forgets tokens, counters, faults, clock offset (apps stay) |
//! | `POST /_sim/apps {"appid", "secret"}` / `GET /_sim/apps` | registers / lists apps |
//! | `POST /_sim/users {SimUser}` / `GET /_sim/users?appid=` | adds (or replaces) / lists users, e.g. with a `phone` |
//! | `POST /_sim/miniprogram/login {"appid", "openid"}` | a `wx.login` code for that user → `{"js_code"}` |
//! | `POST /_sim/miniprogram/phone_code {"appid", "openid"}` | a `getPhoneNumber` button code → `{"code"}` |
//! | `POST /_sim/miniprogram/backend {"appid", "url"}` | the mini program's server, for the simulated mini-program pages |
//! | `POST /_sim/pay/faults {"bad_sign_responses"?, "drop_notifies"?, "duplicate_notifies"?}` | the next N Pay responses carry a bad signature / the next N payments send no notify / send their notify twice at once |
//! | `POST /_sim/pay/orders/{out_trade_no}/pay {"mch_id"?, "openid"?}` | the user pays: the order succeeds and its notify is queued |
//! | `POST /_sim/pay/v3/merchants {"mch_id", "api_v3_key", "merchant_serial", "merchant_public_key", "mode"?}` | registers a Pay v3 merchant (its requests are checked against that key) → its public key id, public key and platform certificate |
//! | `GET /_sim/pay/v3/merchants/{mch_id}` | the same, now |
//! | `POST /_sim/pay/v3/merchants/{mch_id}/signing {"mode": "certificate" \| "public_key" \| "switch_over", "public_key_share"?, "abnormal_refunds"?}` | how its responses and notifies are signed (switch-over: that percent with the public key); the next N refunds end ABNORMAL |
//! | `POST /_sim/pay/v3/errors {"path", "status", "code", "count"?, "after"?, "delay_ms"?}` | the next `count` v3 calls of `path` (a prefix) answer that error, after the signature check — or, with `after`, after doing the work (a lost answer) |
//! | `GET /busifavor/getcouponinfo?stock_id&out_request_no&sign&send_coupon_merchant&open_id&coupon_code?` | WeChat Pay's H5 领券 page (商家券): the v2 HMAC-SHA256 signature checked, then 领取 (`POST` the same fields): the coupon goes to the user's card bag; no callback, as WeChat documents |
//! | `POST /_sim/pay/busifavor/plugin-send {send_coupon_params, send_coupon_merchant, sign, openid}` | what the mini-program `send-coupon` plugin does: indexed v2 signature checked, coupons sent, `COUPON.SEND` queued |
//! | `GET /_sim/pay/busifavor/coupons?stock_id=` | a stock's coupons: holder, state (`SENDED`, `USED`, `DEACTIVATED`, `EXPIRED`), use calls |
//! | `POST /_sim/pay/v3/merchants/{mch_id}/rotate` | a new platform certificate signs from now on (`/v3/certificates` lists old and new) → `{"platform_serial"}` |
//! | `GET /_sim/pay/cashier?appId&timeStamp&nonceStr&package&signType&paySign&return_url` (or `?code_url&return_url`) | WeChat's cashier: checks `paySign` like WeChat, shows Pay / Cancel, returns to `return_url#wxpay=ok\|cancel\|fail` |
//! | `GET /_sim/js/jweixin.js` | a stand-in for WeChat's JS-SDK script: `wx.config` is verified by `POST /_sim/js/verify` against the issued `jsapi_ticket`, then `wx.ready` or `wx.error({errMsg: "config:invalid signature"})` |
//! | `POST /_sim/js/add_card {appId, cardList}` | the stand-in's `wx.addCard`: each `cardExt` signature checked against the issued `wx_card` ticket, the card added for its openid, `user_get_card` pushed with its `outer_str` |
//! | `POST /_sim/qrcode/scan {"ticket", "openid"}` | the user scans a parametric code (`qrcode/create`): `subscribe` with `qrscene_…` pushed for a new follower, `SCAN` for a follower (410 unknown or expired code) |
//! | `POST /_sim/messages/send {"appid", "openid", "content"}` | the user sends a text message: a `text` push with a fresh MsgId |
//! | `POST /_sim/templates {"appid", "template_id", "keys"}` | registers a template (its data keys) for template and subscribe messages (40037 otherwise) |
//! | `POST /_sim/subscriptions {"appid", "openid", "template_id", "count"?}` | the user allows that many subscribe messages of the template (43101 without; one message uses one) |
//! | `GET /_sim/messages?appid=` | every push with the reply the server gave (safe-mode replies decrypted after their `MsgSignature` is checked), and `sent`: every template, subscribe and customer-service message accepted |
//! | `GET /_sim/wxa/open?appid&scene&page` | what a mini-program code opens: a page to play the phone (JSON with `Accept: application/json`) |
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let sim = wechat_sim::SimServer::start("127.0.0.1:0", &[("wx1234567890abcdef", "app-secret")]).await?;
//! println!("simulator at {}", sim.base_url());
//! sim.handle().advance_clock(7200);
//! assert_eq!(sim.handle().calls("/cgi-bin/token"), 0);
//! sim.stop().await;
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]
// Handlers return the finished WeChat error response as `Err`; its size does not matter in a simulator.
#![allow(clippy::result_large_err)]

mod bills;
mod busifavor;
mod cards;
mod cashier;
mod control;
mod miniapp;
mod mp;
mod oa;
mod oauth;
mod pages;
mod pay;
mod pay_v3;
mod state;
mod wxa;

pub use busifavor::SimCoupon;
pub use oa::SentMessage;
pub use pay::{NOTIFY_SCHEDULE, Notification, PayOrderError};
pub use pay_v3::{
    PUBLIC_KEY_PEM, SANDBOX_MERCHANT_CERT, SANDBOX_MERCHANT_KEY, SANDBOX_MERCHANT_SERIAL, SigningMode, V3Error,
    V3MerchantInfo, public_key_id, switch_over_share,
};
pub use state::{Fault, SimHandle, SimUser, TOKEN_OVERLAP_SECS, TOKEN_TTL_SECS};
pub use wxa::{CODE_CAP, REVIEW_WORDS, RISKY_WORDS};

use actix_web::body::BoxBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::{App, HttpResponse, HttpServer, web};
use std::net::{SocketAddr, TcpListener};

/// Mounts the simulator's routes (WeChat endpoints and `/_sim`) on an actix app, sharing `handle`'s state.
/// Call-counting and fault injection are done by [`SimServer`]'s middleware; use it unless you need to embed.
pub fn configure(handle: SimHandle) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(web::Data::new(handle));
        mp::configure(cfg);
        oauth::configure(cfg);
        miniapp::configure(cfg);
        pay::configure(cfg);
        pay_v3::configure(cfg);
        bills::configure(cfg);
        busifavor::configure(cfg);
        cashier::configure(cfg);
        cards::configure(cfg);
        oa::configure(cfg);
        wxa::configure(cfg);
        control::configure(cfg);
        cfg.default_service(web::to(|| async {
            HttpResponse::NotFound().json(serde_json::json!({
                "error": {"code": "not_found", "message": "the simulator has no such endpoint"}
            }))
        }));
    }
}

/// A running simulator on its own listener.
#[derive(Debug)]
pub struct SimServer {
    addr: SocketAddr,
    handle: SimHandle,
    server: actix_web::dev::ServerHandle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    notifier: AbortOnDrop,
}

/// Stops the notifier when the simulator goes away, however it goes.
#[derive(Debug)]
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

enum Next<A, B> {
    Short(A),
    Pass(B),
}

impl SimServer {
    /// Binds `addr` (port 0 picks a free port), registers `apps` as `(appid, secret)` and starts serving in the
    /// background of the current tokio runtime.
    pub async fn start(addr: &str, apps: &[(&str, &str)]) -> std::io::Result<SimServer> {
        let handle = SimHandle::default();
        for (appid, secret) in apps {
            handle.add_app(appid, secret);
        }
        Self::start_with(addr, handle, false).await
    }

    /// Like [`start`](Self::start) with an existing state handle. `handle_signals` makes Ctrl-C stop the server
    /// (for the standalone `wxkit sim`).
    pub async fn start_with(addr: &str, handle: SimHandle, handle_signals: bool) -> std::io::Result<SimServer> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let shared = handle.clone();
        let server = HttpServer::new(move || {
            let mw_handle = shared.clone();
            App::new()
                .wrap_fn(move |req, srv| {
                    let path = req.path().to_owned();
                    let action = if path.starts_with("/_sim") {
                        None
                    } else {
                        let mut world = mw_handle.world();
                        *world.counters.entry(path.clone()).or_insert(0) += 1;
                        world.take_fault(&path)
                    };
                    let delay = action.as_ref().and_then(|a| a.delay_ms);
                    let short = action.and_then(|a| {
                        if let Some(status) = a.http_status {
                            let status = actix_web::http::StatusCode::from_u16(status)
                                .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
                            Some(HttpResponse::build(status).finish())
                        } else {
                            a.errcode.map(|(code, msg)| mp::wx_error(code, &msg))
                        }
                    });
                    let next = match short {
                        Some(response) => Next::Short(req.into_response(response)),
                        None => Next::Pass(srv.call(req)),
                    };
                    async move {
                        if let Some(ms) = delay {
                            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                        }
                        match next {
                            Next::Short(response) => Ok::<ServiceResponse<BoxBody>, actix_web::Error>(response),
                            Next::Pass(fut) => fut.await.map(ServiceResponse::map_into_boxed_body),
                        }
                    }
                })
                .configure(configure(shared.clone()))
        })
        .workers(2)
        .shutdown_timeout(1);
        let server = if handle_signals {
            server
        } else {
            server.disable_signals()
        };
        let server = server.listen(listener)?.run();
        let server_handle = server.handle();
        let task = tokio::spawn(server);
        let notifier = AbortOnDrop(tokio::spawn(pay::run_notifier(handle.clone())));
        Ok(SimServer {
            addr,
            handle,
            server: server_handle,
            task,
            notifier,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ip:port`, to use as both `api_base_url` and `open_base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The in-process control handle.
    pub fn handle(&self) -> &SimHandle {
        &self.handle
    }

    /// Waits until the server stops (Ctrl-C with signals enabled).
    pub async fn wait(self) -> std::io::Result<()> {
        let result = self.task.await;
        drop(self.notifier);
        match result {
            Ok(result) => result,
            Err(e) => Err(std::io::Error::other(e)),
        }
    }

    /// Stops the server gracefully.
    pub async fn stop(self) {
        drop(self.notifier);
        self.server.stop(true).await;
        let _ = self.task.await;
    }
}

//! WeChat Pay v3, strict: every request's `WECHATPAY2-SHA256-RSA2048` signature checked against the merchant's
//! registered key (401 `SIGN_ERROR` otherwise, as WeChat Pay answers), every response and notify signed — with the
//! merchant's current platform certificate, with its WeChat Pay public key, or, in switch-over mode, with either in
//! a configured share — and `/v3/certificates` sealed with the APIv3 key. Orders share the v2 order book, so the
//! cashier page, `/_sim/pay/orders/{no}/pay` and the notify schedule work for both.
//!
//! The key material is a fixed pool of test keys under `keys/` (three platform certificates that rotation cycles
//! through, one public key): generating RSA keys at run time would make the simulator slow to start, and these keys
//! protect nothing.

use crate::control::bad_request;
use crate::pay::{Notification, PayOrder, PayRefund, beijing_time, parse_beijing};
use crate::state::{SimHandle, World, random_string, real_now};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::OnceLock;
use wechat_pay::v3::{
    ApiV3Key, Authorization, Certificate, MerchantPrivateKey, PublicKey, aead, rfc3339_beijing, sign,
};

const PLATFORM_KEYS: [(&str, &str); 3] = [
    (
        include_str!("../keys/platform-1.key"),
        include_str!("../keys/platform-1.pem"),
    ),
    (
        include_str!("../keys/platform-2.key"),
        include_str!("../keys/platform-2.pem"),
    ),
    (
        include_str!("../keys/platform-3.key"),
        include_str!("../keys/platform-3.pem"),
    ),
];
const PUBLIC_KEY_PRIVATE: &str = include_str!("../keys/wechatpay-public-key.key");
/// The simulator's WeChat Pay public key (PEM), the same for every merchant (each gets its own id).
pub const PUBLIC_KEY_PEM: &str = include_str!("../keys/wechatpay-public-key.pem");
/// A merchant API private key for sandboxes and examples (its certificate serial is [`SANDBOX_MERCHANT_SERIAL`]).
/// A published test key: never use it for a real merchant.
pub const SANDBOX_MERCHANT_KEY: &str = include_str!("../keys/merchant-sandbox.key");
/// The sandbox merchant's API certificate (what a simulator registers to check its requests).
pub const SANDBOX_MERCHANT_CERT: &str = include_str!("../keys/merchant-sandbox.pem");
/// The serial of the sandbox merchant's API certificate.
pub const SANDBOX_MERCHANT_SERIAL: &str = "037AB05542EFF2C491A7FB323443F8285885AE71";

struct Keyring {
    platform: Vec<(MerchantPrivateKey, Certificate)>,
    public_key: MerchantPrivateKey,
}

fn keyring() -> Option<&'static Keyring> {
    static KEYS: OnceLock<Option<Keyring>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let platform = PLATFORM_KEYS
            .iter()
            .map(|(k, c)| Some((MerchantPrivateKey::from_pem(k).ok()?, Certificate::from_pem(c).ok()?)))
            .collect::<Option<Vec<_>>>()?;
        Some(Keyring {
            platform,
            public_key: MerchantPrivateKey::from_pem(PUBLIC_KEY_PRIVATE).ok()?,
        })
    })
    .as_ref()
}

/// Which key WeChat Pay signs a merchant's responses and notifies with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SigningMode {
    /// The current platform certificate (merchants from before public-key mode).
    Certificate,
    /// The WeChat Pay public key (`PUB_KEY_ID_…`, new merchants).
    PublicKey,
    /// The switch-over: `public_key_share` percent with the public key, the rest with the certificate.
    SwitchOver,
}

/// A v3 merchant as the simulator knows it.
#[derive(Clone, Debug)]
pub(crate) struct V3Merchant {
    api_v3_key: ApiV3Key,
    serial: String,
    key: PublicKey,
    mode: SigningMode,
    public_key_share: u8,
    current: usize,
    previous: Option<usize>,
    /// Responses and notifies signed so far (counted apart, so each gets the configured share).
    signed: [u64; 2],
}

impl V3Merchant {
    /// Whether `signature` is the merchant's over `message` (the cashier's `paySign` check).
    pub(crate) fn verifies(&self, message: &[u8], signature: &str) -> bool {
        self.key.verify(message, signature)
    }
}

/// What a v3 merchant needs to know of the simulated WeChat Pay (`POST /_sim/pay/v3/merchants`).
#[derive(Clone, Debug, Serialize)]
pub struct V3MerchantInfo {
    /// The merchant.
    pub mch_id: String,
    /// Its WeChat Pay public key id.
    pub public_key_id: String,
    /// The public key, PEM.
    pub public_key_pem: String,
    /// The current platform certificate's serial.
    pub platform_serial: String,
    /// The current platform certificate, PEM.
    pub platform_certificate_pem: String,
    /// How it is signed for.
    pub mode: SigningMode,
    /// The public key's share in switch-over mode, percent.
    pub public_key_share: u8,
}

/// The notifies' public-key share on `day` of a switch-over: a seventh more each day, all of them from day 7.
pub fn switch_over_share(day: u8) -> u8 {
    u8::try_from((u32::from(day.min(7)) * 100).div_ceil(7))
        .unwrap_or(100)
        .min(100)
}

/// The public key id the simulator gives a merchant.
pub fn public_key_id(mch_id: &str) -> String {
    let digits: String = mch_id.chars().filter(char::is_ascii_digit).collect();
    format!("PUB_KEY_ID_01{digits:0>10}2026112700000001")
}

fn info(mch_id: &str, m: &V3Merchant) -> Option<V3MerchantInfo> {
    let cert = &keyring()?.platform.get(m.current)?.1;
    Some(V3MerchantInfo {
        mch_id: mch_id.to_owned(),
        public_key_id: public_key_id(mch_id),
        public_key_pem: PUBLIC_KEY_PEM.to_owned(),
        platform_serial: cert.serial().to_owned(),
        platform_certificate_pem: cert.pem().to_owned(),
        mode: m.mode,
        public_key_share: m.public_key_share,
    })
}

impl SimHandle {
    /// Registers a v3 merchant: its APIv3 key, its API certificate's serial and public key (to check its requests).
    pub fn add_v3_merchant(
        &self,
        mch_id: &str,
        api_v3_key: &str,
        merchant_serial: &str,
        merchant_public_key_pem: &str,
        mode: SigningMode,
    ) -> Result<V3MerchantInfo, String> {
        if mch_id.is_empty() {
            return Err("mch_id must not be empty".into());
        }
        if api_v3_key.len() != 32 {
            return Err("api_v3_key must be 32 bytes".into());
        }
        let key = PublicKey::from_pem(merchant_public_key_pem)
            .or_else(|_| Certificate::from_pem(merchant_public_key_pem).map(|c| c.public_key().clone()))
            .map_err(|e| format!("merchant_public_key: {e}"))?;
        let m = V3Merchant {
            api_v3_key: ApiV3Key::new(api_v3_key),
            serial: merchant_serial.to_ascii_uppercase(),
            key,
            mode,
            public_key_share: 50,
            current: 0,
            previous: None,
            signed: [0, 0],
        };
        let out = info(mch_id, &m).ok_or("the simulator's keys do not load")?;
        self.world().v3_merchants.insert(mch_id.to_owned(), m);
        Ok(out)
    }

    /// Sets how a merchant's responses and notifies are signed; `public_key_share` (percent) applies to switch-over.
    pub fn set_v3_signing(&self, mch_id: &str, mode: SigningMode, public_key_share: u8) -> Result<(), String> {
        let mut w = self.world();
        let m = w.v3_merchants.get_mut(mch_id).ok_or("no such v3 merchant")?;
        m.mode = mode;
        m.public_key_share = public_key_share.min(100);
        Ok(())
    }

    /// Rotates a merchant's platform certificate: a new serial signs from now on; `/v3/certificates` lists the old
    /// and the new one. Returns the new serial.
    pub fn rotate_platform_certificate(&self, mch_id: &str) -> Result<String, String> {
        let mut w = self.world();
        let m = w.v3_merchants.get_mut(mch_id).ok_or("no such v3 merchant")?;
        m.previous = Some(m.current);
        m.current = (m.current + 1) % PLATFORM_KEYS.len();
        info(mch_id, m)
            .map(|i| i.platform_serial)
            .ok_or_else(|| "the simulator's keys do not load".into())
    }

    /// The next `n` Pay responses (v2 and v3) carry a signature that does not verify.
    pub fn inject_bad_pay_signatures(&self, n: u32) {
        self.world().pay_bad_sign = n;
    }

    /// Signs `body` as WeChat Pay signs a notify for this merchant now (its signing mode): the four `Wechatpay-*`
    /// headers. For tests and benchmarks that deliver notifies themselves.
    pub fn sign_v3_notify(&self, mch_id: &str, body: &[u8]) -> Vec<(&'static str, String)> {
        sign_for(&mut self.world(), mch_id, body, true)
    }

    /// A `TRANSACTION.SUCCESS` notify body for an order, sealed with the merchant's APIv3 key (`None`: no such v3
    /// merchant). For benchmarks that pay orders without the order book.
    pub fn v3_payment_notify_body(
        &self,
        mch_id: &str,
        appid: &str,
        out_trade_no: &str,
        transaction_id: &str,
        total: u64,
    ) -> Option<String> {
        let w = self.world();
        let plaintext = json!({
            "appid": appid, "mchid": mch_id, "out_trade_no": out_trade_no, "transaction_id": transaction_id,
            "trade_type": "NATIVE", "trade_state": "SUCCESS", "trade_state_desc": "支付成功", "bank_type": "OTHERS",
            "success_time": rfc3339_beijing(w.now()), "payer": {"openid": "o-bench"},
            "amount": {"total": total, "payer_total": total, "currency": "CNY", "payer_currency": "CNY"},
        });
        let event = V3Event {
            kind: "payment",
            event_type: "TRANSACTION.SUCCESS",
            summary: "支付成功",
            original_type: "transaction",
            plaintext: &plaintext,
        };
        v3_notification(&w, mch_id, &event, "http://unused", out_trade_no, None).map(|n| n.body().to_owned())
    }

    /// The next calls of a v3 path fail with WeChat Pay's error body (`SYSTEM_ERROR`, `FREQUENCY_LIMITED`…).
    pub fn inject_v3_error(&self, error: V3Error) {
        self.world().v3_errors.push(error);
    }

    /// The next `n` v3 refunds end ABNORMAL (the payer's account cannot take the money).
    pub fn set_v3_abnormal_refunds(&self, n: u32) {
        self.world().v3_abnormal_refunds = n;
    }

    /// A v3 merchant's keys and mode.
    pub fn v3_merchant(&self, mch_id: &str) -> Option<V3MerchantInfo> {
        let w = self.world();
        w.v3_merchants.get(mch_id).and_then(|m| info(mch_id, m))
    }
}

/// The `Wechatpay-*` headers for `body`, signed as the merchant's mode says, at the real time (WeChat Pay signs each
/// delivery when it sends it).
///
/// Which key signs (WeChat Pay's "平台证书切换为微信支付公钥" guide): a public-key merchant's answers and notifies by the
/// public key, a certificate merchant's by its current platform certificate. During the switch-over, an **answer**
/// follows the request: signed by the public key only when the request's `Wechatpay-Serial` names the public key id,
/// else by the certificate; **notifies** are signed by the public key in a share that grows day by day (100 % from
/// day 7), the rest by the certificate. Every signed message also carries `Wechatpay-Signature-Type:
/// WECHATPAY2-SHA256-RSA2048`, as WeChat sends it (wechatpayv3 refuses a signature without it).
pub(crate) fn sign_for(w: &mut World, mch_id: &str, body: &[u8], notify: bool) -> Vec<(&'static str, String)> {
    let bad = if w.pay_bad_sign > 0 {
        w.pay_bad_sign -= 1;
        true
    } else {
        false
    };
    let (Some(keys), Some(m)) = (keyring(), w.v3_merchants.get_mut(mch_id)) else {
        return Vec::new();
    };
    let n = &mut m.signed[usize::from(notify)];
    *n += 1;
    let n = *n;
    let share = u64::from(m.public_key_share);
    let requested = w.v3_request_serial.take();
    let use_public_key = match m.mode {
        SigningMode::PublicKey => true,
        SigningMode::Certificate => false,
        SigningMode::SwitchOver if !notify => requested.as_deref() == Some(public_key_id(mch_id).as_str()),
        // Deterministic interleaving: exactly `share` percent of every hundred.
        SigningMode::SwitchOver => (n * share) / 100 != ((n - 1) * share) / 100,
    };
    let (key, serial) = if use_public_key {
        (&keys.public_key, public_key_id(mch_id))
    } else {
        let (k, c) = &keys.platform[m.current];
        (k, c.serial().to_owned())
    };
    let timestamp = real_now().to_string();
    let nonce = random_string(32);
    let mut signature = key.sign(&sign::response_message(&timestamp, &nonce, body));
    if bad {
        signature = key.sign(b"a forged response");
    }
    vec![
        ("Wechatpay-Timestamp", timestamp),
        ("Wechatpay-Nonce", nonce),
        ("Wechatpay-Signature", signature),
        ("Wechatpay-Serial", serial),
        ("Wechatpay-Signature-Type", "WECHATPAY2-SHA256-RSA2048".to_owned()),
    ]
}

pub(crate) fn error(status: u16, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(
        actix_web::http::StatusCode::from_u16(status).unwrap_or(actix_web::http::StatusCode::BAD_REQUEST),
    )
    .insert_header(("Request-ID", random_string(32)))
    .json(json!({"code": code, "message": message}))
}

fn sign_error(message: &str) -> HttpResponse {
    error(401, "SIGN_ERROR", message)
}

/// A signed JSON answer (or an empty one with 204).
pub(crate) fn answer(w: &mut World, mch_id: &str, status: u16, body: Option<&Value>) -> HttpResponse {
    let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    let mut r =
        HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap_or(actix_web::http::StatusCode::OK));
    r.insert_header(("Request-ID", random_string(32)));
    for (k, v) in sign_for(w, mch_id, &bytes, false) {
        r.insert_header((k, v));
    }
    if body.is_some() {
        r.content_type("application/json").body(bytes)
    } else {
        r.finish()
    }
}

/// Checks the Authorization header as WeChat Pay does; `Ok` is the merchant id.
pub(crate) fn authenticate(w: &mut World, req: &HttpRequest, body: &[u8]) -> Result<String, HttpResponse> {
    let mch_id = check_signature(w, req, body)?;
    // An injected WeChat Pay failure for this path (after the signature check, as WeChat answers).
    if let Some(i) = w
        .v3_errors
        .iter()
        .position(|e| !e.after && req.path().starts_with(&e.path))
    {
        let e = &mut w.v3_errors[i];
        e.count = e.count.saturating_sub(1);
        let response = error(e.status, &e.code, "injected by the simulator");
        if e.count == 0 {
            w.v3_errors.remove(i);
        }
        return Err(response);
    }
    Ok(mch_id)
}

/// A v3 failure to answer the next `count` calls of a path with (`POST /_sim/pay/v3/errors`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct V3Error {
    /// The path, or a prefix of it (`/v3/pay/transactions/jsapi`).
    pub path: String,
    /// The HTTP status (500 for SYSTEM_ERROR, 429 for FREQUENCY_LIMITED…).
    pub status: u16,
    /// The `code`.
    pub code: String,
    /// How many calls (default 1).
    #[serde(default = "one")]
    pub count: u32,
    /// Answer the error **after** doing the work (refunds): WeChat Pay accepted the refund, and the merchant saw a
    /// 5xx — the case where treating an error as "did not happen" refunds the money and keeps the coupon usable.
    #[serde(default)]
    pub after: bool,
    /// With `after`: wait this long before answering — longer than the merchant's timeout, the refund is accepted
    /// and the merchant sees only a timeout.
    #[serde(default)]
    pub delay_ms: Option<u64>,
}

fn one() -> u32 {
    1
}

fn check_signature(w: &mut World, req: &HttpRequest, body: &[u8]) -> Result<String, HttpResponse> {
    // Which key the answer is to be signed with, during a switch-over (see `sign_for`).
    w.v3_request_serial = req
        .headers()
        .get("Wechatpay-Serial")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if req.headers().get("User-Agent").is_none() {
        return Err(error(400, "INVALID_REQUEST", "HTTP 头缺少 User-Agent"));
    }
    let header = req
        .headers()
        .get("Authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| sign_error("Authorization 头缺失"))?;
    let auth = Authorization::parse(header).ok_or_else(|| sign_error("Authorization 格式错误"))?;
    let m = w
        .v3_merchants
        .get(&auth.mch_id)
        .ok_or_else(|| sign_error("商户号未开通 APIv3 或不存在"))?;
    if !auth.serial.eq_ignore_ascii_case(&m.serial) {
        return Err(sign_error("商户证书序列号 serial_no 有误"));
    }
    if (real_now() - auth.timestamp).abs() > 300 {
        return Err(sign_error("请求时间戳 timestamp 已过期"));
    }
    let path = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let message = sign::request_message(req.method().as_str(), path, auth.timestamp, &auth.nonce, body);
    if !m.key.verify(&message, &auth.signature) {
        return Err(sign_error("签名错误"));
    }
    Ok(auth.mch_id)
}

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v3/certificates", web::get().to(certificates))
        .route("/v3/pay/transactions/out-trade-no/{no}/close", web::post().to(close))
        .route("/v3/pay/transactions/out-trade-no/{no}", web::get().to(query_by_no))
        .route("/v3/pay/transactions/id/{id}", web::get().to(query_by_id))
        .route("/v3/pay/transactions/{kind}", web::post().to(prepay))
        .route("/v3/refund/domestic/refunds", web::post().to(refund))
        .route("/v3/refund/domestic/refunds/{no}", web::get().to(refund_query))
        .route("/_sim/pay/v3/merchants", web::post().to(control_add))
        .route("/_sim/pay/v3/merchants/{mch_id}", web::get().to(control_get))
        .route(
            "/_sim/pay/v3/merchants/{mch_id}/signing",
            web::post().to(control_signing),
        )
        .route("/_sim/pay/v3/merchants/{mch_id}/rotate", web::post().to(control_rotate))
        .route("/_sim/pay/v3/errors", web::post().to(control_error));
}

async fn certificates(req: HttpRequest, body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    let mut w = sim.world();
    let mch_id = match authenticate(&mut w, &req, &body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let (Some(keys), Some(m)) = (keyring(), w.v3_merchants.get(&mch_id).cloned()) else {
        return error(500, "SYSTEM_ERROR", "simulator keys unavailable");
    };
    // A public-key merchant has no platform certificate: WeChat Pay answers exactly this (merchants since late 2024;
    // seen in WxJava #3412, jeepay #73).
    if m.mode == SigningMode::PublicKey {
        return error(
            404,
            "RESOURCE_NOT_EXISTS",
            "无可用的平台证书，请在商户平台-API安全申请使用微信支付公钥。可查看指引https://pay.weixin.qq.com/docs/merchant/products/platform-certificate/wxp-pub-key-guide.html",
        );
    }
    let mut data = Vec::new();
    for i in m.previous.into_iter().chain(std::iter::once(m.current)) {
        let cert = &keys.platform[i].1;
        let Ok(sealed) = aead::encrypt(&m.api_v3_key, &random_string(12), "certificate", cert.pem().as_bytes()) else {
            return error(500, "SYSTEM_ERROR", "sealing failed");
        };
        data.push(json!({
            "serial_no": cert.serial(),
            "effective_time": rfc3339_beijing(cert.not_before()),
            "expire_time": rfc3339_beijing(cert.not_after()),
            "encrypt_certificate": sealed,
        }));
    }
    answer(&mut w, &mch_id, 200, Some(&json!({"data": data})))
}

fn valid_no(s: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'*'))
}

/// RFC 3339 (`2026-11-27T10:00:00+08:00`, `…Z`) to Unix seconds.
pub(crate) fn parse_rfc3339(s: &str) -> Option<i64> {
    // ASCII only: the byte slicing below must never fall inside a multi-byte character.
    if !s.is_ascii() || s.len() < 20 || s.as_bytes().get(10) != Some(&b'T') {
        return None;
    }
    let digits: String = s[..19].chars().filter(char::is_ascii_digit).collect();
    let local = parse_beijing(&digits)? + 8 * 3600;
    let offset = match &s[19..] {
        "Z" => 0,
        o if o.len() == 6 && (o.starts_with('+') || o.starts_with('-')) => {
            let h: i64 = o[1..3].parse().ok()?;
            let m: i64 = o[4..6].parse().ok()?;
            let v = h * 3600 + m * 60;
            if o.starts_with('-') { -v } else { v }
        }
        _ => return None,
    };
    Some(local - offset)
}

fn transaction_json(o: &PayOrder) -> Value {
    let desc = match o.state {
        "SUCCESS" => "支付成功",
        "REFUND" => "转入退款",
        "CLOSED" => "已关闭",
        _ => "订单未支付",
    };
    let mut t = json!({
        "appid": o.appid, "mchid": o.mch_id, "out_trade_no": o.out_trade_no, "trade_type": o.trade_type,
        "trade_state": o.state, "trade_state_desc": desc, "attach": o.attach,
        "amount": {"total": o.total_fee, "currency": "CNY"},
    });
    if !o.transaction_id.is_empty() {
        t["transaction_id"] = json!(o.transaction_id);
        t["bank_type"] = json!("OTHERS");
        t["success_time"] = json!(parse_beijing(&o.time_end).map(rfc3339_beijing).unwrap_or_default());
        t["payer"] = json!({"openid": o.openid});
        t["amount"] =
            json!({"total": o.total_fee, "payer_total": o.total_fee, "currency": "CNY", "payer_currency": "CNY"});
    }
    t
}

/// What a v3 notify says.
pub(crate) struct V3Event<'a> {
    /// `payment` or `refund` (the simulator's list).
    pub kind: &'static str,
    pub event_type: &'a str,
    pub summary: &'a str,
    /// `transaction` or `refund`: the resource's type and associated data.
    pub original_type: &'a str,
    pub plaintext: &'a Value,
}

/// A sealed v3 notify for `mch_id`, queued for `url`; signed when delivered.
pub(crate) fn v3_notification(
    w: &World,
    mch_id: &str,
    event: &V3Event<'_>,
    url: &str,
    out_trade_no: &str,
    out_refund_no: Option<String>,
) -> Option<Notification> {
    let V3Event {
        kind,
        event_type,
        summary,
        original_type,
        plaintext,
    } = *event;
    let m = w.v3_merchants.get(mch_id)?;
    let now = w.now();
    let mut resource = aead::encrypt(
        &m.api_v3_key,
        &random_string(12),
        original_type,
        plaintext.to_string().as_bytes(),
    )
    .ok()?;
    resource.original_type = Some(original_type.to_owned());
    let body = json!({
        "id": format!("EV-{}", random_string(24)),
        "create_time": rfc3339_beijing(now),
        "resource_type": "encrypt-resource",
        "event_type": event_type,
        "summary": summary,
        "resource": resource,
    });
    let mut n = Notification::v3(kind, url.to_owned(), body.to_string(), mch_id.to_owned(), now);
    n.out_trade_no = out_trade_no.to_owned();
    n.out_refund_no = out_refund_no;
    Some(n)
}

/// The payment notify of a v3 order that was just paid.
pub(crate) fn payment_notification(w: &World, o: &PayOrder) -> Option<Notification> {
    let plaintext = transaction_json(o);
    let event = V3Event {
        kind: "payment",
        event_type: "TRANSACTION.SUCCESS",
        summary: "支付成功",
        original_type: "transaction",
        plaintext: &plaintext,
    };
    v3_notification(w, &o.mch_id, &event, &o.notify_url, &o.out_trade_no, None)
}

async fn prepay(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    sim: web::Data<SimHandle>,
) -> HttpResponse {
    let mut w = sim.world();
    let mch_id = match authenticate(&mut w, &req, &body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let trade_type = match path.as_str() {
        "jsapi" => "JSAPI",
        "app" => "APP",
        "h5" => "MWEB",
        "native" => "NATIVE",
        _ => return error(404, "RESOURCE_NOT_EXISTS", "无此接口"),
    };
    let Ok(b) = serde_json::from_slice::<Value>(&body) else {
        return error(400, "PARAM_ERROR", "请求体不是合法的 JSON");
    };
    let s = |p: &str| b.pointer(p).and_then(Value::as_str).unwrap_or("").to_owned();
    for (ptr, name) in [
        ("/appid", "appid"),
        ("/mchid", "mchid"),
        ("/description", "description"),
        ("/out_trade_no", "out_trade_no"),
        ("/notify_url", "notify_url"),
    ] {
        if s(ptr).is_empty() {
            return error(
                400,
                "PARAM_ERROR",
                &format!("输入源“/body/{name}”映射到字段“{name}”必填性规则校验失败，此字段为必填项"),
            );
        }
    }
    if s("/mchid") != mch_id {
        return error(400, "PARAM_ERROR", "请求体的 mchid 与 Authorization 的 mchid 不一致");
    }
    let appid = s("/appid");
    if !w.apps.contains_key(&appid) {
        return error(400, "APPID_MCHID_NOT_MATCH", "appid 和 mch_id 不匹配");
    }
    let out_trade_no = s("/out_trade_no");
    if !valid_no(&out_trade_no, 6, 32) {
        return error(400, "PARAM_ERROR", "out_trade_no 应为 6-32 位数字、大小写字母_-*");
    }
    let Some(total) = b.pointer("/amount/total").and_then(Value::as_u64).filter(|t| *t > 0) else {
        return error(400, "PARAM_ERROR", "amount.total 必须为正整数（单位：分）");
    };
    if !matches!(
        b.pointer("/amount/currency").and_then(Value::as_str),
        None | Some("CNY")
    ) {
        return error(400, "PARAM_ERROR", "amount.currency 只支持 CNY");
    }
    let notify_url = s("/notify_url");
    if url::Url::parse(&notify_url).map_or(true, |u| !matches!(u.scheme(), "http" | "https") || u.query().is_some()) {
        return error(400, "PARAM_ERROR", "notify_url 格式错误");
    }
    let openid = s("/payer/openid");
    if trade_type == "JSAPI" && openid.is_empty() {
        return error(400, "PARAM_ERROR", "JSAPI 下单须传 payer.openid");
    }
    if trade_type == "MWEB" && s("/scene_info/payer_client_ip").is_empty() {
        return error(400, "PARAM_ERROR", "H5 下单须传 scene_info.payer_client_ip");
    }
    let time_expire = match b.get("time_expire").and_then(Value::as_str) {
        None => None,
        Some(t) => match parse_rfc3339(t) {
            Some(t) => Some(t),
            None => return error(400, "PARAM_ERROR", "time_expire 应为 RFC 3339 格式"),
        },
    };
    let fingerprint = [
        appid.as_str(),
        &s("/description"),
        &total.to_string(),
        trade_type,
        &openid,
        &notify_url,
        &s("/attach"),
    ]
    .join("\u{1f}");
    let key = (mch_id.clone(), out_trade_no.clone());
    let created = |o: &PayOrder| match trade_type {
        "NATIVE" => json!({"code_url": o.code_url}),
        "MWEB" => {
            json!({"h5_url": format!("https://wx.tenpay.com/cgi-bin/mmpayweb-bin/checkmweb?prepay_id={}", o.prepay_id)})
        }
        _ => json!({"prepay_id": o.prepay_id}),
    };
    if let Some(existing) = w.pay_orders.get(&key).cloned() {
        return match existing.state {
            "SUCCESS" | "REFUND" => error(403, "ORDERPAID", "该订单已支付"),
            "CLOSED" => error(403, "ORDER_CLOSED", "该订单已关闭"),
            _ if existing.fingerprint != fingerprint => error(400, "INVALID_REQUEST", "商户订单号重复，且参数不一致"),
            // Same order again: the same prepay id.
            _ => answer(&mut w, &mch_id, 200, Some(&created(&existing))),
        };
    }
    let now = w.now();
    let prepay_id = format!("wx{}{}", beijing_time(now, false), random_string(18));
    let order = PayOrder {
        mch_id: mch_id.clone(),
        appid,
        out_trade_no,
        body: s("/description"),
        total_fee: total,
        time_expire,
        trade_type: trade_type.to_owned(),
        openid,
        attach: s("/attach"),
        notify_url,
        fingerprint,
        created_at: now,
        prepay_id,
        code_url: if trade_type == "NATIVE" {
            format!("weixin://wxpay/bizpayurl?pr={}", random_string(7))
        } else {
            String::new()
        },
        state: "NOTPAY",
        transaction_id: String::new(),
        time_end: String::new(),
        sign_type: wechat_pay::SignType::HmacSha256,
        refunds: Vec::new(),
        v3: true,
    };
    let out = created(&order);
    w.pay_orders.insert(key, order);
    answer(&mut w, &mch_id, 200, Some(&out))
}

#[derive(Deserialize)]
struct MchQuery {
    mchid: Option<String>,
}

fn query(
    w: &mut World,
    req: &HttpRequest,
    body: &[u8],
    mchid_q: Option<&str>,
    find: impl Fn(&PayOrder) -> bool,
) -> HttpResponse {
    let mch_id = match authenticate(w, req, body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    if mchid_q != Some(mch_id.as_str()) {
        return error(400, "PARAM_ERROR", "查询参数 mchid 缺失或与 Authorization 不一致");
    }
    let Some(o) = w.pay_orders.values().find(|o| o.mch_id == mch_id && find(o)).cloned() else {
        return error(404, "ORDER_NOT_EXIST", "订单不存在");
    };
    answer(w, &mch_id, 200, Some(&transaction_json(&o)))
}

async fn query_by_no(
    req: HttpRequest,
    path: web::Path<String>,
    q: web::Query<MchQuery>,
    body: web::Bytes,
    sim: web::Data<SimHandle>,
) -> HttpResponse {
    let mut w = sim.world();
    query(&mut w, &req, &body, q.mchid.as_deref(), |o| o.out_trade_no == *path)
}

async fn query_by_id(
    req: HttpRequest,
    path: web::Path<String>,
    q: web::Query<MchQuery>,
    body: web::Bytes,
    sim: web::Data<SimHandle>,
) -> HttpResponse {
    let mut w = sim.world();
    query(&mut w, &req, &body, q.mchid.as_deref(), |o| {
        !o.transaction_id.is_empty() && o.transaction_id == *path
    })
}

async fn close(req: HttpRequest, path: web::Path<String>, body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    let mut w = sim.world();
    let mch_id = match authenticate(&mut w, &req, &body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let mchid = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|b| b.get("mchid").and_then(Value::as_str).map(str::to_owned));
    if mchid.as_deref() != Some(mch_id.as_str()) {
        return error(400, "PARAM_ERROR", "请求体 mchid 缺失或与 Authorization 不一致");
    }
    let key = (mch_id.clone(), path.into_inner());
    match w.pay_orders.get_mut(&key) {
        None => error(404, "ORDER_NOT_EXIST", "订单不存在"),
        Some(o) if matches!(o.state, "SUCCESS" | "REFUND") => error(403, "ORDERPAID", "订单已支付，不能关闭"),
        Some(o) => {
            o.state = "CLOSED";
            answer(&mut w, &mch_id, 204, None)
        }
    }
}

fn refund_json(o: &PayOrder, r: &PayRefund, status: &str) -> Value {
    let mut v = json!({
        "refund_id": r.refund_id, "out_refund_no": r.out_refund_no, "transaction_id": o.transaction_id,
        "out_trade_no": o.out_trade_no, "channel": "ORIGINAL", "user_received_account": "支付用户零钱",
        "create_time": r.success_time, "status": status,
        "amount": {"total": o.total_fee, "refund": r.refund_fee, "payer_total": o.total_fee, "payer_refund": r.refund_fee, "currency": "CNY"},
    });
    if status == "SUCCESS" {
        v["success_time"] = json!(r.success_time);
    }
    v
}

/// An injected failure **after** the work (`POST /_sim/pay/v3/errors` with `after`): the call was applied here and
/// the merchant gets an error — or, with `delay_ms`, only a late answer (its timeout).
pub(crate) fn after_error(w: &mut World, req: &HttpRequest) -> Option<HttpResponse> {
    let i = w
        .v3_errors
        .iter()
        .position(|e| e.after && req.path().starts_with(&e.path))?;
    let e = &mut w.v3_errors[i];
    e.count = e.count.saturating_sub(1);
    let mut response = error(e.status, &e.code, "injected by the simulator after doing the work");
    if let Some(ms) = e.delay_ms {
        response.extensions_mut().insert(AnswerDelay(ms));
    }
    if e.count == 0 {
        w.v3_errors.remove(i);
    }
    Some(response)
}

/// How long to hold an answer back (an injected timeout after acceptance), carried on the response.
#[derive(Clone, Copy)]
struct AnswerDelay(u64);

async fn refund(req: HttpRequest, body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    delayed(refund_now(&req, &body, &sim)).await
}

/// The answer, held back as long as an injected [`after_error`] asked (the world's lock is not held while the
/// merchant waits).
pub(crate) async fn delayed(response: HttpResponse) -> HttpResponse {
    let delay = response.extensions().get::<AnswerDelay>().copied();
    if let Some(AnswerDelay(ms)) = delay {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
    response
}

/// The refund, done (under the world's lock).
fn refund_now(req: &HttpRequest, body: &[u8], sim: &SimHandle) -> HttpResponse {
    let mut w = sim.world();
    let mch_id = match authenticate(&mut w, req, body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let Ok(b) = serde_json::from_slice::<Value>(body) else {
        return error(400, "PARAM_ERROR", "请求体不是合法的 JSON");
    };
    let s = |p: &str| b.pointer(p).and_then(Value::as_str).unwrap_or("").to_owned();
    let out_refund_no = s("/out_refund_no");
    if !valid_no(&out_refund_no, 1, 64) {
        return error(400, "PARAM_ERROR", "out_refund_no 缺失或格式错误");
    }
    let (Some(refund_fee), Some(total)) = (
        b.pointer("/amount/refund").and_then(Value::as_u64),
        b.pointer("/amount/total").and_then(Value::as_u64),
    ) else {
        return error(400, "PARAM_ERROR", "amount.refund 和 amount.total 必填");
    };
    let (tid, no) = (s("/transaction_id"), s("/out_trade_no"));
    if tid.is_empty() && no.is_empty() {
        return error(400, "PARAM_ERROR", "transaction_id 和 out_trade_no 必须二选一");
    }
    let Some(key) = w
        .pay_orders
        .iter()
        .find(|(_, o)| {
            o.mch_id == mch_id
                && o.v3
                && ((!tid.is_empty() && o.transaction_id == tid) || (!no.is_empty() && o.out_trade_no == no))
        })
        .map(|(k, _)| k.clone())
    else {
        return error(404, "RESOURCE_NOT_EXISTS", "订单不存在");
    };
    let Some(order) = w.pay_orders.get(&key).cloned() else {
        return error(404, "RESOURCE_NOT_EXISTS", "订单不存在");
    };
    if !matches!(order.state, "SUCCESS" | "REFUND") {
        return error(400, "INVALID_REQUEST", "订单未支付，不能退款");
    }
    if total != order.total_fee || refund_fee == 0 {
        return error(400, "INVALID_REQUEST", "订单金额或退款金额与之前请求不一致");
    }
    if let Some(existing) = order.refunds.iter().find(|r| r.out_refund_no == out_refund_no) {
        if existing.refund_fee != refund_fee {
            return error(400, "INVALID_REQUEST", "退款金额与之前请求不一致");
        }
        let status = existing.status;
        let out = refund_json(&order, existing, status);
        return answer(&mut w, &mch_id, 200, Some(&out));
    }
    let refunded: u64 = order
        .refunds
        .iter()
        .filter(|r| r.status != "ABNORMAL" && r.status != "CLOSED")
        .map(|r| r.refund_fee)
        .sum();
    if refunded + refund_fee > order.total_fee {
        return error(403, "NOT_ENOUGH", "可退金额不足");
    }
    let now = w.now();
    let abnormal = if w.v3_abnormal_refunds > 0 {
        w.v3_abnormal_refunds -= 1;
        true
    } else {
        false
    };
    let r = PayRefund {
        out_refund_no: out_refund_no.clone(),
        refund_id: format!("5030{}", random_string(24).to_ascii_lowercase()),
        refund_fee,
        success_time: rfc3339_beijing(now),
        status: if abnormal { "ABNORMAL" } else { "SUCCESS" },
    };
    if let Some(o) = w.pay_orders.get_mut(&key) {
        o.state = "REFUND";
        o.refunds.push(r.clone());
    }
    let notify_url = s("/notify_url");
    if !notify_url.is_empty() {
        let (event, summary) = if abnormal {
            ("REFUND.ABNORMAL", "退款异常")
        } else {
            ("REFUND.SUCCESS", "退款成功")
        };
        let mut plain = refund_json(&order, &r, r.status);
        // Notifies name the state `refund_status`.
        if let Some(o) = plain.as_object_mut() {
            o.remove("status");
            o.insert("refund_status".into(), json!(r.status));
            o.insert("mchid".into(), json!(mch_id));
        }
        let event = V3Event {
            kind: "refund",
            event_type: event,
            summary,
            original_type: "refund",
            plaintext: &plain,
        };
        if let Some(n) = v3_notification(
            &w,
            &mch_id,
            &event,
            &notify_url,
            &order.out_trade_no,
            Some(out_refund_no),
        ) {
            w.notifications.push(n);
        }
    }
    // An injected failure after the work: accepted here, an error (or only a timeout) for the merchant.
    if let Some(response) = after_error(&mut w, req) {
        return response;
    }
    // WeChat Pay accepts a refund as PROCESSING; the notify (and a query) tell how it ended.
    let out = refund_json(&order, &r, "PROCESSING");
    answer(&mut w, &mch_id, 200, Some(&out))
}

async fn refund_query(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    sim: web::Data<SimHandle>,
) -> HttpResponse {
    let mut w = sim.world();
    let mch_id = match authenticate(&mut w, &req, &body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let found = w.pay_orders.values().filter(|o| o.mch_id == mch_id).find_map(|o| {
        o.refunds
            .iter()
            .find(|r| r.out_refund_no == *path)
            .map(|r| (o.clone(), r.clone()))
    });
    match found {
        Some((o, r)) => {
            let out = refund_json(&o, &r, r.status);
            answer(&mut w, &mch_id, 200, Some(&out))
        }
        None => error(404, "RESOURCE_NOT_EXISTS", "退款单不存在"),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewV3Merchant {
    mch_id: String,
    api_v3_key: String,
    merchant_serial: String,
    merchant_public_key: String,
    #[serde(default)]
    mode: Option<SigningMode>,
}

async fn control_add(body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    let Ok(m) = serde_json::from_slice::<NewV3Merchant>(&body) else {
        return bad_request(
            "invalid_json",
            "expected {\"mch_id\", \"api_v3_key\", \"merchant_serial\", \"merchant_public_key\" (PEM), \"mode\"?: \"certificate\" | \"public_key\" | \"switch_over\"}",
        );
    };
    match sim.add_v3_merchant(
        &m.mch_id,
        &m.api_v3_key,
        &m.merchant_serial,
        &m.merchant_public_key,
        m.mode.unwrap_or(SigningMode::PublicKey),
    ) {
        Ok(info) => HttpResponse::Created().json(info),
        Err(e) => bad_request("invalid_merchant", e),
    }
}

async fn control_get(path: web::Path<String>, sim: web::Data<SimHandle>) -> HttpResponse {
    match sim.v3_merchant(&path) {
        Some(info) => HttpResponse::Ok().json(info),
        None => {
            HttpResponse::NotFound().json(json!({"error": {"code": "not_found", "message": "no such v3 merchant"}}))
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Signing {
    mode: SigningMode,
    #[serde(default)]
    public_key_share: Option<u8>,
    /// The day of the switch-over (1–7): the notifies' public-key share grows with it, 100 % from day 7.
    #[serde(default)]
    day: Option<u8>,
    #[serde(default)]
    abnormal_refunds: Option<u32>,
}

async fn control_signing(path: web::Path<String>, body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    let Ok(s) = serde_json::from_slice::<Signing>(&body) else {
        return bad_request(
            "invalid_json",
            "expected {\"mode\": \"certificate\" | \"public_key\" | \"switch_over\", \"public_key_share\"?: 0-100, \"day\"?: 1-7, \"abnormal_refunds\"?: N}",
        );
    };
    let share = match (s.public_key_share, s.day) {
        (Some(share), _) => share,
        (None, Some(day)) => switch_over_share(day),
        (None, None) => 50,
    };
    if let Err(e) = sim.set_v3_signing(&path, s.mode, share) {
        return bad_request("invalid_merchant", e);
    }
    if let Some(n) = s.abnormal_refunds {
        sim.world().v3_abnormal_refunds = n;
    }
    HttpResponse::NoContent().finish()
}

async fn control_error(body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    match serde_json::from_slice::<V3Error>(&body) {
        Ok(e) if e.count > 0 && (400..600).contains(&e.status) && e.path.starts_with("/v3/") => {
            sim.inject_v3_error(e);
            HttpResponse::NoContent().finish()
        }
        _ => bad_request(
            "invalid_json",
            "expected {\"path\": \"/v3/...\", \"status\": 400-599, \"code\": \"SYSTEM_ERROR\", \"count\"?: N}",
        ),
    }
}

async fn control_rotate(path: web::Path<String>, sim: web::Data<SimHandle>) -> HttpResponse {
    match sim.rotate_platform_certificate(&path) {
        Ok(serial) => HttpResponse::Ok().json(json!({"platform_serial": serial})),
        Err(e) => bad_request("invalid_merchant", e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_parses_what_the_client_writes() {
        for t in [0i64, 1_795_485_600, 1_800_000_000] {
            assert_eq!(parse_rfc3339(&rfc3339_beijing(t)), Some(t));
        }
        assert_eq!(parse_rfc3339("2026-11-24T02:00:00Z"), Some(1_795_485_600));
        assert_eq!(parse_rfc3339("2026-11-24"), None);
        // Garbage, including multi-byte characters where the slicing looks, is refused, never a panic.
        for bad in [
            "2026-11-24T02:00:0我+08:00",
            "2026-11-24T02:00:00+0我:00",
            "2026-11-24T02:00:00+08:0",
            "x".repeat(40).as_str(),
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
        assert!(keyring().is_some(), "the bundled keys load");
        assert_eq!(public_key_id("1900000109"), "PUB_KEY_ID_0119000001092026112700000001");
    }
}

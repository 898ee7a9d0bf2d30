//! WeChat Pay 商家券 (merchant coupons, `/v3/marketing/busifavor/…`): stocks with budgets and per-user limits,
//! MERCHANT_API codes, use / deactivate / return with WeChat's answers, the callback URL, the marketing image
//! upload, the H5 领券 page (its v2 HMAC-SHA256 signature checked as WeChat does), the mini-program `send-coupon`
//! plugin and the `COUPON.SEND` notify (v3-signed, AES-GCM, WeChat's retry schedule, the payment notifies' faults).
//!
//! As WeChat documents, the plain H5 page does **not** call the merchant back ("该H5发券不回调信息给商家，依赖商家主动
//! 去查询"): a merchant learns of an H5 receipt by asking (`users/{openid}/coupons/{code}/appids/{appid}`). The
//! plugin send does call back.

use crate::control::bad_request;
use crate::pay_v3::{V3Event, after_error, answer, authenticate, error, parse_rfc3339, v3_notification};
use crate::state::{SimHandle, World};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use wechat_pay::sign::{PayKey, SignType, sign};
use wechat_pay::v3::rfc3339_beijing;

/// A stock.
#[derive(Clone, Debug)]
pub(crate) struct Stock {
    pub mch_id: String,
    pub name: String,
    pub stock_type: String,
    pub max_coupons: u64,
    pub per_user: u64,
    pub begin: i64,
    pub end: i64,
    pub code_mode: String,
    pub notify_appid: Option<String>,
    pub merchant_name: String,
    pub description: String,
    pub created: Value,
}

/// One coupon of a stock, as the control API lists it.
#[derive(Clone, Debug, Serialize)]
pub struct SimCoupon {
    /// The code.
    pub coupon_code: String,
    /// Its stock.
    pub stock_id: String,
    /// The holder.
    pub openid: String,
    /// `SENDED`, `USED`, `DEACTIVATED`, `EXPIRED`.
    pub state: String,
    /// The send's `out_request_no`.
    pub send_request_no: String,
    /// How it was sent: `H5` or `MINI_PROGRAM_PLUGIN`.
    pub channel: String,
    /// The accepted use's `use_request_no`.
    pub use_request_no: Option<String>,
    /// `use` calls that redeemed it (a retry with the same number is answered, not counted again).
    pub uses: u32,
    /// Every `use` call that named it.
    pub use_calls: u32,
    /// The accepted deactivation's number.
    pub deactivate_request_no: Option<String>,
    /// Unix seconds.
    pub receive_time: i64,
}

/// The world's 商家券 state.
#[derive(Debug, Default)]
pub(crate) struct Store {
    pub stocks: BTreeMap<String, Stock>,
    /// (merchant, create out_request_no) → stock id.
    pub created: HashMap<(String, String), String>,
    /// (stock, code) → coupon.
    pub coupons: BTreeMap<(String, String), SimCoupon>,
    /// (merchant, send out_request_no) → (stock, code).
    pub sends: HashMap<(String, String), (String, String)>,
    pub callbacks: HashMap<String, String>,
    /// (merchant, budget request no) → the answer given.
    pub budget_requests: HashMap<(String, String), u64>,
    pub next_stock: u64,
    pub images: u64,
}

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v3/marketing/busifavor/stocks", web::post().to(create_stock))
        .route("/v3/marketing/busifavor/stocks/{id}", web::get().to(query_stock))
        .route("/v3/marketing/busifavor/stocks/{id}", web::patch().to(modify_stock))
        .route(
            "/v3/marketing/busifavor/stocks/{id}/budget",
            web::patch().to(modify_budget),
        )
        .route("/v3/marketing/busifavor/coupons/use", web::post().to(use_coupon))
        .route("/v3/marketing/busifavor/coupons/deactivate", web::post().to(deactivate))
        .route("/v3/marketing/busifavor/coupons/return", web::post().to(return_coupon))
        .route(
            "/v3/marketing/busifavor/users/{openid}/coupons/{code}/appids/{appid}",
            web::get().to(user_coupon),
        )
        .route(
            "/v3/marketing/busifavor/users/{openid}/coupons",
            web::get().to(user_coupons),
        )
        .route("/v3/marketing/busifavor/callbacks", web::post().to(set_callbacks))
        .route("/v3/marketing/busifavor/callbacks", web::get().to(get_callbacks))
        .route("/v3/marketing/favor/media/image-upload", web::post().to(image_upload))
        .route("/busifavor/getcouponinfo", web::get().to(h5_page))
        .route("/busifavor/getcouponinfo", web::post().to(h5_receive))
        .route("/_sim/pay/busifavor/plugin-send", web::post().to(plugin_send))
        .route("/_sim/pay/busifavor/coupons", web::get().to(control_coupons));
}

fn body_json(body: &[u8]) -> Result<Value, HttpResponse> {
    serde_json::from_slice::<Value>(body).map_err(|_| error(400, "PARAM_ERROR", "请求体不是合法的 JSON"))
}

fn required(b: &Value, name: &str) -> Result<String, HttpResponse> {
    match b.get(name).and_then(Value::as_str) {
        Some(s) if !s.is_empty() => Ok(s.to_owned()),
        _ => Err(error(
            400,
            "PARAM_ERROR",
            &format!("输入源“/body/{name}”映射到字段“{name}”必填性规则校验失败，此字段为必填项"),
        )),
    }
}

macro_rules! try_r {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(r) => return r,
        }
    };
}

async fn create_stock(req: HttpRequest, body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    let mut w = sim.world();
    let mch_id = try_r!(authenticate(&mut w, &req, &body));
    let b = try_r!(body_json(&body));
    let name = try_r!(required(&b, "stock_name"));
    let goods_name = try_r!(required(&b, "goods_name"));
    if goods_name.len() > 45 {
        return error(400, "PARAM_ERROR", "goods_name 超过 15 个汉字");
    }
    let belong = try_r!(required(&b, "belong_merchant"));
    let out_request_no = try_r!(required(&b, "out_request_no"));
    let stock_type = try_r!(required(&b, "stock_type"));
    let code_mode = try_r!(required(&b, "coupon_code_mode"));
    if belong != mch_id {
        return error(403, "NO_AUTH", "批次归属商户号与调用商户号不一致，无权限");
    }
    if name.len() > 21 {
        return error(400, "PARAM_ERROR", "stock_name 超过 21 个字节");
    }
    if !matches!(
        code_mode.as_str(),
        "MERCHANT_API" | "WECHATPAY_MODE" | "MERCHANT_UPLOAD"
    ) {
        return error(400, "PARAM_ERROR", "coupon_code_mode 取值非法");
    }
    let rule_key = match stock_type.as_str() {
        "NORMAL" => "fixed_normal_coupon",
        "DISCOUNT" => "discount_coupon",
        "EXCHANGE" => "exchange_coupon",
        _ => return error(400, "PARAM_ERROR", "stock_type 取值非法"),
    };
    if b.pointer(&format!("/coupon_use_rule/{rule_key}")).is_none() {
        return error(
            400,
            "PARAM_ERROR",
            &format!("stock_type 为 {stock_type} 时 {rule_key} 必填"),
        );
    }
    let time = |p: &str| b.pointer(p).and_then(Value::as_str).and_then(parse_rfc3339);
    let (Some(begin), Some(end)) = (
        time("/coupon_use_rule/coupon_available_time/available_begin_time"),
        time("/coupon_use_rule/coupon_available_time/available_end_time"),
    ) else {
        return error(400, "PARAM_ERROR", "coupon_available_time 的时间格式应为 RFC 3339");
    };
    if end <= begin {
        return error(400, "PARAM_ERROR", "可用结束时间应晚于开始时间");
    }
    let num = |p: &str| b.pointer(p).and_then(Value::as_u64).unwrap_or(0);
    let (max_coupons, per_user) = (
        num("/stock_send_rule/max_coupons"),
        num("/stock_send_rule/max_coupons_per_user"),
    );
    if max_coupons == 0 || !(1..=100).contains(&per_user) {
        return error(
            400,
            "PARAM_ERROR",
            "stock_send_rule：max_coupons 必须为正，max_coupons_per_user 为 1-100",
        );
    }
    let merchant_name = b
        .pointer("/display_pattern_info/merchant_name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if merchant_name.len() > 16 {
        return error(400, "PARAM_ERROR", "merchant_name 超过 16 个字节");
    }
    let now = w.now();
    // One stock per out_request_no: the same request again answers the same stock.
    let key = (mch_id.clone(), out_request_no);
    if let Some(id) = w.busifavor.created.get(&key).cloned() {
        let created = w
            .busifavor
            .stocks
            .get(&id)
            .map(|s| s.created.clone())
            .unwrap_or(Value::Null);
        return answer(&mut w, &mch_id, 200, Some(&created));
    }
    w.busifavor.next_stock += 1;
    let stock_id = format!("129{:013}", w.busifavor.next_stock + 7_000_000);
    let created = json!({"stock_id": stock_id, "create_time": rfc3339_beijing(now)});
    let stock = Stock {
        mch_id: mch_id.clone(),
        name,
        stock_type,
        max_coupons,
        per_user,
        begin,
        end,
        code_mode,
        notify_appid: b
            .pointer("/notify_config/notify_appid")
            .and_then(Value::as_str)
            .map(str::to_owned),
        merchant_name: merchant_name.to_owned(),
        description: b
            .pointer("/display_pattern_info/description")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        created: created.clone(),
    };
    w.busifavor.stocks.insert(stock_id.clone(), stock);
    w.busifavor.created.insert(key, stock_id);
    answer(&mut w, &mch_id, 200, Some(&created))
}

/// The stock `id` of `mch_id`: 404 when there is none, 403 when it is another merchant's.
fn own_stock<'a>(w: &'a World, mch_id: &str, id: &str) -> Result<&'a Stock, HttpResponse> {
    match w.busifavor.stocks.get(id) {
        None => Err(error(404, "RESOURCE_NOT_EXISTS", "批次不存在")),
        Some(s) if s.mch_id != mch_id => Err(error(403, "NO_AUTH", "无权限操作该批次")),
        Some(s) => Ok(s),
    }
}

fn sent_count(w: &World, stock_id: &str) -> u64 {
    w.busifavor.coupons.keys().filter(|(s, _)| s == stock_id).count() as u64
}

async fn query_stock(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    sim: web::Data<SimHandle>,
) -> HttpResponse {
    let mut w = sim.world();
    let mch_id = try_r!(authenticate(&mut w, &req, &body));
    let s = try_r!(own_stock(&w, &mch_id, &path)).clone();
    let sent = sent_count(&w, &path);
    let now = w.now();
    let state = if now > s.end { "STOPED" } else { "RUNNING" };
    let out = json!({
        "stock_id": path.as_str(), "stock_name": s.name, "belong_merchant": s.mch_id, "stock_state": state,
        "stock_type": s.stock_type, "coupon_code_mode": s.code_mode,
        "stock_send_rule": {"max_coupons": s.max_coupons, "max_coupons_per_user": s.per_user},
        "send_count_information": {"total_send_num": sent},
        "coupon_use_rule": {"coupon_available_time": {"available_begin_time": rfc3339_beijing(s.begin),
            "available_end_time": rfc3339_beijing(s.end)}, "use_method": "OFF_LINE"},
        "display_pattern_info": {"merchant_name": s.merchant_name, "description": s.description},
    });
    answer(&mut w, &mch_id, 200, Some(&out))
}

async fn modify_stock(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    sim: web::Data<SimHandle>,
) -> HttpResponse {
    let mut w = sim.world();
    let mch_id = try_r!(authenticate(&mut w, &req, &body));
    let b = try_r!(body_json(&body));
    try_r!(required(&b, "out_request_no"));
    try_r!(own_stock(&w, &mch_id, &path));
    if let Some(name) = b.get("stock_name").and_then(Value::as_str) {
        if name.is_empty() || name.len() > 21 {
            return error(400, "PARAM_ERROR", "stock_name 应为 1-21 个字节");
        }
        if let Some(s) = w.busifavor.stocks.get_mut(path.as_str()) {
            s.name = name.to_owned();
        }
    }
    if let Some(d) = b.pointer("/display_pattern_info/description").and_then(Value::as_str)
        && let Some(s) = w.busifavor.stocks.get_mut(path.as_str())
    {
        s.description = d.to_owned();
    }
    answer(&mut w, &mch_id, 204, None)
}

async fn modify_budget(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    sim: web::Data<SimHandle>,
) -> HttpResponse {
    let mut w = sim.world();
    let mch_id = try_r!(authenticate(&mut w, &req, &body));
    let b = try_r!(body_json(&body));
    let request_no = try_r!(required(&b, "modify_budget_request_no"));
    let current_max = try_r!(own_stock(&w, &mch_id, &path)).max_coupons;
    if let Some(done) = w
        .busifavor
        .budget_requests
        .get(&(mch_id.clone(), request_no.clone()))
        .copied()
    {
        return answer(&mut w, &mch_id, 200, Some(&json!({"max_coupons": done})));
    }
    let (Some(target), Some(current)) = (
        b.get("target_max_coupons").and_then(Value::as_u64),
        b.get("current_max_coupons").and_then(Value::as_u64),
    ) else {
        return error(400, "PARAM_ERROR", "target_max_coupons 与 current_max_coupons 必填");
    };
    if current != current_max {
        return error(
            400,
            "INVALID_REQUEST",
            "current_max_coupons 与批次当前最大发放个数不一致",
        );
    }
    if target < sent_count(&w, &path) || target == 0 {
        return error(400, "INVALID_REQUEST", "目标最大发放个数不能小于已发放个数");
    }
    if let Some(s) = w.busifavor.stocks.get_mut(path.as_str()) {
        s.max_coupons = target;
    }
    w.busifavor.budget_requests.insert((mch_id.clone(), request_no), target);
    answer(&mut w, &mch_id, 200, Some(&json!({"max_coupons": target})))
}

/// The coupon a use/deactivate/return names, checked to be the merchant's. `stock_id` may be left out only for
/// WeChat-made codes: "商户自定义code的批次，核销时必须填写批次号".
fn named_coupon(w: &World, mch_id: &str, b: &Value) -> Result<(String, String), HttpResponse> {
    let code = required(b, "coupon_code")?;
    let stock_id = match b.get("stock_id").and_then(Value::as_str).filter(|s| !s.is_empty()) {
        Some(s) => s.to_owned(),
        None => {
            let found = w
                .busifavor
                .coupons
                .keys()
                .find(|(s, c)| *c == code && w.busifavor.stocks.get(s).is_some_and(|st| st.mch_id == mch_id))
                .map(|(s, _)| s.clone());
            let Some(stock_id) = found else {
                return Err(error(404, "RESOURCE_NOT_EXISTS", "券不存在"));
            };
            if w.busifavor
                .stocks
                .get(&stock_id)
                .is_some_and(|s| s.code_mode != "WECHATPAY_MODE")
            {
                return Err(error(400, "PARAM_ERROR", "商户自定义code的批次，核销时必须填写批次号"));
            }
            stock_id
        }
    };
    own_stock(w, mch_id, &stock_id)?;
    if !w.busifavor.coupons.contains_key(&(stock_id.clone(), code.clone())) {
        return Err(error(404, "RESOURCE_NOT_EXISTS", "券不存在"));
    }
    Ok((stock_id, code))
}

/// With an injected `after` error and `delay_ms`, the answer comes that late (a timeout after acceptance), the
/// world's lock released meanwhile.
async fn use_coupon(req: HttpRequest, body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    crate::pay_v3::delayed(use_coupon_now(&req, &body, &sim)).await
}

fn use_coupon_now(req: &HttpRequest, body: &[u8], sim: &SimHandle) -> HttpResponse {
    let mut w = sim.world();
    let mch_id = try_r!(authenticate(&mut w, req, body));
    let b = try_r!(body_json(body));
    let use_request_no = try_r!(required(&b, "use_request_no"));
    let appid = try_r!(required(&b, "appid"));
    let use_time = try_r!(required(&b, "use_time"));
    if parse_rfc3339(&use_time).is_none() {
        return error(400, "PARAM_ERROR", "use_time 的格式应为 RFC 3339");
    }
    if !w.apps.contains_key(&appid) {
        return error(400, "PARAM_ERROR", "appid 与商户号无绑定关系");
    }
    let key = try_r!(named_coupon(&w, &mch_id, &b));
    let now = w.now();
    let end = w.busifavor.stocks.get(&key.0).map(|s| s.end).unwrap_or(0);
    let Some(c) = w.busifavor.coupons.get_mut(&key) else {
        return error(404, "RESOURCE_NOT_EXISTS", "券不存在");
    };
    c.use_calls += 1;
    if let Some(o) = b.get("openid").and_then(Value::as_str)
        && o != c.openid
    {
        return error(400, "PARAM_ERROR", "openid 与券的持有用户不一致");
    }
    match c.state.as_str() {
        // The same use again (a retry after a lost answer) is the same success.
        "USED" if c.use_request_no.as_deref() == Some(use_request_no.as_str()) => {}
        "USED" => return error(400, "INVALID_REQUEST", "券已核销"),
        "DEACTIVATED" => return error(400, "INVALID_REQUEST", "券已失效"),
        _ if now > end => {
            c.state = "EXPIRED".into();
            return error(400, "INVALID_REQUEST", "券已过期");
        }
        _ => {
            c.state = "USED".into();
            c.use_request_no = Some(use_request_no);
            c.uses += 1;
        }
    }
    let out = json!({"stock_id": key.0, "openid": c.openid, "wechatpay_use_time": rfc3339_beijing(now)});
    if let Some(r) = after_error(&mut w, req) {
        return r;
    }
    answer(&mut w, &mch_id, 200, Some(&out))
}

/// With an injected `after` error and `delay_ms`, the answer comes that late (a timeout after acceptance), the
/// world's lock released meanwhile.
async fn deactivate(req: HttpRequest, body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    crate::pay_v3::delayed(deactivate_now(&req, &body, &sim)).await
}

fn deactivate_now(req: &HttpRequest, body: &[u8], sim: &SimHandle) -> HttpResponse {
    let mut w = sim.world();
    let mch_id = try_r!(authenticate(&mut w, req, body));
    let b = try_r!(body_json(body));
    let request_no = try_r!(required(&b, "deactivate_request_no"));
    let key = try_r!(named_coupon(&w, &mch_id, &b));
    let now = w.now();
    let Some(c) = w.busifavor.coupons.get_mut(&key) else {
        return error(404, "RESOURCE_NOT_EXISTS", "券不存在");
    };
    match c.state.as_str() {
        "DEACTIVATED" if c.deactivate_request_no.as_deref() == Some(request_no.as_str()) => {}
        "DEACTIVATED" => return error(400, "INVALID_REQUEST", "券已失效"),
        "USED" => return error(400, "INVALID_REQUEST", "券已核销，不能失效"),
        _ => {
            c.state = "DEACTIVATED".into();
            c.deactivate_request_no = Some(request_no);
        }
    }
    let out = json!({"wechatpay_deactivate_time": rfc3339_beijing(now)});
    if let Some(r) = after_error(&mut w, req) {
        return r;
    }
    answer(&mut w, &mch_id, 200, Some(&out))
}

async fn return_coupon(req: HttpRequest, body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    let mut w = sim.world();
    let mch_id = try_r!(authenticate(&mut w, &req, &body));
    let b = try_r!(body_json(&body));
    try_r!(required(&b, "return_request_no"));
    let key = try_r!(named_coupon(&w, &mch_id, &b));
    let now = w.now();
    let Some(c) = w.busifavor.coupons.get_mut(&key) else {
        return error(404, "RESOURCE_NOT_EXISTS", "券不存在");
    };
    if c.state != "USED" {
        return error(400, "INVALID_REQUEST", "券未核销，不能退券");
    }
    c.state = "SENDED".into();
    c.use_request_no = None;
    let out = json!({"wechatpay_return_time": rfc3339_beijing(now)});
    answer(&mut w, &mch_id, 200, Some(&out))
}

fn coupon_json(w: &World, c: &SimCoupon) -> Value {
    let s = w.busifavor.stocks.get(&c.stock_id);
    json!({
        "coupon_code": c.coupon_code, "stock_id": c.stock_id, "coupon_state": c.state,
        "belong_merchant": s.map(|s| s.mch_id.as_str()).unwrap_or(""),
        "stock_name": s.map(|s| s.name.as_str()).unwrap_or(""),
        "receive_time": rfc3339_beijing(c.receive_time), "send_request_no": c.send_request_no,
        "use_request_no": c.use_request_no,
    })
}

async fn user_coupon(
    req: HttpRequest,
    path: web::Path<(String, String, String)>,
    body: web::Bytes,
    sim: web::Data<SimHandle>,
) -> HttpResponse {
    let mut w = sim.world();
    let mch_id = try_r!(authenticate(&mut w, &req, &body));
    let (openid, code, _appid) = path.into_inner();
    let found = w
        .busifavor
        .coupons
        .values()
        .find(|c| {
            c.coupon_code == code
                && c.openid == openid
                && w.busifavor.stocks.get(&c.stock_id).is_some_and(|s| s.mch_id == mch_id)
        })
        .cloned();
    match found {
        Some(c) => {
            let out = coupon_json(&w, &c);
            answer(&mut w, &mch_id, 200, Some(&out))
        }
        None => error(404, "RESOURCE_NOT_EXISTS", "用户券不存在"),
    }
}

#[derive(Deserialize)]
struct UserCouponsQuery {
    appid: String,
    stock_id: Option<String>,
    coupon_state: Option<String>,
    #[serde(default)]
    offset: usize,
    limit: Option<usize>,
}

async fn user_coupons(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    sim: web::Data<SimHandle>,
) -> HttpResponse {
    let mut w = sim.world();
    let mch_id = try_r!(authenticate(&mut w, &req, &body));
    let Ok(q) = web::Query::<UserCouponsQuery>::from_query(req.query_string()) else {
        return error(400, "PARAM_ERROR", "appid 必填");
    };
    if q.appid.is_empty() {
        return error(400, "PARAM_ERROR", "appid 必填");
    }
    let limit = q.limit.unwrap_or(20);
    if !(1..=50).contains(&limit) {
        return error(400, "PARAM_ERROR", "limit 取值 1-50");
    }
    let all: Vec<SimCoupon> = w
        .busifavor
        .coupons
        .values()
        .filter(|c| c.openid == *path)
        .filter(|c| w.busifavor.stocks.get(&c.stock_id).is_some_and(|s| s.mch_id == mch_id))
        .filter(|c| q.stock_id.as_ref().is_none_or(|s| *s == c.stock_id))
        .filter(|c| q.coupon_state.as_ref().is_none_or(|s| *s == c.state))
        .cloned()
        .collect();
    let data: Vec<Value> = all
        .iter()
        .skip(q.offset)
        .take(limit)
        .map(|c| coupon_json(&w, c))
        .collect();
    let out = json!({"data": data, "total_count": all.len(), "offset": q.offset, "limit": limit});
    answer(&mut w, &mch_id, 200, Some(&out))
}

async fn set_callbacks(req: HttpRequest, body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    let mut w = sim.world();
    let mch_id = try_r!(authenticate(&mut w, &req, &body));
    let b = try_r!(body_json(&body));
    let url = try_r!(required(&b, "notify_url"));
    if b.get("mchid").and_then(Value::as_str).is_some_and(|m| m != mch_id) {
        return error(403, "NO_AUTH", "只能设置本商户的通知地址");
    }
    if url::Url::parse(&url).map_or(true, |u| !matches!(u.scheme(), "http" | "https")) {
        return error(400, "PARAM_ERROR", "notify_url 不是合法的 URL");
    }
    let now = w.now();
    w.busifavor.callbacks.insert(mch_id.clone(), url.clone());
    let out = json!({"update_time": rfc3339_beijing(now), "notify_url": url, "mchid": mch_id});
    answer(&mut w, &mch_id, 200, Some(&out))
}

async fn get_callbacks(req: HttpRequest, body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    let mut w = sim.world();
    let mch_id = try_r!(authenticate(&mut w, &req, &body));
    match w.busifavor.callbacks.get(&mch_id).cloned() {
        Some(url) => answer(&mut w, &mch_id, 200, Some(&json!({"notify_url": url, "mchid": mch_id}))),
        None => error(404, "RESOURCE_NOT_EXISTS", "未设置通知地址"),
    }
}

/// The upload is signed over its `meta` part only; the file must match the meta's SHA-256.
async fn image_upload(req: HttpRequest, body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    use sha2::Digest;
    let (Some(meta), Some(file)) = (
        crate::cards::multipart_file(&req, &body, "meta"),
        crate::cards::multipart_file(&req, &body, "file"),
    ) else {
        return error(400, "PARAM_ERROR", "需要 multipart/form-data 的 meta 与 file 两部分");
    };
    let mut w = sim.world();
    let mch_id = try_r!(authenticate(&mut w, &req, meta));
    let Ok(m) = serde_json::from_slice::<Value>(meta) else {
        return error(400, "PARAM_ERROR", "meta 不是合法的 JSON");
    };
    let hex: String = sha2::Sha256::digest(file).iter().map(|b| format!("{b:02x}")).collect();
    if m.get("sha256").and_then(Value::as_str) != Some(hex.as_str()) {
        return error(400, "PARAM_ERROR", "文件的 sha256 与 meta 不符");
    }
    if !(file.starts_with(b"\x89PNG\r\n\x1a\n") || file.starts_with(&[0xff, 0xd8, 0xff])) {
        return error(400, "PARAM_ERROR", "图片格式仅支持 JPG、PNG");
    }
    if file.len() > 2 * 1024 * 1024 {
        return error(400, "PARAM_ERROR", "图片大小不能超过 2M");
    }
    w.busifavor.images += 1;
    let url = format!("https://wxpaylogo.qpic.cn/wxpaylogo/sim/{}.png", w.busifavor.images);
    answer(&mut w, &mch_id, 200, Some(&json!({"media_url": url})))
}

/// What a send asks for, checked and signed.
struct SendAsk {
    stock_id: String,
    out_request_no: String,
    coupon_code: Option<String>,
    openid: String,
    merchant: String,
}

/// Sends one coupon as WeChat does: the attempt's number reused with another code is refused, the same attempt again
/// answers the coupon it made; a stock out of budget, past its window, or a user at the limit gets nothing.
fn send(w: &mut World, ask: &SendAsk, channel: &str) -> Result<(SimCoupon, bool), (&'static str, String)> {
    let Some(stock) = w.busifavor.stocks.get(&ask.stock_id).cloned() else {
        return Err(("RESOURCE_NOT_EXISTS", "批次不存在".into()));
    };
    if stock.mch_id != ask.merchant {
        return Err(("NO_AUTH", "发券商户号无权发放该批次".into()));
    }
    let attempt = (ask.merchant.clone(), ask.out_request_no.clone());
    if let Some((s, code)) = w.busifavor.sends.get(&attempt).cloned() {
        if s != ask.stock_id || ask.coupon_code.as_ref().is_some_and(|c| *c != code) {
            return Err(("INVALID_REQUEST", "发券凭证 out_request_no 已被使用".into()));
        }
        let c = w.busifavor.coupons.get(&(s, code)).cloned();
        return c.map(|c| (c, false)).ok_or(("SYSTEM_ERROR", "系统错误".into()));
    }
    let now = w.now();
    if now > stock.end {
        return Err(("STOCK_EXPIRED", "活动已结束".into()));
    }
    if sent_count(w, &ask.stock_id) >= stock.max_coupons {
        return Err(("STOCK_NOT_ENOUGH", "批次预算已用完".into()));
    }
    let mine = w
        .busifavor
        .coupons
        .values()
        .filter(|c| c.stock_id == ask.stock_id && c.openid == ask.openid)
        .count() as u64;
    if mine >= stock.per_user {
        return Err(("USER_LIMIT", "已达到该批次的领取上限".into()));
    }
    let code = match (stock.code_mode.as_str(), &ask.coupon_code) {
        ("MERCHANT_API", Some(c)) => c.clone(),
        ("MERCHANT_API", None) => return Err(("PARAM_ERROR", "该批次需要指定 coupon_code".into())),
        (_, Some(_)) => return Err(("PARAM_ERROR", "该批次不能指定 coupon_code".into())),
        (_, None) => format!("{:022}", w.busifavor.coupons.len() as u64 + 1_000_000_000),
    };
    if w.busifavor.coupons.contains_key(&(ask.stock_id.clone(), code.clone())) {
        return Err(("INVALID_REQUEST", "该券 code 已发放".into()));
    }
    let coupon = SimCoupon {
        coupon_code: code.clone(),
        stock_id: ask.stock_id.clone(),
        openid: ask.openid.clone(),
        state: "SENDED".into(),
        send_request_no: ask.out_request_no.clone(),
        channel: channel.into(),
        use_request_no: None,
        uses: 0,
        use_calls: 0,
        deactivate_request_no: None,
        receive_time: now,
    };
    w.busifavor
        .coupons
        .insert((ask.stock_id.clone(), code.clone()), coupon.clone());
    w.busifavor.sends.insert(attempt, (ask.stock_id.clone(), code));
    Ok((coupon, true))
}

/// Queues `COUPON.SEND` to the merchant's callback URL (none set: none sent), twice under the duplicate fault.
fn queue_send_notify(w: &mut World, coupon: &SimCoupon, merchant: &str) {
    let Some(url) = w.busifavor.callbacks.get(merchant).cloned() else {
        return;
    };
    if w.pay_drop_notifies > 0 {
        w.pay_drop_notifies -= 1;
        return;
    }
    // Without the stock's notify_appid WeChat leaves the user's identity out.
    let with_user = w
        .busifavor
        .stocks
        .get(&coupon.stock_id)
        .is_some_and(|s| s.notify_appid.is_some());
    let plaintext = json!({
        "event_type": "EVENT_TYPE_BUSICOUPON_SEND",
        "coupon_code": coupon.coupon_code,
        "stock_id": coupon.stock_id,
        "send_time": rfc3339_beijing(coupon.receive_time),
        "openid": if with_user { coupon.openid.as_str() } else { "" },
        "unionid": "",
        "send_channel": "BUSIFAVOR_CHANNEL_MINIAPP",
        "send_merchant": merchant,
    });
    let event = V3Event {
        kind: "coupon",
        event_type: "COUPON.SEND",
        summary: "商家券用户领券通知",
        original_type: "busifavor",
        plaintext: &plaintext,
    };
    let copies = if w.pay_duplicate_notifies > 0 {
        w.pay_duplicate_notifies -= 1;
        2
    } else {
        1
    };
    if let Some(n) = v3_notification(w, merchant, &event, &url, &coupon.coupon_code, None) {
        for _ in 0..copies {
            w.notifications.push(n.clone());
        }
    }
}

#[derive(Deserialize)]
struct H5Query {
    stock_id: String,
    out_request_no: String,
    sign: String,
    send_coupon_merchant: String,
    open_id: String,
    coupon_code: Option<String>,
}

/// WeChat's H5 check: the v2 HMAC-SHA256 over every parameter but `sign`, with the merchant's API v2 key.
fn check_h5(w: &World, q: &H5Query) -> Result<SendAsk, String> {
    let Some(key) = w.merchants.get(&q.send_coupon_merchant) else {
        return Err("商户号不存在或未设置 API v2 密钥".into());
    };
    let mut fields = vec![
        ("stock_id", q.stock_id.as_str()),
        ("out_request_no", q.out_request_no.as_str()),
        ("send_coupon_merchant", q.send_coupon_merchant.as_str()),
        ("open_id", q.open_id.as_str()),
    ];
    if let Some(c) = &q.coupon_code {
        fields.push(("coupon_code", c.as_str()));
    }
    let expected = sign(fields, &PayKey::new(key.clone()), SignType::HmacSha256);
    if !expected.eq_ignore_ascii_case(&q.sign) {
        return Err("签名错误（HMAC-SHA256，API v2 密钥）".into());
    }
    if q.out_request_no.is_empty() || !q.out_request_no.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err("out_request_no 只能包含英文字母和数字".into());
    }
    Ok(SendAsk {
        stock_id: q.stock_id.clone(),
        out_request_no: q.out_request_no.clone(),
        coupon_code: q.coupon_code.clone(),
        openid: q.open_id.clone(),
        merchant: q.send_coupon_merchant.clone(),
    })
}

#[derive(askama::Template)]
#[template(path = "sim_busifavor.html")]
struct H5Page<'a> {
    title: &'a str,
    stock_name: String,
    merchant_name: String,
    description: String,
    user: String,
    /// The form posts back the same parameters.
    fields: Vec<(String, String)>,
    /// After receiving: what happened.
    done: Option<(&'static str, String)>,
}

fn h5_query(req: &HttpRequest, body: Option<&[u8]>) -> Option<H5Query> {
    match body {
        Some(b) => serde_urlencoded::from_bytes(b).ok(),
        None => web::Query::<H5Query>::from_query(req.query_string())
            .ok()
            .map(|q| q.into_inner()),
    }
}

fn page_for(w: &World, q: &H5Query, done: Option<(&'static str, String)>) -> HttpResponse {
    let stock = w.busifavor.stocks.get(&q.stock_id);
    let user = w
        .users
        .values()
        .find(|u| u.openid == q.open_id)
        .map(|u| format!("{} ({})", u.nickname, u.openid))
        .unwrap_or_else(|| q.open_id.clone());
    let mut fields = vec![
        ("stock_id".to_owned(), q.stock_id.clone()),
        ("out_request_no".to_owned(), q.out_request_no.clone()),
        ("sign".to_owned(), q.sign.clone()),
        ("send_coupon_merchant".to_owned(), q.send_coupon_merchant.clone()),
        ("open_id".to_owned(), q.open_id.clone()),
    ];
    if let Some(c) = &q.coupon_code {
        fields.push(("coupon_code".to_owned(), c.clone()));
    }
    crate::pages::render(&H5Page {
        title: "领取商家券",
        stock_name: stock.map(|s| s.name.clone()).unwrap_or_default(),
        merchant_name: stock.map(|s| s.merchant_name.clone()).unwrap_or_default(),
        description: stock.map(|s| s.description.clone()).unwrap_or_default(),
        user,
        fields,
        done,
    })
}

/// `GET /busifavor/getcouponinfo?…` (WeChat's H5 领券 page): checked as WeChat checks it, then a 领取 button.
async fn h5_page(req: HttpRequest, sim: web::Data<SimHandle>) -> HttpResponse {
    let Some(q) = h5_query(&req, None) else {
        return crate::pages::error_page(
            268_435_461,
            "参数错误：缺少 stock_id、out_request_no、sign、send_coupon_merchant 或 open_id",
        );
    };
    let w = sim.world();
    if let Err(m) = check_h5(&w, &q) {
        return crate::pages::error_page(268_435_461, &m);
    }
    if !w.busifavor.stocks.contains_key(&q.stock_id) {
        return crate::pages::error_page(268_435_461, "批次不存在");
    }
    page_for(&w, &q, None)
}

/// `POST /busifavor/getcouponinfo` (the page's 领取): the coupon goes to the card bag. No callback (see the module).
async fn h5_receive(req: HttpRequest, body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    let Some(q) = h5_query(&req, Some(&body)) else {
        return crate::pages::error_page(268_435_461, "参数错误");
    };
    let mut w = sim.world();
    let ask = match check_h5(&w, &q) {
        Ok(a) => a,
        Err(m) => return crate::pages::error_page(268_435_461, &m),
    };
    let done = match send(&mut w, &ask, "H5") {
        Ok((_, true)) => (
            "received",
            "领取成功，已放入微信卡包 · Added to your WeChat card bag".to_owned(),
        ),
        Ok((_, false)) => ("received", "你已领取过这张券 · Already in your card bag".to_owned()),
        Err((code, message)) => ("refused", format!("{message} ({code})")),
    };
    page_for(&w, &q, Some(done))
}

#[derive(Deserialize)]
struct PluginSend {
    send_coupon_params: Vec<PluginCoupon>,
    send_coupon_merchant: String,
    sign: String,
    /// The user inside the mini program (the plugin knows them; the simulator is told).
    openid: String,
}

#[derive(Deserialize)]
struct PluginCoupon {
    stock_id: String,
    out_request_no: String,
    coupon_code: Option<String>,
}

/// `POST /_sim/pay/busifavor/plugin-send`: what the mini-program `send-coupon` plugin does when the user taps it —
/// the indexed v2 signature checked, each coupon sent, `COUPON.SEND` queued.
async fn plugin_send(body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    let Ok(p) = serde_json::from_slice::<PluginSend>(&body) else {
        return bad_request(
            "invalid_json",
            "expected {send_coupon_params: [{stock_id, out_request_no, coupon_code?}], send_coupon_merchant, sign, openid}",
        );
    };
    let mut w = sim.world();
    let Some(key) = w.merchants.get(&p.send_coupon_merchant).cloned() else {
        return HttpResponse::Ok().json(json!({"errcode": "NO_AUTH", "msg": "商户号未设置 API v2 密钥"}));
    };
    let mut fields: Vec<(String, String)> = Vec::new();
    for (i, c) in p.send_coupon_params.iter().enumerate() {
        fields.push((format!("stock_id{i}"), c.stock_id.clone()));
        fields.push((format!("out_request_no{i}"), c.out_request_no.clone()));
        if let Some(code) = &c.coupon_code {
            fields.push((format!("coupon_code{i}"), code.clone()));
        }
    }
    fields.push(("send_coupon_merchant".into(), p.send_coupon_merchant.clone()));
    let expected = sign(
        fields.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        &PayKey::new(key),
        SignType::HmacSha256,
    );
    if !expected.eq_ignore_ascii_case(&p.sign) {
        return HttpResponse::Ok().json(json!({"errcode": "SIGN_ERROR", "msg": "签名错误"}));
    }
    let mut results = Vec::new();
    for c in &p.send_coupon_params {
        let ask = SendAsk {
            stock_id: c.stock_id.clone(),
            out_request_no: c.out_request_no.clone(),
            coupon_code: c.coupon_code.clone(),
            openid: p.openid.clone(),
            merchant: p.send_coupon_merchant.clone(),
        };
        match send(&mut w, &ask, "MINI_PROGRAM_PLUGIN") {
            Ok((coupon, fresh)) => {
                if fresh {
                    queue_send_notify(&mut w, &coupon, &p.send_coupon_merchant);
                }
                results.push(json!({"stock_id": c.stock_id, "out_request_no": c.out_request_no,
                    "coupon_code": coupon.coupon_code, "code": "SUCCESS"}));
            }
            Err((code, message)) => results.push(json!({"stock_id": c.stock_id, "out_request_no": c.out_request_no,
                "code": code, "message": message})),
        }
    }
    HttpResponse::Ok().json(json!({"errcode": "OK", "send_coupon_result": results}))
}

#[derive(Deserialize)]
struct ControlQuery {
    stock_id: String,
}

/// `GET /_sim/pay/busifavor/coupons?stock_id=`: the stock's coupons and their states.
async fn control_coupons(query: web::Query<ControlQuery>, sim: web::Data<SimHandle>) -> HttpResponse {
    HttpResponse::Ok().json(json!({"coupons": sim.busifavor_coupons(&query.stock_id)}))
}

impl SimHandle {
    /// The coupons of `stock_id`, in code order.
    pub fn busifavor_coupons(&self, stock_id: &str) -> Vec<SimCoupon> {
        self.world()
            .busifavor
            .coupons
            .values()
            .filter(|c| c.stock_id == stock_id)
            .cloned()
            .collect()
    }

    /// A stock's budget (`max_coupons`), if there is such a stock.
    pub fn busifavor_budget(&self, stock_id: &str) -> Option<u64> {
        self.world().busifavor.stocks.get(stock_id).map(|s| s.max_coupons)
    }

    /// The merchant's 商家券 notify URL, if set.
    pub fn busifavor_callback(&self, mch_id: &str) -> Option<String> {
        self.world().busifavor.callbacks.get(mch_id).cloned()
    }
}

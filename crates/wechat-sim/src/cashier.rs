//! The cashier a person (or a browser test) pays at: what WeChat shows when a page calls `wx.chooseWXPay` (JSAPI)
//! or when a phone scans a NATIVE order's `code_url`.
//!
//! `GET /_sim/pay/cashier?appId&timeStamp&nonceStr&package&signType&paySign&return_url` checks the JSAPI parameters
//! as WeChat does — `paySign` over the other five with the merchant's key (else WeChat's "支付验证签名失败"), the
//! prepay id known, the order payable and not past its `time_expire` — and shows the amount with Pay and Cancel;
//! `GET /_sim/pay/cashier?code_url&return_url` does the same for a scanned NATIVE code. `POST /_sim/pay/cashier` pays
//! (the notify follows on WeChat's schedule) or cancels, then returns to `return_url` with `#wxpay=ok`,
//! `#wxpay=cancel` or `#wxpay=fail`.

use crate::pages::{error_page, render};
use crate::state::SimHandle;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use std::collections::HashMap;
use wechat_pay::sign::{PayKey, SignType, sign};

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/_sim/pay/cashier", web::get().to(show))
        .route("/_sim/pay/cashier", web::post().to(decide))
        // H5 (MWEB, v3 h5): WeChat's `mweb_url` / `h5_url` path, on the simulator's host. The merchant appends
        // `redirect_url`; after paying or cancelling WeChat sends the browser there, saying nothing of the outcome
        // (the page must ask its server).
        .route("/cgi-bin/mmpayweb-bin/checkmweb", web::get().to(show_h5))
        .route("/cgi-bin/mmpayweb-bin/checkmweb", web::post().to(decide_h5));
}

/// The H5 cashier: the order by its prepay id, back to `redirect_url` (http(s) only).
async fn show_h5(q: web::Query<HashMap<String, String>>, sim: web::Data<SimHandle>) -> HttpResponse {
    let mut q = q.into_inner();
    let back = q.get("redirect_url").cloned().unwrap_or_default();
    q.insert("return_url".into(), back);
    let back = match return_url(&q) {
        Ok(u) => u,
        Err(page) => return page,
    };
    let (mch_id, out_trade_no) = {
        let w = sim.world();
        let prepay_id = q.get("prepay_id").map(String::as_str).unwrap_or("");
        let Some(o) = w
            .pay_orders
            .values()
            .find(|o| !prepay_id.is_empty() && o.prepay_id == prepay_id && o.trade_type == "MWEB")
        else {
            return error_page(-1, "prepay_id 无效 · no such H5 order");
        };
        if o.state != "NOTPAY" {
            return error_page(-1, &format!("订单不可支付 · the order is {}", o.state));
        }
        if o.time_expire.is_some_and(|t| w.now() >= t) {
            return error_page(-1, "订单已过期 · the order has expired");
        }
        (o.mch_id.clone(), o.out_trade_no.clone())
    };
    let w = sim.world();
    let Some(o) = w.pay_orders.get(&(mch_id.clone(), out_trade_no.clone())) else {
        return error_page(-1, "no such order");
    };
    render(&CashierPage {
        title: "微信支付 · WeChat Pay (H5)",
        description: &o.body,
        amount: yuan(o.total_fee),
        mch_id: &mch_id,
        out_trade_no: &out_trade_no,
        key: format!("{mch_id}/{out_trade_no}"),
        return_url: &back,
        action: "/cgi-bin/mmpayweb-bin/checkmweb",
    })
}

/// H5: pay or cancel, then back to `redirect_url` as it was given — no outcome in it, as WeChat does.
async fn decide_h5(form: web::Form<Decision>, sim: web::Data<SimHandle>) -> HttpResponse {
    let q: HashMap<String, String> = [("return_url".to_owned(), form.return_url.clone())].into();
    let back = match return_url(&q) {
        Ok(u) => u,
        Err(page) => return page,
    };
    if form.decision == "pay"
        && let Some((mch_id, out_trade_no)) = form.order.split_once('/')
        && let Err(e) = sim.pay_order(out_trade_no, Some(mch_id), None)
    {
        tracing::info!(?e, "H5 cashier payment refused");
    }
    HttpResponse::SeeOther().insert_header(("Location", back)).finish()
}

#[derive(askama::Template)]
#[template(path = "sim_cashier.html")]
struct CashierPage<'a> {
    title: &'a str,
    description: &'a str,
    amount: String,
    mch_id: &'a str,
    out_trade_no: &'a str,
    key: String,
    return_url: &'a str,
    /// Where the Pay and Cancel forms post.
    action: &'a str,
}

/// Only http(s) return addresses: the cashier never sends a person to a `javascript:` URL.
fn return_url(q: &HashMap<String, String>) -> Result<String, HttpResponse> {
    let url = q.get("return_url").map(String::as_str).unwrap_or("");
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(url.split('#').next().unwrap_or(url).to_owned()),
        _ => Err(error_page(-1, "return_url must be an http(s) address")),
    }
}

fn yuan(fen: u64) -> String {
    format!("{}.{:02}", fen / 100, fen % 100)
}

/// The order the request names, as `(mch_id, out_trade_no)`, after WeChat's checks.
fn find(sim: &SimHandle, q: &HashMap<String, String>) -> Result<(String, String), HttpResponse> {
    let w = sim.world();
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or("");
    let order = if let Some(code_url) = q.get("code_url") {
        w.pay_orders
            .values()
            .find(|o| !o.code_url.is_empty() && &o.code_url == code_url)
            .ok_or_else(|| error_page(-1, "二维码已失效 · this payment code is not known"))?
    } else {
        let prepay_id = get("package").strip_prefix("prepay_id=").unwrap_or("");
        let o = w
            .pay_orders
            .values()
            .find(|o| !prepay_id.is_empty() && o.prepay_id == prepay_id)
            .ok_or_else(|| error_page(-1, "prepay_id 无效 · no such prepay_id"))?;
        let valid = if get("signType") == "RSA" {
            // v3: SHA256withRSA over appId, timeStamp, nonceStr, package, with the merchant's registered key.
            let message = format!(
                "{}\n{}\n{}\n{}\n",
                get("appId"),
                get("timeStamp"),
                get("nonceStr"),
                get("package")
            );
            w.v3_merchants
                .get(&o.mch_id)
                .is_some_and(|m| m.verifies(message.as_bytes(), get("paySign")))
        } else {
            let key = w.merchants.get(&o.mch_id).cloned().unwrap_or_default();
            let sign_type: SignType = get("signType")
                .parse()
                .map_err(|_| error_page(-1, "支付验证签名失败 · unknown signType"))?;
            let expected = sign(
                [
                    ("appId", get("appId")),
                    ("timeStamp", get("timeStamp")),
                    ("nonceStr", get("nonceStr")),
                    ("package", get("package")),
                    ("signType", get("signType")),
                ],
                &PayKey::new(key),
                sign_type,
            );
            wechat_core::constant_time_eq(expected.as_bytes(), get("paySign").to_ascii_uppercase().as_bytes())
        };
        if get("appId") != o.appid || !valid {
            return Err(error_page(-1, "支付验证签名失败 · the payment signature is invalid"));
        }
        o
    };
    let now = w.now();
    if order.state != "NOTPAY" {
        return Err(error_page(-1, &format!("订单不可支付 · the order is {}", order.state)));
    }
    if order.time_expire.is_some_and(|t| now >= t) {
        return Err(error_page(-1, "订单已过期 · the order has expired"));
    }
    Ok((order.mch_id.clone(), order.out_trade_no.clone()))
}

async fn show(q: web::Query<HashMap<String, String>>, sim: web::Data<SimHandle>) -> HttpResponse {
    // A NATIVE code scanned on a phone comes with nowhere to go back to: WeChat shows its own "paid" screen.
    let scanned = q.contains_key("code_url") && q.get("return_url").is_none_or(String::is_empty);
    let back = if scanned {
        String::new()
    } else {
        match return_url(&q) {
            Ok(u) => u,
            Err(page) => return page,
        }
    };
    let (mch_id, out_trade_no) = match find(&sim, &q) {
        Ok(found) => found,
        Err(page) => return page,
    };
    let w = sim.world();
    let Some(o) = w.pay_orders.get(&(mch_id.clone(), out_trade_no.clone())) else {
        return error_page(-1, "no such order");
    };
    render(&CashierPage {
        title: "微信支付 · WeChat Pay",
        description: &o.body,
        amount: yuan(o.total_fee),
        mch_id: &mch_id,
        out_trade_no: &out_trade_no,
        key: format!("{mch_id}/{out_trade_no}"),
        return_url: &back,
        action: "/_sim/pay/cashier",
    })
}

#[derive(Deserialize)]
struct Decision {
    order: String,
    return_url: String,
    decision: String,
}

async fn decide(form: web::Form<Decision>, sim: web::Data<SimHandle>) -> HttpResponse {
    let q: HashMap<String, String> = [("return_url".to_owned(), form.return_url.clone())].into();
    let back = if form.return_url.is_empty() {
        String::new()
    } else {
        match return_url(&q) {
            Ok(u) => u,
            Err(page) => return page,
        }
    };
    let Some((mch_id, out_trade_no)) = form.order.split_once('/') else {
        return error_page(-1, "no such order");
    };
    let outcome = match form.decision.as_str() {
        "pay" => match sim.pay_order(out_trade_no, Some(mch_id), None) {
            Ok(_) => "ok",
            Err(e) => {
                tracing::info!(?e, "cashier payment refused");
                "fail"
            }
        },
        _ => "cancel",
    };
    if back.is_empty() {
        // A scanned code: the phone stays in WeChat, on its result screen.
        let amount = sim
            .world()
            .pay_orders
            .get(&(mch_id.to_owned(), out_trade_no.to_owned()))
            .map(|o| yuan(o.total_fee))
            .unwrap_or_default();
        let (zh, en) = match outcome {
            "ok" => ("支付成功", "Paid"),
            "cancel" => ("已取消支付", "Payment cancelled"),
            _ => ("支付失败", "The payment failed"),
        };
        return render(&PayDone {
            title: zh,
            outcome,
            zh,
            en,
            amount,
        });
    }
    HttpResponse::SeeOther()
        .insert_header(("Location", format!("{back}#wxpay={outcome}")))
        .finish()
}

/// WeChat's own result screen after paying a scanned code.
#[derive(askama::Template)]
#[template(path = "sim_pay_done.html")]
struct PayDone<'a> {
    title: &'a str,
    outcome: &'a str,
    zh: &'a str,
    en: &'a str,
    amount: String,
}

//! WeChat Pay 商家券: a campaign backed by a stock puts each coupon in its owner's WeChat card bag under the coupon's
//! own code (MERCHANT_API), so a till scanning the card-bag code calls the POS API unchanged.
//!
//! * The owner's page links to `GET /c/{code}/wechat-pay-coupon`, which records the attempt and redirects to WeChat's
//!   H5 领券 page (signed with the API v2 key); a mini-program owner gets the plugin's parameters from
//!   `GET /api/v1/coupons/{code}/busifavor-send`.
//! * WeChat says the coupon arrived by `COUPON.SEND` (plugin sends) — or, after the plain H5 page, which WeChat
//!   documents as not calling back, the coupon page asks WeChat (`users/{openid}/coupons/{code}`) while an attempt is
//!   pending. Either way [`apply_received`] records it once, audited; a coupon that is not ours, void, used or
//!   expired is refused and audited (and its card-bag copy deactivated).
//! * A redemption by any channel queues the `use` call (outbox, `use_request_no` = the redemption id) in its own
//!   transaction; a void queues `deactivate` the same way.
//! * Staff scan a card-bag code with WeChat's scanner on `GET /staff/scan` (JS-SDK `wx.scanQRCode`), which posts to
//!   the scan page's redemption use case.

use super::State;
use super::routes::till_input;
use crate::db::schema::{audit_log, coupon_card_bag, coupons, redemptions, wechat_pay_stocks};
use crate::db::{self, DbConnection, DbError};
use crate::features::outbox::repo as outbox_repo;
use crate::http::auth;
use crate::http::errors::ApiError;
use crate::http::pages;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use diesel::prelude::*;
use redemption_core::{CouponCode, CouponStatus};
use wechat_pay::v3::marketing::busifavor as wx;

/// A coupon code's last four characters, for logs (the code itself is a bearer secret).
pub fn tail(code: &str) -> &str {
    code.get(code.len().saturating_sub(4)..).unwrap_or("")
}

/// The stock behind a campaign.
pub fn stock_of(conn: &mut DbConnection, campaign_id: i64) -> Result<Option<String>, DbError> {
    Ok(wechat_pay_stocks::table
        .find(campaign_id)
        .select(wechat_pay_stocks::stock_id)
        .first(conn)
        .optional()?)
}

/// Backs a campaign with `stock_id`; false when it is backed already (or the stock backs another campaign).
pub fn attach_stock(
    conn: &mut DbConnection,
    campaign_id: i64,
    stock_id: &str,
    created: bool,
    now: i64,
) -> Result<bool, DbError> {
    let row = (
        wechat_pay_stocks::campaign_id.eq(campaign_id),
        wechat_pay_stocks::stock_id.eq(stock_id),
        wechat_pay_stocks::created.eq(created),
        wechat_pay_stocks::created_at.eq(now),
    );
    let n = crate::insert_or_ignore!(conn, wechat_pay_stocks::table, row)?;
    Ok(n == 1)
}

/// A coupon's card-bag row: to whom it was sent, and since when it is there (`None`: an attempt only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bag {
    /// The openid it was sent to.
    pub openid: String,
    /// In the card bag since, ms.
    pub received_at: Option<i64>,
    /// Last attempt, ms.
    pub attempted_at: i64,
}

/// The card-bag row of a coupon.
pub fn bag_of(conn: &mut DbConnection, coupon_id: i64) -> Result<Option<Bag>, DbError> {
    Ok(coupon_card_bag::table
        .find(coupon_id)
        .select((
            coupon_card_bag::openid,
            coupon_card_bag::received_at,
            coupon_card_bag::attempted_at,
        ))
        .first::<(String, Option<i64>, i64)>(conn)
        .optional()?
        .map(|(openid, received_at, attempted_at)| Bag {
            openid,
            received_at,
            attempted_at,
        }))
}

/// Records an attempt to send the coupon to `openid` (a coupon already in the bag keeps its row).
pub fn record_attempt(
    conn: &mut DbConnection,
    coupon_id: i64,
    openid: &str,
    out_request_no: &str,
    now: i64,
) -> Result<(), DbError> {
    let row = (
        coupon_card_bag::coupon_id.eq(coupon_id),
        coupon_card_bag::openid.eq(openid),
        coupon_card_bag::out_request_no.eq(out_request_no),
        coupon_card_bag::attempted_at.eq(now),
    );
    let inserted = crate::insert_or_ignore!(conn, coupon_card_bag::table, row)?;
    if inserted == 0 {
        diesel::update(
            coupon_card_bag::table.filter(
                coupon_card_bag::coupon_id
                    .eq(coupon_id)
                    .and(coupon_card_bag::received_at.is_null()),
            ),
        )
        .set((
            coupon_card_bag::openid.eq(openid),
            coupon_card_bag::out_request_no.eq(out_request_no),
            coupon_card_bag::attempted_at.eq(now),
        ))
        .execute(conn)?;
    }
    Ok(())
}

/// What WeChat's word that a coupon reached a card bag came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// Recorded now (audited).
    Added,
    /// It was recorded before (a resent notify, a second query).
    Already,
    /// Not recorded: why (audited).
    Refused(&'static str),
}

fn audit(
    conn: &mut DbConnection,
    code: &str,
    coupon_id: Option<i64>,
    outcome: &str,
    via: &str,
    now: i64,
) -> Result<(), DbError> {
    diesel::insert_into(audit_log::table)
        .values((
            audit_log::action.eq("card_bag"),
            audit_log::coupon_code.eq(Some(code)),
            audit_log::coupon_id.eq(coupon_id),
            audit_log::outcome.eq(outcome),
            audit_log::channel.eq(Some("wechat_pay")),
            audit_log::detail.eq(Some(via)),
            audit_log::created_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Records, once, that coupon `code` of stock `stock_id` is in `openid`'s card bag (`via`: `callback` or `query`).
/// A code that is not ours or not this stock's, and a coupon that is void, used or expired, are refused and audited;
/// the card-bag copy of a coupon of ours that cannot be used is deactivated at WeChat (outbox).
pub fn apply_received(
    conn: &mut DbConnection,
    code: &str,
    stock_id: &str,
    openid: &str,
    via: &str,
    now: i64,
) -> Result<Received, DbError> {
    db::write_transaction(conn, |conn| {
        conn.transaction(|conn| {
            let Some((coupon, campaign)) = super::repo::coupon_by_code(conn, code)? else {
                audit(conn, code, None, "refused_not_ours", via, now)?;
                return Ok(Received::Refused("not_ours"));
            };
            if stock_of(conn, campaign.id)?.as_deref() != Some(stock_id) {
                audit(conn, code, Some(coupon.id), "refused_other_stock", via, now)?;
                return Ok(Received::Refused("other_stock"));
            }
            let status = coupon
                .to_domain()
                .map_or(CouponStatus::Void, |c| c.effective_status(&campaign.to_domain(), now));
            let refusal = match status {
                CouponStatus::Issued => None,
                CouponStatus::Redeemed => Some("redeemed"),
                CouponStatus::Expired => Some("expired"),
                _ => Some("void"),
            };
            let openid = if openid.is_empty() {
                coupon.owner_openid.clone().unwrap_or_default()
            } else {
                openid.to_owned()
            };
            if let Some(why) = refusal {
                audit(conn, code, Some(coupon.id), &format!("refused_{why}"), via, now)?;
                // It is in a card bag at WeChat all the same: make that copy unusable there.
                outbox_repo::enqueue_busifavor_deactivate(
                    conn,
                    coupon.id,
                    &outbox_repo::BusifavorDeactivate {
                        stock_id: stock_id.to_owned(),
                        coupon_code: code.to_owned(),
                        request_no: format!("V{}", coupon.id),
                        reason: format!("coupon {why} at the shop"),
                    },
                    now,
                )?;
                return Ok(Received::Refused(why));
            }
            let updated = diesel::update(
                coupon_card_bag::table.filter(
                    coupon_card_bag::coupon_id
                        .eq(coupon.id)
                        .and(coupon_card_bag::received_at.is_null()),
                ),
            )
            .set((
                coupon_card_bag::openid.eq(&openid),
                coupon_card_bag::received_at.eq(Some(now)),
                coupon_card_bag::via.eq(Some(via)),
            ))
            .execute(conn)?;
            let added = updated == 1 || {
                let row = (
                    coupon_card_bag::coupon_id.eq(coupon.id),
                    coupon_card_bag::openid.eq(&openid),
                    coupon_card_bag::out_request_no.eq(""),
                    coupon_card_bag::attempted_at.eq(now),
                    coupon_card_bag::received_at.eq(Some(now)),
                    coupon_card_bag::via.eq(Some(via)),
                );
                let n = crate::insert_or_ignore!(conn, coupon_card_bag::table, row)?;
                n == 1
            };
            if !added {
                return Ok(Received::Already);
            }
            audit(conn, code, Some(coupon.id), "added", via, now)?;
            Ok(Received::Added)
        })
    })
}

/// Queues the `use` of a redeemed coupon that is in a card bag (inside the redemption's transaction; the PostgreSQL
/// statements do the same in SQL).
pub fn queue_use(conn: &mut DbConnection, coupon_id: i64, now: i64) -> Result<(), DbError> {
    let Some(bag) = bag_of(conn, coupon_id)?.filter(|b| b.received_at.is_some()) else {
        return Ok(());
    };
    let (code, campaign_id): (String, i64) = coupons::table
        .find(coupon_id)
        .select((coupons::code, coupons::campaign_id))
        .first(conn)?;
    let Some(stock_id) = stock_of(conn, campaign_id)? else {
        return Ok(());
    };
    let redemption: i64 = redemptions::table
        .filter(redemptions::coupon_id.eq(coupon_id))
        .select(redemptions::id)
        .first(conn)?;
    outbox_repo::enqueue_busifavor_use(
        conn,
        coupon_id,
        &outbox_repo::BusifavorUse {
            stock_id,
            coupon_code: code,
            openid: bag.openid,
            use_request_no: redemption.to_string(),
        },
        now,
    )
}

/// Queues the deactivation of a voided coupon's card-bag copy, if it has one (inside the void's transaction).
pub fn queue_deactivate(conn: &mut DbConnection, coupon_id: i64, reason: &str, now: i64) -> Result<(), DbError> {
    if bag_of(conn, coupon_id)?.is_none_or(|b| b.received_at.is_none()) {
        return Ok(());
    }
    let (code, campaign_id): (String, i64) = coupons::table
        .find(coupon_id)
        .select((coupons::code, coupons::campaign_id))
        .first(conn)?;
    let Some(stock_id) = stock_of(conn, campaign_id)? else {
        return Ok(());
    };
    outbox_repo::enqueue_busifavor_deactivate(
        conn,
        coupon_id,
        &outbox_repo::BusifavorDeactivate {
            stock_id,
            coupon_code: code,
            request_no: format!("V{coupon_id}"),
            reason: reason.to_owned(),
        },
        now,
    )
}

/// Queues raising the budget of a campaign's stock to `quantity` (inside the edit's transaction), if it has a stock.
pub fn queue_budget(conn: &mut DbConnection, campaign_id: i64, quantity: Option<i64>, now: i64) -> Result<(), DbError> {
    let (Some(stock_id), Some(target)) = (
        stock_of(conn, campaign_id)?,
        quantity.and_then(|q| u64::try_from(q).ok()),
    ) else {
        return Ok(());
    };
    outbox_repo::enqueue_busifavor_budget(
        conn,
        campaign_id,
        &outbox_repo::BusifavorBudget {
            stock_id,
            target,
            request_no: format!("B{campaign_id}Q{target}"),
        },
        now,
    )
}

/// [`queue_deactivate`] for a coupon known by its code.
pub fn queue_deactivate_code(conn: &mut DbConnection, code: &str, reason: &str, now: i64) -> Result<(), DbError> {
    let id: Option<i64> = coupons::table
        .filter(coupons::code.eq(code))
        .select(coupons::id)
        .first(conn)
        .optional()?;
    match id {
        Some(id) => queue_deactivate(conn, id, reason, now),
        None => Ok(()),
    }
}

/// [`queue_deactivate`] for every voided coupon of a campaign that is in a card bag (an ended campaign).
pub fn queue_deactivate_voided(
    conn: &mut DbConnection,
    campaign_id: i64,
    reason: &str,
    now: i64,
) -> Result<(), DbError> {
    let ids: Vec<i64> = coupon_card_bag::table
        .inner_join(coupons::table)
        .filter(coupons::campaign_id.eq(campaign_id))
        .filter(coupons::status.eq("void"))
        .filter(coupon_card_bag::received_at.is_not_null())
        .select(coupons::id)
        .load(conn)?;
    for id in ids {
        queue_deactivate(conn, id, reason, now)?;
    }
    Ok(())
}

/// The safety net for the one race the transactions cannot close: a coupon redeemed (or voided) while WeChat's word
/// that it reached a card bag was committing — the redemption's statement did not see the bag row yet, and the
/// arrival saw the coupon still usable — owes WeChat a use (or a deactivation) that nobody queued. Every coupon that
/// arrived in a card bag within the last hour and is redeemed or void gets its item queued now; one that has it
/// already is left as it is (one outbox item per coupon and kind). Returns how many it looked at.
pub fn sweep(conn: &mut DbConnection, now: i64) -> Result<usize, DbError> {
    let recent: Vec<(i64, String)> = coupon_card_bag::table
        .inner_join(coupons::table)
        .filter(coupon_card_bag::received_at.gt(now - 3_600_000))
        .filter(coupons::status.eq_any(["redeemed", "void"]))
        .select((coupons::id, coupons::status))
        .load(conn)?;
    for (id, status) in &recent {
        if status == "redeemed" {
            queue_use(conn, *id, now)?;
        } else {
            queue_deactivate(conn, *id, "voided by the shop", now)?;
        }
    }
    Ok(recent.len())
}

/// What the coupon page needs: the stock, and the coupon's card-bag row.
pub async fn page_info(
    state: &State,
    coupon_id: i64,
    campaign_id: i64,
) -> Result<(Option<String>, Option<Bag>), DbError> {
    db::blocking(&state.db, move |conn| {
        Ok((stock_of(conn, campaign_id)?, bag_of(conn, coupon_id)?))
    })
    .await
}

/// After the H5 page (which does not call back): while an attempt is pending (a day at most), ask WeChat whether the
/// coupon is in the owner's card bag, and record it if so. Returns whether it is there now.
pub async fn sync_pending(state: &State, code: &str, stock_id: &str, bag: &Bag) -> bool {
    if bag.received_at.is_some() {
        return true;
    }
    let Some(b) = &state.busifavor else {
        return false;
    };
    if state.clock.now_ms() - bag.attempted_at > 86_400_000 {
        return false;
    }
    let Ok(query) = wx::QueryUserCoupon::new(&bag.openid, code, &b.appid) else {
        return false;
    };
    let ask = tokio::time::timeout(std::time::Duration::from_secs(2), b.client.send(&query)).await;
    match ask {
        Ok(Ok(c)) if c.stock_id == stock_id && c.coupon_state == "SENDED" => {
            let (code, stock_id, openid, now) = (
                code.to_owned(),
                stock_id.to_owned(),
                bag.openid.clone(),
                state.clock.now_ms(),
            );
            matches!(
                db::blocking(&state.db, move |conn| apply_received(
                    conn, &code, &stock_id, &openid, "query", now
                ))
                .await,
                Ok(Received::Added | Received::Already)
            )
        }
        Ok(Ok(_)) | Ok(Err(wechat_pay::Error::Api { status: 404, .. })) => false,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "card bag: could not ask WeChat about a pending 商家券 send");
            false
        }
        Err(_) => {
            tracing::warn!("card bag: WeChat did not answer about a pending 商家券 send within 2 s");
            false
        }
    }
}

/// An attempt's number: unique per attempt, letters and digits only (WeChat's rule for `out_request_no`).
fn out_request_no(coupon_id: i64, now: i64) -> String {
    let tail: String = crate::platform::crypto::random_token()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(8)
        .collect();
    format!("WXK{coupon_id}T{now}{tail}")
}

/// The owner's coupon that may go to the card bag now: `(coupon id, stock id, its code as stored)`, or why not.
async fn sendable(state: &State, code: &str, openid: &str) -> Result<(i64, String, String), ApiError> {
    let Some(parsed) = CouponCode::parse(code) else {
        return Err(ApiError::not_found("no such coupon"));
    };
    let code = parsed.as_str().to_owned();
    let stored = code.clone();
    let me = openid.to_owned();
    let now = state.clock.now_ms();
    let found = db::blocking(&state.db, move |conn| {
        let Some((c, k)) = super::repo::coupon_by_code(conn, &code)? else {
            return Ok(None);
        };
        let person = crate::features::auth::repo::person_openids(conn, &me)?;
        let mine = c.owner_openid.as_ref().is_some_and(|o| person.contains(o));
        let status = c
            .to_domain()
            .map_or(CouponStatus::Void, |d| d.effective_status(&k.to_domain(), now));
        Ok(Some((c.id, mine, status, stock_of(conn, k.id)?, bag_of(conn, c.id)?)))
    })
    .await?;
    let Some((id, mine, status, stock, bag)) = found else {
        return Err(ApiError::not_found("no such coupon"));
    };
    if !mine {
        return Err(ApiError::not_found("no such coupon of yours"));
    }
    let Some(stock) = stock else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_wechat_pay_coupon",
            "this coupon's campaign has no WeChat Pay coupon stock",
        ));
    };
    if bag.is_some_and(|b| b.received_at.is_some()) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_in_wallet",
            "this coupon is already in your WeChat card bag",
        ));
    }
    if status != CouponStatus::Issued {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_usable",
            "only a usable coupon can be added to WeChat",
        ));
    }
    Ok((id, stock, stored))
}

fn not_configured() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "wechat_pay_coupons_off",
        crate::platform::busifavor::NOT_CONFIGURED,
    )
}

/// `GET /c/{code}/wechat-pay-coupon` (the owner, from the coupon page inside WeChat): records the attempt and sends
/// the owner to WeChat's H5 领券 page for this coupon (their official-account openid, a fresh `out_request_no`, the
/// coupon's own code). Back on the coupon page, it shows in the card bag once WeChat says so.
pub async fn add_to_card_bag(
    req: HttpRequest,
    auth::WebSession(session): auth::WebSession,
    path: web::Path<String>,
    state: web::Data<State>,
) -> HttpResponse {
    let code = path.into_inner();
    let back = format!("/c/{code}");
    let Some(session) = session else {
        let url = state
            .login
            .authorize_url(&format!("{back}/wechat-pay-coupon"), wechat_oauth::web::Scope::Base);
        return match url {
            Ok(url) => auth::oauth_redirect(&req, &state.keys, &url),
            Err(_) => pages::unavailable_page(&back),
        };
    };
    let Some(b) = state.busifavor.clone() else {
        return pages::error_page_with(
            StatusCode::SERVICE_UNAVAILABLE,
            "暂不能加入微信卡包",
            "This shop has not turned on WeChat Pay coupons yet: show the QR code on this page at the till instead.",
            &[pages::Action::new(back, "返回优惠券 · Back to the coupon")],
        );
    };
    let (coupon_id, stock_id, code) = match sendable(&state, &code, &session.openid).await {
        Ok(x) => x,
        Err(e) => {
            return pages::error_page_with(
                actix_web::ResponseError::status_code(&e),
                "不能加入微信卡包",
                e.message(),
                &[pages::Action::new(back, "返回优惠券 · Back to the coupon")],
            );
        }
    };
    let now = state.clock.now_ms();
    let no = out_request_no(coupon_id, now);
    let url = match wx::h5_send_url(
        &b.h5_base,
        &stock_id,
        &no,
        &b.mch_id,
        &session.openid,
        Some(&code),
        &b.v2_key,
    ) {
        Ok(u) => u,
        Err(e) => {
            tracing::error!(error = %e, "card bag: cannot build the H5 link");
            return pages::unavailable_page(&back);
        }
    };
    let (openid, no2) = (session.openid.clone(), no.clone());
    if let Err(e) = db::blocking(&state.db, move |conn| {
        record_attempt(conn, coupon_id, &openid, &no2, now)
    })
    .await
    {
        tracing::error!(error = %e, "card bag: cannot record the attempt");
        return pages::unavailable_page(&back);
    }
    tracing::info!(coupon = coupon_id, out_request_no = %no, "card bag: owner sent to WeChat's 领券 page");
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, url))
        .insert_header(("Cache-Control", "no-store"))
        .finish()
}

/// `GET /api/v1/coupons/{code}/busifavor-send` (the owner, web or mini-program session): the `send-coupon` plugin's
/// parameters for this coupon, signed with the API v2 key; the attempt is recorded (its `COUPON.SEND` confirms it).
pub async fn plugin_send(
    auth::AnySession(session): auth::AnySession,
    path: web::Path<String>,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let b = state.busifavor.clone().ok_or_else(not_configured)?;
    let (coupon_id, stock_id, code) = sendable(&state, &path.into_inner(), &session.openid).await?;
    let now = state.clock.now_ms();
    let no = out_request_no(coupon_id, now);
    let params = wx::plugin_params(
        vec![wx::PluginCoupon {
            stock_id,
            out_request_no: no.clone(),
            coupon_code: Some(code),
        }],
        &b.mch_id,
        &b.v2_key,
    )
    .map_err(|e| ApiError::bad_request("invalid_coupon", e.to_string()))?;
    let openid = session.openid.clone();
    db::blocking(&state.db, move |conn| {
        record_attempt(conn, coupon_id, &openid, &no, now)
    })
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(params))
}

/// The staff scanner page.
#[derive(askama::Template)]
#[template(path = "staff_scan.html")]
struct ScanPage<'a> {
    title: &'a str,
    name: String,
    csrf: String,
    jweixin: String,
}

/// The CSRF purpose of the staff scanner's form.
const SCAN_PURPOSE: &str = "staff-scan";

/// `GET /staff/scan`: staff open WeChat's scanner (`wx.scanQRCode`, `needResult: 1`) on a customer's card-bag code
/// (or any coupon QR) and redeem it through the scan page's use case.
pub async fn scan_page(
    req: HttpRequest,
    auth::WebSession(session): auth::WebSession,
    state: web::Data<State>,
) -> HttpResponse {
    let Some(session) = session else {
        return match state.login.authorize_url("/staff/scan", wechat_oauth::web::Scope::Base) {
            Ok(url) => auth::oauth_redirect(&req, &state.keys, &url),
            Err(_) => pages::unavailable_page("/staff/scan"),
        };
    };
    let openid = session.openid.clone();
    let staff = db::blocking(&state.db, move |conn| {
        crate::features::merchants::repo::staff_viewing(conn, &openid, None)
    })
    .await;
    let staff = match staff {
        Ok(Some(s)) if s.active => s,
        Ok(_) => {
            return pages::error_page(
                StatusCode::FORBIDDEN,
                "仅限店员使用",
                "This scanner is for a shop's staff: ask the shop owner to add you as staff.",
            );
        }
        Err(_) => return pages::unavailable_page("/staff/scan"),
    };
    let view = ScanPage {
        title: "扫码核销 · Scan to redeem",
        name: staff.name,
        csrf: auth::csrf_token(&state.keys, &session, SCAN_PURPOSE),
        jweixin: match &state.sandbox_sim_url {
            Some(sim) => format!("{sim}/_sim/js/jweixin.js"),
            None => "https://res.wx.qq.com/open/js/jweixin-1.6.0.js".to_owned(),
        },
    };
    let mut res = pages::render(StatusCode::OK, &view);
    pages::allow_jssdk(&mut res, state.sandbox_sim_url.as_deref());
    res
}

/// The scanner's form: what `wx.scanQRCode` read, and the CSRF token.
#[derive(Debug, serde::Deserialize)]
pub struct ScanForm {
    scanned: String,
    csrf: String,
}

/// `POST /staff/scan`: the scanned text (a card-bag code, a coupon URL, a printed code) → the scan page's redemption
/// (session, staff check, CSRF, exactly once) → 303 to the coupon's result page (核销成功, or why not).
pub async fn scan_submit(
    auth::WebSession(session): auth::WebSession,
    form: web::Form<ScanForm>,
    state: web::Data<State>,
) -> HttpResponse {
    let Some(session) = session else {
        return pages::error_page_with(
            StatusCode::UNAUTHORIZED,
            "请重新打开扫码页",
            "Your session has expired: open the scanner again.",
            &[pages::Action::new("/staff/scan", "扫码核销 · Scan again")],
        );
    };
    if !auth::csrf_ok(&state.keys, &session, SCAN_PURPOSE, &form.csrf) {
        return pages::error_page_with(
            StatusCode::FORBIDDEN,
            "请求无效",
            "This form is stale or not yours: open the scanner again.",
            &[pages::Action::new("/staff/scan", "扫码核销 · Scan again")],
        );
    }
    let Some(code) = CouponCode::parse(&till_input(form.scanned.trim(), &state.public_base_url)) else {
        return pages::error_page_with(
            StatusCode::NOT_FOUND,
            "不是本店的优惠券码",
            "What was scanned is not a coupon code of this system: scan the coupon's QR code again.",
            &[pages::Action::new("/staff/scan", "扫码核销 · Scan again")],
        );
    };
    let code = code.as_str().to_owned();
    let here = format!("/c/{code}");
    let (openid, c2) = (session.openid.clone(), code.clone());
    let staff = db::blocking(&state.db, move |conn| {
        let merchant = super::repo::coupon_by_code(conn, &c2)?.map(|(_, k)| k.merchant_id);
        crate::features::merchants::repo::staff_viewing(conn, &openid, merchant)
    })
    .await;
    let staff = match staff {
        Ok(s) => s.map(|s| s.to_domain()),
        Err(_) => return pages::unavailable_page("/staff/scan"),
    };
    if let Err(e) = super::service::redeem_on_scan_page(&state, code, staff).await {
        tracing::error!(error = %e, "staff scan: redemption failed");
        return pages::unavailable_page("/staff/scan");
    }
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, format!("{here}/result")))
        .insert_header(("Cache-Control", "no-store"))
        .finish()
}

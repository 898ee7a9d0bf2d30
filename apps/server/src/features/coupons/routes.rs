//! Coupons: the public view, POS redemption, the scan page and its confirm form, per-request QR images, and the
//! customer's own list.

use super::State;
use super::pos as repo_pos;
use super::repo as coupons_repo;
use super::service;
use super::views::{PublicCoupon, public_coupon, rfc3339};
use super::words::Refusal;
use crate::db;
use crate::features::merchants::repo as merchants_repo;
use crate::http::auth;
use crate::http::errors::ApiError;
use crate::http::pages::{self, CouponView};
use crate::http::ratelimit::Limit;
use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use redemption_core::{Campaign, Coupon, CouponCode, CouponStatus, Outcome};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The session of a coupon-page call, or 401 `login_required` (the page logs in through WeChat first).
fn logged_in(session: Option<auth::Session>) -> Result<auth::Session, ApiError> {
    session.ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "login_required",
            "log in with WeChat first (open the coupon's page)",
        )
    })
}

/// `GET /api/v1/coupons/{code}/card-ext` (the coupon's owner, logged in): `{cardId, cardExt}` for `wx.addCard` —
/// signed with the cached `wx_card` api_ticket and a fresh nonce, bound to the owner's openid, with the coupon's code
/// as `outer_str`, which WeChat echoes in the `user_get_card` push that links the card code to this coupon.
pub async fn card_ext(
    auth::WebSession(session): auth::WebSession,
    path: web::Path<String>,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let session = logged_in(session)?;
    let Some((coupon, campaign, card_code)) = load(&state, &path).await? else {
        return Err(ApiError::not_found("no such coupon"));
    };
    // Someone else's coupon is as good as none.
    if coupon.owner_openid.as_deref() != Some(session.openid.as_str()) {
        return Err(ApiError::not_found("no such coupon of yours"));
    }
    let Some(card_id) = campaign.wechat_card_id.clone() else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_card_backed",
            "this coupon has no WeChat card to add",
        ));
    };
    if card_code.is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_in_wallet",
            "this coupon is already in your WeChat card bag",
        ));
    }
    let now = state.clock.now_ms();
    if coupon.effective_status(&campaign, now) != CouponStatus::Issued {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_usable",
            "only a usable coupon can be added to WeChat",
        ));
    }
    let ext = wechat_card::CardExt::new(&card_id)
        .openid(&session.openid)
        .outer_str(coupon.code.as_str());
    let card_ext = state.cards.card_ext(&ext, now / 1000).await.map_err(|e| {
        tracing::warn!(error = %e, "card-ext: no wx_card ticket");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "wechat_unavailable",
            "WeChat did not give a card ticket just now: try again in a few seconds",
        )
        .with_retry_after(5)
    })?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(json!({"cardId": card_id, "cardExt": card_ext})))
}

/// Who redeemed a coupon.
#[derive(Debug, Serialize)]
struct StaffRef<'a> {
    id: i64,
    name: &'a str,
}

/// The 200 body of `POST /api/v1/redemptions`.
#[derive(Debug, Serialize)]
struct Redeemed<'a> {
    coupon: PublicCoupon<'a>,
    redeemed_at: String,
    redeemed_by: StaffRef<'a>,
}

async fn load(state: &State, code: &str) -> Result<Option<(Coupon, Campaign, Option<String>)>, ApiError> {
    let Some(code) = CouponCode::parse(code) else {
        return Ok(None);
    };
    let found = db::blocking(&state.db, move |conn| coupons_repo::coupon_by_code(conn, code.as_str()))
        .await
        .map_err(ApiError::from)?;
    Ok(found.and_then(|(c, k)| {
        let card_code = c.wechat_card_code.clone();
        c.to_domain().map(|coupon| (coupon, k.to_domain(), card_code))
    }))
}

/// What a till sends, as the code to look up: the code in any case and with the printed grouping's spaces or
/// dashes, or the coupon's full URL on this server (what the QR holds); anything else is passed on as given (and is
/// then not found, and audited as presented).
pub fn till_input(raw: &str, public_base_url: &str) -> String {
    let raw = raw.trim();
    if let Ok(url) = url::Url::parse(raw)
        && matches!(url.scheme(), "http" | "https")
    {
        let ours = url::Url::parse(public_base_url).is_ok_and(|base| base.origin() == url.origin());
        let code = url
            .path()
            .strip_prefix("/c/")
            .map(|p| p.trim_end_matches('/'))
            .filter(|p| !p.contains('/'))
            .and_then(CouponCode::parse);
        return match (ours, code) {
            (true, Some(code)) => code.as_str().to_owned(),
            _ => raw.to_owned(),
        };
    }
    CouponCode::parse_typed(raw).map_or_else(|| raw.to_owned(), |c| c.as_str().to_owned())
}

/// `GET /api/v1/coupons/{code}`.
pub async fn get_coupon(path: web::Path<String>, state: web::Data<State>) -> Result<HttpResponse, ApiError> {
    match load(&state, &path).await? {
        Some((coupon, campaign, card_code)) => {
            let (stock, bag) = super::busifavor::page_info(&state, coupon.id.0, campaign.id.0).await?;
            let mut body =
                serde_json::to_value(public_coupon(&state, &coupon, &campaign)).map_err(|e| ApiError::internal(&e))?;
            if let Some(o) = body.as_object_mut() {
                // In the card bag: as a 卡券 card (its code linked) or as a 商家券 coupon (WeChat said it arrived).
                let in_bag = card_code.is_some() || bag.is_some_and(|b| b.received_at.is_some());
                o.insert("in_wechat_card_bag".into(), json!(in_bag));
                o.insert("wechat_pay_stock_id".into(), json!(stock));
            }
            Ok(HttpResponse::Ok().json(body))
        }
        None => Err(ApiError::not_found("no such coupon")),
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct RedeemBody {
    code: String,
}

/// The API form of a refusal: a stable code per outcome, and the words the pages use as the message.
fn outcome_error(outcome: &Outcome, refusal: Option<&Refusal>) -> ApiError {
    let message = refusal.map(Refusal::words).unwrap_or_default();
    match outcome {
        Outcome::AlreadyRedeemed { .. } => ApiError::new(StatusCode::CONFLICT, "already_redeemed", message),
        Outcome::NotFound => ApiError::not_found(message),
        Outcome::Expired => ApiError::new(StatusCode::GONE, "expired", message),
        Outcome::Void => ApiError::new(StatusCode::GONE, "void", message),
        Outcome::NotStaff => ApiError::new(StatusCode::FORBIDDEN, "not_staff", message),
        Outcome::NotYetValid => ApiError::new(StatusCode::CONFLICT, "not_yet_valid", message),
        Outcome::Redeemed { .. } => ApiError::internal(&"redeemed is not an error"),
    }
}

/// `POST /api/v1/redemptions {code}` with a staff bearer token: 200, 409 already redeemed (when, by whom),
/// 404 unknown, 410 expired/void, 403 not staff.
pub async fn redeem(
    staff: auth::StaffBearer,
    req: HttpRequest,
    body: crate::http::json::ApiJson<RedeemBody>,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    if body.code.len() > 512 {
        return Err(ApiError::bad_request("invalid_code", "code is too long"));
    }
    state.limits.rate.check(Limit::Pos, &staff.token_hash)?;
    let token_hash = staff.token_hash.clone();
    let attempt = repo_pos::PosAttempt {
        token_hash: staff.token_hash,
        code: till_input(&body.into_inner().code, &state.public_base_url),
    };
    let reply = service::redeem_at_pos(&state, attempt).await.map_err(ApiError::from)?;
    let repo_pos::PosReply::Done(done) = reply else {
        state.limits.auth.failed(&req);
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "unknown staff token",
        ));
    };
    // A known till is served through its address's lock-out (someone else on the shop's network guessing).
    state.limits.auth.verified(&token_hash);
    let repo_pos::PosDone {
        staff,
        outcome,
        found,
        card_code: _,
        redeemed_by_name,
    } = *done;
    let refusal = Refusal::of(
        &outcome,
        found.as_ref().map(|(_, k)| k),
        Some(&staff.to_domain()),
        redeemed_by_name.clone(),
    );
    match (&outcome, found) {
        (Outcome::Redeemed { at }, Some((coupon, campaign))) => Ok(HttpResponse::Ok().json(Redeemed {
            coupon: public_coupon(&state, &coupon, &campaign),
            redeemed_at: rfc3339(*at),
            redeemed_by: StaffRef {
                id: staff.id,
                name: &staff.name,
            },
        })),
        (Outcome::AlreadyRedeemed { at, by }, _) => {
            let err = outcome_error(&outcome, refusal.as_ref());
            // The envelope plus when and by whom.
            Ok(HttpResponse::Conflict().json(json!({"error": {
                "code": err.code(),
                "message": err.message(),
                "redeemed_at": at.map(rfc3339),
                "redeemed_by": by.map(|b| json!({"id": b.0, "name": redeemed_by_name})),
            }})))
        }
        _ => Err(outcome_error(&outcome, refusal.as_ref())),
    }
}

/// The scan page.
#[derive(askama::Template)]
#[template(path = "scan.html")]
struct ScanPage<'a> {
    title: &'a str,
    coupon: CouponView,
    code: &'a str,
    /// For staff of the coupon's merchant who can redeem it: their name and the confirm form's token.
    staff: Option<StaffForm>,
    /// For staff (of this merchant or another) who cannot redeem it: why, in words.
    cannot: Option<String>,
    show_qr: bool,
    /// The code in groups of four, printed under the QR for a cashier to type when scanning fails.
    grouped: String,
    show_mine: bool,
    /// The holder's view: the page follows the coupon's status by itself (核销成功 when staff redeem it).
    live: bool,
    /// The owner of a card-backed coupon not yet in their card bag: the "Add to WeChat" button.
    add_card: bool,
    /// The owner of a 商家券-backed coupon not yet in their card bag: the link to WeChat's 领券 page.
    add_busifavor: bool,
    /// The coupon's card is in the owner's WeChat card bag.
    in_wallet: bool,
    /// WeChat's JS-SDK (the simulator's stand-in in the sandbox).
    jweixin: String,
    /// The holder's: the shop ended the campaign early, and what that means for this coupon and their money.
    ended_early: Option<String>,
    /// The viewer may be the owner through another channel: offer to link their accounts.
    link_offer: bool,
}

struct StaffForm {
    name: String,
    csrf: String,
}

/// The page after a confirm (and whenever staff look at the outcome again): the coupon's current state.
#[derive(askama::Template)]
#[template(path = "result.html")]
struct ResultPage<'a> {
    title: &'a str,
    coupon: Option<CouponView>,
    ok: bool,
    headline: String,
    message: String,
    code: &'a str,
}

/// The customer's list.
#[derive(askama::Template)]
#[template(path = "mine.html")]
struct MinePage<'a> {
    title: &'a str,
    items: Vec<MineItem>,
}

struct MineItem {
    code: String,
    title: String,
    /// The code's last group, which tells identical titles apart (and is what a cashier reads).
    tail: String,
    /// Valid until, Beijing time.
    until: String,
    value: String,
    status: &'static str,
    status_zh: &'static str,
    status_en: &'static str,
}

/// Loads a coupon for a page: `Err` is the page to answer with (404 with next steps, or 503).
async fn load_for_page(state: &State, code: &str) -> Result<(Coupon, Campaign, Option<String>), HttpResponse> {
    match load(state, code).await {
        Ok(Some(found)) => Ok(found),
        Ok(None) => Err(pages::error_page_with(
            StatusCode::NOT_FOUND,
            "优惠券不存在",
            "No such coupon: check the link, or scan the code again.",
            &[
                pages::Action::new("/coupons/mine", "我的优惠券 · My coupons"),
                pages::Action::home(),
            ],
        )),
        Err(_) => Err(pages::unavailable_page(&format!("/c/{}", code))),
    }
}

/// The staff row of an openid; a database failure is the 503 page (never "not staff": a cashier must not be shown a
/// customer's view).
async fn viewer_staff(
    state: &State,
    openid: &str,
    code: &str,
    retry: &str,
) -> Result<Option<merchants_repo::StaffRow>, HttpResponse> {
    let (viewer, code) = (openid.to_owned(), code.to_owned());
    db::blocking(&state.db, move |conn| {
        // One person may be staff of several shops: the row of the coupon's shop speaks for them.
        let merchant = super::repo::coupon_by_code(conn, &code)?.map(|(_, k)| k.merchant_id);
        merchants_repo::staff_viewing(conn, &viewer, merchant)
    })
    .await
    .map_err(|e| {
        tracing::error!(error = %e, "page: cannot look up the viewer");
        pages::unavailable_page(retry)
    })
}

/// The viewer's openids as one person, and whether linking their accounts could make them the coupon's owner (the
/// owner is known by a unionid; the viewer's login brought none).
async fn viewer_person(
    state: &State,
    user_id: i64,
    openid: &str,
    owner: Option<String>,
) -> Result<(Vec<String>, bool), db::DbError> {
    let openid = openid.to_owned();
    db::blocking(&state.db, move |conn| {
        let person = crate::features::auth::repo::person_openids(conn, &openid)?;
        let offer = match &owner {
            Some(o) if !person.contains(o) => {
                let viewer_known =
                    crate::features::auth::repo::user_by_id(conn, user_id)?.is_some_and(|u| u.unionid.is_some());
                !viewer_known && crate::features::auth::repo::has_unionid(conn, o)?
            }
            _ => false,
        };
        Ok((person, offer))
    })
    .await
}

/// The code in a coupon page's path (`/c/{code}`).
fn code_of(here: &str) -> String {
    here.trim_start_matches("/c/").to_owned()
}

/// A staff member's name by id (for "redeemed by"); none when unknown or the lookup fails.
async fn staff_name(state: &State, id: Option<i64>) -> Option<String> {
    let id = id?;
    db::blocking(&state.db, move |conn| merchants_repo::staff_by_id(conn, id))
        .await
        .ok()
        .flatten()
        .map(|s| s.name)
}

/// Why `staff` cannot redeem `coupon` now, in words; `None` when they can.
async fn refusal_words(
    state: &State,
    coupon: &Coupon,
    campaign: &Campaign,
    staff: Option<&redemption_core::Staff>,
    now: i64,
) -> Option<String> {
    let outcome = redemption_core::check_redeemable(coupon, campaign, staff, now).err()?;
    let by = match &outcome {
        Outcome::AlreadyRedeemed { by, .. } => staff_name(state, by.map(|b| b.0)).await,
        _ => None,
    };
    Refusal::of(&outcome, Some(campaign), staff, by).map(|r| r.words())
}

/// `GET /c/{code}`: the scan page. Without a session it runs silent WeChat OAuth first. Staff of the merchant get a
/// confirm button (or the reason they cannot redeem it); staff of another merchant are told it is not their shop's;
/// the owner (or anyone, for a bearer coupon) sees the QR while it is usable and the page follows its status; others
/// see the public details only.
pub async fn scan_page(
    req: HttpRequest,
    auth::WebSession(session): auth::WebSession,
    path: web::Path<String>,
    state: web::Data<State>,
) -> HttpResponse {
    if let Some(page) = state.limits.rate.check_page(Limit::CouponPages, &req) {
        return page;
    }
    let code = path.into_inner();
    let (coupon, campaign, card_code) = match load_for_page(&state, &code).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    let here = format!("/c/{}", coupon.code);
    let Some(session) = session else {
        return login_redirect(&req, &state, &here).unwrap_or_else(|_| pages::unavailable_page(&here));
    };
    let openid = session.openid.clone();
    let staff = match viewer_staff(&state, &openid, &code_of(&here), &here).await {
        Ok(s) => s,
        Err(page) => return page,
    };
    let code_str = coupon.code.as_str().to_owned();
    let now = state.clock.now_ms();
    // Coupons belong to the person: any of their openids (official account, mini program) holds it.
    let (person, link_offer) = match viewer_person(&state, session.user_id, &openid, coupon.owner_openid.clone()).await
    {
        Ok(p) => p,
        Err(_) => return pages::unavailable_page(&here),
    };
    let owner = coupon
        .owner_openid
        .as_deref()
        .is_some_and(|o| person.iter().any(|p| p == o));
    let holder = coupon.owner_openid.is_none() || owner;
    let is_staff_here = staff
        .as_ref()
        .is_some_and(|s| s.active && s.merchant_id == campaign.merchant_id.0);
    let coupon_view = CouponView::new(&coupon, &campaign, now);
    let mut view = ScanPage {
        title: &campaign.title,
        coupon: coupon_view.clone(),
        code: &code_str,
        staff: None,
        cannot: None,
        show_qr: false,
        grouped: coupon.code.grouped(),
        show_mine: false,
        live: false,
        add_card: false,
        add_busifavor: false,
        in_wallet: false,
        jweixin: match &state.sandbox_sim_url {
            Some(sim) => format!("{sim}/_sim/js/jweixin.js"),
            None => "https://res.wx.qq.com/open/js/jweixin-1.6.0.js".to_owned(),
        },
        ended_early: None,
        link_offer: false,
    };
    let staff_domain = staff.as_ref().map(merchants_repo::StaffRow::to_domain);
    if is_staff_here {
        view.cannot = refusal_words(&state, &coupon, &campaign, staff_domain.as_ref(), now).await;
        if view.cannot.is_none() {
            view.staff = Some(StaffForm {
                name: staff_domain.map(|s| s.name).unwrap_or_default(),
                csrf: auth::csrf_token(&state.keys, &session, &code_str),
            });
        }
    } else if staff.is_some() && !owner {
        // Staff of another shop (or removed staff) scanning a customer's coupon: say why, show no QR.
        view.cannot = refusal_words(&state, &coupon, &campaign, staff_domain.as_ref(), now).await;
    } else if holder {
        view.show_qr = coupon_view.usable();
        view.show_mine = true;
        view.live = matches!(coupon_view.status, "issued" | "pending");
        view.in_wallet = owner && card_code.is_some();
        view.add_card = owner && view.show_qr && campaign.wechat_card_id.is_some() && card_code.is_none();
        if owner {
            // 商家券: in the card bag once WeChat said so — asked here while an H5 attempt is pending, as WeChat's H5
            // page does not call back.
            if let Ok((Some(stock), bag)) = super::busifavor::page_info(&state, coupon.id.0, campaign.id.0).await {
                let in_bag = match &bag {
                    Some(b) => super::busifavor::sync_pending(&state, &code_str, &stock, b).await,
                    None => false,
                };
                view.in_wallet = view.in_wallet || in_bag;
                view.add_busifavor = view.show_qr && !in_bag && !view.add_card;
            }
        }
        let code = code_str.clone();
        view.ended_early = db::blocking(&state.db, move |conn| super::repo::ended_early_note(conn, &code))
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "page: cannot read whether the campaign ended early");
                None
            });
    }
    // Someone whose login here came without a unionid, looking at a coupon owned through another channel of a person
    // WeChat knows by unionid: offer the one step that would show whether it is theirs (`snsapi_userinfo`).
    view.link_offer = link_offer && !holder && view.staff.is_none() && view.cannot.is_none();
    let mut res = pages::render(StatusCode::OK, &view);
    if view.add_card {
        // WeChat's JS-SDK script (or the simulator's stand-in and its calls) is allowed on this page only.
        pages::allow_jssdk(&mut res, state.sandbox_sim_url.as_deref());
    }
    res
}

/// `GET /c/{code}/status` (the holder's page polls it): `{status, status_zh, status_en, notice, redeemed_at}`. Bound
/// to the session — only the coupon's holder gets an answer — and rate-limited per session.
pub async fn live_status(
    auth::WebSession(session): auth::WebSession,
    path: web::Path<String>,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let session = logged_in(session)?;
    state
        .limits
        .rate
        .check(crate::http::ratelimit::Limit::CouponStatus, &session.openid)?;
    let Some((coupon, campaign, _)) = load(&state, &path).await? else {
        return Err(ApiError::not_found("no such coupon"));
    };
    let (person, _) = viewer_person(&state, session.user_id, &session.openid, None).await?;
    if coupon
        .owner_openid
        .as_deref()
        .is_some_and(|o| !person.iter().any(|p| p == o))
    {
        return Err(ApiError::not_found("no such coupon of yours"));
    }
    let view = CouponView::new(&coupon, &campaign, state.clock.now_ms());
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(json!({
            "status": view.status, "status_zh": view.status_zh, "status_en": view.status_en,
            "notice": view.notice, "redeemed_at": coupon.redeemed_at.map(rfc3339),
        })))
}

#[derive(Debug, Deserialize)]
pub struct ConfirmForm {
    csrf: String,
}

/// `POST /c/{code}/redeem`: the staff member confirms. CSRF-protected (a token bound to the session and the coupon).
/// Whatever the outcome, it answers `303 See Other` to the result page, so that a reload or Back never submits
/// again; the result page tells the coupon's current state.
pub async fn confirm(
    req: HttpRequest,
    auth::WebSession(session): auth::WebSession,
    path: web::Path<String>,
    form: web::Form<ConfirmForm>,
    state: web::Data<State>,
) -> HttpResponse {
    if let Some(page) = state.limits.rate.check_page(Limit::CouponPages, &req) {
        return page;
    }
    let code = path.into_inner();
    let Some(parsed) = CouponCode::parse(&code) else {
        return pages::error_page(
            StatusCode::NOT_FOUND,
            "优惠券不存在",
            "No such coupon: scan the code again.",
        );
    };
    let here = format!("/c/{}", parsed.as_str());
    let Some(session) = session else {
        return pages::error_page_with(
            StatusCode::UNAUTHORIZED,
            "请重新扫码",
            "Your session has expired: open the coupon again (or scan its code again).",
            &[pages::Action::new(here, "重新打开此券 · Open the coupon again")],
        );
    };
    if !auth::csrf_ok(&state.keys, &session, parsed.as_str(), &form.csrf) {
        return pages::error_page_with(
            StatusCode::FORBIDDEN,
            "请求无效",
            "This form is stale or not yours: open the coupon again and confirm there.",
            &[pages::Action::new(here, "重新打开此券 · Open the coupon again")],
        );
    }
    let staff = match viewer_staff(&state, &session.openid, &code_of(&here), &here).await {
        Ok(s) => s.map(|s| s.to_domain()),
        Err(page) => return page,
    };
    if let Err(e) = service::redeem_on_scan_page(&state, parsed.as_str().to_owned(), staff).await {
        tracing::error!(error = %e, "confirm: redemption failed");
        return pages::unavailable_page(&here);
    }
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, format!("{here}/result")))
        .insert_header(("Cache-Control", "no-store"))
        .finish()
}

/// `GET /c/{code}/result`: what a confirm came to, from the coupon's current state — 核销成功 when this staff member
/// redeemed it, otherwise the reason it cannot be redeemed (already redeemed, when and by whom; another shop's; …).
pub async fn result_page(
    req: HttpRequest,
    auth::WebSession(session): auth::WebSession,
    path: web::Path<String>,
    state: web::Data<State>,
) -> HttpResponse {
    if let Some(page) = state.limits.rate.check_page(Limit::CouponPages, &req) {
        return page;
    }
    let (coupon, campaign, _) = match load_for_page(&state, &path).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    let here = format!("/c/{}", coupon.code);
    let Some(session) = session else {
        return login_redirect(&req, &state, &format!("{here}/result"))
            .unwrap_or_else(|_| pages::unavailable_page(&here));
    };
    let staff = match viewer_staff(&state, &session.openid, &code_of(&here), &here).await {
        Ok(s) => s.map(|s| s.to_domain()),
        Err(page) => return page,
    };
    let now = state.clock.now_ms();
    let mine = staff.as_ref().is_some_and(|s| coupon.redeemed_by == Some(s.id));
    let (ok, headline, message) = if coupon.status == CouponStatus::Redeemed && mine {
        let name = staff.as_ref().map(|s| s.name.clone()).unwrap_or_default();
        (
            true,
            "核销成功 · Redeemed".to_owned(),
            format!(
                "{} ({}) · by {name}",
                coupon.redeemed_at.map(pages::beijing).unwrap_or_default(),
                pages::TZ_LABEL
            ),
        )
    } else {
        match refusal_words(&state, &coupon, &campaign, staff.as_ref(), now).await {
            Some(words) => (false, "不能核销 · Cannot redeem".to_owned(), words),
            None => (
                false,
                "尚未核销 · Not redeemed yet".to_owned(),
                "Open the coupon and confirm to redeem it.".to_owned(),
            ),
        }
    };
    pages::render(
        StatusCode::OK,
        &ResultPage {
            title: "核销 Redeem",
            coupon: Some(CouponView::new(&coupon, &campaign, now)),
            ok,
            headline,
            message,
            code: coupon.code.as_str(),
        },
    )
}

#[derive(Debug, Deserialize)]
pub struct QrQuery {
    size: Option<u32>,
}

/// `GET /c/{code}/qr.png` and `/c/{code}/qr.svg`: the QR of the coupon's URL, rendered per request, never stored.
pub async fn qr(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    state.limits.rate.check_ip(Limit::CouponPages, &req)?;
    let (code, format) = path.into_inner();
    let size = web::Query::<QrQuery>::from_query(req.query_string())
        .map_err(|e| ApiError::bad_request("invalid_query", e.to_string()))?
        .size
        .unwrap_or(300);
    if !(100..=1200).contains(&size) {
        return Err(ApiError::bad_request("invalid_size", "size must be 100 to 1200 px"));
    }
    let svg = match format.as_str() {
        "png" => false,
        "svg" => true,
        _ => return Err(ApiError::not_found("use qr.png or qr.svg")),
    };
    let Some((coupon, _, _)) = load(&state, &code).await? else {
        return Err(ApiError::not_found("no such coupon"));
    };
    let url = format!("{}/c/{}", state.public_base_url, coupon.code);
    // The image depends only on the URL, size and format: that is the ETag.
    let etag = header::EntityTag::new_strong(auth::sha256_hex(&format!("{url}|{size}|{format}"))[..32].to_owned());
    let cache = ("Cache-Control", "private, max-age=86400");
    if crate::http::assets::not_modified(&req, &etag) {
        return Ok(HttpResponse::NotModified()
            .insert_header(header::ETag(etag))
            .insert_header(cache)
            .finish());
    }
    let opts = qr_render::RenderOptions {
        size_px: size,
        ..Default::default()
    };
    let (content_type, body) = if svg {
        (
            "image/svg+xml",
            qr_render::render_svg(&url, &opts).map(String::into_bytes),
        )
    } else {
        ("image/png", qr_render::render_png(&url, &opts))
    };
    let body = body.map_err(|e| ApiError::internal(&e))?;
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(header::ETag(etag))
        .insert_header(cache)
        .body(body))
}

/// `GET /coupons/mine`: the logged-in customer's coupons (login through WeChat first).
pub async fn mine(
    req: HttpRequest,
    auth::WebSession(session): auth::WebSession,
    state: web::Data<State>,
) -> HttpResponse {
    let Some(openid) = session.map(|s| s.openid) else {
        return login_redirect(&req, &state, "/coupons/mine")
            .unwrap_or_else(|e| pages::error_page(StatusCode::INTERNAL_SERVER_ERROR, "出错了", &e.to_string()));
    };
    let rows = match db::blocking(&state.db, move |conn| coupons_repo::coupons_of_person(conn, &openid)).await {
        Ok(r) => r,
        Err(_) => return pages::error_page(StatusCode::SERVICE_UNAVAILABLE, "服务暂时不可用", "Please try again."),
    };
    let now = state.clock.now_ms();
    let items = rows
        .iter()
        .filter_map(|(c, k)| c.to_domain().map(|c| (c, k.to_domain())))
        .map(|(c, k)| {
            let view = CouponView::new(&c, &k, now);
            MineItem {
                code: c.code.as_str().to_owned(),
                tail: c.code.as_str().chars().skip(22).collect(),
                until: view.valid_until.clone(),
                title: k.title.clone(),
                value: view.value,
                status: view.status,
                status_zh: view.status_zh,
                status_en: view.status_en,
            }
        })
        .collect();
    pages::render(
        StatusCode::OK,
        &MinePage {
            title: "我的优惠券",
            items,
        },
    )
}

/// A 302 to WeChat's login that brings the visitor back to `return_path`.
fn login_redirect(req: &HttpRequest, state: &State, return_path: &str) -> Result<HttpResponse, ApiError> {
    let url = state.login.authorize_url(return_path, wechat_oauth::web::Scope::Base)?;
    Ok(crate::http::auth::oauth_redirect(req, &state.keys, &url))
}

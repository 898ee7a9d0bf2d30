//! The console's pages: who may see a merchant ([`member`]), the dashboard, campaigns, coupons, redemptions and
//! orders. Forms post back with the page's CSRF token; every change answers 303 to the page it was made from.

use super::State;
use super::repo::{self, Role};
use crate::db;
use crate::features::merchants::repo::MerchantRow;
use crate::features::merchants::service::AdminError;
use crate::http::auth::{self, Session, WebSession};
use crate::http::pages::{self, Action};
use crate::platform::time::beijing_format;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use std::collections::HashMap;

/// The CSRF purpose of console forms.
const CSRF: &str = "console";

/// What every console page carries (the header, the nav, the form token).
pub(super) struct Frame {
    pub title: &'static str,
    pub merchant_id: i64,
    pub merchant_name: String,
    pub role: &'static str,
    pub role_words: &'static str,
    pub nav: &'static str,
    pub csrf: String,
    pub logout_csrf: String,
    pub flash: Option<&'static str>,
    pub several: bool,
}

/// A person at a merchant's console: their session, the merchant, their role.
pub(super) struct Member {
    pub session: Session,
    pub merchant: MerchantRow,
    pub role: Role,
    several: bool,
}

impl Member {
    /// The frame of a page of this member's.
    pub fn frame(&self, state: &State, title: &'static str, nav: &'static str, req: &HttpRequest) -> Frame {
        Frame {
            title,
            merchant_id: self.merchant.id,
            merchant_name: self.merchant.name.clone(),
            role: self.role.as_str(),
            role_words: self.role.words(),
            nav,
            csrf: auth::csrf_token(&state.keys, &self.session, CSRF),
            logout_csrf: auth::csrf_token(&state.keys, &self.session, "logout"),
            flash: flash(req),
            several: self.several,
        }
    }

    /// The audit actor.
    pub fn user_id(&self) -> i64 {
        self.session.user_id
    }

    /// Refused unless an owner.
    #[allow(
        clippy::result_large_err,
        reason = "the Err is the page to answer with, made once per request"
    )]
    pub fn owner_only(&self, what: &str) -> Result<(), HttpResponse> {
        if self.role == Role::Owner {
            Ok(())
        } else {
            Err(pages::error_page_with(
                StatusCode::FORBIDDEN,
                "只有店主可以操作",
                &format!("Only an owner can {what}: ask the shop's owner."),
                &[Action::new(
                    format!("/console/{}", self.merchant.id),
                    "返回后台 · Back to the console",
                )],
            ))
        }
    }
}

/// The messages a page shows after a change (`?ok=key`; a fixed list, so a link cannot make the page say anything).
fn flash(req: &HttpRequest) -> Option<&'static str> {
    let q = web::Query::<HashMap<String, String>>::from_query(req.query_string()).ok()?;
    Some(match q.get("ok")?.as_str() {
        "created" => "已创建 · Created",
        "saved" => "已保存 · Saved",
        "issued" => "已发券 · Issued",
        "ended" => "活动已结束 · The campaign has ended",
        "voided" => "已作废 · Voided",
        "invited" => "邀请码已生成：让对方用微信扫一扫 · Invite made: let them scan it with WeChat",
        "revoked" => "邀请已撤销 · Invite revoked",
        "approved" => "已同意 · Approved",
        "removed" => "已移除 · Removed",
        "refunded" => "退款已提交，微信确认后到账 · Refund sent: it settles when WeChat confirms",
        "unchanged" => "没有改动 · Nothing changed",
        "wechat_pay_coupon" => {
            "已接入微信支付商家券：顾客可把券加入微信卡包 · Now in WeChat card bags (WeChat Pay coupon)"
        }
        _ => return None,
    })
}

/// Where a visitor without a session logs in: inside WeChat by the official account's login, on a computer by
/// scanning the mini-program code; both come back to `here`.
pub(super) fn login_first(req: &HttpRequest, here: &str) -> HttpResponse {
    let to: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("return", here)
        .finish();
    let page = if auth::in_wechat(req) { "/auth/wechat" } else { "/login" };
    crate::http::errors::found(&format!("{page}?{to}"))
}

/// The merchant `mid` as the logged-in person may see it, or the page that says why not: log in first; not a
/// merchant of theirs (404, the same whether it exists or not); staff, who redeem by scanning (403).
pub(super) async fn member(
    req: &HttpRequest,
    state: &State,
    session: Option<Session>,
    mid: i64,
) -> Result<Member, HttpResponse> {
    let here = req.uri().path().to_owned();
    let Some(session) = session else {
        return Err(login_first(req, &here));
    };
    let user = session.user_id;
    let found = db::blocking(&state.db, move |conn| repo::memberships(conn, user))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "console: cannot read memberships");
            pages::unavailable_page(&here)
        })?;
    let several = found.len() > 1;
    match found.into_iter().find(|(m, _)| m.id == mid) {
        Some((merchant, role)) => Ok(Member {
            session,
            merchant,
            role,
            several,
        }),
        None => Err(pages::error_page_with(
            StatusCode::NOT_FOUND,
            "没有这个商户",
            "No such shop of yours: log in with the WeChat account the shop invited, or ask its owner for an invite.",
            &[Action::new("/console", "我的商户 · My shops"), Action::home()],
        )),
    }
}

/// A posted form, its CSRF token checked against the member's session.
#[allow(
    clippy::result_large_err,
    reason = "the Err is the page to answer with, made once per request"
)]
pub(super) fn form(state: &State, m: &Member, body: &[u8]) -> Result<HashMap<String, String>, HttpResponse> {
    let fields: HashMap<String, String> = serde_urlencoded::from_bytes(body).unwrap_or_default();
    csrf(state, m, fields.get("csrf").map(String::as_str))?;
    Ok(fields)
}

/// The page's CSRF token checked (a form of another kind, a multipart upload, carries it as a field too).
#[allow(
    clippy::result_large_err,
    reason = "the Err is the page to answer with, made once per request"
)]
pub(super) fn csrf(state: &State, m: &Member, token: Option<&str>) -> Result<(), HttpResponse> {
    if token.is_some_and(|t| auth::csrf_ok(&state.keys, &m.session, CSRF, t)) {
        Ok(())
    } else {
        Err(pages::error_page_with(
            StatusCode::FORBIDDEN,
            "页面已过期",
            "This form is stale or not from this site: open the page again and retry.",
            &[Action::new(
                format!("/console/{}", m.merchant.id),
                "返回后台 · Back to the console",
            )],
        ))
    }
}

/// A field's trimmed value, `None` when empty or absent.
pub(super) fn field<'a>(f: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    f.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
}

/// 303 to `path` with a fixed message key.
pub(super) fn done(path: &str, ok: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((actix_web::http::header::LOCATION, format!("{path}?ok={ok}")))
        .finish()
}

/// The page of a refused change: what is wrong, and the way back.
pub(super) fn refused(e: AdminError, back: &str) -> HttpResponse {
    let (status, en) = match &e {
        AdminError::Db(err) => {
            tracing::error!(error = %err, "console: database failed");
            return pages::unavailable_page(back);
        }
        AdminError::NotFound(_) => (StatusCode::NOT_FOUND, e.to_string()),
        AdminError::Conflict { .. } => (StatusCode::CONFLICT, e.to_string()),
        _ => (StatusCode::BAD_REQUEST, e.to_string()),
    };
    pages::error_page_with(status, "没有完成", &en, &[Action::new(back, "返回 · Back")])
}

/// The page after a use case: 303 with the message `ok`, or the refusal (or the 503 page when the database failed).
pub(super) fn answered<T>(result: Result<Result<T, AdminError>, db::DbError>, back: &str, ok: &str) -> HttpResponse {
    match result {
        Ok(Ok(_)) => done(back, ok),
        Ok(Err(e)) => refused(e, back),
        Err(e) => refused(e.into(), back),
    }
}

/// Runs a database task for a page (a failure is the 503 page with a retry link).
pub(super) async fn run<T: Send + 'static>(
    state: &State,
    back: &str,
    work: impl FnOnce(&mut db::DbConnection) -> Result<T, db::DbError> + Send + 'static,
) -> Result<T, HttpResponse> {
    db::blocking(&state.db, work).await.map_err(|e| {
        tracing::error!(error = %e, "console: database failed");
        pages::unavailable_page(back)
    })
}

/// Yuan as people write it (`18`, `9.9`, `9.90`) in fen; `None` when it is not such a number.
pub(super) fn fen(yuan: &str) -> Option<i64> {
    let yuan = yuan.trim().trim_start_matches('¥');
    let (whole, frac) = yuan.split_once('.').unwrap_or((yuan, ""));
    if whole.is_empty() && frac.is_empty()
        || frac.len() > 2
        || !whole.chars().chain(frac.chars()).all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let whole: i64 = if whole.is_empty() { 0 } else { whole.parse().ok()? };
    let frac: i64 = format!("{frac:0<2}").parse().ok()?;
    whole.checked_mul(100)?.checked_add(frac)
}

/// A Beijing calendar day (`YYYY-MM-DD`) as its first millisecond.
pub(super) fn day_start(day: &str) -> Option<i64> {
    let d = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").ok()?;
    let t = d.and_hms_opt(0, 0, 0)?;
    Some(
        t.and_local_timezone(crate::platform::time::beijing_offset())
            .single()?
            .timestamp_millis(),
    )
}

fn money(fen: i64) -> String {
    pages::money(u64::try_from(fen).ok())
}

#[derive(Template)]
#[template(path = "console_pick.html")]
struct PickPage {
    title: &'static str,
    merchants: Vec<(i64, String, &'static str)>,
    nobody: &'static str,
    nobody_en: &'static str,
}

/// `GET /console`: the person's shop (straight to it when there is one), a choice when several, or why there is
/// none (staff redeem by scanning; anyone else needs an owner's invite).
pub async fn home(req: HttpRequest, WebSession(session): WebSession, state: web::Data<State>) -> HttpResponse {
    let Some(session) = session else {
        return login_first(&req, "/console");
    };
    let (user, openid) = (session.user_id, session.openid.clone());
    let found = run(&state, "/console", move |conn| {
        let shops = repo::memberships(conn, user)?;
        let staff = crate::features::merchants::repo::staff_by_openid(conn, &openid)?
            .into_iter()
            .any(|s| s.active);
        Ok((shops, staff))
    })
    .await;
    let (shops, is_staff) = or_page!(found);
    let pick = req.query_string().contains("pick=1");
    if let [(only, _)] = shops.as_slice()
        && !pick
    {
        return crate::http::errors::found(&format!("/console/{}", only.id));
    }
    let (status, nobody, nobody_en) = if is_staff {
        (
            StatusCode::FORBIDDEN,
            "店员不需要后台：扫顾客的券码即可核销。",
            "Staff do not use the console: scan a customer's coupon code to redeem it.",
        )
    } else {
        (
            StatusCode::FORBIDDEN,
            "这个微信账号还不能管理任何商户。",
            "This WeChat account runs no shop yet: ask the platform or a shop's owner for an invite, and scan it.",
        )
    };
    pages::render(
        if shops.is_empty() { status } else { StatusCode::OK },
        &PickPage {
            title: "商户后台 · Merchant console",
            merchants: shops.into_iter().map(|(m, r)| (m.id, m.name, r.words())).collect(),
            nobody,
            nobody_en,
        },
    )
}

#[derive(Template)]
#[template(path = "console_dashboard.html")]
struct DashboardPage {
    frame: Frame,
    today: repo::Figures,
    month: repo::Figures,
    today_sales: String,
    month_sales: String,
    today_refunds: String,
    month_refunds: String,
    outstanding: i64,
    recent: Vec<(String, String, String)>,
    tz: &'static str,
    day_start: String,
}

/// `GET /console/{mid}`: today's and this month's figures (Beijing days), coupons outstanding, recent changes.
pub async fn dashboard(
    req: HttpRequest,
    WebSession(session): WebSession,
    path: web::Path<i64>,
    state: web::Data<State>,
) -> HttpResponse {
    let m = or_page!(member(&req, &state, session, path.into_inner()).await);
    let now = state.clock.now_ms();
    let today = beijing_format(now, "%Y-%m-%d");
    let (Some(day), Some(month)) = (day_start(&today), day_start(&format!("{}-01", &today[..7]))) else {
        return pages::unavailable_page("/console");
    };
    let mid = m.merchant.id;
    let here = format!("/console/{mid}");
    let figures = run(&state, &here, move |conn| {
        Ok((
            repo::figures(conn, mid, day, now + 1)?,
            repo::figures(conn, mid, month, now + 1)?,
            repo::outstanding(conn, mid, now)?,
            repo::recent_actions(conn, mid, 10)?,
        ))
    })
    .await;
    let (t, mo, outstanding, recent) = or_page!(figures);
    pages::render(
        StatusCode::OK,
        &DashboardPage {
            frame: m.frame(&state, "概览 · Overview", "home", &req),
            today_sales: money(t.sales_fen),
            month_sales: money(mo.sales_fen),
            today_refunds: money(t.refunds_fen),
            month_refunds: money(mo.refunds_fen),
            today: t,
            month: mo,
            outstanding,
            recent: recent
                .into_iter()
                .map(|(at, action, detail, who)| {
                    (
                        pages::beijing(at),
                        who.unwrap_or_else(|| "平台 · platform".into()),
                        format!("{action}: {}", detail.unwrap_or_default()),
                    )
                })
                .collect(),
            tz: pages::TZ_LABEL,
            day_start: pages::beijing(day),
        },
    )
}

pub(super) use super::pages_campaigns::{
    campaign, campaigns, coupons, create_campaign, edit_campaign, end_campaign, end_preview, issue, orders,
    redemptions, redemptions_csv, refund, refund_preview, void,
};
pub(super) use super::pages_stock::wechat_pay_coupon;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuan_as_people_write_it() {
        assert_eq!(fen("18"), Some(1800));
        assert_eq!(fen("9.9"), Some(990));
        assert_eq!(fen("¥0.01"), Some(1));
        assert_eq!(fen(".5"), Some(50));
        assert_eq!(fen("1.234"), None);
        assert_eq!(fen("-1"), None);
        assert_eq!(fen("abc"), None);
        assert_eq!(fen(""), None);
        assert_eq!(fen("99999999999999999999"), None);
    }

    #[test]
    fn beijing_days_start_at_midnight_utc_plus_8() {
        assert_eq!(day_start("2026-12-04"), Some(1_796_313_600_000));
        assert_eq!(day_start("2026-13-01"), None);
    }
}

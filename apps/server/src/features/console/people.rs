//! Staff and invites: the staff page (approve, remove), invites made, shown as QR codes and revoked, joining by
//! scanning one (`/join/{token}`, through the official account's login so the staff row carries the openid the
//! coupon pages see), and the admin API's owner invite.

use super::State;
use super::pages::{Frame, answered, done, field, form, login_first, member, refused, run};
use super::repo::{self, Role};
use super::service::{self, InviteRequest, Joined};
use crate::features::merchants::service::AdminError;
use crate::http::auth::{self, WebSession};
use crate::http::errors::ApiError;
use crate::http::pages::{self, Action};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

struct StaffView {
    id: i64,
    name: String,
    avatar: Option<String>,
    joined: String,
    redemptions: i64,
    state: &'static str,
    state_words: &'static str,
}

struct InviteView {
    id: i64,
    role: &'static str,
    uses: String,
    until: String,
    usable: bool,
    state: &'static str,
}

#[derive(Template)]
#[template(path = "console_staff.html")]
struct StaffPage {
    frame: Frame,
    staff: Vec<StaffView>,
    invites: Vec<InviteView>,
    members: Vec<(String, &'static str)>,
}

/// `GET /console/{mid}/staff`: staff with their avatar, join time and redemptions; invites and their QR codes; the
/// people who run the shop.
pub async fn staff(
    req: HttpRequest,
    WebSession(session): WebSession,
    path: web::Path<i64>,
    state: web::Data<State>,
) -> HttpResponse {
    let m = or_page!(member(&req, &state, session, path.into_inner()).await);
    let mid = m.merchant.id;
    let found = run(&state, "/console", move |conn| {
        Ok((
            repo::staff_lines(conn, mid)?,
            repo::invites_of(conn, mid)?,
            repo::members(conn, mid)?,
        ))
    })
    .await;
    let (lines, invites, members) = or_page!(found);
    let now = state.clock.now_ms();
    pages::render(
        StatusCode::OK,
        &StaffPage {
            frame: m.frame(&state, "店员 · Staff", "staff", &req),
            staff: lines
                .into_iter()
                .map(|l| {
                    let (state, words) = if l.staff.pending {
                        ("pending", "待同意 · waiting for approval")
                    } else if l.staff.active {
                        ("active", "在职 · active")
                    } else {
                        ("removed", "已移除 · removed")
                    };
                    StaffView {
                        id: l.staff.id,
                        name: l.staff.name,
                        avatar: l.avatar_url,
                        joined: pages::beijing(l.staff.created_at),
                        redemptions: l.redemptions,
                        state,
                        state_words: words,
                    }
                })
                .collect(),
            invites: invites
                .into_iter()
                .map(|i| InviteView {
                    id: i.id,
                    role: Role::parse(&i.role).unwrap_or(Role::Staff).words(),
                    uses: format!("已用 used {}/{}", i.uses, i.max_uses),
                    until: format!("有效至 until {}", pages::beijing(i.expires_at)),
                    usable: i.usable(now),
                    state: if i.revoked_at.is_some() {
                        "已撤销 · revoked"
                    } else if now >= i.expires_at {
                        "已过期 · expired"
                    } else {
                        "已用完 · used up"
                    },
                })
                .collect(),
            members: members
                .into_iter()
                .map(|(u, r)| (u.nickname.unwrap_or_else(|| format!("用户 user {}", u.id)), r.words()))
                .collect(),
        },
    )
}

/// `POST /console/{mid}/staff/{sid}/approve`.
pub async fn approve(
    req: HttpRequest,
    WebSession(session): WebSession,
    path: web::Path<(i64, i64)>,
    body: web::Bytes,
    state: web::Data<State>,
) -> HttpResponse {
    staff_change(req, session, path.into_inner(), body, state, true).await
}

/// `POST /console/{mid}/staff/{sid}/remove`: they can no longer redeem (their past redemptions stay theirs).
pub async fn remove(
    req: HttpRequest,
    WebSession(session): WebSession,
    path: web::Path<(i64, i64)>,
    body: web::Bytes,
    state: web::Data<State>,
) -> HttpResponse {
    staff_change(req, session, path.into_inner(), body, state, false).await
}

async fn staff_change(
    req: HttpRequest,
    session: Option<auth::Session>,
    (mid, sid): (i64, i64),
    body: web::Bytes,
    state: web::Data<State>,
    approve: bool,
) -> HttpResponse {
    let m = or_page!(member(&req, &state, session, mid).await);
    if let Err(page) = form(&state, &m, &body) {
        return page;
    }
    let back = format!("/console/{mid}/staff");
    let (actor, now) = (m.user_id(), state.clock.now_ms());
    let changed = run(&state, &back, move |conn| {
        crate::db::write_transaction(conn, |conn| {
            let changed = if approve {
                repo::approve_staff(conn, mid, sid)?
            } else {
                repo::remove_staff(conn, mid, sid)?
            };
            if changed {
                let action = if approve { "approve_staff" } else { "remove_staff" };
                repo::audit(conn, action, mid, actor, &format!("staff {sid}"), None, now)?;
            }
            Ok(changed)
        })
    })
    .await;
    match changed {
        Ok(true) => done(&back, if approve { "approved" } else { "removed" }),
        Ok(false) => refused(
            AdminError::NotFound("no such staff member here (or already changed)"),
            &back,
        ),
        Err(page) => page,
    }
}

/// `POST /console/{mid}/invites {role, max_uses, hours, approval?}`: an invite QR (roles above staff: owners only).
pub async fn make_invite(
    req: HttpRequest,
    WebSession(session): WebSession,
    path: web::Path<i64>,
    body: web::Bytes,
    state: web::Data<State>,
) -> HttpResponse {
    let m = or_page!(member(&req, &state, session, path.into_inner()).await);
    let f = or_page!(form(&state, &m, &body));
    let mid = m.merchant.id;
    let back = format!("/console/{mid}/staff");
    let role = field(&f, "role").and_then(Role::parse).unwrap_or(Role::Staff);
    if role != Role::Staff
        && let Err(page) = m.owner_only("invite managers or owners")
    {
        return page;
    }
    let number = |name: &str, default: i64| field(&f, name).map_or(Some(default), |v| v.parse::<i64>().ok());
    let (Some(max_uses), Some(hours)) = (number("max_uses", 1), number("hours", 24)) else {
        return refused(
            AdminError::Invalid {
                field: "max_uses",
                message: "uses and hours are whole numbers".into(),
            },
            &back,
        );
    };
    let request = InviteRequest {
        role,
        max_uses,
        expires_in_secs: hours.saturating_mul(3600),
        needs_approval: field(&f, "approval").is_some(),
    };
    let (actor, now, base) = (m.user_id(), state.clock.now_ms(), state.public_base_url.clone());
    let made = crate::db::blocking(&state.db, move |conn| {
        Ok(service::make_invite(conn, mid, request, Some(actor), &base, now))
    })
    .await;
    answered(made, &back, "invited")
}

/// `POST /console/{mid}/invites/{iid}/revoke`: nobody can join with it any more.
pub async fn revoke(
    req: HttpRequest,
    WebSession(session): WebSession,
    path: web::Path<(i64, i64)>,
    body: web::Bytes,
    state: web::Data<State>,
) -> HttpResponse {
    let (mid, iid) = path.into_inner();
    let m = or_page!(member(&req, &state, session, mid).await);
    if let Err(page) = form(&state, &m, &body) {
        return page;
    }
    let back = format!("/console/{mid}/staff");
    let (actor, now) = (m.user_id(), state.clock.now_ms());
    let revoked = run(&state, &back, move |conn| {
        let done = repo::revoke_invite(conn, mid, iid, now)?;
        if done {
            repo::audit(conn, "revoke_invite", mid, actor, &format!("invite {iid}"), None, now)?;
        }
        Ok(done)
    })
    .await;
    match revoked {
        Ok(true) => done(&back, "revoked"),
        Ok(false) => refused(AdminError::NotFound("no such invite here (or already revoked)"), &back),
        Err(page) => page,
    }
}

/// `GET /console/{mid}/invites/{iid}/qr.png`: the invite's QR code, for the people who run this shop only.
pub async fn invite_qr(
    req: HttpRequest,
    WebSession(session): WebSession,
    path: web::Path<(i64, i64)>,
    state: web::Data<State>,
) -> HttpResponse {
    let (mid, iid) = path.into_inner();
    if let Err(page) = member(&req, &state, session, mid).await {
        return page;
    }
    match run(&state, "/console", move |conn| repo::invite_qr(conn, mid, iid)).await {
        Ok(Some(png)) => HttpResponse::Ok()
            .content_type("image/png")
            .insert_header(("Cache-Control", "private, no-store"))
            .body(png),
        Ok(None) => HttpResponse::NotFound().finish(),
        Err(page) => page,
    }
}

#[derive(Template)]
#[template(path = "join.html")]
struct JoinPage {
    title: &'static str,
    merchant: String,
    role: &'static str,
    role_words: &'static str,
    needs_approval: bool,
    token: String,
    csrf: String,
    name: String,
}

fn unusable_invite() -> HttpResponse {
    pages::error_page_with(
        StatusCode::GONE,
        "邀请已失效",
        "This invite is revoked, expired or used up: ask the shop's owner for a new one.",
        &[Action::home()],
    )
}

/// The person behind a join, logged in through the official account (staff need its openid), or where to log in.
async fn joiner(
    req: &HttpRequest,
    state: &State,
    session: Option<auth::Session>,
    token: &str,
) -> Result<(auth::Session, crate::features::auth::repo::User), HttpResponse> {
    let here = format!("/join/{token}");
    let Some(session) = session else {
        return Err(login_first(req, &here));
    };
    let user = state.sessions.user(session.user_id).await.map_err(|e| {
        tracing::error!(error = %e, "join: cannot read the user");
        pages::unavailable_page(&here)
    })?;
    Ok((session, user))
}

/// `GET /join/{token}`: who invites, as what; a button to join. Without a session, the login first (inside WeChat,
/// the official account's, which gives the openid the coupon pages see).
pub async fn join_page(
    req: HttpRequest,
    WebSession(session): WebSession,
    path: web::Path<String>,
    state: web::Data<State>,
) -> HttpResponse {
    let token = path.into_inner();
    let hash = crate::platform::crypto::sha256_hex(&token);
    let found = or_page!(run(&state, "/", move |conn| repo::invite_by_hash(conn, &hash)).await);
    let Some((invite, merchant)) = found.filter(|(i, _)| i.usable(state.clock.now_ms())) else {
        return unusable_invite();
    };
    let (session, user) = or_page!(joiner(&req, &state, session, &token).await);
    let role = Role::parse(&invite.role).unwrap_or(Role::Staff);
    if role == Role::Staff && user.openid.is_none() {
        // Logged in through the mini program or the website only: staff need the official account's openid.
        return crate::http::errors::found(&format!("/auth/wechat?return=/join/{token}"));
    }
    pages::render(
        StatusCode::OK,
        &JoinPage {
            title: "加入商户 · Join a shop",
            merchant: merchant.name,
            role: role.as_str(),
            role_words: role.words(),
            needs_approval: invite.needs_approval,
            csrf: auth::csrf_token(&state.keys, &session, "join"),
            name: user.nickname.clone().unwrap_or_default(),
            token,
        },
    )
}

/// `POST /join/{token} {csrf, name}`: joins (see [`service::join`]).
pub async fn join(
    req: HttpRequest,
    WebSession(session): WebSession,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<State>,
) -> HttpResponse {
    let token = path.into_inner();
    let (session, user) = or_page!(joiner(&req, &state, session, &token).await);
    let f: std::collections::HashMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    if !f
        .get("csrf")
        .is_some_and(|t| auth::csrf_ok(&state.keys, &session, "join", t))
    {
        return pages::error_page_with(
            StatusCode::FORBIDDEN,
            "页面已过期",
            "This form is stale: scan the invite again.",
            &[Action::new(format!("/join/{token}"), "重新打开 · Open again")],
        );
    }
    let name = field(&f, "name")
        .map(str::to_owned)
        .or_else(|| user.nickname.clone())
        .unwrap_or_else(|| "店员 Staff".into());
    if name.chars().count() > crate::features::merchants::service::STAFF_NAME_MAX {
        return pages::error_page(
            StatusCode::BAD_REQUEST,
            "名字太长",
            "The name is too long (64 characters at most).",
        );
    }
    let now = state.clock.now_ms();
    let joined = or_page!(
        run(&state, &format!("/join/{token}"), move |conn| {
            service::join(conn, &token, &user, &name, now)
        })
        .await
    );
    let (zh, en, next) = match joined {
        Joined::Staff {
            merchant,
            pending: true,
        } => (
            format!("已申请加入 {}", merchant.name),
            "You asked to join as staff: the owner approves you, then you can redeem by scanning customers' coupons."
                .to_owned(),
            Action::home(),
        ),
        Joined::Staff {
            merchant,
            pending: false,
        } => (
            format!("已加入 {}", merchant.name),
            "You are staff now: scan a customer's coupon code with WeChat to redeem it.".to_owned(),
            Action::home(),
        ),
        Joined::Member { merchant, role } => (
            format!("你已是 {} 的{}", merchant.name, role.words()),
            "Open the console to run the shop.".to_owned(),
            Action::new(format!("/console/{}", merchant.id), "进入后台 · Open the console"),
        ),
        Joined::AlreadyStaff(merchant) => (
            format!("你已是 {} 的店员", merchant.name),
            "You are already staff there: nothing changed.".to_owned(),
            Action::home(),
        ),
        Joined::Unusable => return unusable_invite(),
        Joined::NeedsOfficialAccount => {
            return crate::http::errors::found(&format!("/auth/wechat?return={}", req.uri().path()));
        }
    };
    pages::message_page(&zh, &en, &[next])
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminInvite {
    /// `owner` (default), `manager` or `staff`.
    role: Option<String>,
    /// Default 1.
    max_uses: Option<i64>,
    /// Default 7 days.
    expires_in_secs: Option<i64>,
    /// Staff only: joining waits for an owner's approval.
    needs_approval: Option<bool>,
}

/// `POST /api/v1/merchants/{id}/invites {role?, max_uses?, expires_in_secs?, needs_approval?}` (admin) → 201
/// `{id, url, qr_url, role, expires_at}`: the platform's way to give a merchant its first owner. The URL is shown
/// once; scanning it with WeChat runs the login and makes the scanner the merchant's owner.
pub async fn admin_invite(
    _admin: auth::AdminAuth,
    path: web::Path<i64>,
    body: crate::http::json::ApiJson<AdminInvite>,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let role = match body.role.as_deref() {
        None => Role::Owner,
        Some(r) => Role::parse(r)
            .ok_or_else(|| ApiError::bad_request("invalid_field", "role must be owner, manager or staff"))?,
    };
    let request = InviteRequest {
        role,
        max_uses: body.max_uses.unwrap_or(1),
        expires_in_secs: body.expires_in_secs.unwrap_or(7 * 86_400),
        needs_approval: body.needs_approval.unwrap_or(false),
    };
    let (mid, now, base) = (path.into_inner(), state.clock.now_ms(), state.public_base_url.clone());
    let made = crate::db::blocking(&state.db, move |conn| {
        Ok(service::make_invite(conn, mid, request, None, &base, now))
    })
    .await?
    .map_err(crate::features::merchants::routes_error)?;
    Ok(HttpResponse::Created().json(serde_json::json!({
        "id": made.id, "url": made.url, "role": role.as_str(), "merchant_id": mid,
        "expires_at": crate::platform::time::rfc3339(made.expires_at),
    })))
}

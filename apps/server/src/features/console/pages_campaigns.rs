//! The console's campaign, coupon, redemption and order pages.

use super::State;
use super::pages::{Frame, Member, answered, day_start, done, fen, field, form, member, refused, run};
use super::repo::{self, Role};
use super::service::{self, CampaignEdit};
use crate::features::merchants::repo::CampaignRow;
use crate::features::merchants::service::{self as merchants_service, EndRequest};
use crate::features::merchants::views::CampaignRequest;
use crate::features::pay::ending::{Actor, SoldChoice};
use crate::http::auth::WebSession;
use crate::http::pages::{self, Action};
use crate::platform::time::beijing_format;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

fn money(fen: Option<i64>) -> String {
    match fen {
        Some(f) => pages::money(u64::try_from(f).ok()),
        None => "—".into(),
    }
}

fn status_of(c: &CampaignRow, now: i64) -> (&'static str, &'static str) {
    if c.ended(now) {
        ("ended", "已提前结束 · ended early")
    } else if now < c.valid_from {
        ("scheduled", "未开始 · scheduled")
    } else if now <= c.valid_until {
        ("active", "进行中 · running")
    } else {
        ("over", "已过期 · over")
    }
}

/// A merchant's campaign, or the 404 page (another merchant's campaign is not found either).
async fn own_campaign(state: &State, m: &Member, cid: i64) -> Result<CampaignRow, HttpResponse> {
    let mid = m.merchant.id;
    let back = format!("/console/{mid}/campaigns");
    run(state, &back, move |conn| {
        crate::features::merchants::repo::campaign(conn, cid)
    })
    .await?
    .filter(|c| c.merchant_id == mid)
    .ok_or_else(|| {
        pages::error_page_with(
            StatusCode::NOT_FOUND,
            "没有这个活动",
            "No such campaign in this shop.",
            &[Action::new(back, "活动列表 · Campaigns")],
        )
    })
}

struct CampaignLine {
    id: i64,
    title: String,
    status: &'static str,
    issued: String,
    price: String,
    until: String,
}

#[derive(Template)]
#[template(path = "console_campaigns.html")]
struct CampaignsPage {
    frame: Frame,
    rows: Vec<CampaignLine>,
    today: String,
    in_a_month: String,
}

/// `GET /console/{mid}/campaigns`: the list and the form to create one.
pub async fn campaigns(
    req: HttpRequest,
    WebSession(session): WebSession,
    path: web::Path<i64>,
    state: web::Data<State>,
) -> HttpResponse {
    let m = or_page!(member(&req, &state, session, path.into_inner()).await);
    let mid = m.merchant.id;
    let rows = or_page!(
        run(&state, "/console", move |conn| {
            crate::features::merchants::repo::list_campaigns(conn, Some(mid))
        })
        .await
    );
    let now = state.clock.now_ms();
    pages::render(
        StatusCode::OK,
        &CampaignsPage {
            frame: m.frame(&state, "活动 · Campaigns", "campaigns", &req),
            rows: rows
                .iter()
                .rev()
                .map(|c| CampaignLine {
                    id: c.id,
                    title: c.title.clone(),
                    status: status_of(c, now).1,
                    issued: match c.quantity {
                        Some(q) => format!("{} / {q}", c.issued),
                        None => c.issued.to_string(),
                    },
                    price: c.price_fen.map_or_else(|| "免费 · free".into(), |p| money(Some(p))),
                    until: pages::beijing(c.valid_until),
                })
                .collect(),
            today: beijing_format(now, "%Y-%m-%d"),
            in_a_month: beijing_format(now + 30 * 86_400_000, "%Y-%m-%d"),
        },
    )
}

/// An optional money field: empty → `None`; not money → the field's error.
fn money_field(
    f: &std::collections::HashMap<String, String>,
    name: &'static str,
) -> Result<Option<i64>, merchants_service::AdminError> {
    field(f, name)
        .map(|v| {
            fen(v).ok_or(merchants_service::AdminError::Invalid {
                field: name,
                message: format!("is not an amount in yuan (like 18 or 9.90): {v:?}"),
            })
        })
        .transpose()
}

/// An optional whole-number field.
fn count_field(
    f: &std::collections::HashMap<String, String>,
    name: &'static str,
) -> Result<Option<i64>, merchants_service::AdminError> {
    field(f, name)
        .map(|v| {
            v.parse::<i64>().map_err(|_| merchants_service::AdminError::Invalid {
                field: name,
                message: format!("is not a whole number: {v:?}"),
            })
        })
        .transpose()
}

/// `POST /console/{mid}/campaigns`: creates a campaign of this merchant (the admin API's rules).
pub async fn create_campaign(
    req: HttpRequest,
    WebSession(session): WebSession,
    path: web::Path<i64>,
    body: web::Bytes,
    state: web::Data<State>,
) -> HttpResponse {
    let m = or_page!(member(&req, &state, session, path.into_inner()).await);
    let f = or_page!(form(&state, &m, &body));
    let back = format!("/console/{}/campaigns", m.merchant.id);
    let request = (|| {
        Ok::<_, merchants_service::AdminError>(CampaignRequest {
            merchant_id: m.merchant.id,
            title: field(&f, "title").unwrap_or_default().to_owned(),
            description: field(&f, "description").map(str::to_owned),
            value_fen: money_field(&f, "value")?,
            valid_from: field(&f, "valid_from").map(|d| format!("{d}T00:00:00+08:00")),
            valid_until: field(&f, "valid_until").map(|d| format!("{d}T23:59:59+08:00")),
            quantity: count_field(&f, "quantity")?,
            per_user_limit: count_field(&f, "per_user_limit")?,
            wechat_card_id: None,
            price_fen: money_field(&f, "price")?,
        })
    })();
    let now = state.clock.now_ms();
    let new = match request.and_then(|r| r.validate(now)) {
        Ok(n) => n,
        Err(e) => return refused(e, &back),
    };
    let (mid, actor) = (m.merchant.id, m.user_id());
    let created = run(&state, &back, move |conn| {
        let c = crate::features::merchants::repo::create_campaign(conn, &new, now)?;
        repo::audit(
            conn,
            "create_campaign",
            mid,
            actor,
            &format!("campaign {}: {}", c.id, c.title),
            None,
            now,
        )?;
        Ok(c)
    })
    .await;
    match created {
        Ok(c) => done(&format!("/console/{mid}/campaigns/{}", c.id), "created"),
        Err(page) => page,
    }
}

#[derive(Template)]
#[template(path = "console_campaign.html")]
struct CampaignPage {
    frame: Frame,
    c: CampaignRow,
    status: &'static str,
    status_words: &'static str,
    value: String,
    price: String,
    from: String,
    until: String,
    tz: &'static str,
    ended: Option<String>,
    buy_url: Option<String>,
    running: bool,
    customers: Vec<(String, String)>,
    issued: Vec<(String, String)>,
    /// The 商家券 stock behind the campaign.
    stock: Option<String>,
    /// WeChat Pay 商家券 is on for this merchant: the owner may back the campaign with a stock.
    can_add_stock: bool,
    price_input: String,
    quantity_input: String,
    limit_input: String,
    until_input: String,
}

async fn campaign_page(
    req: &HttpRequest,
    state: &State,
    m: &Member,
    c: CampaignRow,
    issued: Vec<(String, String)>,
) -> HttpResponse {
    let now = state.clock.now_ms();
    let (status, status_words) = status_of(&c, now);
    let mid = m.merchant.id;
    let customers = or_page!(run(state, "/console", move |conn| repo::customers(conn, mid)).await);
    let cid = c.id;
    let stock = or_page!(
        run(state, "/console", move |conn| {
            crate::features::coupons::busifavor::stock_of(conn, cid)
        })
        .await
    );
    let base = state.public_base_url.trim_end_matches('/').to_owned();
    pages::render(
        StatusCode::OK,
        &CampaignPage {
            frame: m.frame(state, "活动 · Campaign", "campaigns", req),
            status,
            status_words,
            value: money(c.value_fen),
            price: c.price_fen.map_or_else(|| "免费 · free".into(), |p| money(Some(p))),
            from: pages::beijing(c.valid_from),
            until: pages::beijing(c.valid_until),
            tz: pages::TZ_LABEL,
            ended: c.ended_at.map(pages::beijing),
            buy_url: c.price_fen.map(|_| format!("{base}/c/buy/{}", c.id)),
            running: c.ended_at.is_none() && now <= c.valid_until,
            can_add_stock: state.busifavor.is_some() && stock.is_none() && m.role != Role::Staff,
            stock,
            customers,
            issued,
            price_input: c
                .price_fen
                .map(|p| format!("{}.{:02}", p / 100, p % 100))
                .unwrap_or_default(),
            quantity_input: c.quantity.map(|q| q.to_string()).unwrap_or_default(),
            limit_input: c.per_user_limit.map(|q| q.to_string()).unwrap_or_default(),
            until_input: beijing_format(c.valid_until, "%Y-%m-%d"),
            c,
        },
    )
}

/// `GET /console/{mid}/campaigns/{cid}`: details, issuing, editing, ending.
pub async fn campaign(
    req: HttpRequest,
    WebSession(session): WebSession,
    path: web::Path<(i64, i64)>,
    state: web::Data<State>,
) -> HttpResponse {
    let (mid, cid) = path.into_inner();
    let m = or_page!(member(&req, &state, session, mid).await);
    match own_campaign(&state, &m, cid).await {
        Ok(c) => campaign_page(&req, &state, &m, c, Vec::new()).await,
        Err(page) => page,
    }
}

/// `POST /console/{mid}/campaigns/{cid}/edit`: what can safely change (see [`service::edit_campaign`]).
pub async fn edit_campaign(
    req: HttpRequest,
    WebSession(session): WebSession,
    path: web::Path<(i64, i64)>,
    body: web::Bytes,
    state: web::Data<State>,
) -> HttpResponse {
    let (mid, cid) = path.into_inner();
    let m = or_page!(member(&req, &state, session, mid).await);
    let f = or_page!(form(&state, &m, &body));
    let back = format!("/console/{mid}/campaigns/{cid}");
    let edit = (|| {
        Ok::<_, merchants_service::AdminError>(CampaignEdit {
            title: f.get("title").cloned(),
            description: f.get("description").cloned(),
            quantity: Some(count_field(&f, "quantity")?),
            per_user_limit: Some(count_field(&f, "per_user_limit")?),
            valid_until: match field(&f, "valid_until") {
                Some(d) => Some(day_start(d).map(|t| t + 86_400_000 - 1).ok_or(
                    merchants_service::AdminError::Invalid {
                        field: "valid_until",
                        message: "is not a date".into(),
                    },
                )?),
                None => None,
            },
            price_fen: Some(money_field(&f, "price")?),
        })
    })();
    let edit = match edit {
        Ok(e) => e,
        Err(e) => return refused(e, &back),
    };
    let (actor, now) = (m.user_id(), state.clock.now_ms());
    let db = state.db.clone();
    let result = crate::db::blocking(&db, move |conn| {
        Ok(service::edit_campaign(conn, mid, cid, &edit, actor, now))
    })
    .await;
    answered(result, &back, "saved")
}

/// `POST /console/{mid}/campaigns/{cid}/issue {customer?, count}`: coupons to a customer (picked by name) or as
/// links; the page lists what was issued.
pub async fn issue(
    req: HttpRequest,
    WebSession(session): WebSession,
    path: web::Path<(i64, i64)>,
    body: web::Bytes,
    state: web::Data<State>,
) -> HttpResponse {
    let (mid, cid) = path.into_inner();
    let m = or_page!(member(&req, &state, session, mid).await);
    let f = or_page!(form(&state, &m, &body));
    let back = format!("/console/{mid}/campaigns/{cid}");
    if let Err(page) = own_campaign(&state, &m, cid).await {
        return page;
    }
    let count = match count_field(&f, "count") {
        Ok(n) => n.unwrap_or(1),
        Err(e) => return refused(e, &back),
    };
    if !(1..=50).contains(&count) {
        return refused(
            merchants_service::AdminError::Invalid {
                field: "count",
                message: "must be 1 to 50 at a time".into(),
            },
            &back,
        );
    }
    let owner = field(&f, "customer").map(str::to_owned);
    // A customer is picked from the merchant's own list, never typed: anything else is refused.
    let (actor, now) = (m.user_id(), state.clock.now_ms());
    let issued = crate::db::blocking(&state.db, move |conn| {
        if let Some(o) = &owner
            && !repo::customers(conn, mid)?.iter().any(|(x, _)| x == o)
        {
            return Ok(Err(merchants_service::AdminError::NotFound(
                "no such customer of this shop",
            )));
        }
        let mut codes = Vec::new();
        for _ in 0..count {
            match merchants_service::issue_coupon(conn, cid, owner.as_deref(), now) {
                Ok((c, _)) => codes.push(c.code),
                Err(e) if codes.is_empty() => return Ok(Err(e)),
                Err(_) => break,
            }
        }
        repo::audit(
            conn,
            "issue",
            mid,
            actor,
            &format!("campaign {cid}: {} coupons", codes.len()),
            None,
            now,
        )?;
        Ok(Ok(codes))
    })
    .await;
    let codes = match issued {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return refused(e, &back),
        Err(e) => return refused(e.into(), &back),
    };
    let Ok(c) = own_campaign(&state, &m, cid).await else {
        return pages::unavailable_page(&back);
    };
    let base = state.public_base_url.trim_end_matches('/').to_owned();
    let issued = codes
        .into_iter()
        .map(|code| (format!("{base}/c/{code}"), code))
        .collect();
    campaign_page(&req, &state, &m, c, issued).await
}

#[derive(Template)]
#[template(path = "console_confirm.html")]
pub(super) struct ConfirmPage {
    pub frame: Frame,
    pub heading: String,
    pub facts: Vec<String>,
    pub action: String,
    pub hidden: Vec<(&'static str, String)>,
    pub choice_name: &'static str,
    pub choices: Vec<(&'static str, String)>,
    pub with_reason: bool,
    pub button: &'static str,
    pub back: String,
}

/// `GET /console/{mid}/campaigns/{cid}/end`: what ending touches — sold unused coupons and their money, coupons
/// given away, open orders — and the choice for sold coupons (refunding is an owner's).
pub async fn end_preview(
    req: HttpRequest,
    WebSession(session): WebSession,
    path: web::Path<(i64, i64)>,
    state: web::Data<State>,
) -> HttpResponse {
    let (mid, cid) = path.into_inner();
    let m = or_page!(member(&req, &state, session, mid).await);
    let back = format!("/console/{mid}/campaigns/{cid}");
    if let Err(page) = own_campaign(&state, &m, cid).await {
        return page;
    }
    let plan = match run(&state, &back, move |conn| crate::features::pay::ending::plan(conn, cid)).await {
        Ok(Some((_, p))) => p,
        Ok(None) => return pages::error_page(StatusCode::NOT_FOUND, "没有这个活动", "No such campaign."),
        Err(page) => return page,
    };
    let Ok(c) = own_campaign(&state, &m, cid).await else {
        return pages::unavailable_page(&back);
    };
    let amount = money(Some(plan.sold_amount_fen));
    let mut choices = vec![(
        "keep",
        format!(
            "保留：已售、已发的券照常使用到 {} · Keep: coupons out stay usable until then",
            pages::beijing(c.valid_until)
        ),
    )];
    if m.role == Role::Owner || plan.sold_unused == 0 {
        choices.push((
            "refund",
            format!(
                "退款：{} 张已售未用的券全额退款（共 {amount}），{} 张赠送的券作废 · Refund: {} sold coupons refunded ({amount}), {} given away voided",
                plan.sold_unused, plan.unsold_unused, plan.sold_unused, plan.unsold_unused
            ),
        ));
    }
    if plan.sold_unused > 0 && m.role != Role::Owner {
        // A manager may end and keep; refunding money is the owner's.
        choices.retain(|(k, _)| *k == "keep");
    }
    pages::render(
        StatusCode::OK,
        &ConfirmPage {
            frame: m.frame(&state, "结束活动 · End campaign", "campaigns", &req),
            heading: format!("结束「{}」· End “{}”", c.title, c.title),
            facts: vec![
                format!("已售未用 · Sold, unused: {} 张, {amount}", plan.sold_unused),
                format!("赠送未用 · Given away, unused: {} 张", plan.unsold_unused),
                format!("未付款订单 · Open orders: {}（将在微信关闭 · closed at WeChat）", plan.open_orders),
                "结束后不能再发券或售卖，顾客的券页会写明「活动已提前结束」。· No more issuing or selling; customers' pages say it ended early.".into(),
            ],
            action: format!("/console/{mid}/campaigns/{cid}/end"),
            hidden: Vec::new(),
            choice_name: "sold",
            choices,
            with_reason: true,
            button: "结束活动 · End campaign",
            back,
        },
    )
}

/// `POST /console/{mid}/campaigns/{cid}/end {sold, reason?}`: ends it (see [`merchants_service::end_campaign`]);
/// refunds are sent right after the commit.
pub async fn end_campaign(
    req: HttpRequest,
    WebSession(session): WebSession,
    path: web::Path<(i64, i64)>,
    body: web::Bytes,
    state: web::Data<State>,
) -> HttpResponse {
    let (mid, cid) = path.into_inner();
    let m = or_page!(member(&req, &state, session, mid).await);
    let f = or_page!(form(&state, &m, &body));
    let back = format!("/console/{mid}/campaigns/{cid}");
    if let Err(page) = own_campaign(&state, &m, cid).await {
        return page;
    }
    let request = match EndRequest::parse(field(&f, "reason").map(str::to_owned), field(&f, "sold"), false) {
        Ok(r) => r,
        Err(e) => return refused(e, &back),
    };
    let Some(choice) = request.sold else {
        return refused(
            merchants_service::AdminError::Invalid {
                field: "sold",
                message: "choose keep or refund".into(),
            },
            &back,
        );
    };
    let (actor, now, role) = (m.user_id(), state.clock.now_ms(), m.role);
    let result = crate::db::blocking(&state.db, move |conn| {
        if choice == SoldChoice::Refund && role != Role::Owner {
            let plan = crate::features::pay::ending::plan(conn, cid)?;
            if plan.is_some_and(|(_, p)| p.sold_unused > 0) {
                return Ok(Err(merchants_service::AdminError::Conflict {
                    code: "owner_only",
                    message: "only an owner can refund: end with keep, or ask the owner".into(),
                }));
            }
        }
        let actor = Actor {
            channel: "console",
            user_id: Some(actor),
        };
        Ok(merchants_service::end_campaign(conn, cid, &request, actor, now))
    })
    .await;
    match result {
        Ok(Ok(out)) => {
            if out.refunds > 0 {
                crate::features::pay::ending::kick(
                    state.db.clone(),
                    state.payers.clone(),
                    state.clock.clone(),
                    state.public_base_url.clone(),
                );
            }
            done(&back, "ended")
        }
        Ok(Err(e)) => refused(e, &back),
        Err(e) => refused(e.into(), &back),
    }
}

pub(super) use super::pages_money::{coupons, orders, redemptions, redemptions_csv, refund, refund_preview, void};

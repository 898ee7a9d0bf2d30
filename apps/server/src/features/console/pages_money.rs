//! The console's coupon search and void, the redemption log and its CSV, orders and refunds.

use super::State;
use super::pages::{Frame, Member, day_start, done, field, form, member, refused, run};
use super::pages_campaigns::ConfirmPage;
use super::repo;
use crate::features::coupons::admin::{self as coupons_admin, LogFilter};
use crate::features::merchants::service::AdminError;
use crate::features::pay::repo::{OrderFilter, OrderLine};
use crate::http::auth::WebSession;
use crate::http::pages;
use crate::platform::time::beijing_format;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use std::collections::HashMap;

fn money(fen: Option<i64>) -> String {
    match fen {
        Some(f) => pages::money(u64::try_from(f).ok()),
        None => "—".into(),
    }
}

fn query(req: &HttpRequest) -> HashMap<String, String> {
    web::Query::<HashMap<String, String>>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .unwrap_or_default()
}

struct CouponLine {
    code: String,
    grouped: String,
    campaign: String,
    status: &'static str,
    holder: String,
    voidable: bool,
}

#[derive(Template)]
#[template(path = "console_coupons.html")]
struct CouponsPage {
    frame: Frame,
    q: String,
    searched: bool,
    rows: Vec<CouponLine>,
}

/// `GET /console/{mid}/coupons?q=`: this shop's coupons whose code ends with what the customer reads out.
pub async fn coupons(
    req: HttpRequest,
    WebSession(session): WebSession,
    path: web::Path<i64>,
    state: web::Data<State>,
) -> HttpResponse {
    let m = or_page!(member(&req, &state, session, path.into_inner()).await);
    let q: String = query(&req)
        .get("q")
        .map(|s| {
            s.chars()
                .filter(char::is_ascii_alphanumeric)
                .map(|c| c.to_ascii_uppercase())
                .collect()
        })
        .unwrap_or_default();
    let mid = m.merchant.id;
    let now = state.clock.now_ms();
    let rows = if q.len() >= 4 {
        let tail = q.clone();
        match run(&state, "/console", move |conn| {
            repo::coupons_ending_with(conn, mid, &tail, 50)
        })
        .await
        {
            Ok(r) => r,
            Err(page) => return page,
        }
    } else {
        Vec::new()
    };
    let rows = rows
        .into_iter()
        .filter_map(|(c, k)| {
            let (coupon, campaign) = (c.to_domain()?, k.to_domain());
            let view = pages::CouponView::new(&coupon, &campaign, now);
            Some(CouponLine {
                grouped: coupon.code.grouped(),
                code: c.code.clone(),
                campaign: k.title.clone(),
                status: view.status_zh,
                holder: c.owner_openid.clone().map_or_else(
                    || "持链接者 · link holder".into(),
                    |o| {
                        let tail: String = o.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
                        format!("…{tail}")
                    },
                ),
                voidable: c.status == "issued",
            })
        })
        .collect();
    pages::render(
        StatusCode::OK,
        &CouponsPage {
            frame: m.frame(&state, "查券 · Coupons", "coupons", &req),
            searched: q.len() >= 4,
            q,
            rows,
        },
    )
}

/// `POST /console/{mid}/coupons/{code}/void {reason}`: voids this shop's unredeemed coupon (audited with the reason
/// and the person).
pub async fn void(
    req: HttpRequest,
    WebSession(session): WebSession,
    path: web::Path<(i64, String)>,
    body: web::Bytes,
    state: web::Data<State>,
) -> HttpResponse {
    let (mid, code) = path.into_inner();
    let m = or_page!(member(&req, &state, session, mid).await);
    let f = or_page!(form(&state, &m, &body));
    let back = format!("/console/{mid}/coupons");
    let Some(reason) = field(&f, "reason").map(str::to_owned) else {
        return refused(
            AdminError::Invalid {
                field: "reason",
                message: "is required (it is kept in the audit log)".into(),
            },
            &back,
        );
    };
    if reason.chars().count() > coupons_admin::REASON_MAX {
        return refused(
            AdminError::Invalid {
                field: "reason",
                message: format!("must be at most {} characters", coupons_admin::REASON_MAX),
            },
            &back,
        );
    }
    let (actor, now) = (m.user_id(), state.clock.now_ms());
    let result = run(&state, &back, move |conn| {
        // Only this shop's coupon: another shop's is "not found", and nothing changes.
        let Some((coupon, campaign)) = coupons_admin::coupon(conn, &code)? else {
            return Ok(Err(AdminError::NotFound("no such coupon")));
        };
        if campaign.merchant_id != mid {
            return Ok(Err(AdminError::NotFound("no such coupon")));
        }
        Ok(match coupons_admin::void(conn, &code, &reason, now)? {
            coupons_admin::VoidOutcome::Voided(..) => {
                repo::audit(conn, "void", mid, actor, &reason, Some((coupon.id, &coupon.code)), now)?;
                Ok(())
            }
            coupons_admin::VoidOutcome::AlreadyVoid(..) => Ok(()),
            coupons_admin::VoidOutcome::Redeemed(..) => Err(AdminError::Conflict {
                code: "redeemed",
                message: "the coupon was redeemed: it cannot be voided".into(),
            }),
            coupons_admin::VoidOutcome::NotFound => Err(AdminError::NotFound("no such coupon")),
        })
    })
    .await;
    match result {
        Ok(Ok(())) => done(&back, "voided"),
        Ok(Err(e)) => refused(e, &back),
        Err(page) => page,
    }
}

#[derive(Template)]
#[template(path = "console_redemptions.html")]
struct RedemptionsPage {
    frame: Frame,
    from: String,
    to: String,
    campaigns: Vec<(i64, String, bool)>,
    csv_href: String,
    rows: Vec<(String, String, String, String, String, String)>,
    more: bool,
}

/// The log filter of a console page's query: this merchant, `from`/`to` Beijing days, `campaign`.
fn log_filter(mid: i64, q: &HashMap<String, String>) -> LogFilter {
    let get = |k: &str| q.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    LogFilter {
        merchant_id: Some(mid),
        campaign_id: get("campaign").and_then(|c| c.parse().ok()),
        since: get("from").and_then(day_start),
        until: get("to").and_then(day_start).map(|t| t + 86_400_000),
    }
}

/// `GET /console/{mid}/redemptions?from=&to=&campaign=`: the latest 200, and the CSV link with the same filters.
pub async fn redemptions(
    req: HttpRequest,
    WebSession(session): WebSession,
    path: web::Path<i64>,
    state: web::Data<State>,
) -> HttpResponse {
    let m = or_page!(member(&req, &state, session, path.into_inner()).await);
    let mid = m.merchant.id;
    let q = query(&req);
    let filter = log_filter(mid, &q);
    let chosen = filter.campaign_id;
    let found = run(&state, "/console", move |conn| {
        Ok((
            coupons_admin::redemption_log(conn, &filter, None, 201)?,
            crate::features::merchants::repo::list_campaigns(conn, Some(mid))?,
        ))
    })
    .await;
    let (rows, campaigns) = or_page!(found);
    let csv_query: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(
            ["from", "to", "campaign"]
                .iter()
                .filter_map(|k| q.get(*k).filter(|v| !v.is_empty()).map(|v| (*k, v.as_str()))),
        )
        .finish();
    pages::render(
        StatusCode::OK,
        &RedemptionsPage {
            frame: m.frame(&state, "核销记录 · Redemptions", "redemptions", &req),
            from: q.get("from").cloned().unwrap_or_default(),
            to: q.get("to").cloned().unwrap_or_default(),
            campaigns: campaigns
                .into_iter()
                .map(|c| (c.id, c.title, Some(c.id) == chosen))
                .collect(),
            csv_href: format!("/console/{mid}/redemptions.csv?{csv_query}"),
            more: rows.len() > 200,
            rows: rows
                .iter()
                .take(200)
                .map(|r| {
                    (
                        beijing_format(r.at, "%Y-%m-%d %H:%M"),
                        r.coupon_code
                            .chars()
                            .skip(r.coupon_code.len().saturating_sub(4))
                            .collect(),
                        r.campaign_title.clone(),
                        r.staff_name.clone().unwrap_or_else(|| "—".into()),
                        r.channel.clone(),
                        money(r.paid_fen()),
                    )
                })
                .collect(),
        },
    )
}

/// `GET /console/{mid}/redemptions.csv?from=&to=&campaign=`: the same filters as the page, as the export CSV (UTF-8
/// BOM, quoted, month-end columns).
pub async fn redemptions_csv(
    req: HttpRequest,
    WebSession(session): WebSession,
    path: web::Path<i64>,
    state: web::Data<State>,
) -> HttpResponse {
    let m = or_page!(member(&req, &state, session, path.into_inner()).await);
    let filter = log_filter(m.merchant.id, &query(&req));
    let rows = or_page!(
        run(&state, "/console", move |conn| {
            coupons_admin::redemption_log(conn, &filter, None, coupons_admin::CSV_MAX_ROWS)
        })
        .await
    );
    let mut out = coupons_admin::CSV_HEADER.as_bytes().to_vec();
    if let Err(e) = coupons_admin::write_csv(&mut out, &rows) {
        tracing::error!(error = %e, "console: CSV");
        return pages::unavailable_page("/console");
    }
    let day = beijing_format(state.clock.now_ms(), "%Y%m%d");
    HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"redemptions-{}-{day}.csv\"", m.merchant.id),
        ))
        .insert_header(("Cache-Control", "no-store"))
        .body(out)
}

struct OrderRow {
    no: String,
    at: String,
    campaign: String,
    amount: String,
    status: &'static str,
    status_words: &'static str,
    refunded: String,
    refundable: bool,
}

#[derive(Template)]
#[template(path = "console_orders.html")]
struct OrdersPage {
    frame: Frame,
    statuses: Vec<(&'static str, &'static str, bool)>,
    rows: Vec<OrderRow>,
    /// The latest daily reconciliations of the WeChat Pay account (owners only): date, clean, differences, lines.
    reconciliations: Vec<(String, bool, usize, i64)>,
}

fn status_words(s: &str) -> &'static str {
    match s {
        "created" => "待付款 · unpaid",
        "paid" => "已付款 · paid",
        "refunded" => "已退款 · refunded",
        "partially_refunded" => "部分退款 · partly refunded",
        "closed" => "已关闭 · closed",
        _ => "—",
    }
}

/// `GET /console/{mid}/orders?status=`: the orders buying this shop's coupons, newest first (200).
pub async fn orders(
    req: HttpRequest,
    WebSession(session): WebSession,
    path: web::Path<i64>,
    state: web::Data<State>,
) -> HttpResponse {
    let m = or_page!(member(&req, &state, session, path.into_inner()).await);
    let status = query(&req)
        .get("status")
        .filter(|s| crate::features::pay::repo::ORDER_STATUSES.contains(&s.as_str()))
        .cloned();
    let filter = OrderFilter {
        merchant_id: Some(m.merchant.id),
        status: status.clone(),
        ..OrderFilter::default()
    };
    let owner = m.role == super::repo::Role::Owner;
    let found = run(&state, "/console", move |conn| {
        Ok((
            crate::features::pay::repo::orders_page(conn, &filter, None, 200)?,
            if owner {
                crate::features::pay::service::reconciliations(conn, 7)?
            } else {
                Vec::new()
            },
        ))
    })
    .await;
    let (rows, reconciliations) = or_page!(found);
    pages::render(
        StatusCode::OK,
        &OrdersPage {
            frame: m.frame(&state, "订单 · Orders", "orders", &req),
            statuses: crate::features::pay::repo::ORDER_STATUSES
                .iter()
                .map(|s| (*s, status_words(s), status.as_deref() == Some(*s)))
                .collect(),
            rows: rows
                .iter()
                .map(|o: &OrderLine| OrderRow {
                    no: o.order.out_trade_no.clone(),
                    at: beijing_format(o.order.created_at, "%Y-%m-%d %H:%M"),
                    campaign: o.campaign_title.clone().unwrap_or_default(),
                    amount: money(Some(o.order.total_fee)),
                    status: o.shown_status(),
                    status_words: status_words(o.shown_status()),
                    refunded: if o.refunded_fen + o.refunding_fen > 0 {
                        format!(
                            "{}{}",
                            money(Some(o.refunded_fen)),
                            if o.refunding_fen > 0 {
                                " (+ 处理中 pending)"
                            } else {
                                ""
                            }
                        )
                    } else {
                        String::new()
                    },
                    refundable: owner
                        && o.order.status == crate::db::OrderStatus::Paid
                        && o.refunded_fen + o.refunding_fen < o.order.total_fee,
                })
                .collect(),
            reconciliations,
        },
    )
}

/// This shop's order, with what is left to refund.
async fn own_order(state: &State, m: &Member, no: String) -> Result<OrderLine, HttpResponse> {
    let mid = m.merchant.id;
    let back = format!("/console/{mid}/orders");
    let found = run(state, &back, move |conn| {
        Ok(crate::features::pay::repo::orders_page(
            conn,
            &OrderFilter {
                merchant_id: Some(mid),
                out_trade_no: Some(no.clone()),
                ..OrderFilter::default()
            },
            None,
            1,
        )?
        .into_iter()
        .find(|o| o.order.out_trade_no == no))
    })
    .await?;
    found.ok_or_else(|| {
        pages::error_page_with(
            StatusCode::NOT_FOUND,
            "没有这个订单",
            "No such order of this shop.",
            &[pages::Action::new(back, "订单 · Orders")],
        )
    })
}

/// `GET /console/{mid}/orders/{no}/refund`: the order, what is left to refund, the bought coupon's fate; an
/// owner confirms.
pub async fn refund_preview(
    req: HttpRequest,
    WebSession(session): WebSession,
    path: web::Path<(i64, String)>,
    state: web::Data<State>,
) -> HttpResponse {
    let (mid, no) = path.into_inner();
    let m = or_page!(member(&req, &state, session, mid).await);
    if let Err(page) = m.owner_only("refund") {
        return page;
    }
    let o = or_page!(own_order(&state, &m, no).await);
    let left = o.order.total_fee - o.refunded_fen - o.refunding_fen;
    pages::render(
        StatusCode::OK,
        &ConfirmPage {
            frame: m.frame(&state, "退款 · Refund", "orders", &req),
            heading: format!("退款 {} · Refund {}", money(Some(left)), money(Some(left))),
            facts: vec![
                format!("订单 · Order {} — {}", o.order.out_trade_no, o.campaign_title.clone().unwrap_or_default()),
                format!("实付 · Paid {} · 已退 · refunded {}", money(Some(o.order.total_fee)), money(Some(o.refunded_fen + o.refunding_fen))),
                "退款后这张券作废；已核销的券不能退款。· The bought coupon is voided; a redeemed one cannot be refunded.".into(),
            ],
            action: format!("/console/{mid}/orders/{}/refund", o.order.out_trade_no),
            hidden: vec![("amount", left.to_string())],
            choice_name: "confirm",
            choices: Vec::new(),
            with_reason: true,
            button: "确认退款 · Refund",
            back: format!("/console/{mid}/orders"),
        },
    )
}

/// `POST /console/{mid}/orders/{no}/refund {amount, reason?}`: an owner refunds this shop's paid order (the
/// payment use case: recorded first, never more than paid, the coupon voided with it).
pub async fn refund(
    req: HttpRequest,
    WebSession(session): WebSession,
    path: web::Path<(i64, String)>,
    body: web::Bytes,
    state: web::Data<State>,
    pay: web::Data<crate::features::pay::State>,
) -> HttpResponse {
    let (mid, no) = path.into_inner();
    let m = or_page!(member(&req, &state, session, mid).await);
    let f = or_page!(form(&state, &m, &body));
    if let Err(page) = m.owner_only("refund") {
        return page;
    }
    let back = format!("/console/{mid}/orders");
    let o = or_page!(own_order(&state, &m, no).await);
    let Some(amount) = field(&f, "amount").and_then(|a| a.parse::<i64>().ok()) else {
        return refused(
            AdminError::Invalid {
                field: "amount",
                message: "is missing".into(),
            },
            &back,
        );
    };
    let reason = field(&f, "reason").map(str::to_owned);
    let done_refund = crate::features::pay::service::refund(
        &pay,
        crate::features::pay::service::RefundRequest {
            out_trade_no: &o.order.out_trade_no,
            refund_fee: amount,
            reason: reason.as_deref(),
            force: false,
        },
    )
    .await;
    match done_refund {
        Ok(r) => {
            let (actor, now, no) = (m.user_id(), state.clock.now_ms(), o.order.out_trade_no.clone());
            let detail = format!("order {no}: refund {} fen ({})", amount, r.out_refund_no);
            if let Err(page) = run(&state, &back, move |conn| {
                repo::audit(conn, "refund", mid, actor, &detail, None, now)
            })
            .await
            {
                return page;
            }
            done(&back, "refunded")
        }
        Err(e) => pages::error_page_with(
            StatusCode::CONFLICT,
            "没有退款",
            &format!("The refund was not made: {e}"),
            &[pages::Action::new(back, "订单 · Orders")],
        ),
    }
}

//! The payment use cases: placing an order (stored before WeChat hears of it, so a notify can never find it
//! missing; closed here when WeChat refuses it), closing one, and refunding (recorded first — never more than was
//! paid, however many refunds run at once — then asked of WeChat through the order's appid).

use super::State;
use super::gateway::{Gateway, NewPayment};
use super::repo::{self, NewOrder, PlaceRefused, RefundRefused};
use crate::db::{self, DbError};
use wechat_pay::JsapiPayParams;

/// Why a payment use case refused.
#[derive(Debug, thiserror::Error)]
pub enum PayError {
    /// No merchant (or none for the order's appid).
    #[error("{0}")]
    NotConfigured(String),
    /// A mini-program buyer, but no mini program with the merchant.
    #[error("paying inside the mini program needs miniprogram.app_id with the merchant")]
    MiniProgramNotConfigured,
    /// A field breaks its rule: a stable code and the sentence.
    #[error("{message}")]
    Invalid {
        /// `invalid_field`, `missing_field`.
        code: &'static str,
        /// What is wrong.
        message: String,
    },
    /// Something named does not exist.
    #[error("{0}")]
    NotFound(&'static str),
    /// The order or campaign is not in a state that allows it.
    #[error("{message}")]
    Conflict {
        /// `not_for_sale`, `price_changed`, `sold_out`, `limit_reached`, `campaign_ended`, `not_paid`,
        /// `over_refund`, `coupon_redeemed`, `not_open`, `too_soon`.
        code: &'static str,
        /// What to do.
        message: String,
        /// Seconds until it may work (`too_soon`).
        retry_after: Option<u64>,
    },
    /// The buyer is over a limit on orders (`too_many_orders`, `too_many_open_orders`): answered 429.
    #[error("{message}")]
    TooMany {
        /// The stable code.
        code: &'static str,
        /// What to do.
        message: String,
        /// Seconds until it may work.
        retry_after: u64,
    },
    /// WeChat Pay refused or failed.
    #[error(transparent)]
    Wechat(#[from] wechat_pay::Error),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

fn conflict(code: &'static str, message: impl Into<String>) -> PayError {
    PayError::Conflict {
        code,
        message: message.into(),
        retry_after: None,
    }
}

fn invalid(message: impl Into<String>) -> PayError {
    PayError::Invalid {
        code: "invalid_field",
        message: message.into(),
    }
}

pub use super::repo::{ORDER_STATUSES, OrderFilter, OrderLine};

/// Orders as the lists show them, newest first, before id `before`, at most `n`.
pub fn order_lines(
    conn: &mut db::DbConnection,
    filter: &OrderFilter,
    before: Option<i64>,
    n: i64,
) -> Result<Vec<OrderLine>, DbError> {
    repo::orders_page(conn, filter, before, n)
}

/// The latest daily reconciliation reports (date, clean, differences, bill lines), newest first.
pub fn reconciliations(conn: &mut db::DbConnection, n: i64) -> Result<Vec<(String, bool, usize, i64)>, DbError> {
    super::bills::latest(conn, n)
}

/// The newest orders (with `status`), for operators.
pub fn orders(conn: &mut db::DbConnection, status: Option<&str>, limit: i64) -> Result<Vec<repo::Order>, DbError> {
    repo::list(conn, status, limit)
}

/// The merchant's client for the official account.
pub fn gateway(state: &State) -> Result<&Gateway, PayError> {
    state
        .pay
        .as_ref()
        .ok_or_else(|| PayError::NotConfigured("WeChat Pay is not configured: set pay.mch_id and pay.key".into()))
}

/// The client for the appid `order` was placed with.
pub fn payer<'a>(state: &'a State, order: &repo::Order) -> Result<&'a Gateway, PayError> {
    state
        .payers
        .as_ref()
        .and_then(|p| p.for_appid(order.appid.as_deref()))
        .ok_or_else(|| {
            PayError::NotConfigured(format!(
                "WeChat Pay is not configured for appid {}",
                order.appid.as_deref().unwrap_or("(the official account's)")
            ))
        })
}

/// What a buyer asks for.
#[derive(Debug)]
pub struct OrderRequest {
    /// What is bought (a campaign's title by default).
    pub description: Option<String>,
    /// Fen; required without a campaign, and must agree with a campaign's price.
    pub total_fee: Option<i64>,
    /// `JSAPI` or `NATIVE`.
    pub trade_type: String,
    /// A campaign whose coupon is bought.
    pub campaign_id: Option<i64>,
}

/// Who buys.
#[derive(Debug)]
pub struct Buyer<'a> {
    /// Our user.
    pub user_id: i64,
    /// The openid the session acts as.
    pub openid: &'a str,
    /// Paying inside the mini program (a mini-program bearer session): the order goes to its appid.
    pub in_miniprogram: bool,
    /// The buyer's address (v2 wants it).
    pub client_ip: &'a str,
}

/// A placed order.
#[derive(Debug)]
pub struct Placed {
    /// Our number.
    pub out_trade_no: String,
    /// JSAPI: what `wx.requestPayment` takes.
    pub pay_params: Option<JsapiPayParams>,
    /// NATIVE: the code to scan.
    pub code_url: Option<String>,
    /// H5: WeChat's cashier page; the page appends `&redirect_url=` (its own address) and sends the browser there.
    pub h5_url: Option<String>,
}

/// At most `max` bytes of `s`, cut at a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn random_out_trade_no() -> String {
    crate::platform::crypto::random_token()[..32].to_owned()
}

/// Places an order: checked, stored, then placed at WeChat (and closed here if WeChat refuses it).
pub async fn place(state: &State, request: OrderRequest, buyer: Buyer<'_>) -> Result<Placed, PayError> {
    let mut pay = gateway(state)?;
    let (description, total_fee) = priced(state, &request).await?;
    if description.is_empty() || description.len() > 128 {
        return Err(invalid("description must be 1 to 128 bytes"));
    }
    if !(1..=100_000_000).contains(&total_fee) {
        return Err(invalid("total_fee is in fen: 1 to 100000000"));
    }
    // The appid the order is placed with: the official account's (None), or the mini program's for a mini-program
    // buyer paying inside it.
    let mut appid: Option<String> = None;
    let openid = match request.trade_type.as_str() {
        "JSAPI" => {
            if buyer.in_miniprogram {
                // A mini-program token: its openid belongs to the mini program's appid, so the order is placed
                // with that appid (wx.requestPayment inside the mini program takes the same pay_params).
                let Some(mp) = state.payers.as_ref().and_then(|p| p.miniprogram.as_ref()) else {
                    return Err(PayError::MiniProgramNotConfigured);
                };
                pay = mp;
                appid = Some(mp.app_id().as_str().to_owned());
            }
            Some(buyer.openid.to_owned())
        }
        "NATIVE" | "H5" => None,
        other => return Err(invalid(format!("trade_type {other:?} is not JSAPI, NATIVE or H5"))),
    };
    // Every order reserves stock until paid or closed: one buyer may place only so many a minute.
    if let Err(secs) = state
        .limits
        .rate
        .check_key(crate::http::ratelimit::Limit::Orders, &buyer.user_id.to_string())
    {
        return Err(PayError::TooMany {
            code: "too_many_orders",
            message: format!("too many orders in a short time: pay an open one, or try again in {secs} s"),
            retry_after: secs.max(1),
        });
    }
    let out_trade_no = random_out_trade_no();
    let now = state.clock.now_ms();
    let expires_at = now / 1000 + state.order_ttl_secs;
    let order = NewPayment {
        description: &description,
        out_trade_no: &out_trade_no,
        total_fee: u64::try_from(total_fee).unwrap_or(1),
        client_ip: buyer.client_ip,
        openid: openid.as_deref(),
        h5: request.trade_type == "H5",
        expires_at,
        public_base_url: &state.public_base_url,
    };
    pay.check(&order).map_err(invalid)?;
    let placed = {
        let (no, desc, tt, oid, buyer_openid) = (
            out_trade_no.clone(),
            description.clone(),
            request.trade_type.clone(),
            openid.clone(),
            buyer.openid.to_owned(),
        );
        let (user_id, campaign_id, appid) = (buyer.user_id, request.campaign_id, appid.clone());
        let max_open = state.max_open_orders;
        db::blocking(&state.db, move |conn| {
            Ok(repo::place(
                conn,
                &NewOrder {
                    out_trade_no: &no,
                    user_id: Some(user_id),
                    openid: oid.as_deref(),
                    description: &desc,
                    total_fee,
                    trade_type: &tt,
                    expires_at,
                    now,
                    campaign_id,
                    buyer_openid: campaign_id.map(|_| buyer_openid.as_str()),
                    appid: appid.as_deref(),
                    max_open,
                },
            ))
        })
        .await?
    };
    match placed {
        Ok(()) => {}
        Err(PlaceRefused::Open(open)) => return reuse(pay, &open, &request.trade_type, appid.as_deref(), now),
        Err(e) => return Err(refused(e)),
    }
    let prepay = match pay.place(&order).await {
        Ok(p) => p,
        Err(e) => {
            // WeChat has no payable order: ours is closed so it can never be paid by a late surprise.
            let no = out_trade_no.clone();
            let _ = db::blocking(&state.db, move |conn| repo::close(conn, &no, now)).await;
            return Err(e.into());
        }
    };
    // The code_url column holds what the buyer opens: a NATIVE code, or an H5 order's cashier page.
    let h5_url = prepay.h5_url.as_deref().map(|u| h5_for_this_browser(state, u));
    let (no, pid, code_url) = (
        out_trade_no.clone(),
        prepay.prepay_id.clone(),
        prepay.code_url.clone().or_else(|| h5_url.clone()),
    );
    db::blocking(&state.db, move |conn| {
        repo::set_prepay(conn, &no, pid.as_deref(), code_url.as_deref(), now)
    })
    .await?;
    metrics::counter!("wxkit_pay_orders_total", "trade_type" => request.trade_type.clone()).increment(1);
    let jsapi = request.trade_type == "JSAPI";
    Ok(Placed {
        pay_params: jsapi.then(|| pay.pay_params(prepay.prepay_id.as_deref().unwrap_or_default(), now / 1000)),
        code_url: if jsapi { None } else { prepay.code_url },
        h5_url,
        out_trade_no,
    })
}

/// WeChat's H5 cashier lives on `wx.tenpay.com`; against a simulator (sandbox, tests) the same page is on the
/// simulator's host, as the phone reaches it.
fn h5_for_this_browser(state: &State, url: &str) -> String {
    match (&state.h5_cashier_origin, url.strip_prefix("https://wx.tenpay.com")) {
        (Some(origin), Some(rest)) => format!("{}{rest}", origin.trim_end_matches('/')),
        _ => url.to_owned(),
    }
}

/// The buyer's open order for the same campaign, offered again instead of a second one (its stock is already
/// reserved): the same payment parameters or code, freshly signed. An open order of another kind (a NATIVE code
/// while paying in WeChat, another app) cannot be offered: the buyer is told to pay or wait for it.
fn reuse(
    pay: &Gateway,
    open: &repo::Order,
    trade_type: &str,
    appid: Option<&str>,
    now: i64,
) -> Result<Placed, PayError> {
    let left = (open.expires_at - now / 1000).max(0);
    let same_kind = open.trade_type == trade_type && open.appid.as_deref() == appid;
    match (same_kind, trade_type, &open.prepay_id, &open.code_url) {
        (true, "JSAPI", Some(prepay_id), _) => Ok(Placed {
            out_trade_no: open.out_trade_no.clone(),
            pay_params: Some(pay.pay_params(prepay_id, now / 1000)),
            code_url: None,
            h5_url: None,
        }),
        (true, "NATIVE", _, Some(code_url)) => Ok(Placed {
            out_trade_no: open.out_trade_no.clone(),
            pay_params: None,
            code_url: Some(code_url.clone()),
            h5_url: None,
        }),
        (true, "H5", _, Some(h5_url)) => Ok(Placed {
            out_trade_no: open.out_trade_no.clone(),
            pay_params: None,
            code_url: None,
            h5_url: Some(h5_url.clone()),
        }),
        _ => Err(PayError::Conflict {
            code: "open_order",
            message: format!(
                "an unpaid order {} for this coupon is open: pay it, or order again when it expires in {} min",
                open.out_trade_no,
                (left + 59) / 60
            ),
            retry_after: Some(u64::try_from(left).unwrap_or(0).max(1)),
        }),
    }
}

/// Closes an open order: at WeChat (which closes an order only 5 minutes after it was placed), then here.
pub async fn close(state: &State, order: &repo::Order) -> Result<(), PayError> {
    gateway(state)?;
    let pay = payer(state, order)?;
    if order.status != repo::OrderStatus::Created {
        return Err(conflict("not_open", format!("the order is {}", order.status)));
    }
    // Closing ours alone would let a payment through.
    let age_ms = state.clock.now_ms() - order.created_at;
    if age_ms < 300_000 {
        let wait = u64::try_from((300_000 - age_ms) / 1000 + 1).unwrap_or(300);
        return Err(PayError::Conflict {
            code: "too_soon",
            message: format!("WeChat closes an order only 5 minutes after it was placed: try again in {wait} s"),
            retry_after: Some(wait),
        });
    }
    pay.close(&order.out_trade_no).await?;
    let (no, now) = (order.out_trade_no.clone(), state.clock.now_ms());
    if !db::blocking(&state.db, move |conn| repo::close(conn, &no, now)).await? {
        return Err(conflict("not_open", "the order was paid meanwhile"));
    }
    Ok(())
}

/// A refund asked for.
#[derive(Debug)]
pub struct RefundRequest<'a> {
    /// The order.
    pub out_trade_no: &'a str,
    /// Fen.
    pub refund_fee: i64,
    /// Shown to the buyer.
    pub reason: Option<&'a str>,
    /// Refund although the bought coupon was redeemed.
    pub force: bool,
}

/// A refund recorded and asked of WeChat.
#[derive(Debug)]
pub struct Refunding {
    /// Our refund number.
    pub out_refund_no: String,
    /// Whether WeChat answered that it accepted it. `false`: the answer was lost or unclear (a timeout, a 5xx,
    /// SYSTEM_ERROR); the refund stays `requested` and the reconciler asks WeChat about it, sending it again with the
    /// same number if WeChat never got it.
    pub confirmed: bool,
}

/// Records a refund, then asks WeChat; its notify (or the reconciler's query) settles it. Only a definite refusal
/// fails it (and gives back what it took); an unclear answer leaves it `requested`.
pub async fn refund(state: &State, r: RefundRequest<'_>) -> Result<Refunding, PayError> {
    let pay = gateway(state)?;
    if r.refund_fee < 1 {
        return Err(invalid("refund_fee is in fen, at least 1"));
    }
    if r.reason.is_some_and(|reason| reason.len() > 80) {
        return Err(invalid("reason is at most 80 bytes"));
    }
    let out_refund_no = format!("r{}", &random_out_trade_no()[..31]);
    let now = state.clock.now_ms();
    let (no, rno, fee, reason, force) = (
        r.out_trade_no.to_owned(),
        out_refund_no.clone(),
        r.refund_fee,
        r.reason.map(str::to_owned),
        r.force,
    );
    let recorded = db::blocking(&state.db, move |conn| {
        Ok(repo::request_refund(
            conn,
            &no,
            &rno,
            fee,
            reason.as_deref(),
            force,
            now,
        ))
    })
    .await?;
    let (total_fee, appid) = match recorded {
        Ok(order) => (order.total_fee, order.appid),
        Err(RefundRefused::NotFound) => return Err(PayError::NotFound("no such order")),
        Err(RefundRefused::NotPaid(status)) => return Err(conflict("not_paid", format!("the order is {status}"))),
        Err(RefundRefused::TooMuch(taken, paid)) => {
            return Err(conflict(
                "over_refund",
                format!(
                    "{taken} of {paid} fen are refunded or being refunded: at most {} more",
                    paid - taken
                ),
            ));
        }
        Err(RefundRefused::Redeemed(code)) => {
            return Err(conflict(
                "coupon_redeemed",
                format!("the bought coupon {code} was redeemed: refund it anyway with \"force\": true"),
            ));
        }
        Err(RefundRefused::Db(e)) => return Err(e.into()),
    };
    // Refunded through the appid the order was placed with.
    let pay = state
        .payers
        .as_ref()
        .and_then(|p| p.for_appid(appid.as_deref()))
        .unwrap_or(pay);
    let outcome = pay
        .refund(
            r.out_trade_no,
            &out_refund_no,
            u64::try_from(total_fee).unwrap_or(0),
            u64::try_from(r.refund_fee).unwrap_or(0),
            r.reason,
            &state.public_base_url,
        )
        .await;
    let rno = out_refund_no.clone();
    match outcome {
        Ok(refund_id) => {
            // Stays `requested` until its notify; only the refund id is kept now.
            if let Err(e) = db::blocking(&state.db, move |conn| repo::set_refund_id(conn, &rno, &refund_id)).await {
                tracing::warn!(error = %e, "could not keep a refund id (its notify brings it again)");
            }
            Ok(Refunding {
                out_refund_no,
                confirmed: true,
            })
        }
        Err(e) if super::gateway::refund_refused(&e) => {
            let _ = db::blocking(&state.db, move |conn| {
                repo::settle_refund(conn, &rno, "failed", None, now)
            })
            .await;
            Err(e.into())
        }
        Err(e) => {
            // WeChat may have accepted it: never "failed" on a guess (the money could be refunded *and* the coupon
            // usable). The reconciler settles it by query, or sends it again with the same number.
            tracing::warn!(out_refund_no = %out_refund_no, error = %e, "refund answer unclear; left requested for the reconciler");
            metrics::counter!("wxkit_pay_refunds_unconfirmed_total").increment(1);
            Ok(Refunding {
                out_refund_no,
                confirmed: false,
            })
        }
    }
}

/// The reconciler's look at a refund still `requested`: WeChat's state applied (settled, or corrected where ours
/// differs), or the refund sent again with the same number when WeChat never received it.
pub async fn settle_pending_refund(
    payers: &super::Payers,
    db_: &db::Db,
    r: &repo::PendingRefund,
    public_base_url: &str,
    now: i64,
) -> Result<Option<repo::RefundNotified>, PayError> {
    let Some(pay) = payers.for_appid(r.appid.as_deref()) else {
        return Ok(None);
    };
    match pay.refund_lookup(&r.out_trade_no, &r.out_refund_no).await? {
        super::gateway::RefundSeen::Pending => Ok(None),
        super::gateway::RefundSeen::Missing => {
            // Never received (the request was lost on the way): the same number again.
            let sent = pay
                .refund(
                    &r.out_trade_no,
                    &r.out_refund_no,
                    u64::try_from(r.total_fee).unwrap_or(0),
                    u64::try_from(r.refund_fee).unwrap_or(0),
                    r.reason.as_deref(),
                    public_base_url,
                )
                .await;
            match sent {
                Ok(_) => Ok(None),
                Err(e) if super::gateway::refund_refused(&e) => {
                    let rno = r.out_refund_no.clone();
                    db::blocking(db_, move |conn| repo::settle_refund(conn, &rno, "failed", None, now)).await?;
                    Ok(None)
                }
                Err(e) => Err(e.into()),
            }
        }
        super::gateway::RefundSeen::Done {
            status,
            refund_id,
            refund_fee,
        } => {
            let (r, fee) = (r.clone(), i64::try_from(refund_fee).unwrap_or(0));
            Ok(Some(
                db::blocking(db_, move |conn| {
                    repo::apply_refund_fact(
                        conn,
                        &repo::RefundFact {
                            out_refund_no: &r.out_refund_no,
                            out_trade_no: &r.out_trade_no,
                            refund_fee: fee,
                            status,
                            refund_id: &refund_id,
                        },
                        now,
                    )
                })
                .await?,
            ))
        }
    }
}

/// What an order is for and costs: a campaign's title and price (a given `total_fee` must agree), or as given.
async fn priced(state: &State, request: &OrderRequest) -> Result<(String, i64), PayError> {
    // A coupon's order takes its description and price from the campaign; a given total_fee must agree (the page
    // showed a price: if it changed since, the buyer should see the new one before paying).
    Ok(match request.campaign_id {
        Some(id) => {
            let campaign = db::blocking(&state.db, move |conn| {
                crate::features::merchants::repo::campaign(conn, id)
            })
            .await?
            .ok_or(PayError::NotFound("no such campaign"))?;
            let Some(price) = campaign.price_fen else {
                return Err(conflict("not_for_sale", "this campaign's coupons are not sold"));
            };
            if request.total_fee.is_some_and(|f| f != price) {
                return Err(conflict(
                    "price_changed",
                    format!("the price is now {price} fen: show it to the buyer and order again"),
                ));
            }
            let description = request.description.clone().unwrap_or(campaign.title);
            (truncate(description.trim(), 128).to_owned(), price)
        }
        None => (
            request.description.as_deref().unwrap_or_default().trim().to_owned(),
            request.total_fee.ok_or_else(|| PayError::Invalid {
                code: "missing_field",
                message: "total_fee (fen) is required without campaign_id".into(),
            })?,
        ),
    })
}

/// Why the database refused to record an order, as the use case's error.
fn refused(e: PlaceRefused) -> PayError {
    match e {
        PlaceRefused::NotFound => PayError::NotFound("no such campaign"),
        PlaceRefused::NotForSale => conflict("not_for_sale", "this campaign's coupons are not sold"),
        PlaceRefused::PriceChanged(price) => conflict(
            "price_changed",
            format!("the price is now {price} fen: show it to the buyer and order again"),
        ),
        PlaceRefused::Rule(rule) => {
            let code = match rule {
                redemption_core::IssueError::SoldOut => "sold_out",
                redemption_core::IssueError::PerUserLimit => "limit_reached",
                redemption_core::IssueError::Ended => "campaign_ended",
            };
            conflict(code, rule.to_string())
        }
        PlaceRefused::Open(open) => conflict(
            "open_order",
            format!(
                "an unpaid order {} for this coupon is open: pay it first",
                open.out_trade_no
            ),
        ),
        PlaceRefused::TooManyOpen(n) => PayError::TooMany {
            code: "too_many_open_orders",
            message: format!("{n} unpaid orders are open: pay or cancel one of them, or wait until they expire"),
            retry_after: 60,
        },
        PlaceRefused::Db(e) => PayError::Db(e),
    }
}

/// Reconciles a Beijing day (`YYYY-MM-DD`): WeChat Pay's trade bill against the ledger; the report is stored (a
/// later run replaces it) and its differences counted (`wxkit_pay_reconciliation_differences_total{kind}`).
pub async fn reconcile_day(
    payers: &super::Payers,
    db_: &db::Db,
    date: &str,
    now: i64,
) -> Result<super::bills::Report, PayError> {
    if super::bills::day_bounds(date).is_none() {
        return Err(invalid("date is YYYY-MM-DD"));
    }
    let bill = payers.web.trade_bill(date).await?;
    let (d, b) = (date.to_owned(), bill.clone());
    let differences = db::blocking(db_, move |conn| super::bills::compare(conn, &d, &b)).await?;
    for difference in &differences {
        metrics::counter!("wxkit_pay_reconciliation_differences_total", "kind" => difference.kind.clone()).increment(1);
    }
    let report = super::bills::Report {
        date: date.to_owned(),
        clean: differences.is_empty(),
        differences,
        bill_rows: i64::try_from(bill.rows.len()).unwrap_or(i64::MAX),
        created_at: now,
    };
    let stored = report.clone();
    db::blocking(db_, move |conn| super::bills::store(conn, &stored)).await?;
    if !report.clean {
        tracing::warn!(
            date,
            differences = report.differences.len(),
            "reconciliation found differences"
        );
    }
    Ok(report)
}

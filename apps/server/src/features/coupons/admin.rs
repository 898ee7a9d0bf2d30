//! The coupon side of the admin API: a campaign's coupons, voiding a coupon, and the redemption log (核销记录), as
//! JSON pages or CSV. Shared by `GET|POST /api/v1/...` and the `wxkit coupon|redemptions` commands.

use crate::db::schema::{audit_log, campaigns, coupons, redemptions, staff};
use crate::db::{DbConnection, DbError};
use crate::features::coupons::repo::CouponRow;
use crate::features::merchants::repo::CampaignRow;
use diesel::prelude::*;
use redemption_core::Millis;
use serde::Serialize;

/// Longest void reason.
pub const REASON_MAX: usize = 200;

/// Which coupons of a campaign to list, by their status as people see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusFilter {
    /// Usable (or not yet valid).
    Issued,
    /// Redeemed.
    Redeemed,
    /// Voided.
    Void,
    /// Unused past the campaign's end.
    Expired,
}

impl StatusFilter {
    /// Parses `issued`, `redeemed`, `void`, `expired`.
    pub fn parse(s: &str) -> Option<StatusFilter> {
        Some(match s {
            "issued" => StatusFilter::Issued,
            "redeemed" => StatusFilter::Redeemed,
            "void" => StatusFilter::Void,
            "expired" => StatusFilter::Expired,
            _ => return None,
        })
    }
}

/// A campaign's coupons after id `after`, by id, at most `n`. `None` when the campaign does not exist. Expiry is
/// the campaign's (one end for all its coupons), so the filter on the status people see is a filter on the stored
/// status and the campaign's end.
pub fn campaign_coupons(
    conn: &mut DbConnection,
    campaign_id: i64,
    status: Option<StatusFilter>,
    owner: Option<&str>,
    after: Option<i64>,
    n: i64,
    now: Millis,
) -> Result<Option<(CampaignRow, Vec<CouponRow>)>, DbError> {
    let Some(campaign) = crate::features::merchants::repo::campaign(conn, campaign_id)? else {
        return Ok(None);
    };
    let ended = now > campaign.valid_until;
    let stored = match status {
        None => None,
        Some(StatusFilter::Issued) if ended => return Ok(Some((campaign, Vec::new()))),
        Some(StatusFilter::Expired) if !ended => return Ok(Some((campaign, Vec::new()))),
        Some(StatusFilter::Issued | StatusFilter::Expired) => Some("issued"),
        Some(StatusFilter::Redeemed) => Some("redeemed"),
        Some(StatusFilter::Void) => Some("void"),
    };
    let mut q = coupons::table
        .filter(coupons::campaign_id.eq(campaign_id))
        .filter(coupons::id.gt(after.unwrap_or(0)))
        .order(coupons::id)
        .limit(n)
        .into_boxed();
    if let Some(s) = stored {
        q = q.filter(coupons::status.eq(s));
    }
    if let Some(o) = owner {
        q = q.filter(coupons::owner_openid.eq(o));
    }
    let rows = q.load(conn)?;
    Ok(Some((campaign, rows)))
}

/// What voiding came to.
#[derive(Debug)]
pub enum VoidOutcome {
    /// Voided now (audited).
    Voided(CouponRow, CampaignRow),
    /// It was already void: nothing changed (a retried call gets the same answer).
    AlreadyVoid(CouponRow, CampaignRow),
    /// It was redeemed: it cannot be voided.
    Redeemed(CouponRow, CampaignRow),
    /// No such coupon.
    NotFound,
}

/// Voids a coupon that is not redeemed, with an audit row carrying `reason`, in one transaction. The update is
/// conditional on the stored status, so it cannot void a coupon a cashier redeemed a moment before.
pub fn void(conn: &mut DbConnection, code: &str, reason: &str, now: Millis) -> Result<VoidOutcome, DbError> {
    crate::db::write_transaction(conn, |conn| void_once(conn, code, reason, now))
}

fn void_once(conn: &mut DbConnection, code: &str, reason: &str, now: Millis) -> Result<VoidOutcome, DbError> {
    conn.transaction(|conn| {
        let Some((coupon, campaign)) = crate::features::coupons::repo::coupon_by_code(conn, code)? else {
            return Ok(VoidOutcome::NotFound);
        };
        match coupon.status.as_str() {
            "void" => return Ok(VoidOutcome::AlreadyVoid(coupon, campaign)),
            "issued" => {}
            _ => return Ok(VoidOutcome::Redeemed(coupon, campaign)),
        }
        let updated: Option<CouponRow> = crate::update_returning!(
            conn,
            diesel::update(coupons::table.filter(coupons::id.eq(coupon.id).and(coupons::status.eq("issued"))))
                .set((coupons::status.eq("void"), coupons::version.eq(coupons::version + 1))),
            coupons::table,
            coupon.id,
            coupons::all_columns
        )
        .optional()?;
        let Some(updated) = updated else {
            // Changed between the read and the update (another void, or a redemption): answer from what won.
            let (now_row, campaign) =
                crate::features::coupons::repo::coupon_by_code(conn, code)?.ok_or(diesel::result::Error::NotFound)?;
            return Ok(if now_row.status == "void" {
                VoidOutcome::AlreadyVoid(now_row, campaign)
            } else {
                VoidOutcome::Redeemed(now_row, campaign)
            });
        };
        diesel::insert_into(audit_log::table)
            .values((
                audit_log::action.eq("void"),
                audit_log::coupon_code.eq(Some(updated.code.clone())),
                audit_log::coupon_id.eq(Some(updated.id)),
                audit_log::outcome.eq("void"),
                audit_log::channel.eq(Some("admin")),
                audit_log::detail.eq(Some(reason)),
                audit_log::created_at.eq(now),
            ))
            .execute(conn)?;
        // Its copy in a WeChat card bag (商家券) must stop working there too.
        crate::features::coupons::busifavor::queue_deactivate(conn, updated.id, "voided by the shop", now)?;
        Ok(VoidOutcome::Voided(updated, campaign))
    })
}

/// Which redemptions to list.
#[derive(Clone, Debug, Default)]
pub struct LogFilter {
    /// Only this merchant's.
    pub merchant_id: Option<i64>,
    /// Only this campaign's.
    pub campaign_id: Option<i64>,
    /// At or after, ms.
    pub since: Option<Millis>,
    /// Before, ms.
    pub until: Option<Millis>,
}

/// One redemption, as the log shows it: with what a month-end needs (the merchant, face value, the price paid and
/// any refund of a bought coupon, its owner).
#[derive(Clone, Debug, Queryable, Serialize)]
pub struct LogRow {
    /// The redemption's id.
    pub id: i64,
    /// When, ms.
    #[serde(skip)]
    pub at: i64,
    /// pos, scan_page or wechat.
    pub channel: String,
    /// The coupon's code.
    pub coupon_code: String,
    /// The coupon's owner (openid), if any.
    pub owner_openid: Option<String>,
    /// The campaign.
    pub campaign_id: i64,
    /// The campaign's title.
    pub campaign_title: String,
    /// The coupon's face value, fen.
    pub value_fen: Option<i64>,
    /// The merchant.
    pub merchant_id: i64,
    /// The merchant's name.
    pub merchant_name: String,
    /// The staff member (none for a card consumed at WeChat's side).
    pub staff_id: Option<i64>,
    /// Their name.
    pub staff_name: Option<String>,
    /// The order that bought the coupon.
    pub out_trade_no: Option<String>,
    /// That order's status.
    pub order_status: Option<String>,
    /// What was paid, fen (when the order is paid).
    pub order_total_fen: Option<i64>,
    /// Refunded (succeeded) of that order, fen; filled in after the query (selected as a placeholder).
    pub refunded_fen: i64,
}

impl LogRow {
    /// What the buyer paid, fen (a bought coupon's paid order).
    pub fn paid_fen(&self) -> Option<i64> {
        match self.order_status.as_deref() {
            Some("paid") => self.order_total_fen,
            _ => None,
        }
    }
}

/// Redemptions newest first, before id `before`, at most `n`.
pub fn redemption_log(
    conn: &mut DbConnection,
    filter: &LogFilter,
    before: Option<i64>,
    n: i64,
) -> Result<Vec<LogRow>, DbError> {
    use crate::db::schema::{coupon_purchases, merchants, pay_orders};
    let mut q = redemptions::table
        .inner_join(coupons::table.on(coupons::id.eq(redemptions::coupon_id)))
        .inner_join(campaigns::table.on(campaigns::id.eq(coupons::campaign_id)))
        .inner_join(merchants::table.on(merchants::id.eq(campaigns::merchant_id)))
        .left_join(staff::table.on(redemptions::staff_id.eq(staff::id.nullable())))
        .left_join(coupon_purchases::table.on(coupon_purchases::coupon_code.eq(coupons::code.nullable())))
        .left_join(pay_orders::table.on(pay_orders::out_trade_no.eq(coupon_purchases::out_trade_no)))
        .select((
            redemptions::id,
            redemptions::created_at,
            redemptions::channel,
            coupons::code,
            coupons::owner_openid,
            campaigns::id,
            campaigns::title,
            campaigns::value_fen,
            campaigns::merchant_id,
            merchants::name,
            staff::id.nullable(),
            staff::name.nullable(),
            pay_orders::out_trade_no.nullable(),
            pay_orders::status.nullable(),
            pay_orders::total_fee.nullable(),
            // A placeholder for the refund column (filled in by `add_refunds`).
            redemptions::id,
        ))
        .order(redemptions::id.desc())
        .limit(n)
        .into_boxed();
    if let Some(b) = before {
        q = q.filter(redemptions::id.lt(b));
    }
    if let Some(m) = filter.merchant_id {
        q = q.filter(campaigns::merchant_id.eq(m));
    }
    if let Some(c) = filter.campaign_id {
        q = q.filter(campaigns::id.eq(c));
    }
    if let Some(s) = filter.since {
        q = q.filter(redemptions::created_at.ge(s));
    }
    if let Some(u) = filter.until {
        q = q.filter(redemptions::created_at.lt(u));
    }
    let mut rows: Vec<LogRow> = q.load(conn)?;
    add_refunds(conn, &mut rows)?;
    Ok(rows)
}

/// Fills in what was refunded of each row's order (succeeded refunds), in slices of one query each.
fn add_refunds(conn: &mut DbConnection, rows: &mut [LogRow]) -> Result<(), DbError> {
    use crate::db::schema::pay_refunds;
    for chunk in rows.chunks_mut(500) {
        for r in chunk.iter_mut() {
            r.refunded_fen = 0;
        }
        let orders: Vec<&str> = chunk.iter().filter_map(|r| r.out_trade_no.as_deref()).collect();
        if orders.is_empty() {
            continue;
        }
        let refunds: Vec<(String, i64)> = pay_refunds::table
            .filter(pay_refunds::out_trade_no.eq_any(&orders))
            .filter(pay_refunds::status.eq("succeeded"))
            .select((pay_refunds::out_trade_no, pay_refunds::refund_fee))
            .load(conn)?;
        for r in chunk.iter_mut() {
            if let Some(no) = &r.out_trade_no {
                r.refunded_fen = refunds.iter().filter(|(n, _)| n == no).map(|(_, f)| f).sum();
            }
        }
    }
    Ok(())
}

/// A CSV field as the exports write it: always quoted, formula triggers neutralised (see [`defuse`]).
pub fn csv_field(s: &str) -> String {
    let mut w = csv_writer(Vec::new());
    // Writing to memory cannot fail; an empty field is the fallback of a type that says it could.
    if w.write_field(defuse(s).as_ref()).is_err() {
        return String::new();
    }
    let _ = w.write_record(None::<&[u8]>);
    String::from_utf8(w.into_inner().unwrap_or_default())
        .unwrap_or_default()
        .trim_end_matches("\r\n")
        .to_owned()
}

/// A text cell a spreadsheet could run as a formula gets a `'` before each trigger (`=`, `+`, `-`, `@`, and tab or
/// CR) that starts the cell or follows a separator: Excel splits a cell on the locale's list separator (`,` or
/// `;`) and on tabs when it guesses, so `x;=cmd|...` would start a formula after the `;`.
pub fn defuse(s: &str) -> std::borrow::Cow<'_, str> {
    let trigger = |c: char| matches!(c, '=' | '+' | '-' | '@' | '\t' | '\r');
    let separator = |c: char| matches!(c, ',' | ';' | '\t');
    let mut after_separator = true;
    let needs = s.chars().any(|c| {
        let hit = after_separator && trigger(c);
        after_separator = separator(c) || (after_separator && c == ' ');
        hit
    });
    if !needs {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 4);
    let mut after_separator = true;
    for c in s.chars() {
        if after_separator && trigger(c) {
            out.push('\'');
        }
        after_separator = separator(c) || (after_separator && c == ' ');
        out.push(c);
    }
    std::borrow::Cow::Owned(out)
}

/// The CSV writer of the exports: every field quoted (a code or name is text, never a number Excel reformats),
/// CRLF line ends (what Excel expects).
fn csv_writer<W: std::io::Write>(w: W) -> csv::Writer<W> {
    csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .quote_style(csv::QuoteStyle::Always)
        .has_headers(false)
        .from_writer(w)
}

/// Yuan with two decimals, or empty.
fn yuan(fen: Option<i64>) -> String {
    fen.map(|f| format!("{}.{:02}", f / 100, (f % 100).abs()))
        .unwrap_or_default()
}

/// Writes log rows as CSV (without the header) to `w`.
pub fn write_csv<W: std::io::Write>(w: W, rows: &[LogRow]) -> std::io::Result<()> {
    let mut out = csv_writer(w);
    for r in rows {
        let at = crate::platform::time::beijing_format(r.at, "%Y-%m-%d %H:%M:%S");
        let (id, campaign, merchant) = (r.id.to_string(), r.campaign_id.to_string(), r.merchant_id.to_string());
        let staff_id = r.staff_id.map(|s| s.to_string()).unwrap_or_default();
        let refunded = if r.refunded_fen > 0 {
            yuan(Some(r.refunded_fen))
        } else {
            String::new()
        };
        out.write_record([
            id.as_str(),
            &at,
            &merchant,
            &defuse(&r.merchant_name),
            &campaign,
            &defuse(&r.campaign_title),
            &yuan(r.value_fen),
            &yuan(r.paid_fen()),
            &defuse(&r.coupon_code),
            &defuse(r.owner_openid.as_deref().unwrap_or("")),
            &staff_id,
            &defuse(r.staff_name.as_deref().unwrap_or("")),
            &defuse(&r.channel),
            &defuse(r.out_trade_no.as_deref().unwrap_or("")),
            &refunded,
        ])?;
    }
    out.flush()
}

/// The most rows one CSV export holds (a larger export is narrowed with `since`/`until`).
pub const CSV_MAX_ROWS: i64 = 100_000;

/// The CSV export's first bytes: a UTF-8 byte order mark (without it, Excel on Chinese Windows reads the file as
/// GBK and shows mojibake) and the header line.
pub const CSV_HEADER: &str = "\u{feff}redemption_id,redeemed_at_beijing,merchant_id,merchant_name,campaign_id,campaign_title,\
face_value_yuan,price_paid_yuan,coupon_code,owner_openid,staff_id,staff_name,channel,out_trade_no,refunded_yuan\r\n";

/// One CSV line of the log (times in Beijing time, like the pages).
pub fn csv_line(r: &LogRow) -> String {
    let mut out = Vec::with_capacity(128);
    // Writing to memory cannot fail.
    let _ = write_csv(&mut out, std::slice::from_ref(r));
    String::from_utf8(out).unwrap_or_default()
}

/// A coupon and its campaign, by code.
pub fn coupon(
    conn: &mut DbConnection,
    code: &str,
) -> Result<Option<(CouponRow, crate::features::merchants::repo::CampaignRow)>, DbError> {
    crate::features::coupons::repo::coupon_by_code(conn, code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> LogRow {
        LogRow {
            id: 7,
            at: 1_796_364_428_000,
            channel: "pos".into(),
            coupon_code: "ABC".into(),
            owner_openid: Some("o-1".into()),
            campaign_id: 3,
            campaign_title: "=1+1, \"free\"".into(),
            value_fen: Some(1800),
            merchant_id: 2,
            merchant_name: "x;=cmd|' /C calc'!A0".into(),
            staff_id: Some(5),
            staff_name: Some("店员 小王".into()),
            out_trade_no: Some("T1".into()),
            order_status: Some("paid".into()),
            order_total_fen: Some(990),
            refunded_fen: 0,
        }
    }

    #[test]
    fn a_log_line_is_quoted_defused_and_in_beijing_time() {
        assert_eq!(
            csv_line(&row()),
            "\"7\",\"2026-12-04 14:07:08\",\"2\",\"x;'=cmd|' /C calc'!A0\",\"3\",\"'=1+1, \"\"free\"\"\",\"18.00\",\
             \"9.90\",\"ABC\",\"o-1\",\"5\",\"店员 小王\",\"pos\",\"T1\",\"\"\r\n"
        );
        assert!(CSV_HEADER.starts_with('\u{feff}'));
        assert_eq!(CSV_HEADER.trim_end().split(',').count(), 15);
    }

    #[test]
    fn csv_fields_are_quoted_and_never_formulas() {
        assert_eq!(csv_field("plain"), "\"plain\"");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(1)"), "\"'=HYPERLINK(1)\"");
        assert_eq!(csv_field("a; =1"), "\"a; '=1\"");
        assert_eq!(csv_field("a\t@SUM(1)"), "\"a\t'@SUM(1)\"");
        assert_eq!(csv_field("1-2 x=y"), "\"1-2 x=y\"");
        assert_eq!(csv_field("店员 小王"), "\"店员 小王\"");
    }
}

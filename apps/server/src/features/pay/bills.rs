//! Daily reconciliation (对账): WeChat Pay's trade bill of a Beijing day against our ledger — payments WeChat has
//! that we do not, payments we have that WeChat does not, amounts or states that differ, and the same for refunds.
//! One report per day is kept (`pay_reconciliations`); the API, the CLI and a daily job read or make it.

use super::repo::{Order, OrderStatus};
use crate::db::schema::{pay_orders, pay_reconciliations, pay_refunds};
use crate::db::{DbConnection, DbError};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use wechat_pay::bill::TradeBill;

/// One difference between WeChat's bill and our ledger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Difference {
    /// `paid_at_wechat_only`, `paid_here_only`, `amount_mismatch`, `status_mismatch`, `refund_at_wechat_only`,
    /// `refund_here_only`, `refund_amount_mismatch`.
    pub kind: String,
    /// Our order number.
    pub out_trade_no: String,
    /// Our refund number (refund differences).
    pub out_refund_no: Option<String>,
    /// What we have (an amount in fen, or a state).
    pub ours: Option<String>,
    /// What WeChat's bill says.
    pub wechat: Option<String>,
}

/// A day's reconciliation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The Beijing day, `YYYY-MM-DD`.
    pub date: String,
    /// No differences.
    pub clean: bool,
    /// What differs.
    pub differences: Vec<Difference>,
    /// Lines in WeChat's bill.
    pub bill_rows: i64,
    /// When it was made, Unix ms.
    pub created_at: i64,
}

/// The Unix-ms bounds `[start, end)` of a Beijing day `YYYY-MM-DD`.
pub fn day_bounds(date: &str) -> Option<(i64, i64)> {
    let day = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    let start = day
        .and_hms_opt(0, 0, 0)?
        .and_local_timezone(crate::platform::time::beijing_offset())
        .single()?
        .timestamp_millis();
    Some((start, start + 86_400_000))
}

fn diff(kind: &str, no: &str, refund: Option<&str>, ours: Option<String>, wechat: Option<String>) -> Difference {
    Difference {
        kind: kind.into(),
        out_trade_no: no.into(),
        out_refund_no: refund.map(str::to_owned),
        ours,
        wechat,
    }
}

/// Compares a day's bill with the ledger: payments by order number, refunds by refund number.
pub fn compare(conn: &mut DbConnection, date: &str, bill: &TradeBill) -> Result<Vec<Difference>, DbError> {
    let Some((start, end)) = day_bounds(date) else {
        return Err(DbError::Task(format!("{date:?} is not a YYYY-MM-DD date")));
    };
    let mut out = Vec::new();
    // Payments.
    let paid_rows: HashMap<&str, &wechat_pay::bill::TradeBillRow> = bill
        .rows
        .iter()
        .filter(|r| r.trade_state == "SUCCESS")
        .map(|r| (r.out_trade_no.as_str(), r))
        .collect();
    let ours_paid: Vec<Order> = pay_orders::table
        .filter(pay_orders::paid_at.ge(start).and(pay_orders::paid_at.lt(end)))
        .select(Order::as_select())
        .load(conn)?;
    for o in &ours_paid {
        match paid_rows.get(o.out_trade_no.as_str()) {
            None => out.push(diff(
                "paid_here_only",
                &o.out_trade_no,
                None,
                Some(o.total_fee.to_string()),
                None,
            )),
            Some(r) if u64::try_from(o.total_fee).ok() != Some(r.total_fee) => out.push(diff(
                "amount_mismatch",
                &o.out_trade_no,
                None,
                Some(o.total_fee.to_string()),
                Some(r.total_fee.to_string()),
            )),
            Some(_) => {}
        }
    }
    for (no, r) in &paid_rows {
        if ours_paid.iter().any(|o| o.out_trade_no == *no) {
            continue;
        }
        let ours: Option<Order> = pay_orders::table
            .filter(pay_orders::out_trade_no.eq(*no))
            .select(Order::as_select())
            .first(conn)
            .optional()?;
        match ours {
            // Paid at WeChat, not paid here (its notify lost and not yet reconciled, or never ours).
            None => out.push(diff(
                "paid_at_wechat_only",
                no,
                None,
                None,
                Some(r.total_fee.to_string()),
            )),
            Some(o) if o.status != OrderStatus::Paid => out.push(diff(
                "status_mismatch",
                no,
                None,
                Some(o.status.to_string()),
                Some("SUCCESS".into()),
            )),
            // Paid here on another day (a notify across midnight): not a difference.
            Some(_) => {}
        }
    }
    // Refunds.
    let refund_rows: HashMap<&str, &wechat_pay::bill::TradeBillRow> = bill
        .rows
        .iter()
        .filter(|r| r.trade_state == "REFUND" && !r.out_refund_no.is_empty())
        .map(|r| (r.out_refund_no.as_str(), r))
        .collect();
    let ours_refunded: Vec<(String, String, i64)> = pay_refunds::table
        .filter(pay_refunds::status.eq("succeeded"))
        .filter(pay_refunds::updated_at.ge(start).and(pay_refunds::updated_at.lt(end)))
        .select((
            pay_refunds::out_refund_no,
            pay_refunds::out_trade_no,
            pay_refunds::refund_fee,
        ))
        .load(conn)?;
    for (rno, no, fee) in &ours_refunded {
        match refund_rows.get(rno.as_str()) {
            None => out.push(diff("refund_here_only", no, Some(rno), Some(fee.to_string()), None)),
            Some(r) if u64::try_from(*fee).ok() != Some(r.refund_fee) => out.push(diff(
                "refund_amount_mismatch",
                no,
                Some(rno),
                Some(fee.to_string()),
                Some(r.refund_fee.to_string()),
            )),
            Some(_) => {}
        }
    }
    for (rno, r) in &refund_rows {
        if ours_refunded.iter().any(|(o, _, _)| o == rno) {
            continue;
        }
        let ours: Option<String> = pay_refunds::table
            .filter(pay_refunds::out_refund_no.eq(*rno))
            .select(pay_refunds::status)
            .first(conn)
            .optional()?;
        if ours.as_deref() != Some("succeeded") {
            out.push(diff(
                "refund_at_wechat_only",
                &r.out_trade_no,
                Some(rno),
                ours,
                Some(r.refund_fee.to_string()),
            ));
        }
    }
    out.sort_by(|a, b| (&a.kind, &a.out_trade_no).cmp(&(&b.kind, &b.out_trade_no)));
    Ok(out)
}

/// Stores (or replaces) a day's report.
pub fn store(conn: &mut DbConnection, report: &Report) -> Result<(), DbError> {
    let differences = serde_json::to_string(&report.differences).map_err(|e| DbError::Task(e.to_string()))?;
    conn.transaction::<_, DbError, _>(|conn| {
        diesel::delete(pay_reconciliations::table.find(&report.date)).execute(conn)?;
        diesel::insert_into(pay_reconciliations::table)
            .values((
                pay_reconciliations::bill_date.eq(&report.date),
                pay_reconciliations::clean.eq(report.clean),
                pay_reconciliations::differences.eq(differences),
                pay_reconciliations::bill_rows.eq(report.bill_rows),
                pay_reconciliations::created_at.eq(report.created_at),
            ))
            .execute(conn)?;
        Ok(())
    })
}

/// A stored report.
pub fn stored(conn: &mut DbConnection, date: &str) -> Result<Option<Report>, DbError> {
    let row: Option<(String, bool, String, i64, i64)> = pay_reconciliations::table.find(date).first(conn).optional()?;
    Ok(row.map(|(date, clean, differences, bill_rows, created_at)| Report {
        date,
        clean,
        differences: serde_json::from_str(&differences).unwrap_or_default(),
        bill_rows,
        created_at,
    }))
}

/// The latest `n` stored reports, newest day first: (date, clean, differences, bill lines).
pub fn latest(conn: &mut DbConnection, n: i64) -> Result<Vec<(String, bool, usize, i64)>, DbError> {
    let rows: Vec<(String, bool, String, i64, i64)> = pay_reconciliations::table
        .order(pay_reconciliations::bill_date.desc())
        .limit(n)
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(date, clean, differences, bill_rows, _)| {
            let n = serde_json::from_str::<Vec<Difference>>(&differences).map_or(0, |d| d.len());
            (date, clean, n, bill_rows)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_beijing_day_starts_at_16_utc_the_day_before() {
        let (start, end) = day_bounds("2026-12-04").unwrap();
        assert_eq!(start, 1_796_313_600_000);
        assert_eq!(end - start, 86_400_000);
        assert_eq!(day_bounds("2026-13-01"), None);
        assert_eq!(day_bounds("yesterday"), None);
    }
}

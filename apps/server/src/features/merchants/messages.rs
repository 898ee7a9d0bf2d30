//! A campaign's "核销成功" message: when one of its coupons that has an owner is redeemed (at a till, on the scan page
//! or at WeChat's side), the owner gets the official account's template message, its data rendered from the
//! redemption. It is queued in the redemption's transaction and delivered by the outbox: a refusal or an outage
//! never touches the redemption.

use super::State;
use crate::db::schema::{campaign_messages, campaigns, coupons, merchants};
use crate::db::{self, DbConnection, DbError};
use crate::http::auth;
use crate::http::errors::ApiError;
use actix_web::{HttpResponse, web};
use diesel::prelude::*;
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;

/// The placeholders a field's text may use.
pub const PLACEHOLDERS: [&str; 5] = ["{title}", "{merchant}", "{value}", "{redeemed_at}", "{code_tail}"];

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedeemedMessageBody {
    /// The official account's template id (its keys are set on the WeChat admin site).
    template_id: String,
    /// Template key → text, with placeholders `{title}`, `{merchant}`, `{value}`, `{redeemed_at}` (Beijing time),
    /// `{code_tail}` (the code's last four characters).
    fields: BTreeMap<String, String>,
}

impl RedeemedMessageBody {
    fn validate(&self) -> Result<(), ApiError> {
        let bad = |m: String| Err(ApiError::bad_request("invalid_field", m));
        if self.template_id.is_empty()
            || self.template_id.len() > 64
            || !self
                .template_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return bad("template_id must be 1 to 64 characters of [A-Za-z0-9_-]".into());
        }
        if self.fields.is_empty() || self.fields.len() > 20 {
            return bad("fields must have 1 to 20 template keys".into());
        }
        for (k, v) in &self.fields {
            if k.is_empty() || k.len() > 32 || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return bad(format!("fields: {k:?} is not a template key (like thing1, time2)"));
            }
            if v.is_empty() || v.chars().count() > 200 {
                return bad(format!("fields.{k} must be 1 to 200 characters"));
            }
            let mut rest = v.as_str();
            while let Some(start) = rest.find('{') {
                let Some(end) = rest[start..].find('}') else {
                    return bad(format!("fields.{k}: an unclosed {{"));
                };
                let placeholder = &rest[start..start + end + 1];
                if !PLACEHOLDERS.contains(&placeholder) {
                    return bad(format!(
                        "fields.{k}: unknown placeholder {placeholder} (use {})",
                        PLACEHOLDERS.join(", ")
                    ));
                }
                rest = &rest[start + end + 1..];
            }
        }
        Ok(())
    }
}

fn not_found() -> ApiError {
    ApiError::not_found("no such campaign")
}

/// `PUT /api/v1/campaigns/{id}/redeemed-message {template_id, fields}` (admin): sets the message.
pub async fn put(
    _admin: auth::AdminAuth,
    path: web::Path<i64>,
    body: crate::http::json::ApiJson<RedeemedMessageBody>,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    body.validate()?;
    let id = path.into_inner();
    let now = state.clock.now_ms();
    let fields = serde_json::to_string(&body.fields).map_err(|e| ApiError::internal(&e))?;
    let (template_id, f) = (body.template_id.clone(), fields.clone());
    let found = db::blocking(&state.db, move |conn| {
        conn.transaction::<_, DbError, _>(|conn| {
            if crate::features::merchants::repo::campaign(conn, id)?.is_none() {
                return Ok(false);
            }
            let updated = diesel::update(campaign_messages::table.find(id))
                .set((
                    campaign_messages::template_id.eq(&template_id),
                    campaign_messages::fields.eq(&f),
                    campaign_messages::updated_at.eq(now),
                ))
                .execute(conn)?;
            if updated == 0 {
                diesel::insert_into(campaign_messages::table)
                    .values((
                        campaign_messages::campaign_id.eq(id),
                        campaign_messages::template_id.eq(&template_id),
                        campaign_messages::fields.eq(&f),
                        campaign_messages::updated_at.eq(now),
                    ))
                    .execute(conn)?;
            }
            Ok(true)
        })
    })
    .await?;
    if !found {
        return Err(not_found());
    }
    Ok(HttpResponse::Ok().json(json!({"campaign_id": id, "template_id": body.template_id, "fields": body.fields})))
}

/// `GET /api/v1/campaigns/{id}/redeemed-message` (admin): the message, or 404 when none is set.
pub async fn get(
    _admin: auth::AdminAuth,
    path: web::Path<i64>,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let row = db::blocking(&state.db, move |conn| {
        Ok(campaign_messages::table
            .find(id)
            .select((campaign_messages::template_id, campaign_messages::fields))
            .first::<(String, String)>(conn)
            .optional()?)
    })
    .await?;
    let Some((template_id, fields)) = row else {
        return Err(ApiError::not_found("this campaign sends no redemption message"));
    };
    let fields: serde_json::Value = serde_json::from_str(&fields).unwrap_or_default();
    Ok(HttpResponse::Ok().json(json!({"campaign_id": id, "template_id": template_id, "fields": fields})))
}

/// `DELETE /api/v1/campaigns/{id}/redeemed-message` (admin): no more messages (queued ones still go).
pub async fn delete(
    _admin: auth::AdminAuth,
    path: web::Path<i64>,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let n = db::blocking(&state.db, move |conn| {
        Ok(diesel::delete(campaign_messages::table.find(id)).execute(conn)?)
    })
    .await?;
    if n == 0 {
        return Err(ApiError::not_found("this campaign sends no redemption message"));
    }
    Ok(HttpResponse::NoContent().finish())
}

/// Beijing time, minutes.
fn beijing(ms: i64) -> String {
    crate::platform::time::beijing(ms)
}

/// Queues the message of a redeemed coupon when its campaign has one and the coupon an owner. Call it inside the
/// redemption's transaction (PostgreSQL's single-statement redemptions queue it in SQL, the same way).
pub fn queue_redeemed_message(conn: &mut DbConnection, coupon_id: i64, now: i64) -> Result<(), DbError> {
    let (owner, campaign_id): (Option<String>, i64) = coupons::table
        .find(coupon_id)
        .select((coupons::owner_openid, coupons::campaign_id))
        .first(conn)?;
    let has_message = campaign_messages::table
        .find(campaign_id)
        .count()
        .get_result::<i64>(conn)?
        > 0;
    if owner.is_none() || !has_message {
        return Ok(());
    }
    crate::features::outbox::repo::enqueue_redeemed_message(
        conn,
        coupon_id,
        &crate::features::outbox::repo::RedeemedMessage { coupon_id },
        now,
    )
}

/// The template message of a redeemed coupon, rendered from what was committed (`None`: nothing to send — no
/// owner, or the campaign's message was removed since).
pub fn render_redeemed(conn: &mut DbConnection, coupon_id: i64) -> Result<Option<Rendered>, DbError> {
    let (owner, code, campaign_id, redeemed_at): (Option<String>, String, i64, Option<i64>) = coupons::table
        .find(coupon_id)
        .select((
            coupons::owner_openid,
            coupons::code,
            coupons::campaign_id,
            coupons::redeemed_at,
        ))
        .first(conn)?;
    let Some(owner) = owner else {
        return Ok(None);
    };
    let Some((template_id, fields)) = campaign_messages::table
        .find(campaign_id)
        .select((campaign_messages::template_id, campaign_messages::fields))
        .first::<(String, String)>(conn)
        .optional()?
    else {
        return Ok(None);
    };
    let (title, value_fen, merchant_id): (String, Option<i64>, i64) = campaigns::table
        .find(campaign_id)
        .select((campaigns::title, campaigns::value_fen, campaigns::merchant_id))
        .first(conn)?;
    let merchant: String = merchants::table.find(merchant_id).select(merchants::name).first(conn)?;
    let fields: BTreeMap<String, String> = serde_json::from_str(&fields).unwrap_or_default();
    let value = value_fen
        .map(|v| {
            if v % 100 == 0 {
                format!("¥{}", v / 100)
            } else {
                format!("¥{}.{:02}", v / 100, v % 100)
            }
        })
        .unwrap_or_default();
    let tail: String = code.chars().skip(code.chars().count().saturating_sub(4)).collect();
    let when = beijing(redeemed_at.unwrap_or(0));
    let data = fields
        .into_iter()
        .map(|(k, v)| {
            let text = v
                .replace("{title}", &title)
                .replace("{merchant}", &merchant)
                .replace("{value}", &value)
                .replace("{redeemed_at}", &when)
                .replace("{code_tail}", &tail);
            (k, text)
        })
        .collect();
    Ok(Some(Rendered {
        touser: owner,
        template_id,
        data,
        client_msg_id: format!("redeemed-{coupon_id}"),
        coupon_code: code,
    }))
}

/// A redemption message ready to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    /// The customer.
    pub touser: String,
    /// The template.
    pub template_id: String,
    /// Its data.
    pub data: BTreeMap<String, String>,
    /// The coupon (the message links to its page).
    pub coupon_code: String,
    /// WeChat's de-duplication id: one message per coupon however often it is sent.
    pub client_msg_id: String,
}

//! The outbox worker: delivers the work owed to WeChat ([`crate::features::outbox::repo`]) in the background, with retries and
//! exponential backoff, until WeChat confirms or gives a final answer. A request never waits on it.
//!
//! Delivery is at least once and applied once: an item is claimed under a lease (one instance at a time), and a
//! consume WeChat already applied answers 40099, which counts as done. A final error (unknown code, card
//! unavailable, app misconfigured) marks the item `failed` for an operator (admin API, `/metrics`).

use crate::db::{self, Db};
use crate::features::outbox::repo::{self as repo, CardConsume, OutboxRow, Settle};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Notify;

/// How the worker retries.
#[derive(Clone, Debug)]
pub struct OutboxOptions {
    /// How often to look for due work when nobody wakes the worker.
    pub poll: Duration,
    /// First retry delay; doubled per attempt.
    pub retry_base: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// Attempts before an item is marked failed.
    pub max_attempts: i32,
    /// How long a claim holds: longer than one delivery can take (the WeChat client gives up after 10 s per try).
    pub lease: Duration,
}

impl Default for OutboxOptions {
    fn default() -> Self {
        OutboxOptions {
            poll: Duration::from_secs(1),
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(600),
            max_attempts: 30,
            lease: Duration::from_secs(120),
        }
    }
}

/// Delivered, retried and failed items since start (this instance).
#[derive(Debug, Default)]
pub struct OutboxCounters {
    /// Confirmed by WeChat.
    pub delivered: AtomicU64,
    /// Attempts that will be retried.
    pub retried: AtomicU64,
    /// Marked failed.
    pub failed: AtomicU64,
}

/// A handle on the running worker.
#[derive(Clone, Debug)]
pub struct Outbox {
    wake: Arc<Notify>,
    counters: Arc<OutboxCounters>,
    /// The lease owner of this instance's worker.
    owner: Arc<str>,
}

impl OutboxOptions {
    /// The options of `outbox.*`.
    pub fn from_settings(s: &crate::configuration::OutboxSettings) -> OutboxOptions {
        OutboxOptions {
            poll: Duration::from_millis(s.poll_ms),
            retry_base: Duration::from_millis(s.retry_base_ms),
            retry_max: Duration::from_millis(s.retry_max_ms),
            max_attempts: i32::try_from(s.max_attempts).unwrap_or(i32::MAX),
            ..OutboxOptions::default()
        }
    }
}

impl Default for Outbox {
    fn default() -> Self {
        Outbox::new()
    }
}

impl Outbox {
    /// A handle whose worker is not running yet (see [`worker`](Self::worker)).
    pub fn new() -> Outbox {
        Outbox {
            wake: Arc::new(Notify::new()),
            counters: Arc::new(OutboxCounters::default()),
            owner: Arc::from(format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple())),
        }
    }

    /// The worker of this handle, to run as a background job: it claims due work under a lease of its own.
    pub fn worker(
        &self,
        pool: Db,
        targets: Targets,
        options: OutboxOptions,
        clock: Arc<dyn wechat_core::Clock>,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        run(pool, targets, options, self.owner.to_string(), self.clone(), clock)
    }

    /// Hands back the leases this instance's worker holds (call after stopping it): another instance delivers those
    /// items at once instead of after the lease runs out. Returns how many.
    pub async fn release_leases(&self, pool: &Db) -> Result<usize, crate::db::DbError> {
        let owner = self.owner.to_string();
        db::blocking(pool, move |conn| repo::release_leases(conn, &owner)).await
    }

    /// Tells the worker that new work was committed (it also polls).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// This instance's counters.
    pub fn counters(&self) -> &OutboxCounters {
        &self.counters
    }
}

async fn run(
    pool: Db,
    targets: Targets,
    options: OutboxOptions,
    owner: String,
    outbox: Outbox,
    clock: Arc<dyn wechat_core::Clock>,
) {
    let lease_ms = i64::try_from(options.lease.as_millis()).unwrap_or(i64::MAX / 4);
    loop {
        let claim_owner = owner.clone();
        let now = clock.now_ms();
        let claimed = db::blocking(&pool, move |conn| {
            repo::claim_due(conn, &claim_owner, now, lease_ms, 32)
        })
        .await;
        let items = match claimed {
            Ok(items) => items,
            Err(e) => {
                tracing::warn!(error = %e, "outbox: cannot claim work");
                Vec::new()
            }
        };
        if items.is_empty() {
            tokio::select! {
                () = outbox.wake.notified() => {}
                () = tokio::time::sleep(options.poll) => {}
            }
            continue;
        }
        for item in items {
            let result = deliver(&pool, &targets, &item, &options, clock.now_ms()).await;
            match &result {
                Settle::Done => {
                    outbox.counters.delivered.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("wxkit_outbox_deliveries_total", "result" => "done").increment(1);
                }
                Settle::Retry { error, .. } => {
                    outbox.counters.retried.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("wxkit_outbox_deliveries_total", "result" => "retry").increment(1);
                    tracing::warn!(id = item.id, attempts = item.attempts, error = %error, "outbox: delivery failed, will retry");
                }
                Settle::Failed { error } => {
                    outbox.counters.failed.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("wxkit_outbox_deliveries_total", "result" => "failed").increment(1);
                    tracing::error!(id = item.id, kind = %item.kind, error = %error, "outbox: delivery failed for good; an operator must look at it");
                }
            }
            let settle_owner = owner.clone();
            let id = item.id;
            let now = clock.now_ms();
            match db::blocking(&pool, move |conn| repo::settle(conn, id, &settle_owner, &result, now)).await {
                Ok(true) => {}
                Ok(false) => tracing::warn!(id, "outbox: lease lost before the result was recorded"),
                // The lease runs out and the item is delivered again; WeChat answers 40099 then (done).
                Err(e) => tracing::warn!(id, error = %e, "outbox: cannot record a delivery"),
            }
        }
    }
}

/// The delay before retry number `attempts` (1-based): base × 2^(attempts−1), capped.
pub fn backoff(options: &OutboxOptions, attempts: i32) -> Duration {
    let exp = u32::try_from(attempts.saturating_sub(1)).unwrap_or(0).min(30);
    options.retry_base.saturating_mul(1u32 << exp).min(options.retry_max)
}

/// Where the outbox delivers: the card API, the message API, and the server's address (for links in messages).
#[derive(Clone, Debug)]
pub struct Targets {
    /// Card consumes.
    pub cards: wechat_card::CardClient,
    /// Messages to customers.
    pub messages: wechat_message::send::MessageClient,
    /// The mini program (shipping uploads), when configured.
    pub miniprogram: Option<wechat_oauth::miniprogram::MiniProgramClient>,
    /// `server.public_base_url`.
    pub public_base_url: String,
    /// WeChat Pay 商家券 (use, deactivate), when the merchant has it.
    pub busifavor: Option<crate::platform::busifavor::Busifavor>,
}

async fn deliver(pool: &Db, targets: &Targets, item: &OutboxRow, options: &OutboxOptions, now: i64) -> Settle {
    let outcome = match item.kind.as_str() {
        repo::KIND_CARD_CONSUME => match serde_json::from_str::<CardConsume>(&item.payload) {
            Ok(c) => classify(targets.cards.consume_code(&c.code, Some(&c.card_id)).await.map(|_| ())),
            Err(e) => Err((true, format!("unreadable payload: {e}"))),
        },
        repo::KIND_REDEEMED_MESSAGE => match serde_json::from_str::<repo::RedeemedMessage>(&item.payload) {
            Ok(m) => {
                let coupon_id = m.coupon_id;
                match db::blocking(pool, move |conn| {
                    crate::features::merchants::messages::render_redeemed(conn, coupon_id)
                })
                .await
                {
                    Ok(Some(rendered)) => send_redeemed(targets, &rendered).await,
                    // No owner, or the campaign's message was removed since: nothing owed.
                    Ok(None) => Ok(()),
                    Err(e) => Err((false, e.to_string())),
                }
            }
            Err(e) => Err((true, format!("unreadable payload: {e}"))),
        },
        repo::KIND_UPLOAD_SHIPPING => match serde_json::from_str::<repo::UploadShipping>(&item.payload) {
            Ok(u) => upload_shipping(targets, &u, now).await,
            Err(e) => Err((true, format!("unreadable payload: {e}"))),
        },
        repo::KIND_BUSIFAVOR_USE => match serde_json::from_str::<repo::BusifavorUse>(&item.payload) {
            Ok(u) => busifavor_use(targets, &u, now).await,
            Err(e) => Err((true, format!("unreadable payload: {e}"))),
        },
        repo::KIND_BUSIFAVOR_DEACTIVATE => match serde_json::from_str::<repo::BusifavorDeactivate>(&item.payload) {
            Ok(d) => busifavor_deactivate(targets, &d).await,
            Err(e) => Err((true, format!("unreadable payload: {e}"))),
        },
        repo::KIND_BUSIFAVOR_BUDGET => match serde_json::from_str::<repo::BusifavorBudget>(&item.payload) {
            Ok(b) => busifavor_budget(targets, &b).await,
            Err(e) => Err((true, format!("unreadable payload: {e}"))),
        },
        other => Err((true, format!("unknown outbox kind {other:?}"))),
    };
    match outcome {
        Ok(()) => Settle::Done,
        Err((true, error)) => Settle::Failed { error },
        Err((false, error)) if item.attempts >= options.max_attempts => Settle::Failed {
            error: format!("gave up after {} attempts: {error}", item.attempts),
        },
        Err((false, error)) => {
            let delay = i64::try_from(backoff(options, item.attempts).as_millis()).unwrap_or(i64::MAX / 4);
            Settle::Retry {
                at: now.saturating_add(delay),
                error,
            }
        }
    }
}

/// A mini-program payment's shipping, uploaded (a virtual good delivered at once). A refusal (no such payment, the
/// payer does not match, bad input) is final and left for an operator; WeChat failing is retried.
async fn upload_shipping(targets: &Targets, u: &repo::UploadShipping, now: i64) -> Result<(), (bool, String)> {
    let Some(mp) = targets.miniprogram.as_ref() else {
        return Err((true, "no mini program is configured (miniprogram.app_id)".into()));
    };
    let upload = wechat_oauth::miniprogram::UploadShippingInfo::virtual_goods(
        &u.transaction_id,
        &wechat_core::OpenId::new(u.openid.clone()),
        &u.item_desc,
        &crate::platform::time::beijing_rfc3339(now),
    )
    .map_err(|e| (true, e.to_string()))?;
    match mp.upload_shipping_info(&upload).await {
        Ok(()) => Ok(()),
        Err(wechat_oauth::Error::Wechat(e)) => Err(wechat_failure(&e)),
        Err(e) => Err((true, e.to_string())),
    }
}

/// A 商家券 use at WeChat Pay. The same `use_request_no` again is the same success at WeChat, so a retry after a lost
/// answer is safe. A refusal (used already under another number, expired or deactivated at WeChat, no such coupon)
/// is final: our redemption stands, and the item is left failed for an operator.
async fn busifavor_use(targets: &Targets, u: &repo::BusifavorUse, now: i64) -> Result<(), (bool, String)> {
    let Some(b) = targets.busifavor.as_ref() else {
        return Err((true, crate::platform::busifavor::NOT_CONFIGURED.into()));
    };
    let request = wechat_pay::v3::marketing::busifavor::UseCoupon::new(
        &u.coupon_code,
        &u.stock_id,
        &b.appid,
        now / 1000,
        &u.use_request_no,
    )
    .map_err(|e| (true, e.to_string()))?
    .openid(&u.openid);
    b.client.send(&request).await.map(|_| ()).map_err(|e| pay_failure(&e))
}

/// A 商家券 deactivation (使券失效), once per coupon (`V` + its id). Final refusals as for a use.
async fn busifavor_deactivate(targets: &Targets, d: &repo::BusifavorDeactivate) -> Result<(), (bool, String)> {
    let Some(b) = targets.busifavor.as_ref() else {
        return Err((true, crate::platform::busifavor::NOT_CONFIGURED.into()));
    };
    let request =
        wechat_pay::v3::marketing::busifavor::DeactivateCoupon::new(&d.coupon_code, &d.stock_id, &d.request_no)
            .map_err(|e| (true, e.to_string()))?
            .reason(&d.reason);
    b.client.send(&request).await.map(|_| ()).map_err(|e| pay_failure(&e))
}

/// A 商家券 stock's budget up to the campaign's quantity: read what WeChat holds, then change it from that (WeChat's
/// compare-and-set: a change meanwhile makes the call fail, and the retry reads again). Never lowered.
async fn busifavor_budget(targets: &Targets, b: &repo::BusifavorBudget) -> Result<(), (bool, String)> {
    use wechat_pay::v3::marketing::busifavor::{ModifyBudget, QueryStock};
    let Some(bf) = targets.busifavor.as_ref() else {
        return Err((true, crate::platform::busifavor::NOT_CONFIGURED.into()));
    };
    let query = QueryStock::new(&b.stock_id).map_err(|e| (true, e.to_string()))?;
    let held = bf.client.send(&query).await.map_err(|e| pay_failure(&e))?;
    let current = held.stock_send_rule.max_coupons;
    if current >= b.target {
        return Ok(());
    }
    let change = ModifyBudget::new(&b.stock_id, current, b.target, &b.request_no).map_err(|e| (true, e.to_string()))?;
    match bf.client.send(&change).await {
        Ok(_) => Ok(()),
        // The budget moved between the read and the change: read again on the next attempt.
        Err(e @ wechat_pay::Error::Api { status: 400, .. }) => Err((false, e.to_string())),
        Err(e) => Err(pay_failure(&e)),
    }
}

/// A WeChat Pay v3 failure for the outbox: an answered 4xx refusal is final; WeChat failing (5xx, throttling), the
/// transport and an answer that did not verify are retried.
fn pay_failure(e: &wechat_pay::Error) -> (bool, String) {
    let refused = matches!(e, wechat_pay::Error::Api { status, .. } if *status < 500) && !e.is_retryable();
    (refused, e.to_string())
}

/// A WeChat call's failure for the outbox: (final?, what). WeChat failing, throttling or losing the token, the
/// transport, the store or an unreadable answer are retried; anything WeChat refused is final.
fn wechat_failure(e: &wechat_core::Error) -> (bool, String) {
    let retry = e.is_transient()
        || e.is_token_invalid()
        || matches!(
            e,
            wechat_core::Error::RateLimited { .. }
                | wechat_core::Error::Transport(_)
                | wechat_core::Error::Store(_)
                | wechat_core::Error::Decode { .. }
                | wechat_core::Error::HttpStatus { .. }
        );
    (!retry, e.to_string())
}

/// `Ok` when WeChat has the code consumed; otherwise whether the error is final, and what it was.
fn classify(result: Result<(), wechat_card::Error>) -> Result<(), (bool, String)> {
    use wechat_card::Error as E;
    match result {
        // Consumed now, or already (by an earlier delivery whose answer was lost, or at WeChat's side).
        Ok(()) | Err(E::AlreadyConsumed { .. }) => Ok(()),
        Err(
            e @ (E::InvalidCode { .. } | E::Unavailable { .. } | E::InvalidEncryptCode { .. } | E::InvalidInput { .. }),
        ) => Err((true, e.to_string())),
        Err(E::Wechat(e)) => Err(wechat_failure(&e)),
        Err(e) => Err((true, e.to_string())),
    }
}

/// The "核销成功" template message. Retrying is safe: `client_msg_id` makes WeChat send one message per coupon
/// however often it is asked (within 24 h). A refusal (not following, template or data invalid) is final: the
/// redemption stands, and the item is left failed for an operator.
async fn send_redeemed(
    targets: &Targets,
    m: &crate::features::merchants::messages::Rendered,
) -> Result<(), (bool, String)> {
    use wechat_message::send::{Data, TemplateMessage};
    let data = m.data.iter().fold(Data::new(), |d, (k, v)| d.with(k, v.clone()));
    let message = TemplateMessage::new(&m.touser, &m.template_id, data)
        .and_then(|t| t.url(&format!("{}/c/{}", targets.public_base_url, m.coupon_code)))
        .map(|t| t.client_msg_id(&m.client_msg_id))
        .map_err(|e| (true, e.to_string()))?;
    match targets.messages.send_template(&message).await {
        Ok(_) => Ok(()),
        Err(e) if e.refusal().is_some() => Err((true, e.to_string())),
        Err(wechat_message::send::Error::Wechat(e)) => {
            let retry = e.is_transient() || e.is_token_invalid() || e.errcode().is_none();
            Err((!retry, e.to_string()))
        }
        Err(e) => Err((true, e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let o = OutboxOptions {
            retry_base: Duration::from_millis(100),
            retry_max: Duration::from_secs(1),
            ..OutboxOptions::default()
        };
        let delays: Vec<u128> = (1..=6).map(|a| backoff(&o, a).as_millis()).collect();
        assert_eq!(delays, vec![100, 200, 400, 800, 1000, 1000]);
        assert_eq!(backoff(&o, 0).as_millis(), 100);
        assert_eq!(backoff(&o, i32::MAX).as_millis(), 1000);
    }

    #[test]
    fn wechat_answers_are_sorted_into_done_retry_and_final() {
        let api = |code| wechat_card::Error::from(wechat_core::Error::from_errcode(code, "x"));
        assert_eq!(classify(Ok(())), Ok(()));
        assert_eq!(classify(Err(api(40099))), Ok(()), "already consumed is done");
        assert!(
            matches!(classify(Err(api(40056))), Err((true, _))),
            "unknown code is final"
        );
        assert!(matches!(classify(Err(api(40127))), Err((true, _))));
        assert!(
            matches!(classify(Err(api(-1))), Err((false, _))),
            "system busy is retried"
        );
        assert!(
            matches!(classify(Err(api(40001))), Err((false, _))),
            "token trouble is retried"
        );
        assert!(
            matches!(classify(Err(api(45009))), Err((false, _))),
            "rate limits are retried"
        );
        assert!(
            matches!(classify(Err(api(40013))), Err((true, _))),
            "a misconfigured app is final"
        );
    }
}

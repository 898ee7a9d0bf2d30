//! Taking a push: opened by the SDK's [`wechat::PushReceiver`] (signature; in safe mode only encrypted pushes with a
//! valid `msg_signature`, decrypted and checked against our appid; timestamp within the window), then applied once:
//! its `(timestamp, nonce)`, dedupe record and effect commit in one transaction ([`super::repo::apply_push`]). The
//! caller acknowledges only what this returns as taken.

use super::repo::{self, FollowOutcome, PushApplied, PushEffect, PushNonce};
use crate::db::{self, DbError};
use crate::platform::Platform;
use crate::platform::crypto::sha256_hex_bytes;
use wechat_card::events::{CardEvent, Push};
use wechat_core::push::{PushError, PushQuery};
use wechat_message::{Article, Event, Incoming, Kind, Reply};

/// Longest dedupe key (FromUserName + CreateTime + event + card code) accepted.
pub const MAX_DEDUPE_KEY: usize = 256;
/// Longest nonce accepted.
pub const MAX_NONCE: usize = 64;

/// Why a push was not taken.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// It failed the receiver's checks (forged, downgraded, foreign, stale or unreadable).
    #[error("push refused: {0}")]
    Unauthentic(#[from] PushError),
    /// Its nonce is empty or too long.
    #[error("invalid nonce")]
    InvalidNonce,
    /// Its fields are too long to remember.
    #[error("push fields too long")]
    TooLong,
    /// Its `(timestamp, nonce)` came before with another body: forged or replayed.
    #[error("its timestamp and nonce came before with another body")]
    Replay,
    /// Nothing was committed: WeChat's re-send will be applied.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// A push taken (applied now, or recognised as a re-send), and what to answer.
#[derive(Debug)]
pub struct Taken {
    /// The push, as WeChat sent it.
    pub message: Incoming,
    /// A passive reply, or none (`success`).
    pub reply: Option<Reply>,
}

/// Opens, checks and applies one push.
pub async fn receive(
    platform: &Platform,
    receiver: &wechat::PushReceiver,
    query: &PushQuery,
    body: &[u8],
) -> Result<Taken, Refused> {
    let now = platform.now_ms();
    let message = receiver.open(query, body, now / 1000)?;
    // The receiver checked the timestamp: digits, within the window.
    let timestamp = query.timestamp.parse::<i64>().map_err(|_| PushError::BadTimestamp)?;
    if query.nonce.is_empty() || query.nonce.len() > MAX_NONCE {
        return Err(Refused::InvalidNonce);
    }
    let key = message.dedupe_key();
    if key.len() > MAX_DEDUPE_KEY {
        return Err(Refused::TooLong);
    }
    let effect = effect_of(&message);
    let nonce = PushNonce {
        timestamp,
        nonce: query.nonce.clone(),
        body_sha256: sha256_hex_bytes(body),
    };
    let applied = db::blocking(&platform.db, move |conn| {
        repo::apply_push(conn, &nonce, &key, &effect, now)
    })
    .await?;
    let reply = match applied {
        PushApplied::Applied(what) => {
            tracing::info!(what, "applied a push");
            match &message.kind {
                // A customer writing to the account gets the way to their coupons.
                Kind::Text { .. } => Some(text_reply(&platform.public_base_url)),
                _ => None,
            }
        }
        PushApplied::Followed(outcome) => {
            // The outcome carries the coupon code, a bearer secret: log what happened, not the code.
            let what = match &outcome {
                FollowOutcome::Issued { .. } => "coupon issued",
                FollowOutcome::Refused(_) => "refused by the campaign's rules",
                FollowOutcome::NoCampaign => "no such campaign",
            };
            tracing::info!(what, "follow code scanned");
            Some(follow_reply(&platform.public_base_url, &outcome))
        }
        PushApplied::Duplicate => None,
        PushApplied::Replay => return Err(Refused::Replay),
    };
    Ok(Taken { message, reply })
}

/// What a push asks of us: a card event on one of our coupons, a follow code's scan, or nothing.
fn effect_of(message: &Incoming) -> PushEffect {
    let push = Push::from_fields(message.fields.clone());
    match push.event {
        CardEvent::UserGetCard {
            card_id,
            user_card_code,
            outer_str: Some(code),
            ..
        } => PushEffect::LinkCard {
            coupon_code: code,
            card_id,
            card_code: user_card_code,
            from_user: push.from_user_name,
        },
        CardEvent::UserConsumeCard { user_card_code, .. } => PushEffect::ConsumeCard {
            card_code: user_card_code,
        },
        _ => match &message.kind {
            // The mini program's reminder that an order's shipping is due: upload it again.
            Kind::Event(Event::ShippingReminder { merchant_trade_no, .. }) if !merchant_trade_no.is_empty() => {
                PushEffect::Reship {
                    out_trade_no: merchant_trade_no.clone(),
                }
            }
            // Follow to get a coupon: a campaign's code scanned by a new follower or a follower.
            Kind::Event(Event::Subscribe { scene: Some(scene), .. }) | Kind::Event(Event::Scan { scene, .. }) => {
                match crate::features::merchants::follow::campaign_of(scene) {
                    Some(campaign_id) if !message.from_user_name.is_empty() => PushEffect::FollowCoupon {
                        campaign_id,
                        openid: message.from_user_name.clone(),
                    },
                    _ => PushEffect::Nothing,
                }
            }
            _ => PushEffect::Nothing,
        },
    }
}

/// The answer to a text message: where the customer's coupons are.
fn text_reply(base: &str) -> Reply {
    Reply::text(format!("你的优惠券都在这里 · Your coupons: {base}/coupons/mine"))
}

/// The passive reply to a follow code's scan: a news message opening the coupon, or why there is none.
fn follow_reply(base: &str, outcome: &FollowOutcome) -> Reply {
    match outcome {
        FollowOutcome::Issued { code, title } => Reply::News(Article {
            title: format!("领取成功 · {title}"),
            description: "点此打开你的券，到店出示二维码核销 · Tap to open your coupon and show its QR code in store"
                .into(),
            pic_url: String::new(),
            url: format!("{base}/c/{code}"),
        }),
        FollowOutcome::Refused(redemption_core::IssueError::PerUserLimit) => Reply::text(format!(
            "你已领取过这张券 · You already have this coupon: {base}/coupons/mine"
        )),
        FollowOutcome::Refused(redemption_core::IssueError::SoldOut) => {
            Reply::text("这张券已领完 · All of these coupons have been given out")
        }
        FollowOutcome::Refused(redemption_core::IssueError::Ended) | FollowOutcome::NoCampaign => {
            Reply::text("活动已结束 · This offer has ended")
        }
    }
}

/// Forgets push nonces and dedupe records past the windows that need them.
pub async fn prune(platform: &Platform, window_secs: i64) -> Result<usize, DbError> {
    // Dedupe records outlive WeChat's retries (3 tries, 5 s apart) and the timestamp window with room.
    let keep_ms = (2 * window_secs + 60).max(3600) * 1000;
    let now = platform.now_ms();
    db::blocking(&platform.db, move |conn| repo::prune(conn, now, window_secs, keep_ms)).await
}

//! The demo: a merchant, a staff member, a customer and a campaign, and the simulated WeChat users to play them.

use super::{DEMO_CUSTOMER_OPENID, DEMO_OWNER_OPENID, DEMO_STAFF_OPENID, DEMO_VISITOR_OPENID, Demo};
use crate::db::{self, DbError};
use crate::features::coupons::repo as coupons_repo;
use crate::features::merchants::repo as merchants_repo;
use crate::platform::Platform;
use crate::platform::crypto::{random_token, sha256_hex};
use crate::platform::wechat::WechatApps;
use wechat_sim::{SimServer, SimUser};

fn sim_user(appid: &str, openid: &str, nickname: &str) -> SimUser {
    SimUser {
        appid: appid.to_owned(),
        openid: openid.to_owned(),
        nickname: nickname.to_owned(),
        sex: 0,
        province: "广东".into(),
        city: "广州".into(),
        country: "中国".into(),
        headimgurl: String::new(),
        unionid: None,
        snapshot: false,
        blocked: false,
        phone: None,
    }
}

/// Seeds the demo once per database (idempotent across restarts) and registers the simulated users.
pub async fn seed(state: &Platform, apps: &WechatApps, sim: &SimServer) -> Result<Demo, DbError> {
    let appid = crate::configuration::SANDBOX_APP_ID;
    let mp_appid = crate::configuration::SANDBOX_MP_APP_ID;
    // Each person has an openid per app and one unionid (the apps share an Open Platform account), so logging in
    // through the mini program finds the person the official account knows.
    for (openid, mp_openid, nickname, unionid) in [
        (
            DEMO_STAFF_OPENID,
            "o-mp-demo-staff",
            "店员小王 Staff Wang",
            "u-demo-staff",
        ),
        (
            DEMO_CUSTOMER_OPENID,
            "o-mp-demo-customer",
            "顾客小李 Customer Li",
            "u-demo-customer",
        ),
        (
            DEMO_VISITOR_OPENID,
            "o-mp-demo-visitor",
            "路人 Passer-by",
            "u-demo-visitor",
        ),
        (
            DEMO_OWNER_OPENID,
            "o-mp-demo-owner",
            "店主老陈 Owner Chen",
            "u-demo-owner",
        ),
    ] {
        sim.handle().add_user(SimUser {
            unionid: Some(unionid.into()),
            ..sim_user(appid, openid, nickname)
        });
        sim.handle().add_user(SimUser {
            unionid: Some(unionid.into()),
            ..sim_user(mp_appid, mp_openid, nickname)
        });
    }
    // The simulated mini program's server is this one.
    sim.handle().set_backend(mp_appid, &state.public_base_url);
    // WeChat (simulated) pushes card events to us.
    if let Some(sandbox) = &apps.sandbox {
        sim.handle().set_push(
            appid,
            &format!("{}/wechat/push", state.public_base_url),
            sandbox.push_token.secret(),
            Some(sandbox.push_aes_key.secret()),
        );
    }
    // This run's simulator is new: it never issued the tokens and tickets a previous run cached in the database
    // (the access token would be refreshed on its first refusal, but a cached jsapi or wx_card ticket would sign
    // pages the simulator then refuses). Forgotten here, before anything asks for one.
    let forget = [appid.to_owned(), mp_appid.to_owned()];
    db::blocking(&state.db, move |conn| {
        use crate::db::schema::wechat_tokens;
        use diesel::prelude::*;
        diesel::delete(wechat_tokens::table.filter(wechat_tokens::app_id.eq_any(&forget))).execute(conn)?;
        Ok(())
    })
    .await?;
    let card_id = demo_card(&apps.official.cards()).await;
    let now = state.clock.now_ms();
    let coupons = db::blocking(&state.db, move |conn| seed_rows(conn, now, card_id.as_deref())).await?;
    let (coupons, sale_campaign_id, card_coupon, staff_token) = coupons;
    let busifavor_coupon = match &apps.busifavor {
        Some(b) => demo_stock(state, b).await,
        None => None,
    };
    Ok(Demo {
        sale_campaign_id,
        card_coupon,
        busifavor_coupon,
        customer_coupons: coupons,
        staff_token,
    })
}

/// The 商家券 demo: this run's stock at the simulator (which forgets stocks between runs) behind a campaign, the
/// callback URL set, and a customer coupon not yet in the card bag. `None` (logged) if the simulator refused.
async fn demo_stock(state: &Platform, b: &crate::platform::busifavor::Busifavor) -> Option<String> {
    use wechat_pay::v3::marketing::busifavor as wx;
    let now = state.clock.now_ms();
    let stock = wx::CreateStock::new(
        "到店咖啡券",
        "咖啡一杯",
        wx::CouponValue::Exchange {
            exchange_price: 1,
            transaction_minimum: 2,
        },
        (now / 1000 - 60, now / 1000 + 365 * 86_400),
        10_000,
        5,
        &format!("WXKITDEMO{now}"),
    )
    .map(|s| {
        s.merchant_name("演示咖啡店")
            .description("到店出示券码核销")
            .notify_appid(&b.appid)
    });
    let created = match stock {
        Ok(s) => b.client.send(&s).await,
        Err(e) => Err(e),
    };
    let stock_id = match created {
        Ok(c) => c.stock_id,
        Err(e) => {
            tracing::warn!(error = %e, "sandbox: no 商家券 demo stock");
            return None;
        }
    };
    if let Ok(set) = wx::SetCallbacks::new(&format!("{}/wechat/pay/v3/notify", state.public_base_url))
        && let Err(e) = b.client.send(&set).await
    {
        tracing::warn!(error = %e, "sandbox: the 商家券 callback URL was not set");
    }
    let result = db::blocking(&state.db, move |conn| demo_stock_rows(conn, now, &stock_id)).await;
    result.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "sandbox: no 商家券 demo campaign");
        None
    })
}

/// The 商家券 campaign (made once), this run's stock behind it, and the customer's coupon not in the card bag.
fn demo_stock_rows(conn: &mut db::DbConnection, now: i64, stock_id: &str) -> Result<Option<String>, DbError> {
    use crate::db::schema::{coupon_card_bag, coupons, wechat_pay_stocks};
    use diesel::prelude::*;
    const TITLE: &str = "到店咖啡券 Coffee coupon (WeChat Pay)";
    let Some(merchant) = merchants_repo::list_merchants(conn)?.into_iter().next() else {
        return Ok(None);
    };
    let campaign = match merchants_repo::list_campaigns(conn, Some(merchant.id))?
        .into_iter()
        .find(|c| c.title == TITLE && usable(c, now))
    {
        Some(c) => c,
        None => merchants_repo::create_campaign(
            conn,
            &merchants_repo::NewCampaign {
                merchant_id: merchant.id,
                title: TITLE.into(),
                description: Some(
                    "加入微信卡包，到店出示核销 · Add it to your WeChat card bag; show it at the till".into(),
                ),
                value_fen: None,
                valid_from: now - 60_000,
                valid_until: now + 360 * 86_400_000,
                quantity: None,
                per_user_limit: Some(5),
                wechat_card_id: None,
                price_fen: None,
            },
            now,
        )?,
    };
    // The simulator forgot last run's stock and its coupons: this run's stock replaces it, and no coupon is in a card
    // bag any more.
    let ids = coupons::table
        .filter(coupons::campaign_id.eq(campaign.id))
        .select(coupons::id);
    diesel::delete(coupon_card_bag::table.filter(coupon_card_bag::coupon_id.eq_any(ids))).execute(conn)?;
    diesel::delete(wechat_pay_stocks::table.filter(wechat_pay_stocks::campaign_id.eq(campaign.id))).execute(conn)?;
    crate::features::coupons::busifavor::attach_stock(conn, campaign.id, stock_id, true, now)?;
    let mine = coupons_repo::coupons_of_owner(conn, DEMO_CUSTOMER_OPENID)?
        .into_iter()
        .find(|(c, _)| c.campaign_id == campaign.id && c.status == "issued")
        .map(|(c, _)| c.code);
    Ok(match mine {
        Some(code) => Some(code),
        None => match coupons_repo::issue_coupon(conn, campaign.id, Some(DEMO_CUSTOMER_OPENID), now) {
            Ok((c, _)) => Some(c.code),
            Err(coupons_repo::IssueFailure::Db(e)) => return Err(e),
            Err(other) => return Err(DbError::Task(other.to_string())),
        },
    })
}

/// This run's WeChat card at the simulator (logo upload, `card/create`), or `None` (logged) if that failed.
async fn demo_card(cards: &wechat_card::CardClient) -> Option<String> {
    use wechat_card::{BaseInfo, CardDefinition, CardKind, DateInfo};
    let made = async {
        let logo = qr_render::render_png("wxkit", &qr_render::RenderOptions::default()).map_err(|e| e.to_string())?;
        let logo_url = cards.upload_logo(&logo).await.map_err(|e| e.to_string())?;
        let base = BaseInfo::builder()
            .logo_url(logo_url)
            .brand_name("wxkit 示例咖啡")
            .title("甜点券")
            .color("Color010")
            .notice("到店出示，店员扫码核销")
            .description("每次限用一张")
            .date_info(DateInfo::FixTerm {
                fixed_term: 365,
                fixed_begin_term: 0,
            })
            .quantity(1000)
            .build()
            .map_err(|e| e.to_string())?;
        let definition = CardDefinition::new(
            CardKind::GeneralCoupon {
                default_detail: "甜点一份".into(),
            },
            base,
        )
        .map_err(|e| e.to_string())?;
        cards.create(&definition).await.map_err(|e| e.to_string())
    };
    match made.await {
        Ok(card_id) => Some(card_id),
        Err(e) => {
            tracing::warn!(error = %e, "sandbox: no WeChat card for the demo");
            None
        }
    }
}

/// A campaign the demo can still use: valid for at least another day (an ended one is replaced, not an error).
fn usable(c: &merchants_repo::CampaignRow, now: i64) -> bool {
    c.valid_from <= now && c.valid_until > now + 86_400_000 && c.ended_at.is_none()
}

/// The demo's rows: merchant, staff member, campaigns and the customer's coupons — found, or made once.
fn seed_rows(
    conn: &mut db::DbConnection,
    now: i64,
    card_id: Option<&str>,
) -> Result<(Vec<String>, i64, Option<String>, String), DbError> {
    let merchant = match merchants_repo::list_merchants(conn)?.into_iter().next() {
        Some(m) => m,
        None => merchants_repo::create_merchant(conn, "wxkit 示例咖啡 Demo Café", now)?,
    };
    // The owner runs the demo shop in the console (a person known by both apps, linked by unionid).
    let owner_profile = crate::features::auth::repo::Profile {
        unionid: Some("u-demo-owner".into()),
        nickname: Some("店主老陈 Owner Chen".into()),
        avatar_url: None,
    };
    use crate::features::auth::repo::{Identity, upsert_login};
    upsert_login(conn, Identity::Web(DEMO_OWNER_OPENID), &owner_profile, now)?;
    let owner = upsert_login(conn, Identity::Mini("o-mp-demo-owner"), &owner_profile, now)?;
    crate::features::console::repo::add_member(
        conn,
        merchant.id,
        owner.id,
        crate::features::console::repo::Role::Owner,
        now,
    )?;
    // One POS token per database: stable across restarts and across instances on it.
    let staff_token = crate::platform::secrets::shared_secret(conn, "sandbox_staff_token", random_token)?;
    let hash = sha256_hex(&staff_token);
    match merchants_repo::staff_at(conn, merchant.id, DEMO_STAFF_OPENID)? {
        Some(s) if s.active && s.api_token_hash == hash && s.merchant_id == merchant.id => {}
        existing => {
            if let Some(s) = existing {
                merchants_repo::remove_staff(conn, s.id)?;
            }
            merchants_repo::add_staff(conn, merchant.id, DEMO_STAFF_OPENID, "店员小王 Staff Wang", &hash, now)?;
        }
    }
    let campaign = match merchants_repo::list_campaigns(conn, Some(merchant.id))?
        .into_iter()
        .find(|c| c.price_fen.is_none() && c.wechat_card_id.is_none() && usable(c, now))
    {
        Some(c) => c,
        None => merchants_repo::create_campaign(
            conn,
            &merchants_repo::NewCampaign {
                merchant_id: merchant.id,
                title: "免费美式咖啡 Free Americano".into(),
                description: Some("到店出示二维码，店员扫码核销 · Show the QR code at the counter".into()),
                value_fen: Some(1800),
                valid_from: now - 60_000,
                valid_until: now + 365 * 86_400_000,
                quantity: None,
                per_user_limit: None,
                wechat_card_id: None,
                price_fen: None,
            },
            now,
        )?,
    };
    // A voucher customers buy with (simulated) WeChat Pay: /c/buy/{id}.
    let for_sale = merchants_repo::list_campaigns(conn, Some(merchant.id))?
        .into_iter()
        .find(|c| c.price_fen.is_some() && usable(c, now));
    let for_sale = match for_sale {
        Some(c) => c,
        None => merchants_repo::create_campaign(
            conn,
            &merchants_repo::NewCampaign {
                merchant_id: merchant.id,
                title: "拿铁团购券 Latte voucher".into(),
                description: Some("9.9 元购原价 28 元拿铁一杯 · A ¥28 latte for ¥9.90".into()),
                value_fen: Some(2800),
                valid_from: now - 60_000,
                valid_until: now + 365 * 86_400_000,
                quantity: Some(500),
                per_user_limit: Some(5),
                wechat_card_id: None,
                price_fen: Some(990),
            },
            now,
        )?,
    };
    let card_coupon = card_coupon(conn, merchant.id, now, card_id)?;
    let mut codes: Vec<String> = coupons_repo::coupons_of_owner(conn, DEMO_CUSTOMER_OPENID)?
        .into_iter()
        .filter(|(c, _)| c.status == "issued" && c.campaign_id == campaign.id)
        .map(|(c, _)| c.code)
        .collect();
    while codes.len() < 3 {
        match coupons_repo::issue_coupon(conn, campaign.id, Some(DEMO_CUSTOMER_OPENID), now) {
            Ok((c, _)) => codes.push(c.code),
            Err(coupons_repo::IssueFailure::Db(e)) => return Err(e),
            Err(other) => return Err(DbError::Task(other.to_string())),
        }
    }
    Ok((codes, for_sale.id, card_coupon, staff_token))
}

/// A campaign backed by a WeChat card: its coupons can be added to the customer's WeChat card bag. The simulator
/// forgets its cards between runs, so each run's card replaces the last one.
fn card_coupon(
    conn: &mut db::DbConnection,
    merchant_id: i64,
    now: i64,
    card_id: Option<&str>,
) -> Result<Option<String>, DbError> {
    Ok(match card_id {
        Some(card_id) => {
            let existing = merchants_repo::list_campaigns(conn, Some(merchant_id))?
                .into_iter()
                .find(|c| c.wechat_card_id.is_some() && usable(c, now));
            let card_campaign = match existing {
                Some(c) => {
                    merchants_repo::set_campaign_card(conn, c.id, card_id)?;
                    c
                }
                None => merchants_repo::create_campaign(
                    conn,
                    &merchants_repo::NewCampaign {
                        merchant_id,
                        title: "会员甜点券 Dessert coupon (WeChat card)".into(),
                        description: Some("可加入微信卡包 · Can be added to your WeChat card bag".into()),
                        value_fen: Some(1500),
                        valid_from: now - 60_000,
                        valid_until: now + 365 * 86_400_000,
                        quantity: None,
                        per_user_limit: None,
                        wechat_card_id: Some(card_id.to_owned()),
                        price_fen: None,
                    },
                    now,
                )?,
            };
            let unlinked = coupons_repo::coupons_of_owner(conn, DEMO_CUSTOMER_OPENID)?
                .into_iter()
                .find(|(c, _)| {
                    c.campaign_id == card_campaign.id && c.status == "issued" && c.wechat_card_code.is_none()
                })
                .map(|(c, _)| c.code);
            match unlinked {
                Some(code) => Some(code),
                None => match coupons_repo::issue_coupon(conn, card_campaign.id, Some(DEMO_CUSTOMER_OPENID), now) {
                    Ok((c, _)) => Some(c.code),
                    Err(coupons_repo::IssueFailure::Db(e)) => return Err(e),
                    Err(other) => return Err(DbError::Task(other.to_string())),
                },
            }
        }
        None => None,
    })
}

//! The portable schema: one `table!` per table, valid on every backend (migrations/{sqlite,postgres,mysql}).

diesel::table! {
    /// WeChat users we know: by official-account openid, mini-program openid, or both (linked by unionid).
    users (id) {
        id -> BigInt,
        openid -> Nullable<Text>,
        unionid -> Nullable<Text>,
        mini_openid -> Nullable<Text>,
        nickname -> Nullable<Text>,
        avatar_url -> Nullable<Text>,
        phone -> Nullable<Text>,
        phone_country_code -> Nullable<Text>,
        phone_verified_at -> Nullable<BigInt>,
        last_login_at -> Nullable<BigInt>,
        created_at -> BigInt,
        updated_at -> BigInt,
        website_openid -> Nullable<Text>,
    }
}

diesel::table! {
    /// Web sessions (cookie) and mini-program sessions (bearer token), revocable.
    sessions (id) {
        id -> BigInt,
        token_hash -> Text,
        kind -> Text,
        user_id -> BigInt,
        openid -> Text,
        session_key -> Nullable<Text>,
        created_at -> BigInt,
        expires_at -> BigInt,
        revoked_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    /// Scan-a-mini-program-code-to-log-in scenes.
    login_scenes (scene) {
        scene -> Text,
        watch_key_hash -> Text,
        status -> Text,
        user_id -> Nullable<BigInt>,
        ticket_hash -> Nullable<Text>,
        ticket_expires_at -> Nullable<BigInt>,
        ticket_used_at -> Nullable<BigInt>,
        return_path -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        updated_at -> BigInt,
        qr_png -> Nullable<Binary>,
    }
}

diesel::joinable!(sessions -> users (user_id));

diesel::table! {
    /// Merchants.
    merchants (id) {
        id -> BigInt,
        name -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    /// Merchant staff who may redeem.
    staff (id) {
        id -> BigInt,
        merchant_id -> BigInt,
        openid -> Text,
        name -> Text,
        active -> Bool,
        api_token_hash -> Text,
        created_at -> BigInt,
        /// The person (joined by invite); `None` for staff the admin added by openid.
        user_id -> Nullable<BigInt>,
        /// Joined by an invite that needs the owner's approval, not approved yet.
        pending -> Bool,
        /// The invite they joined by.
        invite_id -> Nullable<BigInt>,
    }
}

diesel::table! {
    /// Campaigns.
    campaigns (id) {
        id -> BigInt,
        merchant_id -> BigInt,
        title -> Text,
        description -> Nullable<Text>,
        value_fen -> Nullable<BigInt>,
        valid_from -> BigInt,
        valid_until -> BigInt,
        quantity -> Nullable<BigInt>,
        per_user_limit -> Nullable<BigInt>,
        wechat_card_id -> Nullable<Text>,
        issued -> BigInt,
        created_at -> BigInt,
        price_fen -> Nullable<BigInt>,
        /// Ended early at (ms): no issuing or buying from then on; `valid_until` stays what it was.
        ended_at -> Nullable<BigInt>,
        /// What the end did with sold, unused coupons: `keep` or `refund`.
        end_sold -> Nullable<Text>,
        /// Why it ended (shown to nobody but the shop).
        end_reason -> Nullable<Text>,
    }
}

diesel::table! {
    /// Coupons.
    coupons (id) {
        id -> BigInt,
        campaign_id -> BigInt,
        code -> Text,
        owner_openid -> Nullable<Text>,
        status -> Text,
        redeemed_at -> Nullable<BigInt>,
        redeemed_by -> Nullable<BigInt>,
        wechat_card_code -> Nullable<Text>,
        version -> BigInt,
        created_at -> BigInt,
    }
}

diesel::table! {
    /// One row per redeemed coupon (unique coupon_id: the exactly-once guarantee).
    redemptions (id) {
        id -> BigInt,
        coupon_id -> BigInt,
        staff_id -> Nullable<BigInt>,
        channel -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    /// Every attempt, successful or not.
    audit_log (id) {
        id -> BigInt,
        action -> Text,
        coupon_code -> Nullable<Text>,
        coupon_id -> Nullable<BigInt>,
        staff_id -> Nullable<BigInt>,
        outcome -> Text,
        channel -> Nullable<Text>,
        created_at -> BigInt,
        /// Why (a void's reason).
        detail -> Nullable<Text>,
        /// The person who acted (console actions).
        actor_user_id -> Nullable<BigInt>,
        /// The merchant it concerns (console actions).
        merchant_id -> Nullable<BigInt>,
    }
}

diesel::table! {
    /// The message a campaign's customers get when their coupon is redeemed.
    campaign_messages (campaign_id) {
        campaign_id -> BigInt,
        template_id -> Text,
        fields -> Text,
        updated_at -> BigInt,
    }
}

diesel::joinable!(coupons -> campaigns (campaign_id));
diesel::joinable!(redemptions -> coupons (coupon_id));
diesel::joinable!(redemptions -> staff (staff_id));

diesel::table! {
    /// Accepted push (timestamp, nonce) pairs, within the timestamp window.
    push_nonces (timestamp, nonce) {
        timestamp -> BigInt,
        nonce -> Text,
        body_sha256 -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    /// Work owed to WeChat, delivered by the outbox worker.
    outbox (id) {
        id -> BigInt,
        kind -> Text,
        dedupe_key -> Text,
        coupon_id -> Nullable<BigInt>,
        payload -> Text,
        status -> Text,
        attempts -> Integer,
        next_attempt_at -> BigInt,
        lease_owner -> Nullable<Text>,
        lease_until -> BigInt,
        last_error -> Nullable<Text>,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    /// WeChat Pay orders.
    pay_orders (id) {
        id -> BigInt,
        out_trade_no -> Text,
        user_id -> Nullable<BigInt>,
        openid -> Nullable<Text>,
        description -> Text,
        total_fee -> BigInt,
        trade_type -> Text,
        status -> Text,
        prepay_id -> Nullable<Text>,
        code_url -> Nullable<Text>,
        transaction_id -> Nullable<Text>,
        paid_at -> Nullable<BigInt>,
        expires_at -> BigInt,
        created_at -> BigInt,
        updated_at -> BigInt,
        appid -> Nullable<Text>,
    }
}

diesel::table! {
    /// Orders that buy a campaign's coupon.
    coupon_purchases (out_trade_no) {
        out_trade_no -> Text,
        campaign_id -> BigInt,
        buyer_openid -> Text,
        coupon_code -> Nullable<Text>,
        created_at -> BigInt,
    }
}

diesel::table! {
    /// Payment notifies received and what each did.
    pay_notifications (id) {
        id -> BigInt,
        out_trade_no -> Text,
        transaction_id -> Text,
        total_fee -> BigInt,
        outcome -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    /// Refunds of paid orders.
    pay_refunds (id) {
        id -> BigInt,
        out_refund_no -> Text,
        out_trade_no -> Text,
        refund_fee -> BigInt,
        reason -> Nullable<Text>,
        status -> Text,
        refund_id -> Nullable<Text>,
        created_at -> BigInt,
        updated_at -> BigInt,
        /// Whether this refund voided the bought coupon (a failed refund gives back only that).
        voided_coupon -> Bool,
    }
}
diesel::table! {
    /// The payment reconciler's schedule: one row per order placed, visited round-robin.
    pay_order_checks (order_id) {
        order_id -> BigInt,
        /// Unix ms: when the reconciler looks at the order next (0: at its first round).
        next_check_at -> BigInt,
        /// How often the reconciler has asked WeChat about it.
        checks -> Integer,
    }
}

diesel::table! {
    /// One report per Beijing day: WeChat Pay's trade bill against our ledger.
    pay_reconciliations (bill_date) {
        bill_date -> Text,
        clean -> Bool,
        /// JSON list of differences.
        differences -> Text,
        bill_rows -> BigInt,
        created_at -> BigInt,
    }
}

diesel::joinable!(pay_order_checks -> pay_orders (order_id));

diesel::table! {
    /// People who run a merchant: `owner` or `manager`.
    merchant_members (merchant_id, user_id) {
        merchant_id -> BigInt,
        user_id -> BigInt,
        role -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    /// Invites to join a merchant (as staff, manager or owner), scanned with WeChat.
    invites (id) {
        id -> BigInt,
        merchant_id -> BigInt,
        token_hash -> Text,
        role -> Text,
        max_uses -> BigInt,
        uses -> BigInt,
        needs_approval -> Bool,
        expires_at -> BigInt,
        revoked_at -> Nullable<BigInt>,
        created_by -> Nullable<BigInt>,
        created_at -> BigInt,
        qr_png -> Binary,
    }
}

diesel::joinable!(merchant_members -> merchants (merchant_id));
diesel::joinable!(merchant_members -> users (user_id));
diesel::joinable!(staff -> users (user_id));

diesel::table! {
    /// The WeChat Pay 商家券 stock behind a campaign.
    wechat_pay_stocks (campaign_id) {
        campaign_id -> BigInt,
        stock_id -> Text,
        /// Created by wxkit (true) or attached.
        created -> Bool,
        created_at -> BigInt,
    }
}

diesel::table! {
    /// A coupon's copy in the owner's WeChat card bag (商家券): tried at `attempted_at`, there from `received_at`.
    coupon_card_bag (coupon_id) {
        coupon_id -> BigInt,
        openid -> Text,
        out_request_no -> Text,
        attempted_at -> BigInt,
        received_at -> Nullable<BigInt>,
        /// `callback` (COUPON.SEND) or `query`.
        via -> Nullable<Text>,
    }
}

diesel::joinable!(wechat_pay_stocks -> campaigns (campaign_id));
diesel::joinable!(coupon_card_bag -> coupons (coupon_id));
diesel::joinable!(campaign_messages -> campaigns (campaign_id));

// The tables of the shared stores (tokens, certificates, push keys, OAuth states) are the store crate's: they never
// join with the others.
pub use store_diesel::schema::{oauth_states, push_events, server_secrets, wechat_tokens};

// Every table may appear with every other in one query (one list: a pair named twice would not compile).
diesel::allow_tables_to_appear_in_same_query!(
    users,
    sessions,
    login_scenes,
    merchants,
    staff,
    campaigns,
    coupons,
    redemptions,
    audit_log,
    campaign_messages,
    push_nonces,
    outbox,
    pay_orders,
    coupon_purchases,
    pay_notifications,
    pay_refunds,
    pay_order_checks,
    pay_reconciliations,
    merchant_members,
    invites,
    wechat_pay_stocks,
    coupon_card_bag,
);

diesel::table! {
    /// MySQL only (migrations/mysql): scan-to-login events relayed to the other instances (see
    /// `features::scan_login::relay`).
    login_events (id) {
        id -> BigInt,
        payload -> Text,
        created_at -> BigInt,
    }
}

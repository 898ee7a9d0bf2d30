//! The store's tables (the same names and columns the wxkit server's migrations create).

diesel::table! {
    /// The shared access-token / ticket cache and its refresh lease: one row per (app, kind).
    wechat_tokens (app_id, kind) {
        /// The app.
        app_id -> Text,
        /// `access_token`, `jsapi_ticket` or `wx_card_ticket`.
        kind -> Text,
        /// The token; `NULL` when invalidated.
        value -> Nullable<Text>,
        /// Expiry, Unix seconds.
        expires_at -> BigInt,
        /// Who holds the refresh lease.
        lock_holder -> Nullable<Text>,
        /// Until when (Unix milliseconds).
        lock_until -> BigInt,
        /// Last write (Unix milliseconds).
        updated_at -> BigInt,
    }
}

diesel::table! {
    /// Server-wide values by name; the certificate store keeps `pay_v3_certificates:<mchid>` here.
    server_secrets (name) {
        /// The key.
        name -> Text,
        /// The value.
        value -> Text,
    }
}

diesel::table! {
    /// Pushes already handled.
    push_events (dedupe_key) {
        /// The push's dedupe key.
        dedupe_key -> Text,
        /// When first seen (Unix milliseconds).
        created_at -> BigInt,
    }
}

diesel::table! {
    /// Used OAuth state nonces.
    oauth_states (nonce) {
        /// The state's nonce.
        nonce -> Text,
        /// The state's expiry (Unix seconds).
        expires_at -> BigInt,
    }
}

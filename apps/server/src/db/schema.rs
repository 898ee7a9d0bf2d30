//! The portable schema: one `table!` per table, valid on both backends (migrations/{sqlite,postgres}).

diesel::table! {
    /// WeChat users we know (by openid of the official account; mini-program openid beside it).
    users (id) {
        id -> BigInt,
        openid -> Text,
        unionid -> Nullable<Text>,
        mini_openid -> Nullable<Text>,
        nickname -> Nullable<Text>,
        avatar_url -> Nullable<Text>,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    /// The shared access-token / ticket cache and its refresh lease (see `token_store`).
    wechat_tokens (app_id, kind) {
        app_id -> Text,
        kind -> Text,
        value -> Nullable<Text>,
        /// Unix seconds.
        expires_at -> BigInt,
        lock_holder -> Nullable<Text>,
        /// Unix milliseconds.
        lock_until -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::allow_tables_to_appear_in_same_query!(users, wechat_tokens);

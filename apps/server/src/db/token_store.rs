//! [`TokenStore`](wechat_core::TokenStore) on the database: every server instance on one database shares one token
//! per app, and the refresh lease is a conditional UPDATE, so only one instance talks to WeChat at a time. The
//! store is `wxkit-store-diesel`'s, run on the server's database threads (see [`super::stores`]).

/// The database-backed token store.
pub type DbTokenStore = store_diesel::DieselTokenStore<super::Db>;

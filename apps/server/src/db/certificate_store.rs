//! WeChat Pay v3 platform certificates in the database: one download serves every instance on it (they read the
//! store before downloading). Certificates are public; they share the key-value table of server-wide settings.
//! The store is `wxkit-store-diesel`'s (see [`super::stores`]).

/// The database-backed [`CertificateStore`](wechat_pay::v3::CertificateStore).
pub type DbCertificateStore = store_diesel::DieselCertificateStore<super::Db>;

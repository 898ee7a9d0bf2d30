//! Capabilities, one folder each: its routes, its use cases (service) and its queries. Every channel — the HTTP
//! API, the CLI — calls the same service, so a rule exists once. A slice never imports another slice's routes;
//! startup composes them (`api` routes go into the one `/api/v1` scope, `pages` at the top level).

pub mod auth;
pub mod coupons;
pub mod jssdk;
pub mod merchants;
pub mod miniprogram;
pub mod outbox;
pub mod pay;
pub mod sandbox;
pub mod scan_login;
pub mod wechat_push;

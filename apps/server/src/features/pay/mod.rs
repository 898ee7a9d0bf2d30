//! WeChat Pay v2 orders: JSAPI (inside WeChat, for a logged-in buyer) and NATIVE (a QR to scan), their status and
//! closing, and the payment notify applied exactly once however many times, in whatever order and however
//! concurrently WeChat delivers it.

pub mod buy;
pub mod reconciler;
pub mod repo;
pub mod routes;

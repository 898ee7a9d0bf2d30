//! Logging in through WeChat web OAuth: the callback, the single-use state store, the redirect to WeChat.

pub mod repo;
pub mod routes;
pub mod service;

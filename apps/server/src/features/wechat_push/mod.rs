//! `/wechat/push`: WeChat's server pushes, authenticated, fresh and applied once.

pub mod repo;
pub mod routes;

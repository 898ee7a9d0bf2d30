//! HTTP routes, one module per capability.

pub mod admin;
pub mod auth;
pub mod coupons;
pub mod errors;
pub mod health;
pub mod json;
pub mod limits;
pub mod metrics;
pub mod pages;
pub mod push;
pub mod ratelimit;

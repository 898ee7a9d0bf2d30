//! One integration-test binary for the workspace (one link, shared harness).
#![allow(clippy::unwrap_used)]

mod browser;
mod cards;
mod coupons;
mod oauth;
mod pay;
mod server;
mod sim;
mod tokens;

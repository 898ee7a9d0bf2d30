//! SDK tests: the `wechat-*` crates against the simulator over real HTTP — no server, no database. They show that
//! each crate works on its own, as a Rust service embedding it would use it.
#![allow(clippy::unwrap_used)]

mod cards;
mod messages;
mod oauth;
mod pay;
mod pay_v3;
mod sim;
mod tokens;

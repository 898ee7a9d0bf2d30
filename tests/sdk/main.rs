//! SDK tests: the `wechat-*` crates against the simulator over real HTTP — no server, no database. They show that
//! each crate works on its own, as a Rust service embedding it would use it.
#![allow(clippy::unwrap_used)]

/// The test official account, wired as an embedding service does: one builder, pointed at the simulator.
fn account(sim: &wechat_sim::SimServer) -> wechat::OfficialAccount {
    wechat::OfficialAccount::builder()
        .app_id(wxkit_testkit::TEST_APP_ID)
        .secret(wxkit_testkit::TEST_APP_SECRET)
        .base_url(&sim.base_url())
        .build()
        .unwrap()
}

mod cards;
mod messages;
mod oauth;
mod pay;
mod pay_v3;
mod sim;
mod tokens;

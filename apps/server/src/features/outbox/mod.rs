//! Work owed to WeChat after a local commit: the queue (`repo`), its worker and the operators' view.

pub mod repo;
pub mod routes;
pub mod worker;

pub use worker::{Outbox, OutboxOptions};

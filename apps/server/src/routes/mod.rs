//! HTTP routes, one module per capability.

pub mod errors;
pub mod health;

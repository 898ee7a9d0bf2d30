//! The platform layer beneath the capabilities: the clock, crypto helpers and the background workers' plumbing.
//! Nothing here knows about HTTP routes or a particular capability.

pub mod batcher;
pub mod clock;
pub mod crypto;
pub mod secrets;

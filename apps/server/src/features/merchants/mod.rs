//! Merchants, their staff, campaigns and issuing coupons: the admin use cases and the admin API.

pub mod card;
pub mod follow;
pub mod messages;
pub mod repo;
pub mod routes;
pub mod service;

//! Merchants, their staff, campaigns and issuing coupons: the admin use cases.

pub mod service;

//! Coupons: the public view, POS redemption (batched, `pos`), the scan page and its confirm, QR images, the
//! customer's list.

pub mod admin;
pub mod admin_routes;
pub mod pos;
pub mod repo;
pub mod routes;
pub mod service;
pub mod words;

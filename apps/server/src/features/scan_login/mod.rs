//! Scan a mini-program code to log in on a website: the page shows a `getwxacodeunlimit` code whose `scene` is a
//! fresh login scene and holds a WebSocket open; the user scans it with WeChat, the mini program opens with the
//! scene, the user confirms on the phone, and the page is logged in at once.
//!
//! The scene's state lives in the database (`login_scenes`); its events reach the browser's socket through the
//! [`hub::LoginHub`] — in process on SQLite, and across instances through PostgreSQL `LISTEN/NOTIFY`.

pub mod hub;
pub mod repo;
pub mod routes;
pub mod service;
pub mod socket;

//! JS-SDK: the `wx.config` a WeChat web page needs (signed with the shared, cached `jsapi_ticket`), and in sandbox
//! mode a demo page that runs it against the simulator's stand-in for WeChat's script.

pub mod routes;

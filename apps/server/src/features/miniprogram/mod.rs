//! Mini-program login: `wx.login` code → our bearer token (WeChat's session_key stays here), the verified phone
//! number (`getuserphonenumber`) and the older encryptedData profile.

pub mod routes;

//! The mini-program login use cases: `wx.login` code → user and bearer session (WeChat's session_key kept with the
//! session, server-side), the verified phone number and the older encryptedData profile.

use crate::db::{self, DbError};
use crate::features::auth::repo::{self, Identity, Profile, User};
use crate::features::auth::service::{AuthError, Sessions};
use crate::http::auth::{Session, SessionKind};
use crate::platform::Platform;
use wechat_oauth::miniprogram::{MiniProgramClient, SessionKey};

/// Why a mini-program use case failed.
#[derive(Debug, thiserror::Error)]
pub enum MpError {
    /// No mini program is configured.
    #[error("no mini program is configured: set miniprogram.app_id and miniprogram.app_secret")]
    NotConfigured,
    /// The `wx.login` code is empty or too long.
    #[error("code must be 1 to 512 characters")]
    InvalidCode,
    /// WeChat refused the call, or is unavailable.
    #[error(transparent)]
    Wechat(#[from] wechat_oauth::Error),
    /// The session has no WeChat session_key to decrypt with.
    #[error("this session has no WeChat session_key: log in again with wx.login")]
    NoSessionKey,
    /// The decrypted data names another user.
    #[error("encryptedData belongs to another user")]
    ForeignData,
    /// Recording the login or its session failed.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// A mini-program login: the bearer token for the other calls, its session and the user.
#[derive(Debug)]
pub struct LoggedIn {
    /// The bearer token (only its sha256 is stored).
    pub token: String,
    /// The session.
    pub session: Session,
    /// The user.
    pub user: User,
}

/// The mini program's client, or why there is none.
pub fn client(mp: Option<&MiniProgramClient>) -> Result<&MiniProgramClient, MpError> {
    mp.ok_or(MpError::NotConfigured)
}

/// Exchanges a `wx.login` code for a session.
pub async fn login(mp: &MiniProgramClient, sessions: &Sessions, code: &str) -> Result<LoggedIn, MpError> {
    if code.is_empty() || code.len() > 512 {
        return Err(MpError::InvalidCode);
    }
    let wx = mp.code_to_session(code).await?;
    let openid = wx.openid.as_str().to_owned();
    let user = sessions
        .record_login(
            Identity::Mini(&openid),
            Profile {
                unionid: wx.unionid.as_ref().map(|u| u.as_str().to_owned()),
                ..Profile::default()
            },
        )
        .await?;
    let (token, session) = sessions
        .start(
            SessionKind::MiniProgram,
            &user,
            &openid,
            Some(wx.session_key.secret().to_owned()),
        )
        .await?;
    metrics::counter!("wxkit_logins_total", "channel" => "miniprogram").increment(1);
    Ok(LoggedIn { token, session, user })
}

/// Stores the phone number WeChat verified for `session`'s user (the code from `getPhoneNumber`).
pub async fn phone(
    platform: &Platform,
    mp: &MiniProgramClient,
    session: &Session,
    code: &str,
) -> Result<User, MpError> {
    let openid = wechat_core::OpenId::new(session.openid.clone());
    let info = mp.phone_number(code, Some(&openid)).await?;
    let (user_id, now) = (session.user_id, platform.now_ms());
    Ok(db::blocking(&platform.db, move |conn| {
        repo::set_phone(conn, user_id, &info.phone_number, &info.country_code, now)
    })
    .await?)
}

/// Decrypts `wx.getUserInfo`'s data with the session's key (watermark appid checked) and stores the profile; the
/// data must be this user's: a valid blob of another user of the same app would otherwise rename this account.
pub async fn profile(
    platform: &Platform,
    mp: &MiniProgramClient,
    session: &Session,
    session_key: Option<&SessionKey>,
    encrypted_data: &str,
    iv: &str,
) -> Result<User, MpError> {
    let key = session_key.ok_or(MpError::NoSessionKey)?;
    let data = mp.decrypt(key, encrypted_data, iv)?;
    if data.get("openId").and_then(|v| v.as_str()) != Some(session.openid.as_str()) {
        return Err(MpError::ForeignData);
    }
    let text = |k: &str| {
        data.get(k)
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let (nickname, avatar, unionid) = (text("nickName"), text("avatarUrl"), text("unionId"));
    let (user_id, now) = (session.user_id, platform.now_ms());
    Ok(db::blocking(&platform.db, move |conn| {
        repo::set_profile(
            conn,
            user_id,
            nickname.as_deref(),
            avatar.as_deref(),
            unionid.as_deref(),
            now,
        )
    })
    .await?)
}

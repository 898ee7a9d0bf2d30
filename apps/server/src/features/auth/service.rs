//! The login use cases: sending a visitor to WeChat to log in, recording users, and sessions (web cookies and
//! mini-program bearer tokens) that live in the database so that logging out revokes them on every instance.

use super::repo::{self, Identity, NewSession, Profile, User};
use crate::db::{self, DbError};
use crate::http::auth::{Session, SessionKind};
use crate::platform::Platform;
use crate::platform::crypto::{random_token, sha256_hex};
use wechat_oauth::state::StateSigner;
use wechat_oauth::web::{OAuthClient, Scope};

/// OAuth states live 10 minutes.
pub const STATE_TTL_SECS: i64 = 600;

/// Why a login use case failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The database failed (nothing was recorded).
    #[error(transparent)]
    Db(#[from] DbError),
    /// The return path cannot be carried in a state.
    #[error("{0}")]
    InvalidReturnPath(String),
    /// WeChat's authorize URL could not be built (a misconfigured app).
    #[error("authorize URL: {0}")]
    AuthorizeUrl(String),
    /// The session's user row is gone.
    #[error("the session's user no longer exists")]
    UserGone,
}

/// Sending a visitor to WeChat to log in: the signed, single-use state and the authorize URL. Shared by every
/// capability whose pages need a logged-in visitor.
#[derive(Clone)]
pub struct WebLogin {
    platform: Platform,
    signer: std::sync::Arc<StateSigner>,
    oauth: OAuthClient,
}

impl std::fmt::Debug for WebLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebLogin").finish_non_exhaustive()
    }
}

impl WebLogin {
    /// Logins of the official account `oauth`, states signed by `signer`.
    pub fn new(platform: Platform, signer: std::sync::Arc<StateSigner>, oauth: OAuthClient) -> WebLogin {
        WebLogin {
            platform,
            signer,
            oauth,
        }
    }

    /// WeChat's authorize URL that will bring the user back to `return_path` (a path on this site) with `scope`.
    pub fn authorize_url(&self, return_path: &str, scope: Scope) -> Result<String, AuthError> {
        let issued = self
            .signer
            .issue(return_path, self.platform.now_ms() / 1000, STATE_TTL_SECS)
            .map_err(|e| AuthError::InvalidReturnPath(e.to_string()))?;
        let redirect_uri = format!("{}/auth/callback", self.platform.public_base_url);
        self.oauth
            .authorize_url(&redirect_uri, scope, Some(&issued.value))
            .map_err(|e| AuthError::AuthorizeUrl(e.to_string()))
    }
}

/// Users and their sessions (web cookies and mini-program bearer tokens), in the database so that logging out
/// revokes a session on every instance. Shared by every capability that logs people in.
#[derive(Clone, Debug)]
pub struct Sessions {
    platform: Platform,
    session_secs: i64,
}

impl Sessions {
    /// Sessions on `platform` lasting `login.session_days`.
    pub fn new(platform: Platform, settings: &crate::configuration::Settings) -> Sessions {
        Sessions {
            platform,
            session_secs: i64::from(settings.login.session_days) * 86_400,
        }
    }

    /// How long sessions last, seconds.
    pub fn session_secs(&self) -> i64 {
        self.session_secs
    }

    /// Records a login (see [`repo::upsert_login`]).
    pub async fn record_login(&self, who: Identity<'_>, profile: Profile) -> Result<User, AuthError> {
        // Owned for the blocking task.
        let (kind, openid) = match who {
            Identity::Web(o) => (0u8, o.to_owned()),
            Identity::Mini(o) => (1, o.to_owned()),
            Identity::Website(o) => (2, o.to_owned()),
        };
        let now = self.platform.now_ms();
        Ok(db::blocking(&self.platform.db, move |conn| {
            let identity = match kind {
                0 => Identity::Web(&openid),
                1 => Identity::Mini(&openid),
                _ => Identity::Website(&openid),
            };
            repo::upsert_login(conn, identity, &profile, now)
        })
        .await?)
    }

    /// Starts a session of `kind` for `user` acting as `openid`; returns the secret for the client (cookie value or
    /// bearer token; only its sha256 is stored) and the session.
    pub async fn start(
        &self,
        kind: SessionKind,
        user: &User,
        openid: &str,
        session_key: Option<String>,
    ) -> Result<(String, Session), AuthError> {
        let secret = random_token();
        let token_hash = sha256_hex(&secret);
        let now = self.platform.now_ms();
        let expires_at = now / 1000 + self.session_secs;
        let (user_id, openid_owned) = (user.id, openid.to_owned());
        let id = db::blocking(&self.platform.db, move |conn| {
            repo::create_session(
                conn,
                &NewSession {
                    token_hash: &token_hash,
                    kind: kind.as_str(),
                    user_id,
                    openid: &openid_owned,
                    session_key: session_key.as_deref(),
                    now,
                    expires_at,
                },
            )
        })
        .await?;
        Ok((
            secret,
            Session {
                id,
                user_id,
                openid: openid.to_owned(),
                expires_at,
            },
        ))
    }

    /// The live session of `kind` whose secret is `secret`, with its WeChat session_key (mini-program sessions).
    pub async fn live(&self, secret: &str, kind: SessionKind) -> Result<Option<(Session, Option<String>)>, AuthError> {
        let token_hash = sha256_hex(secret);
        let now_secs = self.platform.now_ms() / 1000;
        let row = db::blocking(&self.platform.db, move |conn| {
            repo::live_session(conn, &token_hash, kind.as_str(), now_secs)
        })
        .await?;
        Ok(row.map(|r| {
            (
                Session {
                    id: r.id,
                    user_id: r.user_id,
                    openid: r.openid,
                    expires_at: r.expires_at,
                },
                r.session_key,
            )
        }))
    }

    /// Ends a session for good (every instance sees the row).
    pub async fn revoke(&self, session_id: i64) -> Result<bool, AuthError> {
        let now = self.platform.now_ms();
        Ok(db::blocking(&self.platform.db, move |conn| {
            repo::revoke_session(conn, session_id, now)
        })
        .await?)
    }

    /// The user of a session.
    pub async fn user(&self, user_id: i64) -> Result<User, AuthError> {
        db::blocking(&self.platform.db, move |conn| repo::user_by_id(conn, user_id))
            .await?
            .ok_or(AuthError::UserGone)
    }

    /// Forgets sessions that ended (housekeeping).
    pub async fn prune(&self) -> Result<usize, DbError> {
        let now_secs = self.platform.now_ms() / 1000;
        db::blocking(&self.platform.db, move |conn| repo::prune_sessions(conn, now_secs)).await
    }
}

/// What a client may see of a user (its own record).
#[derive(Debug, serde::Serialize)]
pub struct PublicUser {
    /// Our id.
    pub id: i64,
    /// Official-account openid.
    pub openid: Option<String>,
    /// Mini-program openid.
    pub mini_openid: Option<String>,
    /// unionid.
    pub unionid: Option<String>,
    /// Nickname.
    pub nickname: Option<String>,
    /// Avatar URL.
    pub avatar_url: Option<String>,
    /// Verified phone number.
    pub phone: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub last_login_at: Option<String>,
}

impl From<User> for PublicUser {
    fn from(u: User) -> Self {
        PublicUser {
            id: u.id,
            openid: u.openid,
            mini_openid: u.mini_openid,
            unionid: u.unionid,
            nickname: u.nickname,
            avatar_url: u.avatar_url,
            phone: u.phone,
            created_at: crate::platform::time::rfc3339_secs(u.created_at),
            last_login_at: u.last_login_at.map(crate::platform::time::rfc3339_secs),
        }
    }
}

/// Single-use OAuth states in the database (a unique key), shared by every instance: `wxkit-store-diesel`'s store.
pub type DbStateStore = store_diesel::DieselStateStore<db::Db>;

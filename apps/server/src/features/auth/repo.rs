//! Users and sessions. (Used OAuth state nonces are the store crate's: `wxkit-store-diesel`.)

use crate::db::schema::{sessions, users};
use crate::db::{DbConnection, DbError};
use diesel::prelude::*;

/// A user row.
#[derive(Clone, Debug, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = users)]
pub struct User {
    /// Our id.
    pub id: i64,
    /// The official-account openid (web login), if known.
    pub openid: Option<String>,
    /// The Open Platform unionid, when WeChat gave one.
    pub unionid: Option<String>,
    /// The mini-program openid, if known.
    pub mini_openid: Option<String>,
    /// Nickname, when the user granted it.
    pub nickname: Option<String>,
    /// Avatar URL, when the user granted it.
    pub avatar_url: Option<String>,
    /// The verified phone number, when the user shared it.
    pub phone: Option<String>,
    /// Its country code.
    pub phone_country_code: Option<String>,
    /// When the phone was verified, Unix ms.
    pub phone_verified_at: Option<i64>,
    /// Last login, Unix ms.
    pub last_login_at: Option<i64>,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub updated_at: i64,
    /// The openid of the website app (open platform QR login).
    pub website_openid: Option<String>,
}

impl User {
    /// The openid a session of this user acts as on the official account's pages: the web openid when known,
    /// else the mini-program one.
    pub fn acting_openid(&self) -> Option<&str> {
        self.openid
            .as_deref()
            .or(self.mini_openid.as_deref())
            .or(self.website_openid.as_deref())
    }
}

/// Which openid a login brought.
#[derive(Clone, Copy, Debug)]
pub enum Identity<'a> {
    /// Official-account web OAuth.
    Web(&'a str),
    /// Mini-program `jscode2session`.
    Mini(&'a str),
    /// The open platform's website QR login (`qrconnect`).
    Website(&'a str),
}

/// What WeChat told us about the user at login (only what it gave is overwritten).
#[derive(Clone, Debug, Default)]
pub struct Profile {
    /// unionid.
    pub unionid: Option<String>,
    /// Nickname.
    pub nickname: Option<String>,
    /// Avatar.
    pub avatar_url: Option<String>,
}

fn find_by_identity(conn: &mut DbConnection, who: Identity<'_>) -> Result<Option<User>, DbError> {
    let q = users::table.select(User::as_select());
    Ok(match who {
        Identity::Web(o) => q.filter(users::openid.eq(o)).first(conn).optional()?,
        Identity::Mini(o) => q.filter(users::mini_openid.eq(o)).first(conn).optional()?,
        Identity::Website(o) => q.filter(users::website_openid.eq(o)).first(conn).optional()?,
    })
}

/// Finds a user by id.
pub fn user_by_id(conn: &mut DbConnection, id: i64) -> Result<Option<User>, DbError> {
    Ok(users::table.select(User::as_select()).find(id).first(conn).optional()?)
}

/// Records a login: finds the user by the openid, else by the unionid (linking this openid to the person WeChat
/// says it is), else creates them; updates the profile fields WeChat gave and `last_login_at`. Safe under
/// concurrent logins of the same person (unique keys decide; the loser re-reads).
pub fn upsert_login(conn: &mut DbConnection, who: Identity<'_>, profile: &Profile, now: i64) -> Result<User, DbError> {
    for _ in 0..3 {
        let found = match find_by_identity(conn, who)? {
            Some(u) => Some(u),
            None => match &profile.unionid {
                Some(unionid) => {
                    // Link: the person is known through their other openid.
                    let candidate: Option<i64> = match who {
                        Identity::Web(_) => users::table
                            .filter(users::unionid.eq(unionid))
                            .filter(users::openid.is_null())
                            .select(users::id)
                            .first(conn)
                            .optional()?,
                        Identity::Mini(_) => users::table
                            .filter(users::unionid.eq(unionid))
                            .filter(users::mini_openid.is_null())
                            .select(users::id)
                            .first(conn)
                            .optional()?,
                        Identity::Website(_) => users::table
                            .filter(users::unionid.eq(unionid))
                            .filter(users::website_openid.is_null())
                            .select(users::id)
                            .first(conn)
                            .optional()?,
                    };
                    match candidate {
                        Some(id) => {
                            let linked = match who {
                                Identity::Web(o) => {
                                    diesel::update(users::table.find(id).filter(users::openid.is_null()))
                                        .set(users::openid.eq(o))
                                        .execute(conn)
                                }
                                Identity::Mini(o) => {
                                    diesel::update(users::table.find(id).filter(users::mini_openid.is_null()))
                                        .set(users::mini_openid.eq(o))
                                        .execute(conn)
                                }
                                Identity::Website(o) => {
                                    diesel::update(users::table.find(id).filter(users::website_openid.is_null()))
                                        .set(users::website_openid.eq(o))
                                        .execute(conn)
                                }
                            };
                            match linked {
                                Ok(1) => user_by_id(conn, id)?,
                                Ok(_) => continue,
                                Err(e) if crate::db::is_unique_violation(&e) => continue,
                                Err(e) => return Err(e.into()),
                            }
                        }
                        None => None,
                    }
                }
                None => None,
            },
        };
        let user = match found {
            Some(u) => u,
            None => {
                let inserted = match who {
                    Identity::Web(o) => diesel::insert_into(users::table)
                        .values((
                            users::openid.eq(o),
                            users::created_at.eq(now),
                            users::updated_at.eq(now),
                        ))
                        .execute(conn),
                    Identity::Mini(o) => diesel::insert_into(users::table)
                        .values((
                            users::mini_openid.eq(o),
                            users::created_at.eq(now),
                            users::updated_at.eq(now),
                        ))
                        .execute(conn),
                    Identity::Website(o) => diesel::insert_into(users::table)
                        .values((
                            users::website_openid.eq(o),
                            users::created_at.eq(now),
                            users::updated_at.eq(now),
                        ))
                        .execute(conn),
                };
                match inserted {
                    Ok(_) => {}
                    // Another login of the same person created it meanwhile: read theirs.
                    Err(e) if crate::db::is_unique_violation(&e) => continue,
                    Err(e) => return Err(e.into()),
                }
                match find_by_identity(conn, who)? {
                    Some(u) => u,
                    None => continue,
                }
            }
        };
        // A login that brings the unionid of a person known through another channel (the first official-account
        // login was silent, `snsapi_base`, without one): this openid joins that person, so coupons bought on a
        // computer or in the mini program are theirs here too.
        let user = match (&profile.unionid, &user.unionid) {
            (Some(unionid), None) => join_person(conn, who, &user, unionid)?.unwrap_or(user),
            _ => user,
        };
        diesel::update(users::table.find(user.id))
            .set((
                users::last_login_at.eq(Some(now)),
                users::updated_at.eq(now),
                users::unionid.eq(profile.unionid.as_deref().or(user.unionid.as_deref())),
                users::nickname.eq(profile.nickname.as_deref().or(user.nickname.as_deref())),
                users::avatar_url.eq(profile.avatar_url.as_deref().or(user.avatar_url.as_deref())),
            ))
            .execute(conn)?;
        return user_by_id(conn, user.id)?.ok_or(DbError::Task("user vanished during login".into()));
    }
    Err(DbError::Task("concurrent logins kept racing; try again".into()))
}

/// Moves this login's openid from `stray` (a row of this openid alone) to the row that already holds `unionid`, with
/// the stray row's staff and merchant roles; `None` when there is no such row or its slot for this channel is taken.
fn join_person(
    conn: &mut DbConnection,
    who: Identity<'_>,
    stray: &User,
    unionid: &str,
) -> Result<Option<User>, DbError> {
    use crate::db::schema::{merchant_members, staff};
    conn.transaction(|conn| {
        let person: Option<User> = users::table
            .select(User::as_select())
            .filter(users::unionid.eq(unionid))
            .filter(users::id.ne(stray.id))
            .first(conn)
            .optional()?;
        let Some(person) = person else {
            return Ok(None);
        };
        let moved = match who {
            Identity::Web(o) if person.openid.is_none() => {
                diesel::update(users::table.find(stray.id))
                    .set(users::openid.eq(None::<String>))
                    .execute(conn)?;
                diesel::update(users::table.find(person.id))
                    .set(users::openid.eq(o))
                    .execute(conn)?
            }
            Identity::Mini(o) if person.mini_openid.is_none() => {
                diesel::update(users::table.find(stray.id))
                    .set(users::mini_openid.eq(None::<String>))
                    .execute(conn)?;
                diesel::update(users::table.find(person.id))
                    .set(users::mini_openid.eq(o))
                    .execute(conn)?
            }
            Identity::Website(o) if person.website_openid.is_none() => {
                diesel::update(users::table.find(stray.id))
                    .set(users::website_openid.eq(None::<String>))
                    .execute(conn)?;
                diesel::update(users::table.find(person.id))
                    .set(users::website_openid.eq(o))
                    .execute(conn)?
            }
            _ => 0,
        };
        if moved == 0 {
            return Ok(None);
        }
        diesel::update(staff::table.filter(staff::user_id.eq(stray.id)))
            .set(staff::user_id.eq(person.id))
            .execute(conn)?;
        let roles: Vec<(i64, String, i64)> = merchant_members::table
            .filter(merchant_members::user_id.eq(stray.id))
            .select((
                merchant_members::merchant_id,
                merchant_members::role,
                merchant_members::created_at,
            ))
            .load(conn)?;
        for (merchant, role, at) in roles {
            let held: i64 = merchant_members::table
                .filter(merchant_members::merchant_id.eq(merchant))
                .filter(merchant_members::user_id.eq(person.id))
                .count()
                .get_result(conn)?;
            if held == 0 {
                diesel::insert_into(merchant_members::table)
                    .values((
                        merchant_members::merchant_id.eq(merchant),
                        merchant_members::user_id.eq(person.id),
                        merchant_members::role.eq(role),
                        merchant_members::created_at.eq(at),
                    ))
                    .execute(conn)?;
            }
        }
        diesel::delete(merchant_members::table.filter(merchant_members::user_id.eq(stray.id))).execute(conn)?;
        user_by_id(conn, person.id)
    })
}

/// Stores a verified phone number.
pub fn set_phone(
    conn: &mut DbConnection,
    user_id: i64,
    phone: &str,
    country_code: &str,
    now: i64,
) -> Result<User, DbError> {
    diesel::update(users::table.find(user_id))
        .set((
            users::phone.eq(phone),
            users::phone_country_code.eq(country_code),
            users::phone_verified_at.eq(now),
            users::updated_at.eq(now),
        ))
        .execute(conn)?;
    user_by_id(conn, user_id)?.ok_or(DbError::Task("user vanished".into()))
}

/// Stores the nickname and avatar the user granted.
pub fn set_profile(
    conn: &mut DbConnection,
    user_id: i64,
    nickname: Option<&str>,
    avatar_url: Option<&str>,
    unionid: Option<&str>,
    now: i64,
) -> Result<User, DbError> {
    let Some(user) = user_by_id(conn, user_id)? else {
        return Err(DbError::Task("user vanished".into()));
    };
    diesel::update(users::table.find(user_id))
        .set((
            users::nickname.eq(nickname.or(user.nickname.as_deref())),
            users::avatar_url.eq(avatar_url.or(user.avatar_url.as_deref())),
            users::unionid.eq(unionid.or(user.unionid.as_deref())),
            users::updated_at.eq(now),
        ))
        .execute(conn)?;
    user_by_id(conn, user_id)?.ok_or(DbError::Task("user vanished".into()))
}

/// A session row.
#[derive(Clone, Queryable, Selectable)]
#[diesel(table_name = sessions)]
pub struct SessionRow {
    /// Id.
    pub id: i64,
    /// `web` or `miniprogram`.
    pub kind: String,
    /// Whose.
    pub user_id: i64,
    /// The openid it acts as.
    pub openid: String,
    /// WeChat's session_key (mini-program sessions).
    pub session_key: Option<String>,
    /// Unix seconds.
    pub expires_at: i64,
}

impl std::fmt::Debug for SessionRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The session key decrypts the user's data: never in a log line.
        f.debug_struct("SessionRow")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("user_id", &self.user_id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A new session.
#[derive(Debug)]
pub struct NewSession<'a> {
    /// sha256 hex of the secret the client holds.
    pub token_hash: &'a str,
    /// `web` or `miniprogram`.
    pub kind: &'a str,
    /// Whose.
    pub user_id: i64,
    /// The openid it acts as.
    pub openid: &'a str,
    /// WeChat's session_key (mini-program sessions).
    pub session_key: Option<&'a str>,
    /// Unix ms.
    pub now: i64,
    /// Unix seconds.
    pub expires_at: i64,
}

/// Stores a session; returns its id.
pub fn create_session(conn: &mut DbConnection, s: &NewSession<'_>) -> Result<i64, DbError> {
    diesel::insert_into(sessions::table)
        .values((
            sessions::token_hash.eq(s.token_hash),
            sessions::kind.eq(s.kind),
            sessions::user_id.eq(s.user_id),
            sessions::openid.eq(s.openid),
            sessions::session_key.eq(s.session_key),
            sessions::created_at.eq(s.now),
            sessions::expires_at.eq(s.expires_at),
        ))
        .execute(conn)?;
    Ok(sessions::table
        .filter(sessions::token_hash.eq(s.token_hash))
        .select(sessions::id)
        .first(conn)?)
}

/// The live (unexpired, unrevoked) session of `kind` with this token hash.
pub fn live_session(
    conn: &mut DbConnection,
    token_hash: &str,
    kind: &str,
    now_secs: i64,
) -> Result<Option<SessionRow>, DbError> {
    Ok(sessions::table
        .filter(sessions::token_hash.eq(token_hash))
        .filter(sessions::kind.eq(kind))
        .filter(sessions::expires_at.gt(now_secs))
        .filter(sessions::revoked_at.is_null())
        .select(SessionRow::as_select())
        .first(conn)
        .optional()?)
}

/// Replaces a mini-program session's WeChat session_key (after a fresh `jscode2session`).
pub fn set_session_key(conn: &mut DbConnection, id: i64, session_key: &str) -> Result<(), DbError> {
    diesel::update(sessions::table.find(id))
        .set(sessions::session_key.eq(session_key))
        .execute(conn)?;
    Ok(())
}

/// Revokes a session for good; true if it was live.
pub fn revoke_session(conn: &mut DbConnection, id: i64, now: i64) -> Result<bool, DbError> {
    Ok(
        diesel::update(sessions::table.find(id).filter(sessions::revoked_at.is_null()))
            .set(sessions::revoked_at.eq(now))
            .execute(conn)?
            == 1,
    )
}

/// Forgets sessions that ended more than a day ago (housekeeping).
pub fn prune_sessions(conn: &mut DbConnection, now_secs: i64) -> Result<usize, DbError> {
    Ok(diesel::delete(sessions::table.filter(sessions::expires_at.lt(now_secs - 86_400))).execute(conn)?)
}

/// Whether the user holding `openid` (either channel) is known by a unionid.
pub fn has_unionid(conn: &mut DbConnection, openid: &str) -> Result<bool, DbError> {
    let found: Option<Option<String>> = users::table
        .filter(users::openid.eq(openid).or(users::mini_openid.eq(openid)))
        .select(users::unionid)
        .first(conn)
        .optional()?;
    Ok(found.flatten().is_some())
}

/// Every openid coupons and orders may be held under by the person who holds `openid`: the official account's and
/// the mini program's of one user row (linked by unionid at login). Limits per person count all of them — one
/// person must not get a limit-1 coupon once per channel. An openid of no known user stands alone.
pub fn person_openids(conn: &mut DbConnection, openid: &str) -> Result<Vec<String>, DbError> {
    let row: Option<(Option<String>, Option<String>)> = users::table
        .filter(users::openid.eq(openid).or(users::mini_openid.eq(openid)))
        .select((users::openid, users::mini_openid))
        .first(conn)
        .optional()?;
    let mut ids = vec![openid.to_owned()];
    if let Some((a, b)) = row {
        ids.extend([a, b].into_iter().flatten().filter(|o| o != openid));
    }
    Ok(ids)
}

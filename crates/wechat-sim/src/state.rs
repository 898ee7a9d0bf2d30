//! The simulator's in-memory world: apps, tokens, tickets, the simulated clock, faults and call counters.

use rand::Rng;
use rand::distr::Alphanumeric;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

/// Lifetime of access tokens and tickets, in seconds (WeChat: 7200).
pub const TOKEN_TTL_SECS: i64 = 7200;
/// How long a replaced access token keeps working, in seconds (WeChat: 5 minutes).
pub const TOKEN_OVERLAP_SECS: i64 = 300;

/// One fault to inject: the next `count` calls of `path` answer with it instead of the real endpoint.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Fault {
    /// The request path, e.g. `/cgi-bin/token`.
    pub path: String,
    /// How many calls it applies to.
    #[serde(default = "one")]
    pub count: u32,
    /// Answer `{"errcode": errcode, "errmsg": errmsg}` with HTTP 200.
    #[serde(default)]
    pub errcode: Option<i64>,
    /// The errmsg for `errcode` (a WeChat-like default otherwise).
    #[serde(default)]
    pub errmsg: Option<String>,
    /// Answer with this HTTP status and an empty body.
    #[serde(default)]
    pub http_status: Option<u16>,
    /// Wait this long first (then answer normally unless `errcode`/`http_status` is set too).
    #[serde(default)]
    pub delay_ms: Option<u64>,
}

fn one() -> u32 {
    1
}

/// What a fault does to one call.
#[derive(Clone, Debug, Default)]
pub(crate) struct FaultAction {
    pub errcode: Option<(i64, String)>,
    pub http_status: Option<u16>,
    pub delay_ms: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TokenFlavor {
    Classic,
    Stable,
}

#[derive(Clone, Debug)]
pub(crate) struct TokenRecord {
    pub appid: String,
    pub expires_at: i64,
    /// Set when a newer token replaced this one: it then dies at `expires_at` with 40001 rather than 42001.
    pub superseded: bool,
}

#[derive(Clone, Debug)]
pub(crate) struct TicketRecord {
    pub value: String,
    pub expires_at: i64,
}

/// A simulated WeChat user of one app.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SimUser {
    /// The app the openid belongs to.
    pub appid: String,
    /// openid.
    pub openid: String,
    /// Nickname.
    #[serde(default)]
    pub nickname: String,
    /// 0 unknown, 1 male, 2 female.
    #[serde(default)]
    pub sex: u8,
    /// Province.
    #[serde(default)]
    pub province: String,
    /// City.
    #[serde(default)]
    pub city: String,
    /// Country.
    #[serde(default)]
    pub country: String,
    /// Avatar URL.
    #[serde(default)]
    pub headimgurl: String,
    /// unionid, if the app is bound to an Open Platform account.
    #[serde(default)]
    pub unionid: Option<String>,
    /// A "snapshot" virtual user (`is_snapshotuser: 1`).
    #[serde(default)]
    pub snapshot: bool,
    /// A high-risk user: `jscode2session` answers 40226.
    #[serde(default)]
    pub blocked: bool,
    /// The phone number bound to the account (mainland digits, country code 86); `None`: one derived from the
    /// openid. `getuserphonenumber` returns it.
    #[serde(default)]
    pub phone: Option<String>,
}

/// A one-time code (OAuth or `wx.login`).
#[derive(Clone, Debug)]
pub(crate) struct CodeRecord {
    pub appid: String,
    pub openid: String,
    pub scope: String,
    pub issued_at: i64,
    pub used: bool,
}

/// A web (user) access token or refresh token.
#[derive(Clone, Debug)]
pub(crate) struct UserTokenRecord {
    pub appid: String,
    pub openid: String,
    pub scope: String,
    pub expires_at: i64,
}

#[derive(Clone, Debug)]
pub(crate) struct App {
    pub secret: String,
    /// Published mini-program pages; when non-empty, `check_path` enforces them.
    pub pages: Vec<String>,
    /// The mini program's server (what its `wx.request` calls), for the simulated mini-program pages.
    pub backend: Option<String>,
    pub classic_token: Option<String>,
    pub stable_token: Option<String>,
    pub stable_force_refreshes: Vec<i64>,
    pub tickets: HashMap<String, TicketRecord>,
}

impl App {
    fn new(secret: String) -> Self {
        Self {
            secret,
            pages: Vec::new(),
            backend: None,
            classic_token: None,
            stable_token: None,
            stable_force_refreshes: Vec::new(),
            tickets: HashMap::new(),
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct World {
    pub clock_offset_secs: i64,
    pub apps: BTreeMap<String, App>,
    pub tokens: HashMap<String, TokenRecord>,
    pub counters: BTreeMap<String, u64>,
    pub faults: Vec<Fault>,
    pub users: BTreeMap<(String, String), SimUser>,
    pub oauth_codes: HashMap<String, CodeRecord>,
    pub web_tokens: HashMap<String, UserTokenRecord>,
    pub refresh_tokens: HashMap<String, UserTokenRecord>,
    pub js_codes: HashMap<String, CodeRecord>,
    pub phone_codes: HashMap<String, CodeRecord>,
    /// Simulated mini-program pages' logins: handle → (appid, server token).
    pub miniapp_sessions: HashMap<String, (String, String)>,
    pub sessions: HashMap<(String, String), String>,
    pub logins: HashMap<(String, String), Vec<i64>>,
    pub merchants: BTreeMap<String, String>,
    pub pay_orders: HashMap<(String, String), crate::pay::PayOrder>,
    pub notifications: Vec<crate::pay::Notification>,
    pub pay_bad_sign: u32,
    pub pay_drop_notifies: u32,
    pub pay_duplicate_notifies: u32,
    pub v3_merchants: BTreeMap<String, crate::pay_v3::V3Merchant>,
    pub v3_abnormal_refunds: u32,
    pub v3_errors: Vec<crate::pay_v3::V3Error>,
    /// Mini-program shipping uploads by transaction id (小程序发货信息管理).
    pub shipments: HashMap<String, u32>,
    /// Bill downloads still to arrive changed (a fault).
    pub bill_tamper: u32,
    /// v3 bill files by download token: (merchant, bytes).
    pub bill_files: HashMap<String, (String, Vec<u8>)>,
    /// The `Wechatpay-Serial` of the v3 request being answered (the switch-over signs its answer with that key).
    pub v3_request_serial: Option<String>,
    pub qr_tickets: HashMap<String, crate::oa::QrTicket>,
    pub followers: std::collections::HashSet<(String, String)>,
    /// Last message or scan per (appid, openid): the customer-service window.
    pub interactions: HashMap<(String, String), i64>,
    pub templates: HashMap<(String, String), Vec<String>>,
    pub subscriptions: HashMap<(String, String, String), u32>,
    pub sent: Vec<crate::oa::SentMessage>,
    /// `getwxacode` + `createwxaqrcode` codes made per mini program (WeChat caps them for life).
    pub wxa_codes_made: HashMap<String, u64>,
    pub cards: HashMap<String, crate::cards::SimCard>,
    /// 商家券 stocks, coupons, sends and callback URLs.
    pub busifavor: crate::busifavor::Store,
    pub codes: HashMap<String, crate::cards::SimCode>,
    pub encrypt_codes: HashMap<String, String>,
    pub push_configs: HashMap<String, crate::cards::PushConfig>,
}

/// Why a presented access token is not accepted, as WeChat says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenRejection {
    Missing,
    Invalid,
    Expired,
}

impl TokenRejection {
    pub fn errcode(self) -> (i64, &'static str) {
        match self {
            TokenRejection::Missing => (41001, "access_token missing"),
            TokenRejection::Invalid => (40001, "invalid credential, access_token is invalid or not latest"),
            TokenRejection::Expired => (42001, "access_token expired"),
        }
    }
}

impl World {
    pub fn now(&self) -> i64 {
        real_now().saturating_add(self.clock_offset_secs)
    }

    pub fn issue_token(&mut self, appid: &str, flavor: TokenFlavor) -> (String, i64) {
        let now = self.now();
        let token = random_string(96);
        let previous = self.apps.get(appid).and_then(|a| match flavor {
            TokenFlavor::Classic => a.classic_token.clone(),
            TokenFlavor::Stable => a.stable_token.clone(),
        });
        if let Some(prev) = previous
            && let Some(rec) = self.tokens.get_mut(&prev)
        {
            rec.expires_at = rec.expires_at.min(now + TOKEN_OVERLAP_SECS);
            rec.superseded = true;
        }
        self.tokens.insert(
            token.clone(),
            TokenRecord {
                appid: appid.to_owned(),
                expires_at: now + TOKEN_TTL_SECS,
                superseded: false,
            },
        );
        if let Some(app) = self.apps.get_mut(appid) {
            match flavor {
                TokenFlavor::Classic => app.classic_token = Some(token.clone()),
                TokenFlavor::Stable => app.stable_token = Some(token.clone()),
            }
        }
        (token, TOKEN_TTL_SECS)
    }

    /// The app a token belongs to, or WeChat's reason for refusing it.
    pub fn check_token(&self, token: Option<&str>) -> Result<String, TokenRejection> {
        let token = match token {
            Some(t) if !t.is_empty() => t,
            _ => return Err(TokenRejection::Missing),
        };
        let rec = self.tokens.get(token).ok_or(TokenRejection::Invalid)?;
        if rec.expires_at <= self.now() {
            return Err(if rec.superseded {
                TokenRejection::Invalid
            } else {
                TokenRejection::Expired
            });
        }
        Ok(rec.appid.clone())
    }

    /// Creates a default user if `openid` is not known yet; `None` when the app is unknown.
    pub(crate) fn ensure_user(&mut self, appid: &str, openid: &str) -> Option<SimUser> {
        if !self.apps.contains_key(appid) || openid.is_empty() {
            return None;
        }
        let user = self
            .users
            .entry((appid.to_owned(), openid.to_owned()))
            .or_insert_with(|| SimUser {
                appid: appid.to_owned(),
                openid: openid.to_owned(),
                nickname: format!("微信用户{}", tail(openid, 4)),
                sex: 0,
                province: String::new(),
                city: String::new(),
                country: String::new(),
                headimgurl: String::new(),
                unionid: None,
                snapshot: false,
                blocked: false,
                phone: None,
            });
        Some(user.clone())
    }

    pub(crate) fn take_fault(&mut self, path: &str) -> Option<FaultAction> {
        let idx = self.faults.iter().position(|f| f.path == path && f.count > 0)?;
        let fault = &mut self.faults[idx];
        fault.count -= 1;
        let action = FaultAction {
            errcode: fault.errcode.map(|code| {
                let msg = fault.errmsg.clone().unwrap_or_else(|| default_errmsg(code).to_owned());
                (code, msg)
            }),
            http_status: fault.http_status,
            delay_ms: fault.delay_ms,
        };
        if fault.count == 0 {
            self.faults.remove(idx);
        }
        Some(action)
    }
}

fn default_errmsg(code: i64) -> &'static str {
    match code {
        -1 => "system error",
        40001 => "invalid credential, access_token is invalid or not latest",
        40014 => "invalid access_token",
        42001 => "access_token expired",
        45009 => "reach max api daily quota limit",
        45011 => "api minute-quota reach limit  mustslower  retry next minute",
        _ => "simulated error",
    }
}

/// The last `n` characters of `s` (char-safe).
pub(crate) fn tail(s: &str, n: usize) -> String {
    let chars: Vec<char> = s.chars().collect();
    chars[chars.len().saturating_sub(n)..].iter().collect()
}

pub(crate) fn real_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

pub(crate) fn random_string(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// A request id like the `rid` WeChat appends to every errmsg: clients must match on errcode, never on text.
pub(crate) fn rid() -> String {
    let mut rng = rand::rng();
    format!(
        "{:08x}-{:08x}-{:08x}",
        rng.random::<u32>(),
        rng.random::<u32>(),
        rng.random::<u32>()
    )
}

/// A shared handle on the simulator's state, for controlling it in-process (the same things the `/_sim` HTTP API
/// does).
#[derive(Clone, Debug, Default)]
pub struct SimHandle {
    pub(crate) world: Arc<Mutex<World>>,
}

impl SimHandle {
    pub(crate) fn world(&self) -> MutexGuard<'_, World> {
        // The world holds plain data; a panic elsewhere leaves it consistent enough for a simulator.
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers an app (official account or mini program) with its secret.
    pub fn add_app(&self, appid: &str, secret: &str) {
        self.world().apps.insert(appid.to_owned(), App::new(secret.to_owned()));
    }

    /// Adds or replaces a simulated user. Returns false when the app is unknown.
    pub fn add_user(&self, user: SimUser) -> bool {
        let mut w = self.world();
        if !w.apps.contains_key(&user.appid) {
            return false;
        }
        w.users.insert((user.appid.clone(), user.openid.clone()), user);
        true
    }

    /// The simulated users of `appid`.
    pub fn users(&self, appid: &str) -> Vec<SimUser> {
        self.world()
            .users
            .values()
            .filter(|u| u.appid == appid)
            .cloned()
            .collect()
    }

    /// Sets the server a simulated mini program talks to.
    pub fn set_backend(&self, appid: &str, url: &str) -> bool {
        match self.world().apps.get_mut(appid) {
            Some(app) => {
                app.backend = Some(url.to_owned());
                true
            }
            None => false,
        }
    }

    /// The server a simulated mini program talks to.
    pub fn backend(&self, appid: &str) -> Option<String> {
        self.world().apps.get(appid).and_then(|a| a.backend.clone())
    }

    /// Sets the published pages of a mini program (`check_path` then enforces them).
    pub fn set_pages(&self, appid: &str, pages: Vec<String>) -> bool {
        match self.world().apps.get_mut(appid) {
            Some(app) => {
                app.pages = pages;
                true
            }
            None => false,
        }
    }

    /// Mints an OAuth code, as the authorize page does when `openid` approves. Creates the user if needed.
    pub fn issue_oauth_code(&self, appid: &str, openid: &str, scope: &str) -> Option<String> {
        let mut w = self.world();
        w.ensure_user(appid, openid)?;
        let code = random_string(32);
        let now = w.now();
        w.oauth_codes.insert(
            code.clone(),
            CodeRecord {
                appid: appid.to_owned(),
                openid: openid.to_owned(),
                scope: scope.to_owned(),
                issued_at: now,
                used: false,
            },
        );
        Some(code)
    }

    /// Mints a `wx.login` code for `openid`. Creates the user if needed.
    pub fn issue_js_code(&self, appid: &str, openid: &str) -> Option<String> {
        let mut w = self.world();
        w.ensure_user(appid, openid)?;
        let code = random_string(32);
        let now = w.now();
        w.js_codes.insert(
            code.clone(),
            CodeRecord {
                appid: appid.to_owned(),
                openid: openid.to_owned(),
                scope: String::new(),
                issued_at: now,
                used: false,
            },
        );
        Some(code)
    }

    /// Mints a `getPhoneNumber` button code for `openid` (what the mini program's page gets when the user allows it).
    /// Creates the user if needed.
    pub fn issue_phone_code(&self, appid: &str, openid: &str) -> Option<String> {
        let mut w = self.world();
        w.ensure_user(appid, openid)?;
        let code = random_string(32);
        let now = w.now();
        w.phone_codes.insert(
            code.clone(),
            CodeRecord {
                appid: appid.to_owned(),
                openid: openid.to_owned(),
                scope: String::new(),
                issued_at: now,
                used: false,
            },
        );
        Some(code)
    }

    /// The current session key of a mini-program user (after a `jscode2session`).
    pub fn session_key(&self, appid: &str, openid: &str) -> Option<String> {
        self.world()
            .sessions
            .get(&(appid.to_owned(), openid.to_owned()))
            .cloned()
    }

    /// Moves the simulated clock forward.
    pub fn advance_clock(&self, seconds: i64) -> i64 {
        let mut w = self.world();
        w.clock_offset_secs = w.clock_offset_secs.saturating_add(seconds.max(0));
        w.now()
    }

    /// The simulated time, Unix seconds.
    pub fn now(&self) -> i64 {
        self.world().now()
    }

    /// Calls seen for `path` since the last reset.
    pub fn calls(&self, path: &str) -> u64 {
        self.world().counters.get(path).copied().unwrap_or(0)
    }

    /// All call counters.
    pub fn counters(&self) -> BTreeMap<String, u64> {
        self.world().counters.clone()
    }

    /// Adds a fault.
    pub fn inject(&self, fault: Fault) {
        self.world().faults.push(fault);
    }

    /// Removes every injected fault (`DELETE /_sim/faults`).
    pub fn reset_faults(&self) {
        self.world().faults.clear();
    }

    /// Forgets tokens, tickets, counters and faults and resets the clock; apps stay registered.
    pub fn reset(&self) {
        let mut w = self.world();
        w.clock_offset_secs = 0;
        w.tokens.clear();
        w.counters.clear();
        w.faults.clear();
        w.oauth_codes.clear();
        w.web_tokens.clear();
        w.refresh_tokens.clear();
        w.js_codes.clear();
        w.phone_codes.clear();
        w.sessions.clear();
        w.logins.clear();
        w.pay_orders.clear();
        w.notifications.clear();
        w.pay_bad_sign = 0;
        w.pay_drop_notifies = 0;
        w.pay_duplicate_notifies = 0;
        w.v3_abnormal_refunds = 0;
        w.v3_errors.clear();
        w.qr_tickets.clear();
        w.followers.clear();
        w.interactions.clear();
        w.subscriptions.clear();
        w.sent.clear();
        w.cards.clear();
        w.codes.clear();
        w.encrypt_codes.clear();
        for app in w.apps.values_mut() {
            let secret = std::mem::take(&mut app.secret);
            let pages = std::mem::take(&mut app.pages);
            let backend = app.backend.take();
            *app = App::new(secret);
            app.pages = pages;
            app.backend = backend;
        }
    }
}

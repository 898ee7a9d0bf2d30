//! Layered settings: built-in defaults → optional `wxkit.toml` → `WXKIT__SECTION__KEY` environment variables (and
//! `.env`). `DATABASE_URL`, when set, overrides `database.url`.

use serde::Deserialize;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use wechat_core::{AppSecret, SecretString};

/// The app id the sandbox registers in the simulator when no WeChat credentials are configured.
pub const SANDBOX_APP_ID: &str = "wxsandbox00000001";
/// The mini program the sandbox registers in the simulator.
pub const SANDBOX_MP_APP_ID: &str = "wxsandboxmp000001";
/// The open-platform website app of sandbox mode.
pub const SANDBOX_WEBSITE_APP_ID: &str = "wxsandboxweb00001";

/// All settings. Secrets are held in redacting types, so `Debug` prints none of them.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// HTTP server.
    pub server: ServerSettings,
    /// Database.
    pub database: DatabaseSettings,
    /// WeChat official account / mini program.
    pub wechat: WechatSettings,
    /// WeChat Pay v2.
    pub pay: PaySettings,
    /// Admin API.
    #[serde(default)]
    pub admin: AdminSettings,
    /// Delivery of work owed to WeChat.
    pub outbox: OutboxSettings,
    /// The mini program (login, phone numbers, mini-program codes).
    #[serde(default)]
    pub miniprogram: MiniProgramSettings,
    /// The open platform's website app (website QR login, `qrconnect`).
    #[serde(default)]
    pub website: WebsiteSettings,
    /// Login sessions and scan-to-login scenes.
    pub login: LoginSettings,
    /// Request rate limits on the public endpoints.
    #[serde(default)]
    pub rate_limits: RateLimitSettings,
    /// How long records that only grow are kept.
    #[serde(default)]
    pub retention: RetentionSettings,
}

/// `retention.*`: days to keep records that otherwise grow forever; 0 (the default) keeps them for ever. Pruned at
/// start and then once an hour by every instance (a delete of what is past the horizon is the same whoever runs
/// it). WeChat push records need no setting: they are kept only as long as WeChat may retry (an hour).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionSettings {
    /// `retention.audit_log_days`: audit rows older than this (an accounting record: keep it long, 400+ days).
    pub audit_log_days: u32,
    /// `retention.outbox_days`: delivered outbox items older than this (pending and failed ones are never pruned).
    pub outbox_days: u32,
}

/// `rate_limits.*`: requests per minute (with the same burst) on the public endpoints; 0 turns one off. Keyed by
/// client address, except the POS (per staff token) and the coupon page's status poll (per session). Behind a
/// reverse proxy the client address is the one it forwards, when it is listed in `server.trusted_proxies`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitSettings {
    /// `rate_limits.oauth_callback_per_minute`: `/auth/callback` per address.
    pub oauth_callback_per_minute: u32,
    /// `rate_limits.coupon_pages_per_minute`: `/c/...` pages and QR images per address.
    pub coupon_pages_per_minute: u32,
    /// `rate_limits.coupon_status_per_minute`: the coupon page's status poll per session.
    pub coupon_status_per_minute: u32,
    /// `rate_limits.pos_per_minute`: `POST /api/v1/redemptions` per staff token.
    pub pos_per_minute: u32,
    /// `rate_limits.push_per_minute`: `/wechat/push` per address.
    pub push_per_minute: u32,
    /// `rate_limits.login_per_minute`: the login APIs (mini-program login, scan-to-login scenes) per address.
    pub login_per_minute: u32,
    /// `rate_limits.orders_per_minute`: orders a buyer may place per minute (each reserves stock until paid or
    /// closed).
    pub orders_per_minute: u32,
    /// `rate_limits.login_codes_per_minute`: login code images fetched from WeChat per minute, for the whole
    /// instance (`getwxacodeunlimit` has a per-minute quota shared by every user of the mini program).
    pub login_codes_per_minute: u32,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        RateLimitSettings {
            oauth_callback_per_minute: 60,
            coupon_pages_per_minute: 300,
            coupon_status_per_minute: 90,
            pos_per_minute: 1200,
            push_per_minute: 6000,
            login_per_minute: 120,
            orders_per_minute: 10,
            login_codes_per_minute: 600,
        }
    }
}

/// `website.*`: an open-platform website app — a second way to log in on a computer (scan WeChat's own login code),
/// beside the mini-program code. Users are linked to the same person by unionid.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebsiteSettings {
    /// `website.app_id`.
    pub app_id: Option<String>,
    /// `website.app_secret`.
    pub app_secret: Option<AppSecret>,
}

/// `miniprogram.*`: the mini program whose users log in (its own appid and secret, not the official account's).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MiniProgramSettings {
    /// `miniprogram.app_id`.
    pub app_id: Option<String>,
    /// `miniprogram.app_secret`.
    pub app_secret: Option<AppSecret>,
    /// `miniprogram.token`: the message push Token (开发管理 → 消息推送); unset: `/wechat/miniprogram/push` answers 404.
    pub token: Option<String>,
    /// `miniprogram.encoding_aes_key`: the message push EncodingAESKey (safe mode: only encrypted pushes are taken).
    pub encoding_aes_key: Option<String>,
}

/// `login.*`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginSettings {
    /// `login.scene_ttl_secs`: how long a scan-to-login QR stays valid (default 120).
    pub scene_ttl_secs: u32,
    /// `login.mp_page`: the mini-program page the login code opens (default `pages/login/login`).
    pub mp_page: String,
    /// `login.session_days`: how long web sessions and mini-program tokens last (default 7).
    pub session_days: u32,
    /// `login.scenes_per_minute`: login codes one client address may create per minute (default 60): each may cost
    /// a `getwxacodeunlimit` call, which WeChat rate-limits.
    pub scenes_per_minute: u32,
    /// `login.sockets_per_address`: login WebSockets one client (IPv4 address, IPv6 /64) may hold open (default 32;
    /// a scene accepts at most 4 whatever this says: a reconnecting page and a second tab).
    pub sockets_per_address: u32,
}

/// `server.mode`: what `serve` talks to.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ServerMode {
    /// WeChat itself: `wechat.app_id` and `wechat.app_secret` are required.
    #[default]
    Production,
    /// The bundled simulator, in-process, with demo data (`wxkit serve --sandbox`). Never inferred from missing
    /// credentials: a production box that forgets a variable must not boot a demo and print an admin token.
    Sandbox,
}

/// `server.*`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// `server.mode`: `production` (default) or `sandbox`.
    pub mode: ServerMode,
    /// `server.addr`: listen address, `HOST:PORT` (port 0 picks a free port).
    pub addr: String,
    /// `server.public_base_url`: the URL users reach this server at (QR codes, OAuth redirects). Defaults to
    /// `http://{addr}`.
    pub public_base_url: Option<String>,
    /// `server.body_timeout_secs`: a request body must arrive within this many seconds of its head (slow or
    /// stalled clients are cut off and their connection freed).
    pub body_timeout_secs: u32,
    /// `server.max_connections`: concurrent client connections (unset: below the process's descriptor limit,
    /// leaving room for the database pool and outgoing calls, so health checks keep answering).
    pub max_connections: Option<u32>,
    /// `server.auth_failures_per_minute`: failed admin/POS authentications allowed per client address per minute
    /// (with the same burst); beyond it every authenticated call from that address gets 429 until it refills.
    pub auth_failures_per_minute: u32,
    /// `server.sandbox_sim_addr`: where the sandbox's simulator listens, `HOST:PORT` (default `127.0.0.1:0`, a free
    /// port on loopback; `0.0.0.0:9000` lets a phone on the LAN or a container port reach it).
    pub sandbox_sim_addr: String,
    /// `server.sandbox_sim_public_url`: the simulator's URL as browsers reach it (default: the host of
    /// `server.public_base_url` with the simulator's port).
    pub sandbox_sim_public_url: Option<String>,
    /// `server.trusted_proxies`: reverse proxies whose `Forwarded` / `X-Forwarded-For` / `X-Forwarded-Proto`
    /// headers are believed (comma-separated addresses or CIDRs, `127.0.0.1/32,10.0.0.0/8`; empty by default: the
    /// TCP peer is the client and those headers are ignored).
    pub trusted_proxies: Option<String>,
    /// `server.shutdown_timeout_secs`: on SIGTERM, how long in-flight requests may take to finish (default 10).
    pub shutdown_timeout_secs: u32,
    /// `server.drain_secs`: on SIGTERM, how long to keep serving with `/readyz` answering 503 before the listener
    /// closes (default 0). Set it to what your load balancer's health check needs to take an instance out
    /// (interval × failures); with nginx's passive checks, take the instance out in nginx instead
    /// (docs/operations.md, rolling restarts).
    pub drain_secs: u32,
}

/// `database.*`
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `database.url` or `DATABASE_URL`: `sqlite://path` or `postgres://...`.
    pub url: String,
    /// `database.pool_size`: maximum pooled connections.
    pub pool_size: u32,
    /// `database.redeem_batch_max`: most POS redemptions one database statement carries (1 turns batching off).
    pub redeem_batch_max: u32,
    /// `database.redeem_batch_slots`: POS batches in flight at once (unset: one per CPU core, 2 to 8, at most half
    /// the pool).
    pub redeem_batch_slots: Option<u32>,
    /// `database.sqlite_cache_kib`: each SQLite connection's page cache in KiB (default 512; SQLite's own is 2000).
    pub sqlite_cache_kib: u32,
    /// `database.acquire_timeout_ms`: how long a request waits for a database connection before it is answered
    /// 503 with `Retry-After` (default 1500: a till or a page hears "try again" within 2 s during an outage).
    pub acquire_timeout_ms: u32,
}

impl fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("url", &crate::db::redact_url(&self.url))
            .field("pool_size", &self.pool_size)
            .field("redeem_batch_max", &self.redeem_batch_max)
            .field("redeem_batch_slots", &self.redeem_batch_slots)
            .field("sqlite_cache_kib", &self.sqlite_cache_kib)
            .field("acquire_timeout_ms", &self.acquire_timeout_ms)
            .finish()
    }
}

/// `wechat.*`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WechatSettings {
    /// `wechat.app_id`. Unset: sandbox mode against the bundled simulator.
    pub app_id: Option<String>,
    /// `wechat.app_secret`.
    pub app_secret: Option<AppSecret>,
    /// `wechat.api_base_url` (default `https://api.weixin.qq.com`).
    pub api_base_url: String,
    /// `wechat.open_base_url` (default `https://open.weixin.qq.com`).
    pub open_base_url: String,
    /// `wechat.mp_base_url`: where parametric QR code images are shown (`showqrcode`; default
    /// `https://mp.weixin.qq.com`, or `api_base_url` when that is not WeChat's — a simulator serves both).
    pub mp_base_url: Option<String>,
    /// `wechat.token`: the server-push verification token.
    pub token: Option<SecretString>,
    /// `wechat.encoding_aes_key`: 43-character EncodingAESKey for safe-mode pushes.
    pub encoding_aes_key: Option<SecretString>,
    /// `wechat.stable_token`: fetch the access token with `/cgi-bin/stable_token`.
    pub stable_token: bool,
    /// `wechat.push_window_secs`: a push's `timestamp` must lie within this many seconds of now.
    pub push_window_secs: u32,
    /// `wechat.push_compatible_mode`: with an EncodingAESKey, also accept plaintext pushes (WeChat's "compatible
    /// mode", for a switch-over). Off: only encrypted pushes are accepted once a key is configured.
    pub push_compatible_mode: bool,
    /// `wechat.js_domains`: the hosts whose pages may get a JS-SDK config (comma-separated; default the host of
    /// `server.public_base_url`) — the "JS interface safe domains" set in the official account's settings.
    pub js_domains: Option<String>,
}

/// `pay.*`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaySettings {
    /// `pay.mch_id`.
    pub mch_id: Option<String>,
    /// `pay.key`: the API key for v2 signatures.
    pub key: Option<SecretString>,
    /// `pay.base_url` (default `https://api.mch.weixin.qq.com`).
    pub base_url: String,
    /// `pay.client_cert_path` / `pay.client_key_path`: the merchant's API certificate and key (PEM:
    /// `apiclient_cert.pem`, `apiclient_key.pem`), for refunds (mutual TLS). Not needed against a plain-http
    /// simulator.
    pub client_cert_path: Option<String>,
    /// See `client_cert_path`.
    pub client_key_path: Option<String>,
    /// `pay.order_ttl_secs`: how long an order may be paid (sent to WeChat as `time_expire`; default 900). A coupon
    /// order reserves its coupon this long: as long as a buyer needs at the cashier, no longer.
    pub order_ttl_secs: u32,
    /// `pay.reconcile_bills_at`: when (Beijing `HH:MM`) the previous day's bill is reconciled against the ledger
    /// (default `10:30`: WeChat Pay's bills are ready after 10:00); `off` turns the daily job off.
    pub reconcile_bills_at: String,
    /// `pay.max_open_orders`: unpaid orders one buyer may have open at once (default 3; 0: no cap). A buyer has at
    /// most one open order per campaign whatever this says: ordering again offers the same one.
    pub max_open_orders: u32,
    /// `pay.reconcile_after_secs`: an unpaid order this old is asked about at WeChat (`orderquery`), in case its
    /// notify never came (default 60).
    pub reconcile_after_secs: u32,
    /// `pay.reconcile_every_secs`: how often the reconciler looks (default 30).
    pub reconcile_every_secs: u32,
    /// `pay.api_version`: `"v2"` (default: XML, `pay.key`) or `"v3"` (JSON, RSA: `pay.v3.*`).
    pub api_version: String,
    /// `pay.v3.*`: the v3 merchant.
    #[serde(default)]
    pub v3: PayV3Settings,
    /// `pay.busifavor_page_url`: where WeChat's H5 领券 page is (default `https://action.weixin.qq.com`; against a
    /// simulator, its address).
    #[serde(default)]
    pub busifavor_page_url: Option<String>,
}

/// `pay.v3.*`: what WeChat Pay API v3 needs. Certificate mode: no public key (platform certificates are downloaded).
/// Public-key mode: `public_key_id` and `public_key_path`. The switch-over between them: both, with
/// `download_certificates = true`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayV3Settings {
    /// `pay.v3.private_key_path`: the merchant's API private key (`apiclient_key.pem`).
    pub private_key_path: Option<String>,
    /// `pay.v3.cert_serial`: the serial of the merchant's API certificate.
    pub cert_serial: Option<String>,
    /// `pay.v3.api_v3_key`: the APIv3 key (32 characters).
    pub api_v3_key: Option<SecretString>,
    /// `pay.v3.public_key_id`: the WeChat Pay public key's id (`PUB_KEY_ID_…`).
    pub public_key_id: Option<String>,
    /// `pay.v3.public_key_path`: the WeChat Pay public key (`pub_key.pem`).
    pub public_key_path: Option<String>,
    /// `pay.v3.download_certificates`: download platform certificates (default: when no public key is set; set
    /// `true` beside a public key during the switch-over, when WeChat signs with either).
    pub download_certificates: Option<bool>,
}

/// The v3 merchant's keys, read and checked.
#[derive(Debug)]
pub struct PayV3Keys {
    /// Signs requests and `paySign`.
    pub private_key: wechat_pay::v3::MerchantPrivateKey,
    /// The serial of the merchant's API certificate.
    pub cert_serial: String,
    /// The APIv3 key.
    pub api_v3_key: wechat_pay::v3::ApiV3Key,
    /// The WeChat Pay public key, in public-key mode.
    pub public_key: Option<(String, wechat_pay::v3::PublicKey)>,
    /// Whether platform certificates are downloaded.
    pub download_certificates: bool,
}

impl PayV3Settings {
    /// Reads the key files and checks the settings for the mode they select; the error names the setting.
    pub fn keys(&self) -> Result<PayV3Keys, ConfigError> {
        let path = self
            .private_key_path
            .as_deref()
            .ok_or_else(|| invalid("pay.v3.private_key_path", "required with pay.api_version = \"v3\""))?;
        let pem =
            std::fs::read_to_string(path).map_err(|e| invalid("pay.v3.private_key_path", format!("{path}: {e}")))?;
        let private_key = wechat_pay::v3::MerchantPrivateKey::from_pem(&pem)
            .map_err(|e| invalid("pay.v3.private_key_path", format!("{path}: {e}")))?;
        let cert_serial = self
            .cert_serial
            .clone()
            .filter(|s| !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| {
                invalid(
                    "pay.v3.cert_serial",
                    "required: the merchant API certificate's serial, in hex",
                )
            })?;
        let api_v3_key = self
            .api_v3_key
            .as_ref()
            .filter(|k| k.secret().len() == 32)
            .ok_or_else(|| invalid("pay.v3.api_v3_key", "required: the 32-character APIv3 key"))?;
        let public_key = match (&self.public_key_id, &self.public_key_path) {
            (None, None) => None,
            (Some(id), Some(path)) => {
                if !id.starts_with("PUB_KEY_ID_") {
                    return Err(invalid(
                        "pay.v3.public_key_id",
                        "a WeChat Pay public key id starts with PUB_KEY_ID_",
                    ));
                }
                let pem = std::fs::read_to_string(path)
                    .map_err(|e| invalid("pay.v3.public_key_path", format!("{path}: {e}")))?;
                let key = wechat_pay::v3::PublicKey::from_pem(&pem)
                    .map_err(|e| invalid("pay.v3.public_key_path", format!("{path}: {e}")))?;
                Some((id.clone(), key))
            }
            (Some(_), None) => {
                return Err(invalid(
                    "pay.v3.public_key_path",
                    "pay.v3.public_key_id and pay.v3.public_key_path go together",
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "pay.v3.public_key_id",
                    "pay.v3.public_key_id and pay.v3.public_key_path go together",
                ));
            }
        };
        let download_certificates = self.download_certificates.unwrap_or(public_key.is_none());
        if !download_certificates && public_key.is_none() {
            return Err(invalid(
                "pay.v3.download_certificates",
                "with no public key, platform certificates are the only way to verify WeChat Pay",
            ));
        }
        Ok(PayV3Keys {
            private_key,
            cert_serial: cert_serial.to_ascii_uppercase(),
            api_v3_key: wechat_pay::v3::ApiV3Key::new(api_v3_key.secret()),
            public_key,
            download_certificates,
        })
    }
}

/// `admin.*`
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSettings {
    /// `admin.token`: bearer token for the admin API. Unset: the admin API refuses every call.
    pub token: Option<SecretString>,
}

/// `outbox.*`: the background delivery of work owed to WeChat (consuming card codes).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxSettings {
    /// `outbox.poll_ms`: how often the worker looks for due work when nothing wakes it.
    pub poll_ms: u64,
    /// `outbox.retry_base_ms`: the first retry delay (doubled per attempt).
    pub retry_base_ms: u64,
    /// `outbox.retry_max_ms`: the longest retry delay.
    pub retry_max_ms: u64,
    /// `outbox.max_attempts`: attempts before an item is marked failed for an operator.
    pub max_attempts: u32,
}

/// The shortest admin token accepted: a guessable token would open the whole admin API.
pub const MIN_ADMIN_TOKEN_LEN: usize = 32;

/// A settings problem, reported as one line naming the setting.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or environment could not be read or does not have the right shape.
    #[error("configuration: {}", plain_load_error(.0))]
    Load(#[from] config::ConfigError),
    /// A value is present but unusable.
    #[error("configuration: {key}: {message}")]
    Invalid {
        /// The setting, e.g. `server.addr`.
        key: &'static str,
        /// What is wrong with it.
        message: String,
    },
}

/// A loading error in the operator's words: the setting and what it takes, never a Rust type or serde's wording
/// (`enum ServerMode does not have variant constructor prod for key server.mode` becomes
/// `server.mode: "prod" is not one of live, sandbox`).
fn plain_load_error(e: &config::ConfigError) -> String {
    let raw = e.to_string();
    if let Some((head, key)) = raw.split_once(" for key ") {
        // `server.mode` in the environment → server.mode
        let key = key.trim_start_matches('`').split('`').next().unwrap_or(key).trim();
        if let Some(value) = head.split("variant constructor ").nth(1) {
            let allowed = match key {
                "server.mode" => "live, sandbox",
                "pay.api_version" => "v2, v3",
                _ => "the values this setting takes (see .env.example)",
            };
            return format!("{key}: \"{value}\" is not one of {allowed}");
        }
        if let Some(rest) = head.strip_prefix("invalid type: ") {
            let (got, want) = rest
                .split_once(", expected ")
                .unwrap_or((rest, "another kind of value"));
            let want = match want {
                w if w.contains("integer") || w.starts_with('u') || w.starts_with('i') => "a whole number",
                "a boolean" => "true or false",
                w => w,
            };
            return format!("{key}: {got} given, {want} expected");
        }
        return format!("{key}: {head}");
    }
    raw
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

impl Settings {
    /// Loads settings from defaults, the optional `config_file` (or `./wxkit.toml` if it exists) and the
    /// environment, then validates them.
    pub fn load(config_file: Option<&Path>) -> Result<Settings, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_from(config_file, env)
    }

    /// Like [`load`](Self::load) with an explicit environment (tests).
    pub fn load_from(
        config_file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings, ConfigError> {
        let env: std::collections::HashMap<String, String> = env.into_iter().collect();
        let mut builder = config::Config::builder()
            .set_default("server.addr", "127.0.0.1:8080")?
            .set_default("server.mode", "production")?
            .set_default("database.url", "sqlite://wxkit.db")?
            .set_default("database.pool_size", 10)?
            .set_default("database.redeem_batch_max", 64)?
            .set_default("database.sqlite_cache_kib", 512)?
            .set_default("wechat.api_base_url", "https://api.weixin.qq.com")?
            .set_default("wechat.open_base_url", "https://open.weixin.qq.com")?
            .set_default("wechat.stable_token", false)?
            .set_default("wechat.push_window_secs", 300)?
            .set_default("wechat.push_compatible_mode", false)?
            .set_default("server.body_timeout_secs", 10)?
            .set_default("server.auth_failures_per_minute", 30)?
            .set_default("server.sandbox_sim_addr", "127.0.0.1:0")?
            .set_default("server.shutdown_timeout_secs", 10)?
            .set_default("server.drain_secs", 0)?
            .set_default("database.acquire_timeout_ms", 1500)?
            .set_default("outbox.poll_ms", 1000)?
            .set_default("outbox.retry_base_ms", 1000)?
            .set_default("outbox.retry_max_ms", 600_000)?
            .set_default("outbox.max_attempts", 30)?
            .set_default("pay.base_url", "https://api.mch.weixin.qq.com")?
            .set_default("pay.order_ttl_secs", 900)?
            .set_default("pay.max_open_orders", 3)?
            .set_default("pay.reconcile_bills_at", "10:30")?
            .set_default("pay.reconcile_after_secs", 60)?
            .set_default("pay.reconcile_every_secs", 30)?
            .set_default("pay.api_version", "v2")?
            .set_default("login.scene_ttl_secs", 120)?
            .set_default("login.mp_page", "pages/login/login")?
            .set_default("login.session_days", 7)?
            .set_default("login.scenes_per_minute", 60)?
            .set_default("login.sockets_per_address", 32)?;
        builder = match config_file {
            Some(path) => builder.add_source(config::File::from(PathBuf::from(path)).required(true)),
            None => builder.add_source(config::File::from(PathBuf::from("wxkit.toml")).required(false)),
        };
        let wxkit_env: std::collections::HashMap<String, String> = env
            .iter()
            .filter(|(k, _)| k.starts_with("WXKIT__"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        builder = builder.add_source(
            config::Environment::with_prefix("WXKIT")
                .prefix_separator("__")
                .separator("__")
                .source(Some(wxkit_env)),
        );
        if let Some(url) = env.get("DATABASE_URL").filter(|u| !u.is_empty()) {
            builder = builder.set_override("database.url", url.as_str())?;
        }
        let settings: Settings = builder.build()?.try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.validate_server_and_urls()?;
        self.validate_wechat()?;
        self.validate_login_and_pay()?;
        self.validate_admin_and_pay_keys()
    }

    fn validate_server_and_urls(&self) -> Result<(), ConfigError> {
        self.server.addr.parse::<SocketAddr>().map_err(|_| {
            invalid(
                "server.addr",
                format!("{:?} is not HOST:PORT (e.g. 127.0.0.1:8080)", self.server.addr),
            )
        })?;
        if let Some(url) = &self.server.public_base_url {
            check_url("server.public_base_url", url)?;
        }
        check_url("wechat.api_base_url", &self.wechat.api_base_url)?;
        check_url("wechat.open_base_url", &self.wechat.open_base_url)?;
        if let Some(u) = &self.wechat.mp_base_url {
            check_url("wechat.mp_base_url", u)?;
        }
        check_url("pay.base_url", &self.pay.base_url)?;
        crate::db::Backend::from_url(&self.database.url).map_err(|e| invalid("database.url", e.to_string()))?;
        if self.database.pool_size == 0 || self.database.pool_size > 1000 {
            return Err(invalid("database.pool_size", "must be between 1 and 1000"));
        }
        if !(1..=1000).contains(&self.database.redeem_batch_max) {
            return Err(invalid("database.redeem_batch_max", "must be between 1 and 1000"));
        }
        if let Some(slots) = self.database.redeem_batch_slots
            && !(1..=self.database.pool_size).contains(&slots)
        {
            return Err(invalid(
                "database.redeem_batch_slots",
                "must be between 1 and database.pool_size",
            ));
        }
        if !(1..=300).contains(&self.server.body_timeout_secs) {
            return Err(invalid("server.body_timeout_secs", "must be between 1 and 300"));
        }
        if self.server.max_connections == Some(0) {
            return Err(invalid("server.max_connections", "must be at least 1"));
        }
        if self.server.auth_failures_per_minute == 0 {
            return Err(invalid("server.auth_failures_per_minute", "must be at least 1"));
        }
        self.trusted_proxies()?;
        if self.server.drain_secs > 300 {
            return Err(invalid("server.drain_secs", "must be at most 300"));
        }
        if !(1..=600).contains(&self.server.shutdown_timeout_secs) {
            return Err(invalid("server.shutdown_timeout_secs", "must be between 1 and 600"));
        }
        if !(100..=60_000).contains(&self.database.acquire_timeout_ms) {
            return Err(invalid("database.acquire_timeout_ms", "must be between 100 and 60000"));
        }
        Ok(())
    }

    /// `server.trusted_proxies`, parsed.
    pub fn trusted_proxies(&self) -> Result<crate::http::client::TrustedProxies, ConfigError> {
        crate::http::client::TrustedProxies::parse(self.server.trusted_proxies.as_deref().unwrap_or(""))
            .map_err(|m| invalid("server.trusted_proxies", m))
    }

    fn validate_wechat(&self) -> Result<(), ConfigError> {
        match (&self.wechat.app_id, &self.wechat.app_secret) {
            (Some(id), _) if id.trim().is_empty() => {
                return Err(invalid("wechat.app_id", "is empty; unset it to run in sandbox mode"));
            }
            (Some(_), None) => return Err(invalid("wechat.app_secret", "is required when wechat.app_id is set")),
            (Some(_), Some(s)) if s.is_empty() => return Err(invalid("wechat.app_secret", "is empty")),
            (None, Some(_)) => return Err(invalid("wechat.app_id", "is required when wechat.app_secret is set")),
            _ => {}
        }
        if let Some(key) = &self.wechat.encoding_aes_key
            && (key.secret().len() != 43 || !key.secret().bytes().all(|b| b.is_ascii_alphanumeric()))
        {
            return Err(invalid(
                "wechat.encoding_aes_key",
                "must be 43 letters and digits, as WeChat issues it",
            ));
        }
        if !(1..=3600).contains(&self.wechat.push_window_secs) {
            return Err(invalid("wechat.push_window_secs", "must be between 1 and 3600"));
        }
        if self.wechat.push_compatible_mode && self.wechat.encoding_aes_key.is_none() {
            return Err(invalid(
                "wechat.push_compatible_mode",
                "needs wechat.encoding_aes_key (without a key every push is plaintext anyway)",
            ));
        }
        match (&self.miniprogram.app_id, &self.miniprogram.app_secret) {
            (Some(id), _) if id.trim().is_empty() => return Err(invalid("miniprogram.app_id", "is empty")),
            (Some(_), None) => {
                return Err(invalid(
                    "miniprogram.app_secret",
                    "is required when miniprogram.app_id is set",
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "miniprogram.app_id",
                    "is required when miniprogram.app_secret is set",
                ));
            }
            _ => {}
        }
        if self.website.app_id.is_some() != self.website.app_secret.is_some() {
            return Err(invalid(
                "website.app_secret",
                "website.app_id and website.app_secret must be set together",
            ));
        }
        Ok(())
    }

    fn validate_login_and_pay(&self) -> Result<(), ConfigError> {
        if !(30..=3600).contains(&self.login.scene_ttl_secs) {
            return Err(invalid("login.scene_ttl_secs", "must be between 30 and 3600"));
        }
        let page = &self.login.mp_page;
        if page.is_empty() || page.starts_with('/') || page.contains('?') || page.len() > 128 {
            return Err(invalid(
                "login.mp_page",
                "must be a published page path like pages/login/login (no leading slash, no query)",
            ));
        }
        if !(60..=7 * 86_400).contains(&self.pay.order_ttl_secs) {
            return Err(invalid("pay.order_ttl_secs", "must be between 60 and 604800"));
        }
        if self.pay.reconcile_bills_at != "off" && bills_time(&self.pay.reconcile_bills_at).is_none() {
            return Err(invalid("pay.reconcile_bills_at", "must be HH:MM (Beijing time) or off"));
        }
        if self.pay.client_cert_path.is_some() != self.pay.client_key_path.is_some() {
            return Err(invalid(
                "pay.client_key_path",
                "pay.client_cert_path and pay.client_key_path must be set together",
            ));
        }
        if self.pay.reconcile_every_secs == 0 || self.pay.reconcile_every_secs > 3600 {
            return Err(invalid("pay.reconcile_every_secs", "must be between 1 and 3600"));
        }
        if self.login.scenes_per_minute == 0 {
            return Err(invalid("login.scenes_per_minute", "must be at least 1"));
        }
        if !(1..=365).contains(&self.login.session_days) {
            return Err(invalid("login.session_days", "must be between 1 and 365"));
        }
        if self.outbox.poll_ms == 0 || self.outbox.retry_base_ms == 0 || self.outbox.max_attempts == 0 {
            return Err(invalid(
                "outbox",
                "poll_ms, retry_base_ms and max_attempts must be at least 1",
            ));
        }
        if self.outbox.retry_max_ms < self.outbox.retry_base_ms {
            return Err(invalid("outbox.retry_max_ms", "must not be below outbox.retry_base_ms"));
        }
        Ok(())
    }

    fn validate_admin_and_pay_keys(&self) -> Result<(), ConfigError> {
        if let Some(token) = &self.admin.token
            && !token.is_empty()
            && token.secret().chars().count() < MIN_ADMIN_TOKEN_LEN
        {
            return Err(invalid(
                "admin.token",
                format!("must be at least {MIN_ADMIN_TOKEN_LEN} characters (e.g. `openssl rand -hex 32`)"),
            ));
        }
        match self.pay.api_version.as_str() {
            "v2" => {
                if self.pay.mch_id.is_some() != self.pay.key.is_some() {
                    return Err(invalid("pay.key", "pay.mch_id and pay.key must be set together"));
                }
            }
            "v3" => {
                // The sandbox brings its own simulated merchant and keys.
                if !self.sandbox() {
                    if self.pay.mch_id.is_none() {
                        return Err(invalid("pay.mch_id", "required with pay.api_version = \"v3\""));
                    }
                    self.pay.v3.keys()?;
                }
            }
            other => {
                return Err(invalid("pay.api_version", format!("{other:?} is not \"v2\" or \"v3\"")));
            }
        }
        Ok(())
    }

    /// True in sandbox mode (`server.mode = "sandbox"`, `wxkit serve --sandbox`): the server runs against the
    /// bundled simulator.
    pub fn sandbox(&self) -> bool {
        self.server.mode == ServerMode::Sandbox
    }

    /// For `serve`: production mode needs WeChat credentials. The error names the settings and the way to a demo.
    pub fn check_can_serve(&self) -> Result<(), ConfigError> {
        if self.sandbox() || (self.wechat.app_id.is_some() && self.wechat.app_secret.is_some()) {
            return Ok(());
        }
        Err(invalid(
            "wechat.app_id",
            "wechat.app_id and wechat.app_secret are not set (WXKIT__WECHAT__APP_ID, WXKIT__WECHAT__APP_SECRET): \
             set them to serve WeChat, or run `wxkit serve --sandbox` (server.mode = \"sandbox\") for the demo \
             against the bundled simulator",
        ))
    }

    /// The listen address (validated at load time).
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.server
            .addr
            .parse()
            .map_err(|_| invalid("server.addr", format!("{:?} is not HOST:PORT", self.server.addr)))
    }
}

fn check_url(key: &'static str, value: &str) -> Result<(), ConfigError> {
    wechat_core::parse_base_url(value)
        .map(|_| ())
        .map_err(|e| invalid(key, e.to_string()))
}

/// `pay.reconcile_bills_at` as (hour, minute); `None` for `off` or anything else.
pub fn bills_time(s: &str) -> Option<(u32, u32)> {
    let (h, m) = s.split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60 && s.len() == 5).then_some((h, m))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_are_production_on_sqlite_and_sandbox_is_explicit() {
        let s = Settings::load_from(None, env(&[])).unwrap();
        assert!(!s.sandbox(), "never inferred from missing credentials");
        let e = s.check_can_serve().unwrap_err().to_string();
        assert!(e.contains("wechat.app_id") && e.contains("--sandbox"), "{e}");
        let sandbox = Settings::load_from(None, env(&[("WXKIT__SERVER__MODE", "sandbox")])).unwrap();
        assert!(sandbox.sandbox());
        assert!(sandbox.check_can_serve().is_ok());
        let e = Settings::load_from(None, env(&[("WXKIT__SERVER__MODE", "prod")]))
            .unwrap_err()
            .to_string();
        assert_eq!(e, "configuration: server.mode: \"prod\" is not one of live, sandbox");
        let e = Settings::load_from(None, env(&[("WXKIT__SERVER__MAX_CONNECTIONS", "many")]))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("configuration: server.max_connections: ") && e.contains("a whole number"),
            "{e}"
        );
        assert!(!e.contains("u32") && !e.contains("invalid type"), "{e}");
        assert_eq!(s.server.addr, "127.0.0.1:8080");
        assert_eq!(s.database.url, "sqlite://wxkit.db");
        assert_eq!(s.wechat.api_base_url, "https://api.weixin.qq.com");
        assert_eq!((s.database.redeem_batch_max, s.database.redeem_batch_slots), (64, None));
        let s = Settings::load_from(
            None,
            env(&[
                ("WXKIT__DATABASE__REDEEM_BATCH_MAX", "1"),
                ("WXKIT__DATABASE__REDEEM_BATCH_SLOTS", "4"),
            ]),
        )
        .unwrap();
        assert_eq!(
            (s.database.redeem_batch_max, s.database.redeem_batch_slots),
            (1, Some(4))
        );
    }

    #[test]
    fn environment_overrides_and_database_url_wins() {
        let s = Settings::load_from(
            None,
            env(&[
                ("WXKIT__WECHAT__APP_ID", "wx123"),
                ("WXKIT__WECHAT__APP_SECRET", "sec"),
                ("WXKIT__SERVER__ADDR", "0.0.0.0:9000"),
                ("WXKIT__DATABASE__POOL_SIZE", "3"),
                ("DATABASE_URL", "postgres://u@localhost/db"),
            ]),
        )
        .unwrap();
        assert!(!s.sandbox());
        assert_eq!(s.wechat.app_id.as_deref(), Some("wx123"));
        assert_eq!(s.database.pool_size, 3);
        assert_eq!(s.database.url, "postgres://u@localhost/db");
        assert!(!format!("{s:?}").contains("sec\""), "secrets must not be printed");
    }

    #[test]
    fn numeric_looking_app_ids_stay_strings() {
        let s = Settings::load_from(
            None,
            env(&[
                ("WXKIT__WECHAT__APP_ID", "123456"),
                ("WXKIT__WECHAT__APP_SECRET", "789"),
            ]),
        )
        .unwrap();
        assert_eq!(s.wechat.app_id.as_deref(), Some("123456"));
    }

    #[test]
    fn bad_values_name_the_setting() {
        let cases = [
            (("WXKIT__SERVER__ADDR", "nonsense"), "server.addr"),
            (("WXKIT__WECHAT__API_BASE_URL", "ftp://x"), "wechat.api_base_url"),
            (("DATABASE_URL", "mongodb://x"), "database.url"),
            (("WXKIT__WECHAT__APP_ID", "wx1"), "wechat.app_secret"),
            (("WXKIT__WECHAT__ENCODING_AES_KEY", "short"), "wechat.encoding_aes_key"),
            (("WXKIT__DATABASE__POOL_SIZE", "0"), "database.pool_size"),
            (("WXKIT__ADMIN__TOKEN", "short-admin-token"), "admin.token"),
            (("WXKIT__WECHAT__PUSH_WINDOW_SECS", "0"), "wechat.push_window_secs"),
            (
                ("WXKIT__WECHAT__PUSH_COMPATIBLE_MODE", "true"),
                "wechat.push_compatible_mode",
            ),
            (("WXKIT__SERVER__BODY_TIMEOUT_SECS", "0"), "server.body_timeout_secs"),
            (("WXKIT__SERVER__MAX_CONNECTIONS", "0"), "server.max_connections"),
            (("WXKIT__DATABASE__REDEEM_BATCH_MAX", "0"), "database.redeem_batch_max"),
            (
                ("WXKIT__DATABASE__REDEEM_BATCH_SLOTS", "11"),
                "database.redeem_batch_slots",
            ),
        ];
        for ((k, v), key) in cases {
            let e = Settings::load_from(None, env(&[(k, v)])).unwrap_err();
            assert!(e.to_string().contains(key), "{k}={v}: {e}");
        }
        let e = Settings::load_from(None, env(&[("WXKIT__DATABASE__POOL_SIZE", "many")])).unwrap_err();
        assert!(e.to_string().contains("pool_size"), "{e}");
    }
}

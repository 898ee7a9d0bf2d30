//! Layered settings: built-in defaults → optional `wxkit.toml` → `WXKIT__SECTION__KEY` environment variables (and
//! `.env`). `DATABASE_URL`, when set, overrides `database.url`.

use serde::Deserialize;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use wechat_core::{AppSecret, SecretString};

/// The app id the sandbox registers in the simulator when no WeChat credentials are configured.
pub const SANDBOX_APP_ID: &str = "wxsandbox00000001";

/// All settings. Secrets are held in redacting types, so `Debug` prints none of them.
#[derive(Clone, Debug, Deserialize)]
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
}

/// `server.*`
#[derive(Clone, Debug, Deserialize)]
pub struct ServerSettings {
    /// `server.addr`: listen address, `HOST:PORT` (port 0 picks a free port).
    pub addr: String,
    /// `server.public_base_url`: the URL users reach this server at (QR codes, OAuth redirects). Defaults to
    /// `http://{addr}`.
    pub public_base_url: Option<String>,
}

/// `database.*`
#[derive(Clone, Deserialize)]
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
}

impl fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("url", &crate::db::redact_url(&self.url))
            .field("pool_size", &self.pool_size)
            .field("redeem_batch_max", &self.redeem_batch_max)
            .field("redeem_batch_slots", &self.redeem_batch_slots)
            .finish()
    }
}

/// `wechat.*`
#[derive(Clone, Debug, Deserialize)]
pub struct WechatSettings {
    /// `wechat.app_id`. Unset: sandbox mode against the bundled simulator.
    pub app_id: Option<String>,
    /// `wechat.app_secret`.
    pub app_secret: Option<AppSecret>,
    /// `wechat.api_base_url` (default `https://api.weixin.qq.com`).
    pub api_base_url: String,
    /// `wechat.open_base_url` (default `https://open.weixin.qq.com`).
    pub open_base_url: String,
    /// `wechat.token`: the server-push verification token.
    pub token: Option<SecretString>,
    /// `wechat.encoding_aes_key`: 43-character EncodingAESKey for safe-mode pushes.
    pub encoding_aes_key: Option<SecretString>,
    /// `wechat.stable_token`: fetch the access token with `/cgi-bin/stable_token`.
    pub stable_token: bool,
}

/// `pay.*`
#[derive(Clone, Debug, Deserialize)]
pub struct PaySettings {
    /// `pay.mch_id`.
    pub mch_id: Option<String>,
    /// `pay.key`: the API key for v2 signatures.
    pub key: Option<SecretString>,
    /// `pay.base_url` (default `https://api.mch.weixin.qq.com`).
    pub base_url: String,
}

/// `admin.*`
#[derive(Clone, Debug, Default, Deserialize)]
pub struct AdminSettings {
    /// `admin.token`: bearer token for the admin API. Unset: the admin API refuses every call.
    pub token: Option<SecretString>,
}

/// A settings problem, reported as one line naming the setting.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or environment could not be read or does not have the right shape.
    #[error("configuration: {0}")]
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
            .set_default("database.url", "sqlite://wxkit.db")?
            .set_default("database.pool_size", 10)?
            .set_default("database.redeem_batch_max", 64)?
            .set_default("wechat.api_base_url", "https://api.weixin.qq.com")?
            .set_default("wechat.open_base_url", "https://open.weixin.qq.com")?
            .set_default("wechat.stable_token", false)?
            .set_default("pay.base_url", "https://api.mch.weixin.qq.com")?;
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
        if self.pay.mch_id.is_some() != self.pay.key.is_some() {
            return Err(invalid("pay.key", "pay.mch_id and pay.key must be set together"));
        }
        Ok(())
    }

    /// True when no WeChat credentials are configured: the server then runs against the bundled simulator.
    pub fn sandbox(&self) -> bool {
        self.wechat.app_id.is_none()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_are_sandbox_on_sqlite() {
        let s = Settings::load_from(None, env(&[])).unwrap();
        assert!(s.sandbox());
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
            (("DATABASE_URL", "mysql://x"), "database.url"),
            (("WXKIT__WECHAT__APP_ID", "wx1"), "wechat.app_secret"),
            (("WXKIT__WECHAT__ENCODING_AES_KEY", "short"), "wechat.encoding_aes_key"),
            (("WXKIT__DATABASE__POOL_SIZE", "0"), "database.pool_size"),
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

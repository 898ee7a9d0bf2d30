//! The WeChat apps this server acts as, built once from the `wechat` crate's product handles — the same handles an
//! embedding service uses ([`wechat::OfficialAccount`], [`wechat::MiniProgram`], [`wechat::Pay`]): the official
//! account (OAuth, JS-SDK, cards, messages, QR codes, its push receiver), the mini program, the open platform's
//! website app and the merchant. In sandbox mode they point at the bundled simulator, started here.
//!
//! Every app's access token and tickets live in the database (one refresher across instances); the v3 merchant's
//! platform certificates too.

use crate::configuration::{ConfigError, PaySettings, Settings};
#[cfg(feature = "sandbox")]
use crate::configuration::{SANDBOX_APP_ID, SANDBOX_MP_APP_ID, SANDBOX_WEBSITE_APP_ID};
use crate::db::certificate_store::DbCertificateStore;
use crate::db::token_store::DbTokenStore;
use crate::platform::Platform;
use std::sync::Arc;
use wechat_core::{AppId, AppSecret, Endpoints, SecretString, TokenManagerOptions, TokenMode, Transport};

/// The in-process simulator of sandbox mode.
#[cfg(feature = "sandbox")]
pub type SandboxSim = wechat_sim::SimServer;

/// Built without the `sandbox` feature: there is never a simulator.
#[cfg(not(feature = "sandbox"))]
#[derive(Debug)]
pub enum SandboxSim {}

#[cfg(not(feature = "sandbox"))]
impl SandboxSim {
    /// Never called: there is no value of this type.
    pub fn base_url(&self) -> String {
        match *self {}
    }

    /// Never called: there is no value of this type.
    pub async fn stop(self) {
        match self {}
    }
}

/// The merchant id the sandbox registers in the simulator.
pub const SANDBOX_MCH_ID: &str = "1900000109";

/// Why the WeChat apps could not be built.
#[derive(Debug, thiserror::Error)]
pub enum WechatAppsError {
    /// A setting is wrong (key files, an AES key, the sandbox feature missing).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The sandbox simulator could not listen.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// A product handle refused its configuration.
    #[error("WeChat: {0}")]
    Wechat(#[from] wechat::Error),
    /// A low-level client could not be built.
    #[error("WeChat client: {0}")]
    Core(#[from] wechat_core::Error),
}

/// The merchant, once per appid it takes payments for: the official account's (web pages, NATIVE codes) and, when
/// a mini program is configured, the mini program's (WeChat ties a JSAPI payment's openid to its order's appid).
#[derive(Clone, Debug)]
pub struct PayApps {
    /// The official account's.
    pub web: wechat::Pay,
    /// The mini program's.
    pub miniprogram: Option<wechat::Pay>,
}

/// What sandbox mode adds: where browsers reach the simulator and the push secrets it was given.
#[derive(Clone)]
pub struct Sandbox {
    /// The simulator's public address (pages link to its "play the phone" views).
    pub sim_url: String,
    /// The server URL's push token the simulator signs with.
    pub push_token: SecretString,
    /// The EncodingAESKey the simulator encrypts pushes with (safe mode).
    pub push_aes_key: SecretString,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("sim_url", &self.sim_url)
            .finish_non_exhaustive()
    }
}

/// The WeChat apps, as product handles.
#[derive(Clone, Debug)]
pub struct WechatApps {
    /// The official account: OAuth, JS-SDK, cards, messages, QR codes and (when a push token is set) its pushes.
    pub official: wechat::OfficialAccount,
    /// The mini program, when configured (always in sandbox mode).
    pub miniprogram: Option<wechat::MiniProgram>,
    /// The open platform's website app (website QR login), when configured (always in sandbox mode).
    pub website: Option<wechat_oauth::web::OAuthClient>,
    /// WeChat Pay, when a merchant is configured (always in sandbox mode).
    pub pay: Option<PayApps>,
    /// 商家券, when the merchant is on v3 with its v2 key too (always in sandbox mode).
    pub busifavor: Option<crate::platform::busifavor::Busifavor>,
    /// Where QR code images are shown (`wechat.mp_base_url`).
    pub mp_base_url: String,
    /// Sandbox mode's simulator, when running.
    pub sandbox: Option<Sandbox>,
}

impl WechatApps {
    /// Builds every app of `settings` on `platform` (tokens and certificates in its database). In sandbox mode it
    /// first starts the simulator, which the caller owns (and stops).
    pub async fn build(
        settings: &Settings,
        platform: &Platform,
    ) -> Result<(WechatApps, Option<SandboxSim>), WechatAppsError> {
        let sandbox = start_sandbox(settings).await?;
        let apps = Self::on(settings, platform, sandbox.as_ref())?;
        Ok((apps, sandbox))
    }

    /// The apps of `settings` against WeChat (`sim`: `None`) or a running sandbox simulator.
    pub fn on(
        settings: &Settings,
        platform: &Platform,
        sim: Option<&SandboxSim>,
    ) -> Result<WechatApps, WechatAppsError> {
        let wiring = Wiring::new(settings, platform, sim)?;
        let push = push_secrets(settings, sim.is_some());
        let mut official = wechat::OfficialAccount::builder()
            .app_id(wiring.account.0.clone())
            .secret(wiring.account.1.clone())
            .endpoints(wiring.endpoints.clone())
            .transport(wiring.transport.clone())
            .token_store(wiring.tokens.clone())
            .token_options(wiring.options.clone())
            .clock(platform.clock.clone())
            .push_window_secs(i64::from(settings.wechat.push_window_secs));
        if let Some((token, aes_key)) = &push {
            official = official.push_token(token.secret());
            if let Some(key) = aes_key {
                official = official
                    .encoding_aes_key(key.secret())
                    .push_mode(if settings.wechat.push_compatible_mode {
                        wechat::PushMode::Compatible
                    } else {
                        wechat::PushMode::Safe
                    });
            }
        }
        let official = official.build().map_err(|e| match e {
            wechat::Error::Push(p) => WechatAppsError::Config(ConfigError::Invalid {
                key: "wechat.encoding_aes_key",
                message: p.to_string(),
            }),
            other => other.into(),
        })?;
        let miniprogram = match &wiring.miniprogram {
            Some((id, secret)) => {
                let mut builder = wechat::MiniProgram::builder()
                    .app_id(id.clone())
                    .secret(secret.clone())
                    .endpoints(wiring.endpoints.clone())
                    .transport(wiring.transport.clone())
                    .token_store(wiring.tokens.clone())
                    .token_options(wiring.options.clone())
                    .clock(platform.clock.clone())
                    .push_window_secs(i64::from(settings.wechat.push_window_secs));
                if let Some(token) = &settings.miniprogram.token {
                    builder = builder.push_token(token.clone());
                }
                if let Some(key) = &settings.miniprogram.encoding_aes_key {
                    builder = builder.encoding_aes_key(key.clone());
                }
                Some(builder.build().map_err(|e| match e {
                    wechat::Error::Push(p) => WechatAppsError::Config(ConfigError::Invalid {
                        key: "miniprogram.encoding_aes_key",
                        message: p.to_string(),
                    }),
                    other => other.into(),
                })?)
            }
            None => None,
        };
        let website = wiring
            .website
            .clone()
            .map(|(id, secret)| wechat_oauth::web::OAuthClient::new(official.app().client().clone(), id, secret));
        let app_ids = (
            official.app_id().clone(),
            miniprogram.as_ref().map(|m| m.app().app_id().clone()),
        );
        let (pay, busifavor) = pay_apps(settings, platform, sim, &wiring, app_ids)?;
        // A simulator serves showqrcode on its API address; WeChat on mp.weixin.qq.com.
        let mp_base_url = settings.wechat.mp_base_url.clone().unwrap_or_else(|| {
            if settings.wechat.api_base_url.trim_end_matches('/') == "https://api.weixin.qq.com" {
                wechat_message::qrcode::SHOW_BASE_URL.to_owned()
            } else {
                settings.wechat.api_base_url.clone()
            }
        });
        let sandbox = match (sim, push) {
            (Some(sim), Some((push_token, Some(push_aes_key)))) => Some(Sandbox {
                sim_url: sandbox_sim_public_url(settings, &sim.base_url()),
                push_token,
                push_aes_key,
            }),
            _ => None,
        };
        Ok(WechatApps {
            official,
            miniprogram,
            website,
            pay,
            busifavor,
            mp_base_url,
            sandbox,
        })
    }

    /// The simulator's public address, in sandbox mode.
    pub fn sandbox_sim_url(&self) -> Option<&str> {
        self.sandbox.as_ref().map(|s| s.sim_url.as_str())
    }
}

/// What every app shares: endpoints, one transport (one connection pool), the database token store and options;
/// and each app's credentials (the configured ones, or the simulator's).
struct Wiring {
    endpoints: Endpoints,
    transport: Arc<dyn Transport>,
    tokens: Arc<DbTokenStore>,
    options: TokenManagerOptions,
    account: (AppId, AppSecret),
    miniprogram: Option<(AppId, AppSecret)>,
    website: Option<(AppId, AppSecret)>,
}

impl Wiring {
    fn new(settings: &Settings, platform: &Platform, sim: Option<&SandboxSim>) -> Result<Wiring, WechatAppsError> {
        let transport: Arc<dyn Transport> =
            Arc::new(wechat_core::ReqwestTransport::new().map_err(wechat_core::Error::from)?);
        let options = TokenManagerOptions::default().mode(if settings.wechat.stable_token {
            TokenMode::Stable
        } else {
            TokenMode::Classic
        });
        let tokens = Arc::new(DbTokenStore::new(platform.db.clone()));
        let configured = |id: &Option<String>, secret: &Option<AppSecret>| match (id, secret) {
            (Some(id), Some(secret)) => Some((AppId::new(id), secret.clone())),
            _ => None,
        };
        match sim {
            #[cfg(feature = "sandbox")]
            Some(sim) => {
                let public = sandbox_sim_public_url(settings, &sim.base_url());
                // The server calls the simulator on its local address; browsers are sent to its public one.
                let endpoints = Endpoints::new(&sim.base_url(), &public)?;
                // Fresh secrets each start: the simulator learns them here, nobody else needs them.
                let app = |id: &str| {
                    let secret = crate::platform::crypto::random_token()[..32].to_owned();
                    sim.handle().add_app(id, &secret);
                    (AppId::new(id), AppSecret::new(secret))
                };
                Ok(Wiring {
                    endpoints,
                    transport,
                    tokens,
                    options,
                    account: app(SANDBOX_APP_ID),
                    miniprogram: Some(app(SANDBOX_MP_APP_ID)),
                    website: Some(app(SANDBOX_WEBSITE_APP_ID)),
                })
            }
            #[cfg(not(feature = "sandbox"))]
            Some(sim) => match *sim {},
            None => {
                let account = configured(&settings.wechat.app_id, &settings.wechat.app_secret).ok_or_else(|| {
                    ConfigError::Invalid {
                        key: "wechat.app_id",
                        message: "wechat.app_id and wechat.app_secret are needed outside sandbox mode".into(),
                    }
                })?;
                Ok(Wiring {
                    endpoints: Endpoints::new(&settings.wechat.api_base_url, &settings.wechat.open_base_url)?,
                    transport,
                    tokens,
                    options,
                    account,
                    miniprogram: configured(&settings.miniprogram.app_id, &settings.miniprogram.app_secret),
                    website: configured(&settings.website.app_id, &settings.website.app_secret),
                })
            }
        }
    }
}

/// Starts the sandbox simulator when `settings` ask for sandbox mode, with fresh secrets for its three apps.
async fn start_sandbox(settings: &Settings) -> Result<Option<SandboxSim>, WechatAppsError> {
    if !settings.sandbox() {
        return Ok(None);
    }
    #[cfg(not(feature = "sandbox"))]
    {
        Err(ConfigError::Invalid {
            key: "server.mode",
            message: "this wxkit was built without the `sandbox` feature: it has no simulator to start".into(),
        }
        .into())
    }
    #[cfg(feature = "sandbox")]
    {
        if settings.wechat.app_id.is_some() {
            tracing::warn!("sandbox mode: the configured WeChat credentials are not used");
        }
        let sim_addr = settings.server.sandbox_sim_addr.clone();
        // The apps are registered with fresh secrets when they are wired (`Wiring::new`).
        let sim = SandboxSim::start(&sim_addr, &[])
            .await
            .map_err(|source| WechatAppsError::Bind {
                addr: format!("{sim_addr} (sandbox simulator, server.sandbox_sim_addr)"),
                source,
            })?;
        tracing::info!(simulator = %sim.base_url(), app_id = SANDBOX_APP_ID, "sandbox mode: using the bundled WeChat simulator");
        Ok(Some(sim))
    }
}

/// The server URL's push token and EncodingAESKey: the configured ones, or in sandbox mode fresh ones for whichever
/// is not configured (the simulator pushes in safe mode, the mode the docs recommend).
fn push_secrets(settings: &Settings, sandbox: bool) -> Option<(SecretString, Option<SecretString>)> {
    let fresh = |len: usize| SecretString::new(crate::platform::crypto::random_token()[..len].to_owned());
    let token = match &settings.wechat.token {
        Some(t) if !t.is_empty() => t.clone(),
        _ if sandbox => fresh(64),
        _ => return None,
    };
    let aes_key = match &settings.wechat.encoding_aes_key {
        Some(k) => Some(k.clone()),
        None if sandbox => Some(fresh(43)),
        None => None,
    };
    Some((token, aes_key))
}

/// The simulator's address as browsers reach it: `server.sandbox_sim_public_url` when set; else, when the server has
/// a public base URL, that host with the simulator's port (a phone on the LAN reaches both the same way); else its
/// local address.
pub fn sandbox_sim_public_url(settings: &Settings, local: &str) -> String {
    if let Some(u) = settings
        .server
        .sandbox_sim_public_url
        .as_deref()
        .filter(|u| !u.is_empty())
    {
        return u.trim_end_matches('/').to_owned();
    }
    let port = url::Url::parse(local).ok().and_then(|u| u.port());
    match (settings.server.public_base_url.as_deref().map(url::Url::parse), port) {
        (Some(Ok(mut public)), Some(port)) if public.host_str().is_some() => {
            let _ = public.set_port(Some(port));
            public.set_path("");
            public.as_str().trim_end_matches('/').to_owned()
        }
        _ => local.to_owned(),
    }
}

/// The merchant's handles: v2 (`pay.key`) or v3 (`pay.api_version = "v3"`), the configured merchant or the
/// simulator's; one per appid it takes payments for.
fn pay_apps(
    settings: &Settings,
    platform: &Platform,
    sim: Option<&SandboxSim>,
    wiring: &Wiring,
    (web_app, mini_app): (AppId, Option<AppId>),
) -> Result<(Option<PayApps>, Option<crate::platform::busifavor::Busifavor>), WechatAppsError> {
    let v3 = settings.pay.api_version == "v3";
    let Some(merchant) = merchant(settings, sim, v3)? else {
        return Ok((None, None));
    };
    let official_appid = web_app.as_str().to_owned();
    let invalid = |key: &'static str, message: String| WechatAppsError::Config(ConfigError::Invalid { key, message });
    let certificate_transport = if v3 {
        None
    } else {
        certificate_transport(&settings.pay, &merchant.base_url)?
    };
    let pay_for = |app_id: AppId| -> Result<wechat::Pay, WechatAppsError> {
        let mut builder = wechat::Pay::builder()
            .app_id(app_id)
            .mch_id(merchant.mch_id.clone())
            .base_url(&merchant.base_url)
            .transport(wiring.transport.clone());
        match &merchant.keys {
            MerchantKeys::V2(key) => {
                builder = builder
                    .v2_key(wechat_pay::PayKey::new(key.secret().to_owned()))
                    .v2_sign_type(wechat_pay::SignType::HmacSha256);
                if let Some(t) = &certificate_transport {
                    builder = builder.certificate_transport(t.clone());
                }
            }
            MerchantKeys::V3(keys) => {
                builder = builder
                    .v3(
                        keys.private_key.clone(),
                        keys.cert_serial.clone(),
                        keys.api_v3_key.clone(),
                    )
                    // WeChat Pay's timestamps are checked against real time, whatever clock the application runs on.
                    .v3_clock(Arc::new(wechat_core::SystemClock))
                    .v3_certificate_store(Arc::new(DbCertificateStore::new(platform.db.clone())))
                    .v3_platform_certificates(keys.download_certificates);
                if let Some((id, key)) = &keys.public_key {
                    builder = builder.v3_public_key(id.clone(), key.clone());
                }
            }
        }
        builder.build().map_err(|e| match e {
            wechat::Error::Pay(p) => invalid("pay.mch_id", p.to_string()),
            other => other.into(),
        })
    };
    let web = pay_for(web_app)?;
    let miniprogram = mini_app.map(&pay_for).transpose()?;
    let busifavor = busifavor_handle(settings, &merchant, &web, wiring, official_appid, sim.is_some())?;
    Ok((Some(PayApps { web, miniprogram }), busifavor))
}

/// The 商家券 handle: the v3 client (the payments' own, or in sandbox v2 mode one for the simulator's v3 merchant)
/// and the v2 key. A v3 merchant without `pay.key` gets none, and start-up says which setting is missing.
fn busifavor_handle(
    settings: &Settings,
    merchant: &MerchantConfig,
    web: &wechat::Pay,
    wiring: &Wiring,
    appid: String,
    sandbox: bool,
) -> Result<Option<crate::platform::busifavor::Busifavor>, WechatAppsError> {
    let invalid = |key: &'static str, message: String| WechatAppsError::Config(ConfigError::Invalid { key, message });
    let (client, v2_key) = match (&merchant.keys, &merchant.busifavor_v2_key, &merchant.sandbox_v3) {
        (MerchantKeys::V3(_), Some(key), _) => match web.v3() {
            Ok(c) => (c.clone(), key.clone()),
            Err(_) => return Ok(None),
        },
        (MerchantKeys::V3(_), None, _) => {
            tracing::warn!(
                "pay.key is not set: WeChat Pay 商家券 (coupons in the WeChat card bag) stays off — its H5 and \
                 mini-program sends are signed with the API v2 key"
            );
            return Ok(None);
        }
        (MerchantKeys::V2(key), _, Some(keys)) => {
            let signer = wechat_pay::v3::RequestSigner::new(
                merchant.mch_id.clone(),
                keys.cert_serial.clone(),
                keys.private_key.clone(),
            );
            let mut builder = wechat_pay::v3::Client::builder(signer, keys.api_v3_key.clone())
                .base_url(&merchant.base_url)
                .transport(wiring.transport.clone())
                .clock(Arc::new(wechat_core::SystemClock))
                .platform_certificates(false);
            if let Some((id, key)) = &keys.public_key {
                builder = builder.public_key(id.clone(), key.clone());
            }
            let client = builder.build().map_err(|e| invalid("pay.mch_id", e.to_string()))?;
            (client, SecretString::new(key.secret().to_owned()))
        }
        (MerchantKeys::V2(_), _, None) => return Ok(None),
    };
    let h5_base = match &settings.pay.busifavor_page_url {
        Some(u) => u.trim_end_matches('/').to_owned(),
        None if sandbox => merchant.public_base_url.clone(),
        None if merchant.base_url.trim_end_matches('/') == "https://api.mch.weixin.qq.com" => {
            wechat_pay::v3::marketing::busifavor::H5_BASE_URL.to_owned()
        }
        // A simulator serves the H5 page beside the API.
        None => merchant.base_url.trim_end_matches('/').to_owned(),
    };
    Ok(Some(crate::platform::busifavor::Busifavor {
        client,
        v2_key: wechat_pay::PayKey::new(v2_key.secret().to_owned()),
        mch_id: merchant.mch_id.clone(),
        appid,
        h5_base,
    }))
}

enum MerchantKeys {
    V2(SecretString),
    V3(Box<crate::configuration::PayV3Keys>),
}

struct MerchantConfig {
    mch_id: String,
    base_url: String,
    keys: MerchantKeys,
    /// `pay.key` beside v3 keys (商家券's sends).
    busifavor_v2_key: Option<SecretString>,
    /// Sandbox in v2 mode: the simulator's v3 merchant of the same id (商家券 is a v3 product).
    sandbox_v3: Option<Box<crate::configuration::PayV3Keys>>,
    /// Where a browser reaches the payment host (the sandbox simulator's public address).
    public_base_url: String,
}

/// The configured merchant, or in sandbox mode one the simulator registers (v3: with the bundled sandbox key, in
/// public-key mode).
fn merchant(
    settings: &Settings,
    sim: Option<&SandboxSim>,
    v3: bool,
) -> Result<Option<MerchantConfig>, WechatAppsError> {
    match sim {
        #[cfg(feature = "sandbox")]
        Some(sim) => {
            let invalid =
                |key: &'static str, message: String| WechatAppsError::Config(ConfigError::Invalid { key, message });
            // The simulator's merchant has both keys: v2 for v2 payments and 商家券's sends, v3 for v3 payments and
            // 商家券 itself.
            let api_v3_key = crate::platform::crypto::random_token()[..32].to_owned();
            let info = sim
                .handle()
                .add_v3_merchant(
                    SANDBOX_MCH_ID,
                    &api_v3_key,
                    wechat_sim::SANDBOX_MERCHANT_SERIAL,
                    wechat_sim::SANDBOX_MERCHANT_CERT,
                    wechat_sim::SigningMode::PublicKey,
                )
                .map_err(|e| invalid("pay.api_version", e))?;
            let v3_keys = Box::new(crate::configuration::PayV3Keys {
                private_key: wechat_pay::v3::MerchantPrivateKey::from_pem(wechat_sim::SANDBOX_MERCHANT_KEY)
                    .map_err(|e| invalid("pay.api_version", e.to_string()))?,
                cert_serial: wechat_sim::SANDBOX_MERCHANT_SERIAL.to_owned(),
                api_v3_key: wechat_pay::v3::ApiV3Key::new(api_v3_key),
                public_key: Some((
                    info.public_key_id,
                    wechat_pay::v3::PublicKey::from_pem(&info.public_key_pem)
                        .map_err(|e| invalid("pay.api_version", e.to_string()))?,
                )),
                download_certificates: false,
            });
            let v2_key = crate::platform::crypto::random_token()[..32].to_owned();
            sim.handle().add_merchant(SANDBOX_MCH_ID, &v2_key);
            let (keys, busifavor_v2_key, sandbox_v3) = if v3 {
                (MerchantKeys::V3(v3_keys), Some(SecretString::new(v2_key)), None)
            } else {
                (MerchantKeys::V2(SecretString::new(v2_key)), None, Some(v3_keys))
            };
            Ok(Some(MerchantConfig {
                mch_id: SANDBOX_MCH_ID.to_owned(),
                base_url: sim.base_url(),
                keys,
                busifavor_v2_key,
                sandbox_v3,
                public_base_url: sandbox_sim_public_url(settings, &sim.base_url()),
            }))
        }
        #[cfg(not(feature = "sandbox"))]
        Some(sim) => match *sim {},
        None => {
            let Some(mch_id) = settings.pay.mch_id.clone() else {
                return Ok(None);
            };
            let keys = if v3 {
                MerchantKeys::V3(Box::new(settings.pay.v3.keys()?))
            } else {
                match &settings.pay.key {
                    Some(key) => MerchantKeys::V2(SecretString::new(key.secret().to_owned())),
                    None => return Ok(None),
                }
            };
            let busifavor_v2_key = match (&keys, &settings.pay.key) {
                (MerchantKeys::V3(_), Some(key)) => Some(SecretString::new(key.secret().to_owned())),
                _ => None,
            };
            Ok(Some(MerchantConfig {
                mch_id,
                base_url: settings.pay.base_url.clone(),
                keys,
                busifavor_v2_key,
                sandbox_v3: None,
                public_base_url: settings.pay.base_url.clone(),
            }))
        }
    }
}

/// The transport for v2 refunds: the merchant's client certificate (mutual TLS) when configured; over plain http (a
/// simulator) an ordinary transport, as there is no TLS to present a certificate in; otherwise none (refunds then
/// answer that the certificate is missing).
fn certificate_transport(pay: &PaySettings, base_url: &str) -> Result<Option<Arc<dyn Transport>>, WechatAppsError> {
    let invalid = |key: &'static str, message: String| WechatAppsError::Config(ConfigError::Invalid { key, message });
    if let (Some(cert), Some(key)) = (&pay.client_cert_path, &pay.client_key_path) {
        let mut pem = std::fs::read(cert).map_err(|e| invalid("pay.client_cert_path", format!("{cert}: {e}")))?;
        pem.push(b'\n');
        pem.extend(std::fs::read(key).map_err(|e| invalid("pay.client_key_path", format!("{key}: {e}")))?);
        let identity = reqwest::Identity::from_pem(&pem)
            .map_err(|e| invalid("pay.client_cert_path", format!("not a PEM certificate and key: {e}")))?;
        let client = reqwest::Client::builder()
            .identity(identity)
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| invalid("pay.client_cert_path", e.to_string()))?;
        return Ok(Some(Arc::new(wechat_core::ReqwestTransport::from_client(client))));
    }
    if base_url.starts_with("http://") {
        let transport = wechat_core::ReqwestTransport::new().map_err(|e| invalid("pay.base_url", e.to_string()))?;
        return Ok(Some(Arc::new(transport)));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(env: &[(&str, &str)]) -> Settings {
        Settings::load_from(None, env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[tokio::test]
    async fn the_apps_print_no_secret() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let db = format!("sqlite://{}", dir.path().join("t.db").display());
        let secrets = [
            ("WXKIT__WECHAT__APP_SECRET", "app-secret-1f2e3d4c5b6a"),
            ("WXKIT__WECHAT__TOKEN", "push-token-9a8b7c6d5e4f"),
            (
                "WXKIT__WECHAT__ENCODING_AES_KEY",
                "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
            ),
            ("WXKIT__MINIPROGRAM__APP_SECRET", "mp-secret-0a1b2c3d4e5f"),
            ("WXKIT__WEBSITE__APP_SECRET", "web-secret-6f5e4d3c2b1a"),
            ("WXKIT__PAY__KEY", "pay-key-00112233445566778899aabb"),
        ];
        let mut env = vec![
            ("DATABASE_URL", db.as_str()),
            ("WXKIT__WECHAT__APP_ID", "wx1"),
            ("WXKIT__MINIPROGRAM__APP_ID", "wx2"),
            ("WXKIT__WEBSITE__APP_ID", "wx3"),
            ("WXKIT__PAY__MCH_ID", "1900000109"),
            ("WXKIT__PAY__BASE_URL", "http://127.0.0.1:9"),
        ];
        env.extend(secrets);
        let settings = settings(&env);
        let (backend, pool) = Platform::connect(&settings).await.unwrap_or_else(|e| panic!("{e}"));
        let platform = Platform::new(
            pool,
            backend,
            Arc::new(wechat_core::SystemClock),
            "https://shop.example.com",
            &settings,
        );
        let apps = WechatApps::on(&settings, &platform, None).unwrap_or_else(|e| panic!("{e}"));
        assert!(apps.official.push().is_ok() && apps.pay.is_some() && apps.website.is_some());
        let printed = format!("{apps:?} {platform:?}");
        for (name, secret) in secrets {
            assert!(!printed.contains(secret), "{name} printed: {printed}");
        }
    }

    #[test]
    fn push_secrets_are_the_configured_ones_and_fresh_only_in_sandbox_mode() {
        let none = settings(&[]);
        assert!(
            push_secrets(&none, false).is_none(),
            "no token configured: no push receiver"
        );
        let (token, key) = push_secrets(&none, true).unwrap_or_else(|| panic!("sandbox pushes"));
        assert_eq!((token.secret().len(), key.map(|k| k.secret().len())), (64, Some(43)));
        let pinned = settings(&[("WXKIT__WECHAT__TOKEN", "pinned-token")]);
        for sandbox in [false, true] {
            let (token, key) = push_secrets(&pinned, sandbox).unwrap_or_else(|| panic!("a token"));
            assert_eq!(token.secret(), "pinned-token");
            assert_eq!(key.is_some(), sandbox, "a key only where the sandbox makes one");
        }
    }

    #[test]
    fn the_simulator_is_handed_out_at_the_public_host() {
        let local = "http://127.0.0.1:9000";
        // Nothing public configured: the local address.
        assert_eq!(sandbox_sim_public_url(&settings(&[]), local), local);
        // A public base URL: its host, the simulator's port.
        let s = settings(&[("WXKIT__SERVER__PUBLIC_BASE_URL", "http://192.168.1.20:8080/")]);
        assert_eq!(sandbox_sim_public_url(&s, local), "http://192.168.1.20:9000");
        // An explicit simulator URL wins.
        let s = settings(&[
            ("WXKIT__SERVER__PUBLIC_BASE_URL", "http://192.168.1.20:8080"),
            ("WXKIT__SERVER__SANDBOX_SIM_PUBLIC_URL", "https://sim.example.com/"),
        ]);
        assert_eq!(sandbox_sim_public_url(&s, local), "https://sim.example.com");
    }
}

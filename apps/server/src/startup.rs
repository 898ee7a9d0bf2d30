//! Building and running the application: database, WeChat clients (or the sandbox simulator), HTTP server.

use crate::configuration::Settings;
#[cfg(feature = "sandbox")]
use crate::configuration::{SANDBOX_APP_ID, SANDBOX_MP_APP_ID};
use crate::db::token_store::DbTokenStore;
use crate::db::{self, Backend, DbError, DbPool};
use crate::features;
use crate::http::{self, errors::ApiError};
use actix_service::IntoServiceFactory as _;
use actix_web::dev::Server;
use actix_web::middleware::{ErrorHandlers, Logger};
use actix_web::{App, web};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use wechat_core::{AccessTokenManager, AppId, Endpoints, TokenManagerOptions, TokenMode, WechatClient};

/// The in-process simulator of sandbox mode.
#[cfg(feature = "sandbox")]
type SandboxSim = wechat_sim::SimServer;

/// Built without the `sandbox` feature: there is never a simulator.
#[cfg(not(feature = "sandbox"))]
#[derive(Debug)]
enum SandboxSim {}

#[cfg(not(feature = "sandbox"))]
impl SandboxSim {
    fn base_url(&self) -> String {
        match *self {}
    }

    async fn stop(self) {
        match self {}
    }
}

/// Shared by every request.
pub struct AppState {
    /// Settings as loaded.
    pub settings: Settings,
    /// The database pool.
    pub db: DbPool,
    /// POS redemptions, batched onto the pool (see [`crate::features::coupons::pos::PosBatcher`]).
    pub pos: crate::features::coupons::pos::PosBatcher,
    /// Which database.
    pub backend: Backend,
    /// The WeChat client (pointed at WeChat or the simulator).
    pub wechat: WechatClient,
    /// The app's access token and tickets, shared with other instances through the database.
    pub tokens: AccessTokenManager,
    /// The URL users reach this server at.
    pub public_base_url: String,
    /// Web OAuth for the scan page.
    pub oauth: wechat_oauth::web::OAuthClient,
    /// The card API (card-backed campaigns).
    pub cards: wechat_card::CardClient,
    /// The open-platform website app (website QR login), when configured (always in sandbox mode).
    pub website: Option<wechat_oauth::web::OAuthClient>,
    /// Parametric QR codes of the official account (follow-to-get-a-coupon).
    pub qrcodes: wechat_message::qrcode::QrCodeClient,
    /// Where QR code images are shown (`wechat.mp_base_url`).
    pub mp_base_url: String,
    /// Signs OAuth states (key shared by all instances through the database).
    pub state_signer: wechat_oauth::state::StateSigner,
    /// Signs sessions and CSRF tokens (shared by all instances).
    pub session_key: Vec<u8>,
    /// Signs session cookies (derived from `session_key`).
    pub cookie_key: actix_web::cookie::Key,
    /// The admin API token (generated in sandbox mode when unset).
    pub admin_token: Option<wechat_core::SecretString>,
    /// The server-push token (`wechat.token`; generated in sandbox mode).
    pub push_token: Option<wechat_core::SecretString>,
    /// Safe-mode push crypto, when `wechat.encoding_aes_key` is set (generated in sandbox mode).
    pub push_crypto: Option<wechat_core::push::MessageCrypto>,
    /// The EncodingAESKey behind `push_crypto`.
    pub push_aes_key: Option<wechat_core::SecretString>,
    /// The worker delivering work owed to WeChat.
    pub outbox: crate::features::outbox::Outbox,
    /// Failed authentications per client address.
    pub auth_limiter: crate::http::ratelimit::AuthLimiter,
    /// Request limits of the public endpoints.
    pub rate_limits: crate::http::ratelimit::RateLimits,
    /// The application's clock (the system's; tests move it).
    pub clock: Arc<dyn wechat_core::Clock>,
    /// The mini program (login, phone, codes), when configured (always in sandbox mode).
    pub miniprogram: Option<wechat_oauth::miniprogram::MiniProgramClient>,
    /// WeChat Pay v2 for the official account's pages and NATIVE codes, when a merchant is configured (always in
    /// sandbox mode).
    pub pay: Option<crate::features::pay::Gateway>,
    /// The same merchant for all the appids it takes payments for (the mini program's too).
    pub payers: Option<crate::features::pay::Payers>,
    /// Login codes created per client address (`login.scenes_per_minute`).
    pub scene_limiter: crate::http::ratelimit::AuthLimiter,
    /// The bundled simulator's address, in sandbox mode (pages link to its "play the phone" views).
    pub sandbox_sim_url: Option<String>,
    /// Scan-to-login events for this instance's sockets (fed across instances by PostgreSQL NOTIFY).
    pub login_hub: crate::features::scan_login::hub::LoginHub,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys and tokens stay out of Debug output.
        f.debug_struct("AppState")
            .field("backend", &self.backend)
            .field("public_base_url", &self.public_base_url)
            .field("tokens", &self.tokens)
            .field("admin_token", &self.admin_token)
            .field("push_token", &self.push_token)
            .finish_non_exhaustive()
    }
}

/// Why the application could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// Database unreachable, bad URL, failed migration.
    #[error(transparent)]
    Database(#[from] DbError),
    /// Bad settings.
    #[error(transparent)]
    Config(#[from] crate::configuration::ConfigError),
    /// The listen address could not be bound, or the simulator could not start.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The WeChat client could not be built.
    #[error("WeChat client: {0}")]
    Wechat(#[from] wechat_core::Error),
    /// The WeChat Pay client could not be built.
    #[error("WeChat Pay client: {0}")]
    Pay(#[from] wechat_pay::Error),
}

impl StartupError {
    /// Exit code for the CLI: 2 for configuration and database problems (fix the setup), 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            StartupError::Database(_) | StartupError::Config(_) => 2,
            StartupError::Bind { .. } | StartupError::Wechat(_) | StartupError::Pay(_) => 1,
        }
    }
}

/// The transport for refunds: the merchant's client certificate (mutual TLS) when configured; over plain http (a
/// simulator) an ordinary transport, as there is no TLS to present a certificate in; otherwise none (refunds then
/// answer that the certificate is missing).
fn certificate_transport(
    pay: &crate::configuration::PaySettings,
    base_url: &str,
) -> Result<Option<Arc<dyn wechat_core::Transport>>, StartupError> {
    let invalid = |key: &'static str, message: String| {
        StartupError::Config(crate::configuration::ConfigError::Invalid { key, message })
    };
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

/// The v3 merchant's clients: one [`wechat_pay::v3::Client`] (its certificates shared through the database), one
/// gateway per appid it takes payments for. In sandbox mode the simulator registers a merchant with the bundled
/// sandbox key, in public-key mode.
fn v3_payers(
    settings: &Settings,
    sandbox: Option<&SandboxSim>,
    pool: &DbPool,
    clock: &Arc<dyn wechat_core::Clock>,
    oauth: &wechat_oauth::web::OAuthClient,
    miniprogram: Option<&wechat_oauth::miniprogram::MiniProgramClient>,
) -> Result<Option<crate::features::pay::Payers>, StartupError> {
    use crate::features::pay::{Gateway, Payers};
    let found: Option<(String, crate::configuration::PayV3Keys, String)> = match sandbox {
        #[cfg(feature = "sandbox")]
        Some(sim) => {
            let invalid = |key: &'static str, message: String| {
                StartupError::Config(crate::configuration::ConfigError::Invalid { key, message })
            };
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
            let keys = crate::configuration::PayV3Keys {
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
            };
            Some((SANDBOX_MCH_ID.to_owned(), keys, sim.base_url()))
        }
        #[cfg(not(feature = "sandbox"))]
        Some(sim) => match *sim {},
        None => match &settings.pay.mch_id {
            Some(mch) => Some((mch.clone(), settings.pay.v3.keys()?, settings.pay.base_url.clone())),
            None => None,
        },
    };
    let Some((mch_id, keys, base)) = found else {
        return Ok(None);
    };
    let signer = wechat_pay::v3::RequestSigner::new(mch_id, keys.cert_serial, keys.private_key);
    // WeChat Pay's timestamps are checked against real time, whatever clock the application runs on.
    let _ = clock;
    let mut builder = wechat_pay::v3::Client::builder(signer, keys.api_v3_key)
        .base_url(&base)
        .clock(Arc::new(wechat_core::SystemClock))
        .certificate_store(Arc::new(crate::db::certificate_store::DbCertificateStore::new(
            pool.clone(),
        )))
        .platform_certificates(keys.download_certificates);
    if let Some((id, key)) = keys.public_key {
        builder = builder.public_key(id, key);
    }
    let client = builder.build()?;
    Ok(Some(Payers {
        web: Gateway::V3 {
            client: client.clone(),
            app_id: oauth.app_id().clone(),
        },
        miniprogram: miniprogram.map(|m| Gateway::V3 {
            client,
            app_id: m.app_id().clone(),
        }),
    }))
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

/// The merchant id the sandbox registers in the simulator.
const SANDBOX_MCH_ID: &str = "1900000109";

/// Concurrent POS batches unless configured: one per CPU core (at least 2, at most 8), and never more than half the
/// pool (the rest serves pages, admin calls and token refreshes). Fewer, fuller batches beat many small ones: on the
/// 2-core benchmark machine 1/2/4/8 slots gave 10.8k/10.6–11.7k/10.5k/9.2k redemptions/s (docs/benchmarks.md). With batching off
/// (`redeem_batch_max = 1`) every connection of the pool may carry a redemption.
fn pos_slots(configured: Option<u32>, batch_max: u32, pool_size: u32) -> usize {
    if let Some(n) = configured {
        return usize::try_from(n).unwrap_or(1).max(1);
    }
    let pool = usize::try_from(pool_size).unwrap_or(1).max(1);
    if batch_max <= 1 {
        return pool;
    }
    let cores = std::thread::available_parallelism().map_or(2, usize::from).clamp(2, 8);
    cores.min(pool / 2).max(1)
}

/// A built, bound, not yet running application.
pub struct Application {
    addr: SocketAddr,
    server: Server,
    state: web::Data<AppState>,
    sandbox: Option<SandboxSim>,
    demo: Option<crate::features::sandbox::Demo>,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("addr", &self.addr)
            .field("sandbox", &self.sandbox_url())
            .finish_non_exhaustive()
    }
}

impl Application {
    /// Connects and migrates the database, starts the sandbox simulator when no WeChat credentials are configured,
    /// and binds the listener (port 0 picks a free port; see [`port`](Self::port)).
    pub async fn build(settings: Settings) -> Result<Application, StartupError> {
        Self::build_with_clock(settings, Arc::new(wechat_core::SystemClock)).await
    }

    /// [`build`](Self::build) with the clock that handlers, services, workers and the token manager read.
    pub async fn build_with_clock(
        settings: Settings,
        clock: Arc<dyn wechat_core::Clock>,
    ) -> Result<Application, StartupError> {
        settings.check_can_serve()?;
        http::metrics::install_recorder();
        let url = settings.database.url.clone();
        let (pool_size, cache_kib) = (settings.database.pool_size, settings.database.sqlite_cache_kib);
        let (backend, pool) = tokio::task::spawn_blocking(move || db::connect_and_migrate(&url, pool_size, cache_kib))
            .await
            .map_err(|e| DbError::Task(e.to_string()))??;

        let real = match (&settings.wechat.app_id, &settings.wechat.app_secret) {
            (Some(app_id), Some(secret)) if !settings.sandbox() => Some((app_id, secret)),
            _ => None,
        };
        if settings.sandbox() && settings.wechat.app_id.is_some() {
            tracing::warn!("sandbox mode: the configured WeChat credentials are not used");
        }
        let sandbox_mp_secret = wechat_core::AppSecret::new(uuid::Uuid::new_v4().simple().to_string());
        let sandbox_website_secret = wechat_core::AppSecret::new(uuid::Uuid::new_v4().simple().to_string());
        let (sandbox, endpoints, app_id, secret) = match real {
            Some((app_id, secret)) => {
                let endpoints = Endpoints::new(&settings.wechat.api_base_url, &settings.wechat.open_base_url)?;
                (None, endpoints, AppId::new(app_id), secret.clone())
            }
            #[cfg(not(feature = "sandbox"))]
            None => {
                return Err(crate::configuration::ConfigError::Invalid {
                    key: "server.mode",
                    message: "this wxkit was built without the `sandbox` feature: it has no simulator to start".into(),
                }
                .into());
            }
            #[cfg(feature = "sandbox")]
            None => {
                let secret = wechat_core::AppSecret::new(uuid::Uuid::new_v4().simple().to_string());
                let sim_addr = settings.server.sandbox_sim_addr.clone();
                let sim = SandboxSim::start(
                    &sim_addr,
                    &[
                        (SANDBOX_APP_ID, secret.secret()),
                        (SANDBOX_MP_APP_ID, sandbox_mp_secret.secret()),
                        (
                            crate::configuration::SANDBOX_WEBSITE_APP_ID,
                            sandbox_website_secret.secret(),
                        ),
                    ],
                )
                .await
                .map_err(|source| StartupError::Bind {
                    addr: format!("{sim_addr} (sandbox simulator, server.sandbox_sim_addr)"),
                    source,
                })?;
                // The server calls the simulator on its local address; browsers (a phone on the LAN) are sent to
                // its public one.
                let public = sandbox_sim_public_url(&settings, &sim.base_url());
                let endpoints = Endpoints::new(&sim.base_url(), &public)?;
                tracing::info!(simulator = %sim.base_url(), app_id = SANDBOX_APP_ID, "sandbox mode: using the bundled WeChat simulator");
                (Some(sim), endpoints, AppId::new(SANDBOX_APP_ID), secret)
            }
        };
        // One transport (one connection pool) for every app; each app is wired once (`App`): its client and its
        // one token manager, shared through the database by every instance.
        let transport: Arc<dyn wechat_core::Transport> =
            Arc::new(wechat_core::ReqwestTransport::new().map_err(wechat_core::Error::from)?);
        let options = TokenManagerOptions::default().mode(if settings.wechat.stable_token {
            TokenMode::Stable
        } else {
            TokenMode::Classic
        });
        let app_of = |id: AppId, secret: wechat_core::AppSecret| {
            wechat_core::App::builder()
                .app_id(id)
                .secret(secret)
                .endpoints(endpoints.clone())
                .transport(transport.clone())
                .token_store(Arc::new(DbTokenStore::new(pool.clone())))
                .token_options(options.clone())
                .clock(clock.clone())
                .build()
        };
        let account = app_of(app_id, secret)?;
        let wechat = account.client().clone();
        let tokens = account.tokens().clone();
        let oauth = wechat_oauth::web::OAuthClient::from_app(&account);
        // The website app (qrconnect): the configured one, or the simulator's in sandbox mode.
        let website = if sandbox.is_some() {
            Some((
                AppId::new(crate::configuration::SANDBOX_WEBSITE_APP_ID),
                sandbox_website_secret.clone(),
            ))
        } else {
            match (&settings.website.app_id, &settings.website.app_secret) {
                (Some(id), Some(secret)) => Some((AppId::new(id), secret.clone())),
                _ => None,
            }
        }
        .map(|(id, secret)| wechat_oauth::web::OAuthClient::new(wechat.clone(), id, secret));
        let mp_credentials = if sandbox.is_some() {
            Some((AppId::new(crate::configuration::SANDBOX_MP_APP_ID), sandbox_mp_secret))
        } else {
            match (&settings.miniprogram.app_id, &settings.miniprogram.app_secret) {
                (Some(id), Some(secret)) => Some((AppId::new(id), secret.clone())),
                _ => None,
            }
        };
        let miniprogram = mp_credentials
            .map(|(mp_id, mp_secret)| app_of(mp_id, mp_secret))
            .transpose()?
            .map(|mp| wechat_oauth::miniprogram::MiniProgramClient::from_app(&mp));
        // WeChat Pay: the configured merchant, or in sandbox mode a simulated one; v2 or v3 (`pay.api_version`).
        let payers = if settings.pay.api_version == "v3" {
            v3_payers(&settings, sandbox.as_ref(), &pool, &clock, &oauth, miniprogram.as_ref())?
        } else {
            let pay_merchant = if sandbox.is_some() {
                let key = crate::platform::crypto::random_token()[..32].to_owned();
                #[cfg(feature = "sandbox")]
                if let Some(sim) = &sandbox {
                    sim.handle().add_merchant(SANDBOX_MCH_ID, &key);
                }
                Some((
                    SANDBOX_MCH_ID.to_owned(),
                    key,
                    sandbox.as_ref().map(SandboxSim::base_url),
                ))
            } else {
                match (&settings.pay.mch_id, &settings.pay.key) {
                    (Some(mch), Some(key)) => Some((mch.clone(), key.secret().to_owned(), None)),
                    _ => None,
                }
            };
            match pay_merchant {
                Some((mch_id, key, base)) => {
                    let base = base.unwrap_or_else(|| settings.pay.base_url.clone());
                    let client_for = |app_id: AppId| -> Result<wechat_pay::PayClient, StartupError> {
                        let client = wechat_pay::PayClient::new(
                            wechat_pay::Merchant::new(
                                app_id,
                                mch_id.clone(),
                                wechat_pay::PayKey::new(key.clone()),
                                wechat_pay::SignType::HmacSha256,
                            ),
                            &base,
                        )?;
                        Ok(match certificate_transport(&settings.pay, &base)? {
                            Some(transport) => client.with_certificate_transport(transport),
                            None => client,
                        })
                    };
                    Some(crate::features::pay::Payers {
                        web: crate::features::pay::Gateway::V2(client_for(oauth.app_id().clone())?),
                        miniprogram: miniprogram
                            .as_ref()
                            .map(|m| client_for(m.app_id().clone()).map(crate::features::pay::Gateway::V2))
                            .transpose()?,
                    })
                }
                None => None,
            }
        };
        if let Some(payers) = &payers {
            crate::features::pay::reconciler::spawn(
                pool.clone(),
                payers.clone(),
                clock.clone(),
                settings.pay.reconcile_after_secs,
                settings.pay.reconcile_every_secs,
            );
        }
        let login_hub = crate::features::scan_login::hub::LoginHub::new();
        if let Backend::Postgres(url) = &backend {
            login_hub.spawn_listener(url.clone());
        }
        let cards = wechat_card::CardClient::from_app(&account);
        let keys_pool = pool.clone();
        let sandboxed = sandbox.is_some();
        let (state_key, session_key, sandbox_admin) =
            tokio::task::spawn_blocking(move || -> Result<(String, String, Option<String>), DbError> {
                let mut conn = keys_pool.get()?;
                // Sandbox: one admin token per database, so a restart (or a second instance) keeps the printed one.
                let sandbox_admin = if sandboxed {
                    Some(crate::platform::secrets::shared_secret(
                        &mut conn,
                        "sandbox_admin_token",
                        crate::platform::crypto::random_token,
                    )?)
                } else {
                    None
                };
                let state_key = crate::platform::secrets::shared_secret(
                    &mut conn,
                    "oauth_state_key",
                    crate::platform::crypto::random_token,
                )?;
                let session_key = crate::platform::secrets::shared_secret(
                    &mut conn,
                    "session_key",
                    crate::platform::crypto::random_token,
                )?;
                Ok((state_key, session_key, sandbox_admin))
            })
            .await
            .map_err(|e| DbError::Task(e.to_string()))??;
        let state_signer = wechat_oauth::state::StateSigner::new(state_key.as_bytes())
            .map_err(|e| DbError::Task(format!("state key: {e}")))?;
        let push_token = match (&settings.wechat.token, sandbox.is_some()) {
            (Some(t), _) if !t.is_empty() => Some(t.clone()),
            (_, true) => Some(wechat_core::SecretString::new(crate::platform::crypto::random_token())),
            _ => None,
        };
        // Sandbox mode runs the simulator's pushes in safe mode (the mode the docs recommend) with a fresh key.
        let push_aes_key = match (&settings.wechat.encoding_aes_key, sandbox.is_some()) {
            (Some(k), _) => Some(k.clone()),
            (None, true) => Some(wechat_core::SecretString::new(
                crate::platform::crypto::random_token()[..43].to_owned(),
            )),
            (None, false) => None,
        };
        let push_crypto = match (&push_token, &push_aes_key) {
            (Some(token), Some(key)) => Some(
                wechat_core::push::MessageCrypto::new(token.secret(), key.secret(), oauth.app_id().as_str()).map_err(
                    |e| crate::configuration::ConfigError::Invalid {
                        key: "wechat.encoding_aes_key",
                        message: e.to_string(),
                    },
                )?,
            ),
            _ => None,
        };
        let admin_token = match (&settings.admin.token, sandbox.is_some()) {
            (Some(t), _) if !t.is_empty() => Some(t.clone()),
            // Sandbox: the database's sandbox admin token, printed at start-up.
            (_, true) => sandbox_admin.map(wechat_core::SecretString::new),
            _ => None,
        };

        let listener = TcpListener::bind(&settings.server.addr).map_err(|source| StartupError::Bind {
            addr: settings.server.addr.clone(),
            source,
        })?;
        let addr = listener.local_addr().map_err(|source| StartupError::Bind {
            addr: settings.server.addr.clone(),
            source,
        })?;
        let public_base_url = settings
            .server
            .public_base_url
            .clone()
            .unwrap_or_else(|| format!("http://{addr}"))
            .trim_end_matches('/')
            .to_owned();
        let pos = crate::features::coupons::pos::PosBatcher::start(
            pool.clone(),
            pos_slots(
                settings.database.redeem_batch_slots,
                settings.database.redeem_batch_max,
                pool_size,
            ),
            usize::try_from(settings.database.redeem_batch_max).unwrap_or(1),
            clock.clone(),
        );
        let outbox = crate::features::outbox::Outbox::start(
            pool.clone(),
            crate::features::outbox::worker::Targets {
                cards: cards.clone(),
                messages: wechat_message::send::MessageClient::new(tokens.clone()),
                public_base_url: public_base_url.clone(),
            },
            settings.outbox.options(),
            clock.clone(),
        );
        spawn_maintenance(pool.clone(), i64::from(settings.wechat.push_window_secs), clock.clone());
        let auth_limiter = crate::http::ratelimit::AuthLimiter::new(settings.server.auth_failures_per_minute);
        let sandbox_sim_url = sandbox
            .as_ref()
            .map(|sim| sandbox_sim_public_url(&settings, &sim.base_url()));
        let scene_limiter = crate::http::ratelimit::AuthLimiter::new(settings.login.scenes_per_minute);
        let qrcodes = wechat_message::qrcode::QrCodeClient::new(tokens.clone());
        // A simulator serves showqrcode on its API address; WeChat on mp.weixin.qq.com.
        let mp_base_url = settings.wechat.mp_base_url.clone().unwrap_or_else(|| {
            if settings.wechat.api_base_url.trim_end_matches('/') == "https://api.weixin.qq.com" {
                wechat_message::qrcode::SHOW_BASE_URL.to_owned()
            } else {
                settings.wechat.api_base_url.clone()
            }
        });
        let state = web::Data::new(AppState {
            pay: payers.as_ref().map(|p| p.web.clone()),
            payers,
            scene_limiter,
            sandbox_sim_url,
            miniprogram,
            login_hub,
            clock: clock.clone(),
            outbox,
            auth_limiter,
            rate_limits: crate::http::ratelimit::RateLimits::new(&settings.rate_limits),
            settings,
            pos,
            db: pool,
            backend,
            wechat,
            tokens,
            public_base_url,
            oauth,
            cards,
            qrcodes,
            mp_base_url,
            website,
            state_signer,
            cookie_key: actix_web::cookie::Key::derive_from(session_key.as_bytes()),
            session_key: session_key.into_bytes(),
            admin_token,
            push_token,
            push_crypto,
            push_aes_key,
        });
        let demo = match &sandbox {
            #[cfg(feature = "sandbox")]
            Some(sim) => Some(crate::features::sandbox::seed(&state, sim).await?),
            #[cfg(not(feature = "sandbox"))]
            Some(sim) => match *sim {},
            None => None,
        };
        let server = run(listener, state.clone()).map_err(|source| StartupError::Bind {
            addr: addr.to_string(),
            source,
        })?;
        Ok(Application {
            addr,
            server,
            state,
            sandbox,
            demo,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Shared state (for tests and embedding).
    pub fn state(&self) -> &web::Data<AppState> {
        &self.state
    }

    /// The seeded demo, in sandbox mode.
    pub fn demo(&self) -> Option<&crate::features::sandbox::Demo> {
        self.demo.as_ref()
    }

    /// The sandbox simulator's base URL, in sandbox mode.
    pub fn sandbox_url(&self) -> Option<String> {
        self.sandbox.as_ref().and(self.state().sandbox_sim_url.clone())
    }

    /// Serves until SIGINT/SIGTERM, then drains in-flight requests (graceful shutdown).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        if let Some(sim) = self.sandbox {
            sim.stop().await;
        }
        result
    }
}

fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(256 * 1024)
        .error_handler(|err, _req| ApiError::bad_request("invalid_json", err.to_string()).into())
}

fn query_config() -> web::QueryConfig {
    web::QueryConfig::default()
        .error_handler(|err, _req| ApiError::bad_request("invalid_query", err.to_string()).into())
}

fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err, _req| ApiError::bad_request("invalid_path", err.to_string()).into())
}

/// Housekeeping every minute: forgets push nonces and dedupe records past the windows that need them.
fn spawn_maintenance(pool: DbPool, window_secs: i64, clock: Arc<dyn wechat_core::Clock>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            tick.tick().await;
            // Dedupe records outlive WeChat's retries (3 tries, 5 s apart) and the timestamp window with room.
            let keep_ms = (2 * window_secs + 60).max(3600) * 1000;
            let now = clock.now_ms();
            let pruned = db::blocking(&pool, move |conn| {
                features::wechat_push::repo::prune(conn, now, window_secs, keep_ms)
            })
            .await;
            match pruned {
                Ok(0) => {}
                Ok(n) => tracing::debug!(rows = n, "pruned push records"),
                Err(e) => tracing::warn!(error = %e, "cannot prune push records"),
            }
            // Ended sessions and login scenes.
            let now_secs = now / 1000;
            let pruned = db::blocking(&pool, move |conn| {
                Ok(features::auth::repo::prune_sessions(conn, now_secs)?
                    + features::scan_login::repo::prune(conn, now_secs)?)
            })
            .await;
            if let Err(e) = pruned {
                tracing::warn!(error = %e, "cannot prune sessions and login scenes");
            }
        }
    });
}

fn run(listener: TcpListener, state: web::Data<AppState>) -> std::io::Result<Server> {
    let body_timeout = std::time::Duration::from_secs(u64::from(state.settings.server.body_timeout_secs));
    let workers = std::thread::available_parallelism().map_or(2, usize::from);
    let cap = http::limits::connection_cap(
        state.settings.server.max_connections,
        http::limits::descriptor_limit(),
        state.settings.database.pool_size,
    );
    // actix counts connections per worker.
    let per_worker = cap.div_ceil(workers).max(1);
    tracing::info!(
        max_connections = per_worker * workers,
        workers,
        body_timeout_secs = body_timeout.as_secs(),
        "connection limits"
    );
    let app_state = state.clone();
    let make_app = move || {
        let state = app_state.clone();
        App::new()
            .wrap(ErrorHandlers::new().default_handler(http::errors::wrap_in_envelope))
            .wrap(Logger::new("%U %s %Dms").exclude("/healthz"))
            .wrap(
                actix_web::middleware::DefaultHeaders::new()
                    .add((actix_web::http::header::X_CONTENT_TYPE_OPTIONS, "nosniff")),
            )
            .wrap_fn(|req, srv| {
                use actix_web::HttpMessage as _;
                use actix_web::dev::Service as _;
                let started = std::time::Instant::now();
                let method = req.method().as_str().to_owned();
                let request_id = req
                    .extensions()
                    .get::<tracing_actix_web::RequestId>()
                    .map(ToString::to_string);
                let call = srv.call(req);
                async move {
                    let mut res = call.await?;
                    // The route pattern, not the path: codes and ids must not become label values.
                    let route = res.request().match_pattern().unwrap_or_else(|| "unmatched".to_owned());
                    let status = res.status().as_u16().to_string();
                    metrics::counter!("wxkit_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
                        .increment(1);
                    metrics::histogram!("wxkit_http_request_duration_seconds", "method" => method, "route" => route)
                        .record(started.elapsed().as_secs_f64());
                    if let Some(id) = request_id
                        && let Ok(value) = actix_web::http::header::HeaderValue::from_str(&id)
                    {
                        res.headers_mut().insert(actix_web::http::header::HeaderName::from_static("x-request-id"), value);
                    }
                    Ok(res)
                }
            })
            // Request ids and spans: every log line of a request (and of its database work) names it.
            .wrap(tracing_actix_web::TracingLogger::<http::RequestSpan>::new())
            .wrap_fn(move |mut req, srv| {
                use actix_web::dev::Service as _;
                http::limits::body_deadline(&mut req, body_timeout);
                srv.call(req)
            })
            .app_data(state.clone())
            .app_data(json_config())
            .app_data(query_config())
            .app_data(path_config())
            .app_data(web::FormConfig::default().limit(16 * 1024))
            // The API first (one scope: a second `/api/v1` scope would never be reached): the router tries routes
            // in order, and the pages' dynamic routes cost a pattern match.
            .service(
                web::scope("/api/v1")
                    .service(web::resource("/openapi.json").route(web::get().to(http::openapi::serve)))
                    .configure(features::coupons::routes::api)
                    .configure(features::merchants::routes::api)
                    .configure(features::outbox::routes::api)
                    .configure(features::auth::routes::api)
                    .configure(features::miniprogram::routes::api)
                    .configure(features::scan_login::routes::api)
                    .configure(features::jssdk::routes::api)
                    .configure(features::pay::routes::api),
            )
            .configure(http::routes)
            .configure(features::sandbox::pages)
            .configure(features::auth::routes::pages)
            .configure(features::scan_login::routes::pages)
            .configure(features::jssdk::routes::pages)
            .configure(features::pay::routes::pages)
            .configure(features::pay::buy::pages)
            .configure(features::coupons::routes::pages)
            .configure(features::wechat_push::routes::pages)
            // Unknown paths: the JSON envelope for machines (API, WeChat's callbacks), an HTML page for people.
            .default_service(web::to(|req: actix_web::HttpRequest| async move {
                if http::errors::wants_page(&req) {
                    Ok(http::pages::error_page_with(
                        actix_web::http::StatusCode::NOT_FOUND,
                        "页面不存在",
                        "There is no such page: check the link.",
                        &[
                            http::pages::Action::home(),
                            http::pages::Action::new("/coupons/mine", "我的优惠券 · My coupons"),
                        ],
                    ))
                } else {
                    Err::<actix_web::HttpResponse, _>(ApiError::not_found("no such route"))
                }
            }))
    };
    // actix-web's HttpServer, assembled by hand for one addition: WebSocket upgrades leave actix's HTTP dispatcher
    // (and its two 8 KiB buffers per connection) for a lean socket of our own — thousands of login pages wait idle
    // on them (docs/benchmarks.md).
    let local = listener.local_addr()?;
    let server = actix_server::Server::build()
        .workers(workers)
        .max_concurrent_connections(per_worker)
        .shutdown_timeout(10)
        .listen("wxkit", listener, move || {
            use actix_service::ServiceFactoryExt as _;
            let upgrade_state = state.clone();
            let app = make_app()
                .into_factory()
                .map_err(|err: actix_web::Error| err.error_response());
            actix_http::HttpService::build()
                .keep_alive(actix_http::KeepAlive::Timeout(std::time::Duration::from_secs(5)))
                .client_request_timeout(std::time::Duration::from_secs(5))
                .client_disconnect_timeout(std::time::Duration::from_secs(1))
                .local_addr(local)
                .upgrade(actix_service::fn_service(
                    move |(req, framed): (
                        actix_http::Request,
                        actix_codec::Framed<actix_rt::net::TcpStream, actix_http::h1::Codec>,
                    )| {
                        features::scan_login::socket::upgrade(upgrade_state.clone(), req, framed)
                    },
                ))
                .finish(actix_service::map_config(app, |_| actix_web::dev::AppConfig::default()))
                .tcp()
        })?
        .run();
    Ok(server)
}

#[cfg(test)]
mod tests {
    use super::pos_slots;

    #[test]
    fn pos_slots_follow_configuration_batching_and_pool() {
        assert_eq!(pos_slots(Some(3), 64, 10), 3);
        // Batching off: every pooled connection may carry a redemption.
        assert_eq!(pos_slots(None, 1, 32), 32);
        // Batched: per core (2..=8), never more than half the pool, at least 1.
        let cores = std::thread::available_parallelism().map_or(2, usize::from).clamp(2, 8);
        assert_eq!(pos_slots(None, 64, 32), cores.min(16));
        assert_eq!(pos_slots(None, 64, 2), 1);
        assert_eq!(pos_slots(None, 64, 1), 1);
    }
}

#[cfg(test)]
mod sandbox_url_tests {
    use super::*;

    fn settings(env: &[(&str, &str)]) -> Settings {
        Settings::load_from(None, env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))).unwrap()
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

//! # wxkit-wechat
//!
//! WeChat's products, each from one builder: [`OfficialAccount`], [`MiniProgram`] and [`Pay`]. Every API group of
//! an app is made from that app's one [`App`] — id, secret, client and access-token manager — so a caller cannot pair
//! one app's client with another app's tokens, and every group shares one token (and one refresher).
//!
//! | Handle | API groups |
//! |---|---|
//! | [`OfficialAccount`] | [`oauth`](OfficialAccount::oauth), [`jssdk_config`](OfficialAccount::jssdk_config), [`cards`](OfficialAccount::cards), [`messages`](OfficialAccount::messages), [`qrcodes`](OfficialAccount::qrcodes), [`push`](OfficialAccount::push) |
//! | [`MiniProgram`] | [`client`](MiniProgram::client) (login, phone, codes, links, content security), [`messages`](MiniProgram::messages) (subscribe messages) |
//! | [`Pay`] | [`v2`](Pay::v2), [`v3`](Pay::v3) |
//!
//! The low-level crates are re-exported — `wechat_core`, `wechat_oauth`, `wechat_card`, `wechat_message`,
//! `wechat_pay` (see *Re-exports* below) — for those who want their clients and request values directly.
//!
//! Runtime: the async APIs need tokio (the default transport is reqwest on tokio; the token manager uses tokio's
//! locks and timer). With `default-features = false`, give each builder a `transport(...)`: neither reqwest nor a
//! TLS stack is built.
//!
//! Every example below runs against the bundled simulator (`wechat_sim`), started in the test's own process — as an
//! embedding service's tests can (see `docs/testing-with-wechat-sim.md`).

#![deny(missing_docs)]

mod error;
mod push;

pub use error::{Error, Result};
pub use push::{PushMode, PushReceiver};
pub use wechat_card;
pub use wechat_core;
pub use wechat_core::{App, AppBuilder};
pub use wechat_message;
pub use wechat_oauth;
pub use wechat_pay;

use std::sync::Arc;
use wechat_core::{AppId, Clock, Endpoints, RetryPolicy, TokenManagerOptions, TokenStore, Transport};

/// The setters every app builder shares, forwarded to [`AppBuilder`].
macro_rules! app_setters {
    () => {
        /// The app's id (`wx…`).
        pub fn app_id(mut self, app_id: impl Into<AppId>) -> Self {
            self.app = self.app.app_id(app_id);
            self
        }

        /// The app's secret (AppSecret). Never printed.
        pub fn secret(mut self, secret: impl Into<wechat_core::AppSecret>) -> Self {
            self.app = self.app.secret(secret);
            self
        }

        /// The hosts to talk to (default: WeChat's).
        pub fn endpoints(mut self, endpoints: Endpoints) -> Self {
            self.app = self.app.endpoints(endpoints);
            self
        }

        /// Every host on one base URL, as the simulator serves them.
        pub fn base_url(mut self, base_url: &str) -> Self {
            self.app = self.app.base_url(base_url);
            self
        }

        /// The HTTP transport (default: reqwest, with the `reqwest` feature).
        pub fn transport(mut self, transport: Arc<dyn Transport>) -> Self {
            self.app = self.app.transport(transport);
            self
        }

        /// Where the access token is shared between processes (default: in memory). Keyed by app id, so one store
        /// serves every app of a service.
        pub fn token_store(mut self, store: Arc<dyn TokenStore>) -> Self {
            self.app = self.app.token_store(store);
            self
        }

        /// The retry policy for reads (mutations are never retried).
        pub fn retry(mut self, retry: RetryPolicy) -> Self {
            self.app = self.app.retry(retry);
            self
        }

        /// The clock (token expiry, retry backoff).
        pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
            self.app = self.app.clock(clock);
            self
        }

        /// The token manager's options (classic or stable token, refresh-ahead, lease).
        pub fn token_options(mut self, options: TokenManagerOptions) -> Self {
            self.app = self.app.token_options(options);
            self
        }
    };
}

/// An official account (公众号): web OAuth, JS-SDK, cards, messages, QR codes and its server URL's pushes.
///
/// The shortest real use — H5 login and a JS-SDK config, against the simulator:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // WeChat (simulated, in this process) with the app registered.
/// let sim = wechat_sim::SimServer::start("127.0.0.1:0", &[("wxdocexample00001", "doc-secret-0123456789abcdef012")]).await?;
/// let oa = wechat::OfficialAccount::builder()
///     .app_id("wxdocexample00001")
///     .secret("doc-secret-0123456789abcdef012")
///     .base_url(&sim.base_url()) // leave out for WeChat itself
///     .build()?;
/// // The user came back from WeChat's authorize page with ?code=…
/// let code = sim.handle().issue_oauth_code("wxdocexample00001", "o-alice", "snsapi_base").ok_or("no code")?;
/// let login = oa.oauth().exchange_code(&code).await?;
/// assert_eq!(login.openid.as_str(), "o-alice");
/// // wx.config for the page, signed with the account's cached jsapi_ticket.
/// let config = oa.jssdk_config("https://shop.example.com/c/ABC", 1_700_000_000).await?;
/// assert_eq!(config.app_id, "wxdocexample00001");
/// sim.stop().await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct OfficialAccount {
    app: App,
    push: Option<Arc<PushReceiver>>,
}

/// Builds an [`OfficialAccount`]: `app_id` and `secret` are required; `push_token` (and `encoding_aes_key` for safe
/// mode) when the service receives pushes.
#[derive(Debug, Default)]
#[must_use]
pub struct OfficialAccountBuilder {
    app: AppBuilder,
    push_token: Option<String>,
    encoding_aes_key: Option<String>,
    push_mode: Option<PushMode>,
    push_window_secs: Option<i64>,
}

impl OfficialAccountBuilder {
    app_setters!();

    /// The server URL's Token (the push signature key, set in the account's admin). Never printed.
    pub fn push_token(mut self, token: impl Into<String>) -> Self {
        self.push_token = Some(token.into());
        self
    }

    /// The EncodingAESKey (43 characters): pushes are then accepted in safe mode only, unless
    /// [`push_mode`](Self::push_mode) says otherwise.
    pub fn encoding_aes_key(mut self, key: impl Into<String>) -> Self {
        self.encoding_aes_key = Some(key.into());
        self
    }

    /// The encryption mode (default: safe with an EncodingAESKey, plaintext without).
    pub fn push_mode(mut self, mode: PushMode) -> Self {
        self.push_mode = Some(mode);
        self
    }

    /// How far a push's timestamp may be from now (default 300 s; replays older than that are refused).
    pub fn push_window_secs(mut self, secs: i64) -> Self {
        self.push_window_secs = Some(secs);
        self
    }

    /// The account, or an [`Error`] naming the missing or invalid setting.
    pub fn build(self) -> Result<OfficialAccount> {
        let app = self.app.build()?;
        if matches!(self.push_mode, Some(PushMode::Safe | PushMode::Compatible)) && self.encoding_aes_key.is_none() {
            return Err(Error::NotConfigured {
                what: "the EncodingAESKey (safe and compatible mode decrypt pushes with it)",
                how: "OfficialAccount::builder().encoding_aes_key(..)",
            });
        }
        let push = match self.push_token {
            Some(token) => Some(Arc::new(PushReceiver::new(
                app.app_id(),
                token,
                self.encoding_aes_key,
                self.push_mode,
                self.push_window_secs.unwrap_or(300),
            )?)),
            None if self.encoding_aes_key.is_some() => {
                return Err(Error::NotConfigured {
                    what: "the push Token (an EncodingAESKey was given)",
                    how: "OfficialAccount::builder().push_token(..)",
                });
            }
            None => None,
        };
        Ok(OfficialAccount { app, push })
    }
}

impl OfficialAccount {
    /// Starts building an official account.
    pub fn builder() -> OfficialAccountBuilder {
        OfficialAccountBuilder::default()
    }

    /// The account's [`App`] (id, client, token manager).
    pub fn app(&self) -> &App {
        &self.app
    }

    /// The account's app id.
    pub fn app_id(&self) -> &AppId {
        self.app.app_id()
    }

    /// Web OAuth for H5 pages (authorize URL, code exchange, user info) and website QR login.
    pub fn oauth(&self) -> wechat_oauth::web::OAuthClient {
        wechat_oauth::web::OAuthClient::from_app(&self.app)
    }

    /// A `wx.config` for `page_url` (its `#fragment` dropped), signed with the cached `jsapi_ticket`; `now` in Unix
    /// seconds.
    pub async fn jssdk_config(
        &self,
        page_url: &str,
        now: i64,
    ) -> wechat_oauth::Result<wechat_oauth::jssdk::JsSdkConfig> {
        wechat_oauth::jssdk::config(self.app.tokens(), page_url, now).await
    }

    /// [`jssdk_config`](Self::jssdk_config) for a page URL checked already (its host, say, against the account's
    /// JS-SDK domains): the URL is parsed once.
    pub async fn jssdk_config_for_page(
        &self,
        page: &wechat_oauth::jssdk::PageUrl<'_>,
        now: i64,
    ) -> wechat_oauth::Result<wechat_oauth::jssdk::JsSdkConfig> {
        wechat_oauth::jssdk::config_for_page(self.app.tokens(), page, now).await
    }

    /// The card (卡券) API: uploads, `card/create`, code decrypt / get / consume, `cardExt`.
    pub fn cards(&self) -> wechat_card::CardClient {
        wechat_card::CardClient::from_app(&self.app)
    }

    /// Template, subscribe (`bizsend`) and customer-service messages.
    pub fn messages(&self) -> wechat_message::send::MessageClient {
        wechat_message::send::MessageClient::from_app(&self.app)
    }

    /// Parametric QR codes (`qrcode/create`), whose scans arrive as scene pushes.
    pub fn qrcodes(&self) -> wechat_message::qrcode::QrCodeClient {
        wechat_message::qrcode::QrCodeClient::from_app(&self.app)
    }

    /// The server URL's pushes: open (verify, check freshness, decrypt, parse) and reply.
    ///
    /// ```
    /// use wechat_core::push::{PushQuery, server_signature};
    /// let oa = wechat::OfficialAccount::builder()
    ///     .app_id("wxdocexample00001")
    ///     .secret("doc-secret")
    ///     .push_token("push-token")
    ///     .build()?;
    /// let query = PushQuery { signature: server_signature("push-token", "1700000000", "n1"),
    ///     timestamp: "1700000000".into(), nonce: "n1".into(), ..PushQuery::default() };
    /// let body = b"<xml><ToUserName>gh_1</ToUserName><FromUserName>o1</FromUserName>\
    ///     <CreateTime>1700000000</CreateTime><MsgType>text</MsgType><Content>hi</Content><MsgId>1</MsgId></xml>";
    /// let push = oa.push()?;
    /// let message = push.open(&query, body, 1_700_000_010)?;
    /// let answer = push.reply(&wechat_message::Reply::text("你好"), &message, &query, 1_700_000_011);
    /// assert!(answer.contains("<ToUserName><![CDATA[o1]]></ToUserName>"));
    /// // The same push ten minutes later is a replay:
    /// assert!(push.open(&query, body, 1_700_000_600).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn push(&self) -> Result<&PushReceiver> {
        self.push.as_deref().ok_or(Error::NotConfigured {
            what: "the server URL's push Token",
            how: "OfficialAccount::builder().push_token(..)",
        })
    }
}

/// A mini program (小程序): login, the phone number, codes, links, content security, subscribe messages.
///
/// The shortest real use — log a user in with the code `wx.login()` gave the mini program:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // WeChat (simulated, in this process) with the mini program registered.
/// let sim = wechat_sim::SimServer::start("127.0.0.1:0", &[("wxdocminiprog0001", "doc-mp-secret-0123456789abcdef")]).await?;
/// let mp = wechat::MiniProgram::builder()
///     .app_id("wxdocminiprog0001")
///     .secret("doc-mp-secret-0123456789abcdef")
///     .base_url(&sim.base_url()) // leave out for WeChat itself
///     .build()?;
/// let js_code = sim.handle().issue_js_code("wxdocminiprog0001", "o-bob").ok_or("no code")?;
/// let session = mp.client().code_to_session(&js_code).await?;
/// assert_eq!(session.openid.as_str(), "o-bob");
/// sim.stop().await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct MiniProgram {
    app: App,
    push: Option<Arc<PushReceiver>>,
}

/// Builds a [`MiniProgram`]: `app_id` and `secret` are required; `push_token` (and `encoding_aes_key` for safe mode)
/// when the service receives the mini program's message pushes (XML or JSON, as set in its admin).
#[derive(Debug, Default)]
#[must_use]
pub struct MiniProgramBuilder {
    app: AppBuilder,
    push_token: Option<String>,
    encoding_aes_key: Option<String>,
    push_window_secs: Option<i64>,
}

impl MiniProgramBuilder {
    app_setters!();

    /// The message push Token (开发管理 → 消息推送). Never printed.
    pub fn push_token(mut self, token: impl Into<String>) -> Self {
        self.push_token = Some(token.into());
        self
    }

    /// The message push EncodingAESKey (43 characters): pushes are then accepted in safe mode only.
    pub fn encoding_aes_key(mut self, key: impl Into<String>) -> Self {
        self.encoding_aes_key = Some(key.into());
        self
    }

    /// How far a push's timestamp may be from now (default 300 s).
    pub fn push_window_secs(mut self, secs: i64) -> Self {
        self.push_window_secs = Some(secs);
        self
    }

    /// The mini program, or an [`Error`] naming the missing or invalid setting.
    pub fn build(self) -> Result<MiniProgram> {
        let app = self.app.build()?;
        let push = match self.push_token {
            Some(token) => Some(Arc::new(PushReceiver::new(
                app.app_id(),
                token,
                self.encoding_aes_key,
                None,
                self.push_window_secs.unwrap_or(300),
            )?)),
            None if self.encoding_aes_key.is_some() => {
                return Err(Error::NotConfigured {
                    what: "the message push Token (an EncodingAESKey was given)",
                    how: "MiniProgram::builder().push_token(..)",
                });
            }
            None => None,
        };
        Ok(MiniProgram { app, push })
    }
}

impl MiniProgram {
    /// Starts building a mini program.
    pub fn builder() -> MiniProgramBuilder {
        MiniProgramBuilder::default()
    }

    /// The mini program's [`App`].
    pub fn app(&self) -> &App {
        &self.app
    }

    /// Login (`jscode2session`), the phone number, mini-program codes, URL links and schemes, content security.
    pub fn client(&self) -> wechat_oauth::miniprogram::MiniProgramClient {
        wechat_oauth::miniprogram::MiniProgramClient::from_app(&self.app)
    }

    /// Subscribe messages (`message/subscribe/send`) and customer-service messages.
    pub fn messages(&self) -> wechat_message::send::MessageClient {
        wechat_message::send::MessageClient::from_app(&self.app)
    }

    /// The message pushes (content-security verdicts, shipping reminders…), XML or JSON: open (verify, check
    /// freshness, decrypt, parse) them.
    ///
    /// ```
    /// use wechat_core::push::{PushQuery, server_signature};
    /// let mp = wechat::MiniProgram::builder()
    ///     .app_id("wxdocminiprog0001")
    ///     .secret("doc-mp-secret")
    ///     .push_token("mp-token")
    ///     .build()?;
    /// let query = PushQuery { signature: server_signature("mp-token", "1700000000", "n1"),
    ///     timestamp: "1700000000".into(), nonce: "n1".into(), ..PushQuery::default() };
    /// let body = r#"{"ToUserName":"gh_mp","FromUserName":"o1","CreateTime":1700000000,"MsgType":"event",
    ///     "Event":"trade_manage_remind_shipping","transaction_id":"4200","merchant_trade_no":"O1","msg":"请发货"}"#;
    /// let message = mp.push()?.open(&query, body.as_bytes(), 1_700_000_010)?;
    /// assert!(matches!(message.kind, wechat_message::Kind::Event(wechat_message::Event::ShippingReminder { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn push(&self) -> Result<&PushReceiver> {
        self.push.as_deref().ok_or(Error::NotConfigured {
            what: "the mini program's message push Token",
            how: "MiniProgram::builder().push_token(..)",
        })
    }
}

/// A WeChat Pay merchant: v2 (XML, MD5 / HMAC-SHA256), v3 (JSON, RSA, AES-GCM), or both during a migration.
///
/// The shortest real use — a v2 JSAPI order and the parameters for `wx.requestPayment`:
///
/// ```
/// use wechat::wechat_pay::{Fen, TradeType, UnifiedOrder};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // WeChat Pay (simulated, in this process), with the merchant and its 32-character API key.
/// let sim = wechat_sim::SimServer::start("127.0.0.1:0", &[("wxdocexample00001", "doc-secret-0123456789abcdef012")]).await?;
/// sim.handle().add_merchant("1900000109", "docpaykey0123456789abcdefghijklm");
/// let pay = wechat::Pay::builder()
///     .app_id("wxdocexample00001")
///     .mch_id("1900000109")
///     .v2_key(wechat::wechat_pay::PayKey::new("docpaykey0123456789abcdefghijklm"))
///     .base_url(&sim.base_url()) // leave out for WeChat Pay itself
///     .build()?;
/// let order = UnifiedOrder::builder()
///     .body("拿铁")
///     .out_trade_no("DOC0000000001")
///     .total_fee(Fen(1800))
///     .client_ip("127.0.0.1")
///     .notify_url("https://shop.example.com/wechat/pay/notify")
///     .trade_type(TradeType::Jsapi { openid: "o-alice".into() })
///     .build()?;
/// let prepay = pay.v2()?.unified_order(&order).await?;
/// let params = pay.v2()?.jsapi_params(&prepay.prepay_id, 1_700_000_000);
/// assert_eq!(params.package, format!("prepay_id={}", prepay.prepay_id));
/// sim.stop().await;
/// # Ok(())
/// # }
/// ```
///
/// The same on API v3 — a JSAPI order, the page's `wx.requestPayment` parameters, and the payment notify verified
/// and decrypted as a notify handler does. Everything the example uses is defined in it: the simulator stands in for
/// WeChat Pay and knows the merchant's API certificate; the client verifies with WeChat Pay's public key.
///
/// ```
/// use std::sync::Arc;
/// use wechat::wechat_pay::v3::{ApiV3Key, Channel, Event, MerchantPrivateKey, Order, Prepay, PublicKey};
/// use wechat::wechat_pay::Fen;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // The simulator, with the merchant registered (its certificate serial and public key, its APIv3 key).
/// let sim = wechat_sim::SimServer::start("127.0.0.1:0", &[("wxdocexample00002", "doc-secret-0123456789abcdef012")]).await?;
/// let api_v3_key = "docapiv3key0123456789abcdefghijk";
/// let merchant = sim.handle().add_v3_merchant(
///     "1900000110",
///     api_v3_key,
///     wechat_sim::SANDBOX_MERCHANT_SERIAL,
///     wechat_sim::SANDBOX_MERCHANT_CERT,
///     wechat_sim::SigningMode::PublicKey,
/// )?;
/// let pay = wechat::Pay::builder()
///     .app_id("wxdocexample00002")
///     .mch_id("1900000110")
///     .v3(
///         MerchantPrivateKey::from_pem(wechat_sim::SANDBOX_MERCHANT_KEY)?,
///         wechat_sim::SANDBOX_MERCHANT_SERIAL,
///         ApiV3Key::new(api_v3_key),
///     )
///     .v3_public_key(merchant.public_key_id, PublicKey::from_pem(&merchant.public_key_pem)?)
///     .base_url(&sim.base_url()) // leave out for WeChat Pay itself
///     .build()?;
/// let v3 = pay.v3()?;
/// let app = wechat::wechat_core::AppId::new("wxdocexample00002");
/// let order = Order::new(
///     &app,
///     "拿铁",
///     "DOCV3000000001",
///     Fen(1800),
///     "https://shop.example.com/wechat/pay/v3/notify",
///     Channel::Jsapi { openid: "o-alice".into() },
/// )?;
/// let Prepay::PrepayId(prepay_id) = v3.prepay(&order).await? else { unreachable!("JSAPI answers a prepay_id") };
/// let params = v3.jsapi_params(&app, &prepay_id, 1_700_000_000);
/// assert_eq!(params.sign_type, "RSA");
///
/// // The customer pays; WeChat Pay posts the notify. A handler passes the headers and body as received.
/// sim.handle().pay_order("DOCV3000000001", None, None).map_err(|e| format!("{e:?}"))?;
/// let sent = sim.handle().notifications().into_iter().find(|n| n.out_trade_no == "DOCV3000000001").ok_or("no notify")?;
/// let body = sent.body().as_bytes().to_vec();
/// let mut headers = wechat::wechat_pay::http::HeaderMap::new();
/// for (name, value) in sim.handle().sign_v3_notify("1900000110", &body) {
///     headers.insert(name, value.parse()?);
/// }
/// let notify = v3.verify_notify(&headers, &body).await?;
/// assert!(matches!(notify.event, Event::TransactionSuccess(ref t) if t.out_trade_no == "DOCV3000000001"));
/// sim.stop().await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Pay {
    app_id: AppId,
    mch_id: String,
    v2: Option<wechat_pay::PayClient>,
    v3: Option<wechat_pay::v3::Client>,
}

/// Builds a [`Pay`]: `app_id`, `mch_id`, and v2's key and/or v3's keys.
#[derive(Debug, Default)]
#[must_use]
pub struct PayBuilder {
    app_id: Option<AppId>,
    mch_id: Option<String>,
    base_url: Option<String>,
    transport: Option<Arc<dyn Transport>>,
    v2_key: Option<wechat_pay::PayKey>,
    v2_sign_type: Option<wechat_pay::SignType>,
    certificate_transport: Option<Arc<dyn Transport>>,
    v3: Option<(wechat_pay::v3::MerchantPrivateKey, String, wechat_pay::v3::ApiV3Key)>,
    v3_public_key: Option<(String, wechat_pay::v3::PublicKey)>,
    v3_certificates: Option<bool>,
    v3_store: Option<Arc<dyn wechat_pay::v3::CertificateStore>>,
    v3_clock: Option<Arc<dyn Clock>>,
    v3_policy: Option<wechat_pay::v3::RefreshPolicy>,
    v3_max_skew: Option<i64>,
}

impl PayBuilder {
    /// The app the payments belong to.
    pub fn app_id(mut self, app_id: impl Into<AppId>) -> Self {
        self.app_id = Some(app_id.into());
        self
    }

    /// The merchant id.
    pub fn mch_id(mut self, mch_id: impl Into<String>) -> Self {
        self.mch_id = Some(mch_id.into());
        self
    }

    /// WeChat Pay's address (default `https://api.mch.weixin.qq.com`; the simulator's in tests).
    pub fn base_url(mut self, base_url: &str) -> Self {
        self.base_url = Some(base_url.to_owned());
        self
    }

    /// The HTTP transport (default: reqwest, with the `reqwest` feature).
    pub fn transport(mut self, transport: Arc<dyn Transport>) -> Self {
        self.transport = Some(transport);
        self
    }

    /// v2: the API key (32 characters). Signs with HMAC-SHA256 unless [`v2_sign_type`](Self::v2_sign_type).
    pub fn v2_key(mut self, key: wechat_pay::PayKey) -> Self {
        self.v2_key = Some(key);
        self
    }

    /// v2: MD5 or HMAC-SHA256.
    pub fn v2_sign_type(mut self, sign_type: wechat_pay::SignType) -> Self {
        self.v2_sign_type = Some(sign_type);
        self
    }

    /// v2: the transport carrying the merchant's client certificate, which refunds need.
    pub fn certificate_transport(mut self, transport: Arc<dyn Transport>) -> Self {
        self.certificate_transport = Some(transport);
        self
    }

    /// v3: the merchant's API private key, its certificate's serial number and the APIv3 key. Add the platform's
    /// [public key](Self::v3_public_key) and/or [certificates](Self::v3_platform_certificates).
    pub fn v3(
        mut self,
        private_key: wechat_pay::v3::MerchantPrivateKey,
        serial: impl Into<String>,
        api_v3_key: wechat_pay::v3::ApiV3Key,
    ) -> Self {
        self.v3 = Some((private_key, serial.into(), api_v3_key));
        self
    }

    /// v3: the WeChat Pay public key (`PUB_KEY_ID_…`) that verifies answers and notifies.
    pub fn v3_public_key(mut self, id: impl Into<String>, key: wechat_pay::v3::PublicKey) -> Self {
        self.v3_public_key = Some((id.into(), key));
        self
    }

    /// v3: download and rotate platform certificates (certificate mode, or the switch-over beside a public key).
    pub fn v3_platform_certificates(mut self, on: bool) -> Self {
        self.v3_certificates = Some(on);
        self
    }

    /// v3: where downloaded platform certificates are shared between processes.
    pub fn v3_certificate_store(mut self, store: Arc<dyn wechat_pay::v3::CertificateStore>) -> Self {
        self.v3_store = Some(store);
        self
    }

    /// v3: the clock certificate refreshes and notify freshness are judged by (default: the system's).
    pub fn v3_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.v3_clock = Some(clock);
        self
    }

    /// v3: when platform certificates are downloaded again (age, expiry, unknown serials).
    pub fn v3_refresh_policy(mut self, policy: wechat_pay::v3::RefreshPolicy) -> Self {
        self.v3_policy = Some(policy);
        self
    }

    /// v3: how far a notify's or answer's timestamp may be from now, in seconds (default 300; 0 turns it off).
    pub fn v3_max_skew(mut self, secs: i64) -> Self {
        self.v3_max_skew = Some(secs);
        self
    }

    /// The merchant, or an [`Error`] naming the missing or invalid setting.
    pub fn build(self) -> Result<Pay> {
        let app_id = self.app_id.ok_or(Error::NotConfigured {
            what: "the app id",
            how: "Pay::builder().app_id(..)",
        })?;
        let mch_id = self.mch_id.ok_or(Error::NotConfigured {
            what: "the merchant id",
            how: "Pay::builder().mch_id(..)",
        })?;
        if self.v2_key.is_none() && self.v3.is_none() {
            return Err(Error::NotConfigured {
                what: "a v2 key or v3 keys",
                how: "Pay::builder().v2_key(..) or .v3(..)",
            });
        }
        let base_url = self
            .base_url
            .unwrap_or_else(|| wechat_pay::v3::client::DEFAULT_BASE_URL.to_owned());
        let transport = match self.transport {
            Some(t) => t,
            None => default_transport()?,
        };
        let v2 = match self.v2_key {
            Some(key) => {
                let merchant = wechat_pay::Merchant::new(
                    app_id.clone(),
                    mch_id.clone(),
                    key,
                    self.v2_sign_type.unwrap_or(wechat_pay::SignType::HmacSha256),
                );
                let client = wechat_pay::PayClient::with_transport(merchant, &base_url, transport.clone())?;
                Some(match self.certificate_transport {
                    Some(t) => client.with_certificate_transport(t),
                    None => client,
                })
            }
            None => None,
        };
        let v3 = match self.v3 {
            Some((private_key, serial, api_v3_key)) => {
                let signer = wechat_pay::v3::RequestSigner::new(mch_id.clone(), serial, private_key);
                let mut builder = wechat_pay::v3::Client::builder(signer, api_v3_key)
                    .base_url(&base_url)
                    .transport(transport);
                if let Some((id, key)) = self.v3_public_key {
                    builder = builder.public_key(id, key);
                }
                if let Some(on) = self.v3_certificates {
                    builder = builder.platform_certificates(on);
                }
                if let Some(store) = self.v3_store {
                    builder = builder.certificate_store(store);
                }
                if let Some(clock) = self.v3_clock {
                    builder = builder.clock(clock);
                }
                if let Some(policy) = self.v3_policy {
                    builder = builder.refresh_policy(policy);
                }
                if let Some(secs) = self.v3_max_skew {
                    builder = builder.max_skew(secs);
                }
                Some(builder.build()?)
            }
            None => None,
        };
        Ok(Pay { app_id, mch_id, v2, v3 })
    }
}

#[cfg(feature = "reqwest")]
fn default_transport() -> Result<Arc<dyn Transport>> {
    Ok(Arc::new(
        wechat_core::ReqwestTransport::new().map_err(wechat_core::Error::from)?,
    ))
}

#[cfg(not(feature = "reqwest"))]
fn default_transport() -> Result<Arc<dyn Transport>> {
    Err(Error::NotConfigured {
        what: "an HTTP transport (the `reqwest` feature is off)",
        how: "Pay::builder().transport(..)",
    })
}

impl Pay {
    /// Starts building a merchant.
    pub fn builder() -> PayBuilder {
        PayBuilder::default()
    }

    /// The app the payments belong to.
    pub fn app_id(&self) -> &AppId {
        &self.app_id
    }

    /// The merchant id.
    pub fn mch_id(&self) -> &str {
        &self.mch_id
    }

    /// The v2 API (unified order, query, close, refund, notifies).
    pub fn v2(&self) -> Result<&wechat_pay::PayClient> {
        self.v2.as_ref().ok_or(Error::NotConfigured {
            what: "WeChat Pay v2",
            how: "Pay::builder().v2_key(..)",
        })
    }

    /// The v3 API (prepay on every channel, query, close, refund, verified notifies).
    pub fn v3(&self) -> Result<&wechat_pay::v3::Client> {
        self.v3.as_ref().ok_or(Error::NotConfigured {
            what: "WeChat Pay v3",
            how: "Pay::builder().v3(..)",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders_name_what_is_missing() {
        let e = OfficialAccount::builder().app_id("wx1").build().unwrap_err();
        assert!(e.to_string().contains("secret"), "{e}");
        let e = OfficialAccount::builder()
            .app_id("wx1")
            .secret("s")
            .encoding_aes_key("short")
            .push_token("t")
            .build()
            .unwrap_err();
        assert!(matches!(e, Error::Push(_)), "{e}");
        let e = OfficialAccount::builder()
            .app_id("wx1")
            .secret("s")
            .encoding_aes_key("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG")
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("push_token"), "{e}");
        let e = OfficialAccount::builder()
            .app_id("wx1")
            .secret("s")
            .push_token("t")
            .push_mode(PushMode::Safe)
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("encoding_aes_key"), "{e}");
        let oa = OfficialAccount::builder()
            .app_id("wx1")
            .secret("s")
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(oa.push().is_err());
        let e = Pay::builder().app_id("wx1").mch_id("1").build().unwrap_err();
        assert!(e.to_string().contains("v2_key"), "{e}");
        let pay = Pay::builder()
            .app_id("wx1")
            .mch_id("1")
            .v2_key(wechat_pay::PayKey::new("k"))
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(pay.v2().is_ok() && pay.v3().is_err());
        assert!(!format!("{pay:?}").contains("\"k\""));
    }

    #[test]
    fn no_secret_reaches_a_debug_print() {
        let oa = OfficialAccount::builder()
            .app_id("wx1")
            .secret("APP-S3CRET-VALUE")
            .push_token("PUSH-T0KEN-VALUE")
            .encoding_aes_key("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG")
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let mp = MiniProgram::builder()
            .app_id("wx2")
            .secret("MP-S3CRET-VALUE")
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let pay = Pay::builder()
            .app_id("wx1")
            .mch_id("1900000109")
            .v2_key(wechat_pay::PayKey::new("PAY-KEY-0123456789abcdefghijklmn"))
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let printed = format!("{oa:?} {mp:?} {pay:?} {:?} {:?}", oa.oauth(), mp.client());
        for secret in ["APP-S3CRET", "PUSH-T0KEN", "abcdefghijklmnop", "MP-S3CRET", "PAY-KEY"] {
            assert!(!printed.contains(secret), "{secret} printed: {printed}");
        }
        assert!(
            printed.contains("wx1") && printed.contains("1900000109"),
            "ids stay visible: {printed}"
        );
    }

    #[test]
    fn every_group_of_an_account_shares_its_one_token_manager() {
        let oa = OfficialAccount::builder()
            .app_id("wx1")
            .secret("s")
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let mp = MiniProgram::builder()
            .app_id("wx2")
            .secret("s")
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(oa.oauth().app_id().as_str(), "wx1");
        assert_eq!(mp.client().app_id().as_str(), "wx2");
        assert_eq!(oa.app().tokens().app_id().as_str(), "wx1");
    }
}

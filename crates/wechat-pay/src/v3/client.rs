//! The v3 client: prepay (JSAPI, mini program, APP, H5, NATIVE), query, close, refunds and refund query, payment
//! parameters, and notifies — every response's signature checked before it is believed.

use crate::error::{Error, Result};
use crate::types::{JsapiPayParams, OrderRef};
#[cfg(feature = "client")]
use crate::v3::aead::ApiV3Key;
#[cfg(feature = "client")]
use crate::v3::certs::{CertificateStore, MemoryCertificateStore, PlatformKeys, RefreshPolicy, Source};
use crate::v3::keys::PublicKey;
use crate::v3::notify::{self, Notify};
#[cfg(feature = "client")]
use crate::v3::request::{CloseOrder, QueryOrder, QueryRefund, V3Request, check_status};
use crate::v3::sign::RequestSigner;
use crate::v3::verifier::{SignedMessage, Verifier};
use std::sync::Arc;
use url::Url;
use wechat_core::AppId;
#[cfg(feature = "client")]
use wechat_core::{Clock, SystemClock, Transport, WechatClient};

pub use crate::v3::types::{
    Amount, AppPayParams, Channel, Order, Payer, Prepay, RefundAmount, RefundInfo, RefundRequest, RefundState,
    Transaction, jsapi_pay_params, rfc3339_beijing,
};

/// WeChat Pay's production address.
pub const DEFAULT_BASE_URL: &str = "https://api.mch.weixin.qq.com";

/// A response, read whole.
#[derive(Debug)]
#[cfg(feature = "client")]
pub(crate) struct Exchange {
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

/// Sends one signed request. Non-2xx answers become [`Error::Api`] (from the `{code, message, detail}` body) or
/// an HTTP status error; the caller verifies 2xx signatures.
#[cfg(feature = "client")]
pub(crate) async fn signed_exchange(
    http_client: &WechatClient,
    base_url: &Url,
    signer: &RequestSigner,
    method: http::Method,
    path_and_query: &str,
    body: Option<Vec<u8>>,
) -> Result<Exchange> {
    let request = crate::v3::request::signed_request(
        signer,
        base_url,
        method,
        path_and_query,
        body.unwrap_or_default(),
        unix_now(),
        &crate::sign::nonce(),
    )?;
    let response = http_client.execute_any_status(request).await?;
    crate::v3::request::check_status(response.status().as_u16(), response.body())?;
    let (parts, body) = response.into_parts();
    Ok(Exchange {
        headers: parts.headers,
        body,
    })
}

/// Real time, Unix seconds: request signatures are checked against WeChat Pay's clock, not a test's.
#[cfg(feature = "client")]
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(0))
        .unwrap_or(0)
}

/// A merchant's v3 client. Build it with [`Client::builder`].
///
/// The mode follows what it is given: public keys only (public-key mode: nothing is downloaded), certificates only
/// (certificate mode: `/v3/certificates` downloaded and kept current), or both (the switch-over, when WeChat signs
/// with either for a while).
///
/// ```no_run
/// use wechat_core::AppId;
/// use wechat_pay::Fen;
/// use wechat_pay::v3::{ApiV3Key, Channel, Client, MerchantPrivateKey, Order, Prepay, PublicKey, RequestSigner};
/// # async fn demo() -> wechat_pay::Result<()> {
/// let signer = RequestSigner::new("1900009191", "444F4E4F54555345494E50524F44554354494F4E",
///     MerchantPrivateKey::from_pem(&std::fs::read_to_string("apiclient_key.pem").unwrap_or_default())?);
/// let pay = Client::builder(signer, ApiV3Key::new("0123456789abcdefghijklmnopqrstuv"))
///     .base_url("http://127.0.0.1:9000") // the simulator; WeChat Pay by default
///     .public_key("PUB_KEY_ID_0119000091912026112700000000000001",
///         PublicKey::from_pem(&std::fs::read_to_string("pub_key.pem").unwrap_or_default())?)
///     .build()?;
/// let app = AppId::new("wxd678efh567hg6787");
/// let order = Order::new(&app, "Coffee", "ORDER20261127001", Fen(1800),
///     "https://shop.example.com/wechat/pay/v3/notify", Channel::Jsapi { openid: "o-user".into() })?;
/// if let Prepay::PrepayId(id) = pay.prepay(&order).await? {
///     let params = pay.jsapi_params(&app, &id, 1_800_000_000); // → wx.requestPayment(params)
/// #   let _ = params;
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
#[cfg(feature = "client")]
pub struct Client {
    signer: Arc<RequestSigner>,
    api_v3_key: ApiV3Key,
    base_url: Url,
    http: WechatClient,
    keys: PlatformKeys,
    clock: Arc<dyn Clock>,
}

/// Builds a [`Client`].
#[derive(Debug)]
#[cfg(feature = "client")]
pub struct ClientBuilder {
    signer: RequestSigner,
    api_v3_key: ApiV3Key,
    base_url: String,
    transport: Option<Arc<dyn Transport>>,
    public_keys: Vec<(String, PublicKey)>,
    certificates: Option<bool>,
    store: Option<Arc<dyn CertificateStore>>,
    clock: Option<Arc<dyn Clock>>,
    policy: RefreshPolicy,
    max_skew_secs: Option<i64>,
}

#[cfg(feature = "client")]
impl ClientBuilder {
    /// Where WeChat Pay is (default `https://api.mch.weixin.qq.com`; the simulator's address in tests).
    pub fn base_url(mut self, url: &str) -> Self {
        url.clone_into(&mut self.base_url);
        self
    }

    /// The HTTP transport (default: wechat-core's reqwest transport).
    pub fn transport(mut self, transport: Arc<dyn Transport>) -> Self {
        self.transport = Some(transport);
        self
    }

    /// A WeChat Pay public key (`PUB_KEY_ID_…` and `pub_key.pem`). With no certificates, this is public-key mode.
    pub fn public_key(mut self, id: impl Into<String>, key: PublicKey) -> Self {
        self.public_keys.push((id.into(), key));
        self
    }

    /// Whether platform certificates are downloaded (default: only when no public key is given; set `true` with a
    /// public key for the switch-over).
    pub fn platform_certificates(mut self, on: bool) -> Self {
        self.certificates = Some(on);
        self
    }

    /// Where downloaded certificates are shared (default: in this process only).
    pub fn certificate_store(mut self, store: Arc<dyn CertificateStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// The clock for timestamps, expiry and refresh (default: the system's).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// When certificates are downloaded again.
    pub fn refresh_policy(mut self, policy: RefreshPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The allowed skew of `Wechatpay-Timestamp` (default 300 s).
    pub fn max_skew(mut self, secs: i64) -> Self {
        self.max_skew_secs = Some(secs);
        self
    }

    /// The client. Fails on a bad base URL, or when it would have no key to verify WeChat Pay with.
    pub fn build(self) -> Result<Client> {
        let base_url = wechat_core::parse_base_url(&self.base_url)?;
        let http = match self.transport {
            Some(t) => WechatClient::new(t),
            #[cfg(feature = "reqwest")]
            None => WechatClient::with_default_transport()?,
            #[cfg(not(feature = "reqwest"))]
            None => {
                return Err(Error::invalid(
                    "no HTTP transport: give one with .transport(..) (the `reqwest` feature, the default, is off)",
                ));
            }
        }
        .with_retry(wechat_core::RetryPolicy::none());
        let certificates = self.certificates.unwrap_or(self.public_keys.is_empty());
        if !certificates && self.public_keys.is_empty() {
            return Err(Error::invalid(
                "no way to verify WeChat Pay: give a public key (public-key mode) or turn on platform certificates",
            ));
        }
        let mut verifier = Verifier::new();
        if let Some(s) = self.max_skew_secs {
            verifier = verifier.with_max_skew(s);
        }
        for (id, key) in self.public_keys {
            verifier = verifier.with_public_key(id, key);
        }
        let signer = Arc::new(self.signer);
        let clock = self.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let source = certificates.then(|| Source {
            signer: signer.clone(),
            api_v3_key: self.api_v3_key.clone(),
            base_url: base_url.clone(),
            http: http.clone(),
        });
        let keys = PlatformKeys::new(
            signer.mch_id().to_owned(),
            verifier,
            source,
            self.store.unwrap_or_else(|| Arc::new(MemoryCertificateStore::new())),
            clock.clone(),
            self.policy,
        );
        Ok(Client {
            signer,
            api_v3_key: self.api_v3_key,
            base_url,
            http,
            keys,
            clock,
        })
    }
}

#[cfg(feature = "client")]
impl Client {
    /// Starts a builder for the merchant `signer` signs for, with its APIv3 key.
    pub fn builder(signer: RequestSigner, api_v3_key: ApiV3Key) -> ClientBuilder {
        ClientBuilder {
            signer,
            api_v3_key,
            base_url: DEFAULT_BASE_URL.to_owned(),
            transport: None,
            public_keys: Vec::new(),
            certificates: None,
            store: None,
            clock: None,
            policy: RefreshPolicy::default(),
            max_skew_secs: None,
        }
    }

    /// The merchant id.
    pub fn mch_id(&self) -> &str {
        self.signer.mch_id()
    }

    /// The verifying keys (and the certificate downloads).
    pub fn keys(&self) -> &PlatformKeys {
        &self.keys
    }

    /// Sends a [request value](crate::v3::request): signed now, the answer's signature verified (downloading a
    /// platform certificate it does not know yet, once), then read. Never retried: on a retryable error
    /// ([`Error::is_retryable`]) send the same order or refund again — WeChat Pay deduplicates on its number.
    pub async fn send<R: V3Request + ?Sized>(&self, request: &R) -> Result<R::Response> {
        let signer = self.signer_naming_key();
        let http = request.to_http(&signer, &self.base_url, unix_now(), &crate::sign::nonce())?;
        let response = self.http.execute_any_status(http).await?;
        check_status(response.status().as_u16(), response.body())?;
        let message = SignedMessage::from_headers(response.headers(), response.body())?;
        self.keys.verify(&message).await?;
        request.read(self.mch_id(), response.body())
    }

    /// The signer with `Wechatpay-Serial` set to the key WeChat Pay should answer under: the public key id when one
    /// is configured, else the platform certificate in use (none before the first download).
    fn signer_naming_key(&self) -> std::borrow::Cow<'_, RequestSigner> {
        match self.keys.verifier().preferred_serial(self.clock.now_ms() / 1000) {
            Some(serial) => std::borrow::Cow::Owned((*self.signer).clone().with_wechatpay_serial(serial)),
            None => std::borrow::Cow::Borrowed(&self.signer),
        }
    }

    /// Encrypts a sensitive field for a request of this merchant: under the key requests name (the public key, else
    /// the platform certificate in use — downloaded first if none is held yet). Returns that key's serial (the
    /// request's `Wechatpay-Serial`, which [`send`](Self::send) sets to the same) and the base64 ciphertext.
    pub async fn encrypt_sensitive(&self, plaintext: &str) -> Result<(String, String)> {
        let now = self.clock.now_ms() / 1000;
        let mut verifier = self.keys.verifier();
        if verifier.preferred_serial(now).is_none() && self.keys.downloads_certificates() {
            self.keys.download().await?;
            verifier = self.keys.verifier();
        }
        let serial = verifier.preferred_serial(now).ok_or_else(|| {
            Error::invalid("no WeChat Pay key to encrypt with: configure a public key or certificates")
        })?;
        let key = verifier
            .key(&serial)
            .ok_or_else(|| Error::invalid("the key named for requests is not held"))?;
        let sealed = crate::v3::sensitive::encrypt(key, plaintext).map_err(|e| Error::invalid(e.to_string()))?;
        Ok((serial, sealed))
    }

    /// A day's bill (`YYYY-MM-DD`, Beijing) as text: its location asked (a verified answer), the file fetched with a
    /// signed `GET` and checked against the SHA-1 WeChat gave (the download itself is not signed), ungzipped when
    /// `gzip`. A day without trades (`NO_STATEMENT_EXIST`) is an empty text.
    pub async fn bill(&self, date: &str, kind: crate::v3::request::BillKind, gzip: bool) -> Result<String> {
        use sha1::Digest as _;
        let request = crate::v3::request::BillRequest::new(date, kind, gzip)?;
        let location = match self.send(&request).await {
            Ok(l) => l,
            Err(Error::Api { code, .. }) if code.as_str() == "NO_STATEMENT_EXIST" => return Ok(String::new()),
            Err(e) => return Err(e),
        };
        let url = Url::parse(&location.download_url).map_err(|e| Error::invalid(format!("download_url: {e}")))?;
        let path_and_query = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        let signer = self.signer_naming_key();
        let file = signed_exchange(
            &self.http,
            &self.base_url,
            &signer,
            http::Method::GET,
            &path_and_query,
            None,
        )
        .await?;
        let digest = wechat_core::encoding::hex_lower(&sha1::Sha1::digest(&file.body));
        if !location.hash_type.eq_ignore_ascii_case("SHA1") || !digest.eq_ignore_ascii_case(&location.hash_value) {
            return Err(Error::invalid(format!(
                "the bill file does not match its {} hash: not what WeChat Pay made",
                location.hash_type
            )));
        }
        let bytes = if gzip {
            use std::io::Read as _;
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(file.body.as_slice())
                .take(64 << 20)
                .read_to_end(&mut out)
                .map_err(|e| Error::invalid(format!("the gzipped bill does not open: {e}")))?;
            out
        } else {
            file.body
        };
        String::from_utf8(bytes).map_err(|_| Error::invalid("the bill is not UTF-8"))
    }

    /// A day's trade bill (`YYYY-MM-DD`), read into rows (gzipped on the way).
    pub async fn trade_bill(&self, date: &str) -> Result<crate::bill::TradeBill> {
        let text = self.bill(date, crate::v3::request::BillKind::Trade, true).await?;
        if text.trim().is_empty() {
            return Ok(crate::bill::TradeBill::default());
        }
        crate::bill::TradeBill::parse(&text).map_err(|e| Error::invalid(e.to_string()))
    }

    /// Places an order. Not retried: on a retryable error ([`Error::is_retryable`]) send the same order again.
    pub async fn prepay(&self, order: &Order) -> Result<Prepay> {
        self.send(order).await
    }

    /// Queries an order by our number or WeChat's.
    pub async fn query(&self, order: &OrderRef) -> Result<Transaction> {
        self.send(&QueryOrder(order.clone())).await
    }

    /// Closes an unpaid order (WeChat Pay answers 204).
    pub async fn close(&self, out_trade_no: &str) -> Result<()> {
        self.send(&CloseOrder::new(out_trade_no)?).await
    }

    /// Refunds (part of) a paid order. Not retried: on a retryable error send the same `out_refund_no` again.
    pub async fn refund(&self, refund: &RefundRequest) -> Result<RefundInfo> {
        self.send(refund).await
    }

    /// A refund by our refund number.
    pub async fn refund_query(&self, out_refund_no: &str) -> Result<RefundInfo> {
        self.send(&QueryRefund::new(out_refund_no)?).await
    }

    /// Downloads the platform certificates now (see [`PlatformKeys::download`]).
    pub async fn download_certificates(&self) -> Result<Vec<crate::v3::Certificate>> {
        self.keys.download().await
    }

    /// `wx.requestPayment` parameters (official-account page or mini program) for a prepay id, signType `RSA`.
    pub fn jsapi_params(&self, app_id: &AppId, prepay_id: &str, timestamp: i64) -> JsapiPayParams {
        jsapi_pay_params(self.signer.key(), app_id, prepay_id, timestamp, &crate::sign::nonce())
    }

    /// The native SDK's payment parameters for a prepay id.
    pub fn app_params(&self, app_id: &AppId, prepay_id: &str, timestamp: i64) -> AppPayParams {
        let nonce = crate::sign::nonce();
        let ts = timestamp.to_string();
        let sign = self
            .signer
            .key()
            .sign(format!("{}\n{ts}\n{nonce}\n{prepay_id}\n", app_id.as_str()).as_bytes());
        AppPayParams {
            appid: app_id.as_str().to_owned(),
            partnerid: self.mch_id().to_owned(),
            prepayid: prepay_id.to_owned(),
            package: "Sign=WXPay".into(),
            noncestr: nonce,
            timestamp: ts,
            sign,
        }
    }

    /// A notify as received (headers and body byte for byte): signature verified (refreshing certificates when its
    /// serial is new), resource decrypted, and the event's `mchid` checked to be ours. Apply it once, then answer
    /// 204; answer [`notify::FAIL_BODY`] with a 500 to have it resent.
    pub async fn verify_notify(&self, headers: &http::HeaderMap, body: &[u8]) -> Result<Notify> {
        let message = SignedMessage::from_headers(headers, body)?;
        self.keys.verify(&message).await?;
        let n = notify::decode(&self.api_v3_key, body)?;
        if n.mch_id().is_some_and(|m| m != self.mch_id()) {
            return Err(Error::MerchantMismatch { field: "mchid" });
        }
        Ok(n)
    }

    /// The clock this client uses.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Fen;

    #[test]
    fn beijing_times_are_rfc3339() {
        assert_eq!(rfc3339_beijing(0), "1970-01-01T08:00:00+08:00");
        assert_eq!(rfc3339_beijing(1_709_222_400), "2024-03-01T00:00:00+08:00");
        assert_eq!(rfc3339_beijing(1_798_732_799), "2026-12-31T23:59:59+08:00");
    }

    #[test]
    fn order_bodies_carry_what_each_channel_needs() {
        let app = AppId::new("wx1");
        let o = Order::new(
            &app,
            "Coffee",
            "ORDER1",
            Fen(1),
            "https://x.example/n",
            Channel::Jsapi { openid: "o1".into() },
        )
        .expect("order")
        .expires_at(0);
        let b = o.body("100");
        assert_eq!(b["payer"]["openid"], "o1");
        assert_eq!(b["amount"]["total"], 1);
        assert_eq!(b["time_expire"], "1970-01-01T08:00:00+08:00");
        let h5 = Order::new(
            &app,
            "C",
            "ORDER2",
            Fen(1),
            "https://x.example/n",
            Channel::H5 {
                payer_client_ip: "1.2.3.4".into(),
            },
        )
        .expect("order");
        assert_eq!(h5.body("100")["scene_info"]["h5_info"]["type"], "Wap");
        assert!(Order::new(&app, "C", "ORDER|3", Fen(1), "https://x.example/n", Channel::App).is_err());
        assert!(Order::new(&app, "C", "ORDER3", Fen(0), "https://x.example/n", Channel::App).is_err());
        assert!(Order::new(&app, "C", "ORDER3", Fen(1), "https://x.example/n?a", Channel::App).is_err());
        assert!(
            Order::new(
                &app,
                "C",
                "ORDER3",
                Fen(1),
                "https://x.example/n",
                Channel::H5 {
                    payer_client_ip: "x".into()
                }
            )
            .is_err()
        );
        let r = RefundRequest::new(OrderRef::TransactionId("42".into()), "R1", Fen(1), Fen(2)).expect("refund");
        assert_eq!(r.body()["transaction_id"], "42");
        assert!(RefundRequest::new(OrderRef::TransactionId("42".into()), "R1", Fen(3), Fen(2)).is_err());
    }
}

//! Pay v3 calls as values (sans-IO): each builds its signed request (`Authorization: WECHATPAY2-SHA256-RSA2048 …`)
//! and reads the answer after its signature is checked, with no transport. [`Client`](crate::v3::Client) sends them —
//! and, unlike a bare [`Verifier`], downloads a platform certificate it does not know yet; a service with its own HTTP
//! stack and keys uses [`V3Request::to_http`] and [`V3Request::parse`] directly.
//!
//! ```
//! use wechat_pay::v3::request::{QueryOrder, V3Request};
//! use wechat_pay::v3::{MerchantPrivateKey, RequestSigner};
//! use wechat_pay::OrderRef;
//!
//! # let pem = include_str!("../../testdata/merchant.key");
//! let signer = RequestSigner::new("1900000109", "SERIAL1", MerchantPrivateKey::from_pem(pem)?);
//! let base = url::Url::parse("https://api.mch.weixin.qq.com").unwrap();
//! let query = QueryOrder(OrderRef::OutTradeNo("ORDER0001".into()));
//! let http = query.to_http(&signer, &base, 1_800_000_000, "NONCE1")?;
//! assert_eq!(http.uri().path(), "/v3/pay/transactions/out-trade-no/ORDER0001");
//! assert_eq!(http.uri().query(), Some("mchid=1900000109"));
//! let auth = http.headers()["authorization"].to_str().unwrap();
//! assert!(auth.starts_with("WECHATPAY2-SHA256-RSA2048 mchid=\"1900000109\""));
//! assert!(query.idempotent()); // a read: safe to send again
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::error::{Error, Result};
use crate::types::OrderRef;
use crate::v3::error::ErrorCode;
use crate::v3::sign::RequestSigner;
use crate::v3::types::{Order, Prepay, RefundInfo, RefundRequest, Transaction, check_v3_no};
use crate::v3::verifier::{SignedMessage, Verifier};
use serde::Deserialize;
use serde_json::json;
use url::Url;
use wechat_core::transport::{HttpRequest, HttpResponse};

/// The `User-Agent` WeChat Pay requires on every v3 request.
pub const USER_AGENT: &str = concat!("wxkit-wechat-pay/", env!("CARGO_PKG_VERSION"));

/// One Pay v3 call: method, path, JSON body, and how to read a verified 2xx answer. The signed request and the
/// checked reading are provided.
pub trait V3Request {
    /// What a successful answer reads as.
    type Response;

    /// `GET` or `POST`.
    fn method(&self) -> http::Method;

    /// The path and query, for the merchant `mch_id`.
    fn path_and_query(&self, mch_id: &str) -> Result<String>;

    /// The JSON body, if any.
    fn body(&self, mch_id: &str) -> Option<serde_json::Value>;

    /// Whether sending it again is harmless (a read). Mutations are resent only by the caller, with the same number
    /// (WeChat Pay deduplicates on `out_trade_no` / `out_refund_no`).
    fn idempotent(&self) -> bool;

    /// Reads a 2xx answer whose signature has been verified.
    fn read(&self, mch_id: &str, body: &[u8]) -> Result<Self::Response>;

    /// The request signed by `signer` at `timestamp` (Unix seconds) with `nonce`.
    fn to_http(&self, signer: &RequestSigner, base_url: &Url, timestamp: i64, nonce: &str) -> Result<HttpRequest> {
        let body = self
            .body(signer.mch_id())
            .map(|b| b.to_string().into_bytes())
            .unwrap_or_default();
        let path_and_query = self.path_and_query(signer.mch_id())?;
        signed_request(signer, base_url, self.method(), &path_and_query, body, timestamp, nonce)
    }

    /// Checks an answer — a non-2xx becomes [`Error::Api`] (its `code` typed), a 2xx must carry a valid signature
    /// by a key `verifier` holds and a fresh timestamp (`now`, Unix seconds) — then reads it.
    fn parse(&self, mch_id: &str, verifier: &Verifier, response: &HttpResponse, now: i64) -> Result<Self::Response> {
        check_status(response.status().as_u16(), response.body())?;
        let message = SignedMessage::from_headers(response.headers(), response.body())?;
        verifier.verify(&message, now)?;
        self.read(mch_id, response.body())
    }
}

/// A signed v3 request: `Authorization` over method, path, timestamp, nonce and body; `Accept`, `User-Agent`,
/// `Content-Type` when there is a body, and `Wechatpay-Serial` when the signer names WeChat Pay's key
/// ([`RequestSigner::with_wechatpay_serial`]).
pub fn signed_request(
    signer: &RequestSigner,
    base_url: &Url,
    method: http::Method,
    path_and_query: &str,
    body: Vec<u8>,
    timestamp: i64,
    nonce: &str,
) -> Result<HttpRequest> {
    let authorization = signer.authorization(method.as_str(), path_and_query, timestamp, nonce, &body);
    let url = base_url
        .join(path_and_query.trim_start_matches('/'))
        .map_err(|e| Error::invalid(format!("url: {e}")))?;
    let mut request = http::Request::builder()
        .method(method)
        .uri(url.as_str())
        .header(http::header::AUTHORIZATION, authorization)
        .header(http::header::ACCEPT, "application/json")
        .header(http::header::USER_AGENT, USER_AGENT);
    if !body.is_empty() {
        request = request.header(http::header::CONTENT_TYPE, "application/json");
    }
    if let Some(serial) = signer.wechatpay_serial() {
        request = request.header("Wechatpay-Serial", serial);
    }
    request.body(body).map_err(|e| Error::invalid(e.to_string()))
}

/// A non-2xx answer as [`Error::Api`] (from its `{code, message, detail}` body) or an HTTP status error. Error bodies
/// are believed without a signature: they can only make a call fail, and a failed call is retried with the same
/// number or looked up again.
pub fn check_status(status: u16, body: &[u8]) -> Result<()> {
    if (200..300).contains(&status) {
        return Ok(());
    }
    #[derive(Deserialize)]
    struct ErrorBody {
        code: String,
        #[serde(default)]
        message: String,
        detail: Option<serde_json::Value>,
    }
    Err(match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) => Error::Api {
            status,
            code: ErrorCode::parse(&e.code),
            message: e.message,
            detail: e.detail,
        },
        Err(_) => wechat_core::Error::HttpStatus { status }.into(),
    })
}

fn json<T: for<'de> Deserialize<'de>>(body: &[u8], what: &'static str) -> Result<T> {
    serde_json::from_slice(body).map_err(|_| Error::MissingField(what))
}

/// Prepay (JSAPI, mini program, APP, H5, NATIVE): the order is its own request value.
impl V3Request for Order {
    type Response = Prepay;

    fn method(&self) -> http::Method {
        http::Method::POST
    }

    fn path_and_query(&self, _: &str) -> Result<String> {
        Ok(self.channel().path().to_owned())
    }

    fn body(&self, mch_id: &str) -> Option<serde_json::Value> {
        Some(Order::body(self, mch_id))
    }

    fn idempotent(&self) -> bool {
        false
    }

    fn read(&self, _: &str, body: &[u8]) -> Result<Prepay> {
        #[derive(Deserialize)]
        struct Body {
            prepay_id: Option<String>,
            code_url: Option<String>,
            h5_url: Option<String>,
        }
        let b: Body = json(body, "prepay_id")?;
        let pick = |v: Option<String>, name| v.filter(|s: &String| !s.is_empty()).ok_or(Error::MissingField(name));
        Ok(match self.channel() {
            crate::v3::Channel::Native => Prepay::CodeUrl(pick(b.code_url, "code_url")?),
            crate::v3::Channel::H5 { .. } => Prepay::H5Url(pick(b.h5_url, "h5_url")?),
            _ => Prepay::PrepayId(pick(b.prepay_id, "prepay_id")?),
        })
    }
}

/// `GET /v3/pay/transactions/…`: an order by our number or WeChat's; the answer must name our merchant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryOrder(pub OrderRef);

impl V3Request for QueryOrder {
    type Response = Transaction;

    fn method(&self) -> http::Method {
        http::Method::GET
    }

    fn path_and_query(&self, mch_id: &str) -> Result<String> {
        Ok(match &self.0 {
            OrderRef::OutTradeNo(n) => {
                check_v3_no("out_trade_no", n, 1, 32)?;
                format!("/v3/pay/transactions/out-trade-no/{n}?mchid={mch_id}")
            }
            OrderRef::TransactionId(t) => {
                check_v3_no("transaction_id", t, 1, 32)?;
                format!("/v3/pay/transactions/id/{t}?mchid={mch_id}")
            }
        })
    }

    fn body(&self, _: &str) -> Option<serde_json::Value> {
        None
    }

    fn idempotent(&self) -> bool {
        true
    }

    fn read(&self, mch_id: &str, body: &[u8]) -> Result<Transaction> {
        let t: Transaction = json(body, "trade_state")?;
        if t.mchid != mch_id {
            return Err(Error::MerchantMismatch { field: "mchid" });
        }
        Ok(t)
    }
}

/// `POST /v3/pay/transactions/out-trade-no/{no}/close` (WeChat Pay answers 204).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseOrder {
    out_trade_no: String,
}

impl CloseOrder {
    /// Closes `out_trade_no` (1 to 32 of `[0-9A-Za-z_-*]`).
    pub fn new(out_trade_no: &str) -> Result<Self> {
        check_v3_no("out_trade_no", out_trade_no, 1, 32)?;
        Ok(Self {
            out_trade_no: out_trade_no.to_owned(),
        })
    }
}

impl V3Request for CloseOrder {
    type Response = ();

    fn method(&self) -> http::Method {
        http::Method::POST
    }

    fn path_and_query(&self, _: &str) -> Result<String> {
        Ok(format!("/v3/pay/transactions/out-trade-no/{}/close", self.out_trade_no))
    }

    fn body(&self, mch_id: &str) -> Option<serde_json::Value> {
        Some(json!({ "mchid": mch_id }))
    }

    fn idempotent(&self) -> bool {
        // Closing twice is harmless (ORDER_CLOSED), but a close is still a change: the caller decides.
        false
    }

    fn read(&self, _: &str, _: &[u8]) -> Result<()> {
        Ok(())
    }
}

/// `POST /v3/refund/domestic/refunds`: the refund is its own request value.
impl V3Request for RefundRequest {
    type Response = RefundInfo;

    fn method(&self) -> http::Method {
        http::Method::POST
    }

    fn path_and_query(&self, _: &str) -> Result<String> {
        Ok("/v3/refund/domestic/refunds".into())
    }

    fn body(&self, _: &str) -> Option<serde_json::Value> {
        Some(RefundRequest::body(self))
    }

    fn idempotent(&self) -> bool {
        false
    }

    fn read(&self, _: &str, body: &[u8]) -> Result<RefundInfo> {
        json(body, "refund_id")
    }
}

/// `GET /v3/refund/domestic/refunds/{out_refund_no}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryRefund {
    out_refund_no: String,
}

impl QueryRefund {
    /// The refund `out_refund_no` (1 to 64 characters).
    pub fn new(out_refund_no: &str) -> Result<Self> {
        check_v3_no("out_refund_no", out_refund_no, 1, 64)?;
        Ok(Self {
            out_refund_no: out_refund_no.to_owned(),
        })
    }
}

impl V3Request for QueryRefund {
    type Response = RefundInfo;

    fn method(&self) -> http::Method {
        http::Method::GET
    }

    fn path_and_query(&self, _: &str) -> Result<String> {
        Ok(format!("/v3/refund/domestic/refunds/{}", self.out_refund_no))
    }

    fn body(&self, _: &str) -> Option<serde_json::Value> {
        None
    }

    fn idempotent(&self) -> bool {
        true
    }

    fn read(&self, _: &str, body: &[u8]) -> Result<RefundInfo> {
        json(body, "refund_id")
    }
}

/// Which bill: the day's trades, or its fund flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BillKind {
    /// `GET /v3/bill/tradebill` (`bill_type=ALL`).
    Trade,
    /// `GET /v3/bill/fundflowbill` (`account_type=BASIC`).
    FundFlow,
}

/// `GET /v3/bill/tradebill` or `/v3/bill/fundflowbill` for a Beijing day: where to download the file and its
/// SHA-1. The file itself is fetched with a signed `GET` of `download_url` — its answer is **not** signed; the hash
/// is the check ([`Client::bill`](crate::v3::Client::bill) does both).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BillRequest {
    date: String,
    kind: BillKind,
    gzip: bool,
}

impl BillRequest {
    /// The bill of `date` (`YYYY-MM-DD`), gzipped on the way when `gzip`.
    pub fn new(date: &str, kind: BillKind, gzip: bool) -> Result<Self> {
        let b = date.as_bytes();
        let ok = b.len() == 10
            && b[4] == b'-'
            && b[7] == b'-'
            && b.iter()
                .enumerate()
                .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
        if !ok {
            return Err(Error::invalid("a bill date is YYYY-MM-DD"));
        }
        Ok(Self {
            date: date.to_owned(),
            kind,
            gzip,
        })
    }

    /// Whether the file comes gzipped.
    pub fn gzip(&self) -> bool {
        self.gzip
    }
}

/// Where a bill is, and its hash.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct BillLocation {
    /// `SHA1`.
    pub hash_type: String,
    /// The file's SHA-1, hex.
    pub hash_value: String,
    /// Where to `GET` it (signed, like any v3 call; valid for 30 s).
    pub download_url: String,
}

impl V3Request for BillRequest {
    type Response = BillLocation;

    fn method(&self) -> http::Method {
        http::Method::GET
    }

    fn path_and_query(&self, _: &str) -> Result<String> {
        let tar = if self.gzip { "&tar_type=GZIP" } else { "" };
        Ok(match self.kind {
            BillKind::Trade => format!("/v3/bill/tradebill?bill_date={}&bill_type=ALL{tar}", self.date),
            BillKind::FundFlow => format!("/v3/bill/fundflowbill?bill_date={}&account_type=BASIC{tar}", self.date),
        })
    }

    fn body(&self, _: &str) -> Option<serde_json::Value> {
        None
    }

    fn idempotent(&self) -> bool {
        true
    }

    fn read(&self, _: &str, body: &[u8]) -> Result<BillLocation> {
        json(body, "download_url")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v3::keys::{MerchantPrivateKey, PublicKey};
    use crate::v3::sign::response_message;

    const PUB_KEY_ID: &str = "PUB_KEY_ID_0119000001092026112700000000000001";

    /// WeChat Pay's answer to a query, signed with the WeChat Pay public key's private half.
    fn signed_answer(status: u16, body: &str, timestamp: i64) -> HttpResponse {
        let key =
            MerchantPrivateKey::from_pem(include_str!("../../testdata/pubkey.key")).unwrap_or_else(|e| panic!("{e}"));
        let ts = timestamp.to_string();
        let signature = key.sign(&response_message(&ts, "N1", body.as_bytes()));
        let mut response = http::Response::new(body.as_bytes().to_vec());
        *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
        for (k, v) in [
            ("wechatpay-serial", PUB_KEY_ID.to_owned()),
            ("wechatpay-signature", signature),
            ("wechatpay-timestamp", ts),
            ("wechatpay-nonce", "N1".to_owned()),
        ] {
            response
                .headers_mut()
                .insert(k, v.parse().unwrap_or_else(|_| http::HeaderValue::from_static("x")));
        }
        response
    }

    fn verifier() -> Verifier {
        let public = PublicKey::from_pem(include_str!("../../testdata/pubkey.pem")).unwrap_or_else(|e| panic!("{e}"));
        Verifier::new().with_public_key(PUB_KEY_ID, public)
    }

    #[test]
    fn a_query_answer_is_verified_then_read_and_a_tampered_or_foreign_one_refused() {
        let query = QueryOrder(OrderRef::OutTradeNo("ORDER0001".into()));
        let body = r#"{"mchid":"1900000109","appid":"wx1","out_trade_no":"ORDER0001","trade_state":"SUCCESS","transaction_id":"4200","amount":{"total":1800,"currency":"CNY"}}"#;
        let now = 1_800_000_000;
        let t = query
            .parse("1900000109", &verifier(), &signed_answer(200, body, now), now)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.out_trade_no, "ORDER0001");
        // The body changed after signing: refused.
        let mut tampered = signed_answer(200, body, now);
        *tampered.body_mut() = body.replace("1800", "1").into_bytes();
        assert!(query.parse("1900000109", &verifier(), &tampered, now).is_err());
        // Signed, but for another merchant: refused.
        let foreign = body.replace("1900000109", "1900000999");
        assert!(matches!(
            query.parse("1900000109", &verifier(), &signed_answer(200, &foreign, now), now),
            Err(Error::MerchantMismatch { .. })
        ));
        // Ten minutes old: refused as a replay.
        assert!(
            query
                .parse("1900000109", &verifier(), &signed_answer(200, body, now - 600), now)
                .is_err()
        );
        // An error answer is typed without a signature.
        let e = query
            .parse(
                "1900000109",
                &verifier(),
                &signed_answer(404, r#"{"code":"ORDER_NOT_EXIST","message":"no"}"#, now),
                now,
            )
            .unwrap_err();
        assert!(
            matches!(
                e,
                Error::Api {
                    status: 404,
                    code: ErrorCode::OrderNotExist,
                    ..
                }
            ),
            "{e:?}"
        );
    }

    #[test]
    fn requests_are_signed_over_what_is_sent() {
        let signer = RequestSigner::new(
            "1900000109",
            "SERIAL1",
            MerchantPrivateKey::from_pem(include_str!("../../testdata/merchant.key")).unwrap_or_else(|e| panic!("{e}")),
        );
        let base = Url::parse("http://sim.local/").unwrap_or_else(|e| panic!("{e}"));
        let close = CloseOrder::new("ORDER0001").unwrap_or_else(|e| panic!("{e}"));
        let http = close
            .to_http(&signer, &base, 1_800_000_000, "N2")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(http.method(), http::Method::POST);
        assert_eq!(http.body().as_slice(), br#"{"mchid":"1900000109"}"#);
        let auth = http.headers()["authorization"].to_str().unwrap_or_default();
        let parsed = crate::v3::Authorization::parse(auth).unwrap_or_else(|| panic!("unparsable: {auth}"));
        assert_eq!((parsed.nonce.as_str(), parsed.timestamp), ("N2", 1_800_000_000));
        assert!(!close.idempotent() && QueryRefund::new("R1").map(|q| q.idempotent()).unwrap_or(false));
        assert!(CloseOrder::new("bad no").is_err());
    }
}

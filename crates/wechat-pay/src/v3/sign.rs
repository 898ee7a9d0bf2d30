//! The `WECHATPAY2-SHA256-RSA2048` request signature, the messages WeChat Pay signs, and `paySign`.

use crate::v3::keys::MerchantPrivateKey;
use std::fmt;

/// The Authorization scheme of every v3 request.
pub const SCHEMA: &str = "WECHATPAY2-SHA256-RSA2048";

/// The message a request signature covers: `METHOD\nPATH_WITH_QUERY\nTIMESTAMP\nNONCE\nBODY\n` (BODY empty for GET).
pub fn request_message(method: &str, path_and_query: &str, timestamp: i64, nonce: &str, body: &[u8]) -> Vec<u8> {
    let mut m = format!("{method}\n{path_and_query}\n{timestamp}\n{nonce}\n").into_bytes();
    m.extend_from_slice(body);
    m.push(b'\n');
    m
}

/// The message a WeChat Pay response or notify signature covers: `TIMESTAMP\nNONCE\nBODY\n`, the body exactly as
/// received.
pub fn response_message(timestamp: &str, nonce: &str, body: &[u8]) -> Vec<u8> {
    let mut m = format!("{timestamp}\n{nonce}\n").into_bytes();
    m.extend_from_slice(body);
    m.push(b'\n');
    m
}

/// Signs requests for one merchant: its `mchid`, the serial of its API certificate and its private key.
///
/// ```
/// # let pem = include_str!("../../testdata/merchant.key");
/// use wechat_pay::v3::{MerchantPrivateKey, RequestSigner};
/// let signer = RequestSigner::new("1900009191", "444F4E4F54555345494E50524F44554354494F4E",
///     MerchantPrivateKey::from_pem(pem)?);
/// let header = signer.authorization("GET", "/v3/certificates", 1554208460, "593BEC0C930BF1AFEB40B4A08C8FB242", b"");
/// assert!(header.starts_with("WECHATPAY2-SHA256-RSA2048 mchid=\"1900009191\","));
/// # Ok::<(), wechat_pay::v3::KeyError>(())
/// ```
#[derive(Clone)]
pub struct RequestSigner {
    mch_id: String,
    serial: String,
    key: MerchantPrivateKey,
    wechatpay_serial: Option<String>,
}

impl fmt::Debug for RequestSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestSigner")
            .field("mch_id", &self.mch_id)
            .field("serial", &self.serial)
            .field("wechatpay_serial", &self.wechatpay_serial)
            .finish_non_exhaustive()
    }
}

impl RequestSigner {
    /// A signer for merchant `mch_id` whose API certificate has serial `serial`.
    pub fn new(mch_id: impl Into<String>, serial: impl Into<String>, key: MerchantPrivateKey) -> Self {
        Self {
            mch_id: mch_id.into(),
            serial: serial.into().to_ascii_uppercase(),
            key,
            wechatpay_serial: None,
        }
    }

    /// The same signer, naming WeChat Pay's key in each request's `Wechatpay-Serial` header: the public key id
    /// (`PUB_KEY_ID_…`) or the serial of the platform certificate in use. WeChat Pay signs its **answer** with the key
    /// the request names — during a certificate → public-key switch-over, a request without it is answered under the
    /// certificate. ([`Client`](crate::v3::Client) sets it on every request from the keys it holds.)
    ///
    /// ```
    /// # let pem = include_str!("../../testdata/merchant.key");
    /// use wechat_pay::v3::{MerchantPrivateKey, RequestSigner};
    /// let signer = RequestSigner::new("1900009191", "SERIAL", MerchantPrivateKey::from_pem(pem)?)
    ///     .with_wechatpay_serial("PUB_KEY_ID_0119000091912026112700000001");
    /// assert_eq!(signer.wechatpay_serial(), Some("PUB_KEY_ID_0119000091912026112700000001"));
    /// # Ok::<(), wechat_pay::v3::KeyError>(())
    /// ```
    pub fn with_wechatpay_serial(mut self, serial: impl Into<String>) -> Self {
        self.wechatpay_serial = Some(serial.into());
        self
    }

    /// What requests name in `Wechatpay-Serial`, if anything.
    pub fn wechatpay_serial(&self) -> Option<&str> {
        self.wechatpay_serial.as_deref()
    }

    /// The merchant id.
    pub fn mch_id(&self) -> &str {
        &self.mch_id
    }

    /// The serial of the merchant's API certificate.
    pub fn serial(&self) -> &str {
        &self.serial
    }

    /// The private key.
    pub fn key(&self) -> &MerchantPrivateKey {
        &self.key
    }

    /// The `Authorization` header value for a request.
    pub fn authorization(
        &self,
        method: &str,
        path_and_query: &str,
        timestamp: i64,
        nonce: &str,
        body: &[u8],
    ) -> String {
        let signature = self
            .key
            .sign(&request_message(method, path_and_query, timestamp, nonce, body));
        format!(
            "{SCHEMA} mchid=\"{}\",nonce_str=\"{nonce}\",signature=\"{signature}\",timestamp=\"{timestamp}\",serial_no=\"{}\"",
            self.mch_id, self.serial
        )
    }
}

/// An `Authorization` header taken apart (what WeChat Pay — or a simulator — does with it).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Authorization {
    /// `mchid`.
    pub mch_id: String,
    /// `nonce_str`.
    pub nonce: String,
    /// `signature`, base64.
    pub signature: String,
    /// `timestamp`, Unix seconds.
    pub timestamp: i64,
    /// `serial_no`.
    pub serial: String,
}

impl Authorization {
    /// Parses `WECHATPAY2-SHA256-RSA2048 k="v",…`; `None` when the scheme, a field or the timestamp is missing or
    /// malformed (WeChat Pay answers such a request 401 `SIGN_ERROR`).
    pub fn parse(header: &str) -> Option<Self> {
        let rest = header.trim().strip_prefix(SCHEMA)?.strip_prefix(' ')?;
        let mut fields = std::collections::HashMap::new();
        for part in rest.split(',') {
            let (k, v) = part.trim().split_once('=')?;
            let v = v.strip_prefix('"')?.strip_suffix('"')?;
            if fields.insert(k.trim(), v).is_some() {
                return None;
            }
        }
        Some(Self {
            mch_id: fields.get("mchid")?.to_string(),
            nonce: fields.get("nonce_str")?.to_string(),
            signature: fields.get("signature")?.to_string(),
            timestamp: fields.get("timestamp")?.parse().ok()?,
            serial: fields.get("serial_no")?.to_string(),
        })
    }
}

/// `paySign` for `wx.requestPayment` / a mini program's `wx.requestPayment` (signType `RSA`): SHA256withRSA over
/// `appId\ntimeStamp\nnonceStr\npackage\n`.
pub fn pay_sign(key: &MerchantPrivateKey, app_id: &str, timestamp: &str, nonce: &str, package: &str) -> String {
    key.sign(format!("{app_id}\n{timestamp}\n{nonce}\n{package}\n").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v3::vectors as v;

    fn signer() -> RequestSigner {
        RequestSigner::new(
            "1900009191",
            "444f4e4f54555345494e50524f44554354494f4e",
            MerchantPrivateKey::from_pem(v::MERCHANT_KEY).expect("key"),
        )
    }

    #[test]
    fn request_signature_matches_openssl_and_parses_back() {
        let s = signer();
        let header = s.authorization(
            "POST",
            "/v3/pay/transactions/jsapi",
            1554208460,
            "593BEC0C930BF1AFEB40B4A08C8FB242",
            v::REQ_BODY.as_bytes(),
        );
        let auth = Authorization::parse(&header).expect("parses");
        assert_eq!(auth.signature, v::REQUEST_SIGNATURE);
        assert_eq!(auth.serial, "444F4E4F54555345494E50524F44554354494F4E");
        assert_eq!(auth.timestamp, 1554208460);
        assert_eq!(auth.mch_id, "1900009191");
        for bad in [
            "",
            "Bearer x",
            "WECHATPAY2-SHA256-RSA2048 mchid=\"1\"",
            "WECHATPAY2-SHA256-RSA2048 mchid=1,nonce_str=\"n\",signature=\"s\",timestamp=\"1\",serial_no=\"x\"",
            "WECHATPAY2-SHA256-RSA2048 mchid=\"1\",nonce_str=\"n\",signature=\"s\",timestamp=\"t\",serial_no=\"x\"",
        ] {
            assert_eq!(Authorization::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn pay_sign_matches_openssl() {
        let key = MerchantPrivateKey::from_pem(v::MERCHANT_KEY).expect("key");
        assert_eq!(
            pay_sign(
                &key,
                "wx8888888888888888",
                "1414561699",
                "5K8264ILTKCH16CQ2502SI8ZNMTM67VS",
                "prepay_id=wx201410272009395522657a690389285100"
            ),
            v::PAY_SIGN
        );
    }
}

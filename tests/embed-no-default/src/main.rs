//! The pure parts of wechat-pay and wechat-core, used without reqwest and (without `client`) without tokio:
//! v2 signatures and notify parsing, the hardened XML codec, push signatures. With `client`, a service's own
//! transport drives the v2 client.

use wechat_pay::{Merchant, PayKey, SignType, notify};

fn main() {
    let merchant = Merchant::new(
        "wxd930ea5d5a258f4f",
        "10000100",
        PayKey::new("192006250b4c09247ec02edce69f6a2d"),
        SignType::Md5,
    );
    let mut fields = wechat_pay::xml::Fields::new();
    fields.insert("return_code".into(), "SUCCESS".into());
    fields.insert("appid".into(), "wxd930ea5d5a258f4f".into());
    let signed = wechat_pay::sign::sign(
        fields.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        &merchant.key,
        merchant.sign_type,
    );
    assert_eq!(signed.len(), 32);
    let forged = b"<xml><return_code>SUCCESS</return_code><sign>forged</sign></xml>";
    assert!(notify::parse_payment_notify(&merchant, forged).is_err());
    let signature = wechat_core::push::server_signature("token", "1700000000", "nonce");
    assert!(wechat_core::push::verify_server_signature(
        "token",
        "1700000000",
        "nonce",
        &signature
    ));
    #[cfg(feature = "client")]
    client::check(merchant);
    println!("pure parts OK");
}

#[cfg(feature = "client")]
mod client {
    use std::sync::Arc;
    use wechat_core::{HttpRequest, HttpResponse, Transport, TransportError};

    /// Stands for the service's own HTTP client.
    #[derive(Debug)]
    struct OwnTransport;

    #[wechat_core::async_trait]
    impl Transport for OwnTransport {
        async fn send(&self, _request: HttpRequest) -> Result<HttpResponse, TransportError> {
            Err(TransportError::Timeout)
        }
    }

    pub fn check(merchant: wechat_pay::Merchant) {
        let client =
            wechat_pay::PayClient::with_transport(merchant, "https://api.mch.weixin.qq.com", Arc::new(OwnTransport));
        assert!(client.is_ok());
    }
}

//! The HTTP transport seam: requests and responses are plain `http` types, any client can be plugged in.

use crate::error::TransportError;
use async_trait::async_trait;
use std::fmt;

/// An outgoing request: method, URL, headers and a fully buffered body.
pub type HttpRequest = http::Request<Vec<u8>>;
/// A response with its body fully read.
pub type HttpResponse = http::Response<Vec<u8>>;

/// Sends one HTTP request and returns the response. Implementations do no retries and no status interpretation;
/// that is the [`WechatClient`](crate::WechatClient)'s job.
#[async_trait]
pub trait Transport: Send + Sync + fmt::Debug {
    /// Performs the exchange.
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError>;
}

/// Copies a request (method, URI, headers, body) so that it can be sent again on retry.
#[cfg(feature = "client")]
pub(crate) fn clone_request(request: &HttpRequest) -> HttpRequest {
    let mut copy = http::Request::new(request.body().clone());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.headers_mut() = request.headers().clone();
    *copy.version_mut() = request.version();
    copy
}

#[cfg(feature = "reqwest")]
pub use self::reqwest_impl::ReqwestTransport;

#[cfg(feature = "reqwest")]
mod reqwest_impl {
    use super::*;
    use std::time::Duration;

    /// The default transport, on a shared `reqwest::Client` (connection pooling, rustls).
    #[derive(Clone, Debug)]
    pub struct ReqwestTransport {
        client: reqwest::Client,
    }

    impl ReqwestTransport {
        /// A transport with a 10 s request timeout and a 5 s connect timeout.
        pub fn new() -> Result<Self, TransportError> {
            Self::with_timeout(Duration::from_secs(10))
        }

        /// A transport with the given overall request timeout.
        pub fn with_timeout(timeout: Duration) -> Result<Self, TransportError> {
            let client = reqwest::Client::builder()
                .timeout(timeout)
                .connect_timeout(Duration::from_secs(5))
                .build()
                .map_err(|e| TransportError::Other(Box::new(e.without_url())))?;
            Ok(Self { client })
        }

        /// Wraps a client you configured yourself (a merchant client certificate for WeChat Pay refunds, a proxy...).
        pub fn from_client(client: reqwest::Client) -> Self {
            Self { client }
        }
    }

    fn map_error(e: reqwest::Error) -> TransportError {
        // without_url(): the URL carries secrets (appsecret, access_token) in its query string.
        let timeout = e.is_timeout();
        let connect = e.is_connect();
        let e = e.without_url();
        if timeout {
            TransportError::Timeout
        } else if connect {
            TransportError::Connect(Box::new(e))
        } else {
            TransportError::Other(Box::new(e))
        }
    }

    #[async_trait]
    impl Transport for ReqwestTransport {
        async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
            let request = reqwest::Request::try_from(request).map_err(map_error)?;
            let response = self.client.execute(request).await.map_err(map_error)?;
            let mut builder = http::Response::builder()
                .status(response.status())
                .version(response.version());
            if let Some(headers) = builder.headers_mut() {
                *headers = response.headers().clone();
            }
            let body = response.bytes().await.map_err(map_error)?;
            builder
                .body(body.to_vec())
                .map_err(|e| TransportError::Other(Box::new(e)))
        }
    }
}

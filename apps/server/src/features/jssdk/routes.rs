//! `GET /api/v1/jssdk/config?url=` and the sandbox's `/demo/share`.

use super::State;
use super::service::{self, ConfigError};
use crate::http::errors::ApiError;
use crate::http::pages;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

impl From<ConfigError> for ApiError {
    fn from(e: ConfigError) -> ApiError {
        match e {
            ConfigError::MissingUrl => ApiError::bad_request("missing_url", e.to_string()),
            ConfigError::InvalidUrl(_) => ApiError::bad_request("invalid_url", e.to_string()),
            ConfigError::NotAllowed { .. } => ApiError::bad_request("url_not_allowed", e.to_string()),
            ConfigError::NoTicket(cause) => {
                tracing::warn!(error = %cause, "JS-SDK config: no jsapi_ticket");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "wechat_unavailable",
                    "WeChat did not give a jsapi_ticket just now: try again in a few seconds",
                )
                .with_retry_after(5)
            }
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigQuery {
    url: Option<String>,
    apis: Option<String>,
}

/// `GET /api/v1/jssdk/config?url=<page URL>[&apis=a,b]` → `{"appId", "timestamp", "nonceStr", "signature",
/// "jsApiList"}` for `wx.config`. The URL's fragment is dropped (WeChat signs without it); it must be http(s) on a
/// host in `wechat.js_domains` (400 otherwise). The `jsapi_ticket` comes from the shared token manager: N instances
/// fetch it once.
pub async fn config(req: HttpRequest, state: web::Data<State>) -> Result<HttpResponse, ApiError> {
    let q = web::Query::<ConfigQuery>::from_query(req.query_string())
        .map_err(|e| ApiError::bad_request("invalid_query", e.to_string()))?;
    let now = state.clock.now_ms() / 1000;
    let (signed, apis) = service::config(&state, q.url.as_deref(), q.apis.as_deref(), now).await?;
    // Serialized from borrowed fields: no intermediate JSON tree per request.
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Reply<'a> {
        app_id: &'a str,
        timestamp: i64,
        nonce_str: &'a str,
        signature: &'a str,
        js_api_list: &'a [String],
    }
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(Reply {
            app_id: &signed.app_id,
            timestamp: signed.timestamp,
            nonce_str: &signed.nonce_str,
            signature: &signed.signature,
            js_api_list: &apis,
        }))
}

#[derive(Template)]
#[template(path = "share.html")]
struct SharePage<'a> {
    title: &'a str,
    jweixin: &'a str,
}

/// `GET /demo/share` (sandbox mode): a page that configures the JS-SDK from `/api/v1/jssdk/config` and shows whether
/// `wx.ready` or `wx.error` fired (`?tamper=1` spoils the signature, as a stale or mis-signed config would).
pub async fn share_demo(state: web::Data<State>) -> Result<HttpResponse, ApiError> {
    let Some(sim) = &state.sandbox_sim_url else {
        return Err(ApiError::not_found("the share demo runs in sandbox mode"));
    };
    let jweixin = format!("{sim}/_sim/js/jweixin.js");
    let mut res = pages::render(
        StatusCode::OK,
        &SharePage {
            title: "分享演示 · JS-SDK share demo",
            jweixin: &jweixin,
        },
    );
    // The simulator's script (another origin) and its verify call are allowed on this page only.
    pages::allow_jssdk(&mut res, Some(sim));
    Ok(res)
}

//! Capabilities, one folder each: its `State` and `init`, its routes (`api` under `/api/v1`, `pages` at the top
//! level), its use cases (`service`, which speak no HTTP), its queries (`repo`) and its JSON views. Every channel —
//! the HTTP API, the CLI — calls the same service, so a rule exists once.
//!
//! This is the one file that names every slice: it builds their states from the platform, registers them with
//! actix, mounts their routes, starts their background jobs and merges their OpenAPI operations. A slice never
//! reaches into another slice's routes.

pub mod auth;
pub mod coupons;
pub mod jssdk;
pub mod merchants;
pub mod miniprogram;
pub mod outbox;
pub mod pay;
pub mod sandbox;
pub mod scan_login;
pub mod wechat_push;

use crate::configuration::Settings;
use crate::http::auth::AuthKeys;
use crate::http::metrics::Gauges;
use crate::http::openapi::{ApiDocument, Op};
use crate::platform::Platform;
use crate::platform::jobs::Jobs;
use crate::platform::secrets::ServerKeys;
use crate::platform::wechat::WechatApps;
use actix_web::web;
use std::sync::Arc;

/// Every slice's state, built once and shared by every worker.
#[derive(Clone)]
pub struct Slices {
    /// Authentication keys (the kernel's extractors read them).
    pub keys: web::Data<AuthKeys>,
    /// Login.
    pub auth: web::Data<auth::State>,
    /// Coupons and redemption.
    pub coupons: web::Data<coupons::State>,
    /// JS-SDK.
    pub jssdk: web::Data<jssdk::State>,
    /// Merchants, staff, campaigns.
    pub merchants: web::Data<merchants::State>,
    /// Mini-program login.
    pub miniprogram: web::Data<miniprogram::State>,
    /// Work owed to WeChat.
    pub outbox: web::Data<outbox::State>,
    /// WeChat Pay.
    pub pay: web::Data<pay::State>,
    /// The start page.
    pub sandbox: web::Data<sandbox::State>,
    /// Scan-to-login.
    pub scan_login: web::Data<scan_login::State>,
    /// WeChat's pushes.
    pub wechat_push: web::Data<wechat_push::State>,
    /// The capabilities' gauges in `/metrics`.
    pub gauges: web::Data<Gauges>,
    /// The OpenAPI document.
    pub openapi: web::Data<ApiDocument>,
}

impl std::fmt::Debug for Slices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slices")
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

/// Builds every slice's state on the platform and the WeChat apps.
pub fn init(
    platform: &Platform,
    apps: &WechatApps,
    settings: &Settings,
    secrets: &ServerKeys,
) -> Result<Slices, crate::db::DbError> {
    let sessions = auth::sessions(platform, settings);
    let admin_token = match (&settings.admin.token, settings.sandbox()) {
        (Some(t), _) if !t.is_empty() => Some(t.clone()),
        // Sandbox: the database's sandbox admin token, printed at start-up.
        (_, true) => secrets.sandbox_admin.clone().map(wechat_core::SecretString::new),
        _ => None,
    };
    let keys = Arc::new(AuthKeys::new(
        admin_token,
        &secrets.session_key,
        &platform.public_base_url,
        Arc::new(sessions.clone()),
    ));
    let signer = Arc::new(
        wechat_oauth::state::StateSigner::new(secrets.state_key.as_bytes())
            .map_err(|e| crate::db::DbError::Task(format!("the shared OAuth state key: {e}")))?,
    );
    let login = auth::web_login(platform, apps, signer.clone());
    let outbox = outbox::init(platform, apps, settings);
    Ok(Slices {
        auth: web::Data::new(auth::init(platform, apps, sessions.clone(), signer, keys.clone())),
        coupons: web::Data::new(coupons::init(
            platform,
            apps,
            settings,
            outbox.outbox.clone(),
            login.clone(),
            keys.clone(),
        )),
        jssdk: web::Data::new(jssdk::init(platform, apps, settings)),
        merchants: web::Data::new(merchants::init(platform, apps)),
        miniprogram: web::Data::new(miniprogram::init(platform, apps, sessions.clone())),
        pay: web::Data::new(pay::init(
            platform,
            apps,
            settings,
            sessions.clone(),
            keys.clone(),
            login,
        )),
        sandbox: web::Data::new(sandbox::init(platform, settings)),
        scan_login: web::Data::new(scan_login::init(platform, apps, settings, sessions, keys.clone())),
        wechat_push: web::Data::new(wechat_push::init(platform, apps, settings)),
        outbox: web::Data::new(outbox),
        gauges: web::Data::new(Gauges(vec![Arc::new(outbox::OutboxGauges(platform.clone()))])),
        openapi: web::Data::new(ApiDocument(crate::http::openapi::document(openapi_ops()).to_string())),
        keys: web::Data::from(keys),
    })
}

/// Starts every slice's background jobs.
pub fn start_jobs(slices: &Slices, jobs: &mut Jobs) {
    outbox::jobs(&slices.outbox, jobs);
    pay::jobs(&slices.pay, jobs);
    scan_login::jobs(&slices.scan_login, jobs);
    wechat_push::jobs(&slices.wechat_push, jobs);
    auth::jobs(&slices.auth.sessions, jobs);
}

/// Registers every slice's state as application data.
pub fn data(cfg: &mut web::ServiceConfig, slices: &Slices) {
    cfg.app_data(slices.keys.clone())
        .app_data(slices.auth.clone())
        .app_data(slices.coupons.clone())
        .app_data(slices.jssdk.clone())
        .app_data(slices.merchants.clone())
        .app_data(slices.miniprogram.clone())
        .app_data(slices.outbox.clone())
        .app_data(slices.pay.clone())
        .app_data(slices.sandbox.clone())
        .app_data(slices.scan_login.clone())
        .app_data(slices.wechat_push.clone())
        .app_data(slices.gauges.clone())
        .app_data(slices.openapi.clone());
}

/// Every slice's API, inside the one `/api/v1` scope (a second scope of that prefix would never be reached). The POS
/// route comes first: the router tries routes in order.
pub fn api(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/openapi.json").route(web::get().to(crate::http::openapi::serve)))
        .configure(coupons::api)
        .configure(merchants::api)
        .configure(outbox::api)
        .configure(auth::api)
        .configure(miniprogram::api)
        .configure(scan_login::api)
        .configure(jssdk::api)
        .configure(pay::api);
}

/// Every slice's pages and WeChat callbacks.
pub fn pages(cfg: &mut web::ServiceConfig) {
    cfg.configure(sandbox::pages)
        .configure(auth::pages)
        .configure(scan_login::pages)
        .configure(jssdk::pages)
        .configure(pay::pages)
        .configure(coupons::pages)
        .configure(wechat_push::pages);
}

/// Every API operation, for `/api/v1/openapi.json`.
pub fn openapi_ops() -> Vec<Op> {
    [
        coupons::openapi::ops(),
        merchants::openapi::ops(),
        outbox::openapi::ops(),
        auth::openapi::ops(),
        miniprogram::openapi::ops(),
        scan_login::openapi::ops(),
        jssdk::openapi::ops(),
        pay::openapi::ops(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

#[cfg(test)]
mod tests {
    use super::openapi_ops;
    use crate::http::openapi::document;

    /// Every `(method, path)` the capabilities' `api` functions register, read from their source.
    fn served() -> std::collections::BTreeSet<(String, String)> {
        let sources = [
            include_str!("coupons/mod.rs"),
            include_str!("merchants/mod.rs"),
            include_str!("outbox/mod.rs"),
            include_str!("auth/mod.rs"),
            include_str!("miniprogram/mod.rs"),
            include_str!("scan_login/mod.rs"),
            include_str!("jssdk/mod.rs"),
            include_str!("pay/mod.rs"),
        ];
        let mut out = std::collections::BTreeSet::new();
        for src in sources {
            let Some(start) = src.find("pub fn api(cfg: &mut web::ServiceConfig) {") else {
                continue;
            };
            let body = &src[start..];
            let body = &body[..body.find("\n}\n").unwrap_or(body.len())];
            for chunk in body.split("web::resource(\"").skip(1) {
                let path = &chunk[..chunk.find('"').unwrap()];
                let until = chunk.find("web::resource(").unwrap_or(chunk.len());
                for m in ["get", "post", "put", "delete", "patch"] {
                    if chunk[..until].contains(&format!("web::{m}()")) {
                        out.insert((m.to_owned(), format!("/api/v1{path}")));
                    }
                }
            }
        }
        out
    }

    #[test]
    fn every_served_api_route_is_documented_and_back() {
        let doc = document(openapi_ops());
        let documented: std::collections::BTreeSet<(String, String)> = doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, item)| item.as_object().unwrap().keys().map(move |m| (m.clone(), path.clone())))
            .collect();
        let served = served();
        assert!(served.len() >= 30, "{served:?}");
        let undocumented: Vec<_> = served.difference(&documented).collect();
        assert!(
            undocumented.is_empty(),
            "served but not in the OpenAPI document: {undocumented:?}"
        );
        let unserved: Vec<_> = documented.difference(&served).collect();
        assert!(unserved.is_empty(), "documented but not served: {unserved:?}");
    }

    #[test]
    fn the_document_is_openapi_3_with_schemas_from_the_body_types() {
        let doc = document(openapi_ops());
        assert_eq!(doc["openapi"], "3.1.0");
        let redeem = &doc["paths"]["/api/v1/redemptions"]["post"];
        assert_eq!(
            redeem["requestBody"]["content"]["application/json"]["schema"]["properties"]["code"]["type"],
            "string"
        );
        assert!(
            redeem["responses"]["409"]["description"]
                .as_str()
                .unwrap()
                .contains("already_redeemed")
        );
        let campaign =
            &doc["paths"]["/api/v1/campaigns"]["post"]["requestBody"]["content"]["application/json"]["schema"];
        assert!(campaign["properties"]["price_fen"].is_object(), "{campaign}");
        assert_eq!(campaign["additionalProperties"], false, "{campaign}");
        for (path, item) in doc["paths"].as_object().unwrap() {
            assert!(path.starts_with("/api/v1/"), "{path}");
            for (method, op) in item.as_object().unwrap() {
                assert!(op["responses"]["429"].is_object(), "{method} {path}");
            }
        }
    }
}

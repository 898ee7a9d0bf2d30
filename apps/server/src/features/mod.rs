//! Capabilities, one folder each: its `State` and `init`, its routes (`api` under `/api/v1`, `pages` at the top
//! level), its use cases (`service`, which speak no HTTP), its queries (`repo`) and its JSON views. Every channel —
//! the HTTP API, the CLI — calls the same service, so a rule exists once.
//!
//! This is the one file that names every slice: `init` mounts each (its state, routes, jobs and API document) in
//! the order routes are tried; registering, routing, starting jobs and merging the document then walk that list.
//! A slice never reaches into another slice's routes.

pub mod auth;
pub mod console;
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
use std::any::Any;
use std::sync::Arc;

/// A mounted slice: its state, its routes, its jobs and its API document, as `init` registered them.
struct Mounted {
    /// The `web::Data<State>` (type-erased; [`Slices::get`] gets it back).
    state: Box<dyn Any + Send + Sync>,
    /// Registers the state as application data.
    data: Box<dyn Fn(&mut web::ServiceConfig) + Send + Sync>,
    api: fn(&mut web::ServiceConfig),
    pages: fn(&mut web::ServiceConfig),
    jobs: Box<dyn Fn(&mut Jobs) + Send + Sync>,
    openapi: fn() -> Vec<Op>,
}

fn none(_: &mut web::ServiceConfig) {}

/// A slice being mounted: `Slice::new(state).api(x::api).pages(x::pages).jobs(x::jobs).openapi(x::openapi::ops)`.
struct Slice<S: 'static> {
    state: web::Data<S>,
    api: fn(&mut web::ServiceConfig),
    pages: fn(&mut web::ServiceConfig),
    jobs: fn(&S, &mut Jobs),
    openapi: fn() -> Vec<Op>,
}

impl<S: Send + Sync + 'static> Slice<S> {
    fn new(state: S) -> Slice<S> {
        Slice {
            state: web::Data::new(state),
            api: none,
            pages: none,
            jobs: |_, _| {},
            openapi: Vec::new,
        }
    }

    fn api(self, api: fn(&mut web::ServiceConfig)) -> Self {
        Slice { api, ..self }
    }

    fn pages(self, pages: fn(&mut web::ServiceConfig)) -> Self {
        Slice { pages, ..self }
    }

    fn jobs(self, jobs: fn(&S, &mut Jobs)) -> Self {
        Slice { jobs, ..self }
    }

    fn openapi(self, openapi: fn() -> Vec<Op>) -> Self {
        Slice { openapi, ..self }
    }

    fn mounted(self) -> Mounted {
        let (for_data, for_jobs, jobs) = (self.state.clone(), self.state.clone(), self.jobs);
        Mounted {
            state: Box::new(self.state),
            data: Box::new(move |cfg| {
                cfg.app_data(for_data.clone());
            }),
            api: self.api,
            pages: self.pages,
            jobs: Box::new(move |j| jobs(&for_jobs, j)),
            openapi: self.openapi,
        }
    }
}

/// Every slice, mounted in order (the order routes are tried in), and the kernel's shared data.
#[derive(Clone)]
pub struct Slices {
    mounted: Arc<Vec<Mounted>>,
    /// Authentication keys (the kernel's extractors read them).
    pub keys: web::Data<AuthKeys>,
    /// The capabilities' gauges in `/metrics`.
    pub gauges: web::Data<Gauges>,
    /// The OpenAPI document.
    pub openapi: web::Data<ApiDocument>,
}

impl std::fmt::Debug for Slices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slices")
            .field("mounted", &self.mounted.len())
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl Slices {
    /// The state of the slice whose `State` is `S` (for start-up's upgrade hook, tests and embedders).
    pub fn get<S: 'static>(&self) -> Option<web::Data<S>> {
        self.mounted
            .iter()
            .find_map(|m| m.state.downcast_ref::<web::Data<S>>())
            .cloned()
    }
}

/// Builds every slice's state on the platform and the WeChat apps, in the order their routes are tried. A new
/// capability is one `mod` line above and one `mount` line here.
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
    let (p, k, wake) = (platform, &keys, outbox.outbox.clone());
    // The router tries routes in order, and each pattern with a `{parameter}` costs a regex match: the hot routes
    // come first — the POS route, then the JS-SDK config (one static route, asked for on every WeChat page load).
    let mounted: Vec<Mounted> = vec![
        Slice::new(coupons::init(p, apps, settings, wake, login.clone(), k.clone()))
            .api(coupons::api)
            .pages(coupons::pages)
            .openapi(coupons::openapi::ops)
            .mounted(),
        Slice::new(jssdk::init(p, apps, settings))
            .api(jssdk::api)
            .pages(jssdk::pages)
            .openapi(jssdk::openapi::ops)
            .mounted(),
        Slice::new(merchants::init(p, apps))
            .api(merchants::api)
            .openapi(merchants::openapi::ops)
            .mounted(),
        Slice::new(console::init(p, apps, sessions.clone(), k.clone()))
            .api(console::api)
            .pages(console::pages)
            .openapi(console::openapi::ops)
            .mounted(),
        Slice::new(outbox)
            .api(outbox::api)
            .jobs(outbox::jobs)
            .openapi(outbox::openapi::ops)
            .mounted(),
        Slice::new(auth::init(p, apps, sessions.clone(), signer, k.clone()))
            .api(auth::api)
            .pages(auth::pages)
            .jobs(|s, j| auth::jobs(&s.sessions, j))
            .openapi(auth::openapi::ops)
            .mounted(),
        Slice::new(miniprogram::init(p, apps, sessions.clone()))
            .api(miniprogram::api)
            .openapi(miniprogram::openapi::ops)
            .mounted(),
        Slice::new(scan_login::init(p, apps, settings, sessions.clone(), k.clone()))
            .api(scan_login::api)
            .pages(scan_login::pages)
            .jobs(scan_login::jobs)
            .openapi(scan_login::openapi::ops)
            .mounted(),
        Slice::new(pay::init(p, apps, settings, sessions, k.clone(), login))
            .api(pay::api)
            .pages(pay::pages)
            .jobs(pay::jobs)
            .openapi(pay::openapi::ops)
            .mounted(),
        Slice::new(sandbox::init(p, settings)).pages(sandbox::pages).mounted(),
        Slice::new(wechat_push::init(p, apps, settings))
            .pages(wechat_push::pages)
            .jobs(wechat_push::jobs)
            .mounted(),
    ];
    let ops = mounted.iter().flat_map(|m| (m.openapi)()).collect();
    Ok(Slices {
        mounted: Arc::new(mounted),
        gauges: web::Data::new(Gauges(vec![Arc::new(outbox::OutboxGauges(platform.clone()))])),
        openapi: web::Data::new(ApiDocument(crate::http::openapi::document(ops).to_string())),
        keys: web::Data::from(keys),
    })
}

/// The scan-to-login state the HTTP service's upgrade hook serves login sockets with.
pub fn sockets(slices: &Slices) -> std::io::Result<web::Data<scan_login::State>> {
    slices
        .get::<scan_login::State>()
        .ok_or_else(|| std::io::Error::other("the scan-to-login capability is not mounted"))
}

/// First step of a graceful stop: login sockets close with 1001 (their pages reconnect elsewhere).
pub fn close_sockets(slices: &Slices) -> usize {
    slices.get::<scan_login::State>().map_or(0, |s| s.login_hub.shutdown())
}

/// Waits (at most `limit`) until this instance's login sockets have closed, after [`close_sockets`].
pub async fn sockets_closed(slices: &Slices, limit: std::time::Duration) {
    let Some(state) = slices.get::<scan_login::State>() else {
        return;
    };
    let until = std::time::Instant::now() + limit;
    while state.sockets.open() > 0 && std::time::Instant::now() < until {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Last step of a graceful stop, after the background jobs stopped: the outbox leases this instance held are handed
/// back, so another instance delivers that work now rather than when the leases run out.
pub async fn release_work(slices: &Slices, db: &crate::db::Db) -> usize {
    let Some(state) = slices.get::<outbox::State>() else {
        return 0;
    };
    match state.outbox.release_leases(db).await {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "could not hand back outbox leases (they run out by themselves)");
            0
        }
    }
}

/// Starts every slice's background jobs.
pub fn start_jobs(slices: &Slices, jobs: &mut Jobs) {
    for m in slices.mounted.iter() {
        (m.jobs)(jobs);
    }
}

/// Registers every slice's state (and the kernel's shared data) as application data.
pub fn data(cfg: &mut web::ServiceConfig, slices: &Slices) {
    cfg.app_data(slices.keys.clone())
        .app_data(slices.gauges.clone())
        .app_data(slices.openapi.clone());
    for m in slices.mounted.iter() {
        (m.data)(cfg);
    }
}

/// Every slice's API, inside the one `/api/v1` scope (a second scope of that prefix would never be reached).
pub fn api(cfg: &mut web::ServiceConfig, slices: &Slices) {
    cfg.service(web::resource("/openapi.json").route(web::get().to(crate::http::openapi::serve)));
    for m in slices.mounted.iter() {
        cfg.configure(m.api);
    }
}

/// Every slice's pages and WeChat callbacks.
pub fn pages(cfg: &mut web::ServiceConfig, slices: &Slices) {
    for m in slices.mounted.iter() {
        cfg.configure(m.pages);
    }
}

/// Every API operation, for `/api/v1/openapi.json` (in the slices' order; tests build the document from it).
#[cfg(test)]
fn openapi_ops() -> Vec<Op> {
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

//! The `/_sim` control API: clock, faults, counters, reset, apps.

use crate::state::{Fault, SimHandle};
use actix_web::{HttpResponse, web};
use serde::Deserialize;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/_sim/clock", web::get().to(clock))
        .route("/_sim/clock/advance", web::post().to(advance))
        .route("/_sim/faults", web::post().to(add_fault))
        .route("/_sim/faults", web::get().to(list_faults))
        .route("/_sim/faults", web::delete().to(clear_faults))
        .route("/_sim/counters", web::get().to(counters))
        .route("/_sim/reset", web::post().to(reset))
        .route("/_sim/apps", web::post().to(add_app))
        .route("/_sim/apps", web::get().to(list_apps));
}

/// The standard wxkit error envelope, for the control API (the WeChat endpoints answer in WeChat's own shape).
pub(crate) fn bad_request(code: &str, message: impl Into<String>) -> HttpResponse {
    HttpResponse::BadRequest().json(serde_json::json!({"error": {"code": code, "message": message.into()}}))
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, HttpResponse> {
    serde_json::from_slice(body).map_err(|e| bad_request("invalid_json", format!("invalid JSON body: {e}")))
}

async fn clock(sim: web::Data<SimHandle>) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"now": sim.now()}))
}

#[derive(Deserialize)]
struct Advance {
    seconds: i64,
}

async fn advance(body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    let advance: Advance = match parse(&body) {
        Ok(a) => a,
        Err(r) => return r,
    };
    if advance.seconds < 0 {
        return bad_request("invalid_seconds", "the simulated clock only moves forward");
    }
    HttpResponse::Ok().json(serde_json::json!({"now": sim.advance_clock(advance.seconds)}))
}

async fn add_fault(body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    let fault: Fault = match parse(&body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    if !fault.path.starts_with('/') || fault.path.starts_with("/_sim") {
        return bad_request(
            "invalid_path",
            "path must be a WeChat endpoint path such as /cgi-bin/token",
        );
    }
    if fault.count == 0 {
        return bad_request("invalid_count", "count must be at least 1");
    }
    if fault.errcode.is_none() && fault.http_status.is_none() && fault.delay_ms.is_none() {
        return bad_request("empty_fault", "give at least one of errcode, http_status, delay_ms");
    }
    if let Some(status) = fault.http_status
        && !(100..=599).contains(&status)
    {
        return bad_request("invalid_status", "http_status must be 100..=599");
    }
    sim.inject(fault.clone());
    HttpResponse::Created().json(fault)
}

async fn list_faults(sim: web::Data<SimHandle>) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"faults": sim.world().faults.clone()}))
}

async fn clear_faults(sim: web::Data<SimHandle>) -> HttpResponse {
    sim.world().faults.clear();
    HttpResponse::NoContent().finish()
}

async fn counters(sim: web::Data<SimHandle>) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"counters": sim.counters()}))
}

async fn reset(sim: web::Data<SimHandle>) -> HttpResponse {
    sim.reset();
    HttpResponse::NoContent().finish()
}

#[derive(Deserialize)]
struct NewApp {
    appid: String,
    secret: String,
}

async fn add_app(body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    let app: NewApp = match parse(&body) {
        Ok(a) => a,
        Err(r) => return r,
    };
    if app.appid.is_empty() || app.secret.is_empty() {
        return bad_request("invalid_app", "appid and secret must not be empty");
    }
    sim.add_app(&app.appid, &app.secret);
    HttpResponse::Created().json(serde_json::json!({"appid": app.appid}))
}

async fn list_apps(sim: web::Data<SimHandle>) -> HttpResponse {
    let apps: Vec<String> = sim.world().apps.keys().cloned().collect();
    HttpResponse::Ok().json(serde_json::json!({"apps": apps}))
}

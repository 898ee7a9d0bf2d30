//! `wxkit coupon redeem`: the running server's POS API, called as a till calls it (on purpose an HTTP client: it
//! stands in for a till), and the HTTP helper `wxkit pay refund` shares.

use super::CliError;
use super::table::print_json;
use crate::configuration::Settings;

/// The running server (its address) and an admin token for it: the settings' (`server.public_base_url`,
/// `admin.token`), else what the server recorded in its database — the address it answers on (a port picked at
/// start, `--addr`) and the sandbox's admin token. Falls back to `http://server.addr` and no token.
pub(super) async fn running_server(settings: &Settings) -> (String, Option<String>) {
    use crate::platform::secrets::{PUBLIC_BASE_URL, SANDBOX_ADMIN_TOKEN, value};
    let url = settings.database.url.clone();
    let recorded = tokio::task::spawn_blocking(move || {
        let backend = crate::db::Backend::from_url(&url).ok()?;
        if !backend.exists() {
            return None;
        }
        let mut conn = backend.establish().ok()?;
        Some((
            value(&mut conn, PUBLIC_BASE_URL).ok().flatten(),
            value(&mut conn, SANDBOX_ADMIN_TOKEN).ok().flatten(),
        ))
    })
    .await
    .ok()
    .flatten()
    .unwrap_or((None, None));
    let base = settings
        .server
        .public_base_url
        .clone()
        .or(recorded.0)
        .unwrap_or_else(|| format!("http://{}", settings.server.addr));
    let token = settings
        .admin
        .token
        .as_ref()
        .map(|t| t.secret().to_owned())
        .or(recorded.1);
    (base.trim_end_matches('/').to_owned(), token)
}

/// POSTs `body` as JSON to the running server (`server`, or the settings' public URL) with a bearer token; the status
/// and the JSON answer (null when it is not JSON). A server that cannot be reached is an I/O error (exit 1).
pub(super) async fn post_to_server(
    settings: &Settings,
    server: Option<String>,
    path: &str,
    token: &str,
    body: &serde_json::Value,
) -> Result<(reqwest::StatusCode, serde_json::Value), CliError> {
    let base = match server {
        Some(s) => s,
        None => running_server(settings).await.0,
    };
    let base = base.trim_end_matches('/');
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(|e| CliError::Io(std::io::Error::other(e.to_string())))?;
    let response = http
        .post(format!("{base}{path}"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .map_err(|e| CliError::Io(std::io::Error::other(format!("cannot reach the server at {base}: {e}"))))?;
    let status = response.status();
    Ok((status, response.json().await.unwrap_or_default()))
}

/// `wxkit coupon redeem`: the running server's POS API, as a staff tool calls it.
pub(super) async fn redeem_via_pos(
    settings: &Settings,
    server: Option<String>,
    code: &str,
    token: &str,
    json: bool,
) -> Result<(), CliError> {
    if token.trim().is_empty() {
        return Err(CliError::Usage(
            "--token (or WXKIT_STAFF_TOKEN) is the staff member's POS token".into(),
        ));
    }
    let (status, body) = post_to_server(
        settings,
        server,
        "/api/v1/redemptions",
        token.trim(),
        &serde_json::json!({"code": code}),
    )
    .await?;
    if status.is_success() {
        if json {
            return print_json(&body);
        }
        // Beijing time, labelled, as the refusals say it.
        let at = body["redeemed_at"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| format!("{} (UTC+8)", crate::platform::time::beijing(t.timestamp_millis())))
            .unwrap_or_default();
        println!(
            "redeemed {} ({}) at {at} by {}",
            body["coupon"]["code"].as_str().unwrap_or_default(),
            body["coupon"]["title"].as_str().unwrap_or_default(),
            body["redeemed_by"]["name"].as_str().unwrap_or_default()
        );
        return Ok(());
    }
    if json {
        print_json(&body)?;
    }
    Err(CliError::Invalid(format!(
        "not redeemed ({} {}): {}",
        status.as_u16(),
        body["error"]["code"].as_str().unwrap_or("error"),
        body["error"]["message"].as_str().unwrap_or("no explanation")
    )))
}

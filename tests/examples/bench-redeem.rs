//! POS redemption throughput over HTTP, on SQLite and PostgreSQL, side by side with pgbench running a single-row
//! conditional UPDATE on the same PostgreSQL server, in one run.
//!
//! `cargo run --release -p wxkit-e2e --example bench-redeem -- [CLIENTS] [REDEMPTIONS] [PGBENCH_SECONDS]`
//! (defaults 32, 4000, 10). Prints a Markdown table.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;
use wxkit_e2e::{DbKind, TEST_ADMIN_TOKEN, TestDatabase, spawn_sim, start_server_with};

struct Row {
    backend: &'static str,
    clients: usize,
    requests: usize,
    seconds: f64,
    per_second: f64,
}

async fn http_run(kind: DbKind, clients: usize, total: usize) -> Option<Row> {
    let db = TestDatabase::create(kind)?;
    let sim = spawn_sim().await;
    let mut settings = wxkit_e2e::test_settings(&db.url, &sim);
    // As many database connections as clients, like pgbench's one connection per client.
    settings.database.pool_size = std::env::var("BENCH_POOL")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(clients as u32);
    let (base, state) = start_server_with(settings).await;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()
        .unwrap();
    let admin = |path: &str, body: serde_json::Value| {
        http.post(format!("{base}{path}"))
            .bearer_auth(TEST_ADMIN_TOKEN)
            .json(&body)
            .send()
    };
    let merchant: serde_json::Value = admin("/api/v1/merchants", json!({"name": "bench"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let staff: serde_json::Value = admin(
        "/api/v1/staff",
        json!({"merchant_id": merchant["id"], "openid": "o-bench", "name": "bench"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let campaign: serde_json::Value = admin(
        "/api/v1/campaigns",
        json!({"merchant_id": merchant["id"], "title": "bench"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let campaign_id = campaign["id"].as_i64().unwrap();
    // Issue the coupons straight through the repository (issuing speed is not what is measured).
    let pool = state.db.clone();
    let codes: Vec<String> = tokio::task::spawn_blocking(move || {
        let mut conn = pool.get().unwrap();
        (0..total)
            .map(|_| {
                wxkit::db::coupons::issue_coupon(&mut conn, campaign_id, None, chrono::Utc::now().timestamp_millis())
                    .unwrap()
                    .0
                    .code
            })
            .collect()
    })
    .await
    .unwrap();
    if std::env::var("BENCH_WRK").is_ok() {
        return wrk_run(kind, clients, &base, staff["api_token"].as_str().unwrap(), &codes);
    }
    let codes = Arc::new(codes);
    let next = Arc::new(AtomicUsize::new(0));
    let token = staff["api_token"].as_str().unwrap().to_owned();
    // Warm up the connection pools.
    for _ in 0..clients {
        let _ = http.get(format!("{base}/healthz")).send().await;
    }
    let start = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let (http, base, token, codes, next) =
                (http.clone(), base.clone(), token.clone(), codes.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(code) = codes.get(i) else { break };
                    let r = http
                        .post(format!("{base}/api/v1/redemptions"))
                        .bearer_auth(&token)
                        .json(&json!({"code": code}))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 200);
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    let seconds = start.elapsed().as_secs_f64();
    Some(Row {
        backend: if kind == DbKind::Sqlite {
            "SQLite (HTTP POST /api/v1/redemptions)"
        } else {
            "PostgreSQL (HTTP POST /api/v1/redemptions)"
        },
        clients,
        requests: total,
        seconds,
        per_second: total as f64 / seconds,
    })
}

/// The same requests from wrk (a C load generator in its own process), so that the client's cost is not counted
/// against the server: each wrk thread takes every n-th code, so no code is redeemed twice.
fn wrk_run(kind: DbKind, clients: usize, base: &str, token: &str, codes: &[String]) -> Option<Row> {
    let dir = tempfile::tempdir().ok()?;
    let codes_file = dir.path().join("codes.txt");
    std::fs::write(&codes_file, codes.join("\n")).ok()?;
    let script = dir.path().join("redeem.lua");
    std::fs::write(
        &script,
        format!(
            r#"local codes = {{}}
for line in io.lines("{}") do codes[#codes + 1] = line end
local threads = 2
local counter = 0
function setup(thread) thread:set("id", counter); counter = counter + 1 end
function init(args) n = 0 end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {token}"
function request()
  local i = id + 1 + n * threads
  n = n + 1
  if i > #codes then i = ((i - 1) % #codes) + 1 end
  return wrk.format(nil, "/api/v1/redemptions", nil, '{{"code":"' .. codes[i] .. '"}}')
end
"#,
            codes_file.display()
        ),
    )
    .ok()?;
    let out = std::process::Command::new("wrk")
        .args(["-t2", &format!("-c{clients}"), "-d3s", "-s"])
        .arg(&script)
        .arg(base)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let rps: f64 = text
        .lines()
        .find(|l| l.starts_with("Requests/sec:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    let total: usize = text
        .lines()
        .find(|l| l.contains("requests in"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    if let Some(line) = text.lines().find(|l| l.contains("Non-2xx")) {
        eprintln!("wrk: {line} (codes reused: issue more coupons)");
    }
    Some(Row {
        backend: if kind == DbKind::Sqlite {
            "SQLite (HTTP, wrk load)"
        } else {
            "PostgreSQL (HTTP, wrk load)"
        },
        clients,
        requests: total,
        seconds: 3.0,
        per_second: rps,
    })
}

fn pgbench(clients: usize, seconds: u64) -> Option<(f64, String)> {
    let admin = wxkit_e2e::postgres_admin_url()?;
    let bin = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path().join("bin/pgbench"))
        .find(|p| p.exists())?;
    let db = TestDatabase::create(DbKind::Postgres)?;
    let url = url::Url::parse(&db.url).ok()?;
    let dbname = url.path().trim_start_matches('/').to_owned();
    let setup = "CREATE TABLE bench_coupons (id BIGINT PRIMARY KEY, status TEXT NOT NULL, redeemed_at BIGINT, version BIGINT NOT NULL DEFAULT 0);\
                 INSERT INTO bench_coupons (id, status) SELECT g, 'issued' FROM generate_series(1, 1000000) g;";
    {
        use diesel::Connection;
        use diesel::connection::SimpleConnection;
        let mut conn = diesel::PgConnection::establish(&db.url).ok()?;
        conn.batch_execute(setup).ok()?;
    }
    let script = tempfile::NamedTempFile::new().ok()?;
    std::fs::write(
        script.path(),
        "\\set id random(1, 1000000)\nUPDATE bench_coupons SET status = 'redeemed', redeemed_at = 1, version = version + 1 WHERE id = :id AND status = 'issued';\n",
    )
    .ok()?;
    let host = url.host_str().unwrap_or("127.0.0.1").to_owned();
    let port = url.port().unwrap_or(5432).to_string();
    let user = if url.username().is_empty() {
        "postgres".to_owned()
    } else {
        url.username().to_owned()
    };
    let out = std::process::Command::new(bin)
        .args([
            "-n",
            "-c",
            &clients.to_string(),
            "-j",
            "2",
            "-T",
            &seconds.to_string(),
            "-f",
        ])
        .arg(script.path())
        .args(["-h", &host, "-p", &port, "-U", &user, &dbname])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let tps = text
        .lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.trim_start_matches("tps = ").split_whitespace().next())
        .and_then(|v| v.parse().ok())?;
    let _ = admin;
    Some((tps, text))
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    wxkit::telemetry::init("error");
    let mut args = std::env::args().skip(1);
    let clients: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(32);
    let total: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(4000);
    let pg_seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);

    let sqlite = http_run(DbKind::Sqlite, clients, total).await;
    let postgres = http_run(DbKind::Postgres, clients, total).await;
    let pg = tokio::task::spawn_blocking(move || pgbench(clients, pg_seconds))
        .await
        .unwrap();

    println!(
        "POS redemption throughput, {clients} concurrent clients, {total} redemptions per backend (release build)\n"
    );
    println!("| what | clients | operations | seconds | per second | vs pgbench |");
    println!("|---|---:|---:|---:|---:|---:|");
    let pg_tps = pg.as_ref().map(|(t, _)| *t);
    for row in [sqlite, postgres].into_iter().flatten() {
        let ratio = pg_tps
            .map(|t| format!("{:.0} %", 100.0 * row.per_second / t))
            .unwrap_or_else(|| "–".into());
        println!(
            "| {} | {} | {} | {:.2} | {:.0} | {} |",
            row.backend, row.clients, row.requests, row.seconds, row.per_second, ratio
        );
    }
    match pg {
        Some((tps, _)) => println!(
            "| pgbench: single-row conditional UPDATE on the same PostgreSQL | {clients} | {pg_seconds} s run | {pg_seconds} | {tps:.0} | 100 % |"
        ),
        None => println!("| pgbench | – | – | – | unavailable | – |"),
    }
}

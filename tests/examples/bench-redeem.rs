//! POS redemption throughput over HTTP, on SQLite and PostgreSQL, side by side with pgbench running a single-row
//! conditional UPDATE on the same PostgreSQL server, in one run.
//!
//! `cargo run --release -p wxkit-e2e --example bench-redeem -- [CLIENTS] [SECONDS] [PGBENCH_SECONDS] [ROUNDS]`
//! (defaults 32, 5, 10, 3). `BENCH_WRK=1` drives the HTTP load with wrk (its own process) instead of an in-process
//! reqwest client; `BENCH_SLOTS=N` sets `database.redeem_batch_slots`. Every round measures every row once; prints a Markdown table with one line per round and the
//! medians (this 2-core machine's throughput drifts by ±15 % between runs, pgbench's included).
//!
//! Rows: SQLite; PostgreSQL with POS batching off (`database.redeem_batch_max = 1`: one prepared statement per
//! redemption); PostgreSQL as configured by default (batched); pgbench in its default simple-query mode and in
//! prepared mode. Every HTTP row is checked against the database: the redemption rows written must match the 200s
//! counted (every request uses a fresh coupon, so every answer must be 200).
//!
//! Built with `--features mysql`, a second table: the same HTTP load on MariaDB/MySQL — per attempt
//! (`database.redeem_batch_max = 1`) and with default settings — beside `mysqlslap` running the same single-row
//! conditional UPDATE from the same number of clients on the same server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use diesel::prelude::*;

// The allocator of the `wxkit` binary, so that the in-process server runs as `wxkit serve` does.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use wxkit_e2e::{DbKind, TEST_ADMIN_TOKEN, TestDatabase, spawn_sim, start_server_with};

struct Row {
    per_second: f64,
    mean_batch: Option<f64>,
    /// Median and 99th-percentile request latency, ms.
    p50_ms: f64,
    p99_ms: f64,
}

/// What a load run measured.
struct Load {
    ok: usize,
    seconds: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// The `q`-quantile of sorted values.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Coupons issued straight into the database, in one transaction (issuing speed is not what is measured).
fn issue_coupons(pool: &wxkit::db::DbPool, campaign_id: i64, n: usize) -> Vec<String> {
    use wxkit::db::schema::coupons;
    let mut conn = pool.get().unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let codes: Vec<String> = (0..n)
        .map(|_| redemption_core::CouponCode::generate().as_str().to_owned())
        .collect();
    conn.transaction::<_, diesel::result::Error, _>(|conn| {
        for code in &codes {
            diesel::insert_into(coupons::table)
                .values((
                    coupons::campaign_id.eq(campaign_id),
                    coupons::code.eq(code),
                    coupons::status.eq("issued"),
                    coupons::version.eq(0i64),
                    coupons::created_at.eq(now),
                ))
                .execute(conn)?;
        }
        Ok(())
    })
    .unwrap();
    codes
}

fn redemption_rows(pool: &wxkit::db::DbPool) -> i64 {
    wxkit::db::schema::redemptions::table
        .count()
        .get_result(&mut **pool.get().unwrap())
        .unwrap()
}

async fn http_run(kind: DbKind, what: &str, batch_max: Option<u32>, clients: usize, seconds: u64) -> Option<Row> {
    let db = TestDatabase::create(kind)?;
    let sim = spawn_sim().await;
    let mut settings = wxkit_e2e::test_settings(&db.url, &sim);
    // As many database connections as clients, like pgbench's one connection per client.
    settings.database.pool_size = clients as u32;
    if let Some(max) = batch_max {
        settings.database.redeem_batch_max = max;
    }
    // `BENCH_SLOTS=N` sets database.redeem_batch_slots (default: one per core, see startup.rs).
    settings.database.redeem_batch_slots = std::env::var("BENCH_SLOTS").ok().and_then(|v| v.parse().ok());
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
    // Enough fresh coupons for 25k redemptions/s over the run.
    let needed = 25_000 * seconds as usize;
    let pool = state.db.clone();
    let codes = tokio::task::spawn_blocking(move || issue_coupons(&pool, campaign_id, needed))
        .await
        .unwrap();
    let token = staff["api_token"].as_str().unwrap().to_owned();
    let before = state.pos.stats();
    let load = if std::env::var("BENCH_WRK").is_ok() {
        wrk_run(clients, seconds, &base, &token, &codes)?
    } else {
        reqwest_run(&http, clients, seconds, &base, &token, codes).await
    };
    let after = state.pos.stats();
    let ok = load.ok;
    // Let requests still in flight when the load stopped finish, then check the database.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pool = state.db.clone();
    let rows = tokio::task::spawn_blocking(move || redemption_rows(&pool))
        .await
        .unwrap() as usize;
    // wrk stops counting at its deadline: up to one request per connection may be redeemed but not counted.
    assert!(
        rows >= ok && rows <= ok + clients,
        "{what}: {ok} redemptions answered 200 but {rows} redemption rows written"
    );
    let batches = after.batches - before.batches;
    let Load {
        seconds: elapsed,
        p50_ms,
        p99_ms,
        ..
    } = load;
    Some(Row {
        per_second: ok as f64 / elapsed,
        p50_ms,
        p99_ms,
        mean_batch: (batches > 0).then(|| (after.attempts - before.attempts) as f64 / batches as f64),
    })
}

/// Load from `clients` reqwest tasks in this process for `seconds`; every answer must be 200.
async fn reqwest_run(
    http: &reqwest::Client,
    clients: usize,
    seconds: u64,
    base: &str,
    token: &str,
    codes: Vec<String>,
) -> Load {
    let codes = Arc::new(codes);
    let next = Arc::new(AtomicUsize::new(0));
    // Warm up the connection pool.
    for _ in 0..clients {
        let _ = http.get(format!("{base}/healthz")).send().await;
    }
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let (http, base, token, codes, next) = (
                http.clone(),
                base.to_owned(),
                token.to_owned(),
                codes.clone(),
                next.clone(),
            );
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(code) = codes.get(i) else { break };
                    let sent = Instant::now();
                    let r = http
                        .post(format!("{base}/api/v1/redemptions"))
                        .bearer_auth(&token)
                        .json(&json!({"code": code}))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 200);
                    latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for w in workers {
        latencies.extend(w.await.unwrap());
    }
    let seconds = start.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    Load {
        ok: latencies.len(),
        seconds,
        p50_ms: quantile(&latencies, 0.50),
        p99_ms: quantile(&latencies, 0.99),
    }
}

/// The same requests from wrk (a C load generator in its own process), so that the client's cost is not counted
/// against the server: each wrk thread takes every n-th code, so no code is redeemed twice.
fn wrk_run(clients: usize, seconds: u64, base: &str, token: &str, codes: &[String]) -> Option<Load> {
    // wrk needs at least one connection per thread.
    let threads = clients.clamp(1, 2);
    let dir = tempfile::tempdir().ok()?;
    let codes_file = dir.path().join("codes.txt");
    std::fs::write(&codes_file, codes.join("\n")).ok()?;
    let script = dir.path().join("redeem.lua");
    std::fs::write(
        &script,
        format!(
            r#"local codes = {{}}
for line in io.lines("{}") do codes[#codes + 1] = line end
local threads = {threads}
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
            codes_file.display(),
        ),
    )
    .ok()?;
    let out = std::process::Command::new("wrk")
        .args([
            &format!("-t{threads}"),
            &format!("-c{clients}"),
            &format!("-d{seconds}s"),
            "--latency",
            "-s",
        ])
        .arg(&script)
        .arg(base)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let total: usize = text
        .lines()
        .find(|l| l.contains("requests in"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let non_2xx: usize = text
        .lines()
        .find(|l| l.contains("Non-2xx"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert_eq!(non_2xx, 0, "every redemption must succeed (fresh coupons):\n{text}");
    // `--latency` prints "  50%    1.23ms" lines (units us, ms or s).
    let percentile = |label: &str| -> Option<f64> {
        let value = text
            .lines()
            .find(|l| l.trim_start().starts_with(label))?
            .split_whitespace()
            .nth(1)?;
        let (number, scale) = if let Some(v) = value.strip_suffix("us") {
            (v, 0.001)
        } else if let Some(v) = value.strip_suffix("ms") {
            (v, 1.0)
        } else {
            (value.strip_suffix('s')?, 1000.0)
        };
        number.parse::<f64>().ok().map(|n| n * scale)
    };
    Some(Load {
        ok: total - non_2xx,
        seconds: seconds as f64,
        p50_ms: percentile("50%")?,
        p99_ms: percentile("99%")?,
    })
}

fn pgbench(clients: usize, seconds: u64, mode: &str) -> Option<f64> {
    wxkit_e2e::postgres_admin_url()?;
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
        use diesel::connection::SimpleConnection;
        let mut conn = diesel::PgConnection::establish(&db.url).ok()?;
        conn.batch_execute(setup).ok()?;
        conn.batch_execute("VACUUM ANALYZE bench_coupons").ok()?;
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
            "-M",
            mode,
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
    text.lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.trim_start_matches("tps = ").split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    v.retain(|x| x.is_finite());
    v.sort_by(f64::total_cmp);
    (!v.is_empty()).then(|| v[v.len() / 2])
}

fn cell(v: Option<f64>) -> String {
    v.map_or_else(|| "–".into(), |v| format!("{v:.0}"))
}

fn pct(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.0} %", 100.0 * a / b),
        _ => "–".into(),
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    wxkit::telemetry::init("error");
    let mut args = std::env::args().skip(1);
    let clients: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(32);
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let pg_seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let load = if std::env::var("BENCH_WRK").is_ok() {
        "wrk"
    } else {
        "reqwest"
    };

    // Every round measures everything once, so that each ratio compares runs minutes apart at most.
    let mut table: Vec<[Option<f64>; 6]> = Vec::new();
    // (p50, p99) ms of the three HTTP rows, per round.
    let mut latency: Vec<[Option<(f64, f64)>; 3]> = Vec::new();
    // `BENCH_ONLY=mysql`: the MariaDB/MySQL table alone.
    let only_mysql = std::env::var("BENCH_ONLY").is_ok_and(|v| v == "mysql");
    for _ in 0..if only_mysql { 0 } else { rounds } {
        let sqlite = http_run(DbKind::Sqlite, "SQLite", None, clients, seconds).await;
        let off = http_run(DbKind::Postgres, "PostgreSQL, batching off", Some(1), clients, seconds).await;
        let on = http_run(DbKind::Postgres, "PostgreSQL, batched", None, clients, seconds).await;
        let simple = tokio::task::spawn_blocking(move || pgbench(clients, pg_seconds, "simple"))
            .await
            .unwrap();
        let prepared = tokio::task::spawn_blocking(move || pgbench(clients, pg_seconds, "prepared"))
            .await
            .unwrap();
        latency.push([&sqlite, &off, &on].map(|r| r.as_ref().map(|r| (r.p50_ms, r.p99_ms))));
        table.push([
            sqlite.as_ref().map(|r| r.per_second),
            off.as_ref().map(|r| r.per_second),
            on.as_ref().map(|r| r.per_second),
            on.as_ref().and_then(|r| r.mean_batch),
            simple,
            prepared,
        ]);
    }

    println!(
        "POS redemptions/s over HTTP ({clients} concurrent clients, {load} load, {seconds} s per run) and pgbench tps \
         ({clients} clients, {pg_seconds} s per mode) on the same PostgreSQL; release build\n"
    );
    println!(
        "| round | SQLite | PostgreSQL, batching off | PostgreSQL, batched (default) | mean batch | pgbench -M simple | pgbench -M prepared | batched vs simple | batched vs prepared |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (i, r) in table.iter().enumerate() {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            i + 1,
            cell(r[0]),
            cell(r[1]),
            cell(r[2]),
            r[3].map_or_else(|| "–".into(), |m| format!("{m:.1}")),
            cell(r[4]),
            cell(r[5]),
            pct(r[2], r[4]),
            pct(r[2], r[5]),
        );
    }
    let col = |k: usize| median(table.iter().filter_map(|r| r[k]).collect());
    let ratio = |num: usize, den: usize| {
        median(table.iter().filter_map(|r| Some(100.0 * r[num]? / r[den]?)).collect())
            .map_or_else(|| "–".into(), |v| format!("**{v:.0} %**"))
    };
    println!(
        "| median | {} | {} | {} | {} | {} | {} | {} | {} |",
        cell(col(0)),
        cell(col(1)),
        cell(col(2)),
        col(3).map_or_else(|| "–".into(), |m| format!("{m:.1}")),
        cell(col(4)),
        cell(col(5)),
        ratio(2, 4),
        ratio(2, 5),
    );

    println!("\nLatency of the same HTTP runs, ms (p50 / p99):\n");
    println!("| round | SQLite | PostgreSQL, batching off | PostgreSQL, batched (default) |");
    println!("|---|---:|---:|---:|");
    let lat = |v: Option<(f64, f64)>| v.map_or_else(|| "–".into(), |(a, b)| format!("{a:.2} / {b:.2}"));
    for (i, r) in latency.iter().enumerate() {
        println!("| {} | {} | {} | {} |", i + 1, lat(r[0]), lat(r[1]), lat(r[2]));
    }
    let med = |k: usize| {
        let p50 = median(latency.iter().filter_map(|r| r[k].map(|v| v.0)).collect());
        let p99 = median(latency.iter().filter_map(|r| r[k].map(|v| v.1)).collect());
        p50.zip(p99)
    };
    println!("| median | {} | {} | {} |", lat(med(0)), lat(med(1)), lat(med(2)));
    #[cfg(feature = "mysql")]
    mysql_table(clients, seconds, pg_seconds, rounds).await;
}

#[cfg(feature = "mysql")]
/// The MariaDB/MySQL rows: HTTP per attempt, HTTP with default settings, and mysqlslap, `rounds` times.
async fn mysql_table(clients: usize, seconds: u64, slap_seconds: u64, rounds: usize) {
    let mut table: Vec<[Option<f64>; 3]> = Vec::new();
    let mut latency: Vec<[Option<(f64, f64)>; 2]> = Vec::new();
    for _ in 0..rounds {
        let single = http_run(DbKind::Mysql, "MySQL, per attempt", Some(1), clients, seconds).await;
        let default = http_run(DbKind::Mysql, "MySQL, default", None, clients, seconds).await;
        let slap = tokio::task::spawn_blocking(move || mysqlslap(clients, slap_seconds))
            .await
            .unwrap();
        latency.push([&single, &default].map(|r| r.as_ref().map(|r| (r.p50_ms, r.p99_ms))));
        table.push([
            single.as_ref().map(|r| r.per_second),
            default.as_ref().map(|r| r.per_second),
            slap,
        ]);
    }
    println!(
        "\nPOS redemptions/s over HTTP on MariaDB/MySQL ({clients} clients, {seconds} s per run) and mysqlslap \
         updates/s ({clients} clients, ~{slap_seconds} s) on the same server\n"
    );
    println!(
        "| round | per attempt (batch max 1) | default settings | mysqlslap | per attempt vs mysqlslap | per attempt p50 / p99 ms | default p50 / p99 ms |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let lat = |v: Option<(f64, f64)>| v.map_or_else(|| "–".into(), |(a, b)| format!("{a:.2} / {b:.2}"));
    for (i, (r, l)) in table.iter().zip(&latency).enumerate() {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            i + 1,
            cell(r[0]),
            cell(r[1]),
            cell(r[2]),
            pct(r[0], r[2]),
            lat(l[0]),
            lat(l[1])
        );
    }
    let col = |k: usize| median(table.iter().filter_map(|r| r[k]).collect());
    let ratio = median(table.iter().filter_map(|r| Some(100.0 * r[0]? / r[2]?)).collect())
        .map_or_else(|| "–".into(), |v| format!("**{v:.0} %**"));
    let med = |k: usize| {
        let p50 = median(latency.iter().filter_map(|r| r[k].map(|v| v.0)).collect());
        let p99 = median(latency.iter().filter_map(|r| r[k].map(|v| v.1)).collect());
        p50.zip(p99)
    };
    println!(
        "| median | {} | {} | {} | {ratio} | {} | {} |",
        cell(col(0)),
        cell(col(1)),
        cell(col(2)),
        lat(med(0)),
        lat(med(1))
    );
}

#[cfg(feature = "mysql")]
/// `mysqlslap` (MariaDB's client package) running `UPDATE bench_coupons SET status = 'redeemed', redeemed_at = 1,
/// version = version + 1 WHERE id = <random> AND status = 'issued'` on a 1,000,000-row InnoDB table from `clients`
/// connections, autocommit (one transaction per UPDATE, as pgbench runs it); UPDATE statements executed per second,
/// counted by the server (`Com_update`).
fn mysqlslap(clients: usize, seconds: u64) -> Option<f64> {
    use diesel::connection::SimpleConnection;
    let db = TestDatabase::create(DbKind::Mysql)?;
    let url = url::Url::parse(&db.url).ok()?;
    let dbname = url.path().trim_start_matches('/').to_owned();
    let mut conn = diesel::MysqlConnection::establish(&db.url).ok()?;
    conn.batch_execute(
        "CREATE TABLE bench_coupons (id BIGINT PRIMARY KEY, status VARCHAR(16) NOT NULL, redeemed_at BIGINT, \
         version BIGINT NOT NULL DEFAULT 0) ENGINE=InnoDB; \
         INSERT INTO bench_coupons (id, status) SELECT seq, 'issued' FROM seq_1_to_1000000; ANALYZE TABLE bench_coupons",
    )
    .ok()?;
    let lines: String = (0..20_000)
        .map(|_| {
            format!(
                "UPDATE bench_coupons SET status = 'redeemed', redeemed_at = 1, version = version + 1 WHERE id = {} AND status = 'issued';\n",
                uuid::Uuid::new_v4().as_u128() % 1_000_000 + 1
            )
        })
        .collect();
    let file = tempfile::NamedTempFile::new().ok()?;
    std::fs::write(file.path(), lines).ok()?;
    #[derive(diesel::QueryableByName)]
    struct Status {
        #[diesel(sql_type = diesel::sql_types::Text, column_name = "Value")]
        value: String,
    }
    let updates = |c: &mut diesel::MysqlConnection| -> Option<f64> {
        let s: Status = diesel::sql_query("SHOW GLOBAL STATUS LIKE 'Com_update'")
            .get_result(c)
            .ok()?;
        s.value.parse().ok()
    };
    let before = updates(&mut conn)?;
    // About `seconds` of work at ~15k updates/s; the rate is what was counted over what it took.
    let per_client = (15_000 * seconds as usize / clients).max(100);
    let started = Instant::now();
    let out = std::process::Command::new("mysqlslap")
        .arg(format!("--host={}", url.host_str().unwrap_or("127.0.0.1")))
        .arg(format!("--port={}", url.port().unwrap_or(3306)))
        .arg(format!(
            "--user={}",
            if url.username().is_empty() {
                "root"
            } else {
                url.username()
            }
        ))
        .arg(format!("--create-schema={dbname}"))
        .arg(format!("--concurrency={clients}"))
        .arg("--iterations=1")
        .arg(format!("--number-of-queries={}", per_client * clients))
        .arg(format!("--query={}", file.path().display()))
        .arg("--delimiter=;")
        .output()
        .ok()?;
    let elapsed = started.elapsed().as_secs_f64();
    if !out.status.success() {
        eprintln!("mysqlslap failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    // mysqlslap's own timing of the queries (without its connects); the wall clock is the fallback.
    let timed = text
        .lines()
        .find(|l| l.contains("Average number of seconds to run all queries"))
        .and_then(|l| l.split(':').nth(1))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(elapsed);
    let after = updates(&mut conn)?;
    Some((after - before) / timed)
}

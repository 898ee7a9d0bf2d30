//! JS-SDK config and payment-notify benchmarks against the `wxkit` binary as a child process (release build), with
//! the simulator in this process:
//!
//! 1. `GET /api/v1/jssdk/config` requests/s and latency at C connections (wrk), side by side in one run with the
//!    same handler in Node/Express (`tests/bench-node/jssdk.js`: the same checks and sha1 signature over an in-memory
//!    ticket), one Node process and a two-process Node cluster (wxkit runs two workers on the two cores);
//! 2. `POST /wechat/pay/notify` on PostgreSQL (and SQLite): N orders, each paid once and notified twice (a duplicate
//!    for each, as WeChat resends), C concurrent deliveries — notifies/s, latency, and the check that every order is
//!    paid once.
//!
//! `cargo run --release -p wxkit-e2e --example bench-pay -- [CONNECTIONS] [SECONDS] [ORDERS]` (defaults 64 10 4000).
//! Needs `wrk` and Node with `npm ci` run in `tests/bench-node` for part 1, a local PostgreSQL for the PostgreSQL
//! row (as the tests do). Prints Markdown tables.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use futures_util::StreamExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use wxkit_e2e::{DbKind, ServerProcess, TEST_APP_ID, TEST_PAY_KEY, TestDatabase, free_port, server_env, spawn_sim};

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// wrk's figures: requests/s, p50 ms, p99 ms, non-2xx responses.
fn wrk(url: &str, connections: usize, seconds: u64) -> (f64, f64, f64, u64) {
    // One wrk thread by default: it keeps up with either server, and leaves the server under test its two cores' worth
    // (BENCH_WRK_THREADS overrides).
    let threads = std::env::var("BENCH_WRK_THREADS").unwrap_or_else(|_| "1".into());
    let out = Command::new("wrk")
        .args([
            &format!("-t{threads}"),
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
            url,
        ])
        .output()
        .expect("wrk runs (apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let ms = |s: &str| -> f64 {
        let s = s.trim();
        if let Some(v) = s.strip_suffix("us") {
            v.parse::<f64>().unwrap() / 1000.0
        } else if let Some(v) = s.strip_suffix("ms") {
            v.parse().unwrap()
        } else if let Some(v) = s.strip_suffix('s') {
            v.parse::<f64>().unwrap() * 1000.0
        } else {
            f64::NAN
        }
    };
    let line = |prefix: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(prefix))
            .unwrap_or_else(|| panic!("wrk printed no {prefix:?}: {text}"))
            .trim()
            .to_owned()
    };
    let rps: f64 = line("Requests/sec:")
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let p50 = ms(line("50%").split_whitespace().nth(1).unwrap());
    let p99 = ms(line("99%").split_whitespace().nth(1).unwrap());
    let non2xx = text
        .lines()
        .find(|l| l.contains("Non-2xx"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (rps, p50, p99, non2xx)
}

async fn wait_up(url: &str) {
    let http = reqwest::Client::new();
    for _ in 0..200 {
        if let Ok(r) = http.get(url).send().await
            && r.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url} did not answer");
}

struct Node(std::process::Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn node(port: u16, workers: usize, ticket: &str) -> Node {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bench-node");
    assert!(
        dir.join("node_modules/express").exists(),
        "run `npm ci` in {} first",
        dir.display()
    );
    Node(
        Command::new("node")
            .arg(dir.join("jssdk.js"))
            .args([&port.to_string(), TEST_APP_ID, ticket, "127.0.0.1"])
            .env("WORKERS", workers.to_string())
            .stdout(Stdio::null())
            .spawn()
            .expect("node runs"),
    )
}

fn node_qr(port: u16, base: &str) -> Node {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bench-node");
    assert!(
        dir.join("node_modules/qr-image").exists(),
        "run `npm ci` in {} first",
        dir.display()
    );
    Node(
        Command::new("node")
            .arg(dir.join("qr.js"))
            .args([&port.to_string(), base])
            .stdout(Stdio::null())
            .spawn()
            .expect("node runs"),
    )
}

/// One issued coupon, written straight into the server's database (a merchant and a campaign for it).
fn issue_coupon(db_url: &str) -> String {
    use diesel::prelude::*;
    use wxkit::db::schema::{campaigns, coupons, merchants};
    let backend = wxkit::db::Backend::from_url(db_url).expect("database url");
    let mut conn = backend.establish().expect("database connection");
    let now = chrono::Utc::now().timestamp_millis();
    diesel::insert_into(merchants::table)
        .values((merchants::name.eq("bench"), merchants::created_at.eq(now)))
        .execute(&mut conn)
        .unwrap();
    let merchant_id: i64 = merchants::table
        .select(diesel::dsl::max(merchants::id))
        .first::<Option<i64>>(&mut conn)
        .unwrap()
        .unwrap();
    diesel::insert_into(campaigns::table)
        .values((
            campaigns::merchant_id.eq(merchant_id),
            campaigns::title.eq("bench"),
            campaigns::valid_from.eq(now),
            campaigns::valid_until.eq(now + 30 * 86_400_000),
            campaigns::issued.eq(1i64),
            campaigns::created_at.eq(now),
        ))
        .execute(&mut conn)
        .unwrap();
    let campaign_id: i64 = campaigns::table
        .select(diesel::dsl::max(campaigns::id))
        .first::<Option<i64>>(&mut conn)
        .unwrap()
        .unwrap();
    let code = redemption_core::CouponCode::generate().as_str().to_owned();
    diesel::insert_into(coupons::table)
        .values((
            coupons::campaign_id.eq(campaign_id),
            coupons::code.eq(&code),
            coupons::status.eq("issued"),
            coupons::version.eq(0i64),
            coupons::created_at.eq(now),
        ))
        .execute(&mut conn)
        .unwrap();
    code
}

#[tokio::main]
async fn main() {
    let args: Vec<u64> = std::env::args().skip(1).map(|a| a.parse().unwrap()).collect();
    let connections = args.first().copied().unwrap_or(64) as usize;
    let seconds = args.get(1).copied().unwrap_or(10);
    let orders = args.get(2).copied().unwrap_or(4000) as usize;
    let sim = spawn_sim().await;

    // 1. JS-SDK config.
    let db = TestDatabase::create(DbKind::Sqlite).unwrap();
    let port = free_port();
    let server = ServerProcess::start(&server_env(&db.url, &sim, port), None).await;
    let path = "/api/v1/jssdk/config?url=http%3A%2F%2F127.0.0.1%2Fshop%3Fid%3D7%23top";
    let url = format!("{}{path}", server.address);
    wait_up(&url).await; // the first call fetches the jsapi_ticket from the simulator
    let ticket = "HoagFKDcsGMVCIY2vOjf9nGrRLmqL3wMeR3tdDjHqz1oK0YBmrzV-NpGbHNLRpGbCb5fHIdGlVRrXbQzmCSXIg";
    let node_port = free_port();
    let _node = node(node_port, 1, ticket);
    let node2_port = free_port();
    let _node2 = node(node2_port, 2, ticket);
    wait_up(&format!("http://127.0.0.1:{node_port}{path}")).await;
    wait_up(&format!("http://127.0.0.1:{node2_port}{path}")).await;
    println!("\n### `GET /api/v1/jssdk/config`, {connections} connections, {seconds} s each\n");
    println!("| server | requests/s | p50 | p99 | non-2xx |");
    println!("|---|---|---|---|---|");
    // Interleaved, twice, so drift on the machine hits both alike.
    for round in 1..=2 {
        for (name, u) in [
            ("wxkit (2 workers)", url.clone()),
            ("Node/Express, 1 process", format!("http://127.0.0.1:{node_port}{path}")),
            (
                "Node/Express, 2-process cluster",
                format!("http://127.0.0.1:{node2_port}{path}"),
            ),
        ] {
            let (rps, p50, p99, bad) = wrk(&u, connections, seconds);
            println!("| {name} (round {round}) | {rps:.0} | {p50:.2} ms | {p99:.2} ms | {bad} |");
        }
    }
    // 1b. The coupon QR image, rendered per request, against Express + qr-image (`tests/bench-node/qr.js`).
    let code = issue_coupon(&db.url);
    let public = server.address.clone();
    let qr_port = free_port();
    let _qr_node = node_qr(qr_port, &public);
    let qr_path = format!("/c/{code}/qr.png");
    let node_qr_url = format!("http://127.0.0.1:{qr_port}{qr_path}");
    wait_up(&format!("{public}{qr_path}")).await;
    wait_up(&node_qr_url).await;
    println!("\n### `GET /c/{{code}}/qr.png` (300 px), {connections} connections, {seconds} s each\n");
    println!("| server | requests/s | p50 | p99 | non-2xx |");
    println!("|---|---|---|---|---|");
    for round in 1..=2 {
        for (name, u) in [
            ("wxkit (2 workers)", format!("{public}{qr_path}")),
            ("Node/Express + qr-image, 1 process", node_qr_url.clone()),
        ] {
            let (rps, p50, p99, bad) = wrk(&u, connections, seconds);
            println!("| {name} (round {round}) | {rps:.0} | {p50:.2} ms | {p99:.2} ms | {bad} |");
        }
    }
    drop(server);

    // 2. Payment notifies.
    println!("\n### `POST /wechat/pay/notify`: {orders} orders, each notified twice, {connections} concurrent\n");
    println!("| database | notifies/s | p50 | p99 | orders paid |");
    println!("|---|---|---|---|---|");
    let mut kinds = vec![(DbKind::Sqlite, "SQLite")];
    if wxkit_e2e::postgres_admin_url().is_some() {
        kinds.insert(0, (DbKind::Postgres, "PostgreSQL"));
    }
    for (kind, name) in kinds {
        let db = TestDatabase::create(kind).unwrap();
        let seeded = {
            let url = db.url.clone();
            tokio::task::spawn_blocking(move || wxkit_e2e::seed_unpaid_orders(&url, orders))
                .await
                .unwrap()
        };
        let server = ServerProcess::start(&server_env(&db.url, &sim, free_port()), None).await;
        let mut bodies: Vec<String> = seeded
            .iter()
            .enumerate()
            .flat_map(|(i, no)| {
                let b = wxkit_e2e::pay_notify_body(no, &format!("4200000000{i:020}"), 990, TEST_PAY_KEY);
                [b.clone(), b]
            })
            .collect();
        // Duplicates spread out, as resends arrive later.
        let half = bodies.len() / 2;
        bodies.rotate_left(half / 2);
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(connections)
            .build()
            .unwrap();
        let endpoint = format!("{}/wechat/pay/notify", server.address);
        let started = Instant::now();
        let mut latencies: Vec<f64> = futures_util::stream::iter(bodies)
            .map(|body| {
                let (http, endpoint) = (http.clone(), endpoint.clone());
                async move {
                    let t = Instant::now();
                    let answer = http
                        .post(&endpoint)
                        .body(body)
                        .send()
                        .await
                        .unwrap()
                        .text()
                        .await
                        .unwrap();
                    assert!(answer.contains("SUCCESS"), "{answer}");
                    t.elapsed().as_secs_f64() * 1000.0
                }
            })
            .buffer_unordered(connections)
            .collect()
            .await;
        let elapsed = started.elapsed().as_secs_f64();
        latencies.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let paid = wxkit_e2e::paid_orders(&db.url);
        println!(
            "| {name} | {:.0} | {:.2} ms | {:.2} ms | {paid} of {orders} |",
            latencies.len() as f64 / elapsed,
            quantile(&latencies, 0.5),
            quantile(&latencies, 0.99)
        );
        assert_eq!(paid as usize, orders, "every order paid once");
        drop(server);
    }
}

//! Login benchmarks against the `wxkit` binary as a child process (release build), with the simulator in this
//! process:
//!
//! 1. resident memory (VmRSS) of one instance holding N idle login WebSockets (default 10,000), before and after;
//! 2. confirm-to-browser latency with M waiting sockets (default 1,000): for each scene, the time from sending
//!    `POST .../confirm` until the browser's socket receives `confirmed` — on one instance (SQLite, PostgreSQL),
//!    and across two instances on one PostgreSQL (socket on A, confirm posted to B: LISTEN/NOTIFY) — and, built
//!    with `--features mysql`, on MariaDB/MySQL (one instance; two instances through the `login_events` relay);
//! 3. `POST /api/v1/miniprogram/login` requests/s (C concurrent clients for S seconds, every code fresh).
//!
//! `ulimit -n 65536; cargo run --release -p wxkit-e2e --example bench-login -- [SOCKETS] [WAITING] [CLIENTS] [SECONDS]`
//! (defaults 10000 1000 32 10). Prints Markdown tables. Needs PostgreSQL for the PostgreSQL rows (as the tests do).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use futures_util::StreamExt;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};
use wxkit_e2e::{DbKind, ServerProcess, TEST_MP_APP_ID, TestDatabase, free_port, server_env, spawn_sim};

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// A number field of `/proc/{pid}/status` (VmRSS in KiB, Threads).
fn status_field(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

fn rss_kib(pid: u32) -> u64 {
    status_field(pid, "VmRSS:")
}

async fn start(db_url: &str, sim: &wechat_sim::SimServer) -> ServerProcess {
    let mut env = server_env(db_url, sim, free_port());
    env.push(("WXKIT__SERVER__MAX_CONNECTIONS".into(), "60000".into()));
    env.push(("WXKIT__DATABASE__POOL_SIZE".into(), "16".into()));
    env.push(("WXKIT__LOGIN__SCENES_PER_MINUTE".into(), "100000000".into()));
    // Every benchmark socket comes from 127.0.0.1: lift the per-client socket limit (a scene still takes at most 4).
    env.push(("WXKIT__LOGIN__SOCKETS_PER_ADDRESS".into(), "1000000".into()));
    if let Ok(v) = std::env::var("BENCH_SERVER_ENV") {
        for kv in v.split(',') {
            if let Some((k, v)) = kv.split_once('=') {
                env.push((k.into(), v.into()));
            }
        }
    }
    ServerProcess::start(&env, Some("ulimit -n 65536 2>/dev/null;")).await
}

/// Creates `n` scenes (32 at a time); returns their `(scene, ws_url)`.
async fn scenes(http: &reqwest::Client, address: &str, n: usize) -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(n);
    let mut pending = futures_util::stream::iter(0..n)
        .map(|_| {
            let http = http.clone();
            let url = format!("{address}/api/v1/login/scenes");
            async move {
                let v: Value = http.post(url).send().await.unwrap().json().await.unwrap();
                (
                    v["scene"].as_str().unwrap().to_owned(),
                    v["ws_url"].as_str().unwrap().to_owned(),
                )
            }
        })
        .buffer_unordered(32);
    while let Some(s) = pending.next().await {
        out.push(s);
    }
    out
}

async fn connect(ws_url: &str, origin: &str) -> Socket {
    let mut request = ws_url.into_client_request().unwrap();
    request.headers_mut().insert("origin", origin.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    // The current state comes first.
    loop {
        if let Message::Text(t) = ws.next().await.unwrap().unwrap() {
            assert!(t.contains("\"waiting\""), "{t}");
            break;
        }
    }
    ws
}

async fn connect_all(list: &[(String, String)], origin: &str) -> Vec<(String, Socket)> {
    let mut out = Vec::with_capacity(list.len());
    let mut pending = futures_util::stream::iter(list.iter().cloned())
        .map(|(scene, url)| {
            let origin = origin.to_owned();
            async move { (scene, connect(&url, &origin).await) }
        })
        .buffer_unordered(64);
    while let Some(s) = pending.next().await {
        out.push(s);
    }
    out
}

async fn mp_token(http: &reqwest::Client, address: &str, sim: &wechat_sim::SimServer, openid: &str) -> String {
    let code = sim.handle().issue_js_code(TEST_MP_APP_ID, openid).unwrap();
    let v: Value = http
        .post(format!("{address}/api/v1/miniprogram/login"))
        .json(&json!({"code": code}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["token"].as_str().unwrap().to_owned()
}

/// Confirm-to-browser latency (ms) over `waiting` sockets on `watch` with the mini program posting to `post`.
async fn latency(
    http: &reqwest::Client,
    watch: &str,
    post: &str,
    sim: &wechat_sim::SimServer,
    waiting: usize,
) -> (f64, f64, f64) {
    let list = scenes(http, watch, waiting).await;
    let mut sockets = connect_all(&list, watch).await;
    let token = mp_token(http, post, sim, "o-bench-latency").await;
    let mut samples = Vec::with_capacity(sockets.len());
    for (scene, ws) in sockets.iter_mut() {
        let r = http
            .post(format!("{post}/api/v1/login/scenes/{scene}/scan"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        loop {
            if let Message::Text(t) = ws.next().await.unwrap().unwrap()
                && t.contains("\"scanned\"")
            {
                break;
            }
        }
        let started = Instant::now();
        let confirm = http
            .post(format!("{post}/api/v1/login/scenes/{scene}/confirm"))
            .bearer_auth(&token)
            .send();
        let receive = async {
            loop {
                if let Message::Text(t) = ws.next().await.unwrap().unwrap()
                    && t.contains("\"confirmed\"")
                {
                    return started.elapsed();
                }
            }
        };
        let (r, elapsed) = tokio::join!(confirm, receive);
        assert_eq!(r.unwrap().status(), 200);
        samples.push(elapsed.as_secs_f64() * 1000.0);
    }
    for (_, mut ws) in sockets {
        let _ = ws.close(None).await;
    }
    samples.sort_by(f64::total_cmp);
    let mean = samples.iter().sum::<f64>() / samples.len() as f64;
    (quantile(&samples, 0.5), quantile(&samples, 0.99), mean)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args: Vec<usize> = std::env::args().skip(1).map(|a| a.parse().unwrap()).collect();
    let idle = args.first().copied().unwrap_or(10_000);
    let waiting = args.get(1).copied().unwrap_or(1_000);
    let clients = args.get(2).copied().unwrap_or(32);
    let seconds = args.get(3).copied().unwrap_or(10) as u64;
    let sim = spawn_sim().await;
    let http = reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap();

    // 1. Memory of idle sockets (SQLite).
    let db = TestDatabase::create(DbKind::Sqlite).unwrap();
    let server = start(&db.url, &sim).await;
    let pid = server.pid();
    tokio::time::sleep(Duration::from_secs(1)).await;
    // The idle server's own footprint, apart: anonymous memory (heaps, stacks) and file pages (the binary's code).
    let (started, started_anon, started_file) = (
        rss_kib(pid),
        status_field(pid, "RssAnon:"),
        status_field(pid, "RssFile:"),
    );
    let list = scenes(&http, &server.address, idle).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss_kib(pid);
    let sockets = connect_all(&list, &server.address).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    eprintln!(
        "just connected: RSS {:.1} MB, {} threads",
        rss_kib(pid) as f64 / 1024.0,
        status_field(pid, "Threads:")
    );
    // Idle: after the connection burst has settled — blocking-pool threads retire after 10 s idle, and the
    // allocator returns freed pages on its next activity (the sockets' first pings, at 20 s).
    tokio::time::sleep(Duration::from_secs(30)).await;
    let after = rss_kib(pid);
    eprintln!(
        "settled: RSS {:.1} MB, {} threads",
        after as f64 / 1024.0,
        status_field(pid, "Threads:")
    );
    println!("\n### Idle login WebSockets, one instance\n");
    println!("| sockets | idle server (anonymous + file pages) | with {idle} scenes | with the sockets | per socket |");
    println!("|---|---|---|---|---|");
    println!(
        "| {} | {:.1} MB ({:.1} + {:.1}) | {:.1} MB | {:.1} MB | {:.2} KB |",
        sockets.len(),
        started as f64 / 1024.0,
        started_anon as f64 / 1024.0,
        started_file as f64 / 1024.0,
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        (after.saturating_sub(before)) as f64 / sockets.len() as f64
    );
    drop(sockets);
    drop(server);

    // 2. Confirm-to-browser latency.
    println!("\n### Confirm-to-browser latency, {waiting} waiting sockets\n");
    println!("| setup | p50 | p99 | mean |");
    println!("|---|---|---|---|");
    let db = TestDatabase::create(DbKind::Sqlite).unwrap();
    let one = start(&db.url, &sim).await;
    let (p50, p99, mean) = latency(&http, &one.address, &one.address, &sim, waiting).await;
    println!("| one instance, SQLite | {p50:.2} ms | {p99:.2} ms | {mean:.2} ms |");
    drop(one);
    if let Some(pg) = TestDatabase::create(DbKind::Postgres) {
        let a = start(&pg.url, &sim).await;
        let (p50, p99, mean) = latency(&http, &a.address, &a.address, &sim, waiting).await;
        println!("| one instance, PostgreSQL | {p50:.2} ms | {p99:.2} ms | {mean:.2} ms |");
        let b = start(&pg.url, &sim).await;
        let (p50, p99, mean) = latency(&http, &a.address, &b.address, &sim, waiting).await;
        println!(
            "| two instances on one PostgreSQL (socket on A, confirm to B) | {p50:.2} ms | {p99:.2} ms | {mean:.2} ms |"
        );
    }
    // The `wxkit` binary must be built with the feature too: `cargo build --release -p wxkit --features mysql`.
    #[cfg(feature = "mysql")]
    if let Some(my) = TestDatabase::create(DbKind::Mysql) {
        let a = start(&my.url, &sim).await;
        let (p50, p99, mean) = latency(&http, &a.address, &a.address, &sim, waiting).await;
        println!("| one instance, MariaDB | {p50:.2} ms | {p99:.2} ms | {mean:.2} ms |");
        let b = start(&my.url, &sim).await;
        let (p50, p99, mean) = latency(&http, &a.address, &b.address, &sim, waiting).await;
        println!(
            "| two instances on one MariaDB (socket on A, confirm to B: login_events relay) | {p50:.2} ms | {p99:.2} ms | {mean:.2} ms |"
        );
    }

    // 3. Mini-program login throughput (fresh code per request, distinct users: WeChat limits logins per user).
    println!("\n### `POST /api/v1/miniprogram/login`, {clients} clients, {seconds} s\n");
    println!("| database | requests/s | p50 | p99 |");
    println!("|---|---|---|---|");
    let mut kinds = vec![(DbKind::Sqlite, "SQLite")];
    if wxkit_e2e::postgres_admin_url().is_some() {
        kinds.push((DbKind::Postgres, "PostgreSQL"));
    }
    for (kind, name) in kinds {
        let db = TestDatabase::create(kind).unwrap();
        let server = start(&db.url, &sim).await;
        let codes: Arc<Vec<String>> = Arc::new(
            (0..200_000)
                .map(|i| {
                    sim.handle()
                        .issue_js_code(TEST_MP_APP_ID, &format!("o-bench-{name}-{i}"))
                        .unwrap()
                })
                .collect(),
        );
        let next = Arc::new(AtomicUsize::new(0));
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let mut tasks = Vec::new();
        for _ in 0..clients {
            let (http, codes, next, url) = (
                http.clone(),
                codes.clone(),
                next.clone(),
                format!("{}/api/v1/miniprogram/login", server.address),
            );
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(code) = codes.get(i) else { break };
                    let t = Instant::now();
                    let r = http.post(&url).json(&json!({"code": code})).send().await.unwrap();
                    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
                    latencies.push(t.elapsed().as_secs_f64() * 1000.0);
                }
                latencies
            }));
        }
        let started = Instant::now();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        let elapsed = started.elapsed().as_secs_f64();
        all.sort_by(f64::total_cmp);
        println!(
            "| {name} | {:.0} | {:.2} ms | {:.2} ms |",
            all.len() as f64 / elapsed,
            quantile(&all, 0.5),
            quantile(&all, 0.99)
        );
    }
    sim.stop().await;
}

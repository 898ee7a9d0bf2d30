//! WeChat Pay v3 against v2: what RSA signatures and AES-GCM cost, in process and over HTTP, side by side in one run.
//!
//! 1. In process, each for about a second: a v2 payment notify verified (XML parse + HMAC-SHA256), a v3 notify's
//!    signature verified (RSA-2048), its resource decrypted (AES-256-GCM), the whole v3 notify checked and typed, and
//!    a v3 request signed (RSA-2048 private-key operation).
//! 2. Over HTTP, against the release `wxkit serve` binary as a child process: N orders each notified twice (a
//!    duplicate for each, as WeChat resends), C concurrent — v2's `POST /wechat/pay/notify` and v3's
//!    `POST /wechat/pay/v3/notify` (signed by the simulator's WeChat Pay public key), on SQLite and PostgreSQL.
//!
//! `cargo run --release -p wxkit-e2e --example bench-pay-v3 -- [CONNECTIONS] [ORDERS]` (defaults 64 2000). A local
//! PostgreSQL adds its rows (as the tests find it). Prints Markdown tables.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use futures_util::StreamExt;
use std::time::{Duration, Instant};
use wechat_pay::v3;
use wxkit_e2e::{
    DbKind, ServerProcess, TEST_APP_ID, TEST_MCH_ID, TEST_PAY_KEY, TestDatabase, V3Mode, free_port, server_env,
    spawn_sim, v3_env,
};

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Runs `op` for about a second; operations per second.
fn per_second(mut op: impl FnMut()) -> f64 {
    for _ in 0..10 {
        op();
    }
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < Duration::from_secs(1) {
        for _ in 0..16 {
            op();
        }
        n += 16;
    }
    n as f64 / started.elapsed().as_secs_f64()
}

/// One delivery: where, headers, body, and what a good answer looks like.
type Delivery = (Vec<(&'static str, String)>, String);

#[tokio::main]
async fn main() {
    let args: Vec<u64> = std::env::args().skip(1).map(|a| a.parse().unwrap()).collect();
    let connections = args.first().copied().unwrap_or(64) as usize;
    let orders = args.get(1).copied().unwrap_or(2000) as usize;
    let sim = spawn_sim().await;
    let files = tempfile::tempdir().unwrap();
    let v3 = v3_env(files.path(), &sim, V3Mode::PublicKey);
    let info = sim.handle().v3_merchant(TEST_MCH_ID).unwrap();

    // 1. In process.
    let v2_body = wxkit_e2e::pay_notify_body("bench00000001", "4200000000000000000001", 990, TEST_PAY_KEY);
    let v2_key = wechat_pay::PayKey::new(TEST_PAY_KEY);
    let v3_body = sim
        .handle()
        .v3_payment_notify_body(TEST_MCH_ID, TEST_APP_ID, "bench00000001", "4200000000000000000001", 990)
        .unwrap();
    let headers = sim.handle().sign_v3_notify(TEST_MCH_ID, v3_body.as_bytes());
    let header = |name: &str| headers.iter().find(|(k, _)| *k == name).unwrap().1.clone();
    let (ts, nonce, sig, serial) = (
        header("Wechatpay-Timestamp"),
        header("Wechatpay-Nonce"),
        header("Wechatpay-Signature"),
        header("Wechatpay-Serial"),
    );
    let verifier = v3::Verifier::new().with_public_key(&serial, v3::PublicKey::from_pem(&info.public_key_pem).unwrap());
    let message = v3::SignedMessage {
        timestamp: &ts,
        nonce: &nonce,
        signature: &sig,
        serial: &serial,
        body: v3_body.as_bytes(),
    };
    let now = chrono::Utc::now().timestamp();
    let api_v3_key = v3::ApiV3Key::new(wxkit_testkit::TEST_API_V3_KEY);
    let resource: serde_json::Value = serde_json::from_str(&v3_body).unwrap();
    let sealed: v3::EncryptedResource = serde_json::from_value(resource["resource"].clone()).unwrap();
    let signer = v3::MerchantPrivateKey::from_pem(wechat_sim::SANDBOX_MERCHANT_KEY).unwrap();
    println!("\n### The cryptography of one notify, in process (one core)\n");
    println!("| operation | per second | per operation |");
    println!("|---|---|---|");
    let rows: Vec<(&str, f64)> = vec![
        (
            "v2 notify: XML parse + HMAC-SHA256 verify",
            per_second(|| {
                wechat_pay::notify::verify_payment_notify(&v2_key, v2_body.as_bytes()).unwrap();
            }),
        ),
        (
            "v3 notify signature: RSA-2048 verify",
            per_second(|| verifier.verify(&message, now).unwrap()),
        ),
        (
            "v3 resource: AES-256-GCM decrypt",
            per_second(|| {
                v3::aead::decrypt(&api_v3_key, &sealed).unwrap();
            }),
        ),
        (
            "v3 notify whole: verify + decrypt + typed",
            per_second(|| {
                verifier.verify(&message, now).unwrap();
                v3::notify::decode(&api_v3_key, v3_body.as_bytes()).unwrap();
            }),
        ),
        (
            "v3 request signature: RSA-2048 sign",
            per_second(|| {
                signer.sign(b"POST\n/v3/pay/transactions/jsapi\n1700000000\nNONCE\n{}\n");
            }),
        ),
    ];
    for (name, ops) in rows {
        println!("| {name} | {ops:.0} | {:.1} µs |", 1e6 / ops);
    }
    // The same RSA-2048 operations in OpenSSL (C and assembly), measured now on the same machine, for scale.
    if let Ok(out) = std::process::Command::new("openssl")
        .args(["speed", "-seconds", "1", "rsa2048"])
        .output()
    {
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if let Some(line) = text.lines().find(|l| l.starts_with("rsa 2048 bits")) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if let (Some(sign), Some(verify)) = (cols.get(5), cols.get(6)) {
                let (sign, verify): (f64, f64) = (sign.parse().unwrap_or(f64::NAN), verify.parse().unwrap_or(f64::NAN));
                println!(
                    "| OpenSSL `speed rsa2048`: verify (for scale) | {verify:.0} | {:.1} µs |",
                    1e6 / verify
                );
                println!(
                    "| OpenSSL `speed rsa2048`: sign (for scale) | {sign:.0} | {:.1} µs |",
                    1e6 / sign
                );
            }
        }
    }

    // 2. Over HTTP.
    println!("\n### Payment notifies over HTTP: {orders} orders, each notified twice, {connections} concurrent\n");
    println!("| API | database | notifies/s | p50 | p99 | orders paid |");
    println!("|---|---|---|---|---|---|");
    let mut kinds = vec![(DbKind::Sqlite, "SQLite")];
    if wxkit_e2e::postgres_admin_url().is_some() {
        kinds.insert(0, (DbKind::Postgres, "PostgreSQL"));
    }
    for (kind, name) in kinds {
        for api in ["v2", "v3"] {
            let db = TestDatabase::create(kind).unwrap();
            let seeded = {
                let url = db.url.clone();
                tokio::task::spawn_blocking(move || wxkit_e2e::seed_unpaid_orders(&url, orders))
                    .await
                    .unwrap()
            };
            let mut env = server_env(&db.url, &sim, free_port());
            if api == "v3" {
                env.retain(|(k, _)| k != "WXKIT__PAY__KEY");
                env.extend(v3.iter().cloned());
            }
            let server = ServerProcess::start(&env, None).await;
            let mut deliveries: Vec<Delivery> = seeded
                .iter()
                .enumerate()
                .flat_map(|(i, no)| {
                    let txn = format!("4200000000{i:020}");
                    let d = if api == "v2" {
                        (Vec::new(), wxkit_e2e::pay_notify_body(no, &txn, 990, TEST_PAY_KEY))
                    } else {
                        let body = sim
                            .handle()
                            .v3_payment_notify_body(TEST_MCH_ID, TEST_APP_ID, no, &txn, 990)
                            .unwrap();
                        (sim.handle().sign_v3_notify(TEST_MCH_ID, body.as_bytes()), body)
                    };
                    [d.clone(), d]
                })
                .collect();
            let half = deliveries.len() / 2;
            deliveries.rotate_left(half / 2);
            let http = reqwest::Client::builder()
                .pool_max_idle_per_host(connections)
                .build()
                .unwrap();
            let endpoint = if api == "v2" {
                format!("{}/wechat/pay/notify", server.address)
            } else {
                format!("{}/wechat/pay/v3/notify", server.address)
            };
            let started = Instant::now();
            let mut latencies: Vec<f64> = futures_util::stream::iter(deliveries)
                .map(|(headers, body)| {
                    let (http, endpoint) = (http.clone(), endpoint.clone());
                    async move {
                        let t = Instant::now();
                        let mut r = http.post(&endpoint);
                        for (k, v) in headers {
                            r = r.header(k, v);
                        }
                        let response = r.body(body).send().await.unwrap();
                        let status = response.status();
                        let answer = response.text().await.unwrap();
                        assert!(
                            status.is_success() && (api == "v3" || answer.contains("SUCCESS")),
                            "{status} {answer}"
                        );
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
                "| {api} | {name} | {:.0} | {:.2} ms | {:.2} ms | {paid} of {orders} |",
                latencies.len() as f64 / elapsed,
                quantile(&latencies, 0.5),
                quantile(&latencies, 0.99)
            );
            assert_eq!(paid as usize, orders, "every order paid once");
            drop(server);
        }
    }
}

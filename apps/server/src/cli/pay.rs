//! `wxkit pay ...`: the operators' order list, refunds (through the running server's admin API), and the Pay v2 and
//! v3 developer tools (sign, verify and decrypt notifies, download platform certificates).

use super::CliError;
use super::pos::post_to_server;
use super::table::{print_json, print_rows};
use super::wechat::require;
use crate::configuration::{ConfigError, Settings};
use clap::Subcommand;
use std::path::PathBuf;

/// `wxkit pay ...`
#[derive(Debug, Subcommand)]
pub enum PayCommand {
    /// The server's WeChat Pay orders (from the database).
    #[command(subcommand)]
    Orders(PayOrdersCommand),
    /// Refund (part of) a paid order through the running server's admin API (recorded there first, never more than
    /// was paid; a bought coupon is voided). Prints `out_refund_no<TAB>refund_fee<TAB>requested`; its notify settles
    /// it (`wxkit pay orders list`, `GET /api/v1/pay/orders/{no}`).
    Refund {
        /// The order.
        out_trade_no: String,
        /// How much to refund, in fen.
        #[arg(long)]
        fee: i64,
        /// Why (shown to the buyer by WeChat; at most 80 bytes).
        #[arg(long)]
        reason: Option<String>,
        /// Refund even though the bought coupon was redeemed.
        #[arg(long)]
        force: bool,
        /// The server (default: server.public_base_url, else the address the running server recorded in the database,
        /// else http://server.addr); the admin token is admin.token, else the sandbox's (kept in the database).
        #[arg(long)]
        server: Option<String>,
    },
    /// Verify a payment notify (XML from FILE or stdin): exit 0 and print its fields as JSON when valid, exit 1 and
    /// the reason when not.
    VerifyNotify {
        /// The merchant API key.
        #[arg(long)]
        key: String,
        /// Also require this appid.
        #[arg(long)]
        appid: Option<String>,
        /// Also require this mch_id.
        #[arg(long = "mch-id")]
        mch_id: Option<String>,
        /// The notify body; `-` or nothing for stdin.
        #[arg(value_name = "FILE|-")]
        input: Option<PathBuf>,
    },
    /// WeChat Pay API v3: sign a request, verify a notify, download the platform certificates.
    #[command(subcommand)]
    V3(PayV3Command),
    /// Reconciles a Beijing day through the running server (its admin API): WeChat Pay's trade bill against the
    /// ledger. Exit 0 when clean; exit 1 listing the differences.
    Reconcile {
        /// The Beijing day, YYYY-MM-DD.
        #[arg(long)]
        date: String,
        /// The server (default: server.public_base_url, else the address the running server recorded in the database,
        /// else http://server.addr); the admin token is admin.token, else the sandbox's (kept in the database).
        #[arg(long)]
        server: Option<String>,
    },
    /// Saves a day's bill as WeChat Pay serves it (through the running server's admin API).
    Bill {
        /// The Beijing day, YYYY-MM-DD.
        #[arg(long)]
        date: String,
        /// trade (default) or fundflow (v3).
        #[arg(long = "type", default_value = "trade")]
        kind: String,
        /// Where to write it (default: stdout).
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
        /// The server (default: server.public_base_url, or http://server.addr).
        #[arg(long)]
        server: Option<String>,
    },
    /// Decrypt a refund notify's req_info (the whole notify XML, or just the req_info value) and print its fields as
    /// JSON.
    DecryptRefundNotify {
        /// The merchant API key.
        #[arg(long)]
        key: String,
        /// The notify body or req_info; `-` or nothing for stdin.
        #[arg(value_name = "FILE|-")]
        input: Option<PathBuf>,
    },
}

/// `wxkit pay v3 ...`
#[derive(Debug, Subcommand)]
pub enum PayV3Command {
    /// Prints the `Authorization` header value (`WECHATPAY2-SHA256-RSA2048 …`) for a request: SHA256withRSA over
    /// METHOD, PATH_AND_QUERY, timestamp, nonce and the body (BODY_FILE, `-` for stdin; none: empty, as for GET).
    Sign {
        /// The merchant id.
        #[arg(long)]
        mchid: String,
        /// The serial of the merchant's API certificate.
        #[arg(long)]
        serial: String,
        /// The merchant's API private key (PEM file, `apiclient_key.pem`).
        #[arg(long = "private-key", value_name = "PEM_FILE")]
        private_key: PathBuf,
        /// GET or POST (PUT, PATCH, DELETE too).
        #[arg(long)]
        method: String,
        /// The path with its query, as sent: `/v3/pay/transactions/out-trade-no/N?mchid=M`.
        #[arg(long, value_name = "PATH_AND_QUERY")]
        url: String,
        /// Unix seconds (default: now).
        #[arg(long)]
        timestamp: Option<i64>,
        /// The nonce (default: 32 random characters).
        #[arg(long)]
        nonce: Option<String>,
        /// The request body; `-` for stdin; none for an empty body.
        #[arg(value_name = "BODY_FILE|-")]
        input: Option<PathBuf>,
    },
    /// Verifies a v3 notify (the body from BODY_FILE or stdin, the four `Wechatpay-*` headers as flags) against
    /// platform certificates and/or WeChat Pay public keys, then decrypts its resource: exit 0 and the resource's JSON
    /// on stdout, or exit 1 and the reason (bad signature, unknown serial, stale timestamp, decryption failed).
    Verify {
        /// The APIv3 key (32 characters).
        #[arg(long = "api-v3-key")]
        api_v3_key: String,
        /// A WeChat Pay public key (PEM file); pairs, in order, with a --public-key-id.
        #[arg(long = "public-key", value_name = "PEM_FILE")]
        public_key: Vec<PathBuf>,
        /// The id of the --public-key in the same position (`PUB_KEY_ID_…`).
        #[arg(long = "public-key-id", value_name = "ID")]
        public_key_id: Vec<String>,
        /// A platform certificate (PEM file); repeatable.
        #[arg(long = "platform-cert", value_name = "PEM_FILE")]
        platform_cert: Vec<PathBuf>,
        /// `Wechatpay-Timestamp`.
        #[arg(long)]
        timestamp: String,
        /// `Wechatpay-Nonce`.
        #[arg(long)]
        nonce: String,
        /// `Wechatpay-Signature`.
        #[arg(long)]
        signature: String,
        /// `Wechatpay-Serial`.
        #[arg(long)]
        serial: String,
        /// How far the timestamp may be from now, in seconds; 0 turns the check off (to replay recorded vectors).
        #[arg(long = "max-skew", default_value_t = 300)]
        max_skew: i64,
        /// The notify body, exactly as received; `-` or nothing for stdin.
        #[arg(value_name = "BODY_FILE|-")]
        input: Option<PathBuf>,
    },
    /// Downloads the configured merchant's platform certificates (pay.mch_id, pay.v3.*, pay.base_url), checks them,
    /// and prints serial, valid from and valid until (Beijing time) — a table, or JSON with --json.
    Certificates,
    /// Encrypts a sensitive field (a name, an ID or phone number) for WeChat Pay: RSA-OAEP (SHA-1) under the WeChat
    /// Pay public key or a platform certificate; prints the base64 ciphertext. Send the request with
    /// `Wechatpay-Serial` naming that key (the public key id, or the certificate's serial — printed on stderr).
    Encrypt {
        /// The WeChat Pay public key (PEM file, `pub_key.pem`).
        #[arg(
            long = "public-key",
            value_name = "PEM",
            conflicts_with = "platform_cert",
            required_unless_present = "platform_cert"
        )]
        public_key: Option<PathBuf>,
        /// A platform certificate (PEM file).
        #[arg(long = "platform-cert", value_name = "PEM")]
        platform_cert: Option<PathBuf>,
        /// The text; `-` or nothing for stdin (one trailing newline is dropped).
        #[arg(value_name = "TEXT|-")]
        text: Option<String>,
    },
}

/// `wxkit pay orders ...`
#[derive(Debug, Subcommand)]
pub enum PayOrdersCommand {
    /// Lists orders, newest first: out_trade_no, status, total_fee (fen), refunded, trade type, description, placed
    /// (Beijing time) — a
    /// table, or JSON with --json.
    List {
        /// Only orders in this status: created, paid or closed.
        #[arg(long)]
        status: Option<String>,
        /// At most this many (default 50).
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
}

pub(super) const MAX_INPUT: u64 = 1024 * 1024;

pub(super) fn read_input(input: Option<&std::path::Path>) -> Result<Vec<u8>, CliError> {
    use std::io::Read;
    let mut buf = Vec::new();
    match input {
        None => std::io::stdin().take(MAX_INPUT + 1).read_to_end(&mut buf)?,
        Some(p) if p.as_os_str() == "-" => std::io::stdin().take(MAX_INPUT + 1).read_to_end(&mut buf)?,
        Some(p) => std::fs::File::open(p)
            .and_then(|f| f.take(MAX_INPUT + 1).read_to_end(&mut buf))
            .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", p.display())))?,
    };
    if buf.len() as u64 > MAX_INPUT {
        return Err(CliError::Usage("input larger than 1 MiB".into()));
    }
    Ok(buf)
}

/// A `GET` of the running server's admin API: (status, body text).
async fn get_from_server(settings: &Settings, server: Option<String>, path: &str) -> Result<(u16, String), CliError> {
    let (recorded, token) = super::pos::running_server(settings).await;
    let Some(token) = token else {
        return Err(CliError::Usage(
            "set admin.token (WXKIT__ADMIN__TOKEN) to the server's admin token".into(),
        ));
    };
    let base = server.unwrap_or(recorded);
    let base = base.trim_end_matches('/');
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .map_err(|e| CliError::Io(std::io::Error::other(e.to_string())))?;
    let response = http
        .get(format!("{base}{path}"))
        .bearer_auth(&token)
        .send()
        .await
        .map_err(|e| CliError::Io(std::io::Error::other(format!("cannot reach the server at {base}: {e}"))))?;
    let status = response.status().as_u16();
    Ok((status, response.text().await.unwrap_or_default()))
}

fn refused(what: &str, status: u16, body: &str) -> CliError {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    CliError::Invalid(format!(
        "{what} refused ({status} {}): {}",
        v["error"]["code"].as_str().unwrap_or("error"),
        v["error"]["message"].as_str().unwrap_or("no explanation")
    ))
}

/// `wxkit pay reconcile`: the day reconciled by the running server (made afresh); exit 1 when anything differs.
pub(super) async fn reconcile(
    settings: &Settings,
    server: Option<String>,
    date: &str,
    json: bool,
) -> Result<(), CliError> {
    if chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").is_err() {
        return Err(CliError::Usage(format!("--date {date:?} is not YYYY-MM-DD")));
    }
    let (status, body) = get_from_server(
        settings,
        server,
        &format!("/api/v1/pay/reconciliations?date={date}&refresh=true"),
    )
    .await?;
    if status != 200 {
        return Err(refused("reconciliation", status, &body));
    }
    let report: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let differences = report["differences"].as_array().cloned().unwrap_or_default();
    if json {
        print_json(&report)?;
    } else if differences.is_empty() {
        println!("{date}: clean ({} bill lines)", report["bill_rows"]);
    } else {
        println!("kind\tout_trade_no\tout_refund_no\tours\twechat");
        for d in &differences {
            let f = |k: &str| d[k].as_str().unwrap_or("-").to_owned();
            println!(
                "{}\t{}\t{}\t{}\t{}",
                f("kind"),
                f("out_trade_no"),
                f("out_refund_no"),
                f("ours"),
                f("wechat")
            );
        }
    }
    if differences.is_empty() {
        Ok(())
    } else {
        Err(CliError::Invalid(format!("{date}: {} differences", differences.len())))
    }
}

/// `wxkit pay bill`: the day's bill, saved.
pub(super) async fn bill(
    settings: &Settings,
    server: Option<String>,
    date: &str,
    kind: &str,
    output: Option<&std::path::Path>,
) -> Result<(), CliError> {
    if !matches!(kind, "trade" | "fundflow") {
        return Err(CliError::Usage(format!("--type {kind:?} is not trade or fundflow")));
    }
    if chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").is_err() {
        return Err(CliError::Usage(format!("--date {date:?} is not YYYY-MM-DD")));
    }
    let (status, body) =
        get_from_server(settings, server, &format!("/api/v1/pay/bills?date={date}&type={kind}")).await?;
    if status != 200 {
        return Err(refused("bill", status, &body));
    }
    match output {
        Some(path) => std::fs::write(path, body)?,
        None => print!("{body}"),
    }
    Ok(())
}

/// `wxkit pay refund`: the admin API of the running server does the work (the sandbox's simulator lives there).
pub(super) async fn refund(
    settings: &Settings,
    server: Option<String>,
    out_trade_no: &str,
    fee: i64,
    reason: Option<String>,
    force: bool,
    json: bool,
) -> Result<(), CliError> {
    if fee < 1 {
        return Err(CliError::Usage("--fee is in fen, at least 1".into()));
    }
    if out_trade_no.is_empty() || out_trade_no.len() > 32 || !out_trade_no.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(CliError::Usage(format!("{out_trade_no:?} is not an order number")));
    }
    // The settings' admin token, else (a sandbox) the one the server keeps in its database.
    let Some(token) = super::pos::running_server(settings).await.1 else {
        return Err(CliError::Usage(
            "set admin.token (WXKIT__ADMIN__TOKEN) to the server's admin token".into(),
        ));
    };
    let (status, body) = post_to_server(
        settings,
        server,
        &format!("/api/v1/pay/orders/{out_trade_no}/refunds"),
        &token,
        &serde_json::json!({"refund_fee": fee, "reason": reason, "force": force}),
    )
    .await?;
    if status == reqwest::StatusCode::CREATED {
        if json {
            return print_json(&body);
        }
        println!(
            "{}\t{}\t{}",
            body["out_refund_no"].as_str().unwrap_or_default(),
            body["refund_fee"],
            body["status"].as_str().unwrap_or_default()
        );
        return Ok(());
    }
    Err(CliError::Invalid(format!(
        "refund refused ({} {}): {}",
        status.as_u16(),
        body["error"]["code"].as_str().unwrap_or("error"),
        body["error"]["message"].as_str().unwrap_or("no explanation")
    )))
}

pub(super) fn pay_tool(command: PayCommand) -> Result<(), CliError> {
    match command {
        // Answered in `run` (it needs the database).
        PayCommand::Orders(_)
        | PayCommand::Refund { .. }
        | PayCommand::Reconcile { .. }
        | PayCommand::Bill { .. }
        | PayCommand::V3(PayV3Command::Certificates) => {
            Err(CliError::Usage("this pay command is answered with the settings".into()))
        }
        PayCommand::VerifyNotify {
            key,
            appid,
            mch_id,
            input,
        } => {
            require("key", &key)?;
            let body = read_input(input.as_deref())?;
            let key = wechat_pay::PayKey::new(key);
            let notify = wechat_pay::notify::verify_payment_notify(&key, &body)
                .map_err(|e| CliError::Invalid(format!("invalid notify: {e}")))?;
            for (field, expected) in [("appid", appid), ("mch_id", mch_id)] {
                if let Some(expected) = expected
                    && notify.fields.get(field) != Some(&expected)
                {
                    return Err(CliError::Invalid(format!("invalid notify: {field} is not {expected}")));
                }
            }
            let json = serde_json::to_string_pretty(&notify.fields).map_err(|e| CliError::Usage(e.to_string()))?;
            println!("{json}");
            Ok(())
        }
        PayCommand::V3(command) => pay_v3_tool(command),
        PayCommand::DecryptRefundNotify { key, input } => {
            require("key", &key)?;
            let body = read_input(input.as_deref())?;
            let key = wechat_pay::PayKey::new(key);
            let req_info = match wechat_pay::xml::parse(&body) {
                Ok(fields) => fields
                    .get("req_info")
                    .cloned()
                    .ok_or_else(|| CliError::Invalid("the notify has no req_info".into()))?,
                Err(_) => String::from_utf8(body)
                    .map_err(|_| CliError::Invalid("input is neither notify XML nor a req_info value".into()))?,
            };
            let fields = wechat_pay::notify::decrypt_req_info(&key, &req_info)
                .map_err(|e| CliError::Invalid(format!("cannot decrypt: {e}")))?;
            let json = serde_json::to_string_pretty(&fields).map_err(|e| CliError::Usage(e.to_string()))?;
            println!("{json}");
            Ok(())
        }
    }
}

pub(super) fn read_text(flag: &str, path: &std::path::Path) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|e| CliError::Usage(format!("--{flag} {}: {e}", path.display())))
}

/// `wxkit pay v3 encrypt`: a sensitive field under the WeChat Pay public key or a platform certificate.
fn encrypt_tool(
    public_key: Option<PathBuf>,
    platform_cert: Option<PathBuf>,
    text: Option<&str>,
) -> Result<(), CliError> {
    use wechat_pay::v3;
    let key = match (public_key, platform_cert) {
        (Some(path), None) => v3::PublicKey::from_pem(&read_text("public-key", &path)?)
            .map_err(|e| CliError::Usage(format!("--public-key {}: {e}", path.display())))?,
        (None, Some(path)) => {
            let cert = v3::Certificate::from_pem(&read_text("platform-cert", &path)?)
                .map_err(|e| CliError::Usage(format!("--platform-cert {}: {e}", path.display())))?;
            eprintln!("send with Wechatpay-Serial: {}", cert.serial());
            cert.public_key().clone()
        }
        _ => {
            return Err(CliError::Usage(
                "give exactly one of --public-key and --platform-cert".into(),
            ));
        }
    };
    let text = match text {
        None | Some("-") => {
            let raw = read_input(None)?;
            let mut t = String::from_utf8(raw).map_err(|_| CliError::Usage("the text is not UTF-8".into()))?;
            if t.ends_with('\n') {
                t.pop();
                if t.ends_with('\r') {
                    t.pop();
                }
            }
            t
        }
        Some(t) => t.to_owned(),
    };
    let sealed = v3::sensitive::encrypt(&key, &text).map_err(|e| CliError::Usage(e.to_string()))?;
    println!("{sealed}");
    Ok(())
}

pub(super) fn pay_v3_tool(command: PayV3Command) -> Result<(), CliError> {
    use wechat_pay::v3;
    match command {
        PayV3Command::Certificates => Err(CliError::Usage("this pay command is answered with the settings".into())),
        PayV3Command::Encrypt {
            public_key,
            platform_cert,
            text,
        } => encrypt_tool(public_key, platform_cert, text.as_deref()),
        PayV3Command::Sign {
            mchid,
            serial,
            private_key,
            method,
            url,
            timestamp,
            nonce,
            input,
        } => {
            require("mchid", &mchid)?;
            require("serial", &serial)?;
            let method = method.to_ascii_uppercase();
            if !matches!(method.as_str(), "GET" | "POST" | "PUT" | "PATCH" | "DELETE") {
                return Err(CliError::Usage(format!(
                    "--method {method:?} is not GET, POST, PUT, PATCH or DELETE"
                )));
            }
            if !url.starts_with('/') {
                return Err(CliError::Usage(
                    "--url is the path with its query, starting with / (e.g. /v3/certificates)".into(),
                ));
            }
            let key = v3::MerchantPrivateKey::from_pem(&read_text("private-key", &private_key)?)
                .map_err(|e| CliError::Usage(format!("--private-key {}: {e}", private_key.display())))?;
            let body = match input {
                Some(p) => read_input(Some(&p))?,
                None => Vec::new(),
            };
            let timestamp = timestamp.unwrap_or_else(|| chrono::Utc::now().timestamp());
            let nonce = nonce.unwrap_or_else(wechat_pay::sign::nonce);
            let signer = v3::RequestSigner::new(mchid, serial, key);
            println!("{}", signer.authorization(&method, &url, timestamp, &nonce, &body));
            Ok(())
        }
        PayV3Command::Verify {
            api_v3_key,
            public_key,
            public_key_id,
            platform_cert,
            timestamp,
            nonce,
            signature,
            serial,
            max_skew,
            input,
        } => {
            if public_key.len() != public_key_id.len() {
                return Err(CliError::Usage(
                    "give each --public-key with its --public-key-id, in the same order".into(),
                ));
            }
            if public_key.is_empty() && platform_cert.is_empty() {
                return Err(CliError::Usage(
                    "nothing to verify with: give --public-key with --public-key-id, or --platform-cert".into(),
                ));
            }
            if api_v3_key.len() != 32 {
                return Err(CliError::Usage("--api-v3-key must be 32 characters".into()));
            }
            if max_skew < 0 {
                return Err(CliError::Usage("--max-skew is seconds, 0 or more".into()));
            }
            let mut verifier = v3::Verifier::new().with_max_skew(max_skew);
            for (path, id) in public_key.iter().zip(public_key_id) {
                let key = v3::PublicKey::from_pem(&read_text("public-key", path)?)
                    .map_err(|e| CliError::Usage(format!("--public-key {}: {e}", path.display())))?;
                verifier = verifier.with_public_key(id, key);
            }
            for path in &platform_cert {
                let cert = v3::Certificate::from_pem(&read_text("platform-cert", path)?)
                    .map_err(|e| CliError::Usage(format!("--platform-cert {}: {e}", path.display())))?;
                verifier = verifier.with_certificate(&cert);
            }
            let body = read_input(input.as_deref())?;
            let message = v3::SignedMessage {
                timestamp: &timestamp,
                nonce: &nonce,
                signature: &signature,
                serial: &serial,
                body: &body,
            };
            verifier
                .verify(&message, chrono::Utc::now().timestamp())
                .map_err(|e| CliError::Invalid(format!("invalid notify: {e}")))?;
            let resource = v3::notify::decrypt_resource(&v3::ApiV3Key::new(api_v3_key), &body)
                .map_err(|e| CliError::Invalid(format!("decryption failed: {e}")))?;
            println!("{resource}");
            Ok(())
        }
    }
}

/// `wxkit pay v3 certificates`: downloads with the configured merchant.
pub(super) async fn pay_v3_certificates(settings: &Settings, json: bool) -> Result<(), CliError> {
    let mch_id = settings.pay.mch_id.clone().ok_or_else(|| {
        CliError::Config(ConfigError::Invalid {
            key: "pay.mch_id",
            message: "required to download platform certificates".into(),
        })
    })?;
    let keys = settings.pay.v3.keys()?;
    let signer = wechat_pay::v3::RequestSigner::new(mch_id, keys.cert_serial, keys.private_key);
    let mut builder = wechat_pay::v3::Client::builder(signer, keys.api_v3_key)
        .base_url(&settings.pay.base_url)
        .platform_certificates(true);
    if let Some((id, key)) = keys.public_key {
        builder = builder.public_key(id, key);
    }
    let client = builder
        .build()
        .map_err(|e| CliError::Usage(format!("pay.base_url: {e}")))?;
    let certs = client
        .download_certificates()
        .await
        .map_err(|e| CliError::Invalid(format!("certificate download failed: {e}")))?;
    let time = |t: i64| {
        chrono::DateTime::from_timestamp(t, 0)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default()
    };
    let value = serde_json::json!({"certificates": certs.iter().map(|c| serde_json::json!({
        "serial": c.serial(), "not_before": time(c.not_before()), "not_after": time(c.not_after()),
    })).collect::<Vec<_>>()});
    // The table in Beijing time like every other; JSON keeps RFC 3339.
    let beijing = |t: i64| crate::platform::time::beijing(t.saturating_mul(1000));
    let rows = certs
        .iter()
        .map(|c| vec![c.serial().to_owned(), beijing(c.not_before()), beijing(c.not_after())])
        .collect();
    print_rows(
        json,
        &value,
        &["SERIAL", "VALID FROM (UTC+8)", "VALID UNTIL (UTC+8)"],
        rows,
    )
}

/// `wxkit pay orders list`: the newest orders.
pub(super) async fn orders(
    config: Option<&std::path::Path>,
    json: bool,
    status: Option<String>,
    limit: i64,
) -> Result<(), CliError> {
    if let Some(s) = &status
        && !crate::features::pay::service::ORDER_STATUSES.contains(&s.as_str())
    {
        return Err(CliError::Usage(format!(
            "--status {s:?} is not created, paid, refunded or closed"
        )));
    }
    if !(1..=10_000).contains(&limit) {
        return Err(CliError::Usage("--limit must be 1 to 10000".into()));
    }
    let filter = crate::features::pay::service::OrderFilter {
        status,
        ..Default::default()
    };
    let orders = super::admin::with_db(config, move |conn, _| {
        Ok(crate::features::pay::service::order_lines(conn, &filter, None, limit)?)
    })
    .await?;
    let placed = crate::platform::time::beijing;
    let values = serde_json::Value::Array(orders.iter().map(crate::features::pay::order_json).collect());
    let rows = orders
        .iter()
        .map(|l| {
            let o = &l.order;
            vec![
                o.out_trade_no.clone(),
                l.shown_status().to_owned(),
                o.total_fee.to_string(),
                l.refunded_fen.to_string(),
                o.trade_type.clone(),
                o.description.clone(),
                placed(o.created_at),
            ]
        })
        .collect();
    print_rows(
        json,
        &values,
        &[
            "OUT_TRADE_NO",
            "STATUS",
            "TOTAL_FEE",
            "REFUNDED",
            "TYPE",
            "DESCRIPTION",
            "PLACED (UTC+8)",
        ],
        rows,
    )
}

//! The `wxkit` command line.

use crate::configuration::{ConfigError, Settings};
use crate::db;
use crate::startup::{Application, StartupError};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// wxkit: a self-hostable WeChat backend with a bundled WeChat simulator.
#[derive(Debug, Parser)]
#[command(name = "wxkit", version, about, propagate_version = true)]
pub struct Cli {
    /// Settings file (default: ./wxkit.toml if present). Environment variables WXKIT__SECTION__KEY override it.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print results as JSON (one document) instead of readable tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The log format asked for: `serve --log-format`, else `WXKIT_LOG_FORMAT`.
    pub fn log_format(&self) -> Option<&str> {
        match &self.command {
            Command::Serve {
                log_format: Some(f), ..
            } => Some(f.as_str()),
            _ => None,
        }
        .or(LOG_FORMAT_ENV.as_deref())
    }
}

static LOG_FORMAT_ENV: std::sync::LazyLock<Option<String>> =
    std::sync::LazyLock::new(|| std::env::var("WXKIT_LOG_FORMAT").ok());

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (migrates the database first). Needs wechat.app_id and wechat.app_secret, or
    /// --sandbox.
    Serve {
        /// Listen address, HOST:PORT (overrides server.addr; default 127.0.0.1:8080).
        #[arg(long, value_name = "HOST:PORT")]
        addr: Option<String>,
        /// Sandbox mode: the bundled WeChat simulator in-process, demo data, tokens printed (server.mode = sandbox).
        #[arg(long)]
        sandbox: bool,
        /// Where the sandbox's simulator listens, HOST:PORT (overrides server.sandbox_sim_addr; default a free
        /// loopback port). Use 0.0.0.0:9000 (and --addr 0.0.0.0:8080, server.public_base_url) for a phone on the LAN.
        #[arg(long, value_name = "HOST:PORT")]
        sandbox_sim_addr: Option<String>,
        /// Log format on stderr: text (default) or json (one object per line, for log shippers).
        #[arg(long, value_name = "FORMAT", value_parser = ["text", "json"])]
        log_format: Option<String>,
    },
    /// Apply pending database migrations and exit (creates a SQLite file; with --create-database also a missing
    /// PostgreSQL database).
    Migrate {
        /// On PostgreSQL, create the database first when it does not exist (the user needs CREATEDB).
        #[arg(long)]
        create_database: bool,
    },
    /// Run the standalone WeChat simulator.
    #[cfg(feature = "sandbox")]
    Sim {
        /// Listen address, HOST:PORT.
        #[arg(long, default_value = "127.0.0.1:9000", value_name = "HOST:PORT")]
        addr: String,
        /// Register an app, APPID=SECRET (repeatable).
        #[arg(long = "app", value_name = "APPID=SECRET", value_parser = parse_app)]
        apps: Vec<(String, String)>,
        /// Register a WeChat Pay merchant, MCH_ID=KEY (repeatable).
        #[arg(long = "merchant", value_name = "MCH_ID=KEY", value_parser = parse_app)]
        merchants: Vec<(String, String)>,
    },
    /// Render TEXT as a QR code image (PNG or SVG) to stdout or a file.
    Qr(QrArgs),
    /// Compute a WeChat signature and print it alone.
    #[command(subcommand)]
    Sign(SignCommand),
    /// WeChat Pay tools.
    #[command(subcommand)]
    Pay(PayCommand),
    /// Official-account messages: safe-mode push tools, and sending template messages with the configured account.
    #[command(subcommand)]
    Msg(MsgCommand),
    /// The official account's parametric QR codes (with the configured account).
    #[command(subcommand)]
    Qrcode(QrcodeCommand),
    /// Merchants.
    #[command(subcommand)]
    Merchant(MerchantCommand),
    /// Merchant staff who may redeem coupons.
    #[command(subcommand)]
    Staff(StaffCommand),
    /// Campaigns.
    #[command(subcommand)]
    Campaign(CampaignCommand),
    /// Coupons.
    #[command(subcommand)]
    Coupon(CouponCommand),
    /// The redemption log (核销记录).
    #[command(subcommand)]
    Redemptions(RedemptionsCommand),
}

/// `wxkit redemptions ...`
#[derive(Debug, Subcommand)]
pub enum RedemptionsCommand {
    /// Redemptions, newest first: id, time (UTC+8), channel, code, campaign, staff.
    List {
        /// Only this merchant's.
        #[arg(long = "merchant-id")]
        merchant_id: Option<i64>,
        /// Only this campaign's.
        #[arg(long = "campaign-id")]
        campaign_id: Option<i64>,
        /// At or after (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Before (RFC 3339).
        #[arg(long)]
        until: Option<String>,
        /// At most this many (default 100; with --csv, everything up to 100,000).
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// Print CSV (the same as `GET /api/v1/redemptions` with `Accept: text/csv`).
        #[arg(long)]
        csv: bool,
    },
}

/// `wxkit merchant ...`
#[derive(Debug, Subcommand)]
pub enum MerchantCommand {
    /// Create a merchant; prints it as JSON.
    Create {
        /// Name.
        #[arg(long)]
        name: String,
    },
    /// List merchants.
    List,
    /// Show a merchant.
    Show {
        /// Merchant id.
        id: i64,
    },
}

/// `wxkit staff ...`
#[derive(Debug, Subcommand)]
pub enum StaffCommand {
    /// Add a staff member; prints `{id, api_token}` (the token is shown once).
    Add {
        /// The merchant.
        #[arg(long = "merchant-id")]
        merchant_id: i64,
        /// The staff member's WeChat openid (for the scan page).
        #[arg(long)]
        openid: String,
        /// Display name.
        #[arg(long)]
        name: String,
    },
    /// List staff.
    List {
        /// Only this merchant's.
        #[arg(long = "merchant-id")]
        merchant_id: Option<i64>,
    },
    /// Remove a staff member (they can no longer redeem).
    Remove {
        /// Staff id.
        id: i64,
    },
}

/// `wxkit campaign ...`
#[derive(Debug, Subcommand)]
pub enum CampaignCommand {
    /// Create a campaign; prints it as JSON.
    Create(crate::features::merchants::routes::CampaignRequest),
    /// List campaigns.
    List {
        /// Only this merchant's.
        #[arg(long = "merchant-id")]
        merchant_id: Option<i64>,
    },
    /// Show a campaign.
    Show {
        /// Campaign id.
        id: i64,
    },
    /// End a campaign now: no more issuing, buying or redeeming its coupons.
    End {
        /// Campaign id.
        id: i64,
        /// Why (kept in the audit log).
        #[arg(long)]
        reason: Option<String>,
    },
}

/// `wxkit coupon ...`
#[derive(Debug, Subcommand)]
pub enum CouponCommand {
    /// Issue a coupon; prints `{code, url, qr_url, ...}`.
    Issue {
        /// The campaign.
        #[arg(long = "campaign-id")]
        campaign_id: i64,
        /// The customer it belongs to.
        #[arg(long = "owner-openid")]
        owner_openid: Option<String>,
    },
    /// Show a coupon (public view plus owner and redemption).
    Show {
        /// The code.
        code: String,
    },
    /// List a campaign's coupons.
    List {
        /// The campaign.
        #[arg(long = "campaign-id")]
        campaign_id: i64,
        /// Only coupons in this status: issued, redeemed, void or expired.
        #[arg(long)]
        status: Option<String>,
        /// Only this customer's.
        #[arg(long = "owner-openid")]
        owner_openid: Option<String>,
        /// At most this many (default 100).
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Void a coupon that is not redeemed (audited with the reason; its page then says 已作废, the POS answers 410).
    Void {
        /// The code.
        code: String,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// Redeem a coupon through the running server's POS API, as a staff tool would (staff token from --token or
    /// WXKIT_STAFF_TOKEN).
    Redeem {
        /// The code as scanned or typed (any case, grouped with spaces or dashes, or the coupon's URL).
        code: String,
        /// The staff member's POS token.
        #[arg(long, env = "WXKIT_STAFF_TOKEN", hide_env_values = true)]
        token: String,
        /// The server (default: server.public_base_url, or http://server.addr).
        #[arg(long)]
        server: Option<String>,
    },
}

fn print_json(value: &serde_json::Value) -> Result<(), CliError> {
    println!(
        "{}",
        serde_json::to_string_pretty(value).map_err(|e| CliError::Usage(e.to_string()))?
    );
    Ok(())
}

async fn with_db<T: Send + 'static>(
    config: Option<&std::path::Path>,
    work: impl FnOnce(&mut db::DbConnection, &Settings) -> Result<T, CliError> + Send + 'static,
) -> Result<T, CliError> {
    let settings = Settings::load(config)?;
    tokio::task::spawn_blocking(move || {
        let backend = db::Backend::from_url(&settings.database.url)?;
        // Only `serve` and `migrate` create a database: a data command in the wrong directory must not leave an
        // empty ./wxkit.db behind and report "nothing found".
        if !backend.exists() {
            let shown = match &backend {
                db::Backend::Sqlite(path) => std::path::absolute(path)
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|_| path.clone()),
                db::Backend::Postgres(_) => backend.target(),
            };
            return Err(CliError::Usage(format!(
                "no database at {shown} (database.url): run `wxkit migrate` (or `wxkit serve`) to create it, or point \
                 --config / WXKIT__DATABASE__URL at the right one"
            )));
        }
        eprintln!("database: {}", backend.target());
        backend.migrate()?;
        let mut conn = backend.establish()?;
        work(&mut conn, &settings)
    })
    .await
    .map_err(|e| CliError::Usage(e.to_string()))?
}

fn base_url(settings: &Settings) -> String {
    settings
        .server
        .public_base_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", settings.server.addr))
        .trim_end_matches('/')
        .to_owned()
}

/// The command-line form of a refused admin use case, by the exit-code convention (docs: README "CLI"): a field
/// breaking its rule is bad usage (2); something not found, or a change the current state refuses, is 1.
fn admin_error(e: crate::features::merchants::service::AdminError) -> CliError {
    use crate::features::merchants::service::AdminError;
    match e {
        AdminError::Invalid { field, message } => CliError::Usage(format!("--{} {message}", field.replace('_', "-"))),
        AdminError::NotFound(what) => CliError::Invalid(what.to_owned()),
        AdminError::Conflict { message, .. } => CliError::Invalid(message),
        AdminError::Db(e) => CliError::Database(e),
    }
}

fn api_error(e: crate::http::errors::ApiError) -> CliError {
    CliError::Usage(e.message().to_owned())
}

/// Prints rows as an aligned table (headers first), or with `--json` the JSON value instead.
fn print_rows(json: bool, value: &serde_json::Value, headers: &[&str], rows: Vec<Vec<String>>) -> Result<(), CliError> {
    if json {
        return print_json(value);
    }
    if rows.is_empty() {
        eprintln!("(none)");
        return Ok(());
    }
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let pad = widths.get(i).copied().unwrap_or(0).saturating_sub(c.chars().count());
                format!("{c}{}", " ".repeat(pad))
            })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    println!("{}", line(headers.iter().map(|h| (*h).to_owned()).collect()));
    for row in rows {
        println!("{}", line(row));
    }
    Ok(())
}

/// A JSON field as table text.
fn cell(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "-".into(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn rfc3339_arg(flag: &str, value: Option<&str>) -> Result<Option<i64>, CliError> {
    value
        .map(|v| {
            chrono::DateTime::parse_from_rfc3339(v)
                .map(|t| t.timestamp_millis())
                .map_err(|_| CliError::Usage(format!("--{flag} must be RFC 3339, e.g. 2026-12-01T00:00:00+08:00")))
        })
        .transpose()
}

fn limit_arg(limit: i64, max: i64) -> Result<i64, CliError> {
    if (1..=max).contains(&limit) {
        Ok(limit)
    } else {
        Err(CliError::Usage(format!("--limit must be 1 to {max}")))
    }
}

async fn data_tool(cli_config: Option<PathBuf>, json: bool, command: Command) -> Result<(), CliError> {
    use crate::features::coupons::admin;
    use crate::features::coupons::repo as coupons_repo;
    use crate::features::merchants::repo as merchants_repo;
    use crate::features::merchants::routes::{campaign_json_at, staff_json};
    use crate::features::merchants::service;
    use crate::platform::clock::now_ms;
    use serde_json::{Value, json as j};
    let config = cli_config.clone();
    let merchant_value = |m: &merchants_repo::MerchantRow| j!({"id": m.id, "name": m.name, "created_at": crate::features::coupons::routes::rfc3339(m.created_at)});
    match command {
        Command::Merchant(MerchantCommand::Create { name }) => {
            let m = with_db(config.as_deref(), move |conn, _| {
                service::create_merchant(conn, &name, now_ms()).map_err(admin_error)
            })
            .await?;
            print_json(&j!({"id": m.id, "name": m.name}))
        }
        Command::Merchant(MerchantCommand::List) => {
            let rows = with_db(config.as_deref(), |conn, _| Ok(merchants_repo::list_merchants(conn)?)).await?;
            let value = Value::Array(rows.iter().map(merchant_value).collect());
            let table = rows.iter().map(|m| vec![m.id.to_string(), m.name.clone()]).collect();
            print_rows(json, &value, &["ID", "NAME"], table)
        }
        Command::Merchant(MerchantCommand::Show { id }) => {
            let m = with_db(config.as_deref(), move |conn, _| {
                Ok(merchants_repo::merchant(conn, id)?)
            })
            .await?;
            let m = m.ok_or_else(|| CliError::Invalid(format!("no merchant {id}")))?;
            print_json(&merchant_value(&m))
        }
        Command::Staff(StaffCommand::Add {
            merchant_id,
            openid,
            name,
        }) => {
            let service::NewStaffMember { row, api_token } = with_db(config.as_deref(), move |conn, _| {
                service::add_staff(conn, merchant_id, &openid, &name, now_ms()).map_err(admin_error)
            })
            .await?;
            print_json(
                &j!({"id": row.id, "merchant_id": row.merchant_id, "openid": row.openid, "name": row.name, "api_token": api_token}),
            )
        }
        Command::Staff(StaffCommand::List { merchant_id }) => {
            let rows = with_db(config.as_deref(), move |conn, _| {
                Ok(merchants_repo::list_staff(conn, merchant_id)?)
            })
            .await?;
            let value = Value::Array(rows.iter().map(staff_json).collect());
            let table = rows
                .iter()
                .map(|s| {
                    vec![
                        s.id.to_string(),
                        s.merchant_id.to_string(),
                        s.openid.clone(),
                        s.name.clone(),
                        if s.active { "active" } else { "removed" }.to_owned(),
                    ]
                })
                .collect();
            print_rows(json, &value, &["ID", "MERCHANT", "OPENID", "NAME", "STATUS"], table)
        }
        Command::Staff(StaffCommand::Remove { id }) => {
            with_db(config.as_deref(), move |conn, _| {
                service::remove_staff(conn, id).map_err(|e| match e {
                    service::AdminError::NotFound(_) => CliError::Invalid(format!("no active staff member {id}")),
                    other => admin_error(other),
                })
            })
            .await?;
            if json {
                print_json(&j!({"removed": id}))
            } else {
                println!("removed staff {id}");
                Ok(())
            }
        }
        Command::Campaign(CampaignCommand::Create(request)) => {
            let new = request.validate(now_ms()).map_err(api_error)?;
            let row = with_db(config.as_deref(), move |conn, _| {
                service::create_campaign(conn, &new, now_ms()).map_err(admin_error)
            })
            .await?;
            print_json(&campaign_json_at(&row, now_ms()))
        }
        Command::Campaign(CampaignCommand::List { merchant_id }) => {
            let rows = with_db(config.as_deref(), move |conn, _| {
                Ok(merchants_repo::list_campaigns(conn, merchant_id)?)
            })
            .await?;
            let now = now_ms();
            let values: Vec<Value> = rows.iter().map(|c| campaign_json_at(c, now)).collect();
            let table = values
                .iter()
                .map(|c| {
                    vec![
                        cell(&c["id"]),
                        cell(&c["merchant_id"]),
                        cell(&c["title"]),
                        cell(&c["status"]),
                        match c["quantity"].as_i64() {
                            Some(q) => format!("{} of {q}", cell(&c["issued"])),
                            None => cell(&c["issued"]),
                        },
                        cell(&c["valid_until"]),
                    ]
                })
                .collect();
            print_rows(
                json,
                &Value::Array(values),
                &["ID", "MERCHANT", "TITLE", "STATUS", "ISSUED", "VALID UNTIL"],
                table,
            )
        }
        Command::Campaign(CampaignCommand::Show { id }) => {
            let c = with_db(config.as_deref(), move |conn, _| {
                Ok(merchants_repo::campaign(conn, id)?)
            })
            .await?;
            let c = c.ok_or_else(|| CliError::Invalid(format!("no campaign {id}")))?;
            print_json(&campaign_json_at(&c, now_ms()))
        }
        Command::Campaign(CampaignCommand::End { id, reason }) => {
            if reason.as_ref().is_some_and(|r| r.chars().count() > 200) {
                return Err(CliError::Usage("--reason must be at most 200 characters".into()));
            }
            let now = now_ms();
            let c = with_db(config.as_deref(), move |conn, _| {
                Ok(merchants_repo::end_campaign(conn, id, now, reason.as_deref())?)
            })
            .await?;
            let c = c.ok_or_else(|| CliError::Invalid(format!("no campaign {id}")))?;
            print_json(&campaign_json_at(&c, now))
        }
        Command::Coupon(CouponCommand::Issue {
            campaign_id,
            owner_openid,
        }) => {
            let (coupon, base) = with_db(config.as_deref(), move |conn, settings| {
                let (c, _) =
                    service::issue_coupon(conn, campaign_id, owner_openid.as_deref(), now_ms()).map_err(admin_error)?;
                Ok((c, base_url(settings)))
            })
            .await?;
            print_json(&j!({
                "code": coupon.code, "campaign_id": coupon.campaign_id, "owner_openid": coupon.owner_openid,
                "url": format!("{base}/c/{}", coupon.code), "qr_url": format!("{base}/c/{}/qr.png", coupon.code),
            }))
        }
        Command::Coupon(CouponCommand::Show { code }) => {
            let Some(parsed) = redemption_core::CouponCode::parse_typed(&code) else {
                return Err(CliError::Usage(format!(
                    "{code:?} is not a coupon code (26 characters A-Z, 2-7)"
                )));
            };
            let found = with_db(config.as_deref(), move |conn, settings| {
                Ok(coupons_repo::coupon_by_code(conn, parsed.as_str())?.map(|(c, k)| (c, k, base_url(settings))))
            })
            .await?;
            let Some((c, k, base)) = found else {
                return Err(CliError::Invalid(format!("no coupon {code}")));
            };
            print_json(&j!({
                "code": c.code, "campaign": campaign_json_at(&k, now_ms()), "owner_openid": c.owner_openid,
                "status": c.status, "redeemed_at": c.redeemed_at.map(crate::features::coupons::routes::rfc3339),
                "redeemed_by": c.redeemed_by, "url": format!("{base}/c/{}", c.code),
            }))
        }
        Command::Coupon(CouponCommand::List {
            campaign_id,
            status,
            owner_openid,
            limit,
        }) => {
            let limit = limit_arg(limit, 10_000)?;
            let status = status
                .map(|s| {
                    admin::StatusFilter::parse(&s).ok_or_else(|| {
                        CliError::Usage(format!("--status {s:?} is not issued, redeemed, void or expired"))
                    })
                })
                .transpose()?;
            let now = now_ms();
            let found = with_db(config.as_deref(), move |conn, _| {
                Ok(admin::campaign_coupons(
                    conn,
                    campaign_id,
                    status,
                    owner_openid.as_deref(),
                    None,
                    limit,
                    now,
                )?)
            })
            .await?;
            let (campaign, rows) = found.ok_or_else(|| CliError::Invalid(format!("no campaign {campaign_id}")))?;
            let campaign = campaign.to_domain();
            let values: Vec<Value> = rows
                .iter()
                .map(|c| {
                    let status = c
                        .to_domain()
                        .map(|d| d.effective_status(&campaign, now).as_str())
                        .unwrap_or("void");
                    j!({
                        "code": c.code, "status": status, "owner_openid": c.owner_openid,
                        "redeemed_at": c.redeemed_at.map(crate::features::coupons::routes::rfc3339),
                        "redeemed_by": c.redeemed_by,
                    })
                })
                .collect();
            let table = values
                .iter()
                .map(|v| {
                    vec![
                        cell(&v["code"]),
                        cell(&v["status"]),
                        cell(&v["owner_openid"]),
                        cell(&v["redeemed_at"]),
                    ]
                })
                .collect();
            print_rows(
                json,
                &Value::Array(values),
                &["CODE", "STATUS", "OWNER", "REDEEMED AT"],
                table,
            )
        }
        Command::Coupon(CouponCommand::Void { code, reason }) => {
            let reason = reason.trim().to_owned();
            if reason.is_empty() || reason.chars().count() > admin::REASON_MAX {
                return Err(CliError::Usage(format!(
                    "--reason must be 1 to {} characters",
                    admin::REASON_MAX
                )));
            }
            let Some(parsed) = redemption_core::CouponCode::parse_typed(&code) else {
                return Err(CliError::Invalid(format!("no coupon {code}")));
            };
            let outcome = with_db(config.as_deref(), move |conn, _| {
                Ok(admin::void(conn, parsed.as_str(), &reason, now_ms())?)
            })
            .await?;
            match outcome {
                admin::VoidOutcome::Voided(c, _) | admin::VoidOutcome::AlreadyVoid(c, _) => {
                    print_json(&j!({"code": c.code, "status": "void"}))
                }
                admin::VoidOutcome::Redeemed(c, _) => Err(CliError::Invalid(format!(
                    "coupon {} was redeemed{}: a redeemed coupon cannot be voided",
                    c.code,
                    c.redeemed_at
                        .map(|t| format!(" at {}", crate::features::coupons::routes::rfc3339(t)))
                        .unwrap_or_default()
                ))),
                admin::VoidOutcome::NotFound => Err(CliError::Invalid(format!("no coupon {code}"))),
            }
        }
        Command::Redemptions(RedemptionsCommand::List {
            merchant_id,
            campaign_id,
            since,
            until,
            limit,
            csv,
        }) => {
            let filter = admin::LogFilter {
                merchant_id,
                campaign_id,
                since: rfc3339_arg("since", since.as_deref())?,
                until: rfc3339_arg("until", until.as_deref())?,
            };
            let n = if csv {
                crate::features::coupons::admin_routes::CSV_MAX_ROWS
            } else {
                limit_arg(limit, 10_000)?
            };
            let rows = with_db(config.as_deref(), move |conn, _| {
                Ok(admin::redemption_log(conn, &filter, None, n)?)
            })
            .await?;
            if csv {
                use std::io::Write as _;
                let mut out = std::io::stdout().lock();
                out.write_all(admin::CSV_HEADER.as_bytes())?;
                for r in &rows {
                    out.write_all(admin::csv_line(r).as_bytes())?;
                }
                return Ok(());
            }
            let values: Vec<Value> = rows
                .iter()
                .map(|r| {
                    j!({
                        "id": r.id, "redeemed_at": crate::features::coupons::routes::rfc3339(r.at), "channel": r.channel,
                        "coupon_code": r.coupon_code, "campaign_id": r.campaign_id, "campaign_title": r.campaign_title,
                        "merchant_id": r.merchant_id,
                        "staff": r.staff_id.map(|id| j!({"id": id, "name": r.staff_name})),
                    })
                })
                .collect();
            let table = rows
                .iter()
                .map(|r| {
                    vec![
                        r.id.to_string(),
                        crate::http::pages::beijing(r.at),
                        r.channel.clone(),
                        r.coupon_code.clone(),
                        r.campaign_title.clone(),
                        r.staff_name.clone().unwrap_or_else(|| "-".into()),
                    ]
                })
                .collect();
            print_rows(
                json,
                &Value::Array(values),
                &["ID", "TIME (UTC+8)", "CHANNEL", "CODE", "CAMPAIGN", "STAFF"],
                table,
            )
        }
        _ => Err(CliError::Usage("not a data command".into())),
    }
}

/// POSTs `body` as JSON to the running server (`server`, or the settings' public URL) with a bearer token; the status
/// and the JSON answer (null when it is not JSON). A server that cannot be reached is an I/O error (exit 1).
async fn post_to_server(
    settings: &Settings,
    server: Option<String>,
    path: &str,
    token: &str,
    body: &serde_json::Value,
) -> Result<(reqwest::StatusCode, serde_json::Value), CliError> {
    let base = server.unwrap_or_else(|| base_url(settings));
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
async fn redeem_via_pos(
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
        println!(
            "redeemed {} ({}) at {} by {}",
            body["coupon"]["code"].as_str().unwrap_or_default(),
            body["coupon"]["title"].as_str().unwrap_or_default(),
            body["redeemed_at"].as_str().unwrap_or_default(),
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

/// The safe-mode parameters shared by `wxkit msg` commands.
#[derive(Debug, clap::Args)]
pub struct MsgArgs {
    /// The server token.
    #[arg(long)]
    pub token: String,
    /// The 43-character EncodingAESKey.
    #[arg(long = "aes-key")]
    pub aes_key: String,
    /// The official account's appid.
    #[arg(long)]
    pub appid: String,
}

/// `wxkit msg ...`
#[derive(Debug, Subcommand)]
pub enum MsgCommand {
    /// Verify msg_signature and decrypt a safe-mode push body (XML with an Encrypt element) from FILE or stdin;
    /// prints the plaintext message.
    Decrypt {
        #[command(flatten)]
        keys: MsgArgs,
        /// The `timestamp` query parameter.
        #[arg(long)]
        timestamp: String,
        /// The `nonce` query parameter.
        #[arg(long)]
        nonce: String,
        /// The `msg_signature` query parameter.
        #[arg(long = "msg-signature")]
        msg_signature: String,
        /// The push body; `-` or nothing for stdin.
        #[arg(value_name = "FILE|-")]
        input: Option<PathBuf>,
    },
    /// Encrypt a plaintext message (FILE or stdin) into the safe-mode envelope
    /// `<xml><Encrypt/><MsgSignature/><TimeStamp/><Nonce/></xml>`.
    Encrypt {
        #[command(flatten)]
        keys: MsgArgs,
        /// Timestamp (default: now).
        #[arg(long)]
        timestamp: Option<String>,
        /// Nonce (default: random).
        #[arg(long)]
        nonce: Option<String>,
        /// The message; `-` or nothing for stdin.
        #[arg(value_name = "FILE|-")]
        input: Option<PathBuf>,
    },
    /// Send a template message with the configured official account (wechat.app_id / app_secret; the access token
    /// is shared with the server through the database). Prints WeChat's msgid; a refusal (43004 not following,
    /// 40037 template, 47003 data…) exits 1 naming it.
    SendTemplate {
        /// The recipient's openid.
        #[arg(long)]
        to: String,
        /// The template id.
        #[arg(long)]
        template: String,
        /// A data field, `key=value`; repeat for each.
        #[arg(long = "data", value_name = "KEY=VALUE", required = true)]
        data: Vec<String>,
        /// Where a tap goes.
        #[arg(long)]
        url: Option<String>,
        /// WeChat's de-duplication id (the same id within 24 h is sent once).
        #[arg(long = "client-msg-id")]
        client_msg_id: Option<String>,
    },
}

/// `wxkit qrcode ...`
#[derive(Debug, Subcommand)]
pub enum QrcodeCommand {
    /// Create a parametric QR code (`qrcode/create`) for SCENE: temporary with --expire SECS (60 to 2592000), else
    /// permanent. Prints `{scene, ticket, url, qr_url, expires_at}` as JSON; a scan sends the account `subscribe`
    /// with `qrscene_SCENE` (new follower) or `SCAN` (follower).
    Create {
        /// The scene: digits for a numeric scene id, anything else (1-64 characters) as a scene string.
        #[arg(long)]
        scene: String,
        /// Seconds the code stays valid; absent: permanent.
        #[arg(long)]
        expire: Option<u32>,
    },
}

/// The configured official account's token manager, sharing the server's token through its database (a token of
/// its own would end the server's five minutes later).
async fn account_tokens(
    config: Option<&std::path::Path>,
) -> Result<(wechat_core::AccessTokenManager, Settings), CliError> {
    let settings = Settings::load(config)?;
    let (Some(app_id), Some(secret)) = (&settings.wechat.app_id, &settings.wechat.app_secret) else {
        return Err(CliError::Config(ConfigError::Invalid {
            key: "wechat.app_id",
            message: "wechat.app_id and wechat.app_secret are needed to call WeChat".into(),
        }));
    };
    let url = settings.database.url.clone();
    let (pool_size, cache_kib) = (2, settings.database.sqlite_cache_kib);
    let backend = db::Backend::from_url(&url)?;
    if !backend.exists() {
        return Err(CliError::Usage(format!(
            "no database at {} (database.url): run `wxkit migrate` first — the access token is kept there",
            backend.target()
        )));
    }
    let (_, pool) = tokio::task::spawn_blocking(move || db::connect_and_migrate(&url, pool_size, cache_kib))
        .await
        .map_err(|e| CliError::Usage(e.to_string()))??;
    let endpoints = wechat_core::Endpoints::new(&settings.wechat.api_base_url, &settings.wechat.open_base_url)
        .map_err(|e| CliError::Usage(format!("wechat.api_base_url / wechat.open_base_url: {e}")))?;
    let app = wechat_core::App::builder()
        .app_id(app_id.as_str())
        .secret(secret.clone())
        .endpoints(endpoints)
        .token_store(std::sync::Arc::new(crate::db::token_store::DbTokenStore::new(pool)))
        .build()
        .map_err(|e| CliError::Usage(e.to_string()))?;
    Ok((app.tokens().clone(), settings))
}

async fn send_template(config: Option<&std::path::Path>, command: MsgCommand) -> Result<(), CliError> {
    use wechat_message::send::{Data, MessageClient, TemplateMessage};
    let MsgCommand::SendTemplate {
        to,
        template,
        data,
        url,
        client_msg_id,
    } = command
    else {
        return Err(CliError::Usage("not a send command".into()));
    };
    let mut fields = Data::new();
    for pair in &data {
        let Some((k, v)) = pair.split_once('=').filter(|(k, _)| !k.is_empty()) else {
            return Err(CliError::Usage(format!("--data {pair:?} is not KEY=VALUE")));
        };
        fields = fields.with(k, v);
    }
    let mut message = TemplateMessage::new(&to, &template, fields).map_err(|e| CliError::Usage(e.to_string()))?;
    if let Some(u) = &url {
        message = message.url(u).map_err(|e| CliError::Usage(format!("--url: {e}")))?;
    }
    if let Some(id) = &client_msg_id {
        message = message.client_msg_id(id);
    }
    let (tokens, _) = account_tokens(config).await?;
    match MessageClient::new(tokens).send_template(&message).await {
        Ok(msgid) => {
            println!("{msgid}");
            Ok(())
        }
        Err(e) => Err(CliError::Invalid(match e.refusal() {
            Some(r) => format!("WeChat refused the message ({r:?}): {e}"),
            None => format!("the message was not sent: {e}"),
        })),
    }
}

async fn qrcode_tool(config: Option<&std::path::Path>, command: QrcodeCommand) -> Result<(), CliError> {
    use wechat_message::qrcode::{QrCodeClient, QrCodeRequest, Scene};
    let QrcodeCommand::Create { scene, expire } = command;
    let parsed = match scene.parse::<u32>() {
        Ok(id) => Scene::Id(id),
        Err(_) => Scene::Str(scene.clone()),
    };
    let request = match expire {
        Some(secs) => QrCodeRequest::temporary(parsed, secs),
        None => QrCodeRequest::permanent(parsed),
    }
    .map_err(|e| CliError::Usage(format!("--scene/--expire: {e}")))?;
    let (tokens, settings) = account_tokens(config).await?;
    let ticket = QrCodeClient::new(tokens)
        .create(&request)
        .await
        .map_err(|e| CliError::Invalid(format!("WeChat did not create the code: {e}")))?;
    let show = settings.wechat.mp_base_url.clone().unwrap_or_else(|| {
        if settings.wechat.api_base_url.trim_end_matches('/') == "https://api.weixin.qq.com" {
            wechat_message::qrcode::SHOW_BASE_URL.to_owned()
        } else {
            settings.wechat.api_base_url.clone()
        }
    });
    let expires_at = ticket.expire_seconds.and_then(|s| {
        chrono::DateTime::from_timestamp(chrono::Utc::now().timestamp() + i64::try_from(s).unwrap_or(0), 0)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    });
    print_json(&serde_json::json!({
        "scene": scene, "ticket": ticket.ticket, "url": ticket.url, "qr_url": ticket.image_url(&show),
        "expires_at": expires_at,
    }))
}

fn msg_tool(command: MsgCommand) -> Result<(), CliError> {
    let crypto = |k: &MsgArgs| {
        require("token", &k.token)?;
        require("appid", &k.appid)?;
        wechat_core::push::MessageCrypto::new(&k.token, &k.aes_key, &k.appid)
            .map_err(|e| CliError::Usage(format!("--aes-key: {e}")))
    };
    match command {
        MsgCommand::SendTemplate { .. } => {
            Err(CliError::Usage("this msg command is answered with the settings".into()))
        }
        MsgCommand::Decrypt {
            keys,
            timestamp,
            nonce,
            msg_signature,
            input,
        } => {
            let crypto = crypto(&keys)?;
            require_timestamp(&timestamp)?;
            require("nonce", &nonce)?;
            let body = read_input(input.as_deref())?;
            let plain = crypto
                .decrypt_message(&msg_signature, &timestamp, &nonce, &body)
                .map_err(|e| CliError::Invalid(format!("cannot decrypt: {e}")))?;
            println!("{plain}");
            Ok(())
        }
        MsgCommand::Encrypt {
            keys,
            timestamp,
            nonce,
            input,
        } => {
            let crypto = crypto(&keys)?;
            let timestamp = timestamp.unwrap_or_else(|| chrono::Utc::now().timestamp().to_string());
            require_timestamp(&timestamp)?;
            let nonce = nonce.unwrap_or_else(|| rand::random::<u32>().to_string());
            require("nonce", &nonce)?;
            let body = read_input(input.as_deref())?;
            let message = String::from_utf8(body).map_err(|_| CliError::Usage("the message must be UTF-8".into()))?;
            println!(
                "{}",
                crypto.encrypt_reply(message.trim_end_matches('\n'), &timestamp, &nonce)
            );
            Ok(())
        }
    }
}

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
        /// The server (default: server.public_base_url, or http://server.addr); the admin token is admin.token.
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
    /// and prints serial, valid from and valid until (UTC) — a table, or JSON with --json.
    Certificates,
}

/// `wxkit pay orders ...`
#[derive(Debug, Subcommand)]
pub enum PayOrdersCommand {
    /// Lists orders, newest first: out_trade_no, status, total_fee (fen), trade type, description, placed (UTC) — a
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

const MAX_INPUT: u64 = 1024 * 1024;

fn read_input(input: Option<&std::path::Path>) -> Result<Vec<u8>, CliError> {
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

/// `wxkit pay refund`: the admin API of the running server does the work (the sandbox's simulator lives there).
async fn refund(
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
    let Some(token) = settings.admin.token.as_ref() else {
        return Err(CliError::Usage(
            "set admin.token (WXKIT__ADMIN__TOKEN) to the server's admin token".into(),
        ));
    };
    let (status, body) = post_to_server(
        settings,
        server,
        &format!("/api/v1/pay/orders/{out_trade_no}/refunds"),
        token.secret(),
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

fn pay_tool(command: PayCommand) -> Result<(), CliError> {
    match command {
        // Answered in `run` (it needs the database).
        PayCommand::Orders(_) | PayCommand::Refund { .. } | PayCommand::V3(PayV3Command::Certificates) => {
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

fn read_text(flag: &str, path: &std::path::Path) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|e| CliError::Usage(format!("--{flag} {}: {e}", path.display())))
}

fn pay_v3_tool(command: PayV3Command) -> Result<(), CliError> {
    use wechat_pay::v3;
    match command {
        PayV3Command::Certificates => Err(CliError::Usage("this pay command is answered with the settings".into())),
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
async fn pay_v3_certificates(settings: &Settings, json: bool) -> Result<(), CliError> {
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
    let rows = certs
        .iter()
        .map(|c| vec![c.serial().to_owned(), time(c.not_before()), time(c.not_after())])
        .collect();
    print_rows(json, &value, &["serial", "valid from", "valid until"], rows)
}

/// `wxkit sign ...`
#[derive(Debug, Subcommand)]
pub enum SignCommand {
    /// JS-SDK `wx.config` signature: sha1("jsapi_ticket=T&noncestr=N&timestamp=TS&url=U"). A `#fragment` in the URL
    /// is dropped, as WeChat requires.
    Jssdk {
        /// The jsapi_ticket.
        #[arg(long)]
        ticket: String,
        /// The nonce string.
        #[arg(long)]
        noncestr: String,
        /// Unix timestamp in seconds.
        #[arg(long)]
        timestamp: String,
        /// The full page URL.
        #[arg(long)]
        url: String,
    },
    /// WeChat Pay v2 signature over k=v fields (every non-empty field but sign, sorted, &key=K).
    Pay {
        /// The merchant API key.
        #[arg(long)]
        key: String,
        /// MD5 or HMAC-SHA256.
        #[arg(long = "sign-type", default_value = "MD5", value_parser = ["MD5", "HMAC-SHA256"])]
        sign_type: String,
        /// Fields as name=value.
        #[arg(value_name = "K=V", required = true)]
        fields: Vec<String>,
    },
    /// wx.addCard cardExt signature: sha1 of the sorted concatenation of ticket, timestamp, card id, code, openid and
    /// nonce (absent code/openid count as empty).
    Card {
        /// The wx_card api_ticket.
        #[arg(long)]
        ticket: String,
        /// The card id.
        #[arg(long = "card-id")]
        card_id: String,
        /// Unix timestamp in seconds.
        #[arg(long)]
        timestamp: String,
        /// The nonce string.
        #[arg(long)]
        nonce: String,
        /// The code (custom-code cards).
        #[arg(long)]
        code: Option<String>,
        /// The openid (bind_openid cards).
        #[arg(long)]
        openid: Option<String>,
    },
    /// Server-URL verification signature: sha1 of the sorted concatenation of token, timestamp and nonce.
    Server {
        /// The token configured for the server URL.
        #[arg(long)]
        token: String,
        /// The `timestamp` query parameter.
        #[arg(long)]
        timestamp: String,
        /// The `nonce` query parameter.
        #[arg(long)]
        nonce: String,
    },
}

fn require(name: &str, value: &str) -> Result<(), CliError> {
    if value.trim().is_empty() {
        return Err(CliError::Usage(format!("--{name} must not be empty")));
    }
    Ok(())
}

fn require_timestamp(value: &str) -> Result<(), CliError> {
    if value.is_empty() || value.len() > 12 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CliError::Usage(format!(
            "--timestamp {value:?} must be Unix seconds (digits only)"
        )));
    }
    Ok(())
}

fn sign(command: SignCommand) -> Result<(), CliError> {
    let signature = match command {
        SignCommand::Jssdk {
            ticket,
            noncestr,
            timestamp,
            url,
        } => {
            require("ticket", &ticket)?;
            require("noncestr", &noncestr)?;
            require_timestamp(&timestamp)?;
            let url =
                wechat_oauth::jssdk::normalize_page_url(&url).map_err(|e| CliError::Usage(format!("--url: {e}")))?;
            wechat_oauth::jssdk::signature(&ticket, &noncestr, &timestamp, url)
        }
        SignCommand::Pay { key, sign_type, fields } => {
            require("key", &key)?;
            let sign_type: wechat_pay::SignType = sign_type
                .parse()
                .map_err(|e: wechat_pay::sign::SignError| CliError::Usage(e.to_string()))?;
            let mut map = wechat_pay::xml::Fields::new();
            for pair in &fields {
                let Some((k, v)) = pair.split_once('=') else {
                    return Err(CliError::Usage(format!("{pair:?} is not name=value")));
                };
                if !wechat_pay::xml::is_field_name(k) {
                    return Err(CliError::Usage(format!("{k:?} is not a field name")));
                }
                if map.insert(k.to_owned(), v.to_owned()).is_some() {
                    return Err(CliError::Usage(format!("field {k} given twice")));
                }
            }
            wechat_pay::sign::sign_fields(&map, &wechat_pay::PayKey::new(key), sign_type)
        }
        SignCommand::Card {
            ticket,
            card_id,
            timestamp,
            nonce,
            code,
            openid,
        } => {
            require("ticket", &ticket)?;
            require("card-id", &card_id)?;
            require("nonce", &nonce)?;
            require_timestamp(&timestamp)?;
            wechat_card::ext::card_signature(
                &ticket,
                &timestamp,
                &card_id,
                code.as_deref().unwrap_or(""),
                openid.as_deref().unwrap_or(""),
                &nonce,
            )
        }
        SignCommand::Server {
            token,
            timestamp,
            nonce,
        } => {
            require("token", &token)?;
            require("nonce", &nonce)?;
            require_timestamp(&timestamp)?;
            wechat_core::push::server_signature(&token, &timestamp, &nonce)
        }
    };
    println!("{signature}");
    Ok(())
}

/// Output format of `wxkit qr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum QrFormat {
    /// PNG image.
    Png,
    /// SVG document.
    Svg,
}

/// `wxkit qr` arguments.
#[derive(Debug, clap::Args)]
pub struct QrArgs {
    /// The text to encode (a URL, usually); UTF-8, Chinese included.
    pub text: String,
    /// Image format.
    #[arg(long, value_enum, default_value = "png")]
    pub format: QrFormat,
    /// Target width and height in pixels.
    #[arg(long, default_value_t = 300, value_name = "PX")]
    pub size: u32,
    /// Error-correction level: L, M, Q or H.
    #[arg(long, default_value = "M", value_parser = clap::value_parser!(qr_render::Ecc))]
    pub ecc: qr_render::Ecc,
    /// Quiet zone (light border) in modules.
    #[arg(long, default_value_t = 4, value_name = "MODULES")]
    pub quiet_zone: u32,
    /// Colour of the dark modules, #rrggbb.
    #[arg(long, default_value = "#000000", value_parser = clap::value_parser!(qr_render::Rgb))]
    pub dark: qr_render::Rgb,
    /// Background colour, #rrggbb.
    #[arg(long, default_value = "#ffffff", value_parser = clap::value_parser!(qr_render::Rgb))]
    pub light: qr_render::Rgb,
    /// A PNG logo to draw in the centre (forces error correction H).
    #[arg(long, value_name = "PNG_FILE")]
    pub logo: Option<PathBuf>,
    /// Write to FILE instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
}

fn render_qr(args: QrArgs) -> Result<(), CliError> {
    use std::io::{IsTerminal, Write};
    let logo = match &args.logo {
        Some(path) => {
            Some(qr_render::Logo::new(std::fs::read(path).map_err(|e| {
                CliError::Usage(format!("cannot read logo {}: {e}", path.display()))
            })?))
        }
        None => None,
    };
    let opts = qr_render::RenderOptions {
        size_px: args.size,
        quiet_zone: args.quiet_zone,
        ecc: args.ecc,
        dark: args.dark,
        light: args.light,
        logo,
        ..qr_render::RenderOptions::default()
    };
    let bytes = match args.format {
        QrFormat::Png => qr_render::render_png(&args.text, &opts),
        QrFormat::Svg => qr_render::render_svg(&args.text, &opts).map(String::into_bytes),
    }
    .map_err(|e| CliError::Usage(e.to_string()))?;
    match &args.output {
        Some(path) => std::fs::write(path, &bytes)
            .map_err(|e| CliError::Usage(format!("cannot write {}: {e}", path.display())))?,
        None => {
            let mut stdout = std::io::stdout().lock();
            if args.format == QrFormat::Png && stdout.is_terminal() {
                return Err(CliError::Usage(
                    "refusing to write a PNG to a terminal: use -o FILE or redirect stdout".into(),
                ));
            }
            stdout.write_all(&bytes)?;
            stdout.flush()?;
        }
    }
    Ok(())
}

#[cfg(feature = "sandbox")]
fn parse_app(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((id, secret)) if !id.is_empty() && !secret.is_empty() => Ok((id.to_owned(), secret.to_owned())),
        _ => Err(format!("expected ID=SECRET, got {s:?}")),
    }
}

/// A command failure with its exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Configuration problem (exit 2).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Start-up problem (exit 2 for database/config, 1 otherwise).
    #[error(transparent)]
    Startup(#[from] StartupError),
    /// Database problem (exit 2).
    #[error(transparent)]
    Database(#[from] db::DbError),
    /// I/O while running (exit 1).
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Bad command-line input (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The input was read but is not valid (a notify that does not verify): exit 1.
    #[error("{0}")]
    Invalid(String),
}

impl CliError {
    /// The process exit code.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Config(_) | CliError::Database(_) | CliError::Usage(_) => 2,
            CliError::Startup(e) => e.exit_code(),
            CliError::Io(_) | CliError::Invalid(_) => 1,
        }
    }
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Serve {
            addr,
            sandbox,
            sandbox_sim_addr,
            log_format: _,
        } => {
            let mut settings = Settings::load(cli.config.as_deref())?;
            if sandbox {
                settings.server.mode = crate::configuration::ServerMode::Sandbox;
            }
            if let Some(sim_addr) = sandbox_sim_addr {
                if sim_addr.parse::<std::net::SocketAddr>().is_err() {
                    return Err(CliError::Usage(format!(
                        "--sandbox-sim-addr {sim_addr:?} is not HOST:PORT (e.g. 0.0.0.0:9000)"
                    )));
                }
                settings.server.sandbox_sim_addr = sim_addr;
            }
            if let Some(addr) = addr {
                if addr.parse::<std::net::SocketAddr>().is_err() {
                    return Err(CliError::Usage(format!(
                        "--addr {addr:?} is not HOST:PORT (e.g. 127.0.0.1:8080)"
                    )));
                }
                settings.server.addr = addr;
            }
            let app = Application::build(settings).await?;
            let base = app.state().public_base_url.clone();
            eprintln!(
                "wxkit listening on http://{} (database: {})",
                app.addr(),
                app.state().backend.target()
            );
            if let Some(sim) = app.sandbox_url() {
                eprintln!("sandbox mode: WeChat simulator at {sim}");
            }
            eprintln!("  health:    {base}/healthz");
            eprintln!("  readiness: {base}/readyz");
            if let Some(demo) = app.demo() {
                eprintln!("sandbox demo (pick a simulated WeChat user on the authorize page):");
                eprintln!("  start here:        {base}/");
                for code in &demo.customer_coupons {
                    eprintln!("  customer's coupon: {base}/c/{code}");
                }
                if let Some(code) = &demo.card_coupon {
                    eprintln!("  add to WeChat:     {base}/c/{code}   (a card-backed coupon: 加入微信卡包)");
                }
                eprintln!("  my coupons:        {base}/coupons/mine");
                eprintln!("  scan-to-login:     {base}/login   (open the page's phone link in another browser)");
                eprintln!("  JS-SDK share demo: {base}/demo/share");
                eprintln!(
                    "  buy a voucher:     {base}/c/buy/{}   (simulated WeChat Pay cashier)",
                    demo.sale_campaign_id
                );
                eprintln!(
                    "  POS redemption:    curl -X POST {base}/api/v1/redemptions -H 'Authorization: Bearer {}' \\",
                    demo.staff_token
                );
                eprintln!(
                    "                       -H 'Content-Type: application/json' -d '{{\"code\":\"{}\"}}'",
                    demo.customer_coupons.first().map(String::as_str).unwrap_or("CODE")
                );
                match (&app.state().admin_token, app.state().settings.admin.token.is_some()) {
                    // A pinned token is the operator's: never echoed.
                    (Some(_), true) => eprintln!("  admin API token:   the one in admin.token"),
                    (Some(admin), false) => {
                        eprintln!("  admin API token:   {}   (kept in this database)", admin.secret())
                    }
                    (None, _) => {}
                }
            }
            app.run_until_stopped().await?;
            Ok(())
        }
        Command::Migrate { create_database } => {
            let settings = Settings::load(cli.config.as_deref())?;
            let backend = db::Backend::from_url(&settings.database.url)?;
            let target = backend.target();
            let applied = tokio::task::spawn_blocking(move || {
                if create_database && backend.create_database_if_missing()? {
                    println!("created {}", backend.target());
                }
                backend.migrate()
            })
            .await
            .map_err(|e| db::DbError::Task(e.to_string()))??;
            if applied.is_empty() {
                println!("{target}: up to date");
            } else {
                for name in applied {
                    println!("applied {name}");
                }
            }
            Ok(())
        }
        Command::Qr(args) => render_qr(args),
        Command::Sign(command) => sign(command),
        Command::Pay(PayCommand::Orders(PayOrdersCommand::List { status, limit })) => {
            if let Some(s) = &status
                && !matches!(s.as_str(), "created" | "paid" | "closed")
            {
                return Err(CliError::Usage(format!(
                    "--status {s:?} is not created, paid or closed"
                )));
            }
            if !(1..=10_000).contains(&limit) {
                return Err(CliError::Usage("--limit must be 1 to 10000".into()));
            }
            let orders = with_db(cli.config.as_deref(), move |conn, _| {
                Ok(crate::features::pay::repo::list(conn, status.as_deref(), limit)?)
            })
            .await?;
            let placed = |ms: i64| {
                chrono::DateTime::from_timestamp_millis(ms)
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                    .unwrap_or_default()
            };
            let values = serde_json::Value::Array(
                orders
                    .iter()
                    .map(|o| {
                        serde_json::json!({
                            "out_trade_no": o.out_trade_no, "status": o.status, "total_fee": o.total_fee,
                            "trade_type": o.trade_type, "description": o.description, "created_at": placed(o.created_at),
                        })
                    })
                    .collect(),
            );
            let rows = orders
                .iter()
                .map(|o| {
                    vec![
                        o.out_trade_no.clone(),
                        o.status.clone(),
                        o.total_fee.to_string(),
                        o.trade_type.clone(),
                        o.description.clone(),
                        placed(o.created_at),
                    ]
                })
                .collect();
            print_rows(
                cli.json,
                &values,
                &[
                    "OUT_TRADE_NO",
                    "STATUS",
                    "TOTAL_FEE",
                    "TYPE",
                    "DESCRIPTION",
                    "PLACED (UTC)",
                ],
                rows,
            )
        }
        Command::Pay(PayCommand::Refund {
            out_trade_no,
            fee,
            reason,
            force,
            server,
        }) => {
            let settings = Settings::load(cli.config.as_deref())?;
            refund(&settings, server, &out_trade_no, fee, reason, force, cli.json).await
        }
        Command::Pay(PayCommand::V3(PayV3Command::Certificates)) => {
            let settings = Settings::load(cli.config.as_deref())?;
            pay_v3_certificates(&settings, cli.json).await
        }
        Command::Pay(command) => pay_tool(command),
        Command::Msg(command @ MsgCommand::SendTemplate { .. }) => send_template(cli.config.as_deref(), command).await,
        Command::Msg(command) => msg_tool(command),
        Command::Qrcode(command) => qrcode_tool(cli.config.as_deref(), command).await,
        Command::Coupon(CouponCommand::Redeem { code, token, server }) => {
            let settings = Settings::load(cli.config.as_deref())?;
            redeem_via_pos(&settings, server, &code, &token, cli.json).await
        }
        command @ (Command::Merchant(_)
        | Command::Staff(_)
        | Command::Campaign(_)
        | Command::Coupon(_)
        | Command::Redemptions(_)) => data_tool(cli.config, cli.json, command).await,
        #[cfg(feature = "sandbox")]
        Command::Sim { addr, apps, merchants } => {
            if addr.parse::<std::net::SocketAddr>().is_err() {
                return Err(CliError::Usage(format!(
                    "--addr {addr:?} is not HOST:PORT (e.g. 127.0.0.1:9000)"
                )));
            }
            let handle = wechat_sim::SimHandle::default();
            for (id, secret) in &apps {
                handle.add_app(id, secret);
            }
            for (mch_id, key) in &merchants {
                handle.add_merchant(mch_id, key);
            }
            let sim = wechat_sim::SimServer::start_with(&addr, handle, true).await?;
            eprintln!("WeChat simulator listening on {}", sim.base_url());
            for (id, _) in &apps {
                eprintln!("  app {id}");
            }
            for (mch_id, _) in &merchants {
                eprintln!("  merchant {mch_id}");
            }
            eprintln!(
                "  control API: {}/_sim/counters, /_sim/clock, /_sim/faults, /_sim/reset",
                sim.base_url()
            );
            sim.wait().await?;
            Ok(())
        }
    }
}

//! The `wxkit` command line: parsing and dispatch here; each command group in its module (`admin`, `pay`, `pos`,
//! `wechat`, `serve`), output helpers in `table`. The admin commands run the same services and views as the API.

mod admin;
mod pay;
mod pos;
mod serve;
mod table;
mod wechat;

pub use pay::{PayCommand, PayOrdersCommand, PayV3Command};
pub use wechat::{MsgArgs, MsgCommand, QrArgs, QrFormat, QrcodeCommand, SignCommand};

use crate::configuration::{ConfigError, Settings};
use crate::db;
use crate::startup::StartupError;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// wxkit: a self-hostable WeChat backend with a bundled WeChat simulator.
#[derive(Debug, Parser)]
#[command(name = "wxkit", version = VERSION, about, propagate_version = true)]
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
    /// Back up the database to FILE while the server runs: SQLite with `VACUUM INTO` (a consistent copy, restored by
    /// putting it in place of the database file), PostgreSQL with `pg_dump --format=custom` (restored with
    /// `pg_restore`; needs Debian's postgresql-client). Refuses to overwrite FILE.
    Backup {
        /// Where the backup goes.
        #[arg(long, value_name = "FILE")]
        to: std::path::PathBuf,
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
        #[arg(long = "merchant", value_name = "MCH_ID=KEY", value_parser = parse_merchant)]
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
    /// Make an invite to run (or work at) a merchant: prints `{id, url}`. Whoever opens the URL in WeChat (scan
    /// its QR, or send it in a chat) logs in and becomes the merchant's owner (or manager, or staff).
    Invite {
        /// Merchant id.
        id: i64,
        /// owner | manager | staff.
        #[arg(long, default_value = "owner", value_parser = ["owner", "manager", "staff"])]
        role: String,
        /// How many people may join with it.
        #[arg(long, default_value_t = 1)]
        max_uses: i64,
        /// How long it is valid, hours.
        #[arg(long, default_value_t = 168)]
        hours: i64,
        /// Staff only: each joiner waits for an owner's approval.
        #[arg(long)]
        approval: bool,
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
    Create(crate::features::merchants::views::CampaignRequest),
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
    /// End a campaign now: no more issuing or buying. Says first how many sold coupons are unused and how much
    /// money is involved; `--sold keep` keeps them usable until the campaign's own date, `--sold refund` refunds
    /// each (and voids coupons given away). Without `--sold` it asks (on a terminal) or refuses.
    End {
        /// Campaign id.
        id: i64,
        /// Why (kept in the audit log).
        #[arg(long)]
        reason: Option<String>,
        /// keep | refund: what happens to sold, unused coupons.
        #[arg(long, value_parser = ["keep", "refund"])]
        sold: Option<String>,
        /// Print what the end would touch; change nothing.
        #[arg(long)]
        dry_run: bool,
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

#[cfg(feature = "sandbox")]
fn parse_app(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((id, secret)) if !id.is_empty() && !secret.is_empty() => Ok((id.to_owned(), secret.to_owned())),
        _ => Err(format!("expected ID=SECRET, got {s:?}")),
    }
}

/// `MCH_ID=KEY` for the simulator: WeChat Pay's v2 API key is 32 characters (the merchant platform refuses any other
/// length), so the simulator does too — a short key accepted here would pass against it and fail against WeChat.
#[cfg(feature = "sandbox")]
fn parse_merchant(s: &str) -> Result<(String, String), String> {
    let (id, key) = parse_app(s).map_err(|_| format!("expected MCH_ID=KEY, got {s:?}"))?;
    if key.chars().count() != 32 || !key.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(format!(
            "the pay key of merchant {id} must be 32 letters or digits (WeChat Pay's API key), not {} characters",
            key.chars().count()
        ));
    }
    Ok((id, key))
}

/// `wxkit --version`: the release and the commit it was built from.
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("WXKIT_COMMIT"), ")");

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
        } => serve::serve(cli.config.as_deref(), addr, sandbox, sandbox_sim_addr).await,
        Command::Migrate { create_database } => serve::migrate(cli.config.as_deref(), create_database).await,
        Command::Backup { to } => serve::backup(cli.config.as_deref(), &to).await,
        Command::Qr(args) => wechat::render_qr(args),
        Command::Sign(command) => wechat::sign(command),
        Command::Pay(PayCommand::Orders(PayOrdersCommand::List { status, limit })) => {
            pay::orders(cli.config.as_deref(), cli.json, status, limit).await
        }
        Command::Pay(PayCommand::Refund {
            out_trade_no,
            fee,
            reason,
            force,
            server,
        }) => {
            let settings = Settings::load(cli.config.as_deref())?;
            pay::refund(&settings, server, &out_trade_no, fee, reason, force, cli.json).await
        }
        Command::Pay(PayCommand::Reconcile { date, server }) => {
            let settings = Settings::load(cli.config.as_deref())?;
            pay::reconcile(&settings, server, &date, cli.json).await
        }
        Command::Pay(PayCommand::Bill {
            date,
            kind,
            output,
            server,
        }) => {
            let settings = Settings::load(cli.config.as_deref())?;
            pay::bill(&settings, server, &date, &kind, output.as_deref()).await
        }
        Command::Pay(PayCommand::V3(PayV3Command::Certificates)) => {
            let settings = Settings::load(cli.config.as_deref())?;
            pay::pay_v3_certificates(&settings, cli.json).await
        }
        Command::Pay(command) => pay::pay_tool(command),
        Command::Msg(command @ MsgCommand::SendTemplate { .. }) => {
            wechat::send_template(cli.config.as_deref(), command).await
        }
        Command::Msg(command) => wechat::msg_tool(command),
        Command::Qrcode(command) => wechat::qrcode_tool(cli.config.as_deref(), command).await,
        Command::Coupon(CouponCommand::Redeem { code, token, server }) => {
            let settings = Settings::load(cli.config.as_deref())?;
            pos::redeem_via_pos(&settings, server, &code, &token, cli.json).await
        }
        command @ (Command::Merchant(_)
        | Command::Staff(_)
        | Command::Campaign(_)
        | Command::Coupon(_)
        | Command::Redemptions(_)) => admin::run(cli.config.as_deref(), cli.json, command).await,
        #[cfg(feature = "sandbox")]
        Command::Sim { addr, apps, merchants } => serve::sim(addr, apps, merchants).await,
    }
}

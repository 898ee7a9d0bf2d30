//! The admin commands: merchants, staff, campaigns, coupons and the redemption log — the same use cases and views as
//! the admin API, on the settings' database.

use super::table::{cell, print_json, print_rows};
use super::{CampaignCommand, CliError, Command, CouponCommand, MerchantCommand, RedemptionsCommand, StaffCommand};
use crate::configuration::Settings;
use crate::db;
use crate::features::coupons::admin;
use crate::features::merchants::service;
use crate::features::merchants::views::{campaign_json_at, staff_json};
use crate::platform::clock::now_ms;
use serde_json::{Value, json as j};

/// Runs an admin command.
pub(super) async fn run(config: Option<&std::path::Path>, json: bool, command: Command) -> Result<(), CliError> {
    match command {
        Command::Merchant(_) => merchant(config, json, command).await,
        Command::Staff(_) => staff(config, json, command).await,
        Command::Campaign(_) => campaign(config, json, command).await,
        Command::Coupon(_) => coupon(config, json, command).await,
        Command::Redemptions(_) => redemptions(config, json, command).await,
        _ => Err(CliError::Usage("not a data command".into())),
    }
}

/// `wxkit merchant ...`
async fn merchant(config: Option<&std::path::Path>, json: bool, command: Command) -> Result<(), CliError> {
    match command {
        Command::Merchant(MerchantCommand::Create { name }) => {
            let m = with_db(config, move |conn, _| {
                service::create_merchant(conn, &name, now_ms()).map_err(admin_error)
            })
            .await?;
            print_json(&j!({"id": m.id, "name": m.name}))
        }
        Command::Merchant(MerchantCommand::List) => {
            let rows = with_db(config, |conn, _| Ok(service::merchants(conn)?)).await?;
            let value = Value::Array(
                rows.iter()
                    .map(crate::features::merchants::views::merchant_json)
                    .collect(),
            );
            let table = rows.iter().map(|m| vec![m.id.to_string(), m.name.clone()]).collect();
            print_rows(json, &value, &["ID", "NAME"], table)
        }
        Command::Merchant(MerchantCommand::Show { id }) => {
            let m = with_db(config, move |conn, _| Ok(service::merchant(conn, id)?)).await?;
            let m = m.ok_or_else(|| CliError::Invalid(format!("no merchant {id}")))?;
            print_json(&crate::features::merchants::views::merchant_json(&m))
        }
        Command::Merchant(MerchantCommand::Invite {
            id,
            role,
            max_uses,
            hours,
            approval,
        }) => {
            use crate::features::console::service::{self as console, Role};
            let request = console::InviteRequest {
                role: Role::parse(&role).unwrap_or(Role::Owner),
                max_uses,
                expires_in_secs: hours.saturating_mul(3600),
                needs_approval: approval,
            };
            let made = with_db(config, move |conn, settings| {
                let base = server_base(conn, settings)?;
                console::make_invite(conn, id, request, None, &base, now_ms()).map_err(admin_error)
            })
            .await?;
            print_json(&j!({
                "id": made.id, "url": made.url, "role": role, "merchant_id": id,
                "expires_at": crate::platform::time::rfc3339(made.expires_at),
            }))
        }
        _ => Err(CliError::Usage("not a merchant command".into())),
    }
}

/// `wxkit staff ...`
async fn staff(config: Option<&std::path::Path>, json: bool, command: Command) -> Result<(), CliError> {
    match command {
        Command::Staff(StaffCommand::Add {
            merchant_id,
            openid,
            name,
        }) => {
            let service::NewStaffMember { row, api_token } = with_db(config, move |conn, _| {
                service::add_staff(conn, merchant_id, &openid, &name, now_ms()).map_err(admin_error)
            })
            .await?;
            print_json(
                &j!({"id": row.id, "merchant_id": row.merchant_id, "openid": row.openid, "name": row.name, "api_token": api_token}),
            )
        }
        Command::Staff(StaffCommand::List { merchant_id }) => {
            let rows = with_db(config, move |conn, _| Ok(service::staff(conn, merchant_id)?)).await?;
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
            with_db(config, move |conn, _| {
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
        _ => Err(CliError::Usage("not a staff command".into())),
    }
}

/// `wxkit campaign ...`
async fn campaign(config: Option<&std::path::Path>, json: bool, command: Command) -> Result<(), CliError> {
    match command {
        Command::Campaign(CampaignCommand::Create(request)) => {
            let new = request.validate(now_ms()).map_err(admin_error)?;
            let row = with_db(config, move |conn, _| {
                service::create_campaign(conn, &new, now_ms()).map_err(admin_error)
            })
            .await?;
            print_json(&campaign_json_at(&row, now_ms()))
        }
        Command::Campaign(CampaignCommand::List { merchant_id }) => {
            let rows = with_db(config, move |conn, _| Ok(service::campaigns(conn, merchant_id)?)).await?;
            let now = now_ms();
            let values: Vec<Value> = rows.iter().map(|c| campaign_json_at(c, now)).collect();
            let table = values
                .iter()
                .zip(&rows)
                .map(|(c, row)| {
                    vec![
                        cell(&c["id"]),
                        cell(&c["merchant_id"]),
                        cell(&c["title"]),
                        cell(&c["status"]),
                        match c["quantity"].as_i64() {
                            Some(q) => format!("{} of {q}", cell(&c["issued"])),
                            None => cell(&c["issued"]),
                        },
                        // Tables speak Beijing time like the pages and exports; --json keeps RFC 3339.
                        crate::platform::time::beijing(row.valid_until),
                    ]
                })
                .collect();
            print_rows(
                json,
                &Value::Array(values),
                &["ID", "MERCHANT", "TITLE", "STATUS", "ISSUED", "VALID UNTIL (UTC+8)"],
                table,
            )
        }
        Command::Campaign(CampaignCommand::Show { id }) => {
            let c = with_db(config, move |conn, _| Ok(service::campaign(conn, id)?)).await?;
            let c = c.ok_or_else(|| CliError::Invalid(format!("no campaign {id}")))?;
            print_json(&campaign_json_at(&c, now_ms()))
        }
        Command::Campaign(CampaignCommand::End {
            id,
            reason,
            sold,
            dry_run,
        }) => end_campaign(config, id, reason, sold, dry_run).await,
        _ => Err(CliError::Usage("not a campaign command".into())),
    }
}

/// `wxkit campaign end`: the numbers first; then the end with the choice given, asked for on a terminal, or refused.
async fn end_campaign(
    config: Option<&std::path::Path>,
    id: i64,
    reason: Option<String>,
    sold: Option<String>,
    dry_run: bool,
) -> Result<(), CliError> {
    use std::io::IsTerminal as _;
    let actor = crate::features::pay::ending::Actor {
        channel: "cli",
        user_id: None,
    };
    let now = now_ms();
    let ask = service::EndRequest::parse(reason.clone(), None, true).map_err(admin_error)?;
    let preview = with_db(config, move |conn, _| {
        service::end_campaign(conn, id, &ask, actor, now).map_err(admin_error)
    })
    .await?;
    let p = &preview.plan;
    if dry_run || preview.already {
        return print_json(&preview.json(now));
    }
    let sold = match sold {
        Some(s) => Some(s),
        None if p.sold_unused == 0 => None,
        None if std::io::stdin().is_terminal() => {
            eprintln!(
                "Campaign {id}: {} sold coupons unused (¥{:.2} paid), {} given away unused, {} open orders.\n\
                 keep: they stay usable until the campaign's own end date; refund: each is refunded and voided.",
                p.sold_unused,
                p.sold_amount_fen as f64 / 100.0,
                p.unsold_unused,
                p.open_orders
            );
            eprint!("What happens to the sold coupons? [keep/refund, anything else cancels] ");
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .map_err(|e| CliError::Invalid(format!("cannot read the answer: {e}")))?;
            match line.trim() {
                "keep" | "refund" => Some(line.trim().to_owned()),
                _ => return Err(CliError::Invalid("cancelled: nothing was ended".into())),
            }
        }
        None => {
            return Err(CliError::Usage(format!(
                "{} sold coupons of campaign {id} are unused (¥{:.2} paid): add --sold keep or --sold refund",
                p.sold_unused,
                p.sold_amount_fen as f64 / 100.0
            )));
        }
    };
    let request = service::EndRequest::parse(reason, sold.as_deref(), false).map_err(admin_error)?;
    let out = with_db(config, move |conn, _| {
        service::end_campaign(conn, id, &request, actor, now).map_err(admin_error)
    })
    .await?;
    if out.refunds > 0 {
        eprintln!(
            "{} refunds recorded; the running server sends them to WeChat within pay.reconcile_every_secs.",
            out.refunds
        );
    }
    print_json(&out.json(now))
}

/// `wxkit coupon ...`
async fn coupon(config: Option<&std::path::Path>, json: bool, command: Command) -> Result<(), CliError> {
    match command {
        Command::Coupon(CouponCommand::Issue {
            campaign_id,
            owner_openid,
        }) => {
            let (coupon, campaign, base) = with_db(config, move |conn, settings| {
                let (c, k) =
                    service::issue_coupon(conn, campaign_id, owner_openid.as_deref(), now_ms()).map_err(admin_error)?;
                Ok((c, k, server_base(conn, settings)?))
            })
            .await?;
            // The API's answer (`POST /api/v1/campaigns/{id}/coupons`), field for field.
            let (Some(domain), k) = (coupon.to_domain(), campaign.to_domain()) else {
                return Err(CliError::Invalid("the issued coupon has an invalid code".into()));
            };
            let mut v = serde_json::to_value(crate::features::coupons::views::public_coupon_at(
                &base,
                now_ms(),
                &domain,
                &k,
            ))
            .unwrap_or_default();
            v["owner_openid"] = j!(coupon.owner_openid);
            v["campaign_id"] = j!(coupon.campaign_id);
            print_json(&v)
        }
        Command::Coupon(CouponCommand::Show { code }) => {
            let Some(parsed) = redemption_core::CouponCode::parse_typed(&code) else {
                return Err(CliError::Usage(format!(
                    "{code:?} is not a coupon code (26 characters A-Z, 2-7)"
                )));
            };
            let found = with_db(config, move |conn, settings| {
                let Some((c, k)) = admin::coupon(conn, parsed.as_str())? else {
                    return Ok(None);
                };
                let by = match c.redeemed_by {
                    Some(id) => Some(j!({"id": id, "name": service::staff_name(conn, id)?})),
                    None => None,
                };
                Ok(Some((c, k, server_base(conn, settings)?, by)))
            })
            .await?;
            let Some((c, k, base, by)) = found else {
                return Err(CliError::Invalid(format!("no coupon {code}")));
            };
            print_json(&j!({
                "code": c.code, "campaign": campaign_json_at(&k, now_ms()), "owner_openid": c.owner_openid,
                "status": c.status, "redeemed_at": c.redeemed_at.map(crate::features::coupons::views::rfc3339),
                "redeemed_by": by, "url": format!("{base}/c/{}", c.code),
            }))
        }
        Command::Coupon(CouponCommand::List {
            campaign_id,
            status,
            owner_openid,
            limit,
        }) => coupon_list(config, json, campaign_id, status, owner_openid, limit).await,
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
            let outcome = with_db(config, move |conn, _| {
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
                        .map(|t| format!(" at {} (UTC+8)", crate::platform::time::beijing(t)))
                        .unwrap_or_default()
                ))),
                admin::VoidOutcome::NotFound => Err(CliError::Invalid(format!("no coupon {code}"))),
            }
        }
        _ => Err(CliError::Usage("not a coupon command".into())),
    }
}

/// `wxkit redemptions ...`
async fn redemptions(config: Option<&std::path::Path>, json: bool, command: Command) -> Result<(), CliError> {
    match command {
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
                admin::CSV_MAX_ROWS
            } else {
                limit_arg(limit, 10_000)?
            };
            let rows = with_db(config, move |conn, _| {
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
                        "id": r.id, "redeemed_at": crate::features::coupons::views::rfc3339(r.at), "channel": r.channel,
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
        _ => Err(CliError::Usage("not a redemptions command".into())),
    }
}

pub(super) async fn with_db<T: Send + 'static>(
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
                db::Backend::Postgres(_) | db::Backend::Mysql(_) => backend.target(),
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

/// The running server's address: `server.public_base_url`, else what the server recorded in the database at start
/// (a port picked at start, `--addr`), else `http://server.addr`.
pub(super) fn server_base(conn: &mut db::DbConnection, settings: &Settings) -> Result<String, CliError> {
    if settings.server.public_base_url.is_some() {
        return Ok(base_url(settings));
    }
    Ok(
        crate::platform::secrets::value(conn, crate::platform::secrets::PUBLIC_BASE_URL)?
            .map(|u| u.trim_end_matches('/').to_owned())
            .unwrap_or_else(|| base_url(settings)),
    )
}

pub(super) fn base_url(settings: &Settings) -> String {
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
pub(super) fn admin_error(e: crate::features::merchants::service::AdminError) -> CliError {
    use crate::features::merchants::service::AdminError;
    match e {
        AdminError::Invalid { field, message } => CliError::Usage(format!("--{} {message}", field.replace('_', "-"))),
        AdminError::Rejected { message, .. } => CliError::Usage(message),
        AdminError::NotFound(what) => CliError::Invalid(what.to_owned()),
        AdminError::Conflict { message, .. } => CliError::Invalid(message),
        AdminError::Db(e) => CliError::Database(e),
    }
}

pub(super) fn rfc3339_arg(flag: &str, value: Option<&str>) -> Result<Option<i64>, CliError> {
    value
        .map(|v| {
            chrono::DateTime::parse_from_rfc3339(v)
                .map(|t| t.timestamp_millis())
                .map_err(|_| CliError::Usage(format!("--{flag} must be RFC 3339, e.g. 2026-12-01T00:00:00+08:00")))
        })
        .transpose()
}

pub(super) fn limit_arg(limit: i64, max: i64) -> Result<i64, CliError> {
    if (1..=max).contains(&limit) {
        Ok(limit)
    } else {
        Err(CliError::Usage(format!("--limit must be 1 to {max}")))
    }
}

/// `wxkit coupon list`: a campaign's coupons, with their status now.
async fn coupon_list(
    config: Option<&std::path::Path>,
    json: bool,
    campaign_id: i64,
    status: Option<String>,
    owner_openid: Option<String>,
    limit: i64,
) -> Result<(), CliError> {
    let limit = limit_arg(limit, 10_000)?;
    let status = status
        .map(|s| {
            admin::StatusFilter::parse(&s)
                .ok_or_else(|| CliError::Usage(format!("--status {s:?} is not issued, redeemed, void or expired")))
        })
        .transpose()?;
    let now = now_ms();
    let found = with_db(config, move |conn, _| {
        let found = admin::campaign_coupons(conn, campaign_id, status, owner_openid.as_deref(), None, limit, now)?;
        // Who redeemed each, by name (as the POS answers `{id, name}`).
        let mut names = std::collections::HashMap::new();
        if let Some((_, rows)) = &found {
            for id in rows.iter().filter_map(|c| c.redeemed_by) {
                if let std::collections::hash_map::Entry::Vacant(e) = names.entry(id) {
                    e.insert(service::staff_name(conn, id)?);
                }
            }
        }
        Ok(found.map(|f| (f, names)))
    })
    .await?;
    let ((campaign, rows), names) = found.ok_or_else(|| CliError::Invalid(format!("no campaign {campaign_id}")))?;
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
                "redeemed_at": c.redeemed_at.map(crate::features::coupons::views::rfc3339),
                "redeemed_by": c.redeemed_by.map(|id| j!({"id": id, "name": names.get(&id).cloned().flatten()})),
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

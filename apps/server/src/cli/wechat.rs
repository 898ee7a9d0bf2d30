//! The developer tools WeChat developers need daily: signatures (`wxkit sign`), push messages (`wxkit msg`), QR
//! images (`wxkit qr`), parametric QR codes and template messages through the configured account.

use super::CliError;
use super::pay::read_input;
use super::table::print_json;
use crate::configuration::{ConfigError, Settings};
use crate::db;
use clap::Subcommand;
use std::path::PathBuf;

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
pub(super) async fn account_tokens(
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

pub(super) async fn send_template(config: Option<&std::path::Path>, command: MsgCommand) -> Result<(), CliError> {
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

pub(super) async fn qrcode_tool(config: Option<&std::path::Path>, command: QrcodeCommand) -> Result<(), CliError> {
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

pub(super) fn msg_tool(command: MsgCommand) -> Result<(), CliError> {
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

pub(super) fn require(name: &str, value: &str) -> Result<(), CliError> {
    if value.trim().is_empty() {
        return Err(CliError::Usage(format!("--{name} must not be empty")));
    }
    Ok(())
}

pub(super) fn require_timestamp(value: &str) -> Result<(), CliError> {
    if value.is_empty() || value.len() > 12 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CliError::Usage(format!(
            "--timestamp {value:?} must be Unix seconds (digits only)"
        )));
    }
    Ok(())
}

pub(super) fn sign(command: SignCommand) -> Result<(), CliError> {
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

pub(super) fn render_qr(args: QrArgs) -> Result<(), CliError> {
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

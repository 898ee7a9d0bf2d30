//! # wxkit (server)
//!
//! The `wxkit` binary's library: configuration, database (SQLite and PostgreSQL through one Diesel connection type),
//! HTTP routes and start-up. `main.rs` only parses the command line and calls [`cli::run`].
//!
//! Tests and embedders start the whole server on a free port:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let mut settings = wxkit::configuration::Settings::load(None)?;
//! settings.server.addr = "127.0.0.1:0".into();
//! // The demo against the bundled simulator; production needs wechat.app_id and wechat.app_secret.
//! settings.server.mode = wxkit::configuration::ServerMode::Sandbox;
//! let app = wxkit::startup::Application::build(settings).await?;
//! println!("listening on port {}", app.port());
//! tokio::spawn(app.run_until_stopped());
//! # Ok(())
//! # }
//! ```

pub mod cli;
pub mod configuration;
pub mod db;
pub mod features;
pub mod http;
pub mod platform;
mod server;
pub mod startup;
pub mod telemetry;

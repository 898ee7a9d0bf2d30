//! Two `wechat::OfficialAccount`s — two instances of a service, say — sharing their access token through one MySQL
//! or MariaDB database: a burst of callers on both fetches the token from WeChat once, and both serve JS-SDK
//! configs signed with one jsapi_ticket, fetched once. WeChat is the simulator, started in this process.
//!
//! ```sh
//! # MariaDB on 127.0.0.1:3306, root without a password (or DATABASE_URL=mysql://user:password@host:3306/db)
//! cargo run -p wxkit-store-diesel --features mysql --example mysql_official_account
//! ```

use diesel::MysqlConnection;
use diesel::r2d2::{ConnectionManager, Pool};
use std::sync::Arc;
use wechat::OfficialAccount;
use wxkit_store_diesel::{DieselTokenStore, StoreConnection};

const APP_ID: &str = "wxexample0000001";
const SECRET: &str = "example-secret-0123456789abcdef0";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Without DATABASE_URL: a database of this run's own, dropped at the end (a token left by an earlier run would
    // be served without a fetch — which is the point of the store, but not of this demonstration).
    let own = std::env::var("DATABASE_URL").is_err();
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| format!("mysql://root@127.0.0.1:3306/wxkit_example_{}", std::process::id()));
    create_database_if_missing(&url)?;
    let sim = wechat_sim::SimServer::start("127.0.0.1:0", &[(APP_ID, SECRET)]).await?;

    // One pool per instance, as two processes would have; the tables once (idempotent).
    let instance = |pool: Pool<ConnectionManager<MysqlConnection>>| {
        OfficialAccount::builder()
            .app_id(APP_ID)
            .secret(SECRET)
            .base_url(&sim.base_url()) // leave out to talk to WeChat itself
            .token_store(Arc::new(DieselTokenStore::new(pool)))
            .build()
    };
    let pool_a = Pool::builder()
        .max_size(8)
        .build(ConnectionManager::<MysqlConnection>::new(url.clone()))?;
    let pool_b = Pool::builder()
        .max_size(8)
        .build(ConnectionManager::<MysqlConnection>::new(url.clone()))?;
    pool_a.get()?.create_store_tables()?;
    let (a, b) = (instance(pool_a)?, instance(pool_b)?);

    // 100 callers on each instance at once.
    let mut calls = Vec::new();
    for i in 0..200 {
        let oa = if i % 2 == 0 { a.clone() } else { b.clone() };
        calls.push(tokio::spawn(async move { oa.app().tokens().access_token().await }));
    }
    for call in calls {
        call.await??;
    }
    println!(
        "access tokens fetched from WeChat by 200 callers on two instances: {}",
        sim.handle().calls("/cgi-bin/token")
    );

    let config = b.jssdk_config("https://shop.example/c/ABC", 1_800_000_000).await?;
    println!("wx.config signature from instance b: {}", config.signature);
    a.jssdk_config("https://shop.example/c/DEF", 1_800_000_000).await?;
    println!(
        "jsapi_tickets fetched for both instances' configs: {}",
        sim.handle().calls("/cgi-bin/ticket/getticket")
    );
    if own {
        drop_database(&url)?;
    }
    Ok(())
}

/// `CREATE DATABASE IF NOT EXISTS` with the character set the store's tables use.
fn create_database_if_missing(url: &str) -> Result<(), Box<dyn std::error::Error>> {
    use diesel::Connection;
    use diesel::connection::SimpleConnection;
    let mut parsed = url::Url::parse(url)?;
    let name = parsed.path().trim_start_matches('/').to_owned();
    parsed.set_path("/");
    let mut admin = MysqlConnection::establish(parsed.as_str())?;
    admin.batch_execute(&format!(
        "CREATE DATABASE IF NOT EXISTS `{}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
        name.replace('`', "``")
    ))?;
    Ok(())
}

fn drop_database(url: &str) -> Result<(), Box<dyn std::error::Error>> {
    use diesel::Connection;
    use diesel::connection::SimpleConnection;
    let mut parsed = url::Url::parse(url)?;
    let name = parsed.path().trim_start_matches('/').to_owned();
    parsed.set_path("/");
    MysqlConnection::establish(parsed.as_str())?.batch_execute(&format!("DROP DATABASE `{name}`"))?;
    Ok(())
}

//! Per-test MariaDB/MySQL databases. MySQL has no template databases: the migrations are applied once per set of
//! migrations to a template database (with the server's own Diesel harness, so the server finds them applied), and
//! each test database gets the template's tables by replaying their `SHOW CREATE TABLE` (foreign keys included,
//! which `CREATE TABLE … LIKE` would drop) plus the migrations' bookkeeping rows.

use diesel::connection::SimpleConnection;
use diesel::{Connection, MysqlConnection, RunQueryDsl};
use diesel_migrations::MigrationHarness;
use std::path::PathBuf;
use std::sync::OnceLock;

/// The admin URL of a usable MariaDB/MySQL server (no database in its path), found once per process.
pub fn admin_url() -> Option<String> {
    static URL: OnceLock<Option<String>> = OnceLock::new();
    URL.get_or_init(|| {
        let url = std::env::var("WXKIT_TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/".to_owned());
        if MysqlConnection::establish(&url).is_ok() {
            return Some(url);
        }
        assert!(
            !super::is_ci(),
            "CI=true but no MariaDB/MySQL is reachable at {url} (WXKIT_TEST_MYSQL_URL); the MySQL tests must run in CI"
        );
        eprintln!(
            "\n\n**********************************************************************\n\
             * SKIPPING MySQL tests: no MariaDB/MySQL at 127.0.0.1:3306 and none  *\n\
             * in WXKIT_TEST_MYSQL_URL.                                           *\n\
             **********************************************************************\n"
        );
        None
    })
    .clone()
}

/// `admin_url` with `name` as its database.
pub fn url_of(admin_url: &str, name: &str) -> String {
    let mut url = url::Url::parse(admin_url).expect("admin URL parses");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

#[derive(diesel::QueryableByName)]
struct Name {
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
}

#[derive(diesel::QueryableByName)]
struct Created {
    #[diesel(sql_type = diesel::sql_types::Text, column_name = "Create Table")]
    create: String,
}

/// Creates `name` with the schema of the migrated template; returns its URL.
pub fn create_database(admin_url: &str, name: &str) -> String {
    let mut admin = MysqlConnection::establish(admin_url).expect("MySQL answered a moment ago");
    admin
        .batch_execute(&format!(
            "CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
        ))
        .expect("create test database");
    let url = url_of(admin_url, name);
    if let Some((template, tables)) = template(admin_url) {
        let mut conn = MysqlConnection::establish(&url).expect("the new database");
        let mut script = String::from("SET FOREIGN_KEY_CHECKS = 0;\n");
        for create in tables {
            script.push_str(create);
            script.push_str(";\n");
        }
        script.push_str(&format!(
            "INSERT INTO __diesel_schema_migrations SELECT * FROM `{template}`.__diesel_schema_migrations;\n\
             SET FOREIGN_KEY_CHECKS = 1;"
        ));
        conn.batch_execute(&script).expect("copy the template's tables");
    }
    url
}

/// Drops a test database.
pub fn drop_database(admin_url: &str, name: &str) {
    if let Ok(mut conn) = MysqlConnection::establish(admin_url) {
        let _ = conn.batch_execute(&format!("DROP DATABASE IF EXISTS `{name}`"));
    }
}

/// The template database for the current migrations and its tables' `CREATE TABLE` statements, made if missing.
fn template(admin_url: &str) -> Option<(String, &'static [String])> {
    static TEMPLATE: OnceLock<Option<(String, Vec<String>)>> = OnceLock::new();
    TEMPLATE
        .get_or_init(|| {
            let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../migrations/mysql");
            let template = super::template_name(&dir)?;
            let mut admin = MysqlConnection::establish(admin_url).ok()?;
            // One process makes it; the others wait and reuse it.
            admin.batch_execute("DO GET_LOCK('wxkit_test_template', 300)").ok()?;
            let made = (|| -> Option<Vec<String>> {
                let url = url_of(admin_url, &template);
                let exists = !diesel::sql_query(format!(
                    "SELECT SCHEMA_NAME AS name FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{template}'"
                ))
                .load::<Name>(&mut admin)
                .ok()?
                .is_empty();
                let mut conn = if exists {
                    MysqlConnection::establish(&url).ok()?
                } else {
                    admin
                        .batch_execute(&format!(
                            "CREATE DATABASE `{template}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
                        ))
                        .ok()?;
                    let mut conn = MysqlConnection::establish(&url).ok()?;
                    let migrations = diesel_migrations::FileBasedMigrations::from_path(&dir).ok()?;
                    if let Err(e) = conn.run_pending_migrations(migrations) {
                        let _ = admin.batch_execute(&format!("DROP DATABASE `{template}`"));
                        panic!("the MySQL migrations fail: {e}");
                    }
                    conn
                };
                let tables: Vec<Name> = diesel::sql_query(format!(
                    "SELECT TABLE_NAME AS name FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{template}' \
                     ORDER BY TABLE_NAME"
                ))
                .load(&mut conn)
                .ok()?;
                let mut creates = Vec::new();
                for t in tables {
                    let c: Created = diesel::sql_query(format!("SHOW CREATE TABLE `{}`", t.name))
                        .get_result(&mut conn)
                        .ok()?;
                    // A fresh table starts its ids at 1 whatever the template's counter says.
                    let create = match c.create.find(" AUTO_INCREMENT=") {
                        Some(at) => {
                            let end = c.create[at + 16..].find(' ').map_or(c.create.len(), |e| at + 16 + e);
                            format!("{}{}", &c.create[..at], &c.create[end..])
                        }
                        None => c.create,
                    };
                    creates.push(create);
                }
                Some(creates)
            })();
            let _ = admin.batch_execute("DO RELEASE_LOCK('wxkit_test_template')");
            made.map(|tables| (template, tables))
        })
        .as_ref()
        .map(|(t, tables)| (t.clone(), tables.as_slice()))
}

/// `KILL CONNECTION` for every connection to database `name` but the caller's (a failover, an idle-connection
/// killer); returns how many were killed.
pub fn kill_connections(admin_url: &str, name: &str) -> usize {
    #[derive(diesel::QueryableByName)]
    struct Id {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        id: i64,
    }
    let mut conn = MysqlConnection::establish(admin_url).expect("admin connection");
    let ids: Vec<Id> = diesel::sql_query(format!(
        "SELECT CAST(ID AS SIGNED) AS id FROM information_schema.PROCESSLIST \
         WHERE DB = '{name}' AND ID <> CONNECTION_ID()"
    ))
    .load(&mut conn)
    .expect("the process list");
    ids.iter()
        .filter(|i| conn.batch_execute(&format!("KILL CONNECTION {}", i.id)).is_ok())
        .count()
}

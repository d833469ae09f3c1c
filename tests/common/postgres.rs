//! The store backend a test runs on, and a database of its own on PostgreSQL.
//!
//! `on_both_backends!` writes a test twice, `name::sqlite` and `name::postgres`; the
//! body runs with the backend in a task-local, and everything here that makes a store
//! (`world`, SMTP `Instance`s, `Place`) follows it. On PostgreSQL each store gets a
//! database with a random name on the test server (`MSSANTE_TEST_POSTGRES`, by
//! default postgres://postgres@127.0.0.1:5432/test), dropped when the test lets go of
//! it. Without a PostgreSQL answering there, `name::postgres` says SKIPPED (and fails
//! in CI, where `.ci/run` starts one).
#![allow(dead_code)]

use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use mssante::store::Store;
use sqlx::Connection;
use tempfile::TempDir;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

tokio::task_local! {
    static BACKEND: Backend;
}

/// The backend of the test running (SQLite outside `on_both_backends!`).
pub fn current() -> Backend {
    BACKEND.try_with(|b| *b).unwrap_or(Backend::Sqlite)
}

/// Runs `body` on `backend`; on PostgreSQL, only when a server answers (else a visible
/// skip, or a failure in CI).
pub async fn run<F: std::future::Future<Output = ()>>(backend: Backend, body: F) {
    if backend == Backend::Postgres && !available().await {
        super::tools::skip(&format!(
            "no PostgreSQL answers at {} (start one, or set MSSANTE_TEST_POSTGRES)",
            server_url()
        ));
        return;
    }
    BACKEND.scope(backend, body).await
}

/// Writes an async test once per backend: `$name::sqlite` and `$name::postgres`.
#[macro_export]
macro_rules! on_both_backends {
    ($(#[$attr:meta])* async fn $name:ident() $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            $(#[$attr])*
            async fn sqlite() {
                $crate::common::postgres::run(
                    $crate::common::postgres::Backend::Sqlite,
                    async move $body,
                )
                .await
            }

            $(#[$attr])*
            async fn postgres() {
                $crate::common::postgres::run(
                    $crate::common::postgres::Backend::Postgres,
                    async move $body,
                )
                .await
            }
        }
    };
}

/// The server the test databases are made on: its maintenance database.
pub fn server_url() -> String {
    std::env::var("MSSANTE_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

async fn available() -> bool {
    static ANSWERS: OnceLock<bool> = OnceLock::new();
    if let Some(a) = ANSWERS.get() {
        return *a;
    }
    let answers = tokio::time::timeout(
        Duration::from_secs(5),
        sqlx::PgConnection::connect(&server_url()),
    )
    .await
    .is_ok_and(|c| c.is_ok());
    *ANSWERS.get_or_init(|| answers)
}

/// A database of its own for one test's store, dropped (with whatever connection is
/// still open on it) when this goes.
pub struct Database {
    pub name: String,
    pub url: String,
}

impl Database {
    pub async fn create() -> Database {
        let name = format!("mssante_test_{:016x}", rand::random::<u64>());
        let mut admin = sqlx::PgConnection::connect(&server_url()).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .unwrap();
        let _ = admin.close().await;
        let mut url = url::Url::parse(&server_url()).unwrap();
        url.set_path(&name);
        Database {
            name,
            url: url.to_string(),
        }
    }

    /// The `[store]` section of a server on this database.
    pub fn store_toml(&self) -> String {
        format!(
            "[store]\nbackend = \"postgres\"\nurl = {:?}\npool_size = 8\nconnect_timeout = \"5s\"\n",
            self.url
        )
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        // On a thread of its own: a test's runtime may be the current thread, busy
        // dropping this.
        let name = self.name.clone();
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let mut admin = sqlx::PgConnection::connect(&server_url()).await?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut admin)
                .await?;
                admin.close().await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}", self.name);
        }
    }
}

/// The `[store]` section for a new server of the running test, and the database it
/// uses (on PostgreSQL), to keep until the server has stopped.
pub async fn store_section() -> (String, Option<Database>) {
    match current() {
        Backend::Sqlite => (String::new(), None),
        Backend::Postgres => {
            let db = Database::create().await;
            (db.store_toml(), Some(db))
        }
    }
}

/// Where a store lives for a store test: a temporary folder, and on PostgreSQL a
/// database of its own; `open` opens it again and again (a restart).
pub struct Place {
    pub dir: TempDir,
    pub db: Option<Database>,
}

impl Place {
    pub async fn new() -> Place {
        let db = match current() {
            Backend::Sqlite => None,
            Backend::Postgres => Some(Database::create().await),
        };
        Place {
            dir: tempfile::tempdir().unwrap(),
            db,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub async fn open(&self) -> Store {
        let config = self.config();
        Store::open_configured(&config, mssante::clock::system())
            .await
            .unwrap()
    }

    /// A minimal configuration naming this place's store.
    pub fn config(&self) -> mssante::config::Config {
        std::fs::write(self.dir.path().join("k.pem"), "").unwrap();
        let text = format!(
            "[server]\nhostname = \"mail.one.mssante.fr\"\ndomains = [\"one.mssante.fr\"]\n\
             data_dir = \".\"\n{}\n[tls]\ncertificate = \"k.pem\"\nprivate_key = \"k.pem\"\n\
             [psc]\nissuer = \"https://auth.esante.gouv.fr/auth/realms/esante-wallet\"\n",
            self.db
                .as_ref()
                .map(Database::store_toml)
                .unwrap_or_default()
        );
        mssante::config::Config::parse(&text, self.dir.path()).unwrap()
    }

    /// Rows in `table` (bodies, messages, folders), read beside the store.
    pub async fn count_rows(&self, table: &str) -> i64 {
        let sql = match table {
            "bodies" => "SELECT COUNT(*) FROM bodies",
            "messages" => "SELECT COUNT(*) FROM messages",
            "folders" => "SELECT COUNT(*) FROM folders",
            other => panic!("no count for {other}"),
        };
        match &self.db {
            Some(db) => {
                let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
                sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap()
            }
            None => {
                let mut c = sqlx::SqliteConnection::connect(&format!(
                    "sqlite://{}",
                    self.dir.path().join("mssante.db").display()
                ))
                .await
                .unwrap();
                sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap()
            }
        }
    }
}

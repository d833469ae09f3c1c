//! `[store]`: which database holds the mail. SQLite (the default) is a file in
//! `[server] data_dir`; PostgreSQL is a server that several `serve` nodes can share.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use url::Url;

use super::checker::{Checker, Scalar};
use super::units::HumanDuration;
use super::{ConfigError, invalid};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone, Serialize)]
pub struct StoreConfig {
    pub backend: StoreBackend,
    /// The PostgreSQL server, from `url` or read from `url_file`; shown without its
    /// password.
    pub url: Option<DatabaseUrl>,
    pub url_file: Option<PathBuf>,
    /// Connections this process keeps to PostgreSQL.
    pub pool_size: u32,
    /// How long to wait for a connection (opening one, or a free one from the pool).
    pub connect_timeout: HumanDuration,
    /// PostgreSQL cancels a statement that runs longer (its `statement_timeout`), so a
    /// stuck query frees its connection and its locks.
    pub statement_timeout: HumanDuration,
    /// How long an outbound message claimed by a node stays with it unless the node
    /// renews the claim (it does, every third of this, while it lives): how long a dead
    /// node's mail waits before another node takes it over.
    pub queue_lease: HumanDuration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            backend: StoreBackend::Sqlite,
            url: None,
            url_file: None,
            pool_size: DEFAULT_POOL_SIZE,
            connect_timeout: HumanDuration(std::time::Duration::from_secs(10)),
            statement_timeout: HumanDuration(std::time::Duration::from_secs(60)),
            queue_lease: HumanDuration(std::time::Duration::from_secs(60)),
        }
    }
}

const DEFAULT_POOL_SIZE: u32 = 16;

/// A `postgres://` URL that never shows its password: not in `check-config`, not in
/// an error, not in a log line. `expose` hands the real one to the driver.
#[derive(Clone)]
pub struct DatabaseUrl(Url);

impl DatabaseUrl {
    /// Reads a `postgres://` URL (from the configuration, or `store copy --to`). The
    /// URL may hold a password: the error names what is wrong, never the text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let url = Url::parse(text.trim()).map_err(|e| format!("not a URL: {e}"))?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err(format!(
                "scheme `{}` is not PostgreSQL (postgres://user@host/database)",
                url.scheme()
            ));
        }
        Ok(DatabaseUrl(url))
    }

    /// The URL with its password, for the database driver only.
    pub fn expose(&self) -> &str {
        self.0.as_str()
    }

    /// Host (and port) to name in errors: what an operator checks first.
    pub fn host(&self) -> String {
        let host = self.0.host_str().unwrap_or("localhost");
        match self.0.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_owned(),
        }
    }

    fn masked(&self) -> String {
        let mut shown = self.0.clone();
        if shown.password().is_some() {
            // Only fails for URLs that cannot have a password, and this one has one.
            let _ = shown.set_password(Some("********"));
        }
        shown.to_string()
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", self.masked())
    }
}

impl Serialize for DatabaseUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.masked())
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct Raw {
    pub backend: Option<String>,
    pub url: Option<String>,
    pub url_file: Option<String>,
    pub pool_size: Option<i64>,
    pub connect_timeout: Option<Scalar>,
    pub statement_timeout: Option<Scalar>,
    pub queue_lease: Option<Scalar>,
}

impl StoreConfig {
    pub(super) fn check(s: Raw, c: &Checker<'_>) -> Result<Self, ConfigError> {
        let defaults = StoreConfig::default();
        let backend = match s.backend.as_deref().map(str::trim) {
            None | Some("sqlite") => StoreBackend::Sqlite,
            Some("postgres" | "postgresql") => StoreBackend::Postgres,
            Some(other) => {
                return Err(invalid(
                    "store.backend",
                    format!("`{other}` is not a backend (sqlite or postgres)"),
                ));
            }
        };
        let pool_size = c.count("store.pool_size", s.pool_size, DEFAULT_POOL_SIZE)?;
        let connect_timeout = c.duration("store.connect_timeout", s.connect_timeout, "10s")?;
        let statement_timeout =
            c.duration("store.statement_timeout", s.statement_timeout, "60s")?;
        let queue_lease = c.duration("store.queue_lease", s.queue_lease, "60s")?;
        for (key, value) in [
            ("store.connect_timeout", connect_timeout),
            ("store.queue_lease", queue_lease),
        ] {
            if value.0.as_secs() == 0 {
                return Err(invalid(key, "must be at least one second"));
            }
        }
        if backend == StoreBackend::Sqlite {
            for (key, set) in [
                ("store.url", s.url.is_some()),
                ("store.url_file", s.url_file.is_some()),
            ] {
                if set {
                    return Err(invalid(key, "only used with backend = \"postgres\""));
                }
            }
            return Ok(StoreConfig {
                pool_size,
                connect_timeout,
                statement_timeout,
                queue_lease,
                ..defaults
            });
        }
        let (text, key, url_file) = match (s.url, s.url_file) {
            (Some(url), None) => (url, "store.url", None),
            (None, Some(file)) => {
                let path = c.existing_file("store.url_file", &file)?;
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    invalid(
                        "store.url_file",
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?;
                (text.trim().to_owned(), "store.url_file", Some(path))
            }
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "store.url",
                    "set either store.url or store.url_file, not both",
                ));
            }
            (None, None) => {
                return Err(invalid(
                    "store.url",
                    "backend = \"postgres\" needs store.url or store.url_file",
                ));
            }
        };
        let url = DatabaseUrl::parse(&text).map_err(|e| invalid(key, e))?;
        Ok(StoreConfig {
            backend,
            url: Some(url),
            url_file,
            pool_size,
            connect_timeout,
            statement_timeout,
            queue_lease,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_never_shown() {
        let url =
            DatabaseUrl(Url::parse("postgres://mssante:s3cret@db.internal:5433/mail").unwrap());
        for shown in [
            url.to_string(),
            format!("{url:?}"),
            toml::to_string(&StoreConfig {
                url: Some(url.clone()),
                backend: StoreBackend::Postgres,
                ..StoreConfig::default()
            })
            .unwrap(),
        ] {
            assert!(!shown.contains("s3cret"), "{shown}");
            assert!(
                shown.contains("mssante:********@db.internal:5433/mail"),
                "{shown}"
            );
        }
        assert_eq!(url.host(), "db.internal:5433");
        assert!(url.expose().contains("s3cret"));
        let bare = DatabaseUrl(Url::parse("postgres://postgres@127.0.0.1/test").unwrap());
        assert_eq!(bare.to_string(), "postgres://postgres@127.0.0.1/test");
    }
}

//! The configuration, parsed once into typed structs.
//!
//! The file is read into `raw` structs that mirror the TOML (so serde names unknown keys),
//! then every value is checked and converted with the key it came from, so an operator
//! reading an error knows which line to fix. Nothing downstream re-parses a string.
//!
//! One module a section (`server`, `tls`, `imap`, …): its typed struct, the raw struct
//! it is read from, and its checker. `checker` holds what they share; `units` the
//! durations and sizes operators write.

mod admin;
mod autoconfig;
mod checker;
mod directory;
mod imap;
mod lifecycle;
mod logging;
mod psc;
mod server;
mod session;
mod smtp;
mod store;
mod tls;
mod trust;
mod units;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use url::Url;

pub use self::admin::AdminConfig;
pub use self::autoconfig::AutoconfigConfig;
use self::checker::Checker;
pub use self::directory::{DirectoryConfig, DirectoryTarget};
pub use self::imap::ImapConfig;
pub use self::lifecycle::LifecycleConfig;
pub use self::logging::{LogConfig, LogFormat};
pub use self::psc::{PscConfig, PscValidation};
pub use self::server::ServerConfig;
pub use self::session::SessionConfig;
pub use self::smtp::SmtpConfig;
pub use self::store::{DatabaseUrl, StoreBackend, StoreConfig};
pub use self::tls::TlsConfig;
pub use self::trust::TrustConfig;
pub use self::units::{ByteSize, HumanDuration};

/// A configuration problem, always tied to the key that caused it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("configuration file {path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("configuration key `{key}`: {problem}")]
    Invalid { key: String, problem: String },
}

fn invalid(key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        problem: problem.into(),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub server: ServerConfig,
    pub store: StoreConfig,
    pub tls: TlsConfig,
    pub imap: ImapConfig,
    pub smtp: SmtpConfig,
    pub psc: PscConfig,
    pub session: SessionConfig,
    pub lifecycle: LifecycleConfig,
    pub directory: DirectoryConfig,
    pub trust: TrustConfig,
    pub log: LogConfig,
    pub admin: AdminConfig,
    pub autoconfig: AutoconfigConfig,
}

/// The file as written. Every struct refuses unknown keys.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    pub server: server::Raw,
    #[serde(default)]
    pub store: store::Raw,
    pub tls: tls::Raw,
    #[serde(default)]
    pub imap: imap::Raw,
    #[serde(default)]
    pub smtp: smtp::Raw,
    pub psc: psc::Raw,
    #[serde(default)]
    pub session: session::Raw,
    #[serde(default)]
    pub lifecycle: lifecycle::Raw,
    #[serde(default)]
    pub directory: directory::Raw,
    #[serde(default)]
    pub trust: trust::Raw,
    #[serde(default)]
    pub log: logging::Raw,
    #[serde(default)]
    pub admin: admin::Raw,
    #[serde(default)]
    pub autoconfig: autoconfig::Raw,
}

/// True for `localhost`, 127.0.0.0/8 and ::1.
pub fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        Self::parse(&text, base).map_err(|e| match e {
            ConfigError::Syntax { message, .. } => ConfigError::Syntax {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })
    }

    /// Parses configuration text; relative paths are taken from `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Self, ConfigError> {
        let file: RawFile = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: PathBuf::from("<text>"),
            message: e.to_string(),
        })?;
        Self::check(file, &Checker { base })
    }
    fn check(f: RawFile, c: &Checker<'_>) -> Result<Self, ConfigError> {
        // The first milestone's per-protocol cap on every connection of an address locked
        // out whole hospitals behind one NAT address. A file that still sets it keeps
        // loading, and the value now caps what it was meant against: connections that
        // have not authenticated (unless the [session] key itself is set).
        let legacy_per_address = [
            (
                "imap.max_connections_per_peer",
                f.imap.max_connections_per_peer,
            ),
            (
                "smtp.max_connections_per_peer",
                f.smtp.max_connections_per_peer,
            ),
        ]
        .into_iter()
        .filter(|(_, value)| value.is_some())
        .map(|(key, value)| c.count(key, value, 0))
        .collect::<Result<Vec<u32>, _>>()?
        .into_iter()
        .min();
        let smtp_max_message_size = f.smtp.max_message_size.clone();
        Ok(Config {
            server: ServerConfig::check(f.server, c)?,
            store: StoreConfig::check(f.store, c)?,
            tls: TlsConfig::check(f.tls, c)?,
            imap: ImapConfig::check(f.imap, smtp_max_message_size, c)?,
            smtp: SmtpConfig::check(f.smtp, c)?,
            psc: PscConfig::check(f.psc, c)?,
            session: SessionConfig::check(f.session, legacy_per_address, c)?,
            lifecycle: LifecycleConfig::check(f.lifecycle, c)?,
            directory: DirectoryConfig::check(f.directory, c)?,
            trust: TrustConfig::check(f.trust, c)?,
            log: LogConfig::check(f.log)?,
            admin: AdminConfig::check(f.admin, c)?,
            autoconfig: AutoconfigConfig::check(f.autoconfig)?,
        })
    }
    /// The effective configuration as TOML, secrets masked.
    pub fn to_display_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }

    /// True when `domain` is hosted here.
    pub fn is_local_domain(&self, domain: &str) -> bool {
        self.server
            .domains
            .iter()
            .any(|d| d.eq_ignore_ascii_case(domain))
    }

    /// The SQLite database file.
    pub fn database_path(&self) -> PathBuf {
        self.server.data_dir.join("mssante.db")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for u in [
            "http://127.0.0.1:8080/x",
            "http://localhost/",
            "http://[::1]:1/",
            "http://127.8.9.1/",
        ] {
            assert!(is_loopback_host(&Url::parse(u).unwrap()), "{u}");
        }
        for u in [
            "http://10.0.0.1/",
            "http://example.org/",
            "http://localhost.example.org/",
        ] {
            assert!(!is_loopback_host(&Url::parse(u).unwrap()), "{u}");
        }
    }
}

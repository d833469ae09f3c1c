//! The configuration, parsed once into typed structs.
//!
//! The file is read into `raw` structs that mirror the TOML (so serde names unknown keys),
//! then every value is checked and converted with the key it came from, so an operator
//! reading an error knows which line to fix. Nothing downstream re-parses a string.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

/// `smtp.max_message_size`, and the IMAP APPEND limit unless `imap.max_literal_size` is set.
const DEFAULT_MAX_MESSAGE_SIZE: u64 = 20 * 1024 * 1024;

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

/// A duration written as `"90s"`, `"15m"`, `"4h"`, `"60d"` or a number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (digits, unit) = text.split_at(split);
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("`{text}` is not a duration (examples: 30s, 15m, 4h, 60d)"))?;
        let factor = match unit.trim() {
            "" | "s" => 1,
            "ms" => return Ok(Self(Duration::from_millis(n))),
            "m" | "min" => 60,
            "h" => 3600,
            "d" => 86_400,
            other => {
                return Err(format!(
                    "unknown duration unit `{other}` in `{text}` (use ms, s, m, h or d)"
                ));
            }
        };
        n.checked_mul(factor)
            .map(|s| Self(Duration::from_secs(s)))
            .ok_or_else(|| format!("duration `{text}` is too large"))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if !ms.is_multiple_of(1000) {
            return write!(f, "{ms}ms");
        }
        let s = self.0.as_secs();
        match s {
            0 => write!(f, "0s"),
            s if s.is_multiple_of(86_400) => write!(f, "{}d", s / 86_400),
            s if s.is_multiple_of(3600) => write!(f, "{}h", s / 3600),
            s if s.is_multiple_of(60) => write!(f, "{}m", s / 60),
            s => write!(f, "{s}s"),
        }
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// A size written as a number of bytes or `"20MiB"`, `"512KiB"`, `"1GB"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (digits, unit) = text.split_at(split);
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("`{text}` is not a size (examples: 4096, 512KiB, 20MiB)"))?;
        let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" => 1000,
            "kib" => 1 << 10,
            "m" | "mb" => 1_000_000,
            "mib" => 1 << 20,
            "g" | "gb" => 1_000_000_000,
            "gib" => 1 << 30,
            other => return Err(format!("unknown size unit `{other}` in `{text}`")),
        };
        n.checked_mul(factor)
            .map(Self)
            .ok_or_else(|| format!("size `{text}` is too large"))
    }

    pub fn as_usize(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }
}

/// How PSC access tokens are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PscValidation {
    /// Signature against the issuer's JWKS, claims checked here.
    Local,
    /// RFC 7662 introspection at the issuer.
    Introspection,
}

/// Where publication events for the Annuaire Santé go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum DirectoryTarget {
    /// Publication is not pushed anywhere (events are still logged).
    None,
    /// Append-only JSON Lines file.
    File { path: PathBuf },
    /// POST each event to an HTTPS endpoint.
    Http { url: Url },
}

#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub server: ServerConfig,
    pub tls: TlsConfig,
    pub imap: ImapConfig,
    pub smtp: SmtpConfig,
    pub psc: PscConfig,
    pub session: SessionConfig,
    pub lifecycle: LifecycleConfig,
    pub directory: DirectoryConfig,
    pub trust: TrustConfig,
    pub log: LogConfig,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServerConfig {
    pub hostname: String,
    pub domains: Vec<String>,
    pub data_dir: PathBuf,
}

#[derive(Debug, Clone, Serialize)]
pub struct TlsConfig {
    pub certificate: PathBuf,
    pub private_key: PathBuf,
    pub client_ca: Vec<PathBuf>,
    /// Certificate revocation lists: local files or https URLs.
    pub crls: Vec<String>,
    pub crl_refresh: HumanDuration,
}

#[derive(Debug, Clone, Serialize)]
pub struct ImapConfig {
    pub tls: Vec<SocketAddr>,
    pub starttls: Vec<SocketAddr>,
    pub max_line_length: ByteSize,
    pub max_literal_size: ByteSize,
    pub max_commands_per_second: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct SmtpConfig {
    pub submission_tls: Vec<SocketAddr>,
    pub submission_starttls: Vec<SocketAddr>,
    pub inbound: Vec<SocketAddr>,
    pub max_message_size: ByteSize,
    pub max_recipients: u32,
    pub max_messages_per_connection: u32,
    /// Store a copy of submitted mail in the sender's Sent folder.
    pub save_sent: bool,
    /// Refuse submitted mail whose `From:` names a mailbox the identity may not send as.
    pub check_from_header: bool,
    /// Static next hops for remote domains (`domain = "host:port"`), before MX lookup.
    pub routes: BTreeMap<String, String>,
    pub queue_max_lifetime: HumanDuration,
    pub queue_retry_initial: HumanDuration,
    /// The longest wait between two attempts (the back-off doubles up to it).
    pub queue_retry_max: HumanDuration,
    /// How long a remote operator may keep a delivery waiting for a reply to a command,
    /// or for room to write (RFC 5321 §4.5.3.2 suggests 5 minutes).
    pub queue_reply_timeout: HumanDuration,
    /// How long it may take to answer the final dot of DATA (RFC 5321: 10 minutes).
    pub queue_data_timeout: HumanDuration,
    /// DNS servers for MX lookups; empty: the system's (`/etc/resolv.conf`).
    pub dns_servers: Vec<SocketAddr>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PscConfig {
    pub issuer: Url,
    pub validation: PscValidation,
    pub jwks_uri: Option<Url>,
    pub introspection_endpoint: Option<Url>,
    pub client_id: Option<String>,
    #[serde(serialize_with = "mask_secret")]
    pub client_secret: Option<String>,
    pub accepted_acr: Vec<String>,
    pub allowed_azp: Vec<String>,
    pub algorithms: Vec<String>,
    pub http_timeout: HumanDuration,
    pub leeway: HumanDuration,
    pub jwks_refetch_interval: HumanDuration,
    pub jwks_max_age: HumanDuration,
    pub introspection_cache_size: u64,
}

fn mask_secret<S: serde::Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(_) => s.serialize_str("********"),
        None => s.serialize_none(),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SessionConfig {
    pub idle_timeout: HumanDuration,
    pub max_lifetime: HumanDuration,
    pub sasl_challenge_timeout: HumanDuration,
    /// Refusals of one (address, claimed mailbox) answered without a pause.
    pub auth_failures_before_delay: u32,
    /// Exempt from every per-address limit.
    pub trusted_networks: Vec<ipnet::IpNet>,
    pub handshake_timeout: HumanDuration,
    /// From the greeting: a client still not authenticated then is disconnected.
    pub login_timeout: HumanDuration,
    /// Connections the process holds at once, every listener together.
    pub max_connections: u32,
    pub max_unauthenticated_per_address: u32,
    /// Authenticated connections per (address, mailbox).
    pub max_mailbox_connections_per_address: u32,
    /// Authentication checks (token signatures, PSC introspection calls) in flight per
    /// address.
    pub max_verifications_per_address: u32,
    /// How long one write to a client may wait for it to read: a peer that stops reading
    /// is disconnected rather than holding its task forever.
    pub write_timeout: HumanDuration,
    /// At shutdown, how long open connections get to finish; the rest are then dropped.
    pub shutdown_timeout: HumanDuration,
}

#[derive(Debug, Clone, Serialize)]
pub struct LifecycleConfig {
    pub interval: HumanDuration,
    pub unpublish_after: HumanDuration,
    pub unpublish_min_age: HumanDuration,
    pub delete_after: HumanDuration,
    pub warn_before: Vec<HumanDuration>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DirectoryConfig {
    pub target: DirectoryTarget,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrustConfig {
    /// `listeblanchemssante.xml`: a local file or an https URL. None = no other operator.
    pub list: Option<String>,
    pub refresh: HumanDuration,
}

#[derive(Debug, Clone, Serialize)]
pub struct LogConfig {
    pub level: String,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

mod raw {
    //! The file as written. Every struct refuses unknown keys.
    use super::*;

    #[derive(Deserialize, Clone)]
    #[serde(untagged)]
    pub enum Scalar {
        Int(i64),
        Text(String),
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    pub enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }

    impl OneOrMany {
        pub fn into_vec(self) -> Vec<String> {
            match self {
                OneOrMany::One(s) => vec![s],
                OneOrMany::Many(v) => v,
            }
        }
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct File {
        pub server: Server,
        pub tls: Tls,
        #[serde(default)]
        pub imap: Imap,
        #[serde(default)]
        pub smtp: Smtp,
        pub psc: Psc,
        #[serde(default)]
        pub session: Session,
        #[serde(default)]
        pub lifecycle: Lifecycle,
        #[serde(default)]
        pub directory: Directory,
        #[serde(default)]
        pub trust: Trust,
        #[serde(default)]
        pub log: Log,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Server {
        pub hostname: String,
        pub domains: Vec<String>,
        pub data_dir: String,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Tls {
        pub certificate: String,
        pub private_key: String,
        pub client_ca: Option<OneOrMany>,
        pub crls: Option<Vec<String>>,
        pub crl_refresh: Option<Scalar>,
    }

    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    pub struct Imap {
        pub tls: Option<Vec<String>>,
        pub starttls: Option<Vec<String>>,
        pub max_line_length: Option<Scalar>,
        pub max_literal_size: Option<Scalar>,
        pub max_connections_per_peer: Option<i64>,
        pub max_commands_per_second: Option<i64>,
    }

    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    pub struct Smtp {
        pub submission_tls: Option<Vec<String>>,
        pub submission_starttls: Option<Vec<String>>,
        pub inbound: Option<Vec<String>>,
        pub max_message_size: Option<Scalar>,
        pub max_recipients: Option<i64>,
        pub max_messages_per_connection: Option<i64>,
        pub max_connections_per_peer: Option<i64>,
        pub save_sent: Option<bool>,
        pub check_from_header: Option<bool>,
        pub routes: Option<BTreeMap<String, String>>,
        pub queue_max_lifetime: Option<Scalar>,
        pub queue_retry_initial: Option<Scalar>,
        pub queue_retry_max: Option<Scalar>,
        pub queue_reply_timeout: Option<Scalar>,
        pub queue_data_timeout: Option<Scalar>,
        pub dns_servers: Option<Vec<String>>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Psc {
        pub issuer: String,
        pub validation: Option<String>,
        pub jwks_uri: Option<String>,
        pub introspection_endpoint: Option<String>,
        pub client_id: Option<String>,
        pub client_secret: Option<String>,
        pub accepted_acr: Option<Vec<String>>,
        pub allowed_azp: Option<Vec<String>>,
        pub algorithms: Option<Vec<String>>,
        pub http_timeout: Option<Scalar>,
        pub leeway: Option<Scalar>,
        pub jwks_refetch_interval: Option<Scalar>,
        pub jwks_max_age: Option<Scalar>,
        pub introspection_cache_size: Option<i64>,
    }

    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    pub struct Session {
        pub idle_timeout: Option<Scalar>,
        pub max_lifetime: Option<Scalar>,
        pub sasl_challenge_timeout: Option<Scalar>,
        pub auth_failures_before_delay: Option<i64>,
        pub trusted_networks: Option<Vec<String>>,
        pub handshake_timeout: Option<Scalar>,
        pub login_timeout: Option<Scalar>,
        pub max_connections: Option<i64>,
        pub max_unauthenticated_per_address: Option<i64>,
        pub max_mailbox_connections_per_address: Option<i64>,
        pub max_verifications_per_address: Option<i64>,
        pub write_timeout: Option<Scalar>,
        pub shutdown_timeout: Option<Scalar>,
    }

    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    pub struct Lifecycle {
        pub interval: Option<Scalar>,
        pub unpublish_after: Option<Scalar>,
        pub unpublish_min_age: Option<Scalar>,
        pub delete_after: Option<Scalar>,
        pub warn_before: Option<Vec<Scalar>>,
    }

    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    pub struct Directory {
        pub kind: Option<String>,
        pub path: Option<String>,
        pub url: Option<String>,
    }

    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    pub struct Trust {
        pub list: Option<String>,
        pub refresh: Option<Scalar>,
    }

    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    pub struct Log {
        pub level: Option<String>,
        pub format: Option<String>,
    }
}

/// Turns raw values into typed ones, resolving relative paths against the config's folder.
struct Checker<'a> {
    base: &'a Path,
}

impl Checker<'_> {
    fn path(&self, key: &str, value: &str) -> Result<PathBuf, ConfigError> {
        if value.trim().is_empty() {
            return Err(invalid(key, "must not be empty"));
        }
        let p = Path::new(value);
        Ok(if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        })
    }

    fn existing_file(&self, key: &str, value: &str) -> Result<PathBuf, ConfigError> {
        let p = self.path(key, value)?;
        match std::fs::metadata(&p) {
            Ok(m) if m.is_file() => Ok(p),
            Ok(_) => Err(invalid(key, format!("{} is not a file", p.display()))),
            Err(e) => Err(invalid(key, format!("cannot read {}: {e}", p.display()))),
        }
    }

    fn listeners(
        &self,
        key: &str,
        value: Option<Vec<String>>,
        default: &[&str],
    ) -> Result<Vec<SocketAddr>, ConfigError> {
        let list = value.unwrap_or_else(|| default.iter().map(|s| s.to_string()).collect());
        list.iter()
            .enumerate()
            .map(|(i, s)| {
                s.parse::<SocketAddr>().map_err(|_| {
                    invalid(
                        format!("{key}[{i}]"),
                        format!("`{s}` is not a socket address (expected IP:PORT, e.g. 0.0.0.0:993 or [::1]:143)"),
                    )
                })
            })
            .collect()
    }

    fn duration(
        &self,
        key: &str,
        value: Option<raw::Scalar>,
        default: &str,
    ) -> Result<HumanDuration, ConfigError> {
        match value {
            None => HumanDuration::parse(default).map_err(|e| invalid(key, e)),
            Some(raw::Scalar::Int(n)) => u64::try_from(n)
                .map(|n| HumanDuration(Duration::from_secs(n)))
                .map_err(|_| invalid(key, "must not be negative")),
            Some(raw::Scalar::Text(s)) => HumanDuration::parse(&s).map_err(|e| invalid(key, e)),
        }
    }

    fn size(
        &self,
        key: &str,
        value: Option<raw::Scalar>,
        default: u64,
    ) -> Result<ByteSize, ConfigError> {
        let size = match value {
            None => ByteSize(default),
            Some(raw::Scalar::Int(n)) => {
                ByteSize(u64::try_from(n).map_err(|_| invalid(key, "must not be negative"))?)
            }
            Some(raw::Scalar::Text(s)) => ByteSize::parse(&s).map_err(|e| invalid(key, e))?,
        };
        if size.0 == 0 {
            return Err(invalid(key, "must be greater than zero"));
        }
        Ok(size)
    }

    fn count(&self, key: &str, value: Option<i64>, default: u32) -> Result<u32, ConfigError> {
        match value {
            None => Ok(default),
            Some(n) if n >= 1 => {
                u32::try_from(n).map_err(|_| invalid(key, format!("{n} is too large")))
            }
            Some(n) => Err(invalid(key, format!("{n} must be at least 1"))),
        }
    }

    /// CIDR blocks; a bare address is a block of one.
    fn networks(
        &self,
        key: &str,
        value: Option<Vec<String>>,
    ) -> Result<Vec<ipnet::IpNet>, ConfigError> {
        value
            .unwrap_or_default()
            .iter()
            .enumerate()
            .map(|(i, s)| {
                s.parse::<ipnet::IpNet>()
                    .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        invalid(
                            format!("{key}[{i}]"),
                            format!("`{s}` is not a network (expected CIDR, e.g. 10.0.0.0/8 or 2001:db8::/32)"),
                        )
                    })
            })
            .collect()
    }

    /// `https://` everywhere; `http://` only towards this machine (tests, the sandbox).
    fn url(&self, key: &str, value: &str) -> Result<Url, ConfigError> {
        let url = Url::parse(value).map_err(|e| invalid(key, format!("`{value}`: {e}")))?;
        match url.scheme() {
            "https" => Ok(url),
            "http" if is_loopback_host(&url) => Ok(url),
            "http" => Err(invalid(
                key,
                format!("`{value}` uses http:// towards a host that is not loopback; use https://"),
            )),
            other => Err(invalid(
                key,
                format!("`{value}`: scheme `{other}` is not supported; use https://"),
            )),
        }
    }
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
        let file: raw::File = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: PathBuf::from("<text>"),
            message: e.to_string(),
        })?;
        Self::check(file, &Checker { base })
    }

    fn check(f: raw::File, c: &Checker<'_>) -> Result<Self, ConfigError> {
        let server = {
            let s = f.server;
            if s.hostname.trim().is_empty() || s.hostname.contains(char::is_whitespace) {
                return Err(invalid("server.hostname", "must be a host name"));
            }
            if s.domains.is_empty() {
                return Err(invalid("server.domains", "list at least one mail domain"));
            }
            for (i, d) in s.domains.iter().enumerate() {
                if d.is_empty() || d.contains(['@', ' ']) || !d.contains('.') {
                    return Err(invalid(
                        format!("server.domains[{i}]"),
                        format!("`{d}` is not a domain name"),
                    ));
                }
            }
            let data_dir = c.path("server.data_dir", &s.data_dir)?;
            if data_dir.exists() && !data_dir.is_dir() {
                return Err(invalid(
                    "server.data_dir",
                    format!("{} exists and is not a folder", data_dir.display()),
                ));
            }
            ServerConfig {
                hostname: s.hostname,
                domains: s
                    .domains
                    .into_iter()
                    .map(|d| d.to_ascii_lowercase())
                    .collect(),
                data_dir,
            }
        };

        let tls = {
            let t = f.tls;
            let client_ca = t
                .client_ca
                .map(raw::OneOrMany::into_vec)
                .unwrap_or_default()
                .iter()
                .map(|p| c.existing_file("tls.client_ca", p))
                .collect::<Result<_, _>>()?;
            let crls = t.crls.unwrap_or_default();
            for (i, crl) in crls.iter().enumerate() {
                let key = format!("tls.crls[{i}]");
                if crl.contains("://") {
                    c.url(&key, crl)?;
                } else {
                    c.existing_file(&key, crl)?;
                }
            }
            let crls = crls
                .into_iter()
                .map(|crl| {
                    if crl.contains("://") {
                        crl
                    } else {
                        c.base.join(crl).to_string_lossy().into_owned()
                    }
                })
                .collect();
            TlsConfig {
                certificate: c.existing_file("tls.certificate", &t.certificate)?,
                private_key: c.existing_file("tls.private_key", &t.private_key)?,
                client_ca,
                crls,
                crl_refresh: c.duration("tls.crl_refresh", t.crl_refresh, "1h")?,
            }
        };

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

        let imap = {
            let i = f.imap;
            ImapConfig {
                tls: c.listeners("imap.tls", i.tls, &["0.0.0.0:993"])?,
                starttls: c.listeners("imap.starttls", i.starttls, &["0.0.0.0:143"])?,
                max_line_length: c.size("imap.max_line_length", i.max_line_length, 64 * 1024)?,
                // A message is a message however it arrives: APPEND takes what SMTP takes,
                // unless the operator set an IMAP limit of its own, which then wins.
                max_literal_size: match i.max_literal_size {
                    Some(size) => c.size("imap.max_literal_size", Some(size), 0)?,
                    None => c.size(
                        "smtp.max_message_size",
                        f.smtp.max_message_size.clone(),
                        DEFAULT_MAX_MESSAGE_SIZE,
                    )?,
                },
                max_commands_per_second: c.count(
                    "imap.max_commands_per_second",
                    i.max_commands_per_second,
                    200,
                )?,
            }
        };

        let smtp = {
            let s = f.smtp;
            let routes = s.routes.unwrap_or_default();
            for (domain, hop) in &routes {
                if hop
                    .rsplit_once(':')
                    .and_then(|(_, p)| p.parse::<u16>().ok())
                    .is_none()
                {
                    return Err(invalid(
                        format!("smtp.routes.{domain}"),
                        format!("`{hop}` is not HOST:PORT"),
                    ));
                }
            }
            SmtpConfig {
                submission_tls: c.listeners(
                    "smtp.submission_tls",
                    s.submission_tls,
                    &["0.0.0.0:465"],
                )?,
                submission_starttls: c.listeners(
                    "smtp.submission_starttls",
                    s.submission_starttls,
                    &["0.0.0.0:587"],
                )?,
                inbound: c.listeners("smtp.inbound", s.inbound, &["0.0.0.0:25"])?,
                max_message_size: c.size(
                    "smtp.max_message_size",
                    s.max_message_size,
                    DEFAULT_MAX_MESSAGE_SIZE,
                )?,
                max_recipients: c.count("smtp.max_recipients", s.max_recipients, 100)?,
                max_messages_per_connection: c.count(
                    "smtp.max_messages_per_connection",
                    s.max_messages_per_connection,
                    1000,
                )?,
                save_sent: s.save_sent.unwrap_or(false),
                check_from_header: s.check_from_header.unwrap_or(true),
                routes: routes
                    .into_iter()
                    .map(|(d, h)| (d.to_ascii_lowercase(), h))
                    .collect(),
                queue_max_lifetime: c.duration(
                    "smtp.queue_max_lifetime",
                    s.queue_max_lifetime,
                    "5d",
                )?,
                queue_retry_initial: c.duration(
                    "smtp.queue_retry_initial",
                    s.queue_retry_initial,
                    "5m",
                )?,
                queue_retry_max: c.duration("smtp.queue_retry_max", s.queue_retry_max, "1h")?,
                queue_reply_timeout: c.duration(
                    "smtp.queue_reply_timeout",
                    s.queue_reply_timeout,
                    "5m",
                )?,
                queue_data_timeout: c.duration(
                    "smtp.queue_data_timeout",
                    s.queue_data_timeout,
                    "10m",
                )?,
                dns_servers: c.listeners("smtp.dns_servers", s.dns_servers, &[])?,
            }
        };

        let psc = {
            let p = f.psc;
            let validation = match p.validation.as_deref() {
                None | Some("local") => PscValidation::Local,
                Some("introspection") => PscValidation::Introspection,
                Some(other) => {
                    return Err(invalid(
                        "psc.validation",
                        format!("`{other}`: expected \"local\" or \"introspection\""),
                    ));
                }
            };
            let algorithms = p.algorithms.unwrap_or_else(|| vec!["RS256".into()]);
            if algorithms.is_empty() {
                return Err(invalid("psc.algorithms", "list at least one algorithm"));
            }
            for a in &algorithms {
                if !matches!(
                    a.as_str(),
                    "RS256"
                        | "RS384"
                        | "RS512"
                        | "PS256"
                        | "PS384"
                        | "PS512"
                        | "ES256"
                        | "ES384"
                        | "EdDSA"
                ) {
                    return Err(invalid(
                        "psc.algorithms",
                        format!(
                            "`{a}` is not an accepted signature algorithm (`none` and HMAC are never allowed)"
                        ),
                    ));
                }
            }
            if validation == PscValidation::Introspection
                && (p.client_id.is_none() || p.client_secret.is_none())
            {
                return Err(invalid(
                    "psc.client_id",
                    "introspection needs psc.client_id and psc.client_secret",
                ));
            }
            PscConfig {
                issuer: c.url("psc.issuer", &p.issuer)?,
                validation,
                jwks_uri: p.jwks_uri.map(|u| c.url("psc.jwks_uri", &u)).transpose()?,
                introspection_endpoint: p
                    .introspection_endpoint
                    .map(|u| c.url("psc.introspection_endpoint", &u))
                    .transpose()?,
                client_id: p.client_id,
                client_secret: p.client_secret,
                accepted_acr: p.accepted_acr.unwrap_or_else(|| vec!["eidas1".into()]),
                allowed_azp: p.allowed_azp.unwrap_or_default(),
                algorithms,
                http_timeout: c.duration("psc.http_timeout", p.http_timeout, "5s")?,
                leeway: {
                    let l = c.duration("psc.leeway", p.leeway, "60s")?;
                    if l.0 > Duration::from_secs(60) {
                        return Err(invalid("psc.leeway", "must be at most 60s"));
                    }
                    l
                },
                jwks_refetch_interval: c.duration(
                    "psc.jwks_refetch_interval",
                    p.jwks_refetch_interval,
                    "1m",
                )?,
                jwks_max_age: c.duration("psc.jwks_max_age", p.jwks_max_age, "10m")?,
                introspection_cache_size: u64::from(c.count(
                    "psc.introspection_cache_size",
                    p.introspection_cache_size,
                    100_000,
                )?),
            }
        };

        let session = {
            let s = f.session;
            SessionConfig {
                idle_timeout: c.duration("session.idle_timeout", s.idle_timeout, "15m")?,
                max_lifetime: c.duration("session.max_lifetime", s.max_lifetime, "4h")?,
                sasl_challenge_timeout: c.duration(
                    "session.sasl_challenge_timeout",
                    s.sasl_challenge_timeout,
                    "5s",
                )?,
                auth_failures_before_delay: c.count(
                    "session.auth_failures_before_delay",
                    s.auth_failures_before_delay,
                    3,
                )?,
                trusted_networks: c.networks("session.trusted_networks", s.trusted_networks)?,
                handshake_timeout: c.duration(
                    "session.handshake_timeout",
                    s.handshake_timeout,
                    "10s",
                )?,
                login_timeout: c.duration("session.login_timeout", s.login_timeout, "60s")?,
                max_connections: c.count("session.max_connections", s.max_connections, 10_000)?,
                max_unauthenticated_per_address: c.count(
                    "session.max_unauthenticated_per_address",
                    s.max_unauthenticated_per_address
                        .or(legacy_per_address.map(i64::from)),
                    100,
                )?,
                max_mailbox_connections_per_address: c.count(
                    "session.max_mailbox_connections_per_address",
                    s.max_mailbox_connections_per_address,
                    20,
                )?,
                max_verifications_per_address: c.count(
                    "session.max_verifications_per_address",
                    s.max_verifications_per_address,
                    16,
                )?,
                write_timeout: c.duration("session.write_timeout", s.write_timeout, "60s")?,
                shutdown_timeout: c.duration(
                    "session.shutdown_timeout",
                    s.shutdown_timeout,
                    "30s",
                )?,
            }
        };

        let lifecycle = {
            let l = f.lifecycle;
            let warn_before = match l.warn_before {
                None => vec![
                    HumanDuration(Duration::from_secs(30 * 86_400)),
                    HumanDuration(Duration::from_secs(7 * 86_400)),
                ],
                Some(list) => list
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| c.duration(&format!("lifecycle.warn_before[{i}]"), Some(v), ""))
                    .collect::<Result<_, _>>()?,
            };
            LifecycleConfig {
                interval: c.duration("lifecycle.interval", l.interval, "1h")?,
                unpublish_after: c.duration(
                    "lifecycle.unpublish_after",
                    l.unpublish_after,
                    "60d",
                )?,
                unpublish_min_age: c.duration(
                    "lifecycle.unpublish_min_age",
                    l.unpublish_min_age,
                    "365d",
                )?,
                delete_after: c.duration("lifecycle.delete_after", l.delete_after, "365d")?,
                warn_before,
            }
        };

        let directory = {
            let d = f.directory;
            let target = match d.kind.as_deref() {
                None if d.path.is_none() && d.url.is_none() => DirectoryTarget::None,
                Some("none") => DirectoryTarget::None,
                None | Some("file") if d.path.is_some() => DirectoryTarget::File {
                    path: c.path("directory.path", d.path.as_deref().unwrap_or_default())?,
                },
                None | Some("http") if d.url.is_some() => DirectoryTarget::Http {
                    url: c.url("directory.url", d.url.as_deref().unwrap_or_default())?,
                },
                Some("file") => {
                    return Err(invalid("directory.path", "required when kind = \"file\""));
                }
                Some("http") => {
                    return Err(invalid("directory.url", "required when kind = \"http\""));
                }
                Some(other) => {
                    return Err(invalid(
                        "directory.kind",
                        format!("`{other}`: expected \"none\", \"file\" or \"http\""),
                    ));
                }
                None => DirectoryTarget::None,
            };
            DirectoryConfig { target }
        };

        let trust = {
            let t = f.trust;
            let list = match t.list {
                None => None,
                Some(l) if l.contains("://") => Some(c.url("trust.list", &l)?.to_string()),
                Some(l) => Some(
                    c.existing_file("trust.list", &l)?
                        .to_string_lossy()
                        .into_owned(),
                ),
            };
            TrustConfig {
                list,
                refresh: c.duration("trust.refresh", t.refresh, "1h")?,
            }
        };

        let log = {
            let l = f.log;
            let format = match l.format.as_deref() {
                None | Some("text") => LogFormat::Text,
                Some("json") => LogFormat::Json,
                Some(other) => {
                    return Err(invalid(
                        "log.format",
                        format!("`{other}`: expected \"text\" or \"json\""),
                    ));
                }
            };
            let level = l.level.unwrap_or_else(|| "info".into());
            if level.parse::<tracing_subscriber::EnvFilter>().is_err() {
                return Err(invalid(
                    "log.level",
                    format!("`{level}` is not a log filter"),
                ));
            }
            LogConfig { level, format }
        };

        Ok(Config {
            server,
            tls,
            imap,
            smtp,
            psc,
            session,
            lifecycle,
            directory,
            trust,
            log,
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
    fn durations() {
        assert_eq!(
            HumanDuration::parse("15m").unwrap().0,
            Duration::from_secs(900)
        );
        assert_eq!(
            HumanDuration::parse("4h").unwrap().0,
            Duration::from_secs(14_400)
        );
        assert_eq!(HumanDuration::parse("60d").unwrap().to_string(), "60d");
        assert_eq!(HumanDuration::parse("90").unwrap().to_string(), "90s");
        assert_eq!(HumanDuration::parse("250ms").unwrap().to_string(), "250ms");
        assert!(HumanDuration::parse("15 parsecs").is_err());
        assert!(HumanDuration::parse("").is_err());
        assert!(HumanDuration::parse("99999999999999999999d").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(ByteSize::parse("20MiB").unwrap().0, 20 * 1024 * 1024);
        assert_eq!(ByteSize::parse("4096").unwrap().0, 4096);
        assert_eq!(ByteSize::parse("1GB").unwrap().0, 1_000_000_000);
        assert!(ByteSize::parse("12 apples").is_err());
    }

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

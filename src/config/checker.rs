//! Raw values to typed ones, each error naming the key it came from.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use super::units::{ByteSize, HumanDuration};
use super::{ConfigError, invalid, is_loopback_host};

/// A value written either as a number or as text with a unit (`90` or `"90s"`).
#[derive(Deserialize, Clone)]
#[serde(untagged)]
pub(super) enum Scalar {
    Int(i64),
    Text(String),
}

#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum OneOrMany {
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

/// Turns raw values into typed ones, resolving relative paths against the config's folder.
pub(super) struct Checker<'a> {
    pub(super) base: &'a Path,
}

impl Checker<'_> {
    pub(super) fn path(&self, key: &str, value: &str) -> Result<PathBuf, ConfigError> {
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

    pub(super) fn existing_file(&self, key: &str, value: &str) -> Result<PathBuf, ConfigError> {
        let p = self.path(key, value)?;
        match std::fs::metadata(&p) {
            Ok(m) if m.is_file() => Ok(p),
            Ok(_) => Err(invalid(key, format!("{} is not a file", p.display()))),
            Err(e) => Err(invalid(key, format!("cannot read {}: {e}", p.display()))),
        }
    }

    pub(super) fn listeners(
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

    pub(super) fn duration(
        &self,
        key: &str,
        value: Option<Scalar>,
        default: &str,
    ) -> Result<HumanDuration, ConfigError> {
        match value {
            None => HumanDuration::parse(default).map_err(|e| invalid(key, e)),
            Some(Scalar::Int(n)) => u64::try_from(n)
                .map(|n| HumanDuration(Duration::from_secs(n)))
                .map_err(|_| invalid(key, "must not be negative")),
            Some(Scalar::Text(s)) => HumanDuration::parse(&s).map_err(|e| invalid(key, e)),
        }
    }

    pub(super) fn size(
        &self,
        key: &str,
        value: Option<Scalar>,
        default: u64,
    ) -> Result<ByteSize, ConfigError> {
        let size = match value {
            None => ByteSize(default),
            Some(Scalar::Int(n)) => {
                ByteSize(u64::try_from(n).map_err(|_| invalid(key, "must not be negative"))?)
            }
            Some(Scalar::Text(s)) => ByteSize::parse(&s).map_err(|e| invalid(key, e))?,
        };
        if size.0 == 0 {
            return Err(invalid(key, "must be greater than zero"));
        }
        Ok(size)
    }

    pub(super) fn count(
        &self,
        key: &str,
        value: Option<i64>,
        default: u32,
    ) -> Result<u32, ConfigError> {
        match value {
            None => Ok(default),
            Some(n) if n >= 1 => {
                u32::try_from(n).map_err(|_| invalid(key, format!("{n} is too large")))
            }
            Some(n) => Err(invalid(key, format!("{n} must be at least 1"))),
        }
    }

    /// CIDR blocks; a bare address is a block of one.
    pub(super) fn networks(
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
    pub(super) fn url(&self, key: &str, value: &str) -> Result<Url, ConfigError> {
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

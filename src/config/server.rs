//! `[server]`: who this server is and where it keeps its data.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::checker::Checker;
use super::{ConfigError, invalid};

#[derive(Debug, Clone, Serialize)]
pub struct ServerConfig {
    pub hostname: String,
    pub domains: Vec<String>,
    pub data_dir: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Raw {
    pub hostname: String,
    pub domains: Vec<String>,
    pub data_dir: String,
}

impl ServerConfig {
    pub(super) fn check(s: Raw, c: &Checker<'_>) -> Result<Self, ConfigError> {
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
        Ok(ServerConfig {
            hostname: s.hostname,
            domains: s
                .domains
                .into_iter()
                .map(|d| d.to_ascii_lowercase())
                .collect(),
            data_dir,
        })
    }
}

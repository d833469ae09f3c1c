//! `[admin]`: the HTTP listener for `/metrics` and `/health/*`.
//!
//! It tells how the server is doing and how much mail it carries, which is nobody's
//! business outside the operator: on loopback it is plain HTTP (Prometheus or an agent on
//! the same machine), anywhere else it is TLS with a client certificate from
//! `admin.client_ca` required, and a file that asks for a non-loopback address without
//! one is refused.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::checker::Checker;
use super::{ConfigError, invalid};

const DEFAULT_LISTEN: &str = "127.0.0.1:9187";

#[derive(Debug, Clone, Serialize)]
pub struct AdminConfig {
    /// None: no admin listener (`listen = ""`).
    pub listen: Option<SocketAddr>,
    /// CAs whose client certificates may scrape; required unless `listen` is loopback.
    /// With it, the listener speaks TLS with the `[tls]` certificate and key.
    pub client_ca: Vec<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct Raw {
    pub listen: Option<String>,
    pub client_ca: Option<super::checker::OneOrMany>,
}

impl AdminConfig {
    pub(super) fn check(a: Raw, c: &Checker<'_>) -> Result<Self, ConfigError> {
        let text = a.listen.unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen = if text.trim().is_empty() {
            None
        } else {
            Some(text.parse::<SocketAddr>().map_err(|_| {
                invalid(
                    "admin.listen",
                    format!(
                        "`{text}` is not a socket address (expected IP:PORT, e.g. {DEFAULT_LISTEN})"
                    ),
                )
            })?)
        };
        let client_ca: Vec<PathBuf> = a
            .client_ca
            .map(super::checker::OneOrMany::into_vec)
            .unwrap_or_default()
            .iter()
            .map(|p| c.existing_file("admin.client_ca", p))
            .collect::<Result<_, _>>()?;
        if let Some(addr) = listen
            && !addr.ip().is_loopback()
            && client_ca.is_empty()
        {
            return Err(invalid(
                "admin.listen",
                format!(
                    "{addr} is not a loopback address: set admin.client_ca so that only \
                     holders of a client certificate can reach the metrics and health endpoints"
                ),
            ));
        }
        Ok(AdminConfig { listen, client_ca })
    }

    /// Whether the listener speaks TLS (a client CA is configured).
    pub fn uses_tls(&self) -> bool {
        !self.client_ca.is_empty()
    }
}

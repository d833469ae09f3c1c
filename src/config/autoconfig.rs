//! `[autoconfig]`: where mail clients find their settings from the address alone
//! (Thunderbird's autoconfig, Microsoft's Autodiscover). Off unless `listen` is set.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::{ConfigError, invalid};

#[derive(Debug, Clone, Default, Serialize)]
pub struct AutoconfigConfig {
    /// HTTPS with the `[tls]` certificate; None: off.
    pub listen: Option<SocketAddr>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct Raw {
    pub listen: Option<String>,
}

impl AutoconfigConfig {
    pub(super) fn check(a: Raw) -> Result<Self, ConfigError> {
        let listen = match a.listen.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) => Some(text.parse::<SocketAddr>().map_err(|_| {
                invalid(
                    "autoconfig.listen",
                    format!(
                        "`{text}` is not a socket address (expected IP:PORT, e.g. 0.0.0.0:443)"
                    ),
                )
            })?),
        };
        Ok(AutoconfigConfig { listen })
    }
}

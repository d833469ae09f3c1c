//! `[tls]`: the server certificate, the client CAs and their revocation lists.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ConfigError;
use super::checker::{Checker, OneOrMany, Scalar};
use super::units::HumanDuration;

#[derive(Debug, Clone, Serialize)]
pub struct TlsConfig {
    pub certificate: PathBuf,
    pub private_key: PathBuf,
    pub client_ca: Vec<PathBuf>,
    /// Certificate revocation lists: local files or https URLs.
    pub crls: Vec<String>,
    pub crl_refresh: HumanDuration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Raw {
    pub certificate: String,
    pub private_key: String,
    pub client_ca: Option<OneOrMany>,
    pub crls: Option<Vec<String>>,
    pub crl_refresh: Option<Scalar>,
}

impl TlsConfig {
    pub(super) fn check(t: Raw, c: &Checker<'_>) -> Result<Self, ConfigError> {
        let client_ca = t
            .client_ca
            .map(OneOrMany::into_vec)
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
        Ok(TlsConfig {
            certificate: c.existing_file("tls.certificate", &t.certificate)?,
            private_key: c.existing_file("tls.private_key", &t.private_key)?,
            client_ca,
            crls,
            crl_refresh: c.duration("tls.crl_refresh", t.crl_refresh, "1h")?,
        })
    }
}

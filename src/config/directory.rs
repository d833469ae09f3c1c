//! `[directory]`: where publication events for the Annuaire Santé go.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use url::Url;

use super::checker::Checker;
use super::{ConfigError, invalid};

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
pub struct DirectoryConfig {
    pub target: DirectoryTarget,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct Raw {
    pub kind: Option<String>,
    pub path: Option<String>,
    pub url: Option<String>,
}

impl DirectoryConfig {
    pub(super) fn check(d: Raw, c: &Checker<'_>) -> Result<Self, ConfigError> {
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
        Ok(DirectoryConfig { target })
    }
}

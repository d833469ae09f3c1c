//! `[trust]`: the list of the other operators (listeblanchemssante.xml).

use serde::{Deserialize, Serialize};

use super::ConfigError;
use super::checker::{Checker, Scalar};
use super::units::HumanDuration;

#[derive(Debug, Clone, Serialize)]
pub struct TrustConfig {
    /// `listeblanchemssante.xml`: a local file or an https URL. None = no other operator.
    pub list: Option<String>,
    pub refresh: HumanDuration,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct Raw {
    pub list: Option<String>,
    pub refresh: Option<Scalar>,
}

impl TrustConfig {
    pub(super) fn check(t: Raw, c: &Checker<'_>) -> Result<Self, ConfigError> {
        let list = match t.list {
            None => None,
            Some(l) if l.contains("://") => Some(c.url("trust.list", &l)?.to_string()),
            Some(l) => Some(
                c.existing_file("trust.list", &l)?
                    .to_string_lossy()
                    .into_owned(),
            ),
        };
        Ok(TrustConfig {
            list,
            refresh: c.duration("trust.refresh", t.refresh, "1h")?,
        })
    }
}

//! `[lifecycle]`: the Référentiel #1 rules for inactive mailboxes.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigError;
use super::checker::{Checker, Scalar};
use super::units::HumanDuration;

#[derive(Debug, Clone, Serialize)]
pub struct LifecycleConfig {
    pub interval: HumanDuration,
    pub unpublish_after: HumanDuration,
    pub unpublish_min_age: HumanDuration,
    pub delete_after: HumanDuration,
    pub warn_before: Vec<HumanDuration>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct Raw {
    pub interval: Option<Scalar>,
    pub unpublish_after: Option<Scalar>,
    pub unpublish_min_age: Option<Scalar>,
    pub delete_after: Option<Scalar>,
    pub warn_before: Option<Vec<Scalar>>,
}

impl LifecycleConfig {
    pub(super) fn check(l: Raw, c: &Checker<'_>) -> Result<Self, ConfigError> {
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
        Ok(LifecycleConfig {
            interval: c.duration("lifecycle.interval", l.interval, "1h")?,
            unpublish_after: c.duration("lifecycle.unpublish_after", l.unpublish_after, "60d")?,
            unpublish_min_age: c.duration(
                "lifecycle.unpublish_min_age",
                l.unpublish_min_age,
                "365d",
            )?,
            delete_after: c.duration("lifecycle.delete_after", l.delete_after, "365d")?,
            warn_before,
        })
    }
}

//! `[log]`: what the server logs, and how.

use serde::{Deserialize, Serialize};

use super::{ConfigError, invalid};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize)]
pub struct LogConfig {
    pub level: String,
    pub format: LogFormat,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct Raw {
    pub level: Option<String>,
    pub format: Option<String>,
}

impl LogConfig {
    pub(super) fn check(l: Raw) -> Result<Self, ConfigError> {
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
        Ok(LogConfig { level, format })
    }
}

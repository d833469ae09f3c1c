//! `[imap]`: IMAP listeners and limits.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::ConfigError;
use super::checker::{Checker, Scalar};
use super::smtp::DEFAULT_MAX_MESSAGE_SIZE;
use super::units::ByteSize;

#[derive(Debug, Clone, Serialize)]
pub struct ImapConfig {
    pub tls: Vec<SocketAddr>,
    pub starttls: Vec<SocketAddr>,
    pub max_line_length: ByteSize,
    pub max_literal_size: ByteSize,
    pub max_commands_per_second: u32,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct Raw {
    pub tls: Option<Vec<String>>,
    pub starttls: Option<Vec<String>>,
    pub max_line_length: Option<Scalar>,
    pub max_literal_size: Option<Scalar>,
    pub max_connections_per_peer: Option<i64>,
    pub max_commands_per_second: Option<i64>,
}

impl ImapConfig {
    pub(super) fn check(
        i: Raw,
        smtp_max_message_size: Option<Scalar>,
        c: &Checker<'_>,
    ) -> Result<Self, ConfigError> {
        Ok(ImapConfig {
            tls: c.listeners("imap.tls", i.tls, &["0.0.0.0:993"])?,
            starttls: c.listeners("imap.starttls", i.starttls, &["0.0.0.0:143"])?,
            max_line_length: c.size("imap.max_line_length", i.max_line_length, 64 * 1024)?,
            // A message is a message however it arrives: APPEND takes what SMTP takes,
            // unless the operator set an IMAP limit of its own, which then wins.
            max_literal_size: match i.max_literal_size {
                Some(size) => c.size("imap.max_literal_size", Some(size), 0)?,
                None => c.size(
                    "smtp.max_message_size",
                    smtp_max_message_size,
                    DEFAULT_MAX_MESSAGE_SIZE,
                )?,
            },
            max_commands_per_second: c.count(
                "imap.max_commands_per_second",
                i.max_commands_per_second,
                200,
            )?,
        })
    }
}

//! mssante: an MSSanté operator mail server.
//!
//! IMAP and SMTP for health professionals' mail software, authenticated by Pro Santé
//! Connect tokens or IGC-Santé client certificates, with mail kept in SQLite.
#![forbid(unsafe_code)]

pub mod admin;
pub mod auth;
pub mod autoconfig;
mod casemap;
pub mod clock;
pub mod config;
pub mod context;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod imap;
pub mod incident;
pub mod lifecycle;
pub mod metrics;
pub mod net;
pub mod server;
pub mod smtp;
pub mod store;
pub mod structure;
pub mod tls;
pub mod web;

//! The MSSanté conformance suite: what the ANS operator test application checks, against
//! any IMAP/SMTP server, with its own Pro Santé Connect stand-in and a test PKI shaped
//! like IGC-Santé.
//!
//! None of it runs in a production server, so it is a crate of its own beside the
//! server library: the `mssante conformance`, `mssante dev` and `mssante dev pki`
//! commands and the tests use it. It depends on nothing of the server, so that it tests
//! a server only from the outside, as the ANS application does.
//!
//! The runner mints good and deliberately bad tokens with a [`PscStandIn`] the server
//! under test trusts, speaks IMAP and SMTP to it as an LPS would, and writes down each
//! exchange (tokens redacted) beside the verdict, the rule it checks and the public
//! document the rule comes from, so that the HTML/JSON report is evidence an operator
//! can hand over.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use mssante_conformance::psc_standin::PscStandIn;
//! use mssante_conformance::{self as conformance, Target};
//! let psc = PscStandIn::start("127.0.0.1:0".parse()?).await?;
//! // … configure the server with psc.config_toml("local") and start it …
//! let mut target = Target::new("dr.house@h.mssante.fr", "899700000001");
//! target.imap = Some("127.0.0.1:993".into());
//! let report = conformance::run(&psc, &target).await?;
//! report.write(std::path::Path::new("report.html"))?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

pub mod pki;
pub mod psc_standin;
pub mod wire;

mod case;
mod imap;
mod python_tls;
mod report;
mod rules;
mod sasl;
mod smtp;
mod target;
mod tls;

use std::sync::Arc;

use rustls::ClientConfig;

use case::Suite;
pub use case::{CaseInfo, CaseResult, Outcome};
use psc_standin::PscStandIn;
pub use report::{Report, Summary};
pub use target::{ClientCertificate, Target};

/// Runs every applicable case against `target`, whose server trusts `psc`.
pub async fn run(psc: &PscStandIn, target: &Target) -> anyhow::Result<Report> {
    let ca = target.ca.as_deref();
    let with = |c: &Option<ClientCertificate>| -> anyhow::Result<Option<Arc<ClientConfig>>> {
        c.as_ref()
            .map(|c| wire::client_config(ca, Some((&c.certificate, &c.key))))
            .transpose()
    };
    let suite = Suite {
        psc,
        target,
        tls: wire::client_config(ca, None)?,
        tls_certificate: with(&target.certificate)?,
        tls_bad_certificate: with(&target.bad_certificate)?,
        tls_operator: with(
            &target
                .operator_certificate
                .clone()
                .or(target.certificate.clone()),
        )?,
    };
    let started = chrono::Utc::now();
    let mut results = Vec::new();
    imap::run(&suite, &mut results).await;
    smtp::run(&suite, &mut results).await;
    Ok(Report::new(psc, target, started, results))
}

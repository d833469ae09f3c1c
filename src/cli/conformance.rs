//! `mssante conformance …`: the operator test suite against any server, with its own
//! PSC stand-in that the server under test must trust for the run.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use mssante_conformance::psc_standin::PscStandIn;
use mssante_conformance::{self as conformance, ClientCertificate, Target};

#[derive(Args, Debug)]
pub struct ConformanceArgs {
    /// IMAP with implicit TLS (HOST:PORT, usually 993).
    #[arg(long)]
    pub imap: Option<String>,
    /// IMAP with STARTTLS (HOST:PORT, usually 143): capabilities and downgrade cases.
    #[arg(long)]
    pub imap_starttls: Option<String>,
    /// SMTP submission with implicit TLS (HOST:PORT, usually 465).
    #[arg(long)]
    pub smtp: Option<String>,
    /// SMTP submission with STARTTLS (HOST:PORT, usually 587).
    #[arg(long)]
    pub smtp_starttls: Option<String>,
    /// Operator-to-operator SMTP (HOST:PORT, usually 25) for the operator-interface case.
    #[arg(long)]
    pub inbound: Option<String>,
    /// Envelope sender on the operator interface (its domain must be in the trust list).
    #[arg(long)]
    pub inbound_from: Option<String>,
    /// The mailbox under test (personal mailbox of --idnat, or organisational granted to it).
    #[arg(long)]
    pub mailbox: String,
    /// The professional's IdNat.
    #[arg(long)]
    pub idnat: String,
    /// An IdNat that must NOT open the mailbox.
    #[arg(long, default_value = "899700999999")]
    pub other_idnat: String,
    /// AUTH_CLI certificate (PEM chain) that opens an applicative mailbox.
    #[arg(long, requires = "key")]
    pub certificate: Option<PathBuf>,
    #[arg(long, requires = "certificate")]
    pub key: Option<PathBuf>,
    /// The applicative mailbox the certificate opens (default: empty authorisation
    /// identity, the single mailbox bound to it).
    #[arg(long)]
    pub certificate_mailbox: Option<String>,
    /// A certificate that must be refused (expired, revoked, foreign CA …).
    #[arg(long, requires = "bad_key")]
    pub bad_certificate: Option<PathBuf>,
    #[arg(long, requires = "bad_certificate")]
    pub bad_key: Option<PathBuf>,
    /// Operator server certificate for the operator interface (default: --certificate).
    #[arg(long, requires = "operator_key")]
    pub operator_certificate: Option<PathBuf>,
    #[arg(long, requires = "operator_certificate")]
    pub operator_key: Option<PathBuf>,
    /// CA bundle that verifies the server certificate (unset: not verified, said in the report).
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// TLS server name to send and verify (default: the host of each address).
    #[arg(long)]
    pub server_name: Option<String>,
    /// Where the suite's PSC stand-in listens; fix the port so the server under test can
    /// be configured once with the printed issuer.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub psc_listen: SocketAddr,
    /// Write the stand-in's public key (SPKI PEM) here at start, for servers that take a
    /// static key rather than the JWKS (Dovecot's `local_validation_key_dict`).
    #[arg(long)]
    pub psc_public_key_out: Option<PathBuf>,
    /// Wait for Enter after printing the issuer (time to point the server at it).
    #[arg(long)]
    pub pause: bool,
    /// Seconds to wait for one server line.
    #[arg(long, default_value_t = 40)]
    pub timeout: u64,
    /// Seconds to stay silent after an error challenge (must exceed the server's own
    /// challenge timeout).
    #[arg(long, default_value_t = 15)]
    pub challenge_wait: u64,
    /// The HTML report; the JSON report is written beside it (`.json`).
    #[arg(long, default_value = "conformance-report.html")]
    pub report: PathBuf,
}

pub async fn run(args: ConformanceArgs) -> ExitCode {
    match conformance(args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(super::status::FAILURE),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(super::status::USAGE)
        }
    }
}

async fn conformance(a: ConformanceArgs) -> anyhow::Result<bool> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let psc = PscStandIn::start(a.psc_listen)
        .await
        .with_context(|| format!("starting the PSC stand-in on {}", a.psc_listen))?;
    eprintln!(
        "PSC stand-in issuer: {}\nThe server under test must trust it for this run, e.g.:\n\n{}",
        psc.issuer(),
        psc.config_toml("local")
    );
    if let Some(path) = &a.psc_public_key_out {
        std::fs::write(path, psc.public_key_pem())
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!(
            "PSC stand-in public key (kid {}): {}",
            psc.current_kid(),
            path.display()
        );
    }
    if a.pause {
        eprintln!("Press Enter when the server is configured …");
        let mut line = String::new();
        let _ = tokio::task::spawn_blocking(move || std::io::stdin().read_line(&mut line)).await;
    }
    let cert = |c: Option<PathBuf>, k: Option<PathBuf>, mailbox: Option<String>| {
        c.zip(k).map(|(certificate, key)| ClientCertificate {
            certificate,
            key,
            mailbox,
        })
    };
    let mut target = Target::new(&a.mailbox, &a.idnat);
    target.imap = a.imap;
    target.imap_starttls = a.imap_starttls;
    target.smtp = a.smtp;
    target.smtp_starttls = a.smtp_starttls;
    target.inbound = a.inbound;
    target.inbound_from = a.inbound_from;
    target.other_idnat = a.other_idnat;
    target.certificate = cert(a.certificate, a.key, a.certificate_mailbox.clone());
    target.bad_certificate = cert(a.bad_certificate, a.bad_key, a.certificate_mailbox);
    target.operator_certificate = cert(a.operator_certificate, a.operator_key, None);
    target.ca = a.ca;
    target.server_name = a.server_name;
    target.timeout = Duration::from_secs(a.timeout.max(1));
    target.unanswered_challenge_wait = Duration::from_secs(a.challenge_wait.max(1));

    let report = conformance::run(&psc, &target).await?;
    for c in &report.cases {
        println!(
            "{:<8} {:<40} {}",
            c.outcome.label().to_uppercase(),
            c.info.id,
            c.outcome.detail()
        );
    }
    let json = report.write(&a.report)?;
    let s = report.summary;
    println!(
        "\n{} passed, {} failed, {} skipped\nreport: {}\njson:   {}",
        s.passed,
        s.failed,
        s.skipped,
        a.report.display(),
        json.display()
    );
    psc.shutdown().await;
    Ok(s.failed == 0)
}

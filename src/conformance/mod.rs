//! The conformance suite: what the ANS operator test application checks, against any
//! IMAP/SMTP server, with its own PSC stand-in.
//!
//! The runner mints good and deliberately bad tokens with a [`PscStandIn`] the server
//! under test trusts, speaks IMAP and SMTP to it as an LPS would, and writes down each
//! exchange (tokens redacted) beside the verdict, the rule it checks and the public document the rule comes from, so
//! that the HTML/JSON report is evidence an operator can hand over.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use mssante::conformance::{self, Target};
//! use mssante::psc_standin::PscStandIn;
//! let psc = PscStandIn::start("127.0.0.1:0".parse()?).await?;
//! // … configure the server with psc.config_toml("local") and start it …
//! let mut target = Target::new("dr.house@h.mssante.fr", "899700000001");
//! target.imap = Some("127.0.0.1:993".into());
//! let report = conformance::run(&psc, &target).await?;
//! report.write(std::path::Path::new("report.html"))?;
//! # Ok(()) }
//! ```

mod imap;
mod python_tls;
mod report;
mod smtp;
pub mod wire;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rustls::ClientConfig;
use serde::Serialize;

use crate::psc_standin::{Flaw, PscStandIn, TokenSpec};
pub use report::{Report, Summary};
use wire::{Endpoint, Recorder};

/// A client certificate (PEM chain and key) and the mailbox it should open.
#[derive(Debug, Clone)]
pub struct ClientCertificate {
    pub certificate: PathBuf,
    pub key: PathBuf,
    /// The applicative mailbox to open with EXTERNAL; `None` sends an empty
    /// authorisation identity (the single mailbox bound to the certificate).
    pub mailbox: Option<String>,
}

/// The server under test and what to test on it.
#[derive(Debug, Clone)]
pub struct Target {
    /// IMAP with implicit TLS (port 993).
    pub imap: Option<String>,
    /// IMAP with STARTTLS (port 143).
    pub imap_starttls: Option<String>,
    /// Submission with implicit TLS (port 465).
    pub smtp: Option<String>,
    /// Submission with STARTTLS (port 587).
    pub smtp_starttls: Option<String>,
    /// Operator-to-operator SMTP (port 25), for the operator-interface case.
    pub inbound: Option<String>,
    /// Sender address used on the operator interface (its domain must be trusted).
    pub inbound_from: Option<String>,
    /// The mailbox under test: a personal mailbox of `idnat`, or an organisational one
    /// granted to it.
    pub mailbox: String,
    pub idnat: String,
    /// A professional who must not open `mailbox`.
    pub other_idnat: String,
    /// An AUTH_CLI certificate that opens an applicative mailbox.
    pub certificate: Option<ClientCertificate>,
    /// A certificate that must be refused (expired, revoked, foreign CA …).
    pub bad_certificate: Option<ClientCertificate>,
    /// The operator's server certificate for the operator interface (mutual TLS).
    pub operator_certificate: Option<ClientCertificate>,
    /// CA bundle that verifies the server certificate; `None` = not verified (said in
    /// the report).
    pub ca: Option<PathBuf>,
    /// TLS server name (SNI); default: the host of each address.
    pub server_name: Option<String>,
    /// Longest wait for one server line.
    pub timeout: Duration,
    /// How long to stay silent after an error challenge before expecting the failure
    /// (the server's own challenge timeout must be shorter).
    pub unanswered_challenge_wait: Duration,
}

impl Target {
    pub fn new(mailbox: &str, idnat: &str) -> Self {
        Target {
            imap: None,
            imap_starttls: None,
            smtp: None,
            smtp_starttls: None,
            inbound: None,
            inbound_from: None,
            mailbox: mailbox.to_owned(),
            idnat: idnat.to_owned(),
            other_idnat: "899700999999".to_owned(),
            certificate: None,
            bad_certificate: None,
            operator_certificate: None,
            ca: None,
            server_name: None,
            timeout: Duration::from_secs(40),
            unanswered_challenge_wait: Duration::from_secs(15),
        }
    }
}

/// The verdict of one case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", content = "detail", rename_all = "lowercase")]
pub enum Outcome {
    Pass(String),
    Fail(String),
    Skipped(String),
}

impl Outcome {
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Pass(_) => "pass",
            Outcome::Fail(_) => "fail",
            Outcome::Skipped(_) => "skipped",
        }
    }

    pub fn detail(&self) -> &str {
        match self {
            Outcome::Pass(d) | Outcome::Fail(d) | Outcome::Skipped(d) => d,
        }
    }
}

/// Pass when `ok`, else fail, with the same explanation.
fn verdict(ok: bool, detail: impl Into<String>) -> Outcome {
    if ok {
        Outcome::Pass(detail.into())
    } else {
        Outcome::Fail(detail.into())
    }
}

/// What a case is and which rule it checks.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CaseInfo {
    /// Stable name, e.g. `imap-xoauth2-expired`.
    pub id: &'static str,
    pub title: &'static str,
    /// The public documents the rule comes from (ANS documents, PSC documentation, RFC
    /// sections), so the report can be shown to the ANS as it is.
    pub reference: &'static str,
    /// The rule, in a sentence.
    pub requirement: &'static str,
}

impl CaseInfo {
    pub fn new(
        id: &'static str,
        title: &'static str,
        reference: &'static str,
        requirement: &'static str,
    ) -> Self {
        CaseInfo {
            id,
            title,
            reference,
            requirement,
        }
    }
}

/// One case's result with its evidence.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    #[serde(flatten)]
    pub info: CaseInfo,
    pub outcome: Outcome,
    pub duration_ms: u64,
    pub transcript: Vec<wire::Line>,
}

/// What every case needs.
pub(crate) struct Suite<'a> {
    pub psc: &'a PscStandIn,
    pub target: &'a Target,
    pub tls: Arc<ClientConfig>,
    pub tls_certificate: Option<Arc<ClientConfig>>,
    pub tls_bad_certificate: Option<Arc<ClientConfig>>,
    pub tls_operator: Option<Arc<ClientConfig>>,
}

impl Suite<'_> {
    fn endpoint(&self, address: &str) -> anyhow::Result<Endpoint> {
        Endpoint::parse(address, self.target.server_name.as_deref())
    }

    /// The endpoint at `address` (given by the command-line `option`); without one, each of
    /// `cases` is reported skipped, with why.
    fn endpoint_or_skip(
        &self,
        address: Option<&str>,
        option: &str,
        cases: Vec<CaseInfo>,
        out: &mut Vec<CaseResult>,
    ) -> Option<Endpoint> {
        let why = match address.map(|a| self.endpoint(a)) {
            Some(Ok(e)) => return Some(e),
            Some(Err(err)) => format!("{err:#}"),
            None => format!("no {option} address given"),
        };
        out.extend(cases.into_iter().map(|i| skipped(i, &why)));
        None
    }

    /// A token for `idnat` (`flaw` on purpose), registered as a secret of `rec`.
    fn token(&self, rec: &Recorder, idnat: &str, flaw: Option<Flaw>) -> String {
        let spec = match flaw {
            Some(f) => TokenSpec::flawed(idnat, f),
            None => TokenSpec::valid(idnat),
        };
        let token = self.psc.mint(&spec);
        rec.secret(&token);
        token
    }
}

/// The SASL XOAUTH2 initial response and how the transcript shows it.
pub(crate) fn xoauth2(user: &str, token: &str, label: &str) -> (String, String) {
    (
        B64.encode(format!("user={user}\x01auth=Bearer {token}\x01\x01")),
        format!("base64(\"user={user}^Aauth=Bearer <{label}>^A^A\")"),
    )
}

/// The SASL OAUTHBEARER initial response (RFC 7628) and how the transcript shows it.
pub(crate) fn oauthbearer(
    user: &str,
    endpoint: &Endpoint,
    token: &str,
    label: &str,
) -> (String, String) {
    let (host, port) = endpoint.host_port();
    (
        B64.encode(format!(
            "n,a={user},\x01host={host}\x01port={port}\x01auth=Bearer {token}\x01\x01"
        )),
        format!("base64(\"n,a={user},^Ahost={host}^Aport={port}^Aauth=Bearer <{label}>^A^A\")"),
    )
}

/// Decodes a base64 error challenge as JSON, noting it in the transcript.
/// The `status` of an error challenge as the exchange saw it (`None`: none was sent;
/// `Some(None)`: not base64 JSON), or why there is none to compare.
pub(crate) fn challenge_status(
    challenge: &Option<Option<serde_json::Value>>,
) -> Result<String, &'static str> {
    match challenge {
        None => Err("no error challenge was sent"),
        Some(None) => Err("the challenge is not base64 JSON"),
        Some(Some(json)) => Ok(json
            .get("status")
            .map(|s| {
                s.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| s.to_string())
            })
            .unwrap_or_default()),
    }
}

pub(crate) fn decode_challenge(rec: &Recorder, b64: &str) -> Option<serde_json::Value> {
    let b64 = b64.trim();
    match B64.decode(b64) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            rec.note(&format!("challenge decodes to: {text}"));
            serde_json::from_slice(&bytes).ok()
        }
        Err(_) => {
            rec.note("challenge is not base64");
            None
        }
    }
}

/// Token flaws every interface must refuse, with the rule each breaks.
/// (flaw, IMAP case id, SMTP case id, title, rule).
pub(crate) type FlawCase = (Flaw, &'static str, &'static str, &'static str, &'static str);
pub(crate) const FLAWS: &[FlawCase] = &[
    (
        Flaw::Expired,
        "imap-xoauth2-expired",
        "smtp-xoauth2-expired",
        "Expired token",
        "exp checked with at most 60 s leeway: a token expired ten minutes ago is refused",
    ),
    (
        Flaw::ForeignIssuer,
        "imap-xoauth2-foreign-issuer",
        "smtp-xoauth2-foreign-issuer",
        "Non-PSC token (foreign issuer)",
        "iss must equal the configured PSC issuer",
    ),
    (
        Flaw::BadSignature,
        "imap-xoauth2-bad-signature",
        "smtp-xoauth2-bad-signature",
        "Altered signature",
        "the RS256 signature is verified against PSC's published keys",
    ),
    (
        Flaw::AlgNone,
        "imap-xoauth2-alg-none",
        "smtp-xoauth2-alg-none",
        "alg: none",
        "alg must be in the allow-list (RS256); never none",
    ),
    (
        Flaw::Hs256WithPublicKey,
        "imap-xoauth2-hs256-confusion",
        "smtp-xoauth2-hs256-confusion",
        "HS256 signed with the public key",
        "never HMAC: an HS256 token keyed with PSC's public key is refused",
    ),
    (
        Flaw::UnknownKey,
        "imap-xoauth2-unknown-kid",
        "smtp-xoauth2-unknown-kid",
        "Key not published by PSC",
        "kid must be found in PSC's JWKS (one refetch on a miss)",
    ),
    (
        Flaw::NotYetValid,
        "imap-xoauth2-not-yet-valid",
        "smtp-xoauth2-not-yet-valid",
        "Token not yet valid",
        "nbf checked with at most 60 s leeway",
    ),
    (
        Flaw::WrongAcr,
        "imap-xoauth2-wrong-acr",
        "smtp-xoauth2-wrong-acr",
        "acr other than eidas1",
        "acr must be eidas1 (configurable list)",
    ),
    (
        Flaw::RefreshType,
        "imap-xoauth2-refresh-token",
        "smtp-xoauth2-refresh-token",
        "Refresh token used as access token",
        "typ must be Bearer",
    ),
];

// The public documents each family of cases comes from, as the report cites them: an
// operator hands the report to the ANS, who can only be shown published references.
// Section numbers are given where the document has stable ones (the RFCs).

pub(crate) const SECTION_PSC: &str = "ANS, Pro Santé Connect documentation (access token \
     validation: RS256 signature against the published JWKS, iss, exp and nbf, typ Bearer, \
     acr eidas1); RFC 7519 §4.1 (registered claims); RFC 7515 §4.1.1 (alg); RFC 8725 §3.1 \
     (algorithm verification); RFC 7662 §2.2 (introspection response)";
pub(crate) const SECTION_SASL: &str = "ANS, API LPS (IMAP and SMTP authentication with a \
     PSC access token in SASL XOAUTH2 or OAUTHBEARER, or an IGC-Santé AUTH_CLI certificate \
     in SASL EXTERNAL); RFC 7628 (OAUTHBEARER); RFC 4422 Appendix A (EXTERNAL); RFC 3501 \
     §6.2.2 and RFC 4959 (IMAP AUTHENTICATE, SASL-IR); RFC 4954 §4 (SMTP AUTH)";
pub(crate) const SECTION_ACCESS: &str = "ANS, Référentiel #1 Opérateurs MSSanté (personal, \
     organisational and applicative mailboxes, who may open and send from each; \
     traceability of authentications); ANS, API LPS (AUTH_CLI certificates for \
     applicative mailboxes); RFC 4954 §5 (MAIL FROM after AUTH)";
pub(crate) const SECTION_TLS: &str = "ANS, Référentiel #1 Opérateurs MSSanté (TLS, IGC-Santé \
     certificates); RFC 8996 (TLS 1.0 and 1.1 deprecated); RFC 8314 (implicit TLS); \
     RFC 3501 §6.2.1 and RFC 3207 (STARTTLS)";
pub(crate) const SECTION_TRUST: &str = "ANS, Référentiel #1 Opérateurs MSSanté (trust space: \
     the ANS list listeblanchemssante.xml of operator domains and server certificates, \
     IGC-Santé client certificates between operators); RFC 3207 (SMTP STARTTLS)";

/// Runs one case under a time limit and keeps its transcript whatever happens.
pub(crate) async fn run_case<F>(info: CaseInfo, rec: Recorder, case: F) -> CaseResult
where
    F: Future<Output = anyhow::Result<Outcome>>,
{
    let started = Instant::now();
    let outcome = match tokio::time::timeout(Duration::from_secs(180), case).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => Outcome::Fail(format!("{e:#}")),
        Err(_) => Outcome::Fail("the case did not finish within 180 s".into()),
    };
    CaseResult {
        info,
        outcome,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        transcript: rec.lines(),
    }
}

/// A case that cannot run, with why.
pub(crate) fn skipped(info: CaseInfo, why: &str) -> CaseResult {
    CaseResult {
        info,
        outcome: Outcome::Skipped(why.to_owned()),
        duration_ms: 0,
        transcript: Vec::new(),
    }
}

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

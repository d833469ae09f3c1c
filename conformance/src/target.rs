//! What to test: the server under test's addresses, the mailbox and professional the
//! cases act for, and the certificates to present.

use std::path::PathBuf;
use std::time::Duration;

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

//! The one place the integration tests spell the server's configuration keys: every test
//! describes the server it wants as a `Setup` and gets the file (and the parsed `Config`)
//! from here, so a key renamed or added in `src/config/` is changed once for all of them.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use mssante::config::Config;
use mssante::store::{Grant, MailboxKind, NewMailbox, Store};

/// Which listeners a server opens, each at its address (`127.0.0.1:0`: a free port).
#[derive(Clone, Debug, Default)]
pub struct Listeners {
    pub imap_tls: Option<String>,
    pub imap_starttls: Option<String>,
    pub submission_tls: Option<String>,
    pub submission_starttls: Option<String>,
    /// The inbound (operator to operator) listener.
    pub inbound: Option<String>,
}

/// Any free loopback port.
const ANY_PORT: &str = "127.0.0.1:0";

impl Listeners {
    /// None at all: for tests of the store, the jobs or the authenticator alone.
    pub fn none() -> Self {
        Listeners::default()
    }

    /// IMAP with implicit TLS and STARTTLS.
    pub fn imap() -> Self {
        Listeners {
            imap_tls: Some(ANY_PORT.into()),
            imap_starttls: Some(ANY_PORT.into()),
            ..Listeners::default()
        }
    }

    /// Every listener.
    pub fn all() -> Self {
        Listeners {
            submission_tls: Some(ANY_PORT.into()),
            submission_starttls: Some(ANY_PORT.into()),
            inbound: Some(ANY_PORT.into()),
            ..Listeners::imap()
        }
    }
}

/// One server as a test wants it. Paths are written as given: relative ones are read
/// from the configuration file's folder.
#[derive(Clone, Debug)]
pub struct Setup {
    pub hostname: String,
    pub domain: String,
    pub data_dir: PathBuf,
    /// The `[store]` section; empty: SQLite in `data_dir`.
    pub store: String,
    pub certificate: PathBuf,
    pub private_key: PathBuf,
    /// Ask for client certificates issued by this CA.
    pub client_ca: Option<PathBuf>,
    pub crls: Vec<PathBuf>,
    pub listeners: Listeners,
    /// Extra `[imap]` keys, one per line.
    pub imap: String,
    /// Extra `[smtp]` keys.
    pub smtp: String,
    /// `[smtp.routes]`: (domain, next hop).
    pub routes: Vec<(String, String)>,
    /// Extra `[session]` keys.
    pub session: String,
    /// `[trust] list`, refreshed hourly.
    pub trust_list: Option<PathBuf>,
    /// The `[psc]` section, usually `PscStandIn::config_toml`.
    pub psc: String,
    /// Extra `[admin]` keys: it listens on a free loopback port, so tests running side
    /// by side do not fight over the default one.
    pub admin: String,
    /// Whole sections of their own (`[lifecycle]`, `[directory]`, …), written last.
    pub sections: String,
}

impl Setup {
    /// `mail.{domain}` serving `domain`, data in `data/`, the certificate and key in
    /// `server.crt`/`server.key`, no listener and PSC's issuer with nothing else.
    pub fn new(domain: &str) -> Self {
        Setup {
            hostname: format!("mail.{domain}"),
            domain: domain.into(),
            data_dir: "data".into(),
            store: String::new(),
            certificate: "server.crt".into(),
            private_key: "server.key".into(),
            client_ca: None,
            crls: Vec::new(),
            listeners: Listeners::none(),
            imap: String::new(),
            smtp: String::new(),
            routes: Vec::new(),
            session: String::new(),
            trust_list: None,
            psc: "[psc]\nissuer = \"https://auth.bas.psc.esante.gouv.fr/auth/realms/esante-wallet\"\n"
                .into(),
            admin: String::new(),
            sections: String::new(),
        }
    }

    /// The configuration file's text.
    pub fn text(&self) -> String {
        let on = |address: &Option<String>| match address {
            Some(a) => format!("[{a:?}]"),
            None => "[]".into(),
        };
        let l = &self.listeners;
        let mut tls = format!(
            "certificate = {:?}\nprivate_key = {:?}\n",
            self.certificate, self.private_key
        );
        if let Some(ca) = &self.client_ca {
            tls.push_str(&format!("client_ca = {ca:?}\n"));
        }
        if !self.crls.is_empty() {
            tls.push_str(&format!("crls = {:?}\n", self.crls));
        }
        let mut routes = String::new();
        if !self.routes.is_empty() {
            routes.push_str("[smtp.routes]\n");
            for (domain, hop) in &self.routes {
                routes.push_str(&format!("{domain:?} = {hop:?}\n"));
            }
        }
        let trust = match &self.trust_list {
            Some(list) => format!("[trust]\nlist = {list:?}\nrefresh = \"1h\"\n"),
            None => String::new(),
        };
        format!(
            "[admin]\nlisten = \"127.0.0.1:0\"\n{admin}\n\n\
             [server]\nhostname = {hostname:?}\ndomains = [{domain:?}]\ndata_dir = {data:?}\n\n\
             {store}\n[tls]\n{tls}\n\
             [imap]\ntls = {imap_tls}\nstarttls = {imap_starttls}\n{imap}\n\n\
             [smtp]\nsubmission_tls = {sub_tls}\nsubmission_starttls = {sub_starttls}\n\
             inbound = {inbound}\n{smtp}\n\n{routes}\n\
             [session]\n{session}\n\n{trust}\n{psc}\n{sections}\n",
            hostname = self.hostname,
            domain = self.domain,
            data = self.data_dir,
            store = self.store,
            admin = self.admin,
            imap_tls = on(&l.imap_tls),
            imap_starttls = on(&l.imap_starttls),
            imap = self.imap,
            sub_tls = on(&l.submission_tls),
            sub_starttls = on(&l.submission_starttls),
            inbound = on(&l.inbound),
            smtp = self.smtp,
            session = self.session,
            psc = self.psc,
            sections = self.sections,
        )
    }

    /// Writes `config.toml` in `dir` (where relative paths are read from) and returns
    /// its path, for tests that run the CLI as a separate process on the same server.
    pub fn write(&self, dir: &Path) -> PathBuf {
        let path = dir.join("config.toml");
        std::fs::write(&path, self.text()).unwrap();
        path
    }

    /// Writes the file in `dir` and parses it as the server would.
    pub fn load(&self, dir: &Path) -> Config {
        Config::load(&self.write(dir)).unwrap()
    }
}

/// A mailbox of `kind`, created now, owned by `owner` (an IdNat) when personal.
pub async fn mailbox(store: &Store, address: &str, kind: MailboxKind, owner: Option<&str>) {
    store
        .create_mailbox(NewMailbox::new(
            address,
            kind,
            owner.map(str::to_owned),
            mssante::clock::SystemClock::now_utc(),
        ))
        .await
        .unwrap();
}

/// Grants `address` to the subject and issuer of the certificate in PEM file `cert`.
pub async fn grant_certificate(store: &Store, address: &str, cert: &Path) {
    let id = mssante::auth::certificate::identity_from_pem_file(cert).unwrap();
    let grant = Grant::CertificateSubject {
        subject: id.subject,
        issuer: id.issuer,
    };
    store.add_grant(address, grant).await.unwrap();
}

//! The system under test: a throwaway directory with a test PKI, the mailboxes, a
//! configuration on loopback ports, the PSC stand-in (in this process) and the release
//! server as a child process, so that its memory is measured apart from the load.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use futures::StreamExt;
use mssante::store::{MailboxKind, NewMailbox, Store};
use mssante_conformance::psc_standin::{PscStandIn, TokenSpec};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::CertificateDer;

pub const DOMAIN: &str = "h.mssante.fr";

/// Who logs in where. Idle mailboxes are watched by several connections each (a
/// professional's phone, desktop, tablet…); workers each have their own mailbox; the
/// notifier delivers to the idle mailboxes.
#[derive(Clone, Debug)]
pub struct Users {
    pub idle_mailboxes: usize,
    pub workers: usize,
}

impl Users {
    pub fn idle(&self, m: usize) -> (String, String) {
        (format!("idle{m}@{DOMAIN}"), format!("8997{:08}", m))
    }
    pub fn worker(&self, w: usize) -> (String, String) {
        (format!("worker{w}@{DOMAIN}"), format!("8998{:08}", w))
    }
    pub fn notifier(&self) -> (String, String) {
        (format!("notifier@{DOMAIN}"), "899900000001".to_owned())
    }
    pub fn probe(&self) -> (String, String) {
        (format!("probe@{DOMAIN}"), "899900000002".to_owned())
    }
    fn all(&self) -> Vec<(String, String)> {
        let mut v: Vec<_> = (0..self.idle_mailboxes).map(|m| self.idle(m)).collect();
        v.extend((0..self.workers).map(|w| self.worker(w)));
        v.push(self.notifier());
        v.push(self.probe());
        v
    }
}

/// Where the server listens.
#[derive(Clone, Copy, Debug)]
pub struct Ports {
    pub imaps: SocketAddr,
    pub imap: SocketAddr,
    pub smtps: SocketAddr,
    pub submission: SocketAddr,
    pub inbound: SocketAddr,
}

impl Ports {
    pub fn all(&self) -> [(&'static str, SocketAddr); 5] {
        [
            ("IMAP 993 (TLS)", self.imaps),
            ("IMAP 143 (STARTTLS)", self.imap),
            ("SMTP 465 (TLS)", self.smtps),
            ("SMTP 587 (STARTTLS)", self.submission),
            ("SMTP 25 (operators)", self.inbound),
        ]
    }
}

pub struct System {
    pub dir: tempfile::TempDir,
    pub ports: Ports,
    pub ca: CertificateDer<'static>,
    pub tokens: std::collections::HashMap<String, String>,
    pub server: tokio::process::Child,
    pub pid: u32,
    _psc: PscStandIn,
}

impl System {
    pub fn token(&self, idnat: &str) -> &str {
        self.tokens.get(idnat).map(String::as_str).unwrap_or("")
    }

    /// SIGTERM, then what the server said on stderr if it did not stop cleanly.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let _ = std::process::Command::new("kill")
            .arg(self.pid.to_string())
            .status();
        let status = tokio::time::timeout(Duration::from_secs(60), self.server.wait()).await;
        let log = self.dir.path().join("server.log");
        match status {
            Ok(Ok(s)) if s.success() => Ok(()),
            other => {
                let _ = self.server.kill().await;
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(20).collect();
                anyhow::bail!("server did not stop cleanly ({other:?}); log tail: {tail:?}")
            }
        }
    }

    /// Warnings and errors the server logged (its log level is `warn`).
    pub fn log_lines(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("server.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// A free loopback port (bound, then let go: the server binds it a moment later).
fn free_port() -> anyhow::Result<SocketAddr> {
    let l = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(l.local_addr()?)
}

pub async fn start(
    server: &Path,
    users: &Users,
    max_connections: usize,
    token_lifetime: Duration,
) -> anyhow::Result<System> {
    let dir = tempfile::Builder::new().prefix("mssante-soak.").tempdir()?;
    let ca = pki(dir.path())?;
    let psc = PscStandIn::start("127.0.0.1:0".parse()?).await?;
    let mut tokens = std::collections::HashMap::new();
    for (_, idnat) in users.all() {
        let spec = TokenSpec::valid(&idnat).with_lifetime(token_lifetime);
        tokens.insert(idnat, psc.mint(&spec));
    }
    create_mailboxes(&dir.path().join("data"), users).await?;
    let ports = Ports {
        imaps: free_port()?,
        imap: free_port()?,
        smtps: free_port()?,
        submission: free_port()?,
        inbound: free_port()?,
    };
    // The [session] per-address caps stay at their defaults: the load comes from many
    // loopback addresses, as a hospital's clients come from a few NAT addresses, and
    // every connection goes through the caps a real deployment has. Only the process
    // total is raised, above the idle connections plus the workers.
    let config = format!(
        "[server]\nhostname = \"mail.{DOMAIN}\"\ndomains = [\"{DOMAIN}\"]\ndata_dir = \"data\"\n\
         [tls]\ncertificate = \"cert.pem\"\nprivate_key = \"key.pem\"\nclient_ca = \"ca.pem\"\n\
         [imap]\ntls = [\"{}\"]\nstarttls = [\"{}\"]\n\
         [smtp]\nsubmission_tls = [\"{}\"]\nsubmission_starttls = [\"{}\"]\ninbound = [\"{}\"]\n\
         max_messages_per_connection = 1000000\n\
         [session]\nmax_connections = {max_connections}\n\
         [lifecycle]\ninterval = \"1h\"\n{}",
        ports.imaps,
        ports.imap,
        ports.smtps,
        ports.submission,
        ports.inbound,
        psc.config_toml("local"),
    );
    let config_path = dir.path().join("config.toml");
    std::fs::write(&config_path, config)?;
    let log = std::fs::File::create(dir.path().join("server.log"))?;
    let child = tokio::process::Command::new(server)
        .arg("--config")
        .arg(&config_path)
        .arg("serve")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", server.display()))?;
    let pid = child.id().context("server pid")?;
    let mut system = System {
        dir,
        ports,
        ca,
        tokens,
        server: child,
        pid,
        _psc: psc,
    };
    for (name, addr) in ports.all() {
        let mut up = false;
        for _ in 0..300 {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                up = true;
                break;
            }
            if let Ok(Some(status)) = system.server.try_wait() {
                anyhow::bail!("server exited ({status}): {:?}", system.log_lines());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::ensure!(up, "{name} ({addr}) never opened: {:?}", system.log_lines());
    }
    Ok(system)
}

/// A CA and a leaf for localhost, as in the integration tests.
fn pki(dir: &Path) -> anyhow::Result<CertificateDer<'static>> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
    let leaf_key = KeyPair::generate()?;
    let leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?
        .signed_by(&leaf_key, &ca)?;
    std::fs::write(dir.join("cert.pem"), leaf.pem() + &ca.pem())?;
    std::fs::write(dir.join("key.pem"), leaf_key.serialize_pem())?;
    std::fs::write(dir.join("ca.pem"), ca.pem())?;
    Ok(ca.der().clone())
}

/// Every mailbox, through the library, before the server starts; many at once so the
/// group commit takes them in few transactions.
async fn create_mailboxes(data: &Path, users: &Users) -> anyhow::Result<()> {
    let store = Store::open(data, mssante::clock::system()).await?;
    let results: Vec<_> = futures::stream::iter(users.all())
        .map(|(address, idnat)| {
            let store = store.clone();
            async move {
                store
                    .create_mailbox(NewMailbox::new(
                        address,
                        MailboxKind::Personal,
                        Some(idnat),
                        mssante::clock::SystemClock::now_utc(),
                    ))
                    .await
            }
        })
        .buffer_unordered(256)
        .collect()
        .await;
    for r in results {
        r?;
    }
    store.close().await;
    Ok(())
}

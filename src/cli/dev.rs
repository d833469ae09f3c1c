//! `mssante dev …`: tools for trying the server on one machine. Nothing here is for
//! production.
//!
//! `mssante dev` alone is the sandbox a newcomer runs first: a test PKI, a PSC stand-in
//! and the server on loopback ports, demo mailboxes with mail in them, and commands to
//! paste. A second process gets fresh tokens from the running sandbox with
//! `mssante dev token IDNAT`: the stand-in serves `POST {issuer}/dev/token` to loopback
//! clients, and the sandbox writes its addresses to `DIR/sandbox.json`.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};

use super::report;
use mssante::config::Config;
use mssante::store::{DirectoryFields, Grant, MailboxKind, NewMailbox, RawMessage, Store};
use mssante_conformance::pki::Ensured;
use mssante_conformance::psc_standin::{DemoProfessional, PscStandIn, REALM_PATH, TokenSpec};

#[derive(Args, Debug)]
pub struct DevArgs {
    #[command(subcommand)]
    pub command: Option<DevCommand>,
    /// Sandbox folder (PKI, configuration, data); default: a temporary folder removed
    /// on exit.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Use consecutive ports from N (IMAP TLS, IMAP STARTTLS, SMTP TLS, SMTP STARTTLS,
    /// SMTP inbound, PSC); 0 = any free ports. Default: 1993, 1143, 1465, 1587, 1025,
    /// 8443, each replaced by a free port when taken.
    #[arg(long)]
    pub ports_from: Option<u16>,
    /// Unattended clients: the stand-in's authorization endpoint never shows its page and
    /// logs this IdNat in when `login_hint` names no single demo professional.
    #[arg(long, value_name = "IDNAT")]
    pub approve: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum DevCommand {
    /// Generate a test PKI shaped like IGC-Santé: CAs, server and AUTH_CLI certificates,
    /// refusal cases (expired, revoked, server-only, foreign CA) and a CRL.
    Pki {
        /// Folder to write into (created if missing; existing files are replaced).
        #[arg(long)]
        out: PathBuf,
    },
    /// Print a fresh access token (valid 2 minutes) for a demo IdNat, minted by a running
    /// sandbox.
    Token {
        idnat: String,
        /// The running sandbox's folder (reads DIR/sandbox.json).
        #[arg(long, conflicts_with = "psc")]
        dir: Option<PathBuf>,
        /// The sandbox's PSC issuer URL (default: the default sandbox port).
        #[arg(long)]
        psc: Option<String>,
    },
}

pub async fn run(args: DevArgs) -> ExitCode {
    match args.command {
        Some(DevCommand::Pki { out }) => report(pki(&out)),
        Some(DevCommand::Token { idnat, dir, psc }) => {
            report(token(&idnat, dir.as_deref(), psc.as_deref()).await)
        }
        None => report(sandbox(args.dir, args.ports_from, args.approve).await),
    }
}

fn pki(out: &Path) -> anyhow::Result<()> {
    mssante_conformance::pki::generate(out)
        .with_context(|| format!("generating the test PKI in {}", out.display()))?;
    println!("test PKI written to {} (not for production)", out.display());
    for name in [
        "ca.crt",
        "server.crt",
        "organisations.crl",
        "foreign-ca.crt",
    ] {
        println!("  {}", out.join(name).display());
    }
    for name in mssante_conformance::pki::leaf_names() {
        println!("  {}", out.join(format!("{name}.crt")).display());
    }
    Ok(())
}

/// The default sandbox ports, in the order of `Ports`.
const DEFAULT_PORTS: [u16; 6] = [1993, 1143, 1465, 1587, 1025, 8443];

/// The file a running sandbox leaves for `mssante dev token --dir`.
const STATE_FILE: &str = "sandbox.json";

/// What a running sandbox tells other processes.
#[derive(Debug, Serialize, Deserialize)]
struct SandboxState {
    issuer: String,
    imap_tls: SocketAddr,
    imap_starttls: SocketAddr,
    smtp_tls: SocketAddr,
    smtp_starttls: SocketAddr,
    smtp_inbound: SocketAddr,
    /// Thunderbird's autoconfig and Autodiscover (HTTPS, the sandbox's server certificate).
    autoconfig: Option<SocketAddr>,
    ca: PathBuf,
}

const DOMAIN: &str = "sandbox.mssante.fr";

struct Demo {
    professionals: Vec<DemoProfessional>,
    organisational: &'static str,
    applicative: &'static str,
}

fn demo() -> Demo {
    let pro = |idnat: &str, name: &str, local: &str| DemoProfessional {
        idnat: idnat.into(),
        name: name.into(),
        mailboxes: vec![
            format!("{local}@{DOMAIN}"),
            format!("secretariat.cardiologie@{DOMAIN}"),
        ],
    };
    Demo {
        professionals: vec![
            pro(
                "899700771191",
                "Dr Jean Dupont (cardiologue)",
                "jean.dupont",
            ),
            pro(
                "899700771192",
                "Dr Marie Martin (médecin généraliste)",
                "marie.martin",
            ),
        ],
        organisational: "secretariat.cardiologie@sandbox.mssante.fr",
        applicative: "sil.labo@sandbox.mssante.fr",
    }
}

/// A loopback port: `preferred` if free, else any free one.
fn free_port(preferred: u16) -> anyhow::Result<u16> {
    if preferred != 0 && TcpListener::bind((Ipv4Addr::LOCALHOST, preferred)).is_ok() {
        return Ok(preferred);
    }
    let any = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free port")?;
    Ok(any.local_addr()?.port())
}

fn ports(from: Option<u16>) -> anyhow::Result<[SocketAddr; 6]> {
    let mut out = [SocketAddr::from((Ipv4Addr::LOCALHOST, 0)); 6];
    for (i, slot) in out.iter_mut().enumerate() {
        let preferred = match from {
            None => DEFAULT_PORTS[i],
            Some(0) => 0,
            // i < 6: no overflow below 65530; above, fall back to free ports.
            Some(n) => n.checked_add(i as u16).unwrap_or(0),
        };
        *slot = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port(preferred)?));
    }
    Ok(out)
}

/// The sandbox folder; removed on drop when it was created here.
struct SandboxDir {
    path: PathBuf,
    remove: bool,
}

impl Drop for SandboxDir {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn sandbox_dir(dir: Option<PathBuf>) -> anyhow::Result<SandboxDir> {
    match dir {
        Some(path) => {
            std::fs::create_dir_all(&path)
                .with_context(|| format!("creating {}", path.display()))?;
            let path = path.canonicalize().unwrap_or(path);
            Ok(SandboxDir {
                path,
                remove: false,
            })
        }
        None => {
            let path = std::env::temp_dir().join(format!(
                "mssante-dev-{}-{:08x}",
                std::process::id(),
                rand::random::<u32>()
            ));
            std::fs::create_dir_all(&path)
                .with_context(|| format!("creating {}", path.display()))?;
            Ok(SandboxDir { path, remove: true })
        }
    }
}

async fn sandbox(
    dir: Option<PathBuf>,
    ports_from: Option<u16>,
    approve: Option<String>,
) -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = sandbox_dir(dir)?;
    let d = &dir.path;
    let certs = d.join("certs");
    // A kept folder keeps its CA: the clients set up to trust it go on working.
    let pki = mssante_conformance::pki::ensure(&certs)
        .with_context(|| format!("preparing the test PKI in {}", certs.display()))?;
    let [
        imap_tls,
        imap_starttls,
        smtp_tls,
        smtp_starttls,
        smtp_inbound,
        psc_addr,
    ] = ports(ports_from)?;
    let psc = match PscStandIn::start(psc_addr).await {
        Ok(p) => p,
        Err(_) => PscStandIn::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
            .context("starting the PSC stand-in")?,
    };
    let demo = demo();
    psc.set_professionals(demo.professionals.clone());
    psc.enable_dev_mint();
    match &approve {
        Some(idnat) => psc.set_login(idnat),
        None => psc.set_interactive(true),
    }

    let config_text = format!(
        "# Written by `mssante dev`: a sandbox, not for production.\n\
         [server]\nhostname = \"mail.{DOMAIN}\"\ndomains = [\"{DOMAIN}\"]\ndata_dir = \"data\"\n\n\
         [tls]\ncertificate = \"certs/server.crt\"\nprivate_key = \"certs/server.key\"\nclient_ca = \"certs/ca.crt\"\ncrls = [\"certs/organisations.crl\"]\n\n\
         [imap]\ntls = [\"{imap_tls}\"]\nstarttls = [\"{imap_starttls}\"]\n\n\
         [smtp]\nsubmission_tls = [\"{smtp_tls}\"]\nsubmission_starttls = [\"{smtp_starttls}\"]\ninbound = [\"{smtp_inbound}\"]\n\n\
         [admin]\nlisten = \"127.0.0.1:0\"\n\n\
         [autoconfig]\nlisten = \"127.0.0.1:0\"\n\n\
         {psc}",
        psc = psc.config_toml("local"),
    );
    let config_path = d.join("mssante.toml");
    std::fs::write(&config_path, &config_text)
        .with_context(|| format!("writing {}", config_path.display()))?;
    let config = Config::load(&config_path)?;
    let running = mssante::server::start(config, mssante::clock::system())
        .await
        .context("starting the server")?;
    let store = running.context.store.clone();
    populate(&store, &demo, &certs).await?;

    let state = SandboxState {
        issuer: psc.issuer().to_string(),
        imap_tls,
        imap_starttls,
        smtp_tls,
        smtp_starttls,
        smtp_inbound,
        autoconfig: running.autoconfig,
        ca: certs.join("ca.crt"),
    };
    std::fs::write(d.join(STATE_FILE), serde_json::to_string_pretty(&state)?)
        .context("writing sandbox.json")?;
    let smtp_served = tokio::net::TcpStream::connect(smtp_tls).await.is_ok();
    // Listen for the signals before saying "ready": a SIGTERM right after must stop
    // the sandbox cleanly, not kill it.
    let stop = stop_signal()?;
    print_instructions(d, &state, &psc, &demo, &pki, smtp_served);
    if let Some(admin) = running.admin {
        println!("metrics and health: http://{admin}/metrics, http://{admin}/health/ready");
    }

    stop.await;
    println!("stopping the sandbox …");
    running.stop().await;
    psc.shutdown().await;
    let _ = std::fs::remove_file(d.join(STATE_FILE));
    if dir.remove {
        println!("removed {}", d.display());
    }
    drop(dir);
    println!("sandbox stopped");
    Ok(())
}

fn new_mailbox(address: &str, kind: MailboxKind, owner: Option<&str>, name: &str) -> NewMailbox {
    NewMailbox {
        address: address.into(),
        kind,
        owner: owner.map(str::to_owned),
        display_name: Some(name.into()),
        created_at: mssante::clock::SystemClock::now_utc(),
        red_list: false,
        directory: DirectoryFields {
            description: Some(format!("{name} (sandbox)")),
            ..DirectoryFields::default()
        },
    }
}

/// Creates the demo mailboxes that do not exist yet (a reused `--dir` keeps its mail)
/// and puts a welcome message in each new INBOX.
async fn populate(store: &Store, demo: &Demo, certs: &Path) -> anyhow::Result<()> {
    let mut created = Vec::new();
    for p in &demo.professionals {
        let address = &p.mailboxes[0];
        if store.mailbox(address).await?.is_none() {
            store
                .create_mailbox(new_mailbox(
                    address,
                    MailboxKind::Personal,
                    Some(&p.idnat),
                    &p.name,
                ))
                .await?;
            created.push((address.clone(), p.name.clone()));
        }
    }
    if store.mailbox(demo.organisational).await?.is_none() {
        store
            .create_mailbox(new_mailbox(
                demo.organisational,
                MailboxKind::Organisational,
                None,
                "Secrétariat de cardiologie",
            ))
            .await?;
        for p in &demo.professionals {
            store
                .add_grant(
                    demo.organisational,
                    Grant::Idnat {
                        idnat: p.idnat.clone(),
                    },
                )
                .await?;
        }
        created.push((
            demo.organisational.to_owned(),
            "Secrétariat de cardiologie".to_owned(),
        ));
    }
    if store.mailbox(demo.applicative).await?.is_none() {
        store
            .create_mailbox(new_mailbox(
                demo.applicative,
                MailboxKind::Applicative,
                None,
                "SIL du laboratoire",
            ))
            .await?;
        let app = mssante::auth::certificate::identity_from_pem_file(&certs.join("app.crt"))
            .context("reading the demo application certificate")?;
        store
            .add_grant(
                demo.applicative,
                Grant::CertificateSubject {
                    subject: app.subject,
                    issuer: app.issuer,
                },
            )
            .await?;
        created.push((demo.applicative.to_owned(), "SIL du laboratoire".to_owned()));
    }
    for (address, name) in created {
        let Some(mailbox) = store.mailbox(&address).await? else {
            continue;
        };
        let Some(inbox) = store.folder(mailbox.id, "INBOX").await? else {
            continue;
        };
        let message = welcome(&address, &name)?;
        store
            .deliver(
                vec![inbox.id],
                Arc::new(RawMessage::new(&message)),
                mssante::clock::SystemClock::now_utc(),
            )
            .await?;
    }
    Ok(())
}

/// A welcome message (MIME-encoded by mail-builder: names and body are not ASCII).
fn welcome(address: &str, name: &str) -> anyhow::Result<Vec<u8>> {
    let body = format!(
        "Bonjour,\n\nCette boîte ({address}) vit dans un bac à sable local : les jetons viennent \
         d'un substitut de Pro Santé Connect, les certificats d'une IGC de test.\n\
         Rien ici n'est destiné à la production.\n"
    );
    let postmaster = format!("postmaster@{DOMAIN}");
    mail_builder::MessageBuilder::new()
        .from(("Bac à sable MSSanté", postmaster.as_str()))
        .to((name, address))
        .subject("Bienvenue dans le bac à sable MSSanté")
        .message_id(format!("welcome-{:016x}@{DOMAIN}", rand::random::<u64>()))
        .text_body(body)
        .write_to_vec()
        .context("building the welcome message")
}

fn print_instructions(
    d: &Path,
    s: &SandboxState,
    psc: &PscStandIn,
    demo: &Demo,
    pki: &Ensured,
    smtp_served: bool,
) {
    let ca = s.ca.display();
    let certs = d.join("certs");
    let jean = &demo.professionals[0];
    let address = &jean.mailboxes[0];
    let token = psc.mint(&TokenSpec::valid(&jean.idnat));
    let imap_port = s.imap_tls.port();
    let dir = d.display();
    // The running binary, so the commands work before `mssante` is on the PATH.
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "mssante".into());
    println!("MSSanté sandbox (not for production) in {dir}");
    println!();
    match pki {
        Ensured::NewCa => println!("  Test PKI         new CA in {}", certs.display()),
        Ensured::Kept { reissued } if reissued.is_empty() => {
            println!("  Test PKI         kept from {}", certs.display())
        }
        Ensured::Kept { reissued } => println!(
            "  Test PKI         CA kept from {}; issued again by it (missing or expiring): {}",
            certs.display(),
            reissued.join(", ")
        ),
    }
    println!("  PSC stand-in     {} (tokens live 2 minutes)", s.issuer);
    println!(
        "  IMAP             {} (TLS), {} (STARTTLS)",
        s.imap_tls, s.imap_starttls
    );
    if smtp_served {
        println!(
            "  SMTP submission  {} (TLS), {} (STARTTLS); inbound {}",
            s.smtp_tls, s.smtp_starttls, s.smtp_inbound
        );
    } else {
        println!("  SMTP             not served by this build");
    }
    if let Some(autoconfig) = s.autoconfig {
        println!(
            "  Autoconfig       https://{autoconfig}/mail/config-v1.1.xml (Thunderbird), Autodiscover"
        );
    }
    println!("  Configuration    {}/mssante.toml", dir);
    println!("  Test PKI         {}/", certs.display());
    println!();
    println!("Demo mailboxes:");
    for p in &demo.professionals {
        println!(
            "  {:<45} personal, {} (IdNat {})",
            p.mailboxes[0], p.name, p.idnat
        );
    }
    println!(
        "  {:<45} organisational, open to both IdNats",
        demo.organisational
    );
    println!(
        "  {:<45} applicative, bound to {}/app.crt",
        demo.applicative,
        certs.display()
    );
    println!();
    println!("List the INBOX of {address} (this token is valid 2 minutes):");
    println!(
        "curl --cacert {ca} --oauth2-bearer {token} --user {address} imaps://127.0.0.1:{imap_port}/INBOX"
    );
    println!();
    println!("Read the welcome message with a fresh token:");
    println!(
        "  curl --cacert {ca} --oauth2-bearer \"$({exe} dev token {} --dir {dir})\" --user {address} 'imaps://127.0.0.1:{imap_port}/INBOX;UID=1'",
        jean.idnat
    );
    if smtp_served {
        let marie = &demo.professionals[1].mailboxes[0];
        println!();
        println!("Send a message from {address} to {marie} (SMTP submission, XOAUTH2):");
        println!(
            "  printf 'From: <{address}>\\r\\nTo: <{marie}>\\r\\nSubject: Bonjour\\r\\n\\r\\nUn message de test.\\r\\n' | curl --cacert {ca} --oauth2-bearer \"$({exe} dev token {} --dir {dir})\" --user {address} --mail-from {address} --mail-rcpt {marie} --upload-file - smtps://127.0.0.1:{}",
            jean.idnat,
            s.smtp_tls.port()
        );
    }
    println!();
    println!("Python (imaplib):");
    println!(
        "python3 - <<'EOF'\nimport imaplib, ssl, subprocess\ntoken = subprocess.check_output([\"{exe}\", \"dev\", \"token\", \"{idnat}\", \"--dir\", \"{dir}\"], text=True).strip()\nimap = imaplib.IMAP4_SSL(\"127.0.0.1\", {imap_port}, ssl_context=ssl.create_default_context(cafile=\"{ca}\"))\nimap.authenticate(\"XOAUTH2\", lambda _: f\"user={address}\\x01auth=Bearer {{token}}\\x01\\x01\".encode())\nprint(imap.select(\"INBOX\"), imap.fetch(\"1\", \"(BODY[HEADER.FIELDS (SUBJECT)])\"))\nEOF",
        idnat = jean.idnat
    );
    println!();
    println!(
        "The demo application certificate (SASL EXTERNAL), then type `a AUTHENTICATE EXTERNAL =`:"
    );
    println!(
        "  openssl s_client -quiet -crlf -connect {} -CAfile {ca} -cert {}/app.crt -key {}/app.key",
        s.imap_tls,
        certs.display(),
        certs.display()
    );
    println!();
    println!("Thunderbird (see docs/thunderbird.md for the OAuth2 provider extension):");
    println!(
        "  server 127.0.0.1, port {imap_port}, SSL/TLS, user name {address}, authentication OAuth2;"
    );
    println!(
        "  provider: issuer {issuer}, authorization {issuer}/protocol/openid-connect/auth,",
        issuer = s.issuer
    );
    println!(
        "  token {}/protocol/openid-connect/token, redirect https://localhost, PKCE on, scopes \"openid scope_all\".",
        s.issuer
    );
    println!("  The login page at the authorization endpoint lets you pick a demo professional.");
    println!();
    println!("Audit trail: {exe} -c {dir}/mssante.toml audit");
    println!("Sandbox ready. Ctrl-C stops it.");
}

/// Resolves on SIGTERM or Ctrl-C; the handlers are installed when this returns.
fn stop_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("listening for SIGTERM")?;
    let ctrl_c = tokio::spawn(tokio::signal::ctrl_c());
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = term.recv() => {}
            _ = ctrl_c => {}
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
    })
}

async fn token(idnat: &str, dir: Option<&Path>, psc: Option<&str>) -> anyhow::Result<()> {
    let issuer = match (dir, psc) {
        (Some(dir), _) => {
            let path = dir.join(STATE_FILE);
            let text = std::fs::read_to_string(&path).with_context(|| {
                format!(
                    "reading {} (is `mssante dev --dir {}` running?)",
                    path.display(),
                    dir.display()
                )
            })?;
            let state: SandboxState = serde_json::from_str(&text)
                .with_context(|| format!("reading {}", path.display()))?;
            state.issuer
        }
        (None, Some(url)) => url.trim_end_matches('/').to_owned(),
        (None, None) => format!("http://127.0.0.1:{}{REALM_PATH}", DEFAULT_PORTS[5]),
    };
    let url = format!(
        "{issuer}{}",
        mssante_conformance::psc_standin::DEV_TOKEN_PATH
    );
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .context("HTTP client")?;
    let answer = http
        .post(&url)
        .form(&[("idnat", idnat)])
        .send()
        .await
        .with_context(|| format!("asking {url} (is the sandbox running?)"))?;
    if !answer.status().is_success() {
        bail!("{url} answered {}", answer.status());
    }
    let body: serde_json::Value = answer.json().await.context("reading the token answer")?;
    let Some(token) = body.get("access_token").and_then(|t| t.as_str()) else {
        bail!("{url} sent no access_token");
    };
    println!("{token}");
    Ok(())
}

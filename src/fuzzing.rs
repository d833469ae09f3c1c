//! Entry points for the fuzz targets in `fuzz/` (cargo feature `fuzzing`, off in every
//! normal build).
//!
//! The session targets run the real IMAP and SMTP sessions (connection limits, framing,
//! literals, SASL, the store) over an in-memory pipe instead of a socket, against a store
//! in a scratch folder and a PSC on a loopback port, so that a fuzzer reaches the
//! authenticated commands with a genuine token. Nothing here exists in production.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{AccessEpoch, Authenticator};
use crate::config::Config;
use crate::context::Context;
use crate::smtp::{Interface, TrustList};
use crate::store::{MailboxKind, NewMailbox, Store};
use crate::tls::TlsSource;

/// The professional the session targets log in as, and the mailbox they own.
pub const IDNAT: &str = "899700000001";
pub const MAILBOX: &str = "gregory.house@h.mssante.fr";
/// A second local mailbox, so that mail can go from one to another.
pub const OTHER_MAILBOX: &str = "lisa.cuddy@h.mssante.fr";
const OTHER_IDNAT: &str = "899700000002";

/// Sessions run on one store before a fresh one replaces it: what earlier inputs
/// appended stays bounded, so that the cost of one input does not grow with the run.
const SESSIONS_PER_STORE: u32 = 500;
/// Room in each direction of the in-memory pipe.
const PIPE: usize = 64 * 1024;
/// What a session said that is kept for the caller.
const TRANSCRIPT: usize = 256 * 1024;

/// The PSC the sessions trust. The library has no token mint of its own: the caller
/// starts one on the harness's runtime (the fuzz targets and tests/fuzz_replay.rs start
/// the conformance crate's stand-in, see fuzz/psc.rs) and says how to reach it.
pub struct Psc {
    /// The `[psc]` section that points the server at it, for local validation.
    pub config: String,
    /// A token it signed for [`IDNAT`], valid for longer than any run.
    pub token: String,
    /// The key id it signs tokens with.
    pub kid: String,
    /// What keeps it serving; dropped with the harness.
    pub server: Box<dyn std::any::Any + Send>,
}

/// A store, its context, and what the sessions share; replaced every
/// [`SESSIONS_PER_STORE`] sessions.
struct World {
    context: Context,
    trust: Arc<TrustList>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    dir: PathBuf,
}

/// A server without listeners: the fuzz targets hand it one input per session.
pub struct Harness {
    runtime: tokio::runtime::Runtime,
    psc: Psc,
    root: PathBuf,
    world: Option<World>,
    generation: u32,
    sessions: u32,
    next_port: u16,
}

impl Harness {
    /// Certificates in a scratch folder of its own under the system's temporary folder
    /// (`TMPDIR`), removed when the harness goes, and the PSC `start_psc` starts.
    pub fn new<F, Fut>(start_psc: F) -> anyhow::Result<Self>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::io::Result<Psc>>,
    {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("building the runtime")?;
        static HARNESSES: AtomicU32 = AtomicU32::new(0);
        let root = std::env::temp_dir().join(format!(
            "mssante-fuzz-{}-{}",
            std::process::id(),
            HARNESSES.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
            .context("generating the server certificate")?;
        std::fs::write(root.join("cert.pem"), cert.cert.pem())?;
        std::fs::write(root.join("key.pem"), cert.signing_key.serialize_pem())?;
        let psc = runtime.block_on(start_psc()).context("starting the PSC")?;
        let mut harness = Harness {
            runtime,
            psc,
            root,
            world: None,
            generation: 0,
            sessions: 0,
            next_port: 1024,
        };
        harness.renew()?;
        Ok(harness)
    }

    /// The configuration of every world: no listeners, the stand-in as PSC, and limits
    /// that keep a session from sleeping (loopback is a trusted network, no pause after
    /// refusals, no command rate limit in practice).
    fn config(&self, data_dir: &Path) -> anyhow::Result<Config> {
        let text = format!(
            "[server]\nhostname = \"mail.h.mssante.fr\"\ndomains = [\"h.mssante.fr\"]\n\
             data_dir = \"{data}\"\n\
             [tls]\ncertificate = \"cert.pem\"\nprivate_key = \"key.pem\"\n\
             [imap]\ntls = []\nstarttls = []\nmax_commands_per_second = 4000000000\n\
             max_literal_size = \"1MiB\"\n\
             [smtp]\nsubmission_tls = []\nsubmission_starttls = []\ninbound = []\n\
             max_message_size = \"1MiB\"\n\
             [session]\ntrusted_networks = [\"127.0.0.0/8\", \"::1\"]\n\
             auth_failures_before_delay = 4000000000\nsasl_challenge_timeout = \"1s\"\n\
             {psc}jwks_refetch_interval = \"1d\"\njwks_max_age = \"3650d\"\n\
             algorithms = [\"RS256\", \"ES256\", \"PS256\"]\n",
            data = data_dir.display(),
            psc = self.psc.config,
        );
        Config::parse(&text, &self.root).map_err(|e| anyhow::anyhow!("fuzz configuration: {e}"))
    }

    /// A fresh store with the two mailboxes, in place of the current one.
    fn renew(&mut self) -> anyhow::Result<()> {
        if let Some(old) = self.world.take() {
            self.runtime.block_on(async {
                old.shutdown.cancel();
                old.tasks.close();
                old.tasks.wait().await;
                old.context.store.close().await;
            });
            let _ = std::fs::remove_dir_all(&old.dir);
        }
        self.generation += 1;
        let dir = self.root.join(format!("data-{}", self.generation));
        let config = self.config(&dir)?;
        let world = self.runtime.block_on(async {
            let store = Store::open_configured(&config, crate::clock::system()).await?;
            for (address, owner) in [(MAILBOX, IDNAT), (OTHER_MAILBOX, OTHER_IDNAT)] {
                store
                    .create_mailbox(NewMailbox::new(
                        address,
                        MailboxKind::Personal,
                        Some(owner.into()),
                        crate::clock::SystemClock::now_utc(),
                    ))
                    .await?;
            }
            let clock = crate::clock::system();
            let tls = TlsSource::load(&config.tls, clock.clone()).await?;
            let metrics = Arc::new(crate::metrics::Metrics::new());
            let auth =
                Authenticator::new(&config, store.clone(), clock.clone(), metrics.clone()).await?;
            let shutdown = CancellationToken::new();
            let tasks = TaskTracker::new();
            let access_epoch = AccessEpoch::start(store.clone(), shutdown.clone(), &tasks).await;
            let trust = TrustList::load(&config.trust).await?;
            let net = crate::net::Net::new(&config.session);
            let context = Context {
                net,
                config: Arc::new(config),
                store,
                clock,
                tls,
                auth,
                access_epoch,
                metrics,
            };
            anyhow::Ok(World {
                context,
                trust,
                shutdown,
                tasks,
                dir: dir.clone(),
            })
        })?;
        self.world = Some(world);
        self.sessions = 0;
        Ok(())
    }

    /// The world for the next session, renewed when it has served its share.
    fn world(&mut self) -> anyhow::Result<&World> {
        self.sessions += 1;
        if self.sessions > SESSIONS_PER_STORE || self.world.is_none() {
            self.renew()?;
            self.sessions = 1;
        }
        self.world
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("no world"))
    }

    fn peer(&mut self) -> SocketAddr {
        self.next_port = self.next_port.checked_add(1).unwrap_or(1024);
        SocketAddr::from(([127, 0, 0, 1], self.next_port))
    }

    /// The decoded XOAUTH2 message that logs in as [`IDNAT`] on [`MAILBOX`].
    fn xoauth2(&self) -> String {
        STANDARD.encode(format!(
            "user={MAILBOX}\x01auth=Bearer {}\x01\x01",
            self.psc.token
        ))
    }

    /// A valid token, for seed inputs.
    pub fn token(&self) -> &str {
        &self.psc.token
    }

    /// One IMAP session. The first byte chooses how it starts (its two low bits):
    /// 0 clear text (STARTTLS port), 1 TLS, 2 TLS and logged in, 3 TLS, logged in and
    /// INBOX selected; the rest is what the client sends. Returns what the server said.
    pub fn imap(&mut self, data: &[u8]) -> anyhow::Result<Vec<u8>> {
        let (mode, input) = data.split_first().map_or((0, data), |(m, r)| (*m & 3, r));
        let mut sent = Vec::with_capacity(input.len() + 1024);
        if mode >= 2 {
            sent.extend_from_slice(
                format!("L AUTHENTICATE XOAUTH2 {}\r\n", self.xoauth2()).as_bytes(),
            );
        }
        if mode == 3 {
            sent.extend_from_slice(b"S SELECT INBOX\r\n");
        }
        sent.extend_from_slice(input);
        let peer = self.peer();
        let world = self.world()?;
        let (context, shutdown) = (world.context.clone(), world.shutdown.clone());
        Ok(self
            .runtime
            .block_on(converse(sent, move |stream| async move {
                crate::imap::serve_memory(&context, stream, peer, mode != 0, shutdown).await;
            })))
    }

    /// One SMTP session. The first byte chooses the interface (its two low bits): 0
    /// submission on 587 before STARTTLS, 1 submission on 465 (TLS), 2 the same after
    /// EHLO and AUTH, 3 the operator interface (25) before STARTTLS; the rest is what the
    /// client sends. Returns what the server said.
    pub fn smtp(&mut self, data: &[u8]) -> anyhow::Result<Vec<u8>> {
        let (mode, input) = data.split_first().map_or((0, data), |(m, r)| (*m & 3, r));
        let interface = match mode {
            0 => Interface::SubmissionStartTls,
            3 => Interface::Inbound,
            _ => Interface::SubmissionTls,
        };
        let mut sent = Vec::with_capacity(input.len() + 1024);
        if mode == 2 {
            sent.extend_from_slice(
                format!(
                    "EHLO fuzz.h.mssante.fr\r\nAUTH XOAUTH2 {}\r\n",
                    self.xoauth2()
                )
                .as_bytes(),
            );
        }
        sent.extend_from_slice(input);
        let peer = self.peer();
        let world = self.world()?;
        let (context, trust, shutdown) = (
            world.context.clone(),
            world.trust.clone(),
            world.shutdown.clone(),
        );
        Ok(self
            .runtime
            .block_on(converse(sent, move |stream| async move {
                crate::smtp::serve_memory(&context, trust, stream, peer, interface, shutdown).await;
            })))
    }

    /// A token through the validator in local mode, with the stand-in's key set (fetched
    /// once, then kept). The first byte chooses what the rest is (its two low bits): 0 the
    /// whole token; 1 the claims of a token signed by a known key id, with a signature
    /// that does not match; 2 the JOSE header of such a token; 3 claims put straight
    /// through the checks that follow a verified signature.
    pub fn jwt(&mut self, data: &[u8]) -> anyhow::Result<()> {
        let (mode, input) = data.split_first().map_or((0, data), |(m, r)| (*m & 3, r));
        let world = self.world()?;
        let context = world.context.clone();
        if mode == 3 {
            let now = context.clock.now().timestamp();
            if let Some((_, early, checked)) =
                crate::auth::psc::fuzz_claims(&context.config.psc, input, now)
            {
                // Dates that condemn a token before PSC is asked must condemn it after.
                anyhow::ensure!(
                    early || !checked,
                    "claims refused early passed the checks after the signature"
                );
            }
            return Ok(());
        }
        let token = match mode {
            0 => String::from_utf8_lossy(input).into_owned(),
            1 => {
                let header = serde_json::json!({"alg": "RS256", "kid": self.psc.kid});
                format!(
                    "{}.{}.{}",
                    URL_SAFE_NO_PAD.encode(header.to_string()),
                    URL_SAFE_NO_PAD.encode(input),
                    URL_SAFE_NO_PAD.encode(b"not the signature")
                )
            }
            _ => {
                let mut parts = self.psc.token.splitn(3, '.');
                let (_, payload, signature) = (parts.next(), parts.next(), parts.next());
                format!(
                    "{}.{}.{}",
                    URL_SAFE_NO_PAD.encode(input),
                    payload.unwrap_or_default(),
                    signature.unwrap_or_default()
                )
            }
        };
        let outcome = self
            .runtime
            .block_on(async { context.auth.psc().validate(&token).await });
        // Only the token minted here is genuine: nothing a fuzzer writes may pass.
        anyhow::ensure!(
            outcome.is_err() || token == self.psc.token,
            "a token the stand-in never signed was accepted: {token}"
        );
        Ok(())
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Runs `session` on one end of a pipe while the other end sends `input`, closes its
/// write side, and reads everything the session says until it closes. Returns what the
/// session said (its first [`TRANSCRIPT`] bytes).
async fn converse<F, Fut>(input: Vec<u8>, session: F) -> Vec<u8>
where
    F: FnOnce(DuplexStream) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let (client, server) = tokio::io::duplex(PIPE);
    let (mut from_server, mut to_server) = tokio::io::split(client);
    let write = async move {
        let _ = to_server.write_all(&input).await;
        let _ = to_server.shutdown().await;
    };
    let read = async move {
        let mut said = Vec::new();
        let mut buf = vec![0u8; PIPE];
        while let Ok(n) = from_server.read(&mut buf).await {
            if n == 0 {
                break;
            }
            let room = TRANSCRIPT.saturating_sub(said.len());
            said.extend_from_slice(&buf[..n.min(room)]);
        }
        said
    };
    tokio::join!(session(server), write, read).2
}

/// ENVELOPE, BODY, BODYSTRUCTURE and BODY[section] of `raw` as FETCH would answer them;
/// `path` names the part sections to take (one part number per byte). Returns the
/// number of bytes encoded.
pub fn mime(raw: &[u8], path: &[u8]) -> usize {
    crate::imap::fuzz_structure(raw, path)
}

/// A decoded SASL message through the three parsers; whatever one accepts must be what
/// its grammar allows.
pub fn sasl(data: &[u8]) -> Result<(), String> {
    use crate::auth::sasl::{MAX_MESSAGE, parse_external, parse_oauthbearer, parse_xoauth2};
    let b64token = |t: &str| {
        !t.is_empty()
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._~+/=".contains(c))
    };
    let mailbox = |m: &Option<String>| {
        m.as_deref()
            .is_none_or(|m| !m.is_empty() && !m.chars().any(char::is_control) && m.trim() == m)
    };
    let fits = data.len() <= MAX_MESSAGE && std::str::from_utf8(data).is_ok();
    if let Ok(m) = parse_xoauth2(data)
        && !(fits && m.mailbox.is_some() && mailbox(&m.mailbox) && b64token(&m.token))
    {
        return Err(format!("XOAUTH2 accepted {m:?}"));
    }
    if let Ok(m) = parse_oauthbearer(data)
        && !(fits && mailbox(&m.mailbox) && b64token(&m.token))
    {
        return Err(format!("OAUTHBEARER accepted {m:?}"));
    }
    if let Ok(m) = parse_external(data)
        && !(fits && mailbox(&m.mailbox))
    {
        return Err(format!("EXTERNAL accepted {m:?}"));
    }
    Ok(())
}

/// A trust list, or a distinguished name: the list is read (or refused), and a DN that
/// a list names is trusted by that list.
pub fn trust_list(data: &[u8]) -> Result<(), String> {
    use crate::smtp::trust::{NormalisedDn, parse};
    let _ = parse(data);
    if let Ok(list) = TrustList::from_xml(data) {
        let _ = list.has_domain("h.mssante.fr");
        let _ = list.lists_certificate("CN=mx.h.mssante.fr,O=H,C=FR");
    }
    let Ok(dn) = std::str::from_utf8(data) else {
        return Ok(());
    };
    if let Some(parsed) = NormalisedDn::parse(dn)
        && NormalisedDn::parse(dn).as_ref() != Some(&parsed)
    {
        return Err(format!("{dn:?} reads two ways"));
    }
    // The same text as a list entry, escaped as XML.
    let escaped = dn
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    let xml = format!(
        "<ListeBlanche><Domaine><Nom>h.mssante.fr</Nom>\
         <DNCertificatOperateur>{escaped}</DNCertificatOperateur></Domaine></ListeBlanche>"
    );
    if let Ok(list) = TrustList::from_xml(xml.as_bytes())
        && !list.allows("h.mssante.fr", dn.trim())
    {
        return Err(format!("a list naming {dn:?} does not trust it"));
    }
    Ok(())
}

/// The MIME target's input: up to 8 part numbers, a newline, then the message.
pub fn mime_input(data: &[u8]) -> usize {
    let (path, raw) = match data.iter().take(9).position(|b| *b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (&[][..], data),
    };
    mime(raw, path)
}

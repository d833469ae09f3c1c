//! Load generator and fixtures for the side-by-side comparison driven by `bench/run`:
//! the same client code talks to mssante and to Dovecot/Postfix over loopback TLS.
//!
//! Sub-commands (all loops bounded in count and time):
//! - `standin DIR USERS`: runs the PSC stand-in; writes `DIR/psc.toml`, the signing key as
//!   Dovecot's `local_validation_key_dict` wants it (`DIR/keys/<azp>/RS256/<kid>`) and one
//!   two-hour token per user in `DIR/tokens`; then lives until killed.
//! - `fill-ours CONFIG|DATA_DIR USERS SYNC_N`: creates the mailboxes and fills the
//!   first-sync folder through the library, before the server starts: in the store the
//!   server's configuration file names (`[store]`: SQLite or PostgreSQL), or in a SQLite
//!   `data_dir`.
//! - `fill-maildir MAILDIR SYNC_N`: the same messages as Maildir files for Dovecot.
//! - `auth|mixed|sync|smtp|idle PEER ADDR[,ADDR…] CA_DER TOKENS …`: one workload; prints
//!   `key=value`, with the load generator's own CPU time (`cpu_ticks`, clock ticks). With
//!   several addresses (nodes sharing one store), the client of user `i` talks to
//!   address `i mod n`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::{Client, last, xoauth2};
use mssante::store::{Flags, MailboxKind, NewMailbox, Store};
use mssante_conformance::psc_standin::{DEFAULT_AZP, PscStandIn, TokenSpec};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// The IdNat of user `i` (Dovecot logs in by IdNat, mssante by BAL address).
fn idnat(i: usize) -> String {
    format!("8997{:08}", 1000 + i)
}

fn bal(i: usize) -> String {
    format!("bal{i}@h.mssante.fr")
}

/// The user holding the first-sync folder.
const SYNC_USER: usize = 999;

fn message(i: usize, body_size: usize) -> String {
    let mut m = format!(
        "Return-Path: <sender{i}@clinique.mssante.fr>\r\nReceived: from mx.clinique.mssante.fr by mail.h.mssante.fr; Mon, 23 Nov 2026 10:00:00 +0100\r\nFrom: Docteur {i} <sender{i}@clinique.mssante.fr>\r\nTo: Lisa Cuddy <lisa.cuddy@h.mssante.fr>\r\nSubject: Compte rendu patient {i}\r\nDate: Mon, 23 Nov 2026 10:00:00 +0100\r\nMessage-ID: <{i}.{}@clinique.mssante.fr>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nX-MSS-CODECDA: 11488-4\r\n\r\n",
        rand::random::<u32>()
    );
    let line = "Compte rendu numero. Examen clinique sans particularite notable.\r\n";
    while m.len() + line.len() <= body_size {
        m.push_str(line);
    }
    m
}

fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    let num = |i: usize| arg(i).parse::<usize>().unwrap_or(0);
    match arg(0).as_str() {
        "standin" => runtime.block_on(standin(arg(1), num(2))),
        "fill-ours" => runtime.block_on(fill_ours(arg(1), num(2), num(3))),
        "fill-maildir" => fill_maildir(arg(1), num(2)),
        "auth" | "mixed" | "sync" | "smtp" | "idle" => {
            let addrs = arg(2)
                .split(',')
                .map(str::parse)
                .collect::<Result<Vec<SocketAddr>, _>>()?;
            anyhow::ensure!(!addrs.is_empty(), "no address");
            let target = Target {
                peer: arg(1),
                addrs,
                tls: tls_config(&arg(3))?,
                tokens: std::fs::read_to_string(arg(4))?
                    .lines()
                    .map(str::to_owned)
                    .collect(),
            };
            let target = Arc::new(target);
            let (n, secs) = (num(5), num(6) as u64);
            let result = match arg(0).as_str() {
                "auth" => runtime.block_on(auth(target, n, secs)),
                "mixed" => runtime.block_on(mixed(target, n, secs)),
                "sync" => runtime.block_on(sync(target, n)),
                "smtp" => runtime.block_on(smtp(target, n, secs)),
                _ => runtime.block_on(idle(target, n)),
            };
            // Appended to the workload's line, so `bench/run` can split the CPU between
            // the generator, the servers and the database.
            println!("cpu_ticks={}", own_cpu_ticks().unwrap_or(0));
            result
        }
        other => anyhow::bail!("unknown sub-command {other:?}"),
    }
}

async fn standin(dir: String, users: usize) -> anyhow::Result<()> {
    let dir = std::path::PathBuf::from(dir);
    let psc = PscStandIn::start("127.0.0.1:0".parse()?).await?;
    std::fs::write(dir.join("psc.toml"), psc.config_toml("local"))?;
    let keys = dir.join("keys").join(DEFAULT_AZP).join("RS256");
    std::fs::create_dir_all(&keys)?;
    std::fs::write(keys.join(psc.current_kid()), psc.public_key_pem())?;
    let mut tokens = String::new();
    for i in (0..users).chain([SYNC_USER]) {
        let spec = TokenSpec::valid(&idnat(i)).with_lifetime(Duration::from_secs(7200));
        tokens.push_str(&psc.mint(&spec));
        tokens.push('\n');
    }
    std::fs::write(dir.join("tokens.tmp"), tokens)?;
    std::fs::rename(dir.join("tokens.tmp"), dir.join("tokens"))?;
    tokio::time::sleep(Duration::from_secs(3600)).await;
    Ok(())
}

/// User plus system CPU time of this process (all threads), in clock ticks, from
/// `/proc/self/stat` (fields 14 and 15, counted after the parenthesised command name).
fn own_cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after_name = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 3.. of the file start at index 0 here: utime is field 14, stime 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

async fn fill_ours(target: String, users: usize, sync_n: usize) -> anyhow::Result<()> {
    let path = std::path::Path::new(&target);
    let store = if path.is_file() {
        let config = mssante::config::Config::load(path)?;
        Store::open_configured(&config, mssante::clock::system()).await?
    } else {
        Store::open(path, mssante::clock::system()).await?
    };
    for i in (0..users).chain([SYNC_USER]) {
        store
            .create_mailbox(NewMailbox::new(
                bal(i),
                MailboxKind::Personal,
                Some(idnat(i)),
                mssante::clock::SystemClock::now_utc(),
            ))
            .await?;
    }
    let mailbox = store
        .mailbox(&bal(SYNC_USER))
        .await?
        .ok_or_else(|| anyhow::anyhow!("sync mailbox"))?;
    let inbox = store
        .folder(mailbox.id, "INBOX")
        .await?
        .ok_or_else(|| anyhow::anyhow!("sync INBOX"))?;
    let sem = Arc::new(tokio::sync::Semaphore::new(512));
    let mut tasks = Vec::with_capacity(sync_n);
    for i in 0..sync_n {
        let permit = sem.clone().acquire_owned().await?;
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let m = message(i, 600);
            let r = store
                .append(
                    inbox.id,
                    m.as_bytes(),
                    Flags::default(),
                    mssante::clock::SystemClock::now_utc(),
                )
                .await;
            drop(permit);
            r.map(|_| ())
        }));
    }
    for t in tasks {
        t.await??;
    }
    store.close().await;
    Ok(())
}

fn fill_maildir(dir: String, sync_n: usize) -> anyhow::Result<()> {
    let cur = std::path::Path::new(&dir).join("cur");
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(std::path::Path::new(&dir).join(sub))?;
    }
    let now = mssante::clock::SystemClock::now_utc().timestamp();
    for i in 0..sync_n {
        let m = message(i, 600);
        let name = format!("{now}.M{i}P1.bench,S={}:2,", m.len());
        std::fs::write(cur.join(name), m)?;
    }
    Ok(())
}

struct Target {
    peer: String,
    /// The nodes to spread the clients over (one for a single server).
    addrs: Vec<SocketAddr>,
    tls: Arc<rustls::ClientConfig>,
    /// One per user, the sync user's last.
    tokens: Vec<String>,
}

impl Target {
    /// The node client `i` talks to.
    fn addr(&self, i: usize) -> SocketAddr {
        self.addrs[i % self.addrs.len()]
    }

    /// The XOAUTH2 `user=`: Dovecot's passdb is keyed by the token's IdNat.
    fn user(&self, i: usize) -> String {
        if self.peer == "ours" {
            bal(i)
        } else {
            idnat(i)
        }
    }

    fn token(&self, i: usize) -> &str {
        let k = if i == SYNC_USER {
            self.tokens.len() - 1
        } else {
            i
        };
        &self.tokens[k]
    }

    async fn login(&self, i: usize) -> anyhow::Result<Client> {
        let mut c = Client::plain(self.addr(i)).await;
        c.upgrade_config(self.tls.clone()).await;
        c.line().await;
        let r = c
            .cmd(&format!(
                "AUTHENTICATE XOAUTH2 {}",
                xoauth2(&self.user(i), self.token(i))
            ))
            .await;
        anyhow::ensure!(last(&r).contains(" OK"), "login refused: {r:?}");
        Ok(c)
    }
}

fn tls_config(ca_der: &str) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(std::fs::read(ca_der)?))?;
    Ok(Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}

fn percentile(lat: &mut [u64], p: f64) -> f64 {
    if lat.is_empty() {
        return 0.0;
    }
    lat.sort_unstable();
    let k = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
    lat[k] as f64 / 1000.0
}

/// Workload 1: fresh TLS connection, AUTHENTICATE XOAUTH2, LOGOUT; `n` in parallel.
async fn auth(t: Arc<Target>, n: usize, secs: u64) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..n {
        let (t, done, failed) = (t.clone(), done.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            let user = w % (t.tokens.len() - 1);
            for _ in 0..1_000_000 {
                if Instant::now() >= deadline {
                    break;
                }
                let one = async {
                    let mut c = t.login(user).await?;
                    c.cmd("LOGOUT").await;
                    anyhow::Ok(())
                };
                match tokio::time::timeout(Duration::from_secs(20), one).await {
                    Ok(Ok(())) => done.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let ok = done.load(Ordering::Relaxed);
    println!(
        "auth_per_s={:.1} auths={ok} failed={}",
        ok as f64 / elapsed,
        failed.load(Ordering::Relaxed)
    );
    Ok(())
}

/// Workload 2: `n` clients, each on its own mailbox, cycling through APPEND, SELECT,
/// FETCH headers, FETCH a body, STORE flags, and EXPUNGE of the oldest message.
async fn mixed(t: Arc<Target>, n: usize, secs: u64) -> anyhow::Result<()> {
    let body = message(0, 4096);
    let mut setup = Vec::new();
    for i in 0..n {
        let (t, body) = (t.clone(), body.clone());
        setup.push(tokio::spawn(async move {
            let mut c = t.login(i).await?;
            // The same starting point on both sides: 20 messages.
            let r = c.cmd("SELECT INBOX").await;
            let exists = r
                .iter()
                .find_map(|l| {
                    l.strip_suffix(" EXISTS\r\n")?
                        .strip_prefix("* ")?
                        .parse()
                        .ok()
                })
                .unwrap_or(0usize);
            for _ in exists..20 {
                append(&mut c, &body).await?;
            }
            anyhow::Ok(c)
        }));
    }
    let mut clients = Vec::new();
    for s in setup {
        clients.push(s.await??);
    }
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for mut c in clients {
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            let mut timed = |lat: &mut Vec<(usize, u64)>, kind: usize, t0: Instant, ok: bool| {
                lat.push((kind, t0.elapsed().as_micros() as u64));
                if !ok {
                    errors += 1;
                }
            };
            for _ in 0..1_000_000 {
                if Instant::now() >= deadline {
                    break;
                }
                let t0 = Instant::now();
                let ok = append(&mut c, &body).await.is_ok();
                timed(&mut lat, 0, t0, ok);
                let t0 = Instant::now();
                let r = c.cmd("SELECT INBOX").await;
                let exists: usize = r
                    .iter()
                    .find_map(|l| {
                        l.strip_suffix(" EXISTS\r\n")?
                            .strip_prefix("* ")?
                            .parse()
                            .ok()
                    })
                    .unwrap_or(1);
                timed(&mut lat, 1, t0, last(&r).contains(" OK"));
                let from = exists.saturating_sub(9).max(1);
                let ops = [
                    format!("FETCH {from}:{exists} (UID FLAGS RFC822.SIZE BODY.PEEK[HEADER])"),
                    format!("FETCH {exists} (BODY.PEEK[])"),
                    format!("STORE {from}:{exists} +FLAGS (\\Seen)"),
                    "STORE 1 +FLAGS (\\Deleted)".to_owned(),
                    "EXPUNGE".to_owned(),
                ];
                for (k, op) in ops.iter().enumerate() {
                    let t0 = Instant::now();
                    let r = c.cmd(op).await;
                    timed(&mut lat, k + 2, t0, last(&r).contains(" OK"));
                }
            }
            let _ = c.cmd("LOGOUT").await;
            (lat, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for task in tasks {
        if let Ok((lat, e)) = task.await {
            all.extend(lat);
            errors += e;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    // Which commands make the tail: reads or the writes that wait for a commit.
    let kinds = [
        "append",
        "select",
        "fetch_headers",
        "fetch_body",
        "store_seen",
        "store_deleted",
        "expunge",
    ];
    let per_kind: Vec<String> = kinds
        .iter()
        .enumerate()
        .map(|(k, name)| {
            let mut l: Vec<u64> = all
                .iter()
                .filter(|(i, _)| *i == k)
                .map(|(_, v)| *v)
                .collect();
            format!("p99_{name}_ms={:.1}", percentile(&mut l, 0.99))
        })
        .collect();
    let mut all: Vec<u64> = all.into_iter().map(|(_, v)| v).collect();
    println!(
        "ops_per_s={:.1} ops={} errors={errors} p50_ms={:.2} p99_ms={:.2} {}",
        all.len() as f64 / elapsed,
        all.len(),
        percentile(&mut all, 0.50),
        percentile(&mut all, 0.99),
        per_kind.join(" ")
    );
    Ok(())
}

async fn append(c: &mut Client, body: &str) -> anyhow::Result<()> {
    let tag = c.next_tag();
    c.send(format!("{tag} APPEND INBOX {{{}}}\r\n", body.len()).as_bytes())
        .await;
    let l = c.line().await;
    anyhow::ensure!(l.starts_with('+'), "APPEND: {l}");
    c.send(body.as_bytes()).await;
    c.send(b"\r\n").await;
    let r = c.until(&tag).await;
    anyhow::ensure!(last(&r).contains(" OK"), "APPEND: {r:?}");
    Ok(())
}

/// Workload 3: the first-sync FETCH over the filled folder, three runs.
async fn sync(t: Arc<Target>, expect: usize) -> anyhow::Result<()> {
    let mut c = t.login(SYNC_USER).await?;
    let t0 = Instant::now();
    let r = c.cmd("SELECT INBOX").await;
    let select = t0.elapsed().as_secs_f64();
    anyhow::ensure!(
        r.iter().any(|l| l.contains(&format!("* {expect} EXISTS"))),
        "sync folder: {:?}",
        &r[..r.len().min(8)]
    );
    let mut runs = Vec::new();
    for _ in 0..3 {
        let t0 = Instant::now();
        let r = c
            .cmd("UID FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE BODY.PEEK[HEADER.FIELDS (From To Subject Date Message-ID)])")
            .await;
        runs.push(t0.elapsed().as_secs_f64());
        anyhow::ensure!(r.len() == expect + 1, "FETCH gave {} lines", r.len());
    }
    println!(
        "select_s={select:.3} first_fetch_s={:.3} second_fetch_s={:.3} third_fetch_s={:.3}",
        runs[0], runs[1], runs[2]
    );
    Ok(())
}

/// Workload 5: `n` authenticated connections in IDLE on INBOX; prints `ready`, then holds
/// them until stdin closes (at most an hour).
async fn idle(t: Arc<Target>, n: usize) -> anyhow::Result<()> {
    let users = t.tokens.len() - 1;
    // `BENCH_IDLE_STAGE=tls|auth` stops earlier, to see which step the memory goes to.
    let stage = std::env::var("BENCH_IDLE_STAGE").unwrap_or_default();
    let mut held = Vec::with_capacity(n);
    for chunk in 0..n.div_ceil(50) {
        let mut batch = Vec::new();
        for k in 0..50.min(n - chunk * 50) {
            let t = t.clone();
            let user = (chunk * 50 + k) % users;
            let stage = stage.clone();
            batch.push(tokio::spawn(async move {
                if stage == "tls" {
                    let mut c = Client::plain(t.addr(user)).await;
                    c.upgrade_config(t.tls.clone()).await;
                    c.line().await;
                    return Ok(c);
                }
                let mut c = t.login(user).await?;
                if stage == "auth" {
                    return Ok(c);
                }
                c.cmd("SELECT INBOX").await;
                c.send(b"i IDLE\r\n").await;
                anyhow::ensure!(c.line().await.starts_with('+'), "IDLE refused");
                Ok(c)
            }));
        }
        for b in batch {
            held.push(b.await??);
        }
    }
    println!("ready {}", held.len());
    let mut line = String::new();
    let mut stdin = BufReader::new(tokio::io::stdin());
    let _ = tokio::time::timeout(Duration::from_secs(3600), stdin.read_line(&mut line)).await;
    drop(held);
    Ok(())
}

/// Workload 4: `n` senders on implicit-TLS submission with AUTH XOAUTH2, each sending 4 KiB
/// messages to the next user's address until the time is up.
async fn smtp(t: Arc<Target>, n: usize, secs: u64) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let stop = Arc::new(AtomicBool::new(false));
    let users = t.tokens.len() - 1;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..n {
        let (t, stop) = (t.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut sent = 0u64;
            let mut failed = 0u64;
            let mut lat = Vec::new();
            let run = async {
                let tcp = TcpStream::connect(t.addr(i)).await?;
                let connector = tokio_rustls::TlsConnector::from(t.tls.clone());
                let tls = connector
                    .connect(ServerName::try_from("localhost")?, tcp)
                    .await?;
                let mut s = BufReader::new(tls);
                reply(&mut s).await?;
                smtp_cmd(&mut s, "EHLO client.test").await?;
                let from = bal(i % users);
                let to = if t.peer == "ours" {
                    bal((i + 1) % users)
                } else {
                    format!("{}@h.mssante.fr", idnat((i + 1) % users))
                };
                let (code, text) = smtp_cmd(
                    &mut s,
                    &format!(
                        "AUTH XOAUTH2 {}",
                        xoauth2(&t.user(i % users), t.token(i % users))
                    ),
                )
                .await?;
                anyhow::ensure!(code == 235, "AUTH: {code} {text}");
                // The author must be the sender (submission checks From:), so the
                // message's own From: is replaced rather than a second one added.
                let body = message(i, 4096)
                    .replace("Lisa Cuddy <lisa.cuddy@h.mssante.fr>", &to)
                    .replace(
                        &format!("Docteur {i} <sender{i}@clinique.mssante.fr>"),
                        &format!("<{from}>"),
                    );
                for _ in 0..1_000_000 {
                    if Instant::now() >= deadline || stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let t0 = Instant::now();
                    let mut ok = smtp_cmd(&mut s, &format!("MAIL FROM:<{from}>")).await?.0 == 250;
                    ok &= smtp_cmd(&mut s, &format!("RCPT TO:<{to}>")).await?.0 == 250;
                    ok &= smtp_cmd(&mut s, "DATA").await?.0 == 354;
                    if ok {
                        s.get_mut().write_all(body.as_bytes()).await?;
                        let (code, _) = smtp_cmd(&mut s, ".").await?;
                        ok = code == 250;
                    } else {
                        smtp_cmd(&mut s, "RSET").await?;
                    }
                    lat.push(t0.elapsed().as_micros() as u64);
                    if ok { sent += 1 } else { failed += 1 }
                }
                let _ = smtp_cmd(&mut s, "QUIT").await;
                anyhow::Ok(())
            };
            let result = tokio::time::timeout(Duration::from_secs(secs + 30), run).await;
            if !matches!(result, Ok(Ok(()))) {
                failed += 1;
                eprintln!("sender {i}: {result:?}");
            }
            (sent, failed, lat)
        }));
    }
    let (mut sent, mut failed, mut lat) = (0, 0, Vec::new());
    for task in tasks {
        if let Ok((s, f, l)) = task.await {
            sent += s;
            failed += f;
            lat.extend(l);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "msgs_per_s={:.1} sent={sent} failed={failed} p99_ms={:.2}",
        sent as f64 / elapsed,
        percentile(&mut lat, 0.99)
    );
    Ok(())
}

type SmtpIo = BufReader<tokio_rustls::client::TlsStream<TcpStream>>;

async fn reply(s: &mut SmtpIo) -> anyhow::Result<(u16, String)> {
    let mut text = String::new();
    for _ in 0..100 {
        let mut line = String::new();
        let n = tokio::time::timeout(Duration::from_secs(30), s.read_line(&mut line)).await??;
        anyhow::ensure!(n > 0, "connection closed");
        text.push_str(&line);
        if line.as_bytes().get(3) != Some(&b'-') {
            let code = line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
            return Ok((code, text));
        }
    }
    anyhow::bail!("reply too long")
}

async fn smtp_cmd(s: &mut SmtpIo, line: &str) -> anyhow::Result<(u16, String)> {
    s.get_mut()
        .write_all(format!("{line}\r\n").as_bytes())
        .await?;
    s.get_mut().flush().await?;
    reply(s).await
}

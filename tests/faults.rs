//! Faults around a running server, seen from clients on loopback: peers that stop
//! reading, a database held locked by someone else, Pro Santé Connect slow, hanging or
//! answering garbage, DNS failing for outbound mail, and another operator that stalls in
//! the middle of DATA; and, with the binary in a process of its own, a disk that fills
//! up and `kill -9`. Each ends in a clear answer, no task left waiting forever and
//! nothing acknowledged lost.

mod common;

use common::database;
use common::smtp as smtp_support;
use common::tools;

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bound on waits that must end: long enough for a loaded machine, short enough that a
/// hang fails the test.
const BOUND: Duration = Duration::from_secs(20);

/// A connection whose receive buffer is small: once the server's replies fill it (and
/// the server's send buffer), every write of the server waits on us.
async fn reluctant_reader(addr: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(addr).await.unwrap()
}

/// Reads until the server closes (end of stream or reset); false if it has not after
/// [`BOUND`].
async fn closed_by_server(s: &mut TcpStream) -> bool {
    let deadline = tokio::time::Instant::now() + BOUND;
    let mut chunk = vec![0u8; 256 * 1024];
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut chunk)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

mod stalled_readers {
    //! Defect 4 of the hardening issue: a peer that stops reading held its task forever,
    //! and the server's shutdown with it.
    use super::*;
    use common::{Client, HOUSE, HOUSE_BAL, World, last, world};
    use smtp_support::{Instance, Options, Pki};

    /// An IMAP session that asked for 32 MiB (32 FETCHes of a 1 MiB message) and reads
    /// none of it.
    async fn imap_client_not_reading(w: &World) -> Client {
        let mut c = Client::over(reluctant_reader(w.tls).await);
        c.upgrade(&w.ca).await;
        c.line().await;
        let r = c
            .cmd(&format!(
                "AUTHENTICATE XOAUTH2 {}",
                w.xoauth2(HOUSE_BAL, HOUSE)
            ))
            .await;
        assert!(last(&r).contains("OK"), "{r:?}");
        let mut big = String::from("Subject: scan\r\n\r\n");
        while big.len() < 1 << 20 {
            big.push_str("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\r\n");
        }
        let tag = c.next_tag();
        c.send(format!("{tag} APPEND INBOX {{{}+}}\r\n", big.len()).as_bytes())
            .await;
        c.send(big.as_bytes()).await;
        c.send(b"\r\n").await;
        let r = c.until(&tag).await;
        assert!(last(&r).contains("OK [APPENDUID"), "{r:?}");
        assert!(last(&c.cmd("SELECT INBOX").await).contains("OK"));
        let fetches: String = (0..32)
            .map(|i| format!("f{i} FETCH 1 BODY.PEEK[]\r\n"))
            .collect();
        c.send(fetches.as_bytes()).await;
        // Long enough for the server to fill every buffer between us and be left waiting.
        tokio::time::sleep(Duration::from_secs(1)).await;
        c
    }

    /// SMTP commands (NOOP) pipelined, their replies never read, until the server stops
    /// reading them for 3 s: it is then waiting to write replies nobody reads.
    async fn smtp_client_not_reading(addr: SocketAddr) -> TcpStream {
        let mut s = reluctant_reader(addr).await;
        let batch = "NOOP\r\n".repeat(10_000);
        for _ in 0..2_000 {
            match tokio::time::timeout(Duration::from_secs(3), s.write_all(batch.as_bytes())).await
            {
                Err(_) => return s,
                Ok(Err(e)) => panic!("the server closed the connection: {e}"),
                Ok(Ok(())) => {}
            }
        }
        panic!("the server kept reading although its replies were not read");
    }

    /// Pipelines commands without reading a reply until the connection is reset: the
    /// server gave up on us (closing with our commands unread). False if it has not
    /// after [`BOUND`].
    async fn reset_by_server(addr: SocketAddr) -> bool {
        let mut s = reluctant_reader(addr).await;
        let batch = "NOOP\r\n".repeat(10_000);
        let deadline = tokio::time::Instant::now() + BOUND;
        loop {
            match tokio::time::timeout_at(deadline, s.write_all(batch.as_bytes())).await {
                Err(_) => return false,
                Ok(Err(_)) => return true,
                Ok(Ok(())) => {}
            }
        }
    }

    #[tokio::test]
    async fn imap_shutdown_completes_with_a_client_that_stopped_reading() {
        let mut w =
            world("session.shutdown_timeout = \"1s\"\nsession.write_timeout = \"10m\"").await;
        let mut c = imap_client_not_reading(&w).await;
        let running = w.running.take().unwrap();
        tokio::time::timeout(BOUND, running.stop())
            .await
            .expect("shutdown completed within its deadline");
        assert!(c.drained_until_closed(BOUND).await);
        w.stop().await;
    }

    #[tokio::test]
    async fn imap_drops_a_client_that_stopped_reading() {
        let w = world("session.write_timeout = \"1s\"").await;
        let mut c = imap_client_not_reading(&w).await;
        tokio::time::sleep(Duration::from_secs(4)).await;
        // Had the server waited, reading now would let it carry on with every FETCH and
        // then wait for the next command: the connection would stay open.
        assert!(c.drained_until_closed(BOUND).await);
        w.stop().await;
    }

    fn options(session: &str) -> Options {
        let mut o = Options::new("a.mssante.test");
        o.session_extra = session.into();
        o
    }

    #[tokio::test]
    async fn smtp_shutdown_completes_with_a_client_that_stopped_reading() {
        let pki = Pki::new();
        let a = Instance::start(
            &pki,
            options("shutdown_timeout = \"1s\"\nwrite_timeout = \"10m\""),
        )
        .await;
        let mut s = smtp_client_not_reading(a.inbound()).await;
        tokio::time::timeout(BOUND, a.stop())
            .await
            .expect("shutdown completed within its deadline");
        assert!(closed_by_server(&mut s).await);
    }

    #[tokio::test]
    async fn smtp_drops_a_client_that_stopped_reading() {
        let pki = Pki::new();
        let a = Instance::start(&pki, options("write_timeout = \"1s\"")).await;
        assert!(reset_by_server(a.inbound()).await);
        a.stop().await;
    }
}

mod outbound {
    //! The queue towards another operator: a peer that stalls in the middle of DATA and
    //! a name server that fails are temporary failures, tried again, never bounced.
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    use smtp_support::*;
    use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, BufReader};

    async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(s: &mut BufReader<S>, reply: &str) {
        let mut line = String::new();
        s.read_line(&mut line).await.unwrap();
        s.get_mut().write_all(reply.as_bytes()).await.unwrap();
        s.get_mut().flush().await.unwrap();
    }

    /// Another operator (presenting `operator2.crt`) that takes the connection, STARTTLS,
    /// the envelope and DATA, then never says another word. Counts its connections.
    async fn stalling_peer(pki: &Pki) -> (SocketAddr, Arc<AtomicUsize>) {
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(pki.path("operator2.crt"))
                .unwrap()
                .map(Result::unwrap)
                .collect();
        let key = PrivateKeyDer::from_pem_file(pki.path("operator2.key")).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(mssante::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let count = connections.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                count.fetch_add(1, Ordering::SeqCst);
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let mut s = BufReader::new(tcp);
                    s.get_mut()
                        .write_all(b"220 mx.b.mssante.test ESMTP\r\n")
                        .await
                        .unwrap();
                    exchange(&mut s, "250-mx.b.mssante.test\r\n250 STARTTLS\r\n").await;
                    exchange(&mut s, "220 2.0.0 go\r\n").await;
                    let Ok(tls) = acceptor.accept(s.into_inner()).await else {
                        return;
                    };
                    let mut s = BufReader::new(tls);
                    exchange(&mut s, "250 mx.b.mssante.test\r\n").await;
                    exchange(&mut s, "250 2.1.0 OK\r\n").await;
                    exchange(&mut s, "250 2.1.5 OK\r\n").await;
                    exchange(&mut s, "354 go ahead\r\n").await;
                    // Mid-DATA: the connection stays open, nothing more is read or said.
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    drop(s);
                });
            }
        });
        (addr, connections)
    }

    /// Submits one message from house@a to cameron@b; returns the sender's address.
    async fn submit(a: &Instance, pki: &Pki) -> String {
        let sender = a.mailbox("house", IDNAT).await;
        let mut s = authenticated(a.submission_tls(), pki.client(None), &sender, &a.token()).await;
        let (code, t) = s
            .mail(
                &sender,
                &["cameron@b.mssante.test"],
                &message(&sender, "cameron@b.mssante.test", "scan", 500),
            )
            .await;
        assert_eq!(code, 250, "{t}");
        sender
    }

    /// The queued message after `attempts` attempts, with its recipient's last error.
    async fn deferred(a: &Instance, attempts: u32) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let due = a
                .store()
                .queue_due(
                    mssante::clock::SystemClock::now_utc() + chrono::Duration::days(1),
                    10,
                )
                .await
                .unwrap();
            if let Some(m) = due.first().filter(|m| m.attempts >= attempts) {
                return m.recipients[0].last_error.clone().unwrap_or_default();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {attempts} attempts: {due:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[tokio::test]
    async fn a_peer_stalling_mid_data_times_out_and_is_tried_again() {
        let pki = Pki::new();
        let (peer, connections) = stalling_peer(&pki).await;
        let mut o = Options::new("a.mssante.test");
        o.trust = vec![("b.mssante.test".into(), pki.dn("operator2"))];
        o.routes = vec![("b.mssante.test".into(), peer.to_string())];
        o.smtp_extra = "queue_reply_timeout = \"2s\"\nqueue_data_timeout = \"1s\"".into();
        let a = Instance::start(&pki, o).await;
        let sender = submit(&a, &pki).await;
        let why = deferred(&a, 2).await;
        assert!(why.contains("timed out"), "{why}");
        assert!(connections.load(Ordering::SeqCst) >= 2);
        assert_eq!(a.store().queue_len().await.unwrap(), 1);
        assert!(a.messages(&sender, "INBOX").await.is_empty(), "no DSN");
        tokio::time::timeout(BOUND, a.stop())
            .await
            .expect("shutdown with a delivery waiting on the peer");
    }

    /// A name server on loopback that answers every query with `rcode`; counts them.
    async fn name_server(rcode: u8) -> (SocketAddr, Arc<AtomicUsize>) {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let queries = Arc::new(AtomicUsize::new(0));
        let count = queries.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                    return;
                };
                if n < 12 {
                    continue;
                }
                count.fetch_add(1, Ordering::SeqCst);
                // Header and question only: QNAME labels up to the root, then type and class.
                let mut end = 12;
                while end < n && buf[end] != 0 {
                    end += 1 + buf[end] as usize;
                }
                let end = (end + 5).min(n);
                let mut answer = buf[..end].to_vec();
                answer[2] = 0x80 | (buf[2] & 0x79); // QR, opcode and RD kept
                answer[3] = 0x80 | rcode; // RA
                answer[4..6].copy_from_slice(&[0, 1]);
                answer[6..12].fill(0);
                let _ = socket.send_to(&answer, from).await;
            }
        });
        (addr, queries)
    }

    #[tokio::test]
    async fn a_failing_name_server_defers_outbound_mail() {
        for (rcode, name) in [(2u8, "SERVFAIL"), (5, "REFUSED")] {
            let pki = Pki::new();
            let (dns, queries) = name_server(rcode).await;
            let mut o = Options::new("a.mssante.test");
            o.trust = vec![("b.mssante.test".into(), pki.dn("operator2"))];
            o.smtp_extra = format!("dns_servers = [\"{dns}\"]");
            let a = Instance::start(&pki, o).await;
            let sender = submit(&a, &pki).await;
            let why = deferred(&a, 2).await;
            assert!(
                why.contains("MX lookup for b.mssante.test"),
                "{name}: {why}"
            );
            assert!(queries.load(Ordering::SeqCst) >= 2, "{name}");
            assert_eq!(a.store().queue_len().await.unwrap(), 1, "{name}");
            assert!(
                a.messages(&sender, "INBOX").await.is_empty(),
                "{name}: no DSN"
            );
            a.stop().await;
        }
    }
}

mod psc {
    //! Pro Santé Connect slow, hanging or answering garbage: the client hears a
    //! temporary failure (IMAP `NO [UNAVAILABLE]`, SMTP `454`) within the HTTP timeout,
    //! and the audit trail says so.
    use super::*;
    use common::{HOUSE, HOUSE_BAL, World, last, world};
    use mssante::store::AuditOutcome;
    use smtp_support::{IDNAT, Instance, Options, Pki, implicit, xoauth2};

    async fn imap_login_is_unavailable(w: &World, what: &str) {
        let mut c = w.connect_tls().await;
        c.line().await;
        let r = tokio::time::timeout(
            BOUND,
            c.cmd(&format!(
                "AUTHENTICATE XOAUTH2 {}",
                w.xoauth2(HOUSE_BAL, HOUSE)
            )),
        )
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer"));
        assert!(last(&r).contains("NO [UNAVAILABLE]"), "{what}: {r:?}");
        let store = &w.running.as_ref().unwrap().context.store;
        let audit = store.audit_records(None, 1).await.unwrap();
        assert_eq!(audit[0].entry.outcome, AuditOutcome::Temporary, "{what}");
    }

    #[tokio::test]
    async fn imap_psc_answering_garbage() {
        for extra in ["", "psc.introspection"] {
            let w = world(extra).await;
            w.psc.set_garbled(true);
            imap_login_is_unavailable(&w, &format!("garbage ({extra})")).await;
            w.psc.set_garbled(false);
            let mut c = w.connect_tls().await;
            c.line().await;
            let r = c
                .cmd(&format!(
                    "AUTHENTICATE XOAUTH2 {}",
                    w.xoauth2(HOUSE_BAL, HOUSE)
                ))
                .await;
            assert!(last(&r).contains("OK"), "recovers ({extra}): {r:?}");
            w.stop().await;
        }
    }

    /// Introspection answering after 30 s, or never: the default HTTP timeout (5 s)
    /// answers the client first.
    #[tokio::test]
    async fn imap_psc_slow_or_hanging() {
        let w = world("psc.introspection").await;
        for delay in [30, 3_600] {
            w.psc.set_introspection_delay(Duration::from_secs(delay));
            imap_login_is_unavailable(&w, &format!("{delay} s")).await;
        }
        w.stop().await;
    }

    #[tokio::test]
    async fn smtp_psc_answering_garbage() {
        let pki = Pki::new();
        let a = Instance::start(&pki, Options::new("a.mssante.test")).await;
        let sender = a.mailbox("house", IDNAT).await;
        a.psc.set_garbled(true);
        let mut s = implicit(a.submission_tls(), pki.client(None)).await;
        assert_eq!(s.cmd("EHLO client.test").await.0, 250);
        let (code, text) = tokio::time::timeout(
            BOUND,
            s.cmd(&format!("AUTH XOAUTH2 {}", xoauth2(&sender, &a.token()))),
        )
        .await
        .expect("an answer");
        assert_eq!(code, 454, "{text}");
        let audit = a.store().audit_records(None, 1).await.unwrap();
        assert_eq!(audit[0].entry.outcome, AuditOutcome::Temporary);
        a.stop().await;
    }
}

mod database_locked {
    //! Another program holding the database locked (an EXCLUSIVE transaction left open
    //! by an operator's tool) for longer than the store's busy timeout (30 s): writes get
    //! a temporary failure, nothing hangs, and service resumes when the lock goes.
    use super::*;
    use common::{HOUSE, HOUSE_BAL, last, world};
    use smtp_support::{IDNAT, Instance, OTHER_IDNAT, Options, Pki, authenticated, message};

    /// Holds an EXCLUSIVE lock on `db` for `hold`, from a thread of its own. Waits for
    /// the lock without blocking the runtime: the server under test runs on it, and a
    /// write it has begun must be able to finish before the lock can be taken.
    async fn lock_database(db: std::path::PathBuf, hold: Duration) -> tokio::task::JoinHandle<()> {
        let (locked_tx, locked_rx) = tokio::sync::oneshot::channel();
        let handle = tokio::task::spawn_blocking(move || {
            let c = rusqlite::Connection::open(db).unwrap();
            // The server may be writing or checkpointing when the lock is asked for, and
            // SQLite does not always wait for a checkpoint: ask again until it is ours.
            c.busy_timeout(Duration::from_secs(5)).unwrap();
            let mut tries = 0;
            while let Err(e) = c.execute_batch("BEGIN EXCLUSIVE") {
                tries += 1;
                assert!(tries < 600, "cannot lock the database: {e}");
                #[allow(clippy::disallowed_methods)]
                std::thread::sleep(Duration::from_millis(100));
            }
            locked_tx.send(()).unwrap();
            // A blocking thread of its own (spawn_blocking): the runtime is not held up.
            #[allow(clippy::disallowed_methods)]
            std::thread::sleep(hold);
            c.execute_batch("COMMIT").unwrap();
        });
        locked_rx.await.unwrap();
        handle
    }

    const NOTE: &str = "Subject: Patient 12\r\n\r\nLupus, again.\r\n";
    /// The store's busy timeout (30 s) and room for a loaded machine to get the
    /// commands to the server after the lock is taken.
    const LONGER_THAN_BUSY: Duration = Duration::from_secs(45);

    #[tokio::test]
    async fn imap_append_and_smtp_data_while_the_database_is_locked() {
        let w = world("").await;
        let mut c = w.login(HOUSE_BAL, HOUSE).await;
        let pki = Pki::new();
        let a = Instance::start(&pki, Options::new("a.mssante.test")).await;
        let sender = a.mailbox("house", IDNAT).await;
        let rcpt = a.mailbox("cuddy", OTHER_IDNAT).await;
        let mut s = authenticated(a.submission_tls(), pki.client(None), &sender, &a.token()).await;

        let imap_lock =
            lock_database(database::file(&w.dir.path().join("data")), LONGER_THAN_BUSY).await;
        let smtp_lock =
            lock_database(database::file(&a.dir.path().join("data")), LONGER_THAN_BUSY).await;
        // Both asked while locked; their answers are read once the lock is gone (the
        // clients' own read limits are shorter than the store's busy timeout).
        let tag = c.next_tag();
        c.send(format!("{tag} APPEND INBOX {{{}+}}\r\n{NOTE}\r\n", NOTE.len()).as_bytes())
            .await;
        assert_eq!(s.cmd(&format!("MAIL FROM:<{sender}>")).await.0, 250);
        assert_eq!(s.cmd(&format!("RCPT TO:<{rcpt}>")).await.0, 250);
        assert_eq!(s.cmd("DATA").await.0, 354);
        s.send(&smtp_support::dot_stuff(&message(
            &sender, &rcpt, "locked", 200,
        )))
        .await;
        imap_lock.await.unwrap();
        smtp_lock.await.unwrap();
        let r = c.until(&tag).await;
        assert!(last(&r).contains("NO [UNAVAILABLE]"), "{r:?}");
        let (code, text) = s.reply().await;
        assert_eq!(code, 451, "{text}");

        let tag = c.next_tag();
        c.send(format!("{tag} APPEND INBOX {{{}+}}\r\n{NOTE}\r\n", NOTE.len()).as_bytes())
            .await;
        let r = c.until(&tag).await;
        assert!(last(&r).contains("OK [APPENDUID"), "{r:?}");
        let (code, text) = s
            .mail(&sender, &[&rcpt], &message(&sender, &rcpt, "after", 200))
            .await;
        assert_eq!(code, 250, "{text}");
        assert_eq!(a.messages(&rcpt, "INBOX").await.len(), 1);
        w.stop().await;
        a.stop().await;
    }
}

mod process {
    //! The real binary in a process of its own, for what cannot happen in-process: a disk
    //! that fills up (RLIMIT_FSIZE on the server process, SIGXFSZ ignored, raised again
    //! with `prlimit --pid` to give the space back) and `kill -9`, in the store and in the
    //! middle of a queue run. After each, the store is checked: `PRAGMA
    //! integrity_check`, and every acknowledged message present (or, for the queue,
    //! delivered).
    use super::*;
    use std::collections::HashSet;
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::sync::{Arc, Mutex};

    use common::{Client, last};
    use mssante_conformance::psc_standin::{PscStandIn, TokenSpec};
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    use smtp_support::*;

    const HOUSE_BAL: &str = "house@a.mssante.test";
    const CUDDY_BAL: &str = "cuddy@a.mssante.test";

    struct Server {
        pki: Pki,
        psc: PscStandIn,
        dir: tempfile::TempDir,
        config: PathBuf,
        imap: SocketAddr,
        submission: SocketAddr,
        child: Option<Child>,
    }

    impl Server {
        async fn prepare() -> Server {
            Self::prepare_with(Pki::new(), Options::new("a.mssante.test")).await
        }

        /// The server for a.mssante.test set up with `o` (its trust list, routes and
        /// certificate, from `pki`); listens for IMAP and submission only.
        async fn prepare_with(pki: Pki, mut o: Options) -> Server {
            let psc = PscStandIn::start("127.0.0.1:0".parse().unwrap())
                .await
                .unwrap();
            let dir = tempfile::tempdir().unwrap();
            let (imap, submission) = (free_port(), free_port());
            o.listeners = Listeners {
                imap_tls: on_port(imap),
                submission_tls: on_port(submission),
                submission_starttls: None,
                inbound: None,
                ..Listeners::all()
            };
            let config = write_config(&pki, dir.path(), &psc, &o, "");
            let store =
                mssante::store::Store::open(&dir.path().join("data"), mssante::clock::system())
                    .await
                    .unwrap();
            create_mailbox(&store, HOUSE_BAL, IDNAT).await;
            create_mailbox(&store, CUDDY_BAL, OTHER_IDNAT).await;
            store.close().await;
            Server {
                pki,
                psc,
                dir,
                config,
                imap: format!("127.0.0.1:{imap}").parse().unwrap(),
                submission: format!("127.0.0.1:{submission}").parse().unwrap(),
                child: None,
            }
        }

        /// Starts `serve`, with files limited to `fsize` bytes if given; waits until it
        /// listens.
        async fn start(&mut self, fsize: Option<u64>) {
            let bin = env!("CARGO_BIN_EXE_mssante");
            let mut command = match fsize {
                None => Command::new(bin),
                Some(n) => {
                    let mut c = Command::new("sh");
                    // An ignored signal stays ignored across exec: writes past the limit
                    // fail with EFBIG instead of killing the server.
                    c.args(["-c", "trap '' XFSZ; exec \"$@\"", "sh", "prlimit"])
                        // The soft limit only: the test may raise it again (`unlimit`).
                        .arg(format!("--fsize={n}:unlimited"))
                        .arg(bin);
                    c
                }
            };
            let child = command
                .arg("--config")
                .arg(&self.config)
                .arg("serve")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            self.child = Some(child);
            let imap = self.imap;
            eventually("the server to listen", || async {
                TcpStream::connect(imap).await.is_ok()
            })
            .await;
        }

        fn pid(&self) -> String {
            self.child.as_ref().unwrap().id().to_string()
        }

        /// Sends `signal` and waits (within [`BOUND`]) for the process to end.
        async fn signal(&mut self, signal: &str) {
            let status = Command::new("kill")
                .args([signal, &self.pid()])
                .status()
                .unwrap();
            assert!(status.success());
            let mut child = self.child.take().unwrap();
            let deadline = tokio::time::Instant::now() + BOUND;
            while child.try_wait().unwrap().is_none() {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{signal}: still running"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }

        fn token(&self) -> String {
            self.psc
                .mint(&TokenSpec::valid(IDNAT).with_lifetime(Duration::from_secs(600)))
        }

        async fn imap(&self) -> Client {
            let ca = CertificateDer::pem_file_iter(self.pki.path("ca.crt"))
                .unwrap()
                .next()
                .unwrap()
                .unwrap();
            let mut c = Client::plain(self.imap).await;
            c.upgrade(&ca).await;
            c.line().await;
            let r = c
                .cmd(&format!(
                    "AUTHENTICATE XOAUTH2 {}",
                    xoauth2(HOUSE_BAL, &self.token())
                ))
                .await;
            assert!(last(&r).contains("OK"), "{r:?}");
            c
        }

        /// A submission session logged in as house.
        async fn submit(&self) -> Tls {
            authenticated(
                self.submission,
                self.pki.client(None),
                HOUSE_BAL,
                &self.token(),
            )
            .await
        }

        fn db(&self) -> PathBuf {
            database::file(&self.dir.path().join("data"))
        }
    }

    /// The process `pid` may write files of any size again: the disk has room again.
    fn unlimit(pid: &str) {
        let status = Command::new("prlimit")
            .args(["--pid", pid, "--fsize=unlimited"])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Subjects of the messages in a mailbox's INBOX, read from the file once the server
    /// is stopped; checks the file's integrity first.
    async fn subjects(db: &Path, address: &str) -> Vec<String> {
        let c = rusqlite::Connection::open(db).unwrap();
        let check: String = c
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
        drop(c);
        let store = mssante::store::Store::open_file(db, mssante::clock::system())
            .await
            .unwrap();
        let bodies = folder_messages(&store, address, "INBOX").await;
        store.close().await;
        bodies.iter().filter_map(|b| subject(b)).collect()
    }

    fn subject(body: &[u8]) -> Option<String> {
        String::from_utf8_lossy(body)
            .lines()
            .find_map(|l| l.strip_prefix("Subject: "))
            .map(str::to_owned)
    }

    fn note(subject: &str, size: usize) -> String {
        message(HOUSE_BAL, CUDDY_BAL, subject, size)
    }

    /// Appends; returns the tagged answer and the UID given.
    async fn append(c: &mut Client, text: &str) -> (String, Option<u32>) {
        let tag = c.next_tag();
        c.send(format!("{tag} APPEND INBOX {{{}+}}\r\n{text}\r\n", text.len()).as_bytes())
            .await;
        let r = c.until(&tag).await;
        let answer = last(&r).to_owned();
        let uid = answer
            .split_once("[APPENDUID ")
            .and_then(|(_, rest)| rest.split(']').next())
            .and_then(|v| v.split_whitespace().nth(1))
            .and_then(|u| u.parse().ok());
        (answer, uid)
    }

    /// With the server started on a disk about to be full: APPENDs until one is refused,
    /// one submission while the disk is full, then `room` gives the space back and both
    /// sessions must go on. Every acknowledged message is in the file afterwards, the
    /// refused one is not. Returns the IMAP refusal and the SMTP reply heard while full.
    async fn fill_up_and_recover(
        server: &mut Server,
        room: impl FnOnce(),
    ) -> (String, u16, String) {
        let db = server.db();
        let mut c = server.imap().await;
        // Logged in before the disk fills: a login that cannot be audited is refused.
        let mut s = server.submit().await;
        let mut acked = Vec::new();
        let mut refusal = None;
        for i in 0..200 {
            let subject = format!("append-{i}");
            let (answer, _) = append(&mut c, &note(&subject, 60_000)).await;
            if answer.contains(" OK ") {
                acked.push(subject);
            } else {
                refusal = Some(answer);
                break;
            }
        }
        let refusal = refusal.expect("the disk filled up");
        let (code, text) = s
            .mail(HOUSE_BAL, &[CUDDY_BAL], &note("data-full", 60_000))
            .await;
        eprintln!(
            "disk full: IMAP `{}`, SMTP `{code} {text}`",
            refusal.trim_end()
        );
        room();
        let (answer, _) = append(&mut c, &note("append-after", 60_000)).await;
        assert!(answer.contains(" OK [APPENDUID"), "{answer}");
        acked.push("append-after".into());
        let (after, why) = s
            .mail(HOUSE_BAL, &[CUDDY_BAL], &note("data-after", 60_000))
            .await;
        assert_eq!(after, 250, "{why}");
        drop((c, s));
        server.signal("-TERM").await;
        let present = subjects(&db, HOUSE_BAL).await;
        for subject in &acked {
            assert_eq!(
                present.iter().filter(|p| *p == subject).count(),
                1,
                "{subject}"
            );
        }
        assert_eq!(subjects(&db, CUDDY_BAL).await, ["data-after"]);
        (refusal, code, text)
    }

    /// A process limit on file size (EFBIG): SQLite reports a write error, not a full
    /// disk, so the answers are the general temporary ones.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn disk_full_during_append_and_data() {
        let mut server = Server::prepare().await;
        // Room for what is there now and little more: the WAL grows with each message.
        let limit = std::fs::metadata(server.db()).unwrap().len() + 1024 * 1024;
        server.start(Some(limit)).await;
        let pid = server.pid();
        let (refusal, code, text) = fill_up_and_recover(&mut server, || unlimit(&pid)).await;
        assert!(refusal.contains(" NO [UNAVAILABLE] "), "{refusal}");
        assert!(code == 452 || code == 451, "{code} {text}");
        server.psc.shutdown().await;
    }

    /// `n` more mailboxes, each with one message of `size` bytes in its INBOX; their
    /// addresses.
    async fn populate(db: &Path, n: usize, size: usize) -> Vec<String> {
        let store = mssante::store::Store::open_file(db, mssante::clock::system())
            .await
            .unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..n {
            let store = store.clone();
            tasks.spawn(async move {
                let address = format!("inactive{i}@a.mssante.test");
                let m = store
                    .create_mailbox(mssante::store::NewMailbox::new(
                        &address,
                        mssante::store::MailboxKind::Personal,
                        Some(format!("81{i:08}")),
                        mssante::clock::SystemClock::now_utc(),
                    ))
                    .await
                    .unwrap();
                let inbox = store.folder(m.id, "INBOX").await.unwrap().unwrap();
                let text = message(&address, &address, &address, size);
                store
                    .append(
                        inbox.id,
                        text.as_bytes(),
                        Default::default(),
                        mssante::clock::SystemClock::now_utc(),
                    )
                    .await
                    .unwrap();
                address
            });
        }
        let addresses = tasks.join_all().await;
        store.close().await;
        addresses
    }

    /// `mssante jobs run` as of `days` from now, as a child process.
    fn jobs_run(config: &Path, days: i64) -> Command {
        let at =
            (mssante::clock::SystemClock::now_utc() + chrono::Duration::days(days)).to_rfc3339();
        let mut c = Command::new(env!("CARGO_BIN_EXE_mssante"));
        c.arg("--config")
            .arg(config)
            .args(["jobs", "run", "--at", &at])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        c
    }

    /// What a lifecycle run left, read straight from the file: the integrity check, the
    /// mailboxes left, mailboxes without their INBOX or message (half deleted), bodies
    /// no message uses, and the deletions audited.
    fn lifecycle_state(db: &Path) -> (i64, i64, i64, i64) {
        let c = rusqlite::Connection::open(db).unwrap();
        let check: String = c
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
        let count = |sql: &str| -> i64 { c.query_row(sql, [], |r| r.get(0)).unwrap() };
        (
            count("SELECT count(*) FROM mailboxes WHERE address LIKE 'inactive%'"),
            count(
                "SELECT count(*) FROM mailboxes m WHERE address LIKE 'inactive%' AND NOT EXISTS
                   (SELECT 1 FROM folders f JOIN messages g ON g.folder_id = f.id
                    WHERE f.mailbox_id = m.id AND f.name = 'INBOX')",
            ),
            count("SELECT count(*) FROM bodies WHERE id NOT IN (SELECT body_id FROM messages)"),
            count(
                "SELECT count(*) FROM audit WHERE protocol = 'lifecycle'
                   AND mailbox LIKE 'inactive%' AND reason LIKE 'deleted%'",
            ),
        )
    }

    /// `kill -9` in the middle of the deletion job: each mailbox is deleted whole, with
    /// its audit entry, or not at all; the next run refuses while the dead run's lease
    /// lasts (ten minutes, played here by expiring it), then finishes the work.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn kill_9_during_a_lifecycle_run() {
        const N: usize = 3000;
        let server = Server::prepare().await;
        let db = server.db();
        populate(&db, N, 20_000).await;
        let mut run = jobs_run(&server.config, 400).spawn().unwrap();
        let watch = rusqlite::Connection::open(&db).unwrap();
        let left = || -> i64 {
            watch
                .query_row(
                    "SELECT count(*) FROM mailboxes WHERE address LIKE 'inactive%'",
                    [],
                    |r| r.get(0),
                )
                .unwrap_or(N as i64)
        };
        let deadline = tokio::time::Instant::now() + BOUND;
        while left() == N as i64 {
            assert!(run.try_wait().unwrap().is_none(), "the run ended first");
            assert!(tokio::time::Instant::now() < deadline, "no deletion seen");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        run.kill().unwrap();
        run.wait().unwrap();
        drop(watch);

        let (remaining, broken, orphans, audited) = lifecycle_state(&db);
        eprintln!("killed with {remaining} of {N} mailboxes left");
        assert!(remaining > 0, "the run was over before the kill");
        assert_eq!(broken, 0, "half-deleted mailboxes");
        assert_eq!(orphans, 0, "bodies left behind");
        assert_eq!(audited, N as i64 - remaining, "deletions without audit");

        let out = jobs_run(&server.config, 400).output().unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{said}");
        assert!(said.contains("nothing done"), "{said}");
        rusqlite::Connection::open(&db)
            .unwrap()
            .execute("UPDATE lifecycle_lease SET expires_at = 0", [])
            .unwrap();
        let out = jobs_run(&server.config, 400).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (remaining, broken, orphans, audited) = lifecycle_state(&db);
        assert_eq!((remaining, broken, orphans, audited), (0, 0, 0, N as i64));
        server.psc.shutdown().await;
    }

    /// A file system of its own (tmpfs) mounted on the data directory, unmounted on drop.
    /// Mounting needs root: required in CI, a visible skip elsewhere (`tests/tools`).
    struct SmallDisk(PathBuf);

    impl SmallDisk {
        /// Moves the data directory's files onto a tmpfs in its place, with `room` bytes
        /// free once they are there.
        fn mount(data: &Path, room: u64) -> Option<SmallDisk> {
            let aside = data.with_extension("aside");
            std::fs::rename(data, &aside).unwrap();
            std::fs::create_dir(data).unwrap();
            let mounted = Command::new("mount")
                .args(["-t", "tmpfs", "-o", "size=1g", "tmpfs"])
                .arg(data)
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !mounted {
                std::fs::remove_dir(data).unwrap();
                std::fs::rename(&aside, data).unwrap();
                tools::skip("cannot mount a tmpfs (root is needed)");
                return None;
            }
            let disk = SmallDisk(data.to_owned());
            for entry in std::fs::read_dir(&aside).unwrap() {
                let entry = entry.unwrap();
                std::fs::copy(entry.path(), data.join(entry.file_name())).unwrap();
            }
            std::fs::remove_dir_all(&aside).unwrap();
            let df = Command::new("df")
                .args(["--output=used", "-B1"])
                .arg(data)
                .output()
                .unwrap();
            let used: u64 = String::from_utf8_lossy(&df.stdout)
                .lines()
                .nth(1)
                .and_then(|l| l.trim().parse().ok())
                .unwrap();
            disk.resize(used + room);
            Some(disk)
        }

        /// The file system's size; larger, the disk has room again.
        fn resize(&self, size: u64) {
            let status = Command::new("mount")
                .args(["-o", &format!("remount,size={size}")])
                .arg(&self.0)
                .status()
                .unwrap();
            assert!(status.success());
        }
    }

    impl Drop for SmallDisk {
        fn drop(&mut self) {
            // Lazily: the store's last file handles may close a moment later.
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }

    /// A file system that is really full (ENOSPC, not a process limit): IMAP says `NO
    /// [UNAVAILABLE] Insufficient storage`, SMTP `452 4.3.1`, nothing acknowledged is
    /// lost, and the same sessions go on once the file system has room again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_file_system() {
        let mut server = Server::prepare().await;
        let db = server.db();
        let data = db.parent().unwrap().to_owned();
        let Some(disk) = SmallDisk::mount(&data, 2 * 1024 * 1024) else {
            return;
        };
        server.start(None).await;
        let (refusal, code, text) =
            fill_up_and_recover(&mut server, || disk.resize(64 * 1024 * 1024)).await;
        assert!(
            refusal.contains(" NO [UNAVAILABLE] Insufficient storage, reference "),
            "{refusal}"
        );
        assert_eq!(code, 452, "{text}");
        assert!(text.starts_with("4.3.1 Insufficient storage"), "{text}");
        drop(disk);
        server.psc.shutdown().await;
    }

    /// The disk fills up during a lifecycle run: the run stops with the reason, what it
    /// did is whole (no half-deleted mailbox, no notice without its record), and the run
    /// after the space comes back finishes the work.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_file_system_during_a_lifecycle_run() {
        const N: usize = 600;
        let server = Server::prepare().await;
        let db = server.db();
        populate(&db, N, 20_000).await;
        let data = db.parent().unwrap().to_owned();
        let Some(disk) = SmallDisk::mount(&data, 1024 * 1024) else {
            return;
        };
        let out = jobs_run(&server.config, 400).output().unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        eprintln!("disk full: {said}");
        assert_eq!(out.status.code(), Some(1), "{said}");
        assert!(said.contains("disk is full"), "{said}");
        let (remaining, broken, orphans, audited) = lifecycle_state(&db);
        assert_eq!(broken, 0, "half-deleted mailboxes");
        assert_eq!(orphans, 0, "bodies left behind");
        assert_eq!(audited, N as i64 - remaining, "deletions without audit");
        let notices: i64 = rusqlite::Connection::open(&db)
            .unwrap()
            .query_row(
                "SELECT count(*) FROM lifecycle_notices n JOIN mailboxes m ON m.id = n.mailbox_id
                 WHERE m.address LIKE 'inactive%'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        eprintln!("{notices} notices recorded, {remaining} mailboxes left");

        disk.resize(256 * 1024 * 1024);
        let out = jobs_run(&server.config, 400).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(lifecycle_state(&db), (0, 0, 0, N as i64));
        drop(disk);
        server.psc.shutdown().await;
    }

    /// Acknowledged appends and expunges while the server is killed with SIGKILL.
    #[derive(Default)]
    struct Ledger {
        appended: Vec<(u32, String)>,
        expunged: HashSet<String>,
        /// Asked to expunge, answer not heard: either state is right.
        uncertain: HashSet<String>,
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn kill_9_during_append_and_expunge() {
        let mut server = Server::prepare().await;
        let db = server.db();
        server.start(None).await;
        let ledger = Arc::new(Mutex::new(Ledger::default()));
        let mut clients = Vec::new();
        for n in 0..3 {
            let mut c = server.imap().await;
            let ledger = ledger.clone();
            clients.push(tokio::spawn(async move {
                for i in 0.. {
                    let subject = format!("storm-{n}-{i}");
                    let (answer, uid) = append(&mut c, &note(&subject, 2_000)).await;
                    if let (true, Some(uid)) = (answer.contains(" OK "), uid) {
                        ledger.lock().unwrap().appended.push((uid, subject));
                    }
                }
            }));
        }
        let mut e = server.imap().await;
        assert!(last(&e.cmd("SELECT INBOX").await).contains(" OK "));
        let expunger = {
            let ledger = ledger.clone();
            tokio::spawn(async move {
                loop {
                    let next = {
                        let mut l = ledger.lock().unwrap();
                        let expunged = l.expunged.clone();
                        let next = l
                            .appended
                            .iter()
                            .find(|(_, s)| !expunged.contains(s))
                            .cloned();
                        if let Some((_, s)) = &next {
                            l.uncertain.insert(s.clone());
                        }
                        next
                    };
                    let Some((uid, subject)) = next else {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        continue;
                    };
                    e.cmd(&format!("UID STORE {uid} +FLAGS.SILENT (\\Deleted)"))
                        .await;
                    let r = e.cmd(&format!("UID EXPUNGE {uid}")).await;
                    if last(&r).contains(" OK ") {
                        let mut l = ledger.lock().unwrap();
                        l.uncertain.remove(&subject);
                        l.expunged.insert(subject);
                    }
                }
            })
        };
        eventually("appends and expunges under way", || {
            let l = ledger.lock().unwrap();
            let busy = l.appended.len() >= 60 && l.expunged.len() >= 10;
            async move { busy }
        })
        .await;
        server.signal("-KILL").await;
        for c in clients {
            let _ = c.await;
        }
        let _ = expunger.await;
        // Restarted, it serves again; then stopped, its file is checked.
        server.start(None).await;
        let mut c = server.imap().await;
        assert!(last(&c.cmd("SELECT INBOX").await).contains(" OK "));
        drop(c);
        server.signal("-TERM").await;
        let present = subjects(&db, HOUSE_BAL).await;
        {
            let l = ledger.lock().unwrap();
            for (_, subject) in &l.appended {
                let count = present.iter().filter(|p| *p == subject).count();
                if l.expunged.contains(subject) {
                    assert_eq!(count, 0, "{subject} was expunged");
                } else if l.uncertain.contains(subject) {
                    assert!(count <= 1, "{subject}");
                } else {
                    assert_eq!(count, 1, "{subject} was acknowledged");
                }
            }
        }
        server.psc.shutdown().await;
    }

    /// A slow network in front of `to`: a relay on loopback that passes every byte on
    /// and holds each chunk coming back from `to` for `delay`, so that a delivery
    /// takes about ten times `delay` (one per reply, TLS handshake included). TLS is
    /// end to end between the two servers; the relay only sees ciphertext.
    async fn slow_relay(to: SocketAddr, delay: Duration) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((near, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let Ok(far) = TcpStream::connect(to).await else {
                        return;
                    };
                    let (mut near_read, mut near_write) = near.into_split();
                    let (mut far_read, mut far_write) = far.into_split();
                    // A closed (or killed) client closes the connection to `to` too.
                    let outward = tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut near_read, &mut far_write).await;
                        let _ = far_write.shutdown().await;
                    });
                    let mut chunk = vec![0u8; 16 * 1024];
                    while let Ok(n @ 1..) = far_read.read(&mut chunk).await {
                        tokio::time::sleep(delay).await;
                        if near_write.write_all(&chunk[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = near_write.shutdown().await;
                    let _ = outward.await;
                });
            }
        });
        addr
    }

    /// Subjects of the messages in a running instance's INBOX.
    async fn received(b: &Instance, address: &str) -> Vec<String> {
        b.messages(address, "INBOX")
            .await
            .iter()
            .filter_map(|m| subject(m))
            .collect()
    }

    /// Messages in the queue of a running server, read beside it.
    fn queued(db: &Path) -> i64 {
        let c =
            rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .unwrap();
        c.query_row("SELECT COUNT(*) FROM queue", [], |r| r.get(0))
            .unwrap()
    }

    /// Subjects of the messages queued in a stopped server's file.
    async fn queued_subjects(db: &Path) -> HashSet<String> {
        let store = mssante::store::Store::open_file(db, mssante::clock::system())
            .await
            .unwrap();
        let later = mssante::clock::SystemClock::now_utc() + chrono::Duration::days(1);
        let mut out = HashSet::new();
        for m in store.queue_due(later, 1_000).await.unwrap() {
            out.extend(subject(&store.body(m.body_id).await.unwrap()));
        }
        store.close().await;
        out
    }

    /// `kill -9` while the queue delivers to another operator: every message
    /// acknowledged on submission reaches the other side after a restart, and the queue
    /// ends empty. A is the real binary; B an in-process server behind a slow relay, so
    /// that the queue run lasts long enough to be cut in the middle.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn kill_9_during_a_queue_run() {
        /// Messages submitted: about three rounds of the queue's 16 parallel deliveries.
        const N: usize = 40;
        /// Deliveries the queue runs at once (`PARALLEL` in the queue runner).
        const PARALLEL: usize = 16;
        const CAMERON: &str = "cameron@b.mssante.test";
        let pki = Pki::new();
        let b = Instance::start(&pki, operator_b(&pki)).await;
        b.mailbox("cameron", OTHER_IDNAT).await;
        let relay = slow_relay(b.inbound(), Duration::from_millis(100)).await;
        let mut oa = operator_a(&pki);
        oa.routes = vec![("b.mssante.test".into(), relay.to_string())];
        let mut server = Server::prepare_with(pki, oa).await;
        let db = server.db();
        server.start(None).await;

        let mut s = server.submit().await;
        let mut acked = Vec::new();
        for i in 0..N {
            let subject = format!("queued-{i}");
            let (code, text) = s
                .mail(
                    HOUSE_BAL,
                    &[CAMERON],
                    &message(HOUSE_BAL, CAMERON, &subject, 2_000),
                )
                .await;
            assert_eq!(code, 250, "{subject}: {text}");
            acked.push(subject);
        }
        drop(s);
        // Killed once A has recorded a quarter as delivered: some deliveries done, some
        // in flight, the rest not started.
        eventually("A to record a quarter of the deliveries", || async {
            queued(&db) <= (N - N / 4) as i64
        })
        .await;
        server.signal("-KILL").await;
        let at_kill: HashSet<String> = received(&b, CAMERON).await.into_iter().collect();
        let pending = queued_subjects(&db).await;
        // Otherwise the run was over before the kill, and nothing was tested.
        assert!(!pending.is_empty(), "the queue was empty at the kill");
        assert!(
            at_kill.len() < N,
            "every message was delivered before the kill"
        );
        for subject in &acked {
            // A records a delivery only once B has the message.
            assert!(
                pending.contains(subject) || at_kill.contains(subject),
                "{subject} left the queue without reaching B"
            );
        }

        // Restarted, the queue takes up what it had not finished.
        server.start(None).await;
        eventually("B to receive every message", || async {
            let mut got = received(&b, CAMERON).await;
            got.sort();
            got.dedup();
            got.len() == N
        })
        .await;
        eventually("A's queue to empty", || async { queued(&db) == 0 }).await;
        server.signal("-TERM").await;

        let got = received(&b, CAMERON).await;
        // Delivery is at least once: a message whose `250` from B had not been recorded
        // by A at the kill is sent again. Only deliveries in flight at the kill can be
        // duplicated, and the queue runs at most PARALLEL at once.
        let mut duplicated = 0;
        for subject in &acked {
            let copies = got.iter().filter(|g| *g == subject).count();
            if copies == 2 {
                // (B may have been storing it as A died: `at_kill` need not show it.)
                assert!(
                    pending.contains(subject),
                    "{subject} was sent again although A had recorded its delivery"
                );
            } else {
                assert_eq!(copies, 1, "{subject}");
            }
            duplicated += copies - 1;
        }
        assert_eq!(got.len(), N + duplicated, "only what was submitted");
        assert!(duplicated <= PARALLEL, "{duplicated} duplicates");
        eprintln!(
            "queue run: at the kill, {} of {N} at B and {} still queued; {duplicated} sent twice",
            at_kill.len(),
            pending.len()
        );
        let store = mssante::store::Store::open_file(&db, mssante::clock::system())
            .await
            .unwrap();
        assert_eq!(store.queue_len().await.unwrap(), 0);
        store.close().await;
        // The file is sound, and no failure notice went back to the sender.
        assert!(subjects(&db, HOUSE_BAL).await.is_empty());
        b.stop().await;
        server.psc.shutdown().await;
    }
}

//! Faults around a running server, seen from clients on loopback: peers that stop
//! reading, a database held locked by someone else, Pro Santé Connect slow, hanging or
//! answering garbage, DNS failing for outbound mail, and another operator that stalls in
//! the middle of DATA. Each ends in a clear answer and no task left waiting forever.
//!
//! Disk full and `kill -9` need the server in a process of its own: see
//! `tests/faults_process.rs`.

mod common;
mod database;
mod smtp_support;

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

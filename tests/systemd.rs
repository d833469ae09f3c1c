//! Running under systemd: the unit in contrib/systemd passes `systemd-analyze verify`,
//! and `serve`, started as systemd starts it (a `NOTIFY_SOCKET` to tell, a watchdog
//! period), says READY=1 only once its listeners accept, pings the watchdog, and says
//! STOPPING=1 when SIGTERM starts the drain, then exits cleanly.

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::cli::{command, terminate};
use common::smtp::*;
use common::tools;
use mssante_conformance::psc_standin::PscStandIn;

const UNIT: &str = include_str!("../contrib/systemd/mssante.service");

#[test]
fn the_unit_passes_systemd_analyze_verify() {
    // What the operator's on-call engineer expects of it, whatever systemd says.
    for directive in [
        "Type=notify",
        "User=mssante",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/mssante",
        "NoNewPrivileges=yes",
        "WatchdogSec=",
    ] {
        assert!(
            UNIT.lines().any(|l| l.starts_with(directive)),
            "{directive}"
        );
    }
    if !tools::available("systemd-analyze") {
        return;
    }
    // verify wants the ExecStart binary to exist: point it at the one just built.
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("mssante.service");
    std::fs::write(
        &unit,
        UNIT.replace("/usr/bin/mssante", env!("CARGO_BIN_EXE_mssante")),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&unit)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    // A directive systemd does not understand is only a warning: none is allowed.
    assert!(out.status.success() && said.trim().is_empty(), "{said}");
}

/// The next notification on `socket`, or None after `limit`.
fn next(socket: &UnixDatagram, limit: Duration) -> Option<String> {
    socket.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 4096];
    let n = socket.recv(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// Reads notifications until one holds `line`, each within `limit`.
fn wait_for(socket: &UnixDatagram, line: &str, limit: Duration) -> Vec<String> {
    let mut seen = Vec::new();
    // The watchdog pings every 100 ms meanwhile: a bound, not a count to reach.
    while seen.len() < 10_000 {
        let Some(message) = next(socket, limit) else {
            break;
        };
        let done = message.lines().any(|l| l == line);
        seen.push(message);
        if done {
            return seen;
        }
    }
    panic!("no {line} within {limit:?}; got {seen:?}");
}

/// A server for a.mssante.test whose IMAP (implicit TLS) listener is on a port known
/// beforehand, for a `serve` process the test starts as systemd would: its
/// configuration file, that port, and what must live as long as the process.
struct Prepared {
    config: PathBuf,
    imap_port: u16,
    psc: PscStandIn,
    _pki: Pki,
    dir: tempfile::TempDir,
}

async fn prepare() -> Prepared {
    let pki = Pki::new();
    let psc = PscStandIn::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let imap_port = free_port();
    let mut o = Options::new("a.mssante.test");
    o.listeners.imap_tls = on_port(imap_port);
    let config = write_config(&pki, dir.path(), &psc, &o, "");
    Prepared {
        config,
        imap_port,
        psc,
        _pki: pki,
        dir,
    }
}

#[tokio::test]
async fn serve_says_ready_pings_the_watchdog_and_says_stopping() {
    let p = prepare().await;
    let socket_path = p.dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    let child = command(&p.config, &["serve"])
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "200000")
        .env_remove("WATCHDOG_PID")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let socket = tokio::task::spawn_blocking(move || {
        wait_for(&socket, "READY=1", WAIT);
        socket
    })
    .await
    .unwrap();
    // READY=1 comes after the listeners are bound: the IMAP port answers at once.
    tokio::net::TcpStream::connect(("127.0.0.1", p.imap_port))
        .await
        .expect("IMAP listening once READY=1 was said");
    let socket = tokio::task::spawn_blocking(move || {
        wait_for(&socket, "WATCHDOG=1", Duration::from_secs(5));
        socket
    })
    .await
    .unwrap();
    let stopping = tokio::task::spawn_blocking(move || wait_for(&socket, "STOPPING=1", WAIT));
    let status = terminate(child).await;
    stopping.await.unwrap();
    assert!(status.success(), "{status}");
    p.psc.shutdown().await;
}

#[tokio::test]
async fn without_notify_socket_serve_runs_as_before() {
    let p = prepare().await;
    let child = command(&p.config, &["serve"])
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    eventually("the server to listen", || async {
        tokio::net::TcpStream::connect(("127.0.0.1", p.imap_port))
            .await
            .is_ok()
    })
    .await;
    let status = terminate(child).await;
    assert!(status.success(), "{status}");
    p.psc.shutdown().await;
}

//! A `serve` node as a process of its own, as on a machine of its own: the real binary
//! on a configuration file written by `config::Setup`. Its listeners bind port 0 of
//! loopback; the ports the kernel gave them are read from the node's log (`listening
//! bound=…`), so no port is reserved beforehand and raced for.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A running `mssante serve`; killed if the test lets go of it without stopping it.
pub struct Node {
    child: Child,
    /// Bound address of each listener, by protocol and name (`("IMAP", "tls")`,
    /// `("SMTP", "submission_tls")`).
    listening: HashMap<(String, String), SocketAddr>,
}

/// How long a node may take to start.
const START: Duration = Duration::from_secs(30);

impl Node {
    /// Starts `mssante --config CONFIG serve` and waits until it says it started.
    pub async fn start(config: &Path) -> Node {
        let mut child = super::cli::command(config, &["serve"])
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        // Reads the whole log, so the node never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut listening = HashMap::new();
            let mut started = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let line = plain(&line);
                if let Some((key, addr)) = listening_line(&line) {
                    listening.insert(key, addr);
                }
                if line.contains("mssante started")
                    && let Some(tx) = started.take()
                {
                    let _ = tx.send(std::mem::take(&mut listening));
                }
            }
        });
        let listening = tokio::task::spawn_blocking(move || rx.recv_timeout(START))
            .await
            .unwrap()
            .expect("the node started");
        Node { child, listening }
    }

    /// Where the node's listener `name` of `protocol` listens.
    pub fn addr(&self, protocol: &str, name: &str) -> SocketAddr {
        *self
            .listening
            .get(&(protocol.to_owned(), name.to_owned()))
            .unwrap_or_else(|| panic!("no {protocol} {name} listener in {:?}", self.listening))
    }

    /// Its IMAP listener with implicit TLS.
    pub fn imap_tls(&self) -> SocketAddr {
        self.addr("IMAP", "tls")
    }

    /// `kill -9`: no draining, no lease given back.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, and waits for the node to drain and exit.
    pub async fn stop(mut self) {
        let pid = self.child.id().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(sent.success());
        let deadline = tokio::time::Instant::now() + START;
        loop {
            if let Some(exited) = self.child.try_wait().unwrap() {
                assert!(exited.success(), "the node exited with {exited}");
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the node did not stop"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `line` without terminal colour codes.
fn plain(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `… listening bound=127.0.0.1:41234 protocol="IMAP" listener="tls"`.
fn listening_line(line: &str) -> Option<((String, String), SocketAddr)> {
    if !line.contains(" listening ") {
        return None;
    }
    let field = |name: &str| {
        let rest = line.split(&format!(" {name}=")).nth(1)?;
        Some(rest.split(' ').next()?.trim_matches('"').to_owned())
    };
    let addr = field("bound")?.parse().ok()?;
    Some(((field("protocol")?, field("listener")?), addr))
}

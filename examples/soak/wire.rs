//! Just enough IMAP and SMTP client to load the server: connections from a chosen
//! loopback source address, TLS to the test CA, line reads with a time limit.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;

/// Longest wait for any one reply: a server that stops answering is an error, not a hang.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(60);

pub fn tls_config(ca: &CertificateDer<'static>) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone())?;
    Ok(Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}

/// 127.0.`net`.`host`: the loopback address a group of clients comes from.
pub fn source(net: u8, host: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, net, (host % 250 + 1) as u8)
}

pub async fn connect_from(src: Ipv4Addr, dst: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(IpAddr::V4(src), 0))?;
    let tcp = socket.connect(dst).await?;
    tcp.set_nodelay(true)?;
    Ok(tcp)
}

pub async fn tls(
    tcp: TcpStream,
    config: &Arc<rustls::ClientConfig>,
) -> anyhow::Result<TlsStream<TcpStream>> {
    let connector = tokio_rustls::TlsConnector::from(config.clone());
    let name = ServerName::try_from("localhost")?;
    Ok(
        tokio::time::timeout(REPLY_TIMEOUT, connector.connect(name, tcp))
            .await
            .context("TLS handshake timed out")??,
    )
}

pub fn xoauth2(address: &str, token: &str) -> String {
    B64.encode(format!("user={address}\x01auth=Bearer {token}\x01\x01"))
}

/// One TLS connection read line by line.
pub struct Lines {
    io: BufReader<TlsStream<TcpStream>>,
    buf: Vec<u8>,
}

impl Lines {
    pub fn new(tls: TlsStream<TcpStream>) -> Self {
        Lines {
            // Small: ten thousand of these are held at once.
            io: BufReader::with_capacity(2048, tls),
            buf: Vec::new(),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        let io = self.io.get_mut();
        tokio::time::timeout(REPLY_TIMEOUT, async {
            io.write_all(bytes).await?;
            io.flush().await
        })
        .await
        .context("write timed out")??;
        Ok(())
    }

    /// The next line, CRLF included; `limit` bounds the wait.
    pub async fn line_within(&mut self, limit: Duration) -> anyhow::Result<String> {
        self.buf.clear();
        let n = tokio::time::timeout(limit, self.io.read_until(b'\n', &mut self.buf))
            .await
            .context("no reply in time")??;
        anyhow::ensure!(n > 0, "connection closed by the server");
        Ok(String::from_utf8_lossy(&self.buf).into_owned())
    }

    pub async fn line(&mut self) -> anyhow::Result<String> {
        self.line_within(REPLY_TIMEOUT).await
    }

    /// IMAP: every line through the tagged one, which must be OK.
    pub async fn imap(&mut self, tag: &str, command: &str) -> anyhow::Result<Vec<String>> {
        self.send(format!("{tag} {command}\r\n").as_bytes()).await?;
        self.imap_until(tag, command).await
    }

    pub async fn imap_until(&mut self, tag: &str, what: &str) -> anyhow::Result<Vec<String>> {
        let mut lines = Vec::new();
        let prefix = format!("{tag} ");
        for _ in 0..100_000 {
            let l = self.line().await?;
            if l.starts_with(&prefix) {
                anyhow::ensure!(
                    l[prefix.len()..].starts_with("OK"),
                    "{what}: {}",
                    l.trim_end()
                );
                lines.push(l);
                return Ok(lines);
            }
            // LOGOUT is answered with BYE before its OK; anywhere else BYE is the end.
            if l.starts_with("* BYE") && what != "LOGOUT" {
                anyhow::bail!("{what}: {}", l.trim_end());
            }
            lines.push(l);
        }
        anyhow::bail!("{what}: reply too long")
    }

    /// IMAP APPEND of `body` (synchronizing literal).
    pub async fn append(&mut self, tag: &str, body: &str) -> anyhow::Result<()> {
        self.send(format!("{tag} APPEND INBOX {{{}}}\r\n", body.len()).as_bytes())
            .await?;
        let l = self.line().await?;
        anyhow::ensure!(l.starts_with('+'), "APPEND: {}", l.trim_end());
        self.send(body.as_bytes()).await?;
        self.send(b"\r\n").await?;
        self.imap_until(tag, "APPEND").await.map(|_| ())
    }

    /// SMTP: one command, its (possibly multi-line) reply.
    pub async fn smtp(&mut self, command: &str) -> anyhow::Result<(u16, String)> {
        self.send(format!("{command}\r\n").as_bytes()).await?;
        self.smtp_reply().await
    }

    pub async fn smtp_reply(&mut self) -> anyhow::Result<(u16, String)> {
        let mut text = String::new();
        for _ in 0..100 {
            let l = self.line().await?;
            text.push_str(&l);
            if l.as_bytes().get(3) != Some(&b'-') {
                let code = l.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
                return Ok((code, text));
            }
        }
        anyhow::bail!("SMTP reply too long")
    }

    /// SMTP: `command` must get `want`.
    pub async fn smtp_expect(&mut self, command: &str, want: u16) -> anyhow::Result<()> {
        let (code, text) = self.smtp(command).await?;
        anyhow::ensure!(
            code == want,
            "{}: {}",
            command.split(' ').next().unwrap_or(""),
            text.trim_end()
        );
        Ok(())
    }
}

/// An authenticated IMAP session over implicit TLS.
pub async fn imap_login(
    src: Ipv4Addr,
    addr: SocketAddr,
    tls_config: &Arc<rustls::ClientConfig>,
    user: &str,
    token: &str,
) -> anyhow::Result<Lines> {
    let tcp = connect_from(src, addr).await?;
    let mut c = Lines::new(tls(tcp, tls_config).await?);
    let greeting = c.line().await?;
    anyhow::ensure!(greeting.starts_with("* OK"), "greeting: {greeting}");
    c.imap(
        "a",
        &format!("AUTHENTICATE XOAUTH2 {}", xoauth2(user, token)),
    )
    .await?;
    Ok(c)
}

/// An authenticated SMTP submission session over implicit TLS.
pub async fn smtp_login(
    src: Ipv4Addr,
    addr: SocketAddr,
    tls_config: &Arc<rustls::ClientConfig>,
    user: &str,
    token: &str,
) -> anyhow::Result<Lines> {
    let tcp = connect_from(src, addr).await?;
    let mut c = Lines::new(tls(tcp, tls_config).await?);
    let (code, text) = c.smtp_reply().await?;
    anyhow::ensure!(code == 220, "greeting: {text}");
    c.smtp_expect("EHLO soak.test", 250).await?;
    c.smtp_expect(&format!("AUTH XOAUTH2 {}", xoauth2(user, token)), 235)
        .await?;
    Ok(c)
}

/// One message from `from` to every address of `to` (at most the server's 100).
pub async fn submit(c: &mut Lines, from: &str, to: &[String], body: &str) -> anyhow::Result<()> {
    c.smtp_expect(&format!("MAIL FROM:<{from}>"), 250).await?;
    for rcpt in to {
        c.smtp_expect(&format!("RCPT TO:<{rcpt}>"), 250).await?;
    }
    c.smtp_expect("DATA", 354).await?;
    c.send(body.as_bytes()).await?;
    let (code, text) = c.smtp(".").await?;
    anyhow::ensure!(code == 250, "end of DATA: {}", text.trim_end());
    Ok(())
}

/// A small clinical-looking message; `body_size` rounds down to whole lines.
pub fn message(from: &str, to: &str, subject: &str, body_size: usize) -> String {
    let mut m = format!(
        "From: <{from}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n\
         Date: Tue, 01 Dec 2026 10:00:00 +0100\r\nMessage-ID: <{}.soak@h.mssante.fr>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n",
        rand::random::<u64>()
    );
    let line = "Compte rendu numero. Examen clinique sans particularite notable.\r\n";
    while m.len() + line.len() <= body_size {
        m.push_str(line);
    }
    m
}

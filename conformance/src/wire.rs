//! A line-oriented client for IMAP and SMTP that writes down every line exchanged, so
//! that a conformance verdict always comes with the evidence for it.
//!
//! Secrets (tokens, SASL responses that carry them) never reach the transcript: the
//! caller says what to show instead, and any known token met in a server line is masked.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

use anyhow::{Context as _, anyhow, bail};
use rustls::ClientConfig;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Longest line accepted from a server under test.
const MAX_LINE: usize = 64 * 1024;

/// Who said a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Client,
    Server,
    /// A remark of the runner (TLS handshake, decoded challenge, timeout).
    Note,
}

#[derive(Debug, Clone, Serialize)]
pub struct Line {
    /// Milliseconds since the case started.
    pub at_ms: u64,
    pub direction: Direction,
    pub text: String,
}

/// The transcript of one case, shared by the connections the case opens.
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<Mutex<RecorderInner>>,
}

struct RecorderInner {
    started: Instant,
    lines: Vec<Line>,
    secrets: Vec<String>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    pub fn new() -> Self {
        Recorder {
            inner: Arc::new(Mutex::new(RecorderInner {
                started: Instant::now(),
                lines: Vec::new(),
                secrets: Vec::new(),
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RecorderInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Masks `secret` wherever it appears in later lines.
    pub fn secret(&self, secret: &str) {
        if !secret.is_empty() {
            self.lock().secrets.push(secret.to_owned());
        }
    }

    pub fn record(&self, direction: Direction, text: &str) {
        let mut inner = self.lock();
        let mut text = text.to_owned();
        for s in &inner.secrets {
            text = text.replace(s.as_str(), "<token redacted>");
        }
        let at_ms = u64::try_from(inner.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        inner.lines.push(Line {
            at_ms,
            direction,
            text,
        });
    }

    pub fn note(&self, text: &str) {
        self.record(Direction::Note, text);
    }

    pub fn lines(&self) -> Vec<Line> {
        self.lock().lines.clone()
    }
}

/// How to reach and trust the server under test.
#[derive(Clone)]
pub struct Endpoint {
    /// `host:port` as given by the operator.
    pub address: String,
    /// Name sent in SNI and checked in the server certificate.
    pub server_name: ServerName<'static>,
}

impl Endpoint {
    pub fn parse(address: &str, server_name: Option<&str>) -> anyhow::Result<Self> {
        let (host, port) = address
            .rsplit_once(':')
            .ok_or_else(|| anyhow!("`{address}` is not HOST:PORT"))?;
        port.parse::<u16>()
            .map_err(|_| anyhow!("`{address}`: bad port"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = server_name.unwrap_or(host);
        let server_name = ServerName::try_from(name.to_owned())
            .map_err(|_| anyhow!("`{name}` is not a valid TLS server name"))?;
        Ok(Endpoint {
            address: address.to_owned(),
            server_name,
        })
    }

    /// The host part, for tools (python, openssl) that take host and port apart.
    pub fn host_port(&self) -> (String, String) {
        let (h, p) = self.address.rsplit_once(':').unwrap_or((&self.address, ""));
        (
            h.trim_start_matches('[').trim_end_matches(']').to_owned(),
            p.to_owned(),
        )
    }
}

/// Accepts any server certificate: used only when the operator gave no `--ca`, and said
/// so in the report.
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A TLS client configuration: server verified against `ca` (or not at all), with an
/// optional client certificate chain and key.
pub fn client_config(
    ca: Option<&Path>,
    client: Option<(&Path, &Path)>,
) -> anyhow::Result<Arc<ClientConfig>> {
    let provider = crate::tls::provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("TLS versions")?;
    let builder = match ca {
        Some(ca) => {
            let roots = crate::tls::root_store(ca)
                .with_context(|| format!("reading the CA bundle {}", ca.display()))?;
            builder.with_root_certificates(roots)
        }
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider))),
    };
    let config = match client {
        Some((cert, key)) => {
            let chain = crate::tls::load_certificates(cert)
                .with_context(|| format!("reading the client certificate {}", cert.display()))?;
            let key = crate::tls::load_private_key(key)
                .with_context(|| format!("reading the client key {}", key.display()))?;
            builder
                .with_client_auth_cert(chain, key)
                .context("client certificate and key do not match")?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// One connection to the server under test.
pub struct Wire {
    stream: Option<Stream>,
    buf: Vec<u8>,
    rec: Recorder,
    timeout: Duration,
    endpoint: Endpoint,
}

impl Wire {
    /// Opens TCP, then TLS at once when `tls` is given (implicit TLS ports).
    pub async fn connect(
        endpoint: &Endpoint,
        tls: Option<&Arc<ClientConfig>>,
        rec: &Recorder,
        timeout: Duration,
    ) -> anyhow::Result<Wire> {
        let tcp = tokio::time::timeout(timeout, TcpStream::connect(&endpoint.address))
            .await
            .map_err(|_| anyhow!("connecting to {}: timed out", endpoint.address))?
            .with_context(|| format!("connecting to {}", endpoint.address))?;
        let peer: Option<SocketAddr> = tcp.peer_addr().ok();
        rec.note(&format!(
            "TCP connected to {}{}",
            endpoint.address,
            peer.map(|p| format!(" ({p})")).unwrap_or_default()
        ));
        let mut wire = Wire {
            stream: Some(Stream::Plain(tcp)),
            buf: Vec::new(),
            rec: rec.clone(),
            timeout,
            endpoint: endpoint.clone(),
        };
        if let Some(config) = tls {
            wire.handshake(config).await?;
        }
        Ok(wire)
    }

    /// TLS over the current plain connection (after STARTTLS was accepted).
    pub async fn handshake(&mut self, config: &Arc<ClientConfig>) -> anyhow::Result<()> {
        let Some(Stream::Plain(tcp)) = self.stream.take() else {
            bail!("TLS is already active");
        };
        self.buf.clear();
        let connector = TlsConnector::from(config.clone());
        let tls = tokio::time::timeout(
            self.timeout,
            connector.connect(self.endpoint.server_name.clone(), tcp),
        )
        .await
        .map_err(|_| anyhow!("TLS handshake timed out"))?;
        match tls {
            Ok(tls) => {
                let (_, conn) = tls.get_ref();
                self.rec.note(&format!(
                    "TLS established: {:?}, {:?}",
                    conn.protocol_version()
                        .map(|v| format!("{v:?}"))
                        .unwrap_or_default(),
                    conn.negotiated_cipher_suite()
                        .map(|s| format!("{:?}", s.suite()))
                        .unwrap_or_default()
                ));
                self.stream = Some(Stream::Tls(Box::new(tls)));
                Ok(())
            }
            Err(e) => {
                self.rec.note(&format!("TLS handshake failed: {e}"));
                Err(anyhow!("TLS handshake failed: {e}"))
            }
        }
    }

    /// Sends `line` (CRLF added) and records it as is.
    pub async fn send(&mut self, line: &str) -> anyhow::Result<()> {
        self.send_shown(line, line).await
    }

    /// Sends `line` but records `shown` (the line with its secret part described).
    pub async fn send_shown(&mut self, line: &str, shown: &str) -> anyhow::Result<()> {
        self.rec.record(Direction::Client, shown);
        let mut bytes = Vec::with_capacity(line.len() + 2);
        bytes.extend_from_slice(line.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        let write = async {
            match self.stream.as_mut() {
                Some(Stream::Plain(s)) => {
                    s.write_all(&bytes).await?;
                    s.flush().await
                }
                Some(Stream::Tls(s)) => {
                    s.write_all(&bytes).await?;
                    s.flush().await
                }
                None => Err(std::io::Error::other("connection closed")),
            }
        };
        tokio::time::timeout(self.timeout, write)
            .await
            .map_err(|_| anyhow!("write timed out"))?
            .context("writing to the server")
    }

    /// Reads one line (without CRLF), or `None` when the server closed the connection.
    pub async fn read_line_opt(&mut self, wait: Duration) -> anyhow::Result<Option<String>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..end + 2).take(end).collect();
                let text = String::from_utf8_lossy(&line).into_owned();
                self.rec.record(Direction::Server, &text);
                return Ok(Some(text));
            }
            if self.buf.len() > MAX_LINE {
                bail!("the server sent a line longer than {MAX_LINE} bytes");
            }
            let mut chunk = [0u8; 4096];
            let read = async {
                match self.stream.as_mut() {
                    Some(Stream::Plain(s)) => s.read(&mut chunk).await,
                    Some(Stream::Tls(s)) => s.read(&mut chunk).await,
                    None => Ok(0),
                }
            };
            let n = match tokio::time::timeout_at(deadline, read).await {
                Err(_) => {
                    self.rec
                        .note(&format!("no answer within {} s", wait.as_secs_f32()));
                    bail!("no answer from the server within {} s", wait.as_secs_f32());
                }
                Ok(Err(e)) => {
                    self.rec.note(&format!("connection error: {e}"));
                    return Ok(None);
                }
                Ok(Ok(n)) => n,
            };
            if n == 0 {
                if !self.buf.is_empty() {
                    let text = String::from_utf8_lossy(&self.buf).into_owned();
                    self.buf.clear();
                    self.rec.record(Direction::Server, &text);
                }
                self.rec.note("connection closed by the server");
                return Ok(None);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// One line; a closed connection is an error.
    pub async fn read_line(&mut self) -> anyhow::Result<String> {
        self.read_line_opt(self.timeout)
            .await?
            .ok_or_else(|| anyhow!("the server closed the connection"))
    }

    /// IMAP: lines up to the tagged response for `tag`; returns (untagged and
    /// continuation lines, tagged line).
    pub async fn imap_tagged(&mut self, tag: &str) -> anyhow::Result<(Vec<String>, String)> {
        let mut other = Vec::new();
        let prefix = format!("{tag} ");
        loop {
            let line = self.read_line().await?;
            if line.starts_with(&prefix) {
                return Ok((other, line));
            }
            other.push(line);
        }
    }

    /// SMTP: one (possibly multi-line) reply: code and the text of each line.
    pub async fn smtp_reply(&mut self) -> anyhow::Result<(u16, Vec<String>)> {
        let mut texts = Vec::new();
        loop {
            let line = self.read_line().await?;
            let code = line
                .get(..3)
                .and_then(|c| c.parse::<u16>().ok())
                .ok_or_else(|| anyhow!("not an SMTP reply: {line:?}"))?;
            let more = line.as_bytes().get(3) == Some(&b'-');
            texts.push(line.get(4..).unwrap_or("").to_owned());
            if !more {
                return Ok((code, texts));
            }
        }
    }

    pub fn recorder(&self) -> &Recorder {
        &self.rec
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_tokens_never_reach_the_transcript() {
        let rec = Recorder::new();
        rec.secret("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln");
        rec.record(
            Direction::Server,
            "* BAD token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln echoed",
        );
        let lines = rec.lines();
        assert_eq!(lines[0].text, "* BAD token <token redacted> echoed");
        assert_eq!(lines[0].direction, Direction::Server);
    }

    #[test]
    fn endpoints_take_host_and_port_apart() {
        let e = Endpoint::parse("[::1]:993", None).unwrap();
        assert_eq!(e.host_port(), ("::1".to_owned(), "993".to_owned()));
        assert!(Endpoint::parse("mail.example", None).is_err());
        assert!(Endpoint::parse("mail.example:imaps", None).is_err());
    }
}

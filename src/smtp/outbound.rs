//! SMTP client towards another operator of the trust space: STARTTLS presenting our
//! certificate, the peer's certificate checked against the trust list for the domain.

use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::io::{Wire, WireError};
use super::trust::TrustList;
use crate::net::{Link, Stream};
use crate::store::QueuedRecipient;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_REPLY_LINE: usize = 4096;
const MAX_REPLY_LINES: usize = 128;

/// What happened to one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The remote answered 250 to the data: it has the message.
    Delivered,
    /// A 5xx: trying again will not help. (status, diagnostic)
    Permanent(String, String),
    /// Anything else: try later.
    Temporary(String),
}

/// One message for one domain.
pub struct Envelope<'a> {
    pub domain: &'a str,
    pub sender: &'a str,
    pub recipients: &'a [QueuedRecipient],
    pub envid: Option<&'a str>,
    pub ret_full: bool,
    pub body: &'a [u8],
}

/// How to reach other operators.
pub struct Client {
    pub hostname: String,
    pub tls: Arc<ClientConfig>,
    pub trust: Arc<TrustList>,
    pub routes: std::collections::BTreeMap<String, String>,
    /// Replies to commands, and room to write (`smtp.queue_reply_timeout`).
    pub reply_timeout: Duration,
    /// The reply to the final dot (`smtp.queue_data_timeout`).
    pub data_timeout: Duration,
    /// Name servers for MX lookups; empty: the system's.
    pub dns_servers: Vec<std::net::SocketAddr>,
}

/// A failure for every recipient still undecided.
struct Failure {
    permanent: Option<String>,
    reason: String,
}

impl Failure {
    fn temporary(reason: impl Into<String>) -> Self {
        Failure {
            permanent: None,
            reason: reason.into(),
        }
    }

    fn from_reply(r: &Reply, during: &str) -> Self {
        let reason = format!("{during}: {}", r.text());
        if r.code >= 500 {
            Failure {
                permanent: Some(r.status()),
                reason,
            }
        } else {
            Failure::temporary(reason)
        }
    }
}

impl From<WireError> for Failure {
    fn from(e: WireError) -> Self {
        Failure::temporary(format!("connection to the remote server lost: {e}"))
    }
}

/// A reply: its code and lines (without the code).
struct Reply {
    code: u16,
    lines: Vec<String>,
}

impl Reply {
    fn text(&self) -> String {
        format!("{} {}", self.code, self.lines.join(" "))
    }

    /// The enhanced status code if the server gave one, else one derived from the code.
    fn status(&self) -> String {
        let first = self.lines.first().map(String::as_str).unwrap_or_default();
        let word = first.split_whitespace().next().unwrap_or_default();
        let looks = word.split('.').count() == 3
            && word
                .split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        if looks {
            word.to_owned()
        } else {
            format!("{}.0.0", self.code / 100)
        }
    }

    fn has(&self, keyword: &str) -> bool {
        self.lines.iter().any(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|w| w.eq_ignore_ascii_case(keyword))
        })
    }
}

impl Client {
    /// Tries the message once; every recipient gets an outcome.
    pub async fn send(&self, envelope: &Envelope<'_>) -> Vec<(i64, Outcome)> {
        let mut outcomes: Vec<(i64, Option<Outcome>)> =
            envelope.recipients.iter().map(|r| (r.id, None)).collect();
        let failure = self.session(envelope, &mut outcomes).await.err();
        outcomes
            .into_iter()
            .map(|(id, o)| {
                let o = o.unwrap_or_else(|| match &failure {
                    Some(Failure {
                        permanent: Some(status),
                        reason,
                    }) => Outcome::Permanent(status.clone(), reason.clone()),
                    Some(Failure { reason, .. }) => Outcome::Temporary(reason.clone()),
                    None => Outcome::Temporary("no answer for this recipient".into()),
                });
                (id, o)
            })
            .collect()
    }

    async fn next_hops(&self, domain: &str) -> Result<Vec<(String, u16)>, Failure> {
        if let Some(route) = self.routes.get(domain) {
            if let Some((host, port)) = route.rsplit_once(':')
                && let Ok(port) = port.parse()
            {
                let host = host.trim_start_matches('[').trim_end_matches(']');
                return Ok(vec![(host.to_owned(), port)]);
            }
            return Err(Failure::temporary(format!("bad route `{route}`")));
        }
        let resolver = self.resolver()?;
        match resolver.mx_lookup(domain).await {
            Ok(mx) => {
                let mut hosts: Vec<(u16, String)> = mx
                    .iter()
                    .map(|r| {
                        (
                            r.preference(),
                            r.exchange().to_utf8().trim_end_matches('.').to_owned(),
                        )
                    })
                    .collect();
                hosts.sort();
                Ok(hosts.into_iter().map(|(_, h)| (h, 25)).collect())
            }
            // RFC 5321 §5.1: no MX record, the domain itself is the mail server. Only an
            // answer that says so counts: hickory reports SERVFAIL and REFUSED as "no
            // records" too, and they are the name server failing, to be tried again.
            Err(e) if no_mx(&e) => Ok(vec![(domain.to_owned(), 25)]),
            Err(e) => Err(Failure::temporary(format!("MX lookup for {domain}: {e}"))),
        }
    }

    fn resolver(&self) -> Result<hickory_resolver::TokioResolver, Failure> {
        use hickory_resolver::config::{NameServerConfig, ResolverConfig};
        use hickory_resolver::proto::xfer::Protocol;
        if self.dns_servers.is_empty() {
            return Ok(hickory_resolver::TokioResolver::builder_tokio()
                .map_err(|e| Failure::temporary(format!("DNS resolver: {e}")))?
                .build());
        }
        let servers: Vec<NameServerConfig> = self
            .dns_servers
            .iter()
            .flat_map(|a| {
                [
                    NameServerConfig::new(*a, Protocol::Udp),
                    NameServerConfig::new(*a, Protocol::Tcp),
                ]
            })
            .collect();
        let config = ResolverConfig::from_parts(None, vec![], servers);
        Ok(hickory_resolver::TokioResolver::builder_with_config(
            config,
            hickory_resolver::name_server::TokioConnectionProvider::default(),
        )
        .build())
    }

    async fn session(
        &self,
        e: &Envelope<'_>,
        outcomes: &mut [(i64, Option<Outcome>)],
    ) -> Result<(), Failure> {
        let hops = self.next_hops(e.domain).await?;
        let mut last = Failure::temporary(format!("no server for {}", e.domain));
        for (host, port) in hops {
            let tcp = match tokio::time::timeout(
                CONNECT_TIMEOUT,
                TcpStream::connect((host.as_str(), port)),
            )
            .await
            {
                Ok(Ok(t)) => t,
                Ok(Err(err)) => {
                    last = Failure::temporary(format!("cannot connect to {host}:{port}: {err}"));
                    continue;
                }
                Err(_) => {
                    last = Failure::temporary(format!("timeout connecting to {host}:{port}"));
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            return self.transaction(tcp, &host, e, outcomes).await;
        }
        Err(last)
    }

    async fn transaction(
        &self,
        tcp: TcpStream,
        host: &str,
        e: &Envelope<'_>,
        outcomes: &mut [(i64, Option<Outcome>)],
    ) -> Result<(), Failure> {
        let mut wire = Wire::new(Link::new(Stream::Plain(tcp), self.reply_timeout));
        let greeting = read_reply(&mut wire, self.reply_timeout).await?;
        if greeting.code != 220 {
            return Err(Failure::from_reply(&greeting, "greeting"));
        }
        let ehlo = self
            .command(&mut wire, &format!("EHLO {}", self.hostname))
            .await?;
        if ehlo.code != 250 {
            return Err(Failure::from_reply(&ehlo, "EHLO"));
        }
        if !ehlo.has("STARTTLS") {
            return Err(Failure::temporary(format!(
                "{host} does not offer STARTTLS"
            )));
        }
        let ready = self.command(&mut wire, "STARTTLS").await?;
        if ready.code != 220 {
            return Err(Failure::from_reply(&ready, "STARTTLS"));
        }
        let Some(tcp) = wire.link.take_plain() else {
            return Err(Failure::temporary("connection lost"));
        };
        let name = ServerName::try_from(host.to_owned())
            .map_err(|_| Failure::temporary(format!("`{host}` is not a server name")))?;
        let tls = tokio::time::timeout(
            CONNECT_TIMEOUT,
            TlsConnector::from(self.tls.clone()).connect(name, tcp),
        )
        .await
        .map_err(|_| Failure::temporary("TLS handshake timed out"))?
        .map_err(|err| Failure::temporary(format!("TLS handshake with {host}: {err}")))?;
        let subject = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|der| x509_parser::parse_x509_certificate(der).ok())
            .map(|(_, cert)| crate::auth::certificate::dn_string(cert.subject()));
        let Some(subject) = subject else {
            return Err(Failure::temporary(
                "the remote server presented no certificate",
            ));
        };
        if !self.trust.allows(e.domain, &subject) {
            return Err(Failure::temporary(format!(
                "certificate {subject} of {host} is not listed for {} in the trust list",
                e.domain
            )));
        }
        wire.link.set_stream(Stream::Client(Box::new(tls)));
        wire.discard_buffered();
        let ehlo = self
            .command(&mut wire, &format!("EHLO {}", self.hostname))
            .await?;
        if ehlo.code != 250 {
            return Err(Failure::from_reply(&ehlo, "EHLO"));
        }
        let dsn = ehlo.has("DSN");
        let mut mail = format!("MAIL FROM:<{}>", e.sender);
        if ehlo.has("SIZE") {
            mail.push_str(&format!(" SIZE={}", e.body.len()));
        }
        if ehlo.has("8BITMIME") {
            mail.push_str(" BODY=8BITMIME");
        }
        if dsn {
            mail.push_str(if e.ret_full { " RET=FULL" } else { " RET=HDRS" });
            if let Some(envid) = e.envid {
                mail.push_str(&format!(" ENVID={envid}"));
            }
        }
        let r = self.command(&mut wire, &mail).await?;
        if r.code != 250 {
            return Err(Failure::from_reply(&r, "MAIL FROM"));
        }
        let mut accepted = Vec::new();
        for (i, rcpt) in e.recipients.iter().enumerate() {
            let mut line = format!("RCPT TO:<{}>", rcpt.address);
            if dsn {
                if let Some(n) = &rcpt.notify {
                    line.push_str(&format!(" NOTIFY={n}"));
                }
                if let Some(o) = &rcpt.orcpt {
                    line.push_str(&format!(" ORCPT={o}"));
                }
            }
            let r = self.command(&mut wire, &line).await?;
            match r.code {
                250 | 251 => accepted.push(i),
                c if c >= 500 => {
                    outcomes[i].1 = Some(Outcome::Permanent(
                        r.status(),
                        format!("RCPT TO: {}", r.text()),
                    ))
                }
                _ => outcomes[i].1 = Some(Outcome::Temporary(format!("RCPT TO: {}", r.text()))),
            }
        }
        if accepted.is_empty() {
            let _ = self.command(&mut wire, "QUIT").await;
            return Ok(());
        }
        let r = self.command(&mut wire, "DATA").await?;
        if r.code != 354 {
            let f = Failure::from_reply(&r, "DATA");
            settle(outcomes, &accepted, &f);
            return Ok(());
        }
        wire.queue(&dot_stuff(e.body));
        wire.flush().await?;
        let r = read_reply(&mut wire, self.data_timeout).await?;
        if r.code == 250 {
            for i in &accepted {
                outcomes[*i].1 = Some(Outcome::Delivered);
            }
        } else {
            settle(outcomes, &accepted, &Failure::from_reply(&r, "end of data"));
        }
        // The outcome is known: it is recorded now, while QUIT and its reply go on beside
        // it, so that a crash or a shutdown during that exchange cannot make us send
        // again what the peer has already taken.
        let timeout = self.reply_timeout;
        tokio::spawn(async move {
            wire.queue(b"QUIT\r\n");
            let _ = read_reply(&mut wire, timeout).await;
            wire.close().await;
        });
        Ok(())
    }
}

fn settle(outcomes: &mut [(i64, Option<Outcome>)], which: &[usize], f: &Failure) {
    for i in which {
        outcomes[*i].1 = Some(match &f.permanent {
            Some(status) => Outcome::Permanent(status.clone(), f.reason.clone()),
            None => Outcome::Temporary(f.reason.clone()),
        });
    }
}

impl Client {
    async fn command(&self, wire: &mut Wire, line: &str) -> Result<Reply, WireError> {
        wire.queue(line.as_bytes());
        wire.queue(b"\r\n");
        read_reply(wire, self.reply_timeout).await
    }
}

/// Whether a failed MX lookup is an answer that the domain has no MX record.
fn no_mx(e: &hickory_resolver::ResolveError) -> bool {
    use hickory_resolver::proto::ProtoErrorKind;
    use hickory_resolver::proto::op::ResponseCode;
    let Some(proto) = e.proto() else {
        return false;
    };
    matches!(
        proto.kind(),
        ProtoErrorKind::NoRecordsFound { response_code, .. }
            if matches!(response_code, ResponseCode::NoError | ResponseCode::NXDomain)
    )
}

async fn read_reply(wire: &mut Wire, timeout: Duration) -> Result<Reply, WireError> {
    let mut lines = Vec::new();
    loop {
        let mut line = Vec::new();
        wire.read_line(&mut line, MAX_REPLY_LINE, timeout).await?;
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end();
        let code = text
            .get(..3)
            .and_then(|c| c.parse::<u16>().ok())
            .filter(|c| (200..600).contains(c))
            .ok_or_else(|| WireError::Io(std::io::Error::other("malformed reply")))?;
        let more = text.as_bytes().get(3) == Some(&b'-');
        lines.push(text.get(4..).unwrap_or_default().to_owned());
        if !more {
            return Ok(Reply { code, lines });
        }
        if lines.len() >= MAX_REPLY_LINES {
            return Err(WireError::Io(std::io::Error::other("reply too long")));
        }
    }
}

/// The message as DATA sends it: canonical CRLF line endings, leading dots doubled,
/// CRLF before the final dot. A stored message may predate the CRLF rule or come from
/// IMAP APPEND; any bare CR or LF becomes CRLF here, so the next operator never sees a
/// line ending it could read differently from us (RFC 5321 §2.3.8).
fn dot_stuff(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + body.len() / 64 + 8);
    let mut at_line_start = true;
    let mut bytes = body.iter().copied().peekable();
    while let Some(b) = bytes.next() {
        match b {
            b'\r' | b'\n' => {
                if b == b'\r' {
                    bytes.next_if_eq(&b'\n');
                }
                out.extend_from_slice(b"\r\n");
                at_line_start = true;
            }
            _ => {
                if at_line_start && b == b'.' {
                    out.push(b'.');
                }
                out.push(b);
                at_line_start = false;
            }
        }
    }
    if !at_line_start {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stuffing() {
        assert_eq!(
            dot_stuff(b".a\r\nb\r\n..c\r\n"),
            b"..a\r\nb\r\n...c\r\n.\r\n"
        );
        assert_eq!(dot_stuff(b"x"), b"x\r\n.\r\n");
        assert_eq!(dot_stuff(b""), b".\r\n");
    }

    /// Bare CR and LF leave as CRLF, and a dot after any of them is stuffed.
    #[test]
    fn bare_line_endings_leave_canonical() {
        assert_eq!(
            dot_stuff(b"From: a\nX-Injected: yes\r\n\r\nA\r.\r\nB\n.\nC\r\r\n.\r"),
            b"From: a\r\nX-Injected: yes\r\n\r\nA\r\n..\r\nB\r\n..\r\nC\r\n\r\n..\r\n.\r\n"
        );
    }

    #[test]
    fn status_codes() {
        let r = Reply {
            code: 550,
            lines: vec!["5.1.1 no such user".into()],
        };
        assert_eq!(r.status(), "5.1.1");
        let r = Reply {
            code: 554,
            lines: vec!["no".into()],
        };
        assert_eq!(r.status(), "5.0.0");
    }
}

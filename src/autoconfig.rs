//! Client autoconfiguration (`[autoconfig] listen`): a mail client given only an address
//! finds the IMAP and SMTP servers, ports, TLS modes and authentication methods itself.
//!
//! - Thunderbird's autoconfig (`GET /mail/config-v1.1.xml`, what it asks
//!   `autoconfig.<domain>`, and `GET /.well-known/autoconfig/mail/config-v1.1.xml`, what
//!   it asks `<domain>`): each listener offered twice, with `OAuth2` (a Pro Santé Connect
//!   token) and with `TLS-client-cert` (an IGC-Santé certificate), plus the PSC issuer
//!   in `<oAuth2>` for the clients that read it;
//! - Microsoft's Autodiscover POX (`POST /autodiscover/autodiscover.xml`): IMAP and SMTP
//!   settings for the address asked about, when its domain is hosted here.
//!
//! Everything comes from the configuration and the listeners as bound: `[server]
//! hostname` and `domains`, the port of each listener's first address (a listener on
//! 0.0.0.0:993 is announced as hostname:993; one on port 0 by the port it got).
//! HTTPS only, with the `[tls]` certificate in force (reloaded on SIGHUP with the IMAP
//! and SMTP listeners'; no client certificate asked: clients fetch this before they
//! have an account).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::context::Context;
use crate::tls::CertificateInForce;
use crate::web::{response, text};

/// Clients ask once when an account is set up: a few at a time is plenty.
const MAX_CONNECTIONS: usize = 64;
/// An Autodiscover request is a few hundred bytes.
const MAX_REQUEST: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum AutoconfigError {
    #[error(transparent)]
    Bind(#[from] crate::web::BindError),
    #[error("autoconfig listener TLS: {0}")]
    Tls(String),
}

/// The ports clients are told, from the listeners as bound (None: that listener is off).
#[derive(Debug, Clone, Copy, Default)]
pub struct Ports {
    pub imap_tls: Option<u16>,
    pub imap_starttls: Option<u16>,
    pub submission_tls: Option<u16>,
    pub submission_starttls: Option<u16>,
}

/// Binds `[autoconfig] listen` (if set) and serves until `stop`; returns the bound
/// address.
pub async fn start(
    context: &Context,
    ports: Ports,
    stop: CancellationToken,
    tasks: &TaskTracker,
) -> Result<Option<SocketAddr>, AutoconfigError> {
    let Some(addr) = context.config.autoconfig.listen else {
        return Ok(None);
    };
    let config = context.config.clone();
    let bound = crate::web::serve(
        addr,
        "autoconfig",
        Some(acceptor(context)?),
        MAX_CONNECTIONS,
        stop,
        tasks,
        move |req| {
            let config = config.clone();
            async move { route(&config, ports, req).await }
        },
    )
    .await?;
    tracing::info!(%bound, "autoconfig listener: Thunderbird autoconfig, Autodiscover");
    Ok(Some(bound))
}

/// Each request is logged (method, path, status; never the query, which may carry the
/// address): an operator sees which clients found their settings here.
async fn route(config: &Config, ports: Ports, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_ascii_lowercase();
    let method = req.method().clone();
    let response = answer(config, ports, req, &path).await;
    tracing::info!(%method, path, status = response.status().as_u16(), "autoconfig request");
    response
}

async fn answer(
    config: &Config,
    ports: Ports,
    req: Request<Incoming>,
    path: &str,
) -> Response<Full<Bytes>> {
    match (req.method(), path) {
        (
            &Method::GET,
            "/mail/config-v1.1.xml" | "/.well-known/autoconfig/mail/config-v1.1.xml",
        ) => xml(StatusCode::OK, thunderbird(config, ports)),
        (&Method::POST, "/autodiscover/autodiscover.xml") => {
            let Some(body) = crate::web::body(req, MAX_REQUEST).await else {
                return text(StatusCode::PAYLOAD_TOO_LARGE, "request too large\n");
            };
            let address = requested_address(&body);
            let hosted = address
                .as_deref()
                .and_then(|a| a.rsplit_once('@'))
                .is_some_and(|(_, domain)| config.is_local_domain(domain));
            match address {
                Some(address) if hosted => {
                    xml(StatusCode::OK, autodiscover(config, ports, &address))
                }
                _ => xml(StatusCode::OK, autodiscover_error()),
            }
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn xml(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    response(status, "application/xml; charset=utf-8", body)
}

/// XML text escaping for values that come from the configuration or the request.
fn escape(s: &str) -> String {
    quick_xml::escape::escape(s).into_owned()
}

/// The issuer's Keycloak endpoints (Pro Santé Connect runs Keycloak): where a client
/// that reads `<oAuth2>` sends the professional to log in.
fn oauth2(config: &Config) -> String {
    let issuer = config.psc.issuer.as_str().trim_end_matches('/');
    format!(
        "  <oAuth2>\n    <issuer>{i}</issuer>\n    <scope>openid scope_all</scope>\n    \
         <authURL>{i}/protocol/openid-connect/auth</authURL>\n    \
         <tokenURL>{i}/protocol/openid-connect/token</tokenURL>\n  </oAuth2>\n",
        i = escape(issuer)
    )
}

fn thunderbird(config: &Config, ports: Ports) -> String {
    let host = escape(&config.server.hostname);
    let mut servers = String::new();
    let offered = [
        ("incomingServer", "imap", ports.imap_tls, "SSL"),
        ("incomingServer", "imap", ports.imap_starttls, "STARTTLS"),
        ("outgoingServer", "smtp", ports.submission_tls, "SSL"),
        (
            "outgoingServer",
            "smtp",
            ports.submission_starttls,
            "STARTTLS",
        ),
    ];
    for (element, kind, port, socket) in offered {
        let Some(port) = port else { continue };
        for authentication in ["OAuth2", "TLS-client-cert"] {
            let _ = write!(
                servers,
                "    <{element} type=\"{kind}\">\n      <hostname>{host}</hostname>\n      \
                 <port>{port}</port>\n      <socketType>{socket}</socketType>\n      \
                 <username>%EMAILADDRESS%</username>\n      \
                 <authentication>{authentication}</authentication>\n    </{element}>\n"
            );
        }
    }
    let domains: String = config
        .server
        .domains
        .iter()
        .map(|d| format!("    <domain>{}</domain>\n", escape(d)))
        .collect();
    let id = escape(config.server.domains.first().map_or("", String::as_str));
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<clientConfig version=\"1.1\">\n  \
         <emailProvider id=\"{id}\">\n{domains}    <displayName>MSSanté ({host})</displayName>\n    \
         <displayShortName>MSSanté</displayShortName>\n{servers}  </emailProvider>\n{oauth2}</clientConfig>\n",
        oauth2 = oauth2(config)
    )
}

/// The `<EMailAddress>` of an Autodiscover request.
fn requested_address(body: &[u8]) -> Option<String> {
    let mut reader = quick_xml::Reader::from_reader(body);
    let mut inside = false;
    loop {
        match reader.read_event().ok()? {
            quick_xml::events::Event::Start(e) => {
                inside = e
                    .local_name()
                    .as_ref()
                    .eq_ignore_ascii_case(b"EMailAddress");
            }
            quick_xml::events::Event::Text(t) if inside => {
                let text = t.decode().ok()?;
                let address = text.trim();
                return (!address.is_empty()).then(|| address.to_owned());
            }
            quick_xml::events::Event::End(_) => inside = false,
            quick_xml::events::Event::Eof => return None,
            _ => {}
        }
    }
}

fn autodiscover(config: &Config, ports: Ports, address: &str) -> String {
    let host = escape(&config.server.hostname);
    let login = escape(address);
    let mut protocols = String::new();
    let offered = [
        ("IMAP", ports.imap_tls, "on"),
        ("IMAP", ports.imap_starttls, "off"),
        ("SMTP", ports.submission_tls, "on"),
        ("SMTP", ports.submission_starttls, "off"),
    ];
    for (kind, port, ssl) in offered {
        let Some(port) = port else { continue };
        let encryption = if ssl == "on" { "SSL" } else { "TLS" };
        let _ = write!(
            protocols,
            "      <Protocol>\n        <Type>{kind}</Type>\n        <Server>{host}</Server>\n        \
             <Port>{port}</Port>\n        <LoginName>{login}</LoginName>\n        \
             <DomainRequired>off</DomainRequired>\n        <SPA>off</SPA>\n        \
             <SSL>{ssl}</SSL>\n        <Encryption>{encryption}</Encryption>\n        \
             <AuthRequired>on</AuthRequired>\n      </Protocol>\n"
        );
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
         <Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006\">\n  \
         <Response xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a\">\n    \
         <Account>\n      <AccountType>email</AccountType>\n      <Action>settings</Action>\n\
         {protocols}    </Account>\n  </Response>\n</Autodiscover>\n"
    )
}

/// What Autodiscover answers for an address it does not serve.
fn autodiscover_error() -> String {
    "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
     <Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006\">\n  \
     <Response>\n    <Error>\n      <ErrorCode>600</ErrorCode>\n      \
     <Message>Invalid Request</Message>\n      <DebugData>address not hosted here</DebugData>\n    \
     </Error>\n  </Response>\n</Autodiscover>\n"
        .to_owned()
}

/// HTTPS with the `[tls]` certificate in force, no client certificate asked.
fn acceptor(context: &Context) -> Result<TlsAcceptor, AutoconfigError> {
    let mut tls = rustls::ServerConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| AutoconfigError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(CertificateInForce(context.tls.clone())));
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(tls)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_of_an_autodiscover_request() {
        let request = br#"<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
  <Request>
    <EMailAddress> jean.dupont@h.mssante.fr </EMailAddress>
    <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>
  </Request>
</Autodiscover>"#;
        assert_eq!(
            requested_address(request).as_deref(),
            Some("jean.dupont@h.mssante.fr")
        );
        assert_eq!(requested_address(b"<Autodiscover/>"), None);
        assert_eq!(requested_address(b"not xml <<"), None);
    }
}

//! Client autoconfiguration as a mail client fetches it: Thunderbird's autoconfig on
//! both of its paths and Microsoft's Autodiscover, over HTTPS with the server's
//! certificate, announcing the listeners as bound with both ways to authenticate.

mod common;

use std::net::SocketAddr;

use common::smtp::*;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

async fn started(pki: &Pki) -> Instance {
    let mut o = Options::new("a.mssante.test");
    o.sections = "[autoconfig]\nlisten = \"127.0.0.1:0\"\n".into();
    Instance::start(pki, o).await
}

fn client(pki: &Pki) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .use_preconfigured_tls((*pki.client(None)).clone())
        .build()
        .unwrap()
}

/// The text of every `<tag>` in `xml`, in order.
fn all<'a>(xml: &'a str, tag: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    xml.split(&open)
        .skip(1)
        .filter_map(|rest| rest.split_once(&close).map(|(v, _)| v))
        .collect()
}

#[tokio::test]
async fn thunderbird_finds_both_ways_in_on_every_listener() {
    let pki = Pki::new();
    let a = started(&pki).await;
    let at = a.running.autoconfig.expect("autoconfig listener");
    let client = client(&pki);
    let mut documents = Vec::new();
    for path in [
        "/mail/config-v1.1.xml?emailaddress=house%40a.mssante.test",
        "/.well-known/autoconfig/mail/config-v1.1.xml",
    ] {
        let response = client
            .get(format!("https://localhost:{}{path}", at.port()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/xml")
        );
        documents.push(response.text().await.unwrap());
    }
    assert_eq!(documents[0], documents[1]);
    let xml = &documents[0];
    assert_eq!(all(xml, "domain"), ["a.mssante.test"]);
    // IMAP 993-style and STARTTLS, submission 465-style and STARTTLS, each offered with a
    // PSC token and with a client certificate.
    let ports: Vec<String> = [
        a.imap_tls(),
        a.imap_tls(),
        a.imap_starttls(),
        a.imap_starttls(),
        a.submission_tls(),
        a.submission_tls(),
        a.submission_starttls(),
        a.submission_starttls(),
    ]
    .iter()
    .map(|addr| addr.port().to_string())
    .collect();
    assert_eq!(all(xml, "port"), ports);
    assert_eq!(all(xml, "hostname"), ["mx.a.mssante.test"; 8]);
    assert_eq!(
        all(xml, "socketType"),
        [
            "SSL", "SSL", "STARTTLS", "STARTTLS", "SSL", "SSL", "STARTTLS", "STARTTLS"
        ]
    );
    assert_eq!(
        all(xml, "authentication"),
        ["OAuth2", "TLS-client-cert"].repeat(4)
    );
    assert_eq!(all(xml, "username"), ["%EMAILADDRESS%"; 8]);
    assert_eq!(
        all(xml, "issuer"),
        [a.psc.issuer().as_str().trim_end_matches('/')]
    );
    // Anything else is not found.
    let other = client
        .get(format!("https://localhost:{}/other", at.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
    a.stop().await;
}

fn autodiscover_request(address: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006\">\n\
         <Request><EMailAddress>{address}</EMailAddress>\n\
         <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>\n\
         </Request></Autodiscover>"
    )
}

#[tokio::test]
async fn autodiscover_answers_for_hosted_addresses_only() {
    let pki = Pki::new();
    let a = started(&pki).await;
    let at = a.running.autoconfig.expect("autoconfig listener");
    let client = client(&pki);
    let ask = |address: &str| {
        client
            .post(format!(
                "https://localhost:{}/Autodiscover/Autodiscover.xml",
                at.port()
            ))
            .header("content-type", "text/xml")
            .body(autodiscover_request(address))
            .send()
    };
    let xml = ask("house@a.mssante.test")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(all(&xml, "Type"), ["IMAP", "IMAP", "SMTP", "SMTP"]);
    let ports: Vec<String> = [
        a.imap_tls(),
        a.imap_starttls(),
        a.submission_tls(),
        a.submission_starttls(),
    ]
    .iter()
    .map(|addr| addr.port().to_string())
    .collect();
    assert_eq!(all(&xml, "Port"), ports);
    assert_eq!(all(&xml, "SSL"), ["on", "off", "on", "off"]);
    assert_eq!(all(&xml, "LoginName"), ["house@a.mssante.test"; 4]);
    assert_eq!(all(&xml, "Server"), ["mx.a.mssante.test"; 4]);

    let elsewhere = ask("someone@elsewhere.test")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(all(&elsewhere, "ErrorCode"), ["600"]);
    assert!(all(&elsewhere, "Protocol").is_empty());
    a.stop().await;
}

#[tokio::test]
async fn off_unless_configured() {
    let pki = Pki::new();
    let a = Instance::start(&pki, Options::new("a.mssante.test")).await;
    assert_eq!(a.running.autoconfig, None);
    a.stop().await;
}

/// The common name of the certificate a new HTTPS connection to `at` is shown.
async fn presented(pki: &Pki, at: SocketAddr) -> String {
    let tcp = TcpStream::connect(at).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let tls = TlsConnector::from(pki.client(None))
        .connect(name, tcp)
        .await
        .unwrap();
    server_cn(&tls)
}

#[tokio::test]
async fn sighup_reloads_its_certificate_with_the_mail_listeners() {
    let pki = Pki::new();
    let a = started(&pki).await;
    let at = a.running.autoconfig.expect("autoconfig listener");
    assert_eq!(presented(&pki, at).await, "localhost");

    // The operator renews the certificate in place and reloads (systemd's ExecReload).
    for ext in ["crt", "key"] {
        let renewed = pki.path(&format!("operator2.{ext}"));
        std::fs::copy(renewed, pki.path(&format!("server.{ext}"))).unwrap();
    }
    common::reload_by_sighup(&a.running.context.tls).await;

    assert_eq!(presented(&pki, at).await, "operator2.localhost");
    a.stop().await;
}

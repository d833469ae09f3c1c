//! Référentiel #1 end to end, as an operator lives it: the real `mssante` binary serves
//! IMAP, a professional logs in with a PSC token from Python's imaplib, and `jobs run --at`
//! later unpublishes and then deletes the mailbox once it has gone unused.

mod common;

use common::cli::ok;
use common::config::Setup;
use common::smtp::free_port;
use common::tools;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use mssante_conformance::psc_standin::{PscStandIn, TokenSpec};

const IDNAT: &str = "899700771191";
const ADDRESS: &str = "jean.dupont@hopital.mssante.fr";

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Stops `serve` the way an init system does, and waits for it.
struct Serving(Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

async fn serve(config: &Path, imap: SocketAddr) -> Serving {
    let child = common::cli::command(config, &["serve"]).spawn().unwrap();
    let serving = Serving(child);
    for _ in 0..200 {
        if TcpStream::connect(imap).is_ok() {
            return serving;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("mssante serve did not listen on {imap}");
}

fn imap_login(ca: &Path, port: u16, token: &str) -> String {
    let script = r#"
import imaplib, ssl, sys
ca, port, address, token = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(cafile=ca)
m = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=ctx)
typ, _ = m.authenticate("XOAUTH2", lambda _: ("user=%s\x01auth=Bearer %s\x01\x01" % (address, token)).encode())
print("AUTH", typ)
typ, data = m.select("INBOX")
print("SELECT", typ, data[0].decode())
m.logout()
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(ca)
        .arg(port.to_string())
        .args([ADDRESS, token])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "imaplib failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn events(path: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["event"].as_str().unwrap().to_owned(),
                v["address"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mailbox_used_over_imap_is_unpublished_after_61_days_and_deleted_after_366() {
    if !tools::available("python3") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    mssante_conformance::pki::generate(&certs).unwrap();
    let psc = PscStandIn::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let port = free_port();
    let imap: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut setup = Setup::new("hopital.mssante.fr");
    setup.certificate = "certs/server.crt".into();
    setup.private_key = "certs/server.key".into();
    setup.client_ca = Some("certs/ca.crt".into());
    setup.listeners.imap_tls = Some(imap.to_string());
    setup.psc = psc.config_toml("local");
    setup.sections =
        "[lifecycle]\ninterval = \"1d\"\n\n[directory]\nkind = \"file\"\npath = \"directory.jsonl\"\n"
            .into();
    let config: PathBuf = setup.write(dir.path());
    let jsonl = dir.path().join("directory.jsonl");

    let now = mssante::clock::SystemClock::now_utc();
    ok(
        &config,
        &[
            "mailbox",
            "create",
            ADDRESS,
            "--kind",
            "personal",
            "--owner",
            IDNAT,
            "--created-at",
            // Almost a year old: old enough to be unpublished later, young enough that the
            // scheduler starting with `serve` does not delete it before the login.
            &rfc3339(now - TimeDelta::days(360)),
        ],
    );

    {
        let _serving = serve(&config, imap).await;
        let token = psc.mint(&TokenSpec::valid(IDNAT));
        let ca = certs.join("ca.crt");
        let out = tokio::task::spawn_blocking(move || imap_login(&ca, port, &token))
            .await
            .unwrap();
        assert!(out.contains("AUTH OK"), "{out}");
        assert!(out.contains("SELECT OK"), "{out}");
    }

    let shown: serde_json::Value =
        serde_json::from_str(&ok(&config, &["mailbox", "show", ADDRESS, "--json"])).unwrap();
    let last: DateTime<Utc> = shown["last_authenticated_at"]
        .as_str()
        .expect("the IMAP login was recorded")
        .parse()
        .unwrap();
    assert!(last >= now - TimeDelta::minutes(1), "{shown}");
    let audit = ok(&config, &["audit", "--mailbox", ADDRESS, "--json"]);
    assert!(
        audit.contains("\"outcome\":\"success\"") && audit.contains("XOAUTH2"),
        "{audit}"
    );

    let at = |d: i64| rfc3339(last + TimeDelta::days(d) + TimeDelta::minutes(1));
    ok(&config, &["jobs", "run", "--at", &at(0)]);
    assert_eq!(events(&jsonl), [("publish".into(), ADDRESS.into())]);

    ok(&config, &["jobs", "run", "--at", &at(59)]);
    assert_eq!(
        events(&jsonl),
        [("publish".into(), ADDRESS.into())],
        "59 days without authentication is not yet 60"
    );
    ok(&config, &["jobs", "run", "--at", &at(61)]);
    let shown: serde_json::Value =
        serde_json::from_str(&ok(&config, &["mailbox", "show", ADDRESS, "--json"])).unwrap();
    assert_eq!(shown["published"], false, "{shown}");

    ok(&config, &["jobs", "run", "--at", &at(366)]);
    let out = common::cli::command(&config, &["mailbox", "show", ADDRESS])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "the mailbox is gone");
    assert_eq!(
        events(&jsonl),
        [
            ("publish".into(), ADDRESS.into()),
            ("unpublish".into(), ADDRESS.into())
        ],
        "the directory heard exactly one publication and one unpublication"
    );
    psc.shutdown().await;
}

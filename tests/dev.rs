//! `mssante dev`, the sandbox, as a newcomer uses it: the real binary as a child
//! process, the printed curl command pasted as is, `mssante dev token` from a second
//! process, and SIGTERM to stop it.

mod common;

use common::tools;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_mssante");

struct Sandbox {
    child: Child,
    /// Everything printed up to "Sandbox ready".
    banner: Vec<String>,
    rest: mpsc::Receiver<String>,
}

impl Sandbox {
    fn start(extra: &[&str]) -> Sandbox {
        let mut child = Command::new(BIN)
            .arg("dev")
            .args(["--ports-from", "0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut banner = Vec::new();
        loop {
            // A guard against a hang, not a timing assertion.
            let line = rx
                .recv_timeout(Duration::from_secs(120))
                .unwrap_or_else(|e| panic!("sandbox never got ready ({e}): {banner:#?}"));
            let ready = line.starts_with("Sandbox ready");
            banner.push(line);
            if ready {
                break;
            }
        }
        Sandbox {
            child,
            banner,
            rest: rx,
        }
    }

    fn line_starting(&self, prefix: &str) -> &str {
        self.banner
            .iter()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line starting with {prefix:?}: {:#?}", self.banner))
    }

    /// The folder named on the first line ("… in DIR").
    fn dir(&self) -> PathBuf {
        let first = &self.banner[0];
        PathBuf::from(first.rsplit_once(" in ").unwrap().1)
    }

    /// SIGTERM, then the exit status and what it printed on the way out.
    fn terminate(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = self.child.wait().unwrap();
        let rest: Vec<String> = self.rest.try_iter().collect();
        (exit, rest)
    }
}

fn curl(args: &[&str]) -> std::process::Output {
    Command::new("curl")
        .args(["-s", "--max-time", "30"])
        .args(args)
        .output()
        .unwrap()
}

fn token(idnat: &str, dir: &Path) -> String {
    let out = Command::new(BIN)
        .args(["dev", "token", idnat, "--dir"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "dev token: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn sandbox_serves_the_printed_commands_and_stops_on_sigterm() {
    if !tools::available("curl") || !tools::available("bash") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("sandbox");
    let sandbox = Sandbox::start(&["--dir", dir.to_str().unwrap()]);
    assert_eq!(sandbox.dir(), dir.canonicalize().unwrap());

    // The curl line, pasted as printed.
    let line = sandbox.line_starting("curl ").to_owned();
    let args: Vec<&str> = line.split_whitespace().skip(1).collect();
    let out = curl(&args);
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{line}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        listing.contains("* LIST (\\HasNoChildren) \"/\" INBOX"),
        "{listing}"
    );

    // A second process gets a token from the running sandbox.
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("sandbox.json")).unwrap()).unwrap();
    let imap = state["imap_tls"].as_str().unwrap().to_owned();
    let ca = dir.join("certs/ca.crt");
    let marie = token("899700771192", &dir);
    assert_eq!(marie.split('.').count(), 3, "{marie}");
    let url = format!("imaps://{imap}/INBOX;UID=1");
    let out = curl(&[
        "--cacert",
        ca.to_str().unwrap(),
        "--oauth2-bearer",
        &marie,
        "--user",
        "marie.martin@sandbox.mssante.fr",
        &url,
    ]);
    let message = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(message.contains("Message-ID: <welcome-"), "{message}");
    assert!(
        message.contains("marie.martin@sandbox.mssante.fr"),
        "{message}"
    );

    // The same token does not open another professional's mailbox.
    let out = curl(&[
        "--cacert",
        ca.to_str().unwrap(),
        "--oauth2-bearer",
        &marie,
        "--user",
        "jean.dupont@sandbox.mssante.fr",
        &url,
    ]);
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // Both professionals open the organisational mailbox.
    for idnat in ["899700771191", "899700771192"] {
        let t = token(idnat, &dir);
        let out = curl(&[
            "--cacert",
            ca.to_str().unwrap(),
            "--oauth2-bearer",
            &t,
            "--user",
            "secretariat.cardiologie@sandbox.mssante.fr",
            &url,
        ]);
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Message-ID: <welcome-"),
            "{idnat}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // The printed submission command (a shell pipeline) delivers to Marie.
    let send = sandbox
        .banner
        .iter()
        .find(|l| l.trim_start().starts_with("printf 'From:"))
        .expect("an SMTP submission command")
        .trim()
        .to_owned();
    let out = Command::new("bash")
        .args(["-c", &format!("{send} -s --max-time 30")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{send}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let marie = token("899700771192", &dir);
    let out = curl(&[
        "--cacert",
        ca.to_str().unwrap(),
        "--oauth2-bearer",
        &marie,
        "--user",
        "marie.martin@sandbox.mssante.fr",
        &format!("imaps://{imap}/INBOX;UID=2"),
    ]);
    let sent = String::from_utf8_lossy(&out.stdout);
    assert!(
        sent.contains("Subject: Bonjour") && sent.contains("Un message de test."),
        "{sent}"
    );

    let (status, rest) = sandbox.terminate();
    assert!(status.success(), "{status:?} {rest:?}");
    assert!(rest.iter().any(|l| l == "sandbox stopped"), "{rest:?}");
    // A given folder is kept (mail survives a restart); the live-state file is not.
    assert!(dir.join("mssante.toml").exists());
    assert!(!dir.join("sandbox.json").exists());

    // Without a sandbox, `dev token` fails with a clear error.
    let out = Command::new(BIN)
        .args(["dev", "token", "899700771191", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("sandbox.json"));
}

#[test]
fn a_temporary_sandbox_removes_its_folder() {
    if !tools::available("curl") {
        return;
    }
    let sandbox = Sandbox::start(&["--approve", "899700771192"]);
    let dir = sandbox.dir();
    assert!(dir.join("certs/app.crt").exists());

    // --approve: an authorization request without a hint is granted at once, for that
    // professional, and the code buys a token.
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("sandbox.json")).unwrap()).unwrap();
    let issuer = state["issuer"].as_str().unwrap().to_owned();
    let out = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{redirect_url}",
        &format!(
            "{issuer}/protocol/openid-connect/auth?response_type=code&client_id=lps&redirect_uri=https://localhost&state=s"
        ),
    ]);
    let answer = String::from_utf8_lossy(&out.stdout).into_owned();
    let (status, location) = answer.split_once(' ').unwrap();
    assert_eq!(status, "302", "{answer}");
    let code = location
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("code="))
        .unwrap();
    let out = curl(&[
        "-d",
        "grant_type=authorization_code",
        "-d",
        &format!("code={code}"),
        "-d",
        "redirect_uri=https://localhost",
        &format!("{issuer}/protocol/openid-connect/token"),
    ]);
    let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let token = body["access_token"].as_str().unwrap();
    let payload = token.split('.').nth(1).unwrap();
    use base64::Engine as _;
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["SubjectNameID"], "899700771192");

    let (status, rest) = sandbox.terminate();
    assert!(status.success(), "{status:?} {rest:?}");
    assert!(!dir.exists(), "{} still exists", dir.display());
}

/// The stand-in's authorization-code flow as Thunderbird drives it: PKCE S256,
/// `login_hint` = the account's mailbox address, then a refresh on the next start.
#[tokio::test]
async fn stand_in_authorization_code_with_pkce_and_refresh() {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use mssante_conformance::psc_standin::{DemoProfessional, PscStandIn};
    use sha2::Digest as _;

    let psc = PscStandIn::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    psc.set_professionals(vec![
        DemoProfessional {
            idnat: "899700771191".into(),
            name: "Dr Jean Dupont".into(),
            mailboxes: vec![
                "jean.dupont@sandbox.mssante.fr".into(),
                "secretariat@sandbox.mssante.fr".into(),
            ],
        },
        DemoProfessional {
            idnat: "899700771192".into(),
            name: "Dr Marie Martin".into(),
            mailboxes: vec!["secretariat@sandbox.mssante.fr".into()],
        },
    ]);
    psc.set_interactive(true);
    let issuer = psc.issuer().to_string();
    let http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let verifier = "a-verifier-of-at-least-forty-three-characters-0123456789";
    let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    let redirect = "https://localhost";
    let authorize = |hint: Option<&'static str>, method: &'static str| {
        let mut query = vec![
            ("response_type", "code".to_owned()),
            ("client_id", "thunderbird".to_owned()),
            ("redirect_uri", redirect.to_owned()),
            ("state", "xyz".to_owned()),
            ("scope", "openid scope_all".to_owned()),
            ("acr_values", "eidas1".to_owned()),
            ("code_challenge", challenge.clone()),
            ("code_challenge_method", method.to_owned()),
        ];
        if let Some(h) = hint {
            query.push(("login_hint", h.to_owned()));
        }
        http.get(format!("{issuer}/protocol/openid-connect/auth"))
            .query(&query)
            .send()
    };
    let code_of = |answer: reqwest::Response| {
        assert_eq!(answer.status(), 302);
        let location = url::Url::parse(answer.headers()["location"].to_str().unwrap()).unwrap();
        assert!(location.as_str().starts_with(redirect));
        let pairs: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
        assert_eq!(pairs["state"], "xyz");
        pairs["code"].clone()
    };
    let exchange = |form: Vec<(&'static str, String)>| {
        http.post(format!("{issuer}/protocol/openid-connect/token"))
            .form(&form)
            .send()
    };
    let idnat_of = |token: &str| {
        let payload = token.split('.').nth(1).unwrap();
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        claims["SubjectNameID"].as_str().unwrap().to_owned()
    };

    // A wrong verifier is refused; the right one gives a token for the professional behind
    // the mailbox address.
    let mut answer = None;
    for (code_verifier, status) in [("not-the-verifier", 400), (verifier, 200)] {
        let code = code_of(
            authorize(Some("jean.dupont@sandbox.mssante.fr"), "S256")
                .await
                .unwrap(),
        );
        let a = exchange(vec![
            ("grant_type", "authorization_code".into()),
            ("code", code),
            ("redirect_uri", redirect.into()),
            ("code_verifier", code_verifier.into()),
        ])
        .await
        .unwrap();
        assert_eq!(a.status(), status, "verifier {code_verifier}");
        answer = Some(a);
    }
    let answer = answer.unwrap();
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(
        idnat_of(body["access_token"].as_str().unwrap()),
        "899700771191"
    );
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();
    let answer = exchange(vec![
        ("grant_type", "refresh_token".into()),
        ("refresh_token", refresh),
    ])
    .await
    .unwrap();
    assert_eq!(answer.status(), 200);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(
        idnat_of(body["access_token"].as_str().unwrap()),
        "899700771191"
    );

    // PKCE plain is refused; no hint on an interactive stand-in shows the chooser,
    // whose links carry the PKCE challenge on.
    assert_eq!(authorize(None, "plain").await.unwrap().status(), 400);
    let page = authorize(None, "S256").await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("Dr Jean Dupont") && html.contains("login_hint=899700771191"));
    assert!(html.contains(&format!("code_challenge={challenge}")));
    // A mailbox both open names nobody: the page asks.
    let shared = authorize(Some("secretariat@sandbox.mssante.fr"), "S256")
        .await
        .unwrap();
    assert_eq!(shared.status(), 200);
    assert!(shared.text().await.unwrap().contains("Dr Marie Martin"));
    // An unknown address is not logged in silently.
    assert_eq!(
        authorize(Some("someone@else.fr"), "S256")
            .await
            .unwrap()
            .status(),
        200
    );

    // The loopback mint answers only once enabled.
    let mint = || {
        http.post(format!("{issuer}/dev/token"))
            .form(&[("idnat", "899700771192")])
            .send()
    };
    assert_eq!(mint().await.unwrap().status(), 404);
    psc.enable_dev_mint();
    let answer = mint().await.unwrap();
    assert_eq!(answer.status(), 200);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(
        idnat_of(body["access_token"].as_str().unwrap()),
        "899700771192"
    );
}

/// A kept sandbox folder keeps its CA, so the clients that trust it keep working; only
/// what is missing is issued again, by the same CA.
#[test]
fn a_kept_sandbox_folder_keeps_its_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("sandbox");
    let first = Sandbox::start(&["--dir", dir.to_str().unwrap()]);
    first.line_starting("  Test PKI         new CA in ");
    let (status, rest) = first.terminate();
    assert!(status.success(), "{status:?} {rest:?}");
    let certs = dir.join("certs");
    let ca = std::fs::read(certs.join("ca.crt")).unwrap();
    let server = std::fs::read(certs.join("server.crt")).unwrap();
    std::fs::remove_file(certs.join("app.crt")).unwrap();

    let second = Sandbox::start(&["--dir", dir.to_str().unwrap()]);
    second.line_starting("  Test PKI         CA kept from ");
    assert!(
        second
            .line_starting("  Test PKI ")
            .ends_with("(missing or expiring): app"),
        "{:#?}",
        second.banner
    );
    assert_eq!(std::fs::read(certs.join("ca.crt")).unwrap(), ca);
    assert_eq!(std::fs::read(certs.join("server.crt")).unwrap(), server);
    let app = std::fs::read_to_string(certs.join("app.crt")).unwrap();
    let issuing = std::fs::read_to_string(certs.join("organisations-ca.crt")).unwrap();
    assert!(
        app.ends_with(&issuing),
        "the new app certificate chains to the kept CA"
    );
    let (status, rest) = second.terminate();
    assert!(status.success(), "{status:?} {rest:?}");
}

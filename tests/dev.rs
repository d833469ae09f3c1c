//! `mssante dev`, the sandbox, as a newcomer uses it: the real binary as a child
//! process, the printed curl command pasted as is, `mssante dev token` from a second
//! process, and SIGTERM to stop it.

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
    let sandbox = Sandbox::start(&[]);
    let dir = sandbox.dir();
    assert!(dir.join("certs/app.crt").exists());
    let (status, rest) = sandbox.terminate();
    assert!(status.success(), "{status:?} {rest:?}");
    assert!(!dir.exists(), "{} still exists", dir.display());
}

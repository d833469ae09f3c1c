//! Every committed fuzz input through the code its target drives, with the same checks:
//! the seeds in fuzz/seeds/TARGET and the inputs that once crashed a target, kept in
//! fuzz/regressions/TARGET. Runs on stable Rust, so CI replays them on every change
//! even where there is no time to fuzz.

use std::path::{Path, PathBuf};

use mssante::fuzzing::{self, Harness};

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut out = Vec::new();
    for kind in ["seeds", "regressions"] {
        let dir = root.join(kind).join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            out.push((path, bytes));
        }
    }
    out.sort();
    out
}

fn replay(target: &str, mut run: impl FnMut(&[u8]) -> Result<(), String>) {
    let inputs = inputs(target);
    assert!(!inputs.is_empty(), "no seeds for {target}");
    for (path, bytes) in inputs {
        if let Err(e) = run(&bytes) {
            panic!("{}: {e}", path.display());
        }
    }
}

#[test]
fn sasl() {
    replay("sasl", fuzzing::sasl);
}

#[test]
fn trust_list() {
    replay("trust_list", fuzzing::trust_list);
}

#[test]
fn mime() {
    replay("mime", |b| {
        fuzzing::mime_input(b);
        Ok(())
    });
}

#[test]
fn jwt() {
    let mut h = Harness::new().unwrap();
    replay("jwt", |b| h.jwt(b).map_err(|e| e.to_string()));
}

#[test]
fn imap_session() {
    let mut h = Harness::new().unwrap();
    replay("imap_session", |b| {
        h.imap(b).map(drop).map_err(|e| e.to_string())
    });
}

#[test]
fn smtp_session() {
    let mut h = Harness::new().unwrap();
    replay("smtp_session", |b| {
        h.smtp(b).map(drop).map_err(|e| e.to_string())
    });
}

/// The session targets reach the commands behind authentication: the harness logs in
/// with a genuine token, a selected mailbox answers SEARCH, and submitted mail is taken.
#[test]
fn session_targets_get_past_authentication() {
    let mut h = Harness::new().unwrap();
    let said = String::from_utf8_lossy(&h.imap(b"\x03a UID SEARCH ALL\r\nb LOGOUT\r\n").unwrap())
        .into_owned();
    assert!(said.contains("L OK"), "{said}");
    assert!(said.contains("S OK"), "{said}");
    assert!(said.contains("a OK"), "{said}");
    let said = String::from_utf8_lossy(
        &h.smtp(b"\x02MAIL FROM:<gregory.house@h.mssante.fr>\r\nRCPT TO:<lisa.cuddy@h.mssante.fr>\r\nDATA\r\nFrom: gregory.house@h.mssante.fr\r\nSubject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n")
            .unwrap(),
    )
    .into_owned();
    assert!(said.contains("235 "), "{said}");
    assert!(said.contains("250 2.0.0"), "{said}");
}

//! The operator CLI, driven as operators and harnesses drive it: the real binary.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::config::Setup;

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        for f in ["server.crt", "server.key"] {
            std::fs::write(dir.path().join(f), "placeholder").unwrap();
        }
        let mut setup = Setup::new("one.mssante.fr");
        setup.psc =
            "[psc]\nissuer = \"https://auth.bas.psc.esante.gouv.fr/auth/realms/esante-wallet\"\n\
                     client_id = \"operator\"\nclient_secret = \"very-secret\"\n"
                .into();
        setup.write(dir.path());
        Env { dir }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }

    fn run(&self, args: &[&str]) -> Output {
        common::cli::command(&self.config(), args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {out:?}");
        String::from_utf8(out.stderr).unwrap()
    }
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn check_config_prints_the_effective_configuration_with_secrets_masked() {
    let env = Env::new();
    let out = env.ok(&["check-config"]);
    assert!(out.contains("hostname = \"mail.one.mssante.fr\""), "{out}");
    assert!(
        out.contains("idle_timeout = \"15m\""),
        "defaults are shown: {out}"
    );
    assert!(!out.contains("very-secret"), "{out}");
}

#[test]
fn a_bad_configuration_exits_with_status_2_naming_the_key() {
    let env = Env::new();
    let text = std::fs::read_to_string(env.config()).unwrap();
    std::fs::write(env.config(), text.replace("[psc]", "[psc]\ntimeout = 3")).unwrap();
    let err = env.fails(&["check-config"], 2);
    assert!(err.contains("unknown field `timeout`"), "{err}");
    let err = env.fails(&["mailbox", "list"], 2);
    assert!(err.contains("timeout"), "{err}");
    let missing = Command::new(env!("CARGO_BIN_EXE_mssante"))
        .args(["--config", "/nonexistent/mssante.toml", "check-config"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
}

#[test]
fn mailboxes_are_created_listed_shown_granted_and_deleted() {
    let env = Env::new();
    env.ok(&[
        "mailbox",
        "create",
        "dr.martin@one.mssante.fr",
        "--kind",
        "personal",
        "--owner",
        "899700771191",
        "--name",
        "Dr Martin",
        "--created-at",
        "2025-01-15T08:00:00Z",
    ]);
    env.ok(&[
        "mailbox",
        "create",
        "secretariat@one.mssante.fr",
        "--kind",
        "organisational",
    ]);
    env.ok(&[
        "mailbox",
        "create",
        "labo@one.mssante.fr",
        "--kind",
        "applicative",
    ]);

    let listed: Vec<serde_json::Value> = env
        .ok(&["mailbox", "list", "--json"])
        .lines()
        .map(json)
        .collect();
    let addresses: Vec<_> = listed
        .iter()
        .map(|m| m["address"].as_str().unwrap())
        .collect();
    assert_eq!(
        addresses,
        [
            "dr.martin@one.mssante.fr",
            "labo@one.mssante.fr",
            "secretariat@one.mssante.fr"
        ]
    );
    let martin = &listed[0];
    assert_eq!(martin["kind"], "personal");
    assert_eq!(martin["owner"], "899700771191");
    assert_eq!(martin["created_at"], "2025-01-15T08:00:00Z");
    assert_eq!(martin["last_authenticated_at"], serde_json::Value::Null);
    assert_eq!(martin["published"], false);
    assert_eq!(martin["grants"], serde_json::json!([]));

    env.ok(&[
        "mailbox",
        "grant",
        "secretariat@one.mssante.fr",
        "--idnat",
        "899700771192",
    ]);
    let pin = "AB:".repeat(31) + "AB";
    env.ok(&[
        "mailbox",
        "grant",
        "labo@one.mssante.fr",
        "--certificate",
        &pin,
    ]);
    let shown = json(&env.ok(&["mailbox", "show", "secretariat@one.mssante.fr", "--json"]));
    assert_eq!(
        shown["grants"],
        serde_json::json!([{"type": "idnat", "idnat": "899700771192"}])
    );
    let shown = json(&env.ok(&["mailbox", "show", "labo@one.mssante.fr", "--json"]));
    assert_eq!(shown["grants"][0]["fingerprint"], "ab".repeat(32));
    let text = env.ok(&["mailbox", "show", "secretariat@one.mssante.fr"]);
    assert!(
        text.contains("idnat 899700771192") && text.contains("INBOX"),
        "{text}"
    );

    env.ok(&[
        "mailbox",
        "revoke",
        "secretariat@one.mssante.fr",
        "--idnat",
        "899700771192",
    ]);
    let shown = json(&env.ok(&["mailbox", "show", "secretariat@one.mssante.fr", "--json"]));
    assert_eq!(shown["grants"], serde_json::json!([]));

    env.ok(&["mailbox", "delete", "labo@one.mssante.fr"]);
    let err = env.fails(&["mailbox", "show", "labo@one.mssante.fr"], 1);
    assert!(err.contains("no mailbox labo@one.mssante.fr"), "{err}");
}

#[test]
fn mistakes_are_refused_with_a_reason() {
    let env = Env::new();
    let err = env.fails(
        &[
            "mailbox",
            "create",
            "dr@one.mssante.fr",
            "--kind",
            "personal",
        ],
        1,
    );
    assert!(err.contains("--owner"), "{err}");
    let err = env.fails(
        &[
            "mailbox",
            "create",
            "dr@elsewhere.fr",
            "--kind",
            "organisational",
        ],
        1,
    );
    assert!(err.contains("not in a domain hosted here"), "{err}");
    let err = env.fails(
        &["mailbox", "create", "x@one.mssante.fr", "--kind", "robot"],
        2,
    );
    assert!(err.contains("unknown mailbox kind"), "{err}");
    env.ok(&[
        "mailbox",
        "create",
        "dr@one.mssante.fr",
        "--kind",
        "personal",
        "--owner",
        "8001",
    ]);
    let err = env.fails(
        &[
            "mailbox",
            "create",
            "dr@one.mssante.fr",
            "--kind",
            "personal",
            "--owner",
            "8001",
        ],
        1,
    );
    assert!(err.contains("already exists"), "{err}");
    let err = env.fails(
        &["mailbox", "grant", "dr@one.mssante.fr", "--idnat", "8002"],
        1,
    );
    assert!(err.contains("organisational"), "{err}");
    let err = env.fails(&["mailbox", "delete", "nobody@one.mssante.fr"], 1);
    assert!(err.contains("no mailbox"), "{err}");
    let err = env.fails(
        &[
            "mailbox",
            "create",
            "y@one.mssante.fr",
            "--kind",
            "organisational",
            "--created-at",
            "yesterday",
        ],
        2,
    );
    assert!(err.contains("RFC 3339"), "{err}");
}

#[test]
fn the_store_lives_in_data_dir() {
    let env = Env::new();
    env.ok(&[
        "mailbox",
        "create",
        "a@one.mssante.fr",
        "--kind",
        "organisational",
    ]);
    assert!(Path::new(&env.dir.path().join("data/mssante.db")).exists());
}

/// `mssante audit | head -1` is how operators skim the trail: the listing must end quietly
/// when the reader goes away, not panic on the closed pipe.
#[tokio::test]
async fn the_audit_listing_ends_quietly_when_the_reader_stops() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let env = Env::new();
    let store = mssante::store::Store::open(&env.dir.path().join("data"), mssante::clock::system())
        .await
        .unwrap();
    // More than a pipe buffer holds, so the writer meets the closed pipe.
    let writes = (0..2000).map(|i| {
        store.audit(mssante::store::AuditEntry {
            at: mssante::clock::SystemClock::now_utc(),
            protocol: "imap".into(),
            mechanism: Some("XOAUTH2".into()),
            identity: Some(format!("8997007711{i:04}")),
            mailbox: Some("a@one.mssante.fr".into()),
            peer: Some("127.0.0.1:1".into()),
            outcome: mssante::store::AuditOutcome::Success,
            reason: None,
        })
    });
    for w in futures::future::join_all(writes).await {
        w.unwrap();
    }
    drop(store);

    let mut child = common::cli::command(&env.config(), &["audit", "--json", "--limit", "2000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(json(&first)["mechanism"] == "XOAUTH2", "{first}");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// A store that cannot be used: a file that is not a database makes every command that
/// needs it exit 1 with a message naming the path; a data directory that is a file is a
/// configuration error (2). Never a panic.
#[test]
fn an_unusable_store_is_named_and_nothing_panics() {
    let env = Env::new();
    std::fs::create_dir(env.dir.path().join("data")).unwrap();
    std::fs::write(
        env.dir.path().join("data/mssante.db"),
        "this is not a database, it is a shopping list".repeat(200),
    )
    .unwrap();
    for args in [
        &["mailbox", "list"][..],
        &["jobs", "run"],
        &["audit"],
        &["serve"],
    ] {
        let err = env.fails(args, 1);
        assert!(err.contains("data"), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    std::fs::remove_dir_all(env.dir.path().join("data")).unwrap();
    std::fs::write(
        env.dir.path().join("data"),
        "a file where a folder should be",
    )
    .unwrap();
    // That one is a configuration mistake, found before anything starts.
    for args in [&["mailbox", "list"][..], &["serve"]] {
        let err = env.fails(args, 2);
        assert!(err.contains("server.data_dir"), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn mailbox_quota_sets_shows_and_clears_limits_and_is_audited() {
    let env = Env::new();
    let address = "secretariat@one.mssante.fr";
    env.ok(&["mailbox", "create", address, "--kind", "organisational"]);
    let out = env.ok(&["mailbox", "quota", address]);
    assert!(out.contains("quota_storage:         none"), "{out}");
    assert!(out.contains("used_messages:         0"), "{out}");

    let out = env.ok(&[
        "mailbox",
        "quota",
        address,
        "--storage",
        "500MB",
        "--messages",
        "1000",
    ]);
    assert!(out.contains("quota_storage:         500000000"), "{out}");
    assert!(out.contains("quota_messages:        1000"), "{out}");
    let shown = json(&env.ok(&["mailbox", "show", address, "--json"]));
    assert_eq!(
        shown["quota"],
        serde_json::json!({
            "quota_storage": 500_000_000,
            "quota_messages": 1000,
            "used_bytes": 0,
            "used_messages": 0,
        })
    );
    let text = env.ok(&["mailbox", "show", address]);
    assert!(text.contains("quota_storage:         500000000"), "{text}");

    // One limit changes, the other stays; binary units as in the configuration.
    env.ok(&["mailbox", "quota", address, "--storage", "2GiB"]);
    let shown = json(&env.ok(&["mailbox", "show", address, "--json"]));
    assert_eq!(shown["quota"]["quota_storage"], 2u64 << 30);
    assert_eq!(shown["quota"]["quota_messages"], 1000);
    env.ok(&[
        "mailbox",
        "quota",
        address,
        "--storage",
        "none",
        "--messages",
        "none",
    ]);
    let shown = json(&env.ok(&["mailbox", "show", address, "--json"]));
    assert_eq!(shown["quota"]["quota_storage"], serde_json::Value::Null);
    assert_eq!(shown["quota"]["quota_messages"], serde_json::Value::Null);
    let listed = json(env.ok(&["mailbox", "list", "--json"]).trim());
    assert_eq!(listed["quota"]["used_messages"], 0);

    // Every change is in the audit trail; showing is not.
    let audit = env.ok(&["audit", "--mailbox", address, "--json"]);
    let reasons: Vec<String> = audit
        .lines()
        .map(|l| json(l)["reason"].as_str().unwrap_or_default().to_owned())
        .filter(|r| r.starts_with("quota set"))
        .collect();
    assert_eq!(
        reasons,
        [
            "quota set: storage 500000000, messages 1000",
            "quota set: storage 2147483648, messages 1000",
            "quota set: storage none, messages none",
        ],
        "{audit}"
    );

    let err = env.fails(&["mailbox", "quota", address, "--storage", "12 apples"], 2);
    assert!(err.contains("unknown size unit"), "{err}");
    let err = env.fails(&["mailbox", "quota", address, "--messages", "lots"], 2);
    assert!(err.contains("--messages"), "{err}");
    let err = env.fails(&["mailbox", "quota", "nobody@one.mssante.fr"], 1);
    assert!(err.contains("no mailbox nobody@one.mssante.fr"), "{err}");
}

/// `[store]` on a PostgreSQL that does not answer: every command names its host and
/// never the password, and `serve` keeps waiting for it, saying why, instead of exiting.
#[test]
fn an_unreachable_postgres_is_named_and_serve_waits_for_it() {
    use std::io::{BufRead, BufReader};
    let env = Env::new();
    let mut text = std::fs::read_to_string(env.config()).unwrap();
    // Port 1 on loopback: nothing listens there.
    text.push_str(
        "\n[store]\nbackend = \"postgres\"\n\
         url = \"postgres://mssante:hunter2@127.0.0.1:1/mail\"\nconnect_timeout = \"1s\"\n",
    );
    std::fs::write(env.config(), text).unwrap();

    let shown = env.ok(&["check-config"]);
    assert!(
        shown.contains("postgres://mssante:********@127.0.0.1:1/mail"),
        "{shown}"
    );
    assert!(!shown.contains("hunter2"), "{shown}");

    for args in [&["mailbox", "list"][..], &["audit"][..]] {
        let err = env.fails(args, 1);
        assert!(err.contains("127.0.0.1:1"), "{args:?}: {err}");
        assert!(!err.contains("hunter2"), "{args:?}: {err}");
    }

    let mut serve = common::cli::command(&env.config(), &["serve"])
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(serve.stderr.take().unwrap()).lines();
    let mut waits = 0;
    while waits < 2 {
        let line = lines
            .next()
            .expect("serve is still running and logging")
            .unwrap();
        assert!(!line.contains("hunter2"), "{line}");
        if line.contains("does not answer yet") {
            assert!(line.contains("127.0.0.1:1"), "{line}");
            waits += 1;
        }
    }
    assert!(
        serve.try_wait().unwrap().is_none(),
        "serve waits for the database"
    );
    serve.kill().unwrap();
    serve.wait().unwrap();
}

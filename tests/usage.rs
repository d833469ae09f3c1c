//! `mssante report usage`: three months of scripted activity on a store whose clock the
//! test moves (mailboxes created, published, unpublished, deleted by hand and by the
//! lifecycle; authentications by each mechanism, refusals, merged audit rows; mail
//! carried, up to the last second of a month), then every figure of every month checked,
//! through the store and through the command's JSON and CSV.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeZone, Utc};
use mssante::clock::Clock;
use mssante::config::Config;
use mssante::store::{
    AuditEntry, AuditOutcome, Authentications, KindFigures, MailboxKind, NewMailbox, Store,
    Traffic, Usage,
};

/// A clock the test sets.
#[derive(Debug, Clone)]
struct Hands(Arc<Mutex<DateTime<Utc>>>);

impl Clock for Hands {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

impl Hands {
    fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().unwrap() = at;
    }
}

fn at(month: u32, day: u32, h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, month, day, h, m, s).unwrap()
}

const P1: &str = "p1@h.mssante.fr";
const P2: &str = "p2@h.mssante.fr";
const P3: &str = "p3@h.mssante.fr";
const O1: &str = "secretariat@h.mssante.fr";
const A1: &str = "labo@h.mssante.fr";

/// A mailbox created at `when`; its id.
async fn create(
    store: &Store,
    hands: &Hands,
    when: DateTime<Utc>,
    address: &str,
    kind: MailboxKind,
) -> i64 {
    hands.set(when);
    let owner = (kind == MailboxKind::Personal).then(|| "899700000001".to_owned());
    store
        .create_mailbox(NewMailbox::new(address, kind, owner, when))
        .await
        .unwrap()
        .id
}

/// What the authenticator writes for each attempt: when, mechanism, mailbox, outcome.
async fn authentications(store: &Store, attempts: &[(DateTime<Utc>, &str, &str, AuditOutcome)]) {
    for (when, mechanism, mailbox, outcome) in attempts {
        store
            .audit(AuditEntry {
                at: *when,
                protocol: "imap".into(),
                mechanism: Some((*mechanism).into()),
                identity: Some("899700000001".into()),
                mailbox: Some((*mailbox).into()),
                peer: Some("192.0.2.7:50000".into()),
                outcome: *outcome,
                reason: None,
            })
            .await
            .unwrap();
    }
}

/// Mail carried: what the SMTP side adds to each day.
async fn traffic(store: &Store, days: &[(DateTime<Utc>, Traffic)]) {
    for (when, t) in days {
        store.record_traffic(*when, *t).await.unwrap();
    }
}

fn kind(
    existing: u64,
    created: u64,
    deleted: u64,
    published: u64,
    unpublished: u64,
    active: u64,
) -> KindFigures {
    KindFigures {
        existing,
        created,
        deleted,
        published,
        unpublished,
        active,
    }
}

/// September, October and November 2026, with what each should report.
async fn three_months(store: &Store, hands: &Hands) -> [Usage; 3] {
    use AuditOutcome::{Failure, Success, Temporary};
    use MailboxKind::{Applicative, Organisational, Personal};

    // September.
    let p1 = create(store, hands, at(9, 2, 9, 0, 0), P1, Personal).await;
    let p2 = create(store, hands, at(9, 2, 9, 5, 0), P2, Personal).await;
    let o1 = create(store, hands, at(9, 2, 9, 10, 0), O1, Organisational).await;
    hands.set(at(9, 5, 12, 0, 0));
    assert_eq!(store.mark_published(&[p1, p2, o1]).await.unwrap().len(), 3);
    // Published already: not again.
    assert!(store.mark_published(&[p1]).await.unwrap().is_empty());
    // Two logins within a minute share an audit row, and count twice; refusals and
    // undecided attempts do not count.
    authentications(
        store,
        &[
            (at(9, 10, 10, 0, 0), "XOAUTH2", P1, Success),
            (at(9, 10, 10, 0, 30), "XOAUTH2", P1, Success),
            (at(9, 10, 11, 0, 0), "XOAUTH2", P2, Failure),
            (at(9, 11, 11, 0, 0), "OAUTHBEARER", P2, Temporary),
        ],
    )
    .await;
    let sept = Traffic {
        submitted: 3,
        delivered: 2,
        relayed: 1,
        ..Traffic::default()
    };
    traffic(store, &[(at(9, 20, 8, 0, 0), sept)]).await;

    // October.
    create(store, hands, at(10, 1, 0, 0, 0), A1, Applicative).await;
    authentications(
        store,
        &[
            (at(10, 3, 9, 0, 0), "EXTERNAL", A1, Success),
            (at(10, 3, 9, 30, 0), "OAUTHBEARER", O1, Success),
        ],
    )
    .await;
    let unpublished = store.mark_unpublished(&[p2], at(10, 15, 0, 0, 0)).await;
    assert_eq!(unpublished.unwrap(), [p2]);
    hands.set(at(10, 20, 14, 0, 0));
    assert!(store.delete_mailbox(P2).await.unwrap());
    let oct = Traffic {
        received: 4,
        delivered: 4,
        bounced: 1,
        ..Traffic::default()
    };
    traffic(store, &[(at(10, 31, 23, 59, 59), oct)]).await;

    // November: the lifecycle deletes the organisational mailbox once unpublished; the
    // applicative one, never published either, is on hold.
    let unpublished = store.mark_unpublished(&[o1], at(11, 2, 0, 0, 0)).await;
    assert_eq!(unpublished.unwrap(), [o1]);
    assert!(store.set_hold(A1, true).await.unwrap());
    let deleted = store
        .delete_inactive(
            at(11, 2, 0, 0, 0),
            at(11, 2, 12, 0, 0),
            "inactive for a year",
            100,
        )
        .await
        .unwrap();
    assert_eq!(deleted.iter().map(|d| d.id).collect::<Vec<_>>(), [o1]);
    create(store, hands, at(11, 5, 8, 0, 0), P3, Personal).await;
    // December's first second belongs to December.
    authentications(
        store,
        &[
            (at(11, 10, 8, 0, 0), "XOAUTH2", P3, Success),
            (at(11, 10, 9, 0, 0), "XOAUTH2", P1, Success),
            (at(12, 1, 0, 0, 0), "XOAUTH2", P1, Success),
        ],
    )
    .await;
    let nov = Traffic {
        submitted: 1,
        ..Traffic::default()
    };
    let dec = Traffic {
        submitted: 100,
        ..Traffic::default()
    };
    traffic(
        store,
        &[(at(11, 30, 12, 0, 0), nov), (at(12, 1, 0, 0, 0), dec)],
    )
    .await;

    // Each month: its figures by kind (personal, organisational, applicative), PSC
    // token and certificate authentications, and the mail carried.
    let month = |m: u32,
                 kinds: [KindFigures; 3],
                 (psc_token, client_certificate): (u64, u64),
                 messages: Traffic| {
        let [personal, organisational, applicative] = kinds;
        Usage {
            from: at(m, 1, 0, 0, 0),
            to: at(m + 1, 1, 0, 0, 0),
            personal,
            organisational,
            applicative,
            authentications: Authentications {
                psc_token,
                client_certificate,
            },
            messages,
        }
    };
    let none = kind(0, 0, 0, 0, 0, 0);
    [
        month(
            9,
            [kind(2, 2, 0, 2, 0, 1), kind(1, 1, 0, 1, 0, 0), none],
            (2, 0),
            sept,
        ),
        month(
            10,
            [
                kind(1, 0, 1, 0, 1, 0),
                kind(1, 0, 0, 0, 0, 1),
                kind(1, 1, 0, 0, 0, 1),
            ],
            (1, 1),
            oct,
        ),
        month(
            11,
            [
                kind(2, 1, 0, 0, 0, 2),
                kind(0, 0, 1, 0, 1, 0),
                kind(1, 0, 0, 0, 0, 0),
            ],
            (2, 0),
            nov,
        ),
    ]
}

/// A configuration with no listener on the running test's backend, for the store and
/// the CLI (the certificate files must exist, but nothing reads them).
fn write_config(dir: &Path, store: String) -> PathBuf {
    for f in ["server.crt", "server.key"] {
        std::fs::write(dir.join(f), "placeholder").unwrap();
    }
    let mut setup = common::config::Setup::new("h.mssante.fr");
    setup.store = store;
    setup.write(dir)
}

fn report(config: &Path, month: &str, format: &[&str]) -> String {
    let args = [&["report", "usage", "--month", month], format].concat();
    common::cli::ok(config, &args)
}

/// `--csv`: a header, then one `figure,kind,value` line for each figure of `want`.
fn assert_csv(csv: &str, want: &Usage) {
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("figure,kind,value"));
    let rows: Vec<(String, String, u64)> = lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].to_owned(), f[1].to_owned(), f[2].parse().unwrap())
        })
        .collect();
    let mut expected = Vec::new();
    for k in [
        MailboxKind::Personal,
        MailboxKind::Organisational,
        MailboxKind::Applicative,
    ] {
        let fig = want.kind(k);
        for (name, v) in [
            ("existing", fig.existing),
            ("created", fig.created),
            ("deleted", fig.deleted),
            ("published", fig.published),
            ("unpublished", fig.unpublished),
            ("active", fig.active),
        ] {
            expected.push((format!("mailboxes_{name}"), k.as_str().to_owned(), v));
        }
    }
    for (name, v) in [
        ("authentications_psc_token", want.authentications.psc_token),
        (
            "authentications_client_certificate",
            want.authentications.client_certificate,
        ),
        ("messages_submitted", want.messages.submitted),
        ("messages_received_from_operators", want.messages.received),
        ("messages_sent_to_operators", want.messages.relayed),
        ("messages_delivered_locally", want.messages.delivered),
        ("messages_bounced", want.messages.bounced),
    ] {
        expected.push((name.to_owned(), String::new(), v));
    }
    assert_eq!(rows.len(), expected.len(), "{csv}");
    for row in expected {
        assert!(rows.contains(&row), "{row:?} in\n{csv}");
    }
}

on_both_backends! {
    #[tokio::test]
    async fn three_months_of_activity_give_every_figure() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _database) = common::postgres::store_section().await;
        let config = write_config(dir.path(), store);
        let hands = Hands(Arc::new(Mutex::new(at(9, 1, 0, 0, 0))));
        let store = Store::open_configured(
            &Config::load(&config).unwrap(),
            Arc::new(hands.clone()),
        )
        .await
        .unwrap();
        let expected = three_months(&store, &hands).await;
        for want in &expected {
            assert_eq!(&store.usage(want.from, want.to).await.unwrap(), want);
        }
        store.close().await;

        // The command reads the same records: JSON carries every figure, CSV too.
        for (month, want) in ["2026-09", "2026-10", "2026-11"].iter().zip(&expected) {
            let json: serde_json::Value =
                serde_json::from_str(&report(&config, month, &["--json"])).unwrap();
            assert_eq!(json["month"], *month);
            assert_eq!(json["usage"], serde_json::to_value(want).unwrap());
            assert_csv(&report(&config, month, &["--csv"]), want);
        }
        assert_table(&report(&config, "2026-10", &[]));
    }
}

/// The table, for a person: October's mailboxes by kind and in total.
fn assert_table(table: &str) {
    let row = |name: &str| -> Vec<String> {
        table
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} in\n{table}"))
            .split_whitespace()
            .skip(1)
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(row("existing"), ["1", "1", "1", "3"], "{table}");
    assert_eq!(row("active"), ["0", "1", "1", "2"], "{table}");
    assert_eq!(
        row("messages received from operators")
            .last()
            .map(String::as_str),
        Some("4")
    );
}

#[test]
fn a_month_must_be_written_yyyy_mm() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), String::new());
    let out = common::cli::command(&config, &["report", "usage", "--month", "2026-13"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("YYYY-MM"));
}

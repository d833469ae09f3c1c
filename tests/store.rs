//! The store's promises: UIDs, durability, flags and MODSEQ, deletion.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;

mod common;

use common::postgres::{Backend, Place, run};
use mssante::store::{
    BackendErrorKind, FlagOp, Flags, MailboxKind, NewMailbox, QuotaLimit, RawMessage, Store,
    StoreError, flag,
};

fn message(n: usize) -> Vec<u8> {
    format!(
        "From: a@one.mssante.fr\r\nTo: b@one.mssante.fr\r\nSubject: message {n}\r\n\r\nBody {n}\r\n"
    )
    .into_bytes()
}

async fn mailbox(store: &Store, address: &str) -> i64 {
    store
        .create_mailbox(NewMailbox::new(
            address,
            MailboxKind::Personal,
            Some("899700771191".into()),
            mssante::clock::SystemClock::now_utc(),
        ))
        .await
        .unwrap()
        .id
}

async fn inbox(store: &Store, mailbox_id: i64) -> i64 {
    store.folder(mailbox_id, "INBOX").await.unwrap().unwrap().id
}

/// A new store in a temporary folder with one mailbox: the folder, the store, the
/// mailbox and its INBOX.
async fn one_mailbox() -> (Place, Store, i64, i64) {
    let dir = Place::new().await;
    let store = dir.open().await;
    let mb = mailbox(&store, "a@one.mssante.fr").await;
    let folder = inbox(&store, mb).await;
    (dir, store, mb, folder)
}

/// Rows in the SQLite file of a store that is not on PostgreSQL.
async fn count_rows(dir: &std::path::Path, table: &str) -> i64 {
    use sqlx::Connection;
    let mut c =
        sqlx::SqliteConnection::connect(&format!("sqlite://{}", dir.join("mssante.db").display()))
            .await
            .unwrap();
    let sql = match table {
        "bodies" => "SELECT COUNT(*) FROM bodies",
        "messages" => "SELECT COUNT(*) FROM messages",
        "folders" => "SELECT COUNT(*) FROM folders",
        other => panic!("no count for {other}"),
    };
    sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap()
}

on_both_backends! {
#[tokio::test]
async fn new_mailbox_has_special_use_folders() {
    let dir = Place::new().await;
    let store = dir.open().await;
    let id = mailbox(&store, "dr.martin@one.mssante.fr").await;
    let folders = store.folders(id).await.unwrap();
    let names: Vec<_> = folders.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["Drafts", "INBOX", "Junk", "Sent", "Trash"]);
    let sent = folders.iter().find(|f| f.name == "Sent").unwrap();
    assert_eq!(sent.special_use.as_deref(), Some("\\Sent"));
    assert!(
        store.folder(id, "inbox").await.unwrap().is_some(),
        "INBOX is case-insensitive"
    );
}
}

on_both_backends! {
#[tokio::test]
async fn each_change_takes_the_next_modseq_and_a_snapshot_is_of_one_moment() {
    let (_dir, store, mb, folder) = one_mailbox().await;
    let now = mssante::clock::SystemClock::now_utc;
    let highest = |store: Store| async move {
        store.folder_by_id(folder).await.unwrap().unwrap().highestmodseq
    };
    let empty = store.folder_snapshot(mb, "inbox").await.unwrap().unwrap();
    assert_eq!(
        (empty.uids.len(), empty.first_unseen, empty.keywords.len()),
        (0, None, 0)
    );
    let start = empty.folder.highestmodseq;
    let mut flagged = Flags::new(flag::SEEN);
    flagged.keywords.insert("$Important".into());
    let a = store.append(folder, &message(1), flagged, now()).await.unwrap();
    assert_eq!(a.modseq, start + 1);
    for n in 2..=3 {
        store.append(folder, &message(n), Flags::default(), now()).await.unwrap();
    }
    let snapshot = store.folder_snapshot(mb, "inbox").await.unwrap().unwrap();
    assert_eq!(snapshot.uids, [1, 2, 3]);
    assert_eq!(snapshot.first_unseen, Some(2));
    assert_eq!(snapshot.keywords.iter().collect::<Vec<_>>(), ["$Important"]);
    assert_eq!(snapshot.folder.highestmodseq, start + 3);
    assert_eq!(snapshot.folder.uidnext, 4);

    let stored = store
        .store_flags(folder, vec![2, 3], FlagOp::Add, Flags::new(flag::DELETED), None)
        .await
        .unwrap();
    let modseqs: Vec<u64> = stored.changed.iter().map(|(_, m, _)| *m).collect();
    assert_eq!(modseqs, [start + 4, start + 4], "one MODSEQ for the whole STORE");
    assert_eq!(highest(store.clone()).await, start + 4);
    let nothing = store.expunge(folder, Some(vec![1])).await.unwrap();
    assert_eq!((nothing.uids.len(), nothing.modseq), (0, 0), "no change, no MODSEQ");
    assert_eq!(highest(store.clone()).await, start + 4);
    let gone = store.expunge(folder, None).await.unwrap();
    assert_eq!((gone.uids, gone.modseq), (vec![2, 3], start + 5));
    let snapshot = store.folder_snapshot(mb, "inbox").await.unwrap().unwrap();
    assert_eq!((snapshot.uids, snapshot.first_unseen), (vec![1], None));

    // Emptying a folder to a `\Noselect` name is a change too.
    store.create_folder(mb, "INBOX/child").await.unwrap();
    store.clear_folder(folder).await.unwrap();
    let cleared = store.folder_snapshot(mb, "inbox").await.unwrap().unwrap();
    assert!(cleared.folder.noselect);
    assert_eq!(cleared.folder.highestmodseq, start + 6);
    assert!(cleared.uids.is_empty());
    let work = store.create_folder(mb, "Work").await.unwrap().id;
    assert!(store.folder_snapshot(mb, "Work").await.unwrap().is_some());
    store.delete_folder(work).await.unwrap();
    assert_eq!(store.folder_snapshot(mb, "Work").await.unwrap(), None);
}
}

on_both_backends! {
#[tokio::test]
async fn uids_increase_and_are_never_reused_after_expunge_or_restart() {
    let (dir, store, _, folder) = one_mailbox().await;
    let mut last = 0;
    for n in 0..5 {
        let a = store
            .append(
                folder,
                &message(n),
                Flags::default(),
                mssante::clock::SystemClock::now_utc(),
            )
            .await
            .unwrap();
        assert!(a.uid > last, "UIDs strictly increase");
        last = a.uid;
    }
    store
        .store_flags(
            folder,
            vec![4, 5],
            FlagOp::Add,
            Flags::new(flag::DELETED),
            None,
        )
        .await
        .unwrap();
    let expunged = store.expunge(folder, None).await.unwrap();
    assert_eq!(expunged.uids, vec![4, 5]);
    let folder_row = store.folder_by_id(folder).await.unwrap().unwrap();
    assert_eq!(expunged.modseq, folder_row.highestmodseq, "the MODSEQ it took");
    let a = store
        .append(
            folder,
            &message(9),
            Flags::default(),
            mssante::clock::SystemClock::now_utc(),
        )
        .await
        .unwrap();
    assert_eq!(a.uid, 6, "expunged UIDs are not handed out again");
    let validity = a.uidvalidity;
    store.close().await;

    let store = dir.open().await;
    let a = store
        .append(
            folder,
            &message(10),
            Flags::default(),
            mssante::clock::SystemClock::now_utc(),
        )
        .await
        .unwrap();
    assert_eq!(a.uid, 7, "UIDNEXT survives a restart");
    assert_eq!(a.uidvalidity, validity);
    let uids: Vec<u32> = store
        .messages(folder)
        .await
        .unwrap()
        .iter()
        .map(|m| m.uid)
        .collect();
    assert_eq!(uids, [1, 2, 3, 6, 7]);
    assert_eq!(store.vanished_since(folder, 0).await.unwrap(), [4, 5]);
}
}

on_both_backends! {
#[tokio::test]
async fn concurrent_appenders_get_unique_gap_free_uids() {
    let (_dir, store, _, folder) = one_mailbox().await;
    let mut tasks = Vec::new();
    for w in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut uids = Vec::new();
            for n in 0..50 {
                let a = store
                    .append(
                        folder,
                        &message(w * 1000 + n),
                        Flags::default(),
                        mssante::clock::SystemClock::now_utc(),
                    )
                    .await
                    .unwrap();
                uids.push(a.uid);
            }
            uids
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        let uids = t.await.unwrap();
        assert!(
            uids.windows(2).all(|w| w[0] < w[1]),
            "each writer sees increasing UIDs"
        );
        all.extend(uids);
    }
    all.sort_unstable();
    assert_eq!(all, (1..=400).collect::<Vec<u32>>());
    let f = store.folder_by_id(folder).await.unwrap().unwrap();
    assert_eq!(f.uidnext, 401);
}
}

on_both_backends! {
#[tokio::test]
async fn copy_and_move_keep_flags_and_modseq_grows_on_every_change() {
    let (_dir, store, mb, inbox) = one_mailbox().await;
    let trash = store.folder(mb, "Trash").await.unwrap().unwrap().id;
    let archive = store.create_folder(mb, "Archive").await.unwrap().id;

    let mut seen = Flags::new(flag::SEEN | flag::FLAGGED);
    seen.keywords.insert("$Important".into());
    let a1 = store
        .append(
            inbox,
            &message(1),
            seen.clone(),
            mssante::clock::SystemClock::now_utc(),
        )
        .await
        .unwrap();
    let a2 = store
        .append(
            inbox,
            &message(2),
            Flags::default(),
            mssante::clock::SystemClock::now_utc(),
        )
        .await
        .unwrap();
    assert!(a2.modseq > a1.modseq);

    let out = store
        .store_flags(
            inbox,
            vec![2],
            FlagOp::Add,
            Flags::new(flag::ANSWERED),
            None,
        )
        .await
        .unwrap();
    let m_store = out.changed[0].1;
    assert!(m_store > a2.modseq);
    let again = store
        .store_flags(
            inbox,
            vec![2],
            FlagOp::Add,
            Flags::new(flag::ANSWERED),
            None,
        )
        .await
        .unwrap();
    assert!(again.changed.is_empty(), "no change, no new MODSEQ");
    let refused = store
        .store_flags(
            inbox,
            vec![2],
            FlagOp::Add,
            Flags::new(flag::SEEN),
            Some(a2.modseq),
        )
        .await
        .unwrap();
    assert_eq!(
        refused.modified,
        [2],
        "UNCHANGEDSINCE protects a message changed since"
    );

    let copied = store.copy(inbox, vec![1, 2], archive).await.unwrap();
    assert_eq!(copied.pairs, [(1, 1), (2, 2)]);
    let in_archive = store.messages(archive).await.unwrap();
    assert_eq!(in_archive[0].flags, seen);
    assert!(in_archive[1].flags.has(flag::ANSWERED));

    let moved = store.move_messages(archive, vec![1], trash).await.unwrap();
    assert_eq!(moved.pairs, [(1, 1)]);
    assert_eq!(store.messages(trash).await.unwrap()[0].flags, seen);
    let left: Vec<u32> = store
        .messages(archive)
        .await
        .unwrap()
        .iter()
        .map(|m| m.uid)
        .collect();
    assert_eq!(left, [2]);

    let f = store.folder_by_id(inbox).await.unwrap().unwrap();
    assert_eq!(f.highestmodseq, m_store, "HIGHESTMODSEQ is the last change");
    let changed = store.changed_since(inbox, a2.modseq).await.unwrap();
    assert_eq!(changed.iter().map(|m| m.uid).collect::<Vec<_>>(), [2]);
}
}

on_both_backends! {
#[tokio::test]
async fn one_body_for_many_recipients_and_deletion_removes_orphans() {
    let dir = Place::new().await;
    let store = dir.open().await;
    let mut folders = Vec::new();
    for i in 0..50 {
        let mb = mailbox(&store, &format!("user{i}@one.mssante.fr")).await;
        folders.push(inbox(&store, mb).await);
    }
    let raw = Arc::new(RawMessage::new(&message(1)));
    let delivered = store
        .deliver(folders.clone(), raw, mssante::clock::SystemClock::now_utc())
        .await
        .unwrap();
    assert_eq!(delivered.len(), 50);
    assert_eq!(
        dir.count_rows("bodies").await,
        1,
        "the body is stored once"
    );
    assert_eq!(dir.count_rows("messages").await, 50);

    let keep = mailbox(&store, "own@one.mssante.fr").await;
    let own = inbox(&store, keep).await;
    store
        .append(
            own,
            &message(2),
            Flags::default(),
            mssante::clock::SystemClock::now_utc(),
        )
        .await
        .unwrap();

    for i in 0..49 {
        assert!(
            store
                .delete_mailbox(&format!("user{i}@one.mssante.fr"))
                .await
                .unwrap()
        );
    }
    assert_eq!(
        dir.count_rows("bodies").await,
        2,
        "still used by user49"
    );
    assert!(store.delete_mailbox("user49@one.mssante.fr").await.unwrap());
    assert_eq!(
        dir.count_rows("bodies").await,
        1,
        "the orphan body is gone"
    );
    assert_eq!(dir.count_rows("messages").await, 1);
    assert!(!store.delete_mailbox("user49@one.mssante.fr").await.unwrap());
    let body = store
        .body(store.messages(own).await.unwrap()[0].body_id)
        .await
        .unwrap();
    assert_eq!(
        body,
        message(2),
        "header and content join back byte for byte"
    );
}
}

on_both_backends! {
/// Concurrent appends share multi-row statements: each caller must still hear the UID
/// and MODSEQ its own message got, with its own flags, even beside identical messages.
#[tokio::test]
async fn each_concurrent_append_is_answered_with_its_own_uid() {
    let dir = Place::new().await;
    let store = dir.open().await;
    let a = inbox(&store, mailbox(&store, "a@one.mssante.fr").await).await;
    let b = inbox(&store, mailbox(&store, "b@one.mssante.fr").await).await;
    let mut tasks = Vec::new();
    for n in 0..200 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let folder = if n % 3 == 0 { b } else { a };
            // every fifth message is the same bytes as another one: one shared body
            let bytes = message(if n % 5 == 0 { 0 } else { n });
            let flags = Flags::new(if n % 2 == 0 {
                flag::SEEN
            } else {
                flag::FLAGGED
            });
            let appended = store
                .append(
                    folder,
                    &bytes,
                    flags.clone(),
                    mssante::clock::SystemClock::now_utc(),
                )
                .await
                .unwrap();
            (folder, bytes, flags, appended)
        }));
    }
    let mut modseqs = HashSet::new();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    for (folder, bytes, flags, appended) in answers {
        assert_eq!(appended.folder_id, folder);
        assert!(
            modseqs.insert((folder, appended.modseq)),
            "MODSEQ handed out twice"
        );
        let meta = store
            .messages(folder)
            .await
            .unwrap()
            .into_iter()
            .find(|m| m.uid == appended.uid)
            .unwrap();
        assert_eq!(meta.modseq, appended.modseq);
        assert_eq!(meta.flags, flags, "flags of UID {}", appended.uid);
        assert_eq!(
            store.body(meta.body_id).await.unwrap(),
            bytes,
            "UID {}",
            appended.uid
        );
    }
}
}

on_both_backends! {
#[tokio::test]
async fn one_failing_write_does_not_undo_its_batch_neighbours() {
    let (_dir, store, _, folder) = one_mailbox().await;
    let mut tasks = Vec::new();
    for n in 0..40 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            if n % 4 == 0 {
                // an unknown folder: fails inside the shared transaction
                store
                    .append(
                        999_999,
                        &message(n),
                        Flags::default(),
                        mssante::clock::SystemClock::now_utc(),
                    )
                    .await
                    .is_err()
            } else {
                store
                    .append(
                        folder,
                        &message(n),
                        Flags::default(),
                        mssante::clock::SystemClock::now_utc(),
                    )
                    .await
                    .is_ok()
            }
        }));
    }
    for t in tasks {
        assert!(t.await.unwrap());
    }
    assert_eq!(store.messages(folder).await.unwrap().len(), 30);
}
}

/// Appends forever, printing each acknowledged UID; killed by the test below.
#[tokio::test]
async fn child_appender() {
    let Ok(dir) = std::env::var("MSSANTE_CHILD_STORE") else {
        return; // only runs as the child of `acknowledged_appends_survive_kill_9`
    };
    let store = Store::open(std::path::Path::new(&dir), mssante::clock::system())
        .await
        .unwrap();
    let mb = store
        .mailbox("crash@one.mssante.fr")
        .await
        .unwrap()
        .unwrap();
    let folder = inbox(&store, mb.id).await;
    let mut tasks = Vec::new();
    for w in 0..4 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0.. {
                let body = message(w * 1_000_000 + n);
                let a = store
                    .append(
                        folder,
                        &body,
                        Flags::default(),
                        mssante::clock::SystemClock::now_utc(),
                    )
                    .await
                    .unwrap();
                println!("acked {} {}", a.uid, w * 1_000_000 + n);
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

#[tokio::test]
async fn acknowledged_appends_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), mssante::clock::system())
            .await
            .unwrap();
        mailbox(&store, "crash@one.mssante.fr").await;
        store.close().await;
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_appender",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("MSSANTE_CHILD_STORE", dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut acked = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("acked ") {
            let (uid, n) = rest.split_once(' ').unwrap();
            acked.push((uid.parse::<u32>().unwrap(), n.parse::<usize>().unwrap()));
            if acked.len() >= 300 {
                break;
            }
        }
    }
    // SIGKILL: no destructor, no flush, in the middle of the next batches.
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(acked.len() >= 300, "the child acknowledged appends");

    let store = Store::open(dir.path(), mssante::clock::system())
        .await
        .unwrap();
    let mb = store
        .mailbox("crash@one.mssante.fr")
        .await
        .unwrap()
        .unwrap();
    let folder = inbox(&store, mb.id).await;
    let present = store.messages(folder).await.unwrap();
    let by_uid: std::collections::HashMap<u32, i64> =
        present.iter().map(|m| (m.uid, m.body_id)).collect();
    for (uid, n) in &acked {
        let body_id = by_uid
            .get(uid)
            .unwrap_or_else(|| panic!("acknowledged UID {uid} lost"));
        assert_eq!(store.body(*body_id).await.unwrap(), message(*n));
    }
    let uids: HashSet<u32> = present.iter().map(|m| m.uid).collect();
    assert_eq!(uids.len(), present.len());
    // Appending again continues after everything that was committed.
    let a = store
        .append(
            folder,
            &message(0),
            Flags::default(),
            mssante::clock::SystemClock::now_utc(),
        )
        .await
        .unwrap();
    assert!(a.uid > *uids.iter().max().unwrap());
}

/// What the quota's usage must equal: the mailbox's messages, counted the slow way.
async fn recount(store: &Store, mb: i64) -> (u64, u64) {
    let mut bytes = 0;
    let mut messages = 0;
    for f in store.folders(mb).await.unwrap() {
        let counts = store.counts(f.id).await.unwrap();
        bytes += counts.size;
        messages += u64::from(counts.messages);
    }
    (bytes, messages)
}

async fn usage(store: &Store, mb: i64) -> (u64, u64) {
    let q = store.quota(mb).await.unwrap().unwrap();
    (q.used_bytes, q.used_messages)
}

on_both_backends! {
#[tokio::test]
async fn quota_usage_stays_exact_across_append_expunge_copy_move_and_folder_deletion() {
    let (_dir, store, mb, inbox) = one_mailbox().await;
    let other = mailbox(&store, "b@one.mssante.fr").await;
    let other_inbox = self::inbox(&store, other).await;
    store
        .append(
            other_inbox,
            &message(99),
            Flags::default(),
            mssante::clock::SystemClock::now_utc(),
        )
        .await
        .unwrap();
    let other_usage = usage(&store, other).await;
    let check = |what: &'static str| {
        let store = store.clone();
        async move {
            let (used, real) = (usage(&store, mb).await, recount(&store, mb).await);
            assert_eq!(used, real, "after {what}");
            assert_eq!(usage(&store, other).await, other_usage, "after {what}");
        }
    };
    check("nothing").await;
    for n in 0..4 {
        store
            .append(
                inbox,
                &message(n),
                Flags::default(),
                mssante::clock::SystemClock::now_utc(),
            )
            .await
            .unwrap();
    }
    check("append").await;
    let work = store.create_folder(mb, "Work").await.unwrap().id;
    store.copy(inbox, vec![1, 2], work).await.unwrap();
    check("copy").await;
    store.move_messages(inbox, vec![3], work).await.unwrap();
    check("move").await;
    store
        .store_flags(inbox, vec![1], FlagOp::Add, Flags::new(flag::DELETED), None)
        .await
        .unwrap();
    assert_eq!(store.expunge(inbox, None).await.unwrap().uids, vec![1]);
    check("expunge").await;
    let raw = Arc::new(RawMessage::new(&message(7)));
    store
        .deliver(
            vec![inbox, work],
            raw,
            mssante::clock::SystemClock::now_utc(),
        )
        .await
        .unwrap();
    check("delivery to two folders").await;
    store.delete_folder(work).await.unwrap();
    check("folder deletion").await;
    assert_eq!(usage(&store, mb).await.1, 3);
}
}

on_both_backends! {
#[tokio::test]
async fn appends_past_a_limit_are_refused_one_by_one_even_in_one_batch() {
    let (_dir, store, mb, inbox) = one_mailbox().await;
    store
        .set_quota("a@one.mssante.fr", QuotaLimit::Keep, QuotaLimit::Set(5))
        .await
        .unwrap();
    // Concurrent appends share the writer's batches: each one is weighed against
    // what the ones before it in the same statement added.
    let tasks: Vec<_> = (0..12)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .append(
                        inbox,
                        &message(n),
                        Flags::default(),
                        mssante::clock::SystemClock::now_utc(),
                    )
                    .await
            })
        })
        .collect();
    let mut stored = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => stored += 1,
            Err(StoreError::OverQuota) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(stored, 5);
    assert_eq!(usage(&store, mb).await, recount(&store, mb).await);
    assert_eq!(usage(&store, mb).await.1, 5);
    // SMTP delivery was weighed at RCPT: it is stored past the limit.
    store
        .append_delivered(
            inbox,
            &message(50),
            Flags::default(),
            mssante::clock::SystemClock::now_utc(),
        )
        .await
        .unwrap();
    assert_eq!(usage(&store, mb).await.1, 6);
    // A copy that would go past the limit stores nothing.
    let trash = store.folder(mb, "Trash").await.unwrap().unwrap().id;
    assert!(matches!(
        store.copy(inbox, vec![1], trash).await,
        Err(StoreError::OverQuota)
    ));
    assert_eq!(store.counts(trash).await.unwrap().messages, 0);
    // Clearing the limit lets it through.
    let q = store
        .set_quota("a@one.mssante.fr", QuotaLimit::Keep, QuotaLimit::Clear)
        .await
        .unwrap();
    assert!(!q.is_limited());
    store.copy(inbox, vec![1], trash).await.unwrap();
    assert!(matches!(
        store
            .set_quota(
                "nobody@one.mssante.fr",
                QuotaLimit::Clear,
                QuotaLimit::Clear
            )
            .await,
        Err(StoreError::NoMailbox(_))
    ));
}
}

/// A store written before quotas existed: the migration counts what it already holds.
#[tokio::test]
async fn the_quota_migration_counts_the_mail_already_stored() {
    use sqlx::{ConnectOptions, Connection};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("mssante.db");
    let mut migrator = sqlx::migrate::Migrator::new(std::path::Path::new("schema/sqlite"))
        .await
        .unwrap();
    let before: Vec<_> = migrator
        .migrations
        .iter()
        .filter(|m| m.version < 11)
        .cloned()
        .collect();
    assert!(before.len() < migrator.migrations.len(), "0011 is there");
    migrator.migrations = before.into();
    let mut c = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&db)
        .create_if_missing(true)
        .foreign_keys(true)
        .connect()
        .await
        .unwrap();
    migrator.run(&mut c).await.unwrap();
    sqlx::raw_sql(
        "INSERT INTO mailboxes (id, address, kind, owner_idnat, created_at)
              VALUES (1, 'a@one.mssante.fr', 'personal', '899700771191', 0),
                     (2, 'b@one.mssante.fr', 'personal', '899700771191', 0);
         INSERT INTO folders (id, mailbox_id, name, uidvalidity) VALUES (1, 1, 'INBOX', 1),
                (2, 1, 'Work', 2), (3, 2, 'INBOX', 3);
         INSERT INTO message_appends VALUES (1, X'01', 100, X'', X'', 0, '', 0),
                (2, X'02', 250, X'', X'', 0, '', 0), (2, X'01', 100, X'', X'', 0, '', 0),
                (3, X'03', 7, X'', X'', 0, '', 0);",
    )
    .execute(&mut c)
    .await
    .unwrap();
    c.close().await.unwrap();

    let store = Store::open(dir.path(), mssante::clock::system())
        .await
        .unwrap();
    assert_eq!(usage(&store, 1).await, (450, 3));
    assert_eq!(usage(&store, 2).await, (7, 1));
    assert_eq!(usage(&store, 1).await, recount(&store, 1).await);
    let q = store.quota(1).await.unwrap().unwrap();
    assert!(!q.is_limited(), "no limit until the operator sets one");
}

/// `close` returns once no connection holds the files: the write-ahead log has been
/// folded into the database file and removed, so the folder can be copied or moved
/// (a copy taken while the writer was still closing came out malformed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_leaves_the_files_at_rest() {
    let (dir, store, _, folder) = one_mailbox().await;
    for n in 0..50 {
        store
            .append(
                folder,
                &message(n),
                Flags::default(),
                mssante::clock::SystemClock::now_utc(),
            )
            .await
            .unwrap();
    }
    store.close().await;
    let wal = dir.path().join("mssante.db-wal");
    assert!(
        !wal.exists(),
        "the write-ahead log is still there after close"
    );
    assert_eq!(count_rows(dir.path(), "messages").await, 50);
}

/// A database that does not answer is named by its host, never with its password, and
/// counts as unavailable (what `serve` waits out at start-up).
#[tokio::test]
async fn an_unreachable_postgres_is_named_without_its_password() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("k.pem"), "").unwrap();
    // Port 1 on loopback: nothing listens there.
    let mut setup = common::config::Setup::new("one.mssante.fr");
    setup.data_dir = ".".into();
    setup.certificate = "k.pem".into();
    setup.private_key = "k.pem".into();
    setup.store = "[store]\nbackend = \"postgres\"\n\
                   url = \"postgres://mssante:hunter2@127.0.0.1:1/mail\"\nconnect_timeout = \"2s\"\n"
        .into();
    let config = mssante::config::Config::parse(&setup.text(), dir.path()).unwrap();
    let e = Store::open_configured(&config, mssante::clock::system())
        .await
        .expect_err("nothing answers on port 1");
    let shown = e.to_string();
    assert!(shown.contains("127.0.0.1:1"), "{shown}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(e.is_transient(), "{e:?}");
    let described = Store::describe(&config);
    assert!(
        described.contains("127.0.0.1:1") && !described.contains("hunter2"),
        "{described}"
    );
}

/// A UID the store never wrote (a row edited behind its back) is reported as corruption,
/// not read as UID 0: a client told of UID 0 would resynchronise or lose the message.
#[tokio::test]
async fn a_uid_out_of_range_in_the_file_is_reported_as_corruption() {
    use sqlx::Connection;
    let (dir, store, _, folder) = one_mailbox().await;
    store
        .append(
            folder,
            &message(1),
            Flags::default(),
            mssante::clock::SystemClock::now_utc(),
        )
        .await
        .unwrap();
    let path = dir.path().join("mssante.db");
    let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::query("UPDATE messages SET uid = -1")
        .execute(&mut c)
        .await
        .unwrap();
    c.close().await.unwrap();
    match store.messages(folder).await {
        Err(StoreError::Backend {
            kind: BackendErrorKind::Corrupt,
            message,
        }) => assert!(message.contains("uid -1"), "{message}"),
        other => panic!("expected corruption, got {other:?}"),
    }
}

/// A body that another node files a message with while this one removes it as an
/// orphan stays, and the removing transaction goes on: PostgreSQL refuses the delete
/// (foreign key) only once the filing commits, after the removal looked.
#[tokio::test]
async fn an_orphan_body_filed_again_meanwhile_stays_and_the_removal_goes_on() {
    use sqlx::Connection;
    run(Backend::Postgres, async {
        let (dir, store, _, folder) = one_mailbox().await;
        let url = &dir.db.as_ref().unwrap().url;
        let mut filer = sqlx::PgConnection::connect(url).await.unwrap();
        let mut remover = sqlx::PgConnection::connect(url).await.unwrap();
        let mut watcher = sqlx::PgConnection::connect(url).await.unwrap();
        let body: i64 = sqlx::query_scalar(
            "INSERT INTO bodies (sha256, size, header, content)
             VALUES ('\\x01', 2, 'a', 'b') RETURNING id",
        )
        .fetch_one(&mut filer)
        .await
        .unwrap();
        sqlx::query("BEGIN").execute(&mut filer).await.unwrap();
        sqlx::query(
            "INSERT INTO messages (folder_id, uid, modseq, internal_date, size, body_id)
             VALUES ($1, 99, 99, 0, 2, $2)",
        )
        .bind(folder)
        .bind(body)
        .execute(&mut filer)
        .await
        .unwrap();
        sqlx::query("BEGIN").execute(&mut remover).await.unwrap();
        let removal = tokio::spawn(async move {
            let removed = sqlx::query("SELECT delete_orphan_bodies(ARRAY[$1::bigint])")
                .bind(body)
                .execute(&mut remover)
                .await
                .map(|_| ());
            (remover, removed)
        });
        // The removal saw no message with the body and waits for the filing's lock.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM pg_stat_activity
                  WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .fetch_one(&mut watcher)
            .await
            .unwrap();
            if waiting == 1 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the removal never waited"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        sqlx::query("COMMIT").execute(&mut filer).await.unwrap();
        let (mut remover, removed) = removal.await.unwrap();
        removed.expect("the refusal stays inside the removal");
        sqlx::query("COMMIT").execute(&mut remover).await.unwrap();
        assert_eq!(dir.count_rows("bodies").await, 1, "the body stays");
        let filed = store.messages(folder).await.unwrap();
        assert_eq!((filed.len(), filed[0].body_id), (1, body));
        store.close().await;
    })
    .await
}

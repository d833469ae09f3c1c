//! `mssante backup` and `mssante restore` as an operator runs them: a backup taken while
//! IMAP clients append as fast as they can restores to a sound database holding every
//! message acknowledged before the backup began; a restore is refused while a server
//! runs on the data folder.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use common::Client;
use common::smtp::*;
use tokio::process::Command;

async fn mssante(config: &Path, args: &[&str]) -> std::process::Output {
    Command::from(common::cli::command(config, args))
        .output()
        .await
        .unwrap()
}

/// Appends `c<client>-<n>` messages until `stop`, recording each one acknowledged.
async fn appender(
    a: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    login: String,
    client: usize,
    acked: Arc<Mutex<Vec<String>>>,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut c = Client::plain(a).await;
    c.upgrade_config(tls).await;
    c.line().await;
    let lines = c.cmd(&format!("AUTHENTICATE XOAUTH2 {login}")).await;
    assert!(common::last(&lines).contains("OK"), "{lines:?}");
    let mut n = 0;
    while !stop.is_cancelled() {
        let id = format!("c{client}-{n}");
        let message = format!("Subject: {id}\r\nMessage-ID: <{id}@test>\r\n\r\nbody of {id}\r\n");
        let tag = c.next_tag();
        c.send(format!("{tag} APPEND INBOX {{{}+}}\r\n{message}\r\n", message.len()).as_bytes())
            .await;
        let lines = c.until(&tag).await;
        assert!(common::last(&lines).contains("OK"), "{lines:?}");
        acked.lock().unwrap().push(id);
        n += 1;
    }
    c.cmd("LOGOUT").await;
}

fn subjects(messages: &[Vec<u8>]) -> Vec<String> {
    messages
        .iter()
        .filter_map(|m| {
            String::from_utf8_lossy(m)
                .lines()
                .find_map(|l| l.strip_prefix("Subject: ").map(str::to_owned))
        })
        .collect()
}

#[tokio::test]
async fn a_backup_during_an_append_storm_restores_every_acknowledged_message() {
    let pki = Pki::new();
    let a = Instance::start(&pki, Options::new("a.mssante.test")).await;
    let address = a.mailbox("house", IDNAT).await;
    let config = a.dir.path().join("config.toml");
    let token = a.token();
    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = tokio_util::sync::CancellationToken::new();
    let storm: Vec<_> = (0..4)
        .map(|client| {
            tokio::spawn(appender(
                a.imap_tls(),
                pki.client(None),
                common::xoauth2(&address, &token),
                client,
                acked.clone(),
                stop.clone(),
            ))
        })
        .collect();
    eventually("the storm to get going", || async {
        acked.lock().unwrap().len() >= 50
    })
    .await;

    let backup = a.dir.path().join("backup.db");
    let before: Vec<String> = acked.lock().unwrap().clone();
    let out = mssante(&config, &["backup", "--to", backup.to_str().unwrap()]).await;
    let after = acked.lock().unwrap().len();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("backup written"));
    // A second backup never overwrites the first.
    let again = mssante(&config, &["backup", "--to", backup.to_str().unwrap()]).await;
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    // No restore under a running server.
    let refused = mssante(&config, &["restore", "--from", backup.to_str().unwrap()]).await;
    assert_eq!(refused.status.code(), Some(1));
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("a server is running"), "{said}");

    stop.cancel();
    for s in storm {
        s.await.unwrap();
    }
    let total = acked.lock().unwrap().len();
    let kept = a.stop_keeping_data().await;
    // The storm went on while the backup was taken, and after.
    assert!(
        total > after && after >= before.len(),
        "{before:?} {after} {total}"
    );

    // Restore into another data folder, as after losing the machine.
    let elsewhere = tempfile::tempdir().unwrap();
    let data = elsewhere.path().join("data");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &kept.dir.path().join("data").to_string_lossy().to_string(),
        &data.to_string_lossy(),
    );
    let config2 = elsewhere.path().join("config.toml");
    std::fs::write(&config2, text).unwrap();
    let out = mssante(&config2, &["restore", "--from", backup.to_str().unwrap()]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verdict = integrity(&data.join("mssante.db")).await;
    assert_eq!(verdict, ["ok"]);
    let store = mssante::store::Store::open(&data, mssante::clock::system())
        .await
        .unwrap();
    let restored = subjects(&folder_messages(&store, &address, "INBOX").await);
    for id in &before {
        assert!(
            restored.contains(id),
            "{id} was acknowledged before the backup"
        );
    }
    // Nothing that was never acknowledged, and nothing twice.
    let everything = acked.lock().unwrap().clone();
    for id in &restored {
        assert!(everything.contains(id), "{id} was never acknowledged");
    }
    let mut unique = restored.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), restored.len());
    store.close().await;

    // Restoring over an existing database keeps the one it replaces.
    let out = mssante(&config2, &["restore", "--from", backup.to_str().unwrap()]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(data.join("mssante.db.before-restore").is_file());
}

async fn integrity(db: &Path) -> Vec<String> {
    let url = format!("sqlite://{}?mode=ro", db.to_string_lossy());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let verdict: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    verdict
}

/// Servers (and nodes restarted in place) share the folder's lock; a restore needs it
/// alone.
#[tokio::test]
async fn servers_share_the_folder_and_a_restore_needs_it_alone() {
    let dir = tempfile::tempdir().unwrap();
    let _server = mssante::store::ServingLock::take(dir.path()).unwrap();
    let _second_server = mssante::store::ServingLock::take(dir.path()).unwrap();
    let backup = dir.path().join("none.db");
    std::fs::write(&backup, b"").unwrap();
    let e = mssante::store::restore(dir.path(), &backup)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("a server is running"), "{e}");
}

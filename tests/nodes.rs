//! Several `serve` nodes on one PostgreSQL database: what a session on one node sees of
//! the others, UIDs under writers on both, and the outbound queue worked by both.
//!
//! Each node is a `serve` process of its own (`common::node`: its own connection pool,
//! notification listener, node stamp and queue runner) started from the same
//! configuration file, as two machines behind a load balancer would be. A test that
//! reads the store opens a `Store` of its own on the same database; after a node is
//! killed, the node that takes its queue over may be a server in the test's process, on
//! the same data. Without PostgreSQL these tests say SKIPPED (and fail in CI).

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;

use common::node::Node;
use common::postgres::{Backend, Database, run};
use common::smtp::{
    Gate, IDNAT, Instance, Pki, authenticated, create_mailbox, eventually, folder_messages,
    message, operator_a, operator_b, write_config,
};
use common::{CUDDY, CUDDY_BAL, Client, HOUSE, HOUSE_BAL, World, last, world};
use mssante::config::Config;
use mssante_conformance::psc_standin::{PscStandIn, TokenSpec};

/// Two `serve` processes on the database and configuration of `w`, whose own server
/// stops: from then on only they serve (`w` keeps its PSC stand-in and database).
async fn two_nodes(w: &mut World) -> (Node, Node) {
    if let Some(running) = w.running.take() {
        running.stop().await;
    }
    let config = w.dir.path().join("config.toml");
    (Node::start(&config).await, Node::start(&config).await)
}

/// A client of the node whose IMAP (implicit TLS) listener is at `imap`, logged in on
/// `address` as `idnat` through `w`'s PSC.
async fn login_on(w: &World, imap: SocketAddr, address: &str, idnat: &str) -> Client {
    let mut c = Client::plain(imap).await;
    c.upgrade(&w.ca).await;
    c.line().await;
    let lines = c
        .cmd(&format!(
            "AUTHENTICATE XOAUTH2 {}",
            w.xoauth2(address, idnat)
        ))
        .await;
    assert!(last(&lines).contains("OK"), "{lines:?}");
    c
}

async fn append(c: &mut Client, message: &str) -> Vec<String> {
    let tag = c.next_tag();
    c.send(format!("{tag} APPEND INBOX {{{}+}}\r\n", message.len()).as_bytes())
        .await;
    c.send(message.as_bytes()).await;
    c.send(b"\r\n").await;
    c.until(&tag).await
}

/// Operator B with its mailbox made, then down (data kept for `Instance::start_in`):
/// the address of that mailbox and the kept data.
async fn operator_b_down(pki: &Pki) -> (String, common::smtp::Kept) {
    let b = Instance::start(pki, operator_b(pki)).await;
    let remote = b.mailbox("cameron", common::smtp::OTHER_IDNAT).await;
    (remote, b.stop_keeping_data().await)
}

/// `want` messages came, each subject once.
fn assert_each_once(got: &[Vec<u8>], want: usize) {
    let subjects: Vec<String> = got
        .iter()
        .map(|m| {
            String::from_utf8_lossy(m)
                .lines()
                .find_map(|l| l.strip_prefix("Subject: "))
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    let unique: HashSet<&String> = subjects.iter().collect();
    assert_eq!(unique.len(), want, "{subjects:?}");
    assert_eq!(subjects.len(), want, "each message once: {subjects:?}");
}

const NOTE: &str = "From: lisa.cuddy@h.mssante.fr\r\nTo: gregory.house@h.mssante.fr\r\nSubject: note\r\n\r\nSee me.\r\n";

#[tokio::test]
async fn idle_on_one_node_sees_changes_made_through_the_other_within_a_second() {
    run(Backend::Postgres, async {
        let mut w = world("").await;
        let (a, b) = two_nodes(&mut w).await;
        let mut on_b = login_on(&w, b.imap_tls(), HOUSE_BAL, HOUSE).await;
        let mut on_a = login_on(&w, a.imap_tls(), HOUSE_BAL, HOUSE).await;
        assert!(
            on_b.cmd("SELECT INBOX")
                .await
                .iter()
                .any(|l| l == "* 0 EXISTS\r\n")
        );
        on_b.send(b"i1 IDLE\r\n").await;
        assert!(on_b.line().await.starts_with("+ "));

        let appended = Instant::now();
        let r = append(&mut on_a, NOTE).await;
        assert!(last(&r).contains("OK"), "{r:?}");
        let seen = tokio::time::timeout(Duration::from_secs(1), on_b.line())
            .await
            .expect("node B told its IDLE session within a second");
        assert_eq!(seen, "* 1 EXISTS\r\n", "after {:?}", appended.elapsed());

        // Flag changes and expunges made on A arrive too.
        assert!(on_a.cmd("SELECT INBOX").await.len() > 1);
        on_a.cmd("STORE 1 +FLAGS (\\Deleted)").await;
        let mut saw_flags = false;
        let deadline = Instant::now() + Duration::from_secs(2);
        while !saw_flags && Instant::now() < deadline {
            let l = tokio::time::timeout(Duration::from_secs(1), on_b.line())
                .await
                .expect("the flag change reached B");
            saw_flags = l.contains("FETCH") && l.contains("\\Deleted");
        }
        assert!(saw_flags);
        on_a.cmd("EXPUNGE").await;
        let l = tokio::time::timeout(Duration::from_secs(1), on_b.line())
            .await
            .expect("the expunge reached B");
        assert_eq!(l, "* 1 EXPUNGE\r\n");
        on_b.send(b"DONE\r\n").await;
        on_b.until("i1").await;
        b.stop().await;
        a.stop().await;
        w.stop().await;
    })
    .await
}

#[tokio::test]
async fn a_sessions_own_writes_report_what_the_other_node_changed_before_them() {
    run(Backend::Postgres, async {
        let mut w = world("").await;
        let (a, b) = two_nodes(&mut w).await;
        let mut on_a = login_on(&w, a.imap_tls(), HOUSE_BAL, HOUSE).await;
        let mut on_b = login_on(&w, b.imap_tls(), HOUSE_BAL, HOUSE).await;
        common::writers::own_writes_report_the_other_sessions_changes(&mut on_a, &mut on_b).await;
        b.stop().await;
        a.stop().await;
        w.stop().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appenders_on_both_nodes_get_unique_gap_free_uids() {
    run(Backend::Postgres, async {
        let mut w = world("").await;
        let (a, b) = two_nodes(&mut w).await;
        const CLIENTS: usize = 8;
        const EACH: usize = 10;
        let mut clients = Vec::new();
        for i in 0..CLIENTS {
            let node = if i % 2 == 0 { &a } else { &b };
            let c = login_on(&w, node.imap_tls(), CUDDY_BAL, CUDDY).await;
            clients.push(c);
        }
        let tasks: Vec<_> = clients
            .into_iter()
            .map(|mut c| {
                tokio::spawn(async move {
                    let mut uids = Vec::new();
                    for _ in 0..EACH {
                        let r = append(&mut c, NOTE).await;
                        let ok = last(&r);
                        // "tag OK [APPENDUID <validity> <uid>] …"
                        let uid = ok
                            .split("APPENDUID ")
                            .nth(1)
                            .and_then(|s| s.split([' ', ']']).nth(1))
                            .and_then(|u| u.parse::<u32>().ok())
                            .unwrap_or_else(|| panic!("{r:?}"));
                        uids.push(uid);
                    }
                    uids
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        let unique: HashSet<u32> = all.iter().copied().collect();
        assert_eq!(unique.len(), CLIENTS * EACH, "every UID handed out once");
        let expected: HashSet<u32> = (1..=(CLIENTS * EACH) as u32).collect();
        assert_eq!(unique, expected, "no gap");
        // Both nodes read the same folder.
        for node in [&a, &b] {
            let mut c = login_on(&w, node.imap_tls(), CUDDY_BAL, CUDDY).await;
            let r = c.cmd("SELECT INBOX").await;
            assert!(
                r.iter()
                    .any(|l| l == &format!("* {} EXISTS\r\n", CLIENTS * EACH)),
                "{r:?}"
            );
        }
        b.stop().await;
        a.stop().await;
        w.stop().await;
    })
    .await
}

/// Mail queued on both nodes while the other operator is down is retried by both
/// nodes' runners, every scan finding all of it due at once: only the leases keep two
/// nodes from sending the same message when it comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_submitted_on_either_node_is_delivered_once() {
    run(Backend::Postgres, async {
        let pki = Pki::new();
        // The other operator: its mailbox made, then down while the mail is queued.
        let gate = Gate::new().await;
        let (remote, b_data) = operator_b_down(&pki).await;
        gate.close();

        // Operator A: two nodes on one database, and the test's own store on it.
        let db = Database::create().await;
        let a_dir = tempfile::tempdir().unwrap();
        let psc = PscStandIn::start("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let mut oa = operator_a(&pki);
        oa.routes = vec![("b.mssante.test".into(), gate.addr.to_string())];
        let path = write_config(&pki, a_dir.path(), &psc, &oa, &db.store_toml());
        let config = Config::load(&path).unwrap();
        let store = mssante::store::Store::open_configured(&config, mssante::clock::system())
            .await
            .unwrap();
        let sender = create_mailbox(&store, "house@a.mssante.test", IDNAT).await;
        let (a1, a2) = (Node::start(&path).await, Node::start(&path).await);
        let token = psc.mint(&TokenSpec::valid(IDNAT));
        const EACH: usize = 10;
        for (name, node) in [("a1", &a1), ("a2", &a2)] {
            let submission = node.addr("SMTP", "submission_tls");
            let mut s = authenticated(submission, pki.client(None), &sender, &token).await;
            for n in 0..EACH {
                let subject = format!("from {name} #{n}");
                let (code, t) = s
                    .mail(
                        &sender,
                        &[&remote],
                        &message(&sender, &remote, &subject, 500),
                    )
                    .await;
                assert_eq!(code, 250, "{t}");
            }
        }
        // A few rounds of failed attempts (retries every second at most) on both nodes.
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(store.queue_len().await.unwrap(), 2 * EACH as u64);
        let b = Instance::start_in(&pki, operator_b(&pki), b_data).await;
        gate.open(b.inbound());
        eventually("both nodes' queues to empty", || async {
            store.queue_len().await.unwrap() == 0
        })
        .await;
        // Longer than a queue scan of either node: a second copy would have come by now.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let got = b.messages(&remote, "INBOX").await;
        assert_each_once(&got, 2 * EACH);
        // No notice of failure went back: every message was delivered, none given up.
        assert!(folder_messages(&store, &sender, "INBOX").await.is_empty());
        a2.stop().await;
        a1.stop().await;
        store.close().await;
        psc.shutdown().await;
        b.stop().await;
    })
    .await
}

#[tokio::test]
async fn a_lost_notification_connection_falls_back_to_polling() {
    run(Backend::Postgres, async {
        let mut w = world("").await;
        let (a, b) = two_nodes(&mut w).await;
        let mut on_b = login_on(&w, b.imap_tls(), HOUSE_BAL, HOUSE).await;
        let mut on_a = login_on(&w, a.imap_tls(), HOUSE_BAL, HOUSE).await;
        on_b.cmd("SELECT INBOX").await;
        // Cut every node's listening connection, as a failover or a network cut would.
        let url = &w.db.as_ref().unwrap().url;
        let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(url)
            .await
            .unwrap();
        let cut: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
              WHERE application_name = 'mssante-listener' AND datname = current_database()",
        )
        .fetch_all(&mut admin)
        .await
        .unwrap();
        assert_eq!(cut, [true, true], "one listener per node");
        on_b.send(b"i1 IDLE\r\n").await;
        assert!(on_b.line().await.starts_with("+ "));
        let r = append(&mut on_a, NOTE).await;
        assert!(last(&r).contains("OK"), "{r:?}");
        // Heard by polling (every second) or by the listener once it is back.
        let seen = tokio::time::timeout(Duration::from_secs(3), on_b.line())
            .await
            .expect("node B still saw the APPEND");
        assert_eq!(seen, "* 1 EXISTS\r\n");
        on_b.send(b"DONE\r\n").await;
        on_b.until("i1").await;
        b.stop().await;
        a.stop().await;
        w.stop().await;
    })
    .await
}

/// A node killed with `kill -9` while it holds leases on queued mail (its attempts
/// hanging on a peer that accepts and never answers): once the leases run out
/// (`[store] queue_lease`, no longer renewed), another node delivers every message,
/// each once (the dead node never heard a `250`, so the at-least-once window is empty).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nodes_queue_is_taken_over_when_its_leases_expire() {
    run(Backend::Postgres, async {
        let pki = Pki::new();
        let peer = Gate::new().await;
        let (remote, b_data) = operator_b_down(&pki).await;
        // The peer, for now: accepts connections and never says a word.
        peer.hold();

        // Node 1 of operator A, a process of its own with a 2-second lease.
        let db = Database::create().await;
        let a_dir = tempfile::tempdir().unwrap();
        let psc = PscStandIn::start("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let mut oa = operator_a(&pki);
        oa.routes = vec![("b.mssante.test".into(), peer.addr.to_string())];
        let store = format!("{}queue_lease = \"2s\"\n", db.store_toml());
        let path = write_config(&pki, a_dir.path(), &psc, &oa, &store);
        let config = Config::load(&path).unwrap();
        let sender = {
            let store = mssante::store::Store::open_configured(&config, mssante::clock::system())
                .await
                .unwrap();
            let sender = create_mailbox(&store, "house@a.mssante.test", IDNAT).await;
            store.close().await;
            sender
        };
        let node1 = Node::start(&path).await;

        const MESSAGES: usize = 10;
        let token = psc.mint(&TokenSpec::valid(IDNAT));
        let submission = node1.addr("SMTP", "submission_tls");
        let mut s = authenticated(submission, pki.client(None), &sender, &token).await;
        for n in 0..MESSAGES {
            let body = message(&sender, &remote, &format!("queued #{n}"), 500);
            let (code, t) = s.mail(&sender, &[&remote], &body).await;
            assert_eq!(code, 250, "{t}");
        }
        drop(s);
        let admin = sqlx::PgPool::connect(&db.url).await.unwrap();
        eventually("node 1 to claim every message", || async {
            let n: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM queue WHERE lease_holder IS NOT NULL")
                    .fetch_one(&admin)
                    .await
                    .unwrap();
            n == MESSAGES as i64
        })
        .await;
        // Past a renewal: a live node keeps its claims beyond the lease.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let still: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM queue WHERE lease_until > extract(epoch FROM now())::bigint",
        )
        .fetch_one(&admin)
        .await
        .unwrap();
        admin.close().await;
        assert_eq!(still, MESSAGES as i64, "node 1 renewed its leases");

        node1.kill();
        let b = Instance::start_in(&pki, operator_b(&pki), b_data).await;
        peer.open(b.inbound());
        let a2 = Instance::start_in(
            &pki,
            oa,
            common::smtp::Kept {
                dir: a_dir,
                db: Some(db),
            },
        )
        .await;
        eventually("node 2 to deliver node 1's mail", || async {
            b.messages(&remote, "INBOX").await.len() >= MESSAGES
        })
        .await;
        eventually("the queue to empty", || async {
            a2.store().queue_len().await.unwrap() == 0
        })
        .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let got = b.messages(&remote, "INBOX").await;
        assert_each_once(&got, MESSAGES);
        psc.shutdown().await;
        a2.stop().await;
        b.stop().await;
    })
    .await
}

//! The audit trail: one row per authentication decision, success or refusal, except
//! that identical decisions close together share a row with a repeat count.

use super::SqliteStore;
use crate::store::audit::{AuditEntry, AuditRecord, AuditRow, COALESCE_WINDOW_SECS};
use crate::store::error::StoreError;

/// How the peer of an identical decision is matched: by address, whatever the source
/// port (each connection of a flood has its own).
enum PeerMatch {
    Null,
    /// A GLOB pattern matching `ip:*` or `[ip]:*`.
    Address(String),
    /// Not a socket address: matched exactly.
    Exact(String),
}

impl PeerMatch {
    fn of(peer: Option<&str>) -> Self {
        let Some(peer) = peer else {
            return PeerMatch::Null;
        };
        match peer.parse::<std::net::SocketAddr>() {
            Ok(std::net::SocketAddr::V4(a)) => PeerMatch::Address(format!("{}:*", a.ip())),
            // `[` opens a character class in GLOB; `[[]` is a literal one.
            Ok(std::net::SocketAddr::V6(a)) => PeerMatch::Address(format!("[[]{}]:*", a.ip())),
            Err(_) => PeerMatch::Exact(peer.to_owned()),
        }
    }

    fn clause(&self) -> &'static str {
        match self {
            PeerMatch::Null => "peer IS NULL",
            PeerMatch::Address(_) => "peer GLOB ?",
            PeerMatch::Exact(_) => "peer = ?",
        }
    }
}

impl SqliteStore {
    pub(crate) async fn audit(&self, entry: AuditEntry) -> Result<(), StoreError> {
        self.write(move |c| {
            Box::pin(async move {
                let peer = PeerMatch::of(entry.peer.as_deref());
                // The clause is one of three fixed strings; the values are bound.
                // The clause is one of three fixed strings; the values are bound. Only
                // the latest row of the same peer address is a candidate, so the last
                // row of a peer is always its latest kind of decision.
                let sql = format!(
                    "UPDATE audit SET repeated = repeated + 1
                      WHERE id = (SELECT id FROM audit WHERE at >= ? AND {}
                                  ORDER BY id DESC LIMIT 1)
                        AND at <= ? AND protocol = ? AND mechanism IS ? AND identity IS ?
                        AND mailbox IS ? AND outcome = ? AND reason IS ?",
                    peer.clause()
                );
                let at = entry.at.timestamp();
                let mut update =
                    sqlx::query(sqlx::AssertSqlSafe(sql)).bind(at - COALESCE_WINDOW_SECS);
                match &peer {
                    PeerMatch::Null => {}
                    PeerMatch::Address(p) | PeerMatch::Exact(p) => update = update.bind(p),
                }
                let update = update
                    .bind(at)
                    .bind(&entry.protocol)
                    .bind(&entry.mechanism)
                    .bind(&entry.identity)
                    .bind(&entry.mailbox)
                    .bind(entry.outcome.as_str())
                    .bind(&entry.reason);
                if update.execute(&mut *c).await?.rows_affected() > 0 {
                    return Ok(());
                }
                sqlx::query(
                    "INSERT INTO audit (at, protocol, mechanism, identity, mailbox, peer, outcome, reason)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(entry.at.timestamp())
                .bind(&entry.protocol)
                .bind(&entry.mechanism)
                .bind(&entry.identity)
                .bind(&entry.mailbox)
                .bind(&entry.peer)
                .bind(entry.outcome.as_str())
                .bind(&entry.reason)
                .execute(&mut *c)
                .await?;
                Ok(())
            })
        })
        .await
    }

    pub(crate) async fn audit_records(
        &self,
        mailbox: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let rows: Vec<AuditRow> = sqlx::query_as(
            "SELECT * FROM (SELECT id, at, protocol, mechanism, identity, mailbox, peer, outcome, reason,
                 repeated FROM audit WHERE (?1 IS NULL OR mailbox = ?1) ORDER BY id DESC LIMIT ?2) ORDER BY id",
        )
        .bind(mailbox)
        .bind(i64::from(limit))
        .fetch_all(self.reader())
        .await?;
        Ok(rows.into_iter().map(AuditRecord::from_row).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::audit::AuditOutcome;
    use crate::store::types::from_unix;

    fn entry(at: i64, peer: Option<&str>, reason: &str) -> AuditEntry {
        AuditEntry {
            at: from_unix(at),
            protocol: "imap".into(),
            mechanism: None,
            identity: None,
            mailbox: None,
            peer: peer.map(str::to_owned),
            outcome: AuditOutcome::Failure,
            reason: Some(reason.to_owned()),
        }
    }

    #[tokio::test]
    async fn identical_decisions_close_together_share_a_row() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_file(&dir.path().join("mssante.db"))
            .await
            .unwrap();
        let t = 1_800_000_000;
        let flood = "too many unauthenticated connections from your address";
        for (i, port) in [40001, 40002, 40003].into_iter().enumerate() {
            let peer = format!("192.0.2.1:{port}");
            store
                .audit(entry(t + i as i64, Some(&peer), flood))
                .await
                .unwrap();
        }
        // Another address, another reason, an IPv6 peer twice, no peer twice.
        store
            .audit(entry(t, Some("192.0.2.10:40001"), flood))
            .await
            .unwrap();
        store
            .audit(entry(t, Some("192.0.2.1:40004"), "other"))
            .await
            .unwrap();
        for port in [1, 2] {
            let peer = format!("[2001:db8::1]:{port}");
            store.audit(entry(t, Some(&peer), flood)).await.unwrap();
        }
        store.audit(entry(t, None, flood)).await.unwrap();
        store.audit(entry(t, None, flood)).await.unwrap();
        // After another decision for the address: a row of its own, so the latest row
        // of a peer is its latest decision.
        let peer = Some("192.0.2.1:40005");
        store.audit(entry(t + 3, peer, flood)).await.unwrap();
        // Past the window: a row of its own again.
        let later = t + COALESCE_WINDOW_SECS + 10;
        let peer = Some("192.0.2.1:40006");
        store.audit(entry(later, peer, flood)).await.unwrap();
        store.audit(entry(later + 1, peer, flood)).await.unwrap();

        let rows = store.audit_records(None, 100).await.unwrap();
        let seen: Vec<(Option<&str>, Option<&str>, u32)> = rows
            .iter()
            .map(|r| {
                (
                    r.entry.peer.as_deref(),
                    r.entry.reason.as_deref(),
                    r.repeated,
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                (Some("192.0.2.1:40001"), Some(flood), 2),
                (Some("192.0.2.10:40001"), Some(flood), 0),
                (Some("192.0.2.1:40004"), Some("other"), 0),
                (Some("[2001:db8::1]:1"), Some(flood), 1),
                (None, Some(flood), 1),
                (Some("192.0.2.1:40005"), Some(flood), 0),
                (Some("192.0.2.1:40006"), Some(flood), 1),
            ]
        );
    }
}

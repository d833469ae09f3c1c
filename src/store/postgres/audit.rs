//! The audit trail on PostgreSQL: one row per decision, identical decisions close
//! together sharing a row with a repeat count (see the SQLite backend's `audit`).

use super::{PostgresStore, transaction};
use crate::store::audit::{AuditEntry, AuditRecord, AuditRow, COALESCE_WINDOW_SECS};
use crate::store::error::StoreError;

/// How the peer of an identical decision is matched: by address, whatever the source
/// port (each connection of a flood has its own).
fn peer_pattern(peer: Option<&str>) -> (Option<String>, Option<String>) {
    let Some(peer) = peer else {
        return (None, None);
    };
    // LIKE patterns; an IP address holds none of `%`, `_` or `\`.
    match peer.parse::<std::net::SocketAddr>() {
        Ok(std::net::SocketAddr::V4(a)) => (Some(format!("{}:%", a.ip())), None),
        Ok(std::net::SocketAddr::V6(a)) => (Some(format!("[{}]:%", a.ip())), None),
        Err(_) => (None, Some(peer.to_owned())),
    }
}

impl PostgresStore {
    pub(crate) async fn audit(&self, entry: AuditEntry) -> Result<(), StoreError> {
        let (like, exact) = peer_pattern(entry.peer.as_deref());
        let at = entry.at.timestamp();
        transaction!(self, |c| {
            async {
                // Only the latest row of the same peer address is a candidate, so the
                // last row of a peer is always its latest kind of decision.
                let folded = sqlx::query(
                    "UPDATE audit SET repeated = repeated + 1
                      WHERE id = (SELECT id FROM audit WHERE at >= $1
                                    AND CASE WHEN $2::text IS NOT NULL THEN peer LIKE $2
                                             WHEN $3::text IS NOT NULL THEN peer = $3
                                             ELSE peer IS NULL END
                                  ORDER BY id DESC LIMIT 1)
                        AND at <= $4 AND protocol = $5 AND mechanism IS NOT DISTINCT FROM $6
                        AND identity IS NOT DISTINCT FROM $7 AND mailbox IS NOT DISTINCT FROM $8
                        AND outcome = $9 AND reason IS NOT DISTINCT FROM $10",
                )
                .bind(at - COALESCE_WINDOW_SECS)
                .bind(&like)
                .bind(&exact)
                .bind(at)
                .bind(&entry.protocol)
                .bind(&entry.mechanism)
                .bind(&entry.identity)
                .bind(&entry.mailbox)
                .bind(entry.outcome.as_str())
                .bind(&entry.reason)
                .execute(&mut *c)
                .await?;
                if folded.rows_affected() > 0 {
                    return Ok(());
                }
                sqlx::query(
                    "INSERT INTO audit (at, protocol, mechanism, identity, mailbox, peer, outcome, reason)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(at)
                .bind(&entry.protocol)
                .bind(&entry.mechanism)
                .bind(&entry.identity)
                .bind(&entry.mailbox)
                .bind(&entry.peer)
                .bind(entry.outcome.as_str())
                .bind(&entry.reason)
                .execute(&mut *c)
                .await?;
                Ok::<_, StoreError>(())
            }
            .await
        })
    }

    pub(crate) async fn audit_records(
        &self,
        mailbox: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let rows: Vec<AuditRow> = sqlx::query_as(
            "SELECT * FROM (SELECT id, at, protocol, mechanism, identity, mailbox, peer, outcome,
                 reason, repeated FROM audit WHERE ($1::text IS NULL OR mailbox = $1)
                 ORDER BY id DESC LIMIT $2) AS latest ORDER BY id",
        )
        .bind(mailbox)
        .bind(i64::from(limit))
        .fetch_all(self.reader())
        .await?;
        Ok(rows.into_iter().map(AuditRecord::from_row).collect())
    }
}

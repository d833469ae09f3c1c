//! The single writer: every write runs on one connection, and the writes that arrive
//! while a commit is being flushed share the next transaction (group commit).
//!
//! SQLite allows one writer at a time anyway; funnelling writes through one task turns
//! that limit into batching, so throughput is not capped at one fsync per message. One
//! failing write never undoes its neighbours (each write has its own savepoint, and a
//! failed append statement is backed out by SQLite and its rows retried one by one), and
//! every caller hears back only after the COMMIT that made its write durable.
//!
//! sqlx runs the connection on a thread of its own, and every statement sent there costs
//! a thread hand-off each way: on a disk with fast fsync, hand-offs rather than SQLite
//! bound the batch. Appends, the hot write, are therefore not closures but data: the
//! appends of a batch go to SQLite as a few multi-row statements (`append::append_rows`),
//! so sixty-four of them cost a handful of hand-offs instead of sixty-four.

use std::sync::{Arc, OnceLock};

use futures::future::BoxFuture;
use sqlx::{Connection, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

use super::append::{AppendFailure, NewAppend, append_rows};
use crate::store::CommitObserver;
use crate::store::error::{BackendErrorKind, StoreError};
use crate::store::types::Appended;

/// Sends the result to the caller once the batch's fate is known.
type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

type Run =
    Box<dyn for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, (bool, Completion)> + Send>;

/// What the writer is sent.
pub(super) enum Job {
    Write(Write),
    /// Finish what was queued before, close the connection (SQLite checkpoints the WAL
    /// into the database file as its last connection goes), then say so. Until then the
    /// files are still being written: whoever copies or moves them must wait for this.
    Close(oneshot::Sender<()>),
}

/// A write waiting for the writer.
pub(super) enum Write {
    /// Any write: runs on the writer's connection inside a savepoint, says whether it
    /// succeeded, and hands back how to answer its caller.
    Run(Run),
    /// One message into one folder, grouped with the batch's other appends.
    Append {
        append: NewAppend,
        reply: oneshot::Sender<Result<Appended, StoreError>>,
    },
}

/// Most writes grouped in one transaction; bounds the latency of the first in a batch.
const MAX_BATCH: usize = 512;

/// Rows per multi-row append statement, largest first. A few fixed sizes keep the
/// prepared-statement cache small; a group of appends is cut greedily into them.
const APPEND_CHUNKS: [usize; 4] = [64, 16, 4, 1];

/// Message bytes per multi-row statement: SQLite copies what is bound, so a statement of
/// sixty-four large messages would hold a second copy of all of them at once.
const APPEND_CHUNK_BYTES: usize = 4 << 20;

/// How many of the next appends (their sizes) go into one statement: the largest of
/// `APPEND_CHUNKS` that they fill within `APPEND_CHUNK_BYTES`, and at least one.
fn chunk_len(sizes: &[usize]) -> usize {
    APPEND_CHUNKS
        .into_iter()
        .find(|&n| n <= sizes.len() && sizes[..n].iter().sum::<usize>() <= APPEND_CHUNK_BYTES)
        .unwrap_or(1)
}

pub(super) fn job<T, F>(f: F) -> (Job, oneshot::Receiver<Result<T, StoreError>>)
where
    T: Send + 'static,
    F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T, StoreError>>
        + Send
        + 'static,
{
    let (tx, rx) = oneshot::channel();
    let run: Run = Box::new(move |conn| {
        Box::pin(async move {
            let result = f(conn).await;
            let ok = result.is_ok();
            let completion: Completion = Box::new(move |commit| {
                let _ = tx.send(commit.and(result));
            });
            (ok, completion)
        })
    });
    (Job::Write(Write::Run(run)), rx)
}

pub(super) fn append(append: NewAppend) -> (Job, oneshot::Receiver<Result<Appended, StoreError>>) {
    let (reply, rx) = oneshot::channel();
    (Job::Write(Write::Append { append, reply }), rx)
}

/// `observe` hears of each durable commit: how long its transaction took and how many
/// writes it held.
pub(super) async fn run(
    mut conn: SqliteConnection,
    mut jobs: mpsc::Receiver<Job>,
    observe: Arc<OnceLock<CommitObserver>>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut last = 0;
    let mut closing = None;
    while let Some(first) = jobs.recv().await {
        match first {
            Job::Write(w) => batch.push(w),
            Job::Close(ack) => {
                closing = Some(ack);
                break;
            }
        }
        closing = gather(&mut jobs, &mut batch);
        // The callers the last commit answered are about to write again. Starting
        // without them splits steady load into two half batches that take turns, each
        // paying a commit; a few scheduler turns let them catch up. A lone writer never
        // waits: its batch is as large as the last.
        let mut turns = 0;
        while closing.is_none() && batch.len() < last && turns < GATHER_TURNS {
            tokio::task::yield_now().await;
            closing = gather(&mut jobs, &mut batch);
            turns += 1;
        }
        last = batch.len();
        let started = tokio::time::Instant::now();
        match Batch::new(&mut conn).run(&mut batch).await {
            Ok(done) => {
                if let Some(observe) = observe.get() {
                    observe(started.elapsed(), done.len());
                }
                for completion in done {
                    completion(Ok(()));
                }
            }
            Err((err, done)) => {
                tracing::error!(error = %err, "commit failed; the batch is rolled back");
                for completion in done {
                    completion(Err(err.clone()));
                }
            }
        }
        if closing.is_some() {
            break;
        }
    }
    // Writes sent after the close find the queue shut and hear `StoreError::Closed`.
    jobs.close();
    if let Err(e) = conn.close().await {
        tracing::warn!(error = %e, "closing the writer's connection");
    }
    if let Some(ack) = closing {
        let _ = ack.send(());
    }
}

/// Scheduler turns the writer gives callers to resubmit before it starts a batch
/// smaller than the last one.
const GATHER_TURNS: usize = 8;

/// Takes what is already queued, up to a batch; stops at a close, which it hands back.
fn gather(jobs: &mut mpsc::Receiver<Job>, batch: &mut Vec<Write>) -> Option<oneshot::Sender<()>> {
    while batch.len() < MAX_BATCH {
        match jobs.try_recv() {
            Ok(Job::Close(ack)) => return Some(ack),
            Ok(Job::Write(w)) => batch.push(w),
            Err(_) => break,
        }
    }
    None
}

type BatchFailure = (StoreError, Vec<Completion>);

/// One transaction under way: the jobs that ran in it, and the transaction and savepoint
/// bookkeeping not yet sent, which rides along with the next statement so it costs no
/// round trip of its own.
struct Batch<'c> {
    conn: &'c mut SqliteConnection,
    pending: String,
    done: Vec<Completion>,
}

impl<'c> Batch<'c> {
    fn new(conn: &'c mut SqliteConnection) -> Self {
        Batch {
            conn,
            pending: String::from("BEGIN IMMEDIATE"),
            done: Vec::new(),
        }
    }

    /// Jobs not reached when the transaction fails are dropped with `batch`'s drain:
    /// their callers hear that the write did not happen.
    async fn run(mut self, batch: &mut Vec<Write>) -> Result<Vec<Completion>, BatchFailure> {
        self.done.reserve(batch.len());
        let mut appends = Vec::new();
        for job in batch.drain(..) {
            match job {
                Write::Append { append, reply } => appends.push((append, reply)),
                Write::Run(run) => {
                    self.appends(std::mem::take(&mut appends)).await?;
                    self.savepoint(run).await?;
                }
            }
        }
        self.appends(appends).await?;
        self.queue("COMMIT");
        self.flush().await?;
        Ok(self.done)
    }

    fn queue(&mut self, sql: &str) {
        if !self.pending.is_empty() {
            self.pending.push_str("; ");
        }
        self.pending.push_str(sql);
    }

    async fn flush(&mut self) -> Result<(), BatchFailure> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let sql = std::mem::take(&mut self.pending);
        match sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut *self.conn)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => Err(self.abort(StoreError::from(e)).await),
        }
    }

    async fn abort(&mut self, err: StoreError) -> BatchFailure {
        let _ = sqlx::query("ROLLBACK").execute(&mut *self.conn).await;
        (err, std::mem::take(&mut self.done))
    }

    async fn savepoint(&mut self, run: Run) -> Result<(), BatchFailure> {
        self.queue("SAVEPOINT w");
        self.flush().await?;
        let (ok, completion) = run(self.conn).await;
        self.done.push(completion);
        self.queue(if ok {
            "RELEASE w"
        } else {
            "ROLLBACK TO w; RELEASE w"
        });
        Ok(())
    }

    /// Runs a group of appends as few multi-row statements. A statement that fails is
    /// backed out by SQLite alone; its rows are then tried one by one, so only the
    /// appends that cannot be made are refused.
    async fn appends(
        &mut self,
        mut group: Vec<(NewAppend, oneshot::Sender<Result<Appended, StoreError>>)>,
    ) -> Result<(), BatchFailure> {
        while !group.is_empty() {
            let sizes: Vec<usize> = group
                .iter()
                .take(APPEND_CHUNKS[0])
                .map(|(a, _)| a.raw.len())
                .collect();
            let size = chunk_len(&sizes);
            let chunk: Vec<_> = group.drain(..size).collect();
            self.flush().await?;
            let rows: Vec<&NewAppend> = chunk.iter().map(|(a, _)| a).collect();
            match append_rows(self.conn, &rows).await {
                Ok(appended) => {
                    for ((_, reply), result) in chunk.into_iter().zip(appended) {
                        self.answer(reply, Ok(result));
                    }
                }
                Err(AppendFailure::Statement(err)) if size == 1 => {
                    for (_, reply) in chunk {
                        self.answer(reply, Err(err.clone()));
                    }
                }
                Err(AppendFailure::Statement(_)) => {
                    for (append, reply) in chunk {
                        let result = match append_rows(self.conn, &[&append]).await {
                            Ok(mut one) => one.pop().ok_or_else(|| {
                                StoreError::backend(
                                    BackendErrorKind::Corrupt,
                                    "an append read nothing back",
                                )
                            }),
                            Err(AppendFailure::Statement(err)) => Err(err),
                            Err(AppendFailure::Transaction(err)) => {
                                self.answer(reply, Err(err.clone()));
                                return Err(self.abort(err).await);
                            }
                        };
                        self.answer(reply, result);
                    }
                }
                Err(AppendFailure::Transaction(err)) => {
                    for (_, reply) in chunk {
                        self.answer(reply, Err(err.clone()));
                    }
                    return Err(self.abort(err).await);
                }
            }
        }
        Ok(())
    }

    fn answer(
        &mut self,
        reply: oneshot::Sender<Result<Appended, StoreError>>,
        result: Result<Appended, StoreError>,
    ) {
        self.done.push(Box::new(move |commit| {
            let _ = reply.send(commit.and(result));
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_are_cut_into_fixed_sizes_within_the_byte_budget() {
        assert_eq!(chunk_len(&[4096; 100]), 64);
        assert_eq!(chunk_len(&[4096; 63]), 16);
        assert_eq!(chunk_len(&[4096; 5]), 4);
        assert_eq!(chunk_len(&[4096; 3]), 1);
        // 64 messages of 100 KiB are over the budget; 16 of them are not
        assert_eq!(chunk_len(&[100 << 10; 64]), 16);
        // one message over the budget still goes, alone
        assert_eq!(chunk_len(&[64 << 20, 10]), 1);
        assert_eq!(chunk_len(&[2 << 20, 2 << 20, 1, 1]), 1);
        assert_eq!(chunk_len(&[1 << 20; 4]), 4);
    }
}

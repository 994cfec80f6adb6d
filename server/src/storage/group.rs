//! Group commit. Every acknowledged write must be on disk, and a flush to
//! disk costs the same for one row as for a hundred; so concurrent nonces
//! and appends wait in one queue, and a writer takes everything waiting and
//! performs it in one transaction: one flush acknowledges them all. A lone
//! request waits for no one (the writer takes it at once); under load,
//! batches grow by themselves while the previous one flushes.
//!
//! Each backend says how to perform a batch ([`Writer`]); the queue, the
//! answers and the fallback when a batch fails are here.

use std::future::Future;
use std::sync::Arc;

use kith_core::{AllianceId, BlobRecord, DeviceId};
use tokio::sync::{Mutex, mpsc, oneshot};

use super::{Append, RequestNonce, StorageError};

/// Most writes one transaction takes, so one batch cannot hold the
/// database for long.
const MAX_BATCH: usize = 256;

/// Writes waiting for a writer before callers wait to queue.
const QUEUE: usize = 4096;

/// An append waiting for its batch.
pub(super) struct AppendJob {
    pub alliance: AllianceId,
    pub device: DeviceId,
    pub blobs: Vec<BlobRecord>,
    pub quota_bytes: u64,
    pub nonce: Option<RequestNonce>,
}

/// One write and where its answer goes.
pub(super) enum Job {
    Nonce(RequestNonce, oneshot::Sender<Result<bool, StorageError>>),
    Append(AppendJob, oneshot::Sender<Result<Append, StorageError>>),
}

/// What one batch decided, job by job, once it committed.
pub(super) struct Decided {
    /// For each nonce job, in the order given: whether it was new.
    pub nonces: Vec<bool>,
    /// For each append job, in the order given.
    pub appends: Vec<Append>,
}

/// How a backend performs a batch in one transaction.
pub(super) trait Writer: Send + Sync + 'static {
    /// Performs every nonce and append given, in one transaction, and
    /// commits. Nothing is kept when it fails.
    fn write(
        &self,
        nonces: &[RequestNonce],
        appends: &[&AppendJob],
    ) -> impl Future<Output = Result<Decided, StorageError>> + Send;
}

/// The queue in front of a backend's writers.
#[derive(Clone)]
pub(super) struct GroupCommit {
    queue: mpsc::Sender<Job>,
}

impl GroupCommit {
    /// Starts `writers` tasks taking batches from one queue. SQLite has one
    /// writer at a time anyway; PostgreSQL can flush several batches at once.
    pub fn start<W: Writer>(writer: W, writers: usize) -> Self {
        let (queue, waiting) = mpsc::channel(QUEUE);
        let waiting = Arc::new(Mutex::new(waiting));
        let writer = Arc::new(writer);
        for _ in 0..writers.max(1) {
            tokio::spawn(run(writer.clone(), waiting.clone()));
        }
        Self { queue }
    }

    /// Records a nonce; false when it was recorded before.
    pub async fn first_use(&self, nonce: RequestNonce) -> Result<bool, StorageError> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Nonce(nonce, reply), answer).await
    }

    /// Appends, as [`super::Storage::append`] says.
    pub async fn append(&self, job: AppendJob) -> Result<Append, StorageError> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Append(job, reply), answer).await
    }

    async fn submit<T>(
        &self,
        job: Job,
        answer: oneshot::Receiver<Result<T, StorageError>>,
    ) -> Result<T, StorageError> {
        if self.queue.send(job).await.is_err() {
            return Err(stopped());
        }
        answer.await.unwrap_or_else(|_| Err(stopped()))
    }
}

fn stopped() -> StorageError {
    StorageError(sqlx::Error::Protocol(
        "the storage writer stopped; the write was not made".into(),
    ))
}

/// One writer: takes what is waiting, writes it, answers, again.
async fn run<W: Writer>(writer: Arc<W>, waiting: Arc<Mutex<mpsc::Receiver<Job>>>) {
    loop {
        let batch = {
            let mut waiting = waiting.lock().await;
            let Some(first) = waiting.recv().await else {
                return;
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match waiting.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            batch
        };
        write_and_answer(&*writer, batch).await;
    }
}

/// Writes a batch. When it fails, nothing was kept; each job is then tried
/// alone, so one write the database refuses fails only its own request.
async fn write_and_answer<W: Writer>(writer: &W, batch: Vec<Job>) {
    let alone = batch.len() == 1;
    let (nonce_jobs, append_jobs) = split(batch);
    let nonces: Vec<RequestNonce> = nonce_jobs.iter().map(|(n, _)| *n).collect();
    let appends: Vec<&AppendJob> = append_jobs.iter().map(|(a, _)| a).collect();
    match writer.write(&nonces, &appends).await {
        Ok(decided) => {
            for ((_, reply), fresh) in nonce_jobs.into_iter().zip(decided.nonces) {
                let _ = reply.send(Ok(fresh));
            }
            for ((_, reply), outcome) in append_jobs.into_iter().zip(decided.appends) {
                let _ = reply.send(Ok(outcome));
            }
        }
        Err(error) if alone => {
            tracing::warn!(error = %error.0, "a storage write failed");
            let failed = || StorageError(sqlx::Error::Protocol(error.0.to_string()));
            for (_, reply) in nonce_jobs {
                let _ = reply.send(Err(failed()));
            }
            for (_, reply) in append_jobs {
                let _ = reply.send(Err(failed()));
            }
        }
        Err(error) => {
            tracing::warn!(error = %error.0, "a batch of storage writes failed; trying each alone");
            for (nonce, reply) in nonce_jobs {
                Box::pin(write_and_answer(writer, vec![Job::Nonce(nonce, reply)])).await;
            }
            for (append, reply) in append_jobs {
                Box::pin(write_and_answer(writer, vec![Job::Append(append, reply)])).await;
            }
        }
    }
}

type NonceJob = (RequestNonce, oneshot::Sender<Result<bool, StorageError>>);
type AppendJobReply = (AppendJob, oneshot::Sender<Result<Append, StorageError>>);

fn split(batch: Vec<Job>) -> (Vec<NonceJob>, Vec<AppendJobReply>) {
    let mut nonces = Vec::new();
    let mut appends = Vec::new();
    for job in batch {
        match job {
            Job::Nonce(n, reply) => nonces.push((n, reply)),
            Job::Append(a, reply) => appends.push((a, reply)),
        }
    }
    (nonces, appends)
}

/// The order a batch takes its locks in: every nonce first (by device and
/// nonce), then every alliance (by id). Every writer, and every purge, takes
/// them in this order, so no two transactions wait on each other in a circle.
pub(super) struct LockOrder {
    /// Every nonce of the batch, sorted, each with where it came from.
    pub nonces: Vec<(RequestNonce, NonceFrom)>,
    /// The append jobs' indices, by alliance.
    pub appends: Vec<usize>,
}

/// Where a nonce in a batch came from.
#[derive(Debug, Clone, Copy)]
pub(super) enum NonceFrom {
    /// Nonce job `i`.
    Job(usize),
    /// Append job `i`'s request.
    Append(usize),
}

impl LockOrder {
    pub fn of(nonces: &[RequestNonce], appends: &[&AppendJob]) -> Self {
        let mut all: Vec<(RequestNonce, NonceFrom)> = nonces
            .iter()
            .enumerate()
            .map(|(i, n)| (*n, NonceFrom::Job(i)))
            .chain(
                appends
                    .iter()
                    .enumerate()
                    .filter_map(|(i, a)| Some((a.nonce?, NonceFrom::Append(i)))),
            )
            .collect();
        all.sort_by_key(|(n, _)| (n.device.0, n.nonce));
        let mut order: Vec<usize> = (0..appends.len()).collect();
        order.sort_by_key(|&i| appends[i].alliance.0);
        Self {
            nonces: all,
            appends: order,
        }
    }
}

//! The gossip validation pool (issue 11): a bounded queue of attestation, aggregate and
//! sync-committee messages and a few worker threads, each taking up to `max_batch`
//! queued messages at a time and validating them as ONE batch through
//! [`ChainHandle::validate_gossip_batch_blocking`] (one pubkey aggregation, one blst
//! batch bisected on failure). A message that finds the queue full is dropped at once
//! with [`AttestationError::Overloaded`] (IGNORE: nobody is penalised) and counted in
//! [`PoolStats::dropped`] (`quasar_pool_gossip_dropped_total`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use crate::chain::gossip_attestation::{refused, AttestationError, GossipMessage};
use crate::chain::service::{ChainHandle, GossipVerdict};

/// The pool's shape.
#[derive(Debug, Clone, Copy)]
pub struct PoolOptions {
    /// Messages queued before new ones are dropped.
    pub queue: usize,
    /// Worker threads.
    pub workers: usize,
    /// The most messages one worker validates as one batch.
    pub max_batch: usize,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            queue: 4096,
            workers: 2,
            max_batch: 64,
        }
    }
}

/// Counters of the pool.
#[derive(Debug, Default)]
pub struct PoolStats {
    /// Messages dropped because the queue was full (`quasar_pool_gossip_dropped_total`).
    pub dropped: AtomicU64,
    /// Messages validated.
    pub validated: AtomicU64,
    /// Batches validated.
    pub batches: AtomicU64,
    /// Messages waiting in the queue now (`quasar_pool_gossip_queue_depth`).
    pub queued: AtomicU64,
}

impl PoolStats {
    /// The counters in Prometheus text format.
    pub fn prometheus(&self) -> String {
        format!(
            "quasar_pool_gossip_queue_depth {}\nquasar_pool_gossip_dropped_total {}\nquasar_pool_gossip_validated_total {}\nquasar_pool_gossip_batches_total {}\n",
            self.queued.load(Ordering::Relaxed),
            self.dropped.load(Ordering::Relaxed),
            self.validated.load(Ordering::Relaxed),
            self.batches.load(Ordering::Relaxed),
        )
    }
}

struct Job {
    msg: GossipMessage,
    reply: oneshot::Sender<GossipVerdict>,
}

/// A verdict to wait for.
pub struct PoolReply(Result<oneshot::Receiver<GossipVerdict>, GossipVerdict>);

impl PoolReply {
    pub async fn wait(self) -> GossipVerdict {
        match self.0 {
            Err(v) => v,
            Ok(rx) => rx.await.unwrap_or_else(|_| stopped()),
        }
    }

    /// Block the calling thread (never inside an async task).
    pub fn blocking_wait(self) -> GossipVerdict {
        match self.0 {
            Err(v) => v,
            Ok(rx) => rx.blocking_recv().unwrap_or_else(|_| stopped()),
        }
    }
}

fn stopped() -> GossipVerdict {
    refused(AttestationError::Internal("the gossip pool stopped".into()))
}

/// The running pool. Dropping it stops the workers once the queue is drained.
pub struct GossipPool {
    tx: Option<SyncSender<Job>>,
    stats: Arc<PoolStats>,
    workers: Vec<JoinHandle<()>>,
}

impl GossipPool {
    pub fn start(chain: ChainHandle, opts: PoolOptions) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel::<Job>(opts.queue.max(1));
        let rx = Arc::new(Mutex::new(rx));
        let stats = Arc::new(PoolStats::default());
        let mut workers = Vec::new();
        for i in 0..opts.workers.max(1) {
            let (rx, chain, stats) = (rx.clone(), chain.clone(), stats.clone());
            let max_batch = opts.max_batch.max(1);
            workers.push(
                std::thread::Builder::new()
                    .name(format!("quasar-gossip-{i}"))
                    .spawn(move || worker(&rx, &chain, &stats, max_batch))?,
            );
        }
        Ok(GossipPool {
            tx: Some(tx),
            stats,
            workers,
        })
    }

    /// Queue a message; a full queue drops it at once (IGNORE, counted).
    pub fn submit(&self, msg: GossipMessage) -> PoolReply {
        let Some(tx) = &self.tx else {
            return PoolReply(Err(stopped()));
        };
        let (reply, rx) = oneshot::channel();
        // Counted before the send so that a worker's decrement never comes first.
        self.stats.queued.fetch_add(1, Ordering::Relaxed);
        match tx.try_send(Job { msg, reply }) {
            Ok(()) => PoolReply(Ok(rx)),
            Err(TrySendError::Full(_)) => {
                self.stats.queued.fetch_sub(1, Ordering::Relaxed);
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                PoolReply(Err(refused(AttestationError::Overloaded)))
            }
            Err(TrySendError::Disconnected(_)) => {
                self.stats.queued.fetch_sub(1, Ordering::Relaxed);
                PoolReply(Err(stopped()))
            }
        }
    }

    pub fn stats(&self) -> &Arc<PoolStats> {
        &self.stats
    }
}

impl Drop for GossipPool {
    fn drop(&mut self) {
        self.tx.take();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

fn worker(rx: &Mutex<Receiver<Job>>, chain: &ChainHandle, stats: &PoolStats, max_batch: usize) {
    loop {
        let jobs = {
            let rx = rx.lock().unwrap_or_else(|e| e.into_inner());
            let Ok(first) = rx.recv() else {
                return;
            };
            let mut jobs = vec![first];
            while jobs.len() < max_batch {
                match rx.try_recv() {
                    Ok(j) => jobs.push(j),
                    Err(_) => break,
                }
            }
            jobs
        };
        stats.queued.fetch_sub(jobs.len() as u64, Ordering::Relaxed);
        let (msgs, replies): (Vec<_>, Vec<_>) = jobs.into_iter().map(|j| (j.msg, j.reply)).unzip();
        let verdicts = chain.validate_gossip_batch_blocking(&msgs);
        stats.batches.fetch_add(1, Ordering::Relaxed);
        stats
            .validated
            .fetch_add(msgs.len() as u64, Ordering::Relaxed);
        for (reply, v) in replies.into_iter().zip(verdicts) {
            let _ = reply.send(v);
        }
    }
}

//! Group commit of a node's claims, per network: the agent's claim queue.
//!
//! Concurrent claims of one node would read the same cursor and choose the same address:
//! on etcd all but one would lose the commit and start over, on PostgreSQL they would wait
//! for the node's lock, each holding a pooled connection. So the claims of one network
//! queue here, in arrival order, and go to the store in batches: while one batch runs,
//! the claims arriving meanwhile gather, and the next batch takes them all (at most
//! [`MAX_BATCH`]) through [`crate::Store::claim_batch`]. On etcd a batch shares one
//! snapshot and one commit; other backends run it one claim after the other, which is the
//! FIFO queue this replaced. Claims of other networks (and nodes) never wait here.
//!
//! The queue is only an optimization: uniqueness never depends on it. A claim that waited
//! its patience without being taken into a batch (one stuck behind a store that is down)
//! leaves the queue and goes ahead alone, meeting its own deadline.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::oneshot;

use super::protocol::Op;
use crate::error::StoreError;

/// Claims one batch takes at most: keeps an etcd transaction well inside its limit of
/// 128 operations (a claim writes 4 to 6 keys).
pub const MAX_BATCH: usize = 8;

/// Runs a batch of claim operations and answers each, in order.
pub type BatchRunner =
    Arc<dyn Fn(Vec<Op>) -> Pin<Box<dyn Future<Output = Vec<Answer>> + Send>> + Send + Sync>;

/// The answer to one claim operation.
pub type Answer = Result<Value, StoreError>;

/// The claim queue of one network.
#[derive(Default)]
pub struct ClaimBatcher {
    queue: Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    /// Whether a task is running batches (it stops when the queue is empty).
    running: bool,
    next_id: u64,
    waiting: VecDeque<Waiting>,
}

struct Waiting {
    id: u64,
    op: Op,
    answer: oneshot::Sender<Answer>,
}

impl ClaimBatcher {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // The queue is consistent after every statement: a panic cannot leave it torn.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues the claim `op`, runs it in a batch with `run`, and returns its answer; after
    /// `patience` without being taken into a batch, runs it alone.
    pub async fn claim(self: &Arc<Self>, run: &BatchRunner, op: Op, patience: Duration) -> Answer {
        let (answer, mut answered) = oneshot::channel();
        let (id, start) = {
            let mut queue = self.lock();
            let id = queue.next_id;
            queue.next_id += 1;
            queue.waiting.push_back(Waiting { id, op, answer });
            (id, !std::mem::replace(&mut queue.running, true))
        };
        if start {
            tokio::spawn(self.clone().drain(run.clone()));
        }
        if let Ok(answer) = tokio::time::timeout(patience, &mut answered).await {
            return answer.unwrap_or_else(|_| Err(aborted()));
        }
        let withdrawn = {
            let mut queue = self.lock();
            let position = queue.waiting.iter().position(|w| w.id == id);
            position.and_then(|i| queue.waiting.remove(i))
        };
        match withdrawn {
            Some(waiting) => {
                tracing::debug!("a claim waited its patience in the queue; running it alone");
                run(vec![waiting.op])
                    .await
                    .pop()
                    .unwrap_or_else(|| Err(aborted()))
            }
            // Already in a running batch, which the store's deadline bounds.
            None => answered.await.unwrap_or_else(|_| Err(aborted())),
        }
    }

    /// Runs batches until the queue is empty.
    async fn drain(self: Arc<Self>, run: BatchRunner) {
        let _reset = ResetOnPanic(&self);
        loop {
            let batch: Vec<Waiting> = {
                let mut queue = self.lock();
                if queue.waiting.is_empty() {
                    queue.running = false;
                    return;
                }
                let take = queue.waiting.len().min(MAX_BATCH);
                queue.waiting.drain(..take).collect()
            };
            let (ops, senders): (Vec<Op>, Vec<_>) =
                batch.into_iter().map(|w| (w.op, w.answer)).unzip();
            let mut answers = run(ops).await.into_iter();
            for sender in senders {
                // A caller that hung up meanwhile no longer needs its answer.
                let _ = sender.send(answers.next().unwrap_or_else(|| Err(aborted())));
            }
        }
    }
}

/// Lets a later claim start a new drain task if this one panics (its waiting callers
/// then run alone once their patience is over).
struct ResetOnPanic<'a>(&'a ClaimBatcher);

impl Drop for ResetOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.lock().running = false;
        }
    }
}

fn aborted() -> StoreError {
    StoreError::Internal {
        reason: "the node agent's claim batch ended without an answer".into(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    use super::*;
    use crate::remote::protocol::WireClaimContext;
    use crate::{AttachmentKey, BlockPolicy, ClaimContext, Owner};

    fn claim(container: &str) -> Op {
        let ctx = ClaimContext::new("node-1", BlockPolicy::disabled());
        Op::Claim {
            key: AttachmentKey::new("net", container, "eth0"),
            owner: Owner::default(),
            claims: Vec::new(),
            ctx: WireClaimContext::from(&ctx),
        }
    }

    fn container_of(op: &Op) -> String {
        match op {
            Op::Claim { key, .. } => key.container_id.clone(),
            _ => String::new(),
        }
    }

    /// A runner that answers each claim with its container id after `delay`, and records
    /// the size of every batch.
    fn recording(delay: Duration, sizes: Arc<Mutex<Vec<usize>>>) -> BatchRunner {
        Arc::new(move |ops: Vec<Op>| {
            let sizes = sizes.clone();
            Box::pin(async move {
                sizes.lock().unwrap().push(ops.len());
                tokio::time::sleep(delay).await;
                ops.iter()
                    .map(|op| Ok(Value::String(container_of(op))))
                    .collect()
            })
        })
    }

    /// `claim` for `container` on its own task, as a connection of the agent runs it.
    fn spawn_claim(
        batcher: &Arc<ClaimBatcher>,
        run: &BatchRunner,
        container: String,
        patience: Duration,
    ) -> tokio::task::JoinHandle<Answer> {
        let (batcher, run) = (batcher.clone(), run.clone());
        tokio::spawn(async move { batcher.claim(&run, claim(&container), patience).await })
    }

    #[tokio::test]
    async fn claims_arriving_during_a_batch_form_the_next_one() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let run = recording(Duration::from_millis(100), sizes.clone());
        let batcher = Arc::new(ClaimBatcher::default());
        let first = spawn_claim(&batcher, &run, "c0".into(), Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(20)).await;
        let later: Vec<_> = (1..=3)
            .map(|i| spawn_claim(&batcher, &run, format!("c{i}"), Duration::from_secs(5)))
            .collect();
        assert_eq!(first.await.unwrap().unwrap(), Value::from("c0"));
        for (i, task) in later.into_iter().enumerate() {
            let expected = format!("c{}", i + 1);
            assert_eq!(task.await.unwrap().unwrap(), Value::from(expected));
        }
        assert_eq!(*sizes.lock().unwrap(), vec![1, 3]);
        assert!(
            !batcher.lock().running,
            "the drain task stops when the queue is empty"
        );
    }

    #[tokio::test]
    async fn batches_never_exceed_the_limit_and_keep_arrival_order() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let run = recording(Duration::from_millis(30), sizes.clone());
        let batcher = Arc::new(ClaimBatcher::default());
        let tasks: Vec<_> = (0..(2 * MAX_BATCH + 3))
            .map(|i| spawn_claim(&batcher, &run, format!("c{i}"), Duration::from_secs(5)))
            .collect();
        for (i, task) in tasks.into_iter().enumerate() {
            assert_eq!(task.await.unwrap().unwrap(), Value::from(format!("c{i}")));
        }
        let sizes = sizes.lock().unwrap().clone();
        assert!(
            sizes.iter().all(|&n| (1..=MAX_BATCH).contains(&n)),
            "{sizes:?}"
        );
        assert_eq!(sizes.iter().sum::<usize>(), 2 * MAX_BATCH + 3);
    }

    #[tokio::test]
    async fn a_claim_stuck_behind_a_slow_batch_runs_alone_after_its_patience() {
        let calls = Arc::new(AtomicUsize::new(0));
        let run: BatchRunner = {
            let calls = calls.clone();
            Arc::new(move |ops: Vec<Op>| {
                let first = calls.fetch_add(1, Ordering::SeqCst) == 0;
                Box::pin(async move {
                    if first {
                        // The store is down: this batch hangs until its deadline.
                        tokio::time::sleep(Duration::from_secs(3)).await;
                    }
                    ops.iter()
                        .map(|op| Ok(Value::String(container_of(op))))
                        .collect()
                })
            })
        };
        let batcher = Arc::new(ClaimBatcher::default());
        let slow = spawn_claim(&batcher, &run, "slow".into(), Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(20)).await;
        let started = Instant::now();
        let patience = Duration::from_millis(200);
        let answer = batcher.claim(&run, claim("patient"), patience).await;
        assert_eq!(answer.unwrap(), Value::from("patient"));
        let waited = started.elapsed();
        assert!(
            waited >= patience && waited < Duration::from_secs(2),
            "{waited:?}"
        );
        assert_eq!(slow.await.unwrap().unwrap(), Value::from("slow"));
        // The withdrawn claim ran once, alone: the slow batch and it.
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}

//! Opportunistic batching (application-level group commit), for any blocking work that is cheaper per item in
//! batches — one database statement and one commit for many requests.
//!
//! Callers submit items; a dispatcher hands whatever is waiting — up to `max_batch` items — to one of `slots`
//! blocking workers as soon as one is free. Nothing ever waits for a batch to fill: an item arriving at an idle
//! server runs alone at once; under load, items that arrive while every slot is busy share the next batch. Each
//! caller gets its own result, sent after its batch ran.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// How the batcher has grouped items so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchStats {
    /// Batches run.
    pub batches: u64,
    /// Items carried.
    pub attempts: u64,
    /// The largest batch.
    pub largest: u64,
}

#[derive(Debug, Default)]
struct Counters {
    batches: AtomicU64,
    items: AtomicU64,
    largest: AtomicU64,
}

/// Why an item got no result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BatcherError {
    /// The dispatcher is gone (the runtime is shutting down).
    #[error("the batch dispatcher has stopped")]
    Stopped,
    /// The worker ended without answering (it panicked, or returned fewer results than items).
    #[error("the batch worker stopped before answering")]
    NoAnswer,
}

struct Job<I, R> {
    item: I,
    reply: tokio::sync::oneshot::Sender<R>,
}

/// A running batcher of items `I` with results `R`.
pub struct Batcher<I, R> {
    tx: tokio::sync::mpsc::Sender<Job<I, R>>,
    stats: Arc<Counters>,
}

impl<I, R> Clone for Batcher<I, R> {
    fn clone(&self) -> Self {
        Batcher {
            tx: self.tx.clone(),
            stats: self.stats.clone(),
        }
    }
}

impl<I, R> std::fmt::Debug for Batcher<I, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher").field("stats", &self.stats).finish()
    }
}

impl<I: Send + 'static, R: Send + 'static> Batcher<I, R> {
    /// Starts the dispatcher on the current tokio runtime. `run` gets each batch on a blocking thread and returns one
    /// result per item, in order; `on_batch` sees each batch's size (metrics).
    pub fn start(
        slots: usize,
        max_batch: usize,
        run: impl Fn(Vec<I>) -> Vec<R> + Send + Sync + 'static,
        on_batch: impl Fn(usize) + Send + 'static,
    ) -> Self {
        // A bounded queue: when the work falls behind, submitters wait here (backpressure).
        let (tx, rx) = tokio::sync::mpsc::channel(4096);
        let stats = Arc::new(Counters::default());
        tokio::spawn(dispatch(
            rx,
            slots.max(1),
            max_batch.max(1),
            Arc::new(run),
            on_batch,
            stats.clone(),
        ));
        Batcher { tx, stats }
    }

    /// Runs one item in whatever batch it joins and returns its result.
    pub async fn submit(&self, item: I) -> Result<R, BatcherError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.tx
            .send(Job { item, reply })
            .await
            .map_err(|_| BatcherError::Stopped)?;
        answer.await.map_err(|_| BatcherError::NoAnswer)
    }

    /// Items waiting for a slot now.
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Batches and items so far.
    pub fn stats(&self) -> BatchStats {
        BatchStats {
            batches: self.stats.batches.load(Ordering::Relaxed),
            attempts: self.stats.items.load(Ordering::Relaxed),
            largest: self.stats.largest.load(Ordering::Relaxed),
        }
    }
}

type Run<I, R> = Arc<dyn Fn(Vec<I>) -> Vec<R> + Send + Sync>;

async fn dispatch<I: Send + 'static, R: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<Job<I, R>>,
    slots: usize,
    max_batch: usize,
    run: Run<I, R>,
    on_batch: impl Fn(usize),
    stats: Arc<Counters>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(slots));
    loop {
        // A free slot first, then the work: while every slot is busy, arrivals accumulate into the next batch.
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = rx.recv().await else {
            return;
        };
        let mut jobs = vec![first];
        while jobs.len() < max_batch {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let size = jobs.len();
        stats.batches.fetch_add(1, Ordering::Relaxed);
        stats.items.fetch_add(size as u64, Ordering::Relaxed);
        stats.largest.fetch_max(size as u64, Ordering::Relaxed);
        on_batch(size);
        let run = run.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let (items, replies): (Vec<I>, Vec<_>) = jobs.into_iter().map(|j| (j.item, j.reply)).unzip();
            // A short answer leaves the last callers with `NoAnswer` (their sender is dropped).
            for (reply, result) in replies.into_iter().zip(run(items)) {
                let _ = reply.send(result);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn items_arriving_while_slots_are_busy_share_a_batch_and_each_gets_its_result() {
        let gate = Arc::new(std::sync::Barrier::new(2));
        let g = gate.clone();
        let batcher: Batcher<u32, u32> = Batcher::start(
            1,
            64,
            move |items| {
                // The first batch holds the only slot until the test has queued more.
                if items == [0] {
                    g.wait();
                }
                items.into_iter().map(|i| i * 10).collect()
            },
            |_| {},
        );
        let first = tokio::spawn({
            let b = batcher.clone();
            async move { b.submit(0).await }
        });
        while batcher.stats().batches == 0 {
            tokio::task::yield_now().await;
        }
        let rest: Vec<_> = (1..=5)
            .map(|i| {
                let b = batcher.clone();
                tokio::spawn(async move { b.submit(i).await })
            })
            .collect();
        while batcher.queued() < 5 {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        gate.wait();
        assert_eq!(first.await.unwrap(), Ok(0));
        for (i, r) in rest.into_iter().enumerate() {
            assert_eq!(r.await.unwrap(), Ok((i as u32 + 1) * 10));
        }
        let stats = batcher.stats();
        assert_eq!(stats.attempts, 6);
        assert_eq!(
            (stats.batches, stats.largest),
            (2, 5),
            "the five waiting items shared one batch"
        );
    }

    #[tokio::test]
    async fn a_short_answer_is_an_error_not_a_hang() {
        let batcher: Batcher<u32, u32> = Batcher::start(1, 8, |_| Vec::new(), |_| {});
        assert_eq!(batcher.submit(1).await, Err(BatcherError::NoAnswer));
    }
}

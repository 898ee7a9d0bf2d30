//! The background jobs of a running server (outbox worker, pay reconciler, login listener, pruning), started in
//! one place and stopped together when the server stops: a test that starts many servers in one process, or an
//! embedder that stops one, leaves no worker polling a database behind.

use std::future::Future;
use std::time::Duration;
use tokio::task::JoinHandle;

/// The running jobs.
#[derive(Debug, Default)]
pub struct Jobs {
    running: Vec<(&'static str, JoinHandle<()>)>,
}

impl Jobs {
    /// No jobs yet.
    pub fn new() -> Jobs {
        Jobs::default()
    }

    /// Runs `job` on the current tokio runtime until it ends or the jobs are stopped.
    pub fn spawn(&mut self, name: &'static str, job: impl Future<Output = ()> + Send + 'static) {
        tracing::debug!(job = name, "starting");
        self.running.push((name, tokio::spawn(job)));
    }

    /// Runs `tick` now and then every `period`, one at a time, until stopped.
    pub fn every<F, Fut>(&mut self, name: &'static str, period: Duration, mut tick: F)
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.spawn(name, async move {
            let mut interval = tokio::time::interval(period);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                tick().await;
            }
        });
    }

    /// The names of the jobs started, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.running.iter().map(|(name, _)| *name).collect()
    }

    /// Stops every job and waits until each has let go of what it held.
    pub async fn stop(mut self) {
        for (_, handle) in &self.running {
            handle.abort();
        }
        for (name, handle) in std::mem::take(&mut self.running) {
            if let Err(e) = handle.await
                && !e.is_cancelled()
            {
                tracing::warn!(job = name, error = %e, "a background job ended with a panic");
            }
        }
    }
}

impl Drop for Jobs {
    fn drop(&mut self) {
        for (_, handle) in &self.running {
            handle.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn periodic_jobs_tick_until_stopped() {
        let ticks = Arc::new(AtomicU32::new(0));
        let mut jobs = Jobs::new();
        let counted = ticks.clone();
        jobs.every("count", Duration::from_secs(60), move || {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
            }
        });
        assert_eq!(jobs.names(), ["count"]);
        tokio::time::sleep(Duration::from_secs(181)).await;
        // At 0, 60, 120 and 180 s.
        assert_eq!(ticks.load(Ordering::SeqCst), 4);
        jobs.stop().await;
        tokio::time::sleep(Duration::from_secs(600)).await;
        assert_eq!(ticks.load(Ordering::SeqCst), 4, "no tick after stop");
    }
}

//! One way to run background work: named tasks, started in order by the code that wires the
//! node, each with its own cancellation token, and stopped in the reverse order on shutdown,
//! so a task never outlives what it depends on (the group commit stops after everything that
//! appends, the uploader before the cache it reads through is closed).
//!
//! A task runs until its token fires. One that panics, or returns before it was asked to
//! stop, has failed: that is logged at error level with the task's name and reported by
//! [`Supervisor::failures`], which the node adds to `/readyz`, so a dead uploader or ticker
//! is seen instead of silently lost. Failed tasks are not restarted: the state they left
//! behind is unknown, and a restart of the process is the recovery Kubernetes already runs.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

/// The background tasks of one node, in the order they started.
#[derive(Debug, Default)]
pub struct Supervisor {
    tasks: Vec<Supervised>,
    failures: Failures,
}

#[derive(Debug)]
struct Supervised {
    name: &'static str,
    cancel: CancellationToken,
    handle: JoinHandle<()>,
}

/// The tasks that failed, with why; shared with the readiness check.
#[derive(Debug, Clone, Default)]
pub struct Failures(Arc<Mutex<Vec<String>>>);

impl Failures {
    fn record(&self, failure: String) {
        self.0
            .lock()
            .expect("no code panics holding the failures")
            .push(failure);
    }

    /// Every failure so far, as `/readyz` reasons.
    pub fn list(&self) -> Vec<String> {
        self.0
            .lock()
            .expect("no code panics holding the failures")
            .clone()
    }
}

impl Supervisor {
    /// Starts `task` under `name`; it gets the token that asks it to stop.
    pub fn spawn<F, Fut>(&mut self, name: &'static str, task: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let cancel = CancellationToken::new();
        let running = task(cancel.clone());
        let failures = self.failures.clone();
        let stopping = cancel.clone();
        let handle = tokio::spawn(async move {
            let why = match AssertUnwindSafe(running).catch_unwind().await {
                Ok(()) if stopping.is_cancelled() => return,
                Ok(()) => "stopped before shutdown".to_string(),
                Err(panic) => format!("panicked: {}", panic_message(panic.as_ref())),
            };
            error!(task = name, "background task {why}");
            failures.record(format!("background task {name} {why}"));
        });
        self.tasks.push(Supervised {
            name,
            cancel,
            handle,
        });
    }

    /// Runs `chore` every `period` (the first time at once) under `name`, until shutdown.
    pub fn every<F, Fut>(&mut self, name: &'static str, period: Duration, mut chore: F)
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send,
    {
        self.spawn(name, move |cancel| async move {
            crate::periodic::every(period, &cancel, &mut chore).await;
        });
    }

    /// The failures of the tasks started here, for the readiness check.
    pub fn failures(&self) -> Failures {
        self.failures.clone()
    }

    /// Stops every task, the last started first, each waited for before the next is asked,
    /// and logs how long each took.
    pub async fn shutdown(self) {
        for task in self.tasks.into_iter().rev() {
            let started = Instant::now();
            task.cancel.cancel();
            // A task that failed has already been reported.
            let _ = task.handle.await;
            info!(
                task = task.name,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "background task stopped"
            );
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn tasks_stop_in_the_reverse_order_they_started() {
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut supervisor = Supervisor::default();
        for name in ["first", "second", "third"] {
            let order = order.clone();
            supervisor.spawn(name, move |cancel| async move {
                cancel.cancelled().await;
                order.lock().expect("lock").push(name);
            });
        }
        supervisor.shutdown().await;
        assert_eq!(*order.lock().expect("lock"), ["third", "second", "first"]);
    }

    #[tokio::test]
    async fn a_task_that_panics_or_ends_early_is_reported() {
        let mut supervisor = Supervisor::default();
        supervisor.spawn("doomed", |_| async { panic!("disk on fire") });
        supervisor.spawn("quitter", |_| async {});
        supervisor.spawn("steady", |cancel| async move { cancel.cancelled().await });
        let failures = supervisor.failures();
        for _ in 0..1000 {
            if failures.list().len() == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let mut listed = failures.list();
        listed.sort();
        assert_eq!(
            listed,
            [
                "background task doomed panicked: disk on fire",
                "background task quitter stopped before shutdown",
            ]
        );
        supervisor.shutdown().await;
        assert_eq!(failures.list().len(), 2, "a requested stop is no failure");
    }

    #[tokio::test(start_paused = true)]
    async fn a_chore_runs_at_once_and_then_every_period() {
        let runs = Arc::new(AtomicUsize::new(0));
        let mut supervisor = Supervisor::default();
        let counted = runs.clone();
        supervisor.every("chore", Duration::from_secs(10), move || {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
            }
        });
        tokio::time::sleep(Duration::from_secs(25)).await;
        supervisor.shutdown().await;
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }
}

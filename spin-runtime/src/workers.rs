//! Serving threads: one single-threaded tokio runtime per core, connections handed out
//! round-robin.
//!
//! This module owns the threads HTTP connections are served on and the answer to "which
//! serving thread am I on" ([`current`]); it does not accept connections or know about
//! HTTP (that is [`crate::http_trigger`]) or instances (each WASI 0.3 component keeps one
//! instance pool per serving thread, keyed by [`current`], in [`crate::http_p3`]).
//!
//! Why not one multi-threaded runtime: a request to a WASI 0.3 handler crosses two tasks
//! (the connection, then the instance's worker task, then back). On tokio's
//! work-stealing runtime those tasks land on different threads, so every request paid
//! cross-thread wake-ups, futex calls and cache misses. Measured on the 2-core bench
//! machine with `wrk -c8` on a spin-sdk 7 hello (docs/PERFORMANCE.md, "Session 10"):
//! 77 → 67 µs of server CPU per request, +13 % requests/s. With a runtime per thread and
//! an instance pool per thread, a connection, its requests and the instances serving them
//! stay on one thread. This is the model of actix-web and of nginx's workers; its cost is
//! that the balance is per connection, not per request: a thread with a few heavy
//! connections does not hand work to an idle one.
//!
//! A busy guest cannot starve the other connections of its thread: stores yield to the
//! runtime at every epoch tick ([`crate::engine::EPOCH_TICK`]).

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;

use tokio::sync::mpsc;

/// Work sent to a serving thread: runs there, inside its runtime (so it may register
/// sockets and spawn tasks).
type Job = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

thread_local! {
    static CURRENT: Cell<Option<usize>> = const { Cell::new(None) };
}

/// The index of the serving thread the caller runs on, or `None` outside them (tests
/// and embedders serving on their own runtime).
pub fn current() -> Option<usize> {
    CURRENT.with(Cell::get)
}

/// How many serving threads [`Workers::per_core`] starts: one per available core.
pub fn per_core_count() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Errors starting the serving threads.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A thread or its runtime could not be created.
    #[error("cannot start serving thread {index}: {source}")]
    Start {
        /// The thread's index.
        index: usize,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// A set of serving threads, each running a single-threaded tokio runtime.
///
/// Dropping it closes the threads' queues; each thread then finishes its runtime (its
/// remaining tasks are dropped) and exits, and the drop waits for that.
pub struct Workers {
    senders: Vec<mpsc::UnboundedSender<Job>>,
    threads: Vec<JoinHandle<()>>,
    next: AtomicUsize,
}

impl Workers {
    /// One serving thread per core ([`per_core_count`]).
    pub fn per_core() -> Result<Workers, Error> {
        Workers::start(per_core_count())
    }

    /// `count` serving threads (at least one).
    pub fn start(count: usize) -> Result<Workers, Error> {
        let count = count.max(1);
        let mut senders = Vec::with_capacity(count);
        let mut threads = Vec::with_capacity(count);
        for index in 0..count {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|source| Error::Start { index, source })?;
            let (sender, mut jobs) = mpsc::unbounded_channel::<Job>();
            let thread = std::thread::Builder::new()
                .name(format!("spinlet-serve-{index}"))
                .spawn(move || {
                    CURRENT.with(|c| c.set(Some(index)));
                    runtime.block_on(async move {
                        while let Some(job) = jobs.recv().await {
                            tokio::spawn(job());
                        }
                    });
                })
                .map_err(|source| Error::Start { index, source })?;
            senders.push(sender);
            threads.push(thread);
        }
        Ok(Workers {
            senders,
            threads,
            next: AtomicUsize::new(0),
        })
    }

    /// How many serving threads there are.
    pub fn len(&self) -> usize {
        self.senders.len()
    }

    /// Always false: there is at least one serving thread.
    pub fn is_empty(&self) -> bool {
        self.senders.is_empty()
    }

    /// Runs `job` on the next serving thread (round-robin); the future it returns is
    /// spawned there. Returns false if that thread has stopped.
    pub fn dispatch<F, Fut>(&self, job: F) -> bool
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.senders.len();
        let job: Job = Box::new(move || Box::pin(job()));
        self.senders[index].send(job).is_ok()
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.senders.clear();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::sync::{Arc, Mutex};

    #[test]
    fn jobs_go_round_robin_and_know_their_thread() {
        let workers = Workers::start(3).unwrap();
        assert_eq!(workers.len(), 3);
        assert_eq!(current(), None);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (done, mut finished) = mpsc::unbounded_channel();
        for job in 0..6 {
            let seen = seen.clone();
            let done = done.clone();
            assert!(workers.dispatch(move || async move {
                // The future runs inside the thread's runtime: it can spawn and sleep.
                tokio::task::yield_now().await;
                let thread = std::thread::current().name().map(str::to_string);
                seen.lock().unwrap().push((job, current(), thread));
                let _ = done.send(());
            }));
        }
        for _ in 0..6 {
            finished.blocking_recv().unwrap();
        }
        let mut seen = seen.lock().unwrap().clone();
        seen.sort();
        for (job, index, thread) in &seen {
            assert_eq!(*index, Some(job % 3), "job {job}");
            assert_eq!(
                thread.as_deref(),
                Some(&*format!("spinlet-serve-{}", job % 3))
            );
        }
        let threads: BTreeSet<_> = seen.iter().map(|(_, i, _)| *i).collect();
        assert_eq!(threads.len(), 3);
    }

    #[test]
    fn drop_stops_the_threads_and_their_tasks() {
        let workers = Workers::start(2).unwrap();
        let (started, mut running) = mpsc::unbounded_channel();
        let flag = Arc::new(());
        let held = flag.clone();
        workers.dispatch(move || async move {
            let _held = held;
            let _ = started.send(());
            std::future::pending::<()>().await;
        });
        running.blocking_recv().unwrap();
        assert_eq!(Arc::strong_count(&flag), 2);
        drop(workers);
        // The pending task was dropped with its runtime, releasing what it held.
        assert_eq!(Arc::strong_count(&flag), 1);
    }

    #[test]
    fn zero_threads_means_one() {
        let workers = Workers::start(0).unwrap();
        assert_eq!(workers.len(), 1);
        assert!(!workers.is_empty());
    }
}

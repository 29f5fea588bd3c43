//! A serving app's idle periods: once requests stop for a moment, the code they ran
//! leaves the process's resident set ([`crate::code_pages::release`]).
//!
//! This module owns the count of answered requests and the rule for when to release;
//! it knows nothing of HTTP (the trigger calls [`Activity::answered`]) or of how pages
//! are released.
//!
//! Why: a request runs code spread over the binary, and the kernel maps 64 KiB around
//! every fault on a file, so serving keeps far more code resident than it runs. Measured
//! on a WASI 0.3 hello under `spinlet run`: 1.6 MB of the binary's code resident after
//! start-up, 12.6 MB after its first request, 17-22 MB after a burst of load. The pages
//! stay in the page cache (shared with every spinlet process, and, unmapped, the first
//! memory the kernel reclaims under pressure); the next burst maps what it runs again,
//! a few hundred minor faults.
//!
//! The rule: start-up is activity like a burst of requests. Once no request has been
//! answered for [`QUIET`] since the releaser started (start-up is over) or since the
//! last request, release; then wait for the next request. An idle app does no work at
//! all: the releaser sleeps until a request wakes it. Start-up's own release waits for
//! that quiet period rather than running before the first request: done synchronously
//! between binding and serving, its `madvise` and the faults that map the serving code
//! back in were on the path of the first request (a warm `spinlet run`'s first 200).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use tokio::sync::Notify;

/// How long without an answered request counts as idle.
pub const QUIET: Duration = Duration::from_millis(500);

/// Requests answered by one serving app, and the releaser's wake-up.
#[derive(Debug, Default)]
pub struct Activity {
    /// Requests answered so far.
    answered: AtomicU64,
    /// The releaser waits for a request: the next one must wake it.
    waiting: AtomicBool,
    wake: Notify,
}

impl Activity {
    /// Notes one answered request (on the request path: an atomic add, and a wake-up
    /// only for the first request after a release).
    pub fn answered(&self) {
        self.answered.fetch_add(1, SeqCst);
        if self.waiting.load(SeqCst) && self.waiting.swap(false, SeqCst) {
            self.wake.notify_one();
        }
    }

    /// Calls `release` once start-up is over (`quiet` without an answered request after
    /// this is called) and then each time the app goes idle after answering requests;
    /// never returns (drop or abort the future to stop).
    pub async fn release_when_idle(&self, quiet: Duration, mut release: impl FnMut()) {
        // Start-up counts as a burst: the first round goes straight to the quiet wait.
        let mut released_at = None;
        loop {
            // Sleep until a request has been answered since the last release. `waiting`
            // is set before the count is read again, and a request adds to the count
            // before it reads `waiting`, so one of the two sees the other
            // (`notify_one` keeps a permit if the wake comes before the wait).
            while let Some(at) = released_at.filter(|at| self.answered.load(SeqCst) == *at) {
                self.waiting.store(true, SeqCst);
                if self.answered.load(SeqCst) != at {
                    self.waiting.store(false, SeqCst);
                    break;
                }
                self.wake.notified().await;
            }
            // Then until a whole quiet period passes without one.
            let mut seen = self.answered.load(SeqCst);
            loop {
                tokio::time::sleep(quiet).await;
                let now = self.answered.load(SeqCst);
                if now == seen {
                    break;
                }
                seen = now;
            }
            release();
            released_at = Some(seen);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;
    use std::time::Instant;

    /// Waits (generously: CI machines are slow) until `releases` reaches `n`.
    async fn until_released(releases: &AtomicUsize, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while releases.load(SeqCst) < n {
            assert!(Instant::now() < deadline, "no release {n} within 60 s");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Start-up is released once it is over; then nothing is released while nothing
    /// happens; a burst of requests is followed by one release, and the next request
    /// starts the next round.
    #[tokio::test]
    async fn one_release_after_each_burst() {
        let quiet = Duration::from_millis(100);
        let activity = Arc::new(Activity::default());
        let releases = Arc::new(AtomicUsize::new(0));
        let task = {
            let (activity, releases) = (activity.clone(), releases.clone());
            tokio::spawn(async move {
                activity
                    .release_when_idle(quiet, || {
                        releases.fetch_add(1, SeqCst);
                    })
                    .await
            })
        };
        // Start-up's pages go once a quiet period has passed, and only once: idle from
        // then on, nothing more to release, however long.
        until_released(&releases, 1).await;
        tokio::time::sleep(quiet * 5).await;
        assert_eq!(
            releases.load(SeqCst),
            1,
            "released again with no request answered"
        );
        for _ in 0..10 {
            activity.answered();
        }
        until_released(&releases, 2).await;
        tokio::time::sleep(quiet * 5).await;
        assert_eq!(releases.load(SeqCst), 2, "released again while idle");
        activity.answered();
        until_released(&releases, 3).await;
        task.abort();
    }
}

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
//! The rule: start-up is over at the first answered request, or after [`QUIET`] without
//! one: release then. After that, once a request has been answered and none has been
//! for [`QUIET`], release, and wait for the next request. An idle app does no work at
//! all: the releaser sleeps until a request wakes it. Start-up's release comes after the
//! first answer rather than before serving: done between binding and serving, its
//! `madvise` and the faults that map the serving code back in were on the path of the
//! first request (a warm `spinlet run`'s first 200). Nor does it wait for a quiet period:
//! under a load from the start, start-up's code would stay resident until the load
//! stopped (the JS hello after 1,000 back-to-back requests: 35.3 MB, against 26.6).

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

    /// Calls `release` once start-up is over (at the first answered request, or after
    /// `quiet` without one) and then each time the app goes idle after answering
    /// requests; never returns (drop or abort the future to stop).
    pub async fn release_when_idle(&self, quiet: Duration, mut release: impl FnMut()) {
        // Whichever comes first; a wait cut short leaves `waiting` set, which costs the
        // next request one spare wake-up and nothing else.
        let _ = tokio::time::timeout(quiet, self.answered_since(0)).await;
        release();
        let mut released_at = self.answered.load(SeqCst);
        loop {
            self.answered_since(released_at).await;
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
            released_at = seen;
        }
    }

    /// Sleeps until more than `count` requests have been answered. `waiting` is set
    /// before the count is read again, and a request adds to the count before it reads
    /// `waiting`, so one of the two sees the other (`notify_one` keeps a permit if the
    /// wake comes before the wait).
    async fn answered_since(&self, count: u64) {
        while self.answered.load(SeqCst) == count {
            self.waiting.store(true, SeqCst);
            if self.answered.load(SeqCst) != count {
                self.waiting.store(false, SeqCst);
                break;
            }
            self.wake.notified().await;
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

    /// An activity, its releaser task (quiet period `quiet`) and the count of releases.
    fn releaser(quiet: Duration) -> (Arc<Activity>, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
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
        (activity, releases, task)
    }

    /// Start-up is released once it is over; then nothing is released while nothing
    /// happens; a burst of requests is followed by one release, and the next request
    /// starts the next round.
    #[tokio::test]
    async fn one_release_after_each_burst() {
        let quiet = Duration::from_millis(100);
        let (activity, releases, task) = releaser(quiet);
        // With no request, start-up's pages go once a quiet period has passed, and only
        // once: idle from then on, nothing more to release, however long.
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

    /// Start-up ends at the first answered request: its release does not wait for a
    /// quiet period, so a load from the start does not keep start-up's code resident.
    #[tokio::test]
    async fn start_up_is_released_at_the_first_answer() {
        let (activity, releases, task) = releaser(Duration::from_secs(3600));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            releases.load(SeqCst),
            0,
            "released before start-up was over"
        );
        activity.answered();
        until_released(&releases, 1).await;
        // The requests after it are a burst still going on: nothing more.
        activity.answered();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(releases.load(SeqCst), 1);
        task.abort();
    }
}

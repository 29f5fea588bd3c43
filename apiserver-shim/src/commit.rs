//! The group commit: the one task that makes queued writes durable, then publishes their
//! events and acknowledges their writers; and the checkpoints that let the write-ahead
//! log forget what sled holds durably.
//!
//! Owns the [`Wal`] (only this task writes it) and the order of a group: append + sync
//! first, publish and acknowledge after. It does not decide what is written (the store
//! does) nor read objects.
//!
//! When the log moves to a new segment two things start off the write path: the segment
//! after it is preallocated (a spare, so the next rotation does not wait for zeros to be
//! written), and a checkpoint flushes sled, `fdatasync`s sled's log and deletes the
//! segments before the new one. Writes keep being committed meanwhile. A rotation waits
//! only for its spare, never for a checkpoint: sled's flush grows with the tree (seconds
//! with a few hundred thousand objects) and a group commit that waited for it held up
//! every writer. While a checkpoint runs the log may fill more segments; the rotations
//! meanwhile are folded into one checkpoint started when the running one ends, which
//! deletes them all.

use std::sync::{Arc, Weak};

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::store::Store;
use crate::wal::{self, Appended, Wal};

/// A checkpoint in progress.
type Checkpoint = JoinHandle<Result<(), String>>;
/// A spare segment being preallocated: its number and file.
type Spare = JoinHandle<Result<(u64, std::fs::File), String>>;

/// The work that follows rotations, off the write path.
#[derive(Default)]
struct Rotations {
    /// Preallocating the segment after the current one.
    spare: Option<Spare>,
    /// The running checkpoint.
    checkpoint: Option<Checkpoint>,
    /// The newest rotation since the running checkpoint started: the next checkpoint
    /// deletes the segments before it.
    next_keep_from: Option<u64>,
}

impl Rotations {
    /// After the log moved to segment `seq`.
    fn rotated(&mut self, store: &Store, log: &Wal, seq: u64) {
        self.spare = Some(prepare_spare(log, seq + 1));
        self.next_keep_from = Some(seq);
        self.start_checkpoint(store, log);
    }

    /// Starts a checkpoint for the newest rotation when none runs.
    fn start_checkpoint(&mut self, store: &Store, log: &Wal) {
        if self.checkpoint.is_some() {
            return;
        }
        if let Some(keep_from) = self.next_keep_from.take() {
            self.checkpoint = Some(start_checkpoint(store, log, keep_from));
        }
    }

    /// Reaps a finished checkpoint and starts the one rotations since asked for.
    async fn poll(&mut self, store: &Store, log: &Wal) {
        if let Some(handle) = self.checkpoint.take_if(|h| h.is_finished()) {
            self.ended(handle.await, store, log);
        }
    }

    /// The running checkpoint ended with `result`: starts the one rotations since asked
    /// for. A failed checkpoint only keeps old segments around (they are replayed
    /// idempotently); the next one retries.
    fn ended(
        &mut self,
        result: Result<Result<(), String>, tokio::task::JoinError>,
        store: &Store,
        log: &Wal,
    ) {
        self.checkpoint = None;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "checkpoint failed"),
            Err(e) => tracing::warn!(error = %e, "checkpoint task failed"),
        }
        self.start_checkpoint(store, log);
    }

    /// Before a rotation: waits for the spare and hands it to the log (without one the
    /// log preallocates the segment itself).
    async fn ready_spare(&mut self, log: &mut Wal) {
        let Some(handle) = self.spare.take() else {
            return;
        };
        match handle.await {
            Ok(Ok((seq, file))) => log.set_spare(seq, file),
            Ok(Err(e)) => tracing::warn!(error = %e, "preallocating a log segment failed"),
            Err(e) => tracing::warn!(error = %e, "preallocating a log segment failed"),
        }
    }
}

/// Runs the group-commit loop until the store is dropped.
pub async fn run(store: Weak<Store>, wake: Arc<Notify>, wal: Wal) {
    let mut wal = Some(wal);
    let mut rotations = Rotations::default();
    loop {
        let notified = wake.notified();
        // Let writers that were just acknowledged and woken queue their next write first,
        // so one sync covers more of them.
        tokio::task::yield_now().await;
        let Some(s) = store.upgrade() else { return };
        let pending = std::mem::take(&mut *s.lock_pending());
        if pending.events.is_empty() {
            // Idle: wait for writes, or for the running checkpoint when rotations since
            // wait for the next one (so their segments go without another write).
            let deferred = rotations.next_keep_from.is_some();
            match (rotations.checkpoint.as_mut(), wal.as_ref()) {
                (Some(handle), Some(log)) if deferred => {
                    let ended = tokio::select! {
                        _ = notified => None,
                        result = handle => Some(result),
                    };
                    if let Some(result) = ended {
                        rotations.ended(result, &s, log);
                    }
                }
                _ => {
                    drop(s);
                    notified.await;
                }
            }
            continue;
        }
        let Some(mut log) = wal.take() else { return };
        if log.would_rotate(pending.records.len()) {
            rotations.ready_spare(&mut log).await;
        }
        let records = pending.records;
        let joined = tokio::task::spawn_blocking(move || {
            let result = log.append(&records);
            (log, result)
        })
        .await;
        let (log, result) = match joined {
            Ok((log, result)) => (log, result.map_err(|e| e.to_string())),
            Err(e) => {
                // The log's owner panicked or was cancelled: nothing more can be committed.
                let e = format!("write-ahead log task failed: {e}");
                tracing::error!(error = %e, "writes are not acknowledged");
                s.durable.send_modify(|d| d.error = Some(e));
                return;
            }
        };
        let last = pending.events.last().map(|e| e.rev).unwrap_or(0);
        match result {
            Ok(appended) => {
                for ev in pending.events {
                    // No receivers is fine.
                    let _ = s.events.send(ev);
                }
                s.durable.send_modify(|d| d.rev = d.rev.max(last));
                if let Appended::Rotated { seq } = appended {
                    rotations.rotated(&s, &log, seq);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "write-ahead log append failed; writes are not acknowledged");
                s.durable.send_modify(|d| d.error = Some(e));
            }
        }
        rotations.poll(&s, &log).await;
        wal = Some(log);
    }
}

/// Preallocates segment `seq` (blocking, off the write path).
fn prepare_spare(log: &Wal, seq: u64) -> Spare {
    let (dir, segment_bytes) = (log.dir(), log.segment_bytes());
    tokio::task::spawn_blocking(move || {
        let file = wal::prepare_spare(&dir, seq, segment_bytes).map_err(|e| e.to_string())?;
        Ok((seq, file))
    })
}

/// Flushes sled and drops the segments before `keep_from`: everything in them was
/// applied to sled before the log moved on, so before this flush.
fn start_checkpoint(store: &Store, log: &Wal, keep_from: u64) -> Checkpoint {
    let (tree, sled_log) = (store.tree(), store.sled_log());
    let dir = log.dir();
    tokio::task::spawn_blocking(move || {
        tree.flush().map_err(|e| format!("flushing sled: {e}"))?;
        sled_log
            .sync_data()
            .map_err(|e| format!("syncing sled's log: {e}"))?;
        wal::remove_before(&dir, keep_from).map_err(|e| e.to_string())
    })
}

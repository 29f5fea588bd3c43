//! The group commit: the one task that makes queued writes durable, then publishes their
//! events and acknowledges their writers; and the checkpoints that let the write-ahead
//! log forget what sled holds durably.
//!
//! Owns the [`Wal`] (only this task writes it) and the order of a group: append + sync
//! first, publish and acknowledge after. It does not decide what is written (the store
//! does) nor read objects.
//!
//! A checkpoint starts when the log moves to a new segment: off the write path, it
//! flushes sled, `fdatasync`s sled's log, deletes the segments before the new one and
//! preallocates the segment after it, so the next rotation does not wait for zeros to be
//! written. Writes keep being committed to the new segment meanwhile.

use std::sync::{Arc, Weak};

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::store::Store;
use crate::wal::{self, Appended, Wal};

/// A checkpoint in progress: it returns the preallocated next segment.
type Checkpoint = JoinHandle<Result<(u64, std::fs::File), String>>;

/// Runs the group-commit loop until the store is dropped.
pub async fn run(store: Weak<Store>, wake: Arc<Notify>, wal: Wal) {
    let mut wal = Some(wal);
    let mut checkpoint: Option<Checkpoint> = None;
    loop {
        let notified = wake.notified();
        // Let writers that were just acknowledged and woken queue their next write first,
        // so one sync covers more of them.
        tokio::task::yield_now().await;
        let Some(s) = store.upgrade() else { return };
        let pending = std::mem::take(&mut *s.lock_pending());
        if pending.events.is_empty() {
            drop(s);
            notified.await;
            continue;
        }
        let Some(mut log) = wal.take() else { return };
        // A rotation must not race the checkpoint that prepares the next segment.
        if log.would_rotate(pending.records.len()) {
            if let Some(handle) = checkpoint.take() {
                let waited = std::time::Instant::now();
                let running = !handle.is_finished();
                finish(handle, &mut log).await;
                if running {
                    tracing::debug!(
                        waited_ms = waited.elapsed().as_secs_f64() * 1e3,
                        "rotation waited for the checkpoint"
                    );
                }
            }
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
                    s.fanout.publish(ev);
                }
                s.durable.send_modify(|d| d.rev = d.rev.max(last));
                if let Appended::Rotated { seq } = appended {
                    checkpoint = Some(start_checkpoint(&s, &log, seq));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "write-ahead log append failed; writes are not acknowledged");
                s.durable.send_modify(|d| d.error = Some(e));
            }
        }
        let mut log = log;
        if checkpoint.as_ref().is_some_and(|h| h.is_finished()) {
            if let Some(handle) = checkpoint.take() {
                finish(handle, &mut log).await;
            }
        }
        wal = Some(log);
    }
}

/// Flushes sled and drops the segments before `keep_from`, then preallocates the one
/// after it.
fn start_checkpoint(store: &Store, log: &Wal, keep_from: u64) -> Checkpoint {
    let (tree, sled_log) = (store.tree(), store.sled_log());
    let (dir, segment_bytes) = (log.dir(), log.segment_bytes());
    tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        let flushed = tree.flush().map_err(|e| format!("flushing sled: {e}"))?;
        let flush_ms = started.elapsed().as_secs_f64() * 1e3;
        sled_log
            .sync_data()
            .map_err(|e| format!("syncing sled's log: {e}"))?;
        tracing::debug!(
            flushed,
            flush_ms,
            sync_ms = started.elapsed().as_secs_f64() * 1e3 - flush_ms,
            "checkpoint"
        );
        wal::remove_before(&dir, keep_from).map_err(|e| e.to_string())?;
        let next = keep_from + 1;
        let file = wal::prepare_spare(&dir, next, segment_bytes).map_err(|e| e.to_string())?;
        Ok((next, file))
    })
}

/// Waits for a checkpoint and hands its segment to the log. A failed checkpoint only
/// keeps old segments around (they are replayed idempotently); the next one retries.
async fn finish(handle: Checkpoint, log: &mut Wal) {
    match handle.await {
        Ok(Ok((seq, file))) => log.set_spare(seq, file),
        Ok(Err(e)) => tracing::warn!(error = %e, "checkpoint failed"),
        Err(e) => tracing::warn!(error = %e, "checkpoint task failed"),
    }
}

//! The store's write-ahead log: what makes a write durable before it is acknowledged.
//!
//! Owns the files under `<store dir>/wal/` and their format; knows nothing of objects,
//! keys or sled (the store builds the payloads and replays them).
//!
//! Why a log of our own: sled 0.34 makes a write durable with one `pwrite` and one
//! `sync_file_range` per write batch, issued from I/O threads it spawns per burst, and
//! still without a disk-cache flush. Under 24 concurrent writers that is thousands of
//! syscalls a second and a long latency tail. Here one group of writes is one `write` and
//! one `fdatasync`, the pattern of etcd's WAL; sled keeps the data and is flushed only at a
//! checkpoint, when a segment is full, after which the segment is deleted.
//!
//! Format: segments `<seq, 16 hex digits>.wal`, each preallocated with zeros (so an
//! `fdatasync` of an in-place write has no file-size change to journal), holding records
//! `len: u32 LE | crc32(payload): u32 LE | payload`. A zero length ends a segment's
//! records; so does a record that is short or fails its checksum (a write torn by a
//! crash, which was never acknowledged).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Default size a segment is preallocated to. A group that does not fit in what is left of the
/// current segment goes to the next one (a single group larger than a segment still goes
/// whole into a fresh segment, which then grows).
pub const SEGMENT_BYTES: u64 = 8 * 1024 * 1024;

const HEADER: usize = 8;

/// Errors of the log.
#[derive(Debug, thiserror::Error)]
#[error("write-ahead log {path}: {source}")]
pub struct WalError {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

fn err(path: &Path) -> impl FnOnce(std::io::Error) -> WalError + '_ {
    move |source| WalError {
        path: path.to_owned(),
        source,
    }
}

/// Appends one framed record to `out`.
pub fn frame(payload: &[u8], out: &mut Vec<u8>) {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// The segment being written.
pub struct Wal {
    dir: PathBuf,
    file: File,
    seq: u64,
    offset: u64,
    segment_bytes: u64,
    spare: Option<(u64, File)>,
}

/// What [`Wal::append`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Appended {
    /// The records went into the current segment.
    Same,
    /// The current segment was full: the records start segment `seq`, and every segment
    /// before it may be deleted once the data it holds is durable elsewhere.
    Rotated {
        /// The first segment to keep.
        seq: u64,
    },
}

impl Wal {
    /// Reads every record of the log in `dir` (oldest first), for replay. Stops at the
    /// first torn or corrupt record: nothing after it was acknowledged.
    pub fn read_all(dir: &Path) -> Result<Vec<Vec<u8>>, WalError> {
        let mut out = Vec::new();
        for (_, path) in segments(dir)? {
            let mut bytes = Vec::new();
            File::open(&path)
                .and_then(|mut f| f.read_to_end(&mut bytes))
                .map_err(err(&path))?;
            let complete = read_records(&bytes, &mut out);
            if !complete {
                tracing::warn!(segment = %path.display(), "write-ahead log ends in a torn record");
                break;
            }
        }
        Ok(out)
    }

    /// Starts a fresh log in `dir` after everything in it has been replayed and made
    /// durable: removes the old segments and opens a new, preallocated one.
    pub fn create(dir: &Path, segment_bytes: u64) -> Result<Wal, WalError> {
        std::fs::create_dir_all(dir).map_err(err(dir))?;
        let old = segments(dir)?;
        let seq = old.last().map(|(s, _)| s + 1).unwrap_or(1);
        let file = preallocate(dir, seq, segment_bytes)?;
        remove_before(dir, seq)?;
        Ok(Wal {
            dir: dir.to_owned(),
            file,
            seq,
            offset: 0,
            segment_bytes,
            spare: None,
        })
    }

    /// Whether appending `len` bytes moves the log to its next segment.
    pub fn would_rotate(&self, len: usize) -> bool {
        self.offset > 0 && self.offset + len as u64 > self.segment_bytes
    }

    /// The log's directory.
    pub fn dir(&self) -> PathBuf {
        self.dir.clone()
    }

    /// The size segments are preallocated to.
    pub fn segment_bytes(&self) -> u64 {
        self.segment_bytes
    }

    /// The number of the segment being written.
    pub fn segment(&self) -> u64 {
        self.seq
    }

    /// Writes `records` (framed with [`frame`]) and waits until they are on disk.
    pub fn append(&mut self, records: &[u8]) -> Result<Appended, WalError> {
        let mut result = Appended::Same;
        if self.would_rotate(records.len()) {
            let seq = self.seq + 1;
            self.file = match self.spare.take() {
                Some((s, f)) if s == seq => f,
                _ => preallocate(&self.dir, seq, self.segment_bytes)?,
            };
            self.seq = seq;
            self.offset = 0;
            result = Appended::Rotated { seq };
        }
        let path = segment_path(&self.dir, self.seq);
        self.file
            .seek(SeekFrom::Start(self.offset))
            .and_then(|_| self.file.write_all(records))
            .and_then(|_| self.file.sync_data())
            .map_err(err(&path))?;
        self.offset += records.len() as u64;
        Ok(result)
    }

    /// Hands over a segment made by [`prepare_spare`], used at the next rotation.
    pub fn set_spare(&mut self, seq: u64, file: File) {
        if seq == self.seq + 1 {
            self.spare = Some((seq, file));
        }
    }
}

/// Preallocates segment `seq` ahead of need (blocking; run it off the write path).
pub fn prepare_spare(dir: &Path, seq: u64, segment_bytes: u64) -> Result<File, WalError> {
    preallocate(dir, seq, segment_bytes)
}

/// Deletes the segments numbered below `seq`.
pub fn remove_before(dir: &Path, seq: u64) -> Result<(), WalError> {
    for (s, path) in segments(dir)? {
        if s < seq {
            std::fs::remove_file(&path).map_err(err(&path))?;
        }
    }
    Ok(())
}

/// Parses the records in one segment's bytes into `out`; false when the segment ends in
/// a torn or corrupt record rather than in zeros or at its end.
fn read_records(bytes: &[u8], out: &mut Vec<Vec<u8>>) -> bool {
    let mut at = 0usize;
    while at + HEADER <= bytes.len() {
        let word = |i: usize| {
            let mut w = [0u8; 4];
            w.copy_from_slice(&bytes[at + i..at + i + 4]);
            u32::from_le_bytes(w)
        };
        let (len, crc) = (word(0) as usize, word(4));
        if len == 0 {
            return crc == 0;
        }
        let Some(payload) = bytes.get(at + HEADER..at + HEADER + len) else {
            return false;
        };
        if crc32fast::hash(payload) != crc {
            return false;
        }
        out.push(payload.to_vec());
        at += HEADER + len;
    }
    true
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:016x}.wal"))
}

/// The segments in `dir`, oldest first.
fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, WalError> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(err(dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(err(dir))?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".wal")) else {
            continue;
        };
        if let Ok(seq) = u64::from_str_radix(stem, 16) {
            out.push((seq, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Creates segment `seq` filled with zeros, synced, with its directory entry synced.
fn preallocate(dir: &Path, seq: u64, segment_bytes: u64) -> Result<File, WalError> {
    let path = segment_path(dir, seq);
    let tmp = path.with_extension("tmp");
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(err(&tmp))?;
    let zeros = vec![0u8; 1024 * 1024];
    let mut left = segment_bytes;
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        file.write_all(&zeros[..n]).map_err(err(&tmp))?;
        left -= n as u64;
    }
    file.sync_all().map_err(err(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(err(&path))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(err(dir))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(payloads: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in payloads {
            frame(p, &mut out);
        }
        out
    }

    #[test]
    fn appended_records_are_read_back_in_order_across_segments() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut wal = Wal::create(dir.path(), SEGMENT_BYTES).expect("create");
        wal.append(&records(&[b"one", b"two"])).expect("append");
        let big = vec![7u8; SEGMENT_BYTES as usize - 20];
        let r = wal.append(&records(&[&big])).expect("append big");
        assert_eq!(r, Appended::Rotated { seq: 2 });
        wal.append(&records(&[b"three"])).expect("append");
        let all = Wal::read_all(dir.path()).expect("read");
        assert_eq!(all.len(), 4);
        assert_eq!(all[0], b"one");
        assert_eq!(all[1], b"two");
        assert_eq!(all[2].len(), big.len());
        assert_eq!(all[3], b"three");
    }

    #[test]
    fn a_torn_or_corrupt_tail_ends_the_log() {
        let mut seg = records(&[b"kept", b"also kept"]);
        seg.extend_from_slice(&records(&[b"torn record"])[..10]);
        let mut out = Vec::new();
        assert!(!read_records(&seg, &mut out));
        assert_eq!(out, vec![b"kept".to_vec(), b"also kept".to_vec()]);

        let mut seg = records(&[b"kept", b"flipped"]);
        let last = seg.len() - 1;
        seg[last] ^= 1;
        let mut out = Vec::new();
        assert!(!read_records(&seg, &mut out));
        assert_eq!(out, vec![b"kept".to_vec()]);

        let mut seg = records(&[b"a"]);
        seg.extend_from_slice(&[0u8; 64]);
        let mut out = Vec::new();
        assert!(read_records(&seg, &mut out));
        assert_eq!(out, vec![b"a".to_vec()]);
    }

    #[test]
    fn create_starts_after_the_old_segments_and_removes_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut wal = Wal::create(dir.path(), SEGMENT_BYTES).expect("create");
        wal.append(&records(&[b"x"])).expect("append");
        drop(wal);
        let wal = Wal::create(dir.path(), SEGMENT_BYTES).expect("recreate");
        assert_eq!(wal.segment(), 2);
        assert!(Wal::read_all(dir.path()).expect("read").is_empty());
    }
}

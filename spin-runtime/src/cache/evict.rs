//! Bounding the compiled-code directory: least-recently-used artifacts are removed once
//! the artifacts of every engine directory together exceed a size cap.
//!
//! This module owns removing files from the compiled-code directory (`<cache root>/compiled`,
//! laid out as [`super`] describes): `<engine>/<hash>.cwasm` artifacts of any engine
//! fingerprint (another spinlet's or wasmtime's artifacts count and go first when they
//! are the oldest), index entries under `<engine>/sources/` that name a removed artifact,
//! and temporary files a writer that died left behind. It never writes or maps an
//! artifact.
//!
//! "Used" is the later of an artifact's access and modification times: it is written when
//! compiled, and mapping it for a start reads it, which the kernel records as an access
//! (under the default `relatime` mount option, at least once a day and on the first use
//! after a write; on a `noatime` file system the order is that of compilation). Removing an
//! artifact a running sandbox has mapped is safe: the mapping keeps the inode until it
//! ends. A start that finds its artifact removed compiles it again.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The default cap: 2 GiB of compiled code (the JS and Python hellos compile to 15–40 MB).
pub const DEFAULT_MAX_BYTES: u64 = 2 << 30;

/// Temporary files older than this are a dead writer's and are removed.
const STALE_TEMPORARY: Duration = Duration::from_secs(3600);

/// What one eviction pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evicted {
    /// Artifacts removed.
    pub removed: usize,
    /// Their bytes.
    pub freed: u64,
    /// Bytes of the artifacts kept.
    pub kept: u64,
}

/// An artifact found in the directory.
struct Artifact {
    path: PathBuf,
    len: u64,
    used: SystemTime,
}

/// Removes the least recently used artifacts under `compiled_dir` until those left take
/// at most `max_bytes`, then the index entries naming removed artifacts and stale
/// temporary files. A directory that does not exist has nothing to evict. Files that
/// cannot be removed are logged and counted as kept.
pub fn evict(compiled_dir: &Path, max_bytes: u64) -> std::io::Result<Evicted> {
    let engines = match std::fs::read_dir(compiled_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Evicted::default()),
        Err(e) => return Err(e),
    };
    let now = SystemTime::now();
    let mut artifacts = Vec::new();
    let mut engine_dirs = Vec::new();
    for engine in engines.flatten() {
        let dir = engine.path();
        if !engine.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(".tmp-") {
                let modified = meta.modified().unwrap_or(now);
                if now.duration_since(modified).unwrap_or_default() > STALE_TEMPORARY {
                    remove(&path);
                }
            } else if name.ends_with(".cwasm") {
                let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                let accessed = meta.accessed().unwrap_or(modified);
                artifacts.push(Artifact {
                    path,
                    len: meta.len(),
                    used: modified.max(accessed),
                });
            }
        }
        engine_dirs.push(dir);
    }
    let mut total: u64 = artifacts.iter().map(|a| a.len).sum();
    let mut evicted = Evicted::default();
    if total > max_bytes {
        // Least recently used first; the name breaks ties so a pass is deterministic.
        artifacts.sort_by(|a, b| a.used.cmp(&b.used).then_with(|| a.path.cmp(&b.path)));
        for a in &artifacts {
            if total <= max_bytes {
                break;
            }
            if remove(&a.path) {
                total -= a.len;
                evicted.removed += 1;
                evicted.freed += a.len;
            }
        }
        for dir in &engine_dirs {
            prune_index(dir);
        }
    }
    evicted.kept = total;
    Ok(evicted)
}

/// Removes the index entries of `engine_dir` whose artifact is gone.
fn prune_index(engine_dir: &Path) {
    let sources = engine_dir.join("sources");
    for entry in std::fs::read_dir(&sources).into_iter().flatten().flatten() {
        let path = entry.path();
        let Ok(hash) = std::fs::read_to_string(&path) else {
            continue;
        };
        let hash = hash.trim();
        let stale = hash.is_empty()
            || !hash.bytes().all(|b| b.is_ascii_hexdigit())
            || !engine_dir.join(format!("{hash}.cwasm")).is_file();
        if stale && !entry.file_name().to_string_lossy().starts_with(".tmp-") {
            remove(&path);
        }
    }
}

/// Removes a file; whether it is gone.
fn remove(path: &Path) -> bool {
    match std::fs::remove_file(path) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove from the compile cache");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::FileTimes;

    /// Writes an artifact of `len` bytes last used `age` seconds before `base`.
    fn artifact(dir: &Path, hash: &str, len: usize, base: SystemTime, age: u64) -> PathBuf {
        std::fs::create_dir_all(dir.join("sources")).expect("mkdir");
        let path = dir.join(format!("{hash}.cwasm"));
        std::fs::write(&path, vec![0u8; len]).expect("write");
        let at = base - Duration::from_secs(age);
        let times = FileTimes::new().set_accessed(at).set_modified(at);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .expect("open")
            .set_times(times)
            .expect("set times");
        std::fs::write(dir.join("sources").join(format!("id-{hash}")), hash).expect("index");
        path
    }

    fn hash(c: char) -> String {
        c.to_string().repeat(64)
    }

    #[test]
    fn under_the_cap_nothing_is_removed() {
        let root = tempfile::tempdir().expect("tempdir");
        let now = SystemTime::now();
        let a = artifact(&root.path().join("e1"), &hash('a'), 100, now, 10);
        let b = artifact(&root.path().join("e1"), &hash('b'), 100, now, 20);
        let done = evict(root.path(), 200).expect("evict");
        assert_eq!(
            done,
            Evicted {
                removed: 0,
                freed: 0,
                kept: 200
            }
        );
        assert!(a.is_file() && b.is_file());
        assert_eq!(
            evict(&root.path().join("missing"), 0).expect("evict"),
            Evicted::default()
        );
    }

    #[test]
    fn least_recently_used_go_first_across_engines_with_their_index_entries() {
        let root = tempfile::tempdir().expect("tempdir");
        let now = SystemTime::now();
        let e1 = root.path().join("e1");
        let e2 = root.path().join("e2");
        let oldest = artifact(&e2, &hash('a'), 100, now, 300);
        let old = artifact(&e1, &hash('b'), 100, now, 200);
        let recent = artifact(&e1, &hash('c'), 100, now, 100);
        let newest = artifact(&e2, &hash('d'), 100, now, 0);
        // Only the access time says `old` was used most recently of all.
        let used_now = FileTimes::new().set_accessed(now);
        std::fs::File::options()
            .write(true)
            .open(&old)
            .expect("open")
            .set_times(used_now)
            .expect("touch");

        let done = evict(root.path(), 250).expect("evict");
        assert_eq!(
            done,
            Evicted {
                removed: 2,
                freed: 200,
                kept: 200
            }
        );
        assert!(!oldest.exists() && !recent.exists());
        assert!(old.is_file() && newest.is_file());
        let index = |dir: &Path, c: char| dir.join("sources").join(format!("id-{}", hash(c)));
        assert!(!index(&e2, 'a').exists() && !index(&e1, 'c').exists());
        assert!(index(&e1, 'b').exists() && index(&e2, 'd').exists());
    }

    #[test]
    fn stale_temporary_files_are_removed_fresh_ones_kept() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("e1");
        std::fs::create_dir_all(&dir).expect("mkdir");
        let stale = dir.join(".tmp-1-0");
        let fresh = dir.join(".tmp-1-1");
        std::fs::write(&stale, b"half").expect("write");
        std::fs::write(&fresh, b"half").expect("write");
        let long_ago = SystemTime::now() - 2 * STALE_TEMPORARY;
        std::fs::File::options()
            .write(true)
            .open(&stale)
            .expect("open")
            .set_modified(long_ago)
            .expect("age");
        evict(root.path(), DEFAULT_MAX_BYTES).expect("evict");
        assert!(!stale.exists());
        assert!(fresh.exists(), "a writer may still be writing it");
    }
}

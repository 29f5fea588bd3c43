//! The pull cache of [`super`]: atomic writes, reads checked against their digest, and
//! the per-blob lock that makes concurrent pullers (processes or threads) download each
//! blob once. It does not know the registry protocol: fetching is the client's.

use std::path::{Path, PathBuf};

use super::client::RegistryClient;
use super::{digest, Error, Result};

pub(super) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

/// Writes `bytes` to `path` atomically (temp file + rename).
pub(super) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}-{n}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    if let Err(e) = std::fs::write(&tmp, bytes) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_err(&tmp)(e));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io_err(path)(e)
    })
}

/// The content of `path` if it exists and matches `expected`.
pub(super) fn read_verified(path: &Path, expected: &str) -> Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(bytes) if digest(&bytes) == expected => Ok(Some(bytes)),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// The blob `expected` from the cache file `path`, fetching it (once, across concurrent
/// pullers: see the module doc) when it is missing or does not match its digest.
pub(super) fn cached_blob(client: &RegistryClient, path: &Path, expected: &str) -> Result<Vec<u8>> {
    if let Some(bytes) = read_verified(path, expected)? {
        return Ok(bytes);
    }
    let parent = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io_err(parent))?;
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = PathBuf::from(lock_path);
    let lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(io_err(&lock_path))?;
    lock.lock().map_err(io_err(&lock_path))?;
    // Another puller may have fetched it while this one waited for the lock.
    if let Some(bytes) = read_verified(path, expected)? {
        return Ok(bytes);
    }
    let bytes = client.pull_blob(expected)?;
    write_atomic(path, &bytes)?;
    drop(lock);
    Ok(bytes)
}

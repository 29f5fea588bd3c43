//! Air-gapped images: OCI image-layout archives (`.tar`, `.tar.gz`/`.tgz`,
//! `.tar.zst`/`.tzst`, as `spinlet save` writes them and k3s's airgap tarballs are)
//! dropped in `<agent data dir>/images/` are imported into the image cache at start and
//! whenever one appears or changes (the directory is polled), so pods whose image an
//! archive names run with `imagePullPolicy: IfNotPresent` or `Never` and no registry.
//!
//! Each image is keyed by the name its `index.json` descriptor gives (and by its
//! digest). An archive that cannot be imported is logged and recorded as a Warning Event
//! on the Node naming the file and what is wrong; it never stops the agent, and it is
//! tried again only once the file changes. Imported images are queued for compiling
//! ([`crate::image::precompile`]) without waiting. Owns the images directory (read only) and
//! nothing else: the archive format is `spin_runtime::oci`'s, the cache layout
//! `spin_runtime::oci::store`'s.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use spin_runtime::oci::Reference;
use tokio_util::sync::CancellationToken;

use crate::events::{Kind, Recorder};
use crate::image::precompile::Precompiler;

/// How often the images directory is looked at for new or changed archives.
pub const POLL_INTERVAL: Duration = Duration::from_secs(5);

/// The images directory under the agent's data dir.
pub fn images_dir(agent_data_dir: &Path) -> PathBuf {
    agent_data_dir.join("images")
}

/// What importing one archive did.
#[derive(Debug)]
pub struct Imported {
    /// The archive.
    pub file: PathBuf,
    /// The images imported, or why the archive was refused.
    pub result: Result<Vec<Image>, String>,
}

/// One imported image.
#[derive(Debug)]
pub struct Image {
    /// Its name (the reference the archive gives).
    pub name: String,
    /// Its manifest digest.
    pub digest: String,
    /// Its Wasm files in the image cache.
    pub wasm: Vec<PathBuf>,
}

/// The size and modification time of a file, to notice it changing.
type Stamp = (u64, Option<SystemTime>);

/// Imports archives from the images directory into the registry cache.
pub struct Importer {
    dir: PathBuf,
    registry_cache: PathBuf,
    /// What each archive looked like when last imported (or refused).
    done: BTreeMap<PathBuf, Stamp>,
    /// Archives seen changing at the last scan: imported once they hold still.
    settling: BTreeMap<PathBuf, Stamp>,
}

impl Importer {
    /// An importer of `dir` into the image cache under `cache_dir`.
    pub fn new(dir: PathBuf, cache_dir: &Path) -> Importer {
        Importer {
            dir,
            registry_cache: cache_dir.join(spin_runtime::cache::REGISTRY_SUBDIR),
            done: BTreeMap::new(),
            settling: BTreeMap::new(),
        }
    }

    /// Imports every archive not imported yet or changed since. With `settle`, an
    /// archive new or changed since the previous scan waits for the next one (so a file
    /// still being copied in is not read half-written).
    pub fn scan(&mut self, settle: bool) -> Vec<Imported> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot list air-gap images");
                return Vec::new();
            }
        };
        let mut found = BTreeMap::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if !meta.is_file() || !is_archive_name(&path) {
                continue;
            }
            found.insert(path, (meta.len(), meta.modified().ok()));
        }
        self.done.retain(|p, _| found.contains_key(p));
        let mut imported = Vec::new();
        for (path, stamp) in found {
            if self.done.get(&path) == Some(&stamp) {
                continue;
            }
            if settle && self.settling.get(&path) != Some(&stamp) {
                self.settling.insert(path, stamp);
                continue;
            }
            self.settling.remove(&path);
            let result = import(&path, &self.registry_cache);
            self.done.insert(path.clone(), stamp);
            imported.push(Imported { file: path, result });
        }
        imported
    }
}

/// Whether a file name is one of the archive names imported (hidden and temporary files
/// are not).
fn is_archive_name(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    !name.starts_with('.')
        && [".tar", ".tar.gz", ".tgz", ".tar.zst", ".tzst"]
            .iter()
            .any(|ext| name.ends_with(ext))
}

/// Imports every image of the archive at `path`; all or nothing is reported per
/// archive (images stored before a failure stay in the cache, which is harmless).
fn import(path: &Path, registry_cache: &Path) -> Result<Vec<Image>, String> {
    let images = spin_runtime::oci::read_archive(path).map_err(|e| e.to_string())?;
    let mut imported = Vec::new();
    for image in images {
        let reference = Reference::parse(&image.name).map_err(|_| {
            format!(
                "{}: image name {:?} is not a valid reference",
                path.display(),
                image.name
            )
        })?;
        let pulled = spin_runtime::oci::store(&reference, &image.artifact, registry_cache)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        imported.push(Image {
            name: reference.to_string(),
            wasm: crate::image::precompile::wasm_files(&pulled),
            digest: pulled.digest,
        });
    }
    Ok(imported)
}

/// Logs each outcome and records it as an Event on the node; the images imported are
/// queued for compiling when a `precompiler` is given.
pub fn report(outcomes: &[Imported], events: Option<&Recorder>, precompiler: Option<&Precompiler>) {
    for outcome in outcomes {
        let file = outcome.file.display().to_string();
        match &outcome.result {
            Ok(images) => {
                for Image { name, digest, wasm } in images {
                    tracing::info!(file, image = %name, digest, "imported air-gap image");
                    if let Some(precompiler) = precompiler {
                        precompiler.submit(name, wasm.clone());
                    }
                    if let Some(events) = events {
                        events.record_node(
                            Kind::Normal,
                            "ImageImported",
                            &format!("Imported image {name:?} ({digest}) from {file}"),
                        );
                    }
                }
            }
            Err(message) => {
                tracing::warn!(file, error = %message, "cannot import air-gap image archive");
                if let Some(events) = events {
                    events.record_node(
                        Kind::Warning,
                        "FailedImageImport",
                        &format!("Cannot import image archive {file}: {message}"),
                    );
                }
            }
        }
    }
}

/// Imports what the images directory holds now (the agent calls this before it starts
/// pods, so they find their images), then keeps polling it until `shutdown`.
pub async fn run(
    mut importer: Importer,
    events: Recorder,
    precompiler: Precompiler,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(POLL_INTERVAL) => {}
        }
        let scanned = tokio::task::spawn_blocking(move || {
            let outcomes = importer.scan(true);
            (importer, outcomes)
        })
        .await;
        match scanned {
            Ok((back, outcomes)) => {
                importer = back;
                report(&outcomes, Some(&events), Some(&precompiler));
            }
            Err(e) => {
                tracing::error!(error = %e, "air-gap image import stopped");
                return;
            }
        }
    }
}

/// The first import, at agent start: every archive present, without waiting for it to
/// settle; returns the importer for [`run`].
pub async fn import_present(
    mut importer: Importer,
    events: &Recorder,
    precompiler: &Precompiler,
) -> Option<Importer> {
    let scanned = tokio::task::spawn_blocking(move || {
        let outcomes = importer.scan(false);
        (importer, outcomes)
    })
    .await;
    match scanned {
        Ok((importer, outcomes)) => {
            report(&outcomes, Some(events), Some(precompiler));
            Some(importer)
        }
        Err(e) => {
            tracing::error!(error = %e, "air-gap image import failed");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archives_are_imported_once_and_bad_ones_are_reported_not_fatal() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("images");
        let cache = root.path().join("cache");
        let mut importer = Importer::new(dir.clone(), &cache);
        assert!(
            importer.scan(false).is_empty(),
            "no directory: nothing to do"
        );
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("notes.txt"), "ignored: not an archive name").unwrap();
        std::fs::write(dir.join("broken.tar.gz"), b"\x1f\x8b not really gzip").unwrap();
        let outcomes = importer.scan(false);
        assert_eq!(outcomes.len(), 1, "{outcomes:?}");
        let message = outcomes[0].result.as_ref().unwrap_err();
        assert!(message.contains("broken.tar.gz"), "{message}");
        // Unchanged: not tried again.
        assert!(importer.scan(false).is_empty());
        // Changed: tried again, once it holds still when settling.
        std::fs::write(dir.join("broken.tar.gz"), b"\x1f\x8b still not gzip!").unwrap();
        assert!(importer.scan(true).is_empty(), "waits one scan to settle");
        assert_eq!(importer.scan(true).len(), 1);
    }
}

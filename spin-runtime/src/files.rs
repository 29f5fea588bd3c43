//! Component files (`files` in `spin.toml`) on their way through a registry.
//!
//! This module owns how `files` and `exclude_files` resolve, and the two ends of the trip
//! through a registry, in Spin's format:
//!
//! - [`list`] turns a component's mounts into the regular files they contain, each with
//!   its guest path relative to `/`: a glob pattern (`static/**/*.css`) gives the files it
//!   matches at their paths relative to the app; a plain directory (`data`) everything
//!   under it; `{ source = "assets", destination = "/static" }` everything under
//!   `assets` at `static/…` (a file source lands exactly at the destination). Files whose
//!   path relative to the app matches an `exclude_files` glob are left out;
//! - for a local run, [`mounts`] preopens plain directory mounts directly, and when globs,
//!   exclusions or single files are involved copies the listed files into a fresh
//!   `<state dir>/files/<component>/` mounted at `/` (Spin's default copy mode does this
//!   for every app);
//! - for `spinlet push`, files of at most [`INLINE_MAX`] bytes are inlined in the locked
//!   app, larger ones travel as `application/vnd.wasm.content.layer.v1+data` layers;
//! - for `spinlet run <reference>`, [`materialise`] writes a pulled component's files
//!   under `<cache>/assets/<manifest digest>/<component>/`, which is then mounted
//!   read-only at `/` (as Spin's OCI loader does). The tree is immutable per manifest
//!   digest, so a file already there is kept, and each file is written atomically.

use std::path::{Component, Path, PathBuf};

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::manifest::FileMount;

/// Files up to this size are inlined in the locked app (as `spin registry push` does).
pub const INLINE_MAX: usize = 128;

/// Errors with component files.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A mount that cannot be pushed.
    #[error("files entry `{entry}`: {reason}")]
    Mount {
        /// The entry as written.
        entry: String,
        /// Why.
        reason: String,
    },
    /// A locked-app file entry with an unsafe or missing path or content.
    #[error("invalid file entry `{path}` in the locked app: {reason}")]
    Locked {
        /// The entry's path.
        path: String,
        /// Why.
        reason: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

/// A locked-app file: exactly one of `source`, `digest` and `inline` (base64), and the
/// path relative to the component's mount root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedFile {
    /// A `file://` URI (locked apps of local runs; not readable from a registry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// `sha256:<hex>` of a data layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The content, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline: Option<String>,
    /// Guest path relative to the mount root.
    pub path: String,
}

/// One file to push: where it is on the host and where the guest sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// The file on the host.
    pub host: PathBuf,
    /// The guest path relative to `/`, `/`-separated.
    pub guest: String,
}

fn is_glob(pattern: &str) -> bool {
    pattern.contains(['*', '?', '['])
}

/// The regular files under `files` minus `exclude`, sorted by guest path.
pub fn list(
    app_dir: &Path,
    files: &[FileMount],
    exclude: &[String],
) -> Result<Vec<FileEntry>, Error> {
    let mut out = Vec::new();
    for mount in files {
        let (source, destination) = match mount {
            FileMount::Pattern(p) => (p.as_str(), p.trim_start_matches("./")),
            FileMount::Placement {
                source,
                destination,
            } => (source.as_str(), destination.as_str()),
        };
        let err = |reason: &str| Error::Mount {
            entry: source.to_string(),
            reason: reason.to_string(),
        };
        match mount {
            FileMount::Pattern(p) if is_glob(p) => {
                glob_files(app_dir, p, &mut out)?;
                continue;
            }
            FileMount::Placement { .. } if is_glob(source) => {
                return Err(err("a placement source must be a directory or a file"));
            }
            _ => {}
        }
        let guest_root = relative_guest_path(destination).ok_or_else(|| {
            err("the destination must be an absolute path without `..` components")
        })?;
        let host = app_dir.join(source);
        let meta = std::fs::metadata(&host).map_err(io(&host))?;
        if meta.is_file() {
            out.push(FileEntry {
                host,
                guest: guest_root,
            });
        } else {
            walk(&host, &guest_root, &mut out)?;
        }
    }
    let exclude = exclude
        .iter()
        .map(|e| {
            glob::Pattern::new(e).map_err(|e2| Error::Mount {
                entry: e.clone(),
                reason: format!("invalid exclude_files glob: {e2}"),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    out.retain(|f| {
        let rel = f.host.strip_prefix(app_dir).unwrap_or(&f.host);
        !exclude.iter().any(|p| p.matches_path(rel))
    });
    out.sort_by(|a, b| a.guest.cmp(&b.guest));
    out.dedup_by(|a, b| a.guest == b.guest);
    Ok(out)
}

/// The files `pattern` (relative to `app_dir`) matches, at their paths relative to it.
fn glob_files(app_dir: &Path, pattern: &str, out: &mut Vec<FileEntry>) -> Result<(), Error> {
    let err = |reason: String| Error::Mount {
        entry: pattern.to_string(),
        reason,
    };
    let full = app_dir.join(pattern.trim_start_matches("./"));
    let matches = glob::glob(&full.to_string_lossy()).map_err(|e| err(e.to_string()))?;
    for path in matches {
        let path = path.map_err(|e| err(e.to_string()))?;
        if !path.is_file() {
            continue;
        }
        let rel = path.strip_prefix(app_dir).unwrap_or(&path);
        let guest = relative_guest_path(&rel.to_string_lossy())
            .ok_or_else(|| err(format!("{} is outside the app", path.display())))?;
        out.push(FileEntry { host: path, guest });
    }
    Ok(())
}

/// The `(host dir, guest dir)` preopens of a component's `files` for a local run. Plain
/// directory mounts are preopened as they are; otherwise the listed files are copied into
/// `copy_dir` (emptied first), which is mounted at `/`.
pub fn mounts(
    app_dir: &Path,
    files: &[FileMount],
    exclude: &[String],
    copy_dir: &Path,
) -> Result<Vec<(PathBuf, String)>, Error> {
    let direct: Option<Vec<(PathBuf, String)>> = files
        .iter()
        .map(|f| {
            let (source, destination) = match f {
                FileMount::Pattern(p) => (p.as_str(), format!("/{}", p.trim_start_matches("./"))),
                FileMount::Placement {
                    source,
                    destination,
                } => (source.as_str(), destination.clone()),
            };
            let host = app_dir.join(source);
            (!is_glob(source) && host.is_dir()).then_some((host, destination))
        })
        .collect();
    if let Some(direct) = direct.filter(|_| exclude.is_empty()) {
        return Ok(direct);
    }
    let entries = list(app_dir, files, exclude)?;
    if copy_dir.exists() {
        std::fs::remove_dir_all(copy_dir).map_err(io(copy_dir))?;
    }
    std::fs::create_dir_all(copy_dir).map_err(io(copy_dir))?;
    for entry in entries {
        let target = copy_dir.join(&entry.guest);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::copy(&entry.host, &target).map_err(io(&entry.host))?;
    }
    Ok(vec![(copy_dir.to_owned(), "/".to_string())])
}

fn walk(dir: &Path, guest: &str, out: &mut Vec<FileEntry>) -> Result<(), Error> {
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let guest = if guest.is_empty() {
            name
        } else {
            format!("{guest}/{name}")
        };
        let meta = std::fs::metadata(&path).map_err(io(&path))?;
        if meta.is_dir() {
            walk(&path, &guest, out)?;
        } else if meta.is_file() {
            out.push(FileEntry { host: path, guest });
        }
    }
    Ok(())
}

/// `/static/x` → `static/x`; `None` for paths with `..` (or other non-normal parts).
fn relative_guest_path(path: &str) -> Option<String> {
    let mut parts = Vec::new();
    for c in Path::new(path).components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(p) => parts.push(p.to_str()?.to_string()),
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    Some(parts.join("/"))
}

/// The locked-app entry for `bytes` at `guest`: inline when small, else by `digest`.
pub fn locked_entry(guest: &str, bytes: &[u8], digest: &str) -> LockedFile {
    let small = bytes.len() <= INLINE_MAX;
    LockedFile {
        source: None,
        digest: (!small).then(|| digest.to_string()),
        inline: small.then(|| base64::engine::general_purpose::STANDARD.encode(bytes)),
        path: guest.to_string(),
    }
}

/// Writes `files` under `root`; `data_file(digest)` is the pulled data layer.
pub fn materialise(
    root: &Path,
    files: &[LockedFile],
    data_file: &dyn Fn(&str) -> PathBuf,
) -> Result<(), Error> {
    std::fs::create_dir_all(root).map_err(io(root))?;
    for f in files {
        let bad = |reason: &str| Error::Locked {
            path: f.path.clone(),
            reason: reason.to_string(),
        };
        let rel = relative_guest_path(&f.path)
            .filter(|p| !p.is_empty())
            .ok_or_else(|| bad("the path must stay inside the mount"))?;
        let target = root.join(&rel);
        if target.is_file() {
            continue;
        }
        let bytes = match (&f.inline, &f.digest) {
            (Some(inline), _) => base64::engine::general_purpose::STANDARD
                .decode(inline)
                .map_err(|_| bad("inline content is not base64"))?,
            (None, Some(digest)) => {
                let path = data_file(digest);
                std::fs::read(&path).map_err(io(&path))?
            }
            (None, None) => return Err(bad("neither inline content nor a digest")),
        };
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        let tmp = target.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, &bytes).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &target).map_err(io(&target))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_paths() {
        assert_eq!(
            relative_guest_path("/static/x").as_deref(),
            Some("static/x")
        );
        assert_eq!(relative_guest_path("/").as_deref(), Some(""));
        assert_eq!(relative_guest_path("data").as_deref(), Some("data"));
        assert_eq!(relative_guest_path("/a/../../etc"), None);
    }

    #[test]
    fn list_inline_and_materialise() {
        let dir = std::env::temp_dir().join(format!("spinlet-files-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("assets/sub")).unwrap();
        std::fs::write(dir.join("assets/sub/a.txt"), "a").unwrap();
        std::fs::write(dir.join("one.txt"), vec![b'x'; 200]).unwrap();
        let mounts = [
            FileMount::Placement {
                source: "assets".into(),
                destination: "/static".into(),
            },
            FileMount::Placement {
                source: "one.txt".into(),
                destination: "/etc/one.txt".into(),
            },
        ];
        let entries = list(&dir, &mounts, &[]).unwrap();
        let guests: Vec<_> = entries.iter().map(|e| e.guest.as_str()).collect();
        assert_eq!(guests, ["etc/one.txt", "static/sub/a.txt"]);

        let small = locked_entry("static/sub/a.txt", b"a", "sha256:x");
        assert_eq!(small.inline.as_deref(), Some("YQ=="));
        assert_eq!(small.digest, None);
        let large = locked_entry("etc/one.txt", &[b'x'; 200], "sha256:big");
        assert_eq!(large.digest.as_deref(), Some("sha256:big"));
        std::fs::write(dir.join("layer"), vec![b'x'; 200]).unwrap();
        let out = dir.join("out");
        materialise(&out, &[small, large], &|_| dir.join("layer")).unwrap();
        assert_eq!(std::fs::read(out.join("static/sub/a.txt")).unwrap(), b"a");
        assert_eq!(std::fs::read(out.join("etc/one.txt")).unwrap().len(), 200);
        let evil = LockedFile {
            source: None,
            digest: None,
            inline: Some("YQ==".into()),
            path: "../escape".into(),
        };
        assert!(materialise(&out, &[evil], &|_| dir.join("layer")).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}

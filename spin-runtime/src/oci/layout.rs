//! OCI image-layout archives of [`super`]'s artifacts: a tar of an image layout
//! (`oci-layout`, `index.json`, `blobs/sha256/<hex>`), plain or gzip- or
//! zstd-compressed, as `spinlet save` writes and the node agent imports for air-gapped
//! nodes (k3s's airgap tarballs are the same format).
//!
//! Reading verifies every blob against its name and names each image by its
//! `index.json` descriptor's `io.containerd.image.name` annotation or, when that is
//! absent, a full reference in `org.opencontainers.image.ref.name`; nested indexes are
//! followed. This module knows the archive format only: putting an artifact in the pull
//! cache is [`super::store`]'s, and whether it is a Spin app is decided there.

use std::collections::BTreeMap;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::{digest, MANIFEST_MEDIA_TYPE};

/// Media type of an OCI image index.
const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
/// Media type of a Docker manifest list (an index too).
const DOCKER_LIST_MEDIA_TYPE: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// The descriptor annotation naming an image in full (containerd's).
const CONTAINERD_NAME: &str = "io.containerd.image.name";
/// The OCI descriptor annotation naming an image (a tag or a full reference).
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Why an archive cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The archive file could not be opened, read or written.
    #[error("{path}: {source}")]
    Io {
        /// The archive.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The archive is not a valid OCI image layout.
    #[error("{path}: {message}")]
    Malformed {
        /// The archive.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// Result type of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An artifact in memory: its manifest and every blob the manifest names, by digest.
#[derive(Debug, Clone, Default)]
pub struct Artifact {
    /// The OCI image manifest (JSON).
    pub manifest: Vec<u8>,
    /// The config and layer blobs, keyed by `sha256:<hex>`.
    pub blobs: BTreeMap<String, Vec<u8>>,
}

/// One image found in an archive.
#[derive(Debug, Clone)]
pub struct Archived {
    /// The reference the archive names it by (`registry/repository:tag`).
    pub name: String,
    /// The image.
    pub artifact: Artifact,
}

/// How an archive is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip (`.tar.gz`, `.tgz`).
    Gzip,
    /// zstd (`.tar.zst`, `.tzst`).
    Zstd,
}

impl Compression {
    /// The compression a file name's extension asks for.
    pub fn from_path(path: &Path) -> Compression {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        if name.ends_with(".gz") || name.ends_with(".tgz") {
            Compression::Gzip
        } else if name.ends_with(".zst") || name.ends_with(".tzst") {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// Writes `artifact` as the image `name` to an archive at `path` (atomically: a temp
/// file renamed into place).
pub fn write_archive(
    path: &Path,
    compression: Compression,
    name: &str,
    artifact: &Artifact,
) -> Result<()> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let written = std::fs::File::create(&tmp).and_then(|file| {
        let out: Box<dyn Write> = match compression {
            Compression::None => Box::new(file),
            Compression::Gzip => Box::new(flate2::write::GzEncoder::new(
                file,
                flate2::Compression::default(),
            )),
            Compression::Zstd => {
                Box::new(zstd::stream::write::Encoder::new(file, 0)?.auto_finish())
            }
        };
        let mut tar = tar::Builder::new(out);
        let manifest_digest = digest(&artifact.manifest);
        let index = json!({
            "schemaVersion": 2,
            "mediaType": INDEX_MEDIA_TYPE,
            "manifests": [{
                "mediaType": MANIFEST_MEDIA_TYPE,
                "digest": manifest_digest,
                "size": artifact.manifest.len(),
                "annotations": { REF_NAME: name, CONTAINERD_NAME: name },
            }],
        });
        let layout = json!({ "imageLayoutVersion": "1.0.0" });
        append(&mut tar, "oci-layout", layout.to_string().as_bytes())?;
        append(&mut tar, "index.json", index.to_string().as_bytes())?;
        append(&mut tar, &blob_entry(&manifest_digest), &artifact.manifest)?;
        for (d, bytes) in &artifact.blobs {
            append(&mut tar, &blob_entry(d), bytes)?;
        }
        tar.into_inner()?.flush()
    });
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    Ok(())
}

/// The tar entry of blob `d` (`blobs/sha256/<hex>`).
fn blob_entry(d: &str) -> String {
    format!("blobs/{}", d.replacen(':', "/", 1))
}

/// Appends a regular file (mode 0644, mtime 0, so archives of one image are identical).
fn append<W: Write>(tar: &mut tar::Builder<W>, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let mut header = tar::Header::new_ustar();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, name, bytes)
}

/// Reads every image of the archive at `path` (compression detected from its first
/// bytes). Any problem — not a tar, no `index.json`, a blob whose content does not match
/// its name, an image without a full name or with a missing blob — is an error naming
/// the archive and what is wrong.
pub fn read_archive(path: &Path) -> Result<Vec<Archived>> {
    let malformed = |message: String| Error::Malformed {
        path: path.to_owned(),
        message,
    };
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = BufReader::new(std::fs::File::open(path).map_err(io)?);
    let magic = std::io::BufRead::fill_buf(&mut file).map_err(io)?.to_vec();
    let input: Box<dyn Read> = if magic.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(file).map_err(io)?)
    } else {
        Box::new(file)
    };
    let mut layout_seen = false;
    let mut index = None;
    let mut blobs: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut tar = tar::Archive::new(input);
    let entries = tar
        .entries()
        .map_err(|e| malformed(format!("not a tar archive: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| malformed(format!("not a tar archive: {e}")))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = entry
            .path()
            .map_err(|e| malformed(format!("bad entry name: {e}")))?
            .to_string_lossy()
            .trim_start_matches("./")
            .trim_start_matches('/')
            .to_string();
        let mut bytes = Vec::new();
        entry
            .read_to_end(&mut bytes)
            .map_err(|e| malformed(format!("{name}: {e}")))?;
        if name == "oci-layout" {
            let v: Value = serde_json::from_slice(&bytes)
                .map_err(|e| malformed(format!("oci-layout is not JSON: {e}")))?;
            if v["imageLayoutVersion"].as_str().is_none() {
                return Err(malformed("oci-layout has no imageLayoutVersion".into()));
            }
            layout_seen = true;
        } else if name == "index.json" {
            let v: Value = serde_json::from_slice(&bytes)
                .map_err(|e| malformed(format!("index.json is not JSON: {e}")))?;
            index = Some(v);
        } else if let Some(hex) = name.strip_prefix("blobs/sha256/") {
            let expected = format!("sha256:{hex}");
            let actual = digest(&bytes);
            if actual != expected {
                return Err(malformed(format!(
                    "{name} is corrupt: its content's digest is {actual}"
                )));
            }
            blobs.insert(expected, bytes);
        }
    }
    if !layout_seen {
        return Err(malformed(
            "no oci-layout file: not an OCI image layout archive".into(),
        ));
    }
    let index = index.ok_or_else(|| malformed("no index.json".into()))?;
    let mut images = Vec::new();
    collect(&index, None, &blobs, &mut images, 0).map_err(malformed)?;
    if images.is_empty() {
        return Err(malformed("index.json lists no image".into()));
    }
    Ok(images)
}

/// Adds the images `index` lists (following nested indexes; a nested image without a
/// name of its own takes its parent descriptor's).
fn collect(
    index: &Value,
    inherited: Option<&str>,
    blobs: &BTreeMap<String, Vec<u8>>,
    images: &mut Vec<Archived>,
    depth: usize,
) -> std::result::Result<(), String> {
    if depth > 4 {
        return Err("image indexes nested too deep".into());
    }
    let manifests = index["manifests"]
        .as_array()
        .ok_or("an index has no manifests list")?;
    for descriptor in manifests {
        let d = descriptor["digest"]
            .as_str()
            .ok_or("an index entry has no digest")?;
        let bytes = blobs
            .get(d)
            .ok_or_else(|| format!("blob {d} named in an index is missing"))?;
        let name = descriptor_name(descriptor).or(inherited.map(str::to_string));
        let media = descriptor["mediaType"].as_str().unwrap_or_default();
        if media == INDEX_MEDIA_TYPE || media == DOCKER_LIST_MEDIA_TYPE {
            let nested: Value =
                serde_json::from_slice(bytes).map_err(|e| format!("index {d} is not JSON: {e}"))?;
            collect(&nested, name.as_deref(), blobs, images, depth + 1)?;
            continue;
        }
        let name = name.ok_or_else(|| {
            format!(
                "image {d} has no full name: index.json must name it with {CONTAINERD_NAME} \
                 or a full reference (registry/repository:tag) in {REF_NAME}"
            )
        })?;
        let manifest: Value =
            serde_json::from_slice(bytes).map_err(|e| format!("manifest {d} is not JSON: {e}"))?;
        let config = manifest["config"]["digest"].as_str();
        let layers = manifest["layers"].as_array().into_iter().flatten();
        let mut artifact = Artifact {
            manifest: bytes.clone(),
            blobs: BTreeMap::new(),
        };
        for needed in config
            .into_iter()
            .chain(layers.filter_map(|l| l["digest"].as_str()))
        {
            let blob = blobs
                .get(needed)
                .ok_or_else(|| format!("{name}: blob {needed} is missing"))?;
            artifact.blobs.insert(needed.to_string(), blob.clone());
        }
        images.push(Archived { name, artifact });
    }
    Ok(())
}

/// The full reference a descriptor's annotations name, if any (a bare tag in
/// `org.opencontainers.image.ref.name` names no repository, so it does not count).
fn descriptor_name(descriptor: &Value) -> Option<String> {
    let annotations = &descriptor["annotations"];
    annotations[CONTAINERD_NAME]
        .as_str()
        .or_else(|| annotations[REF_NAME].as_str().filter(|n| n.contains('/')))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn artifact() -> Artifact {
        let config = b"{\"architecture\":\"wasm\"}".to_vec();
        let layer = b"\0asm component".to_vec();
        let manifest = json!({
            "schemaVersion": 2,
            "config": {"digest": digest(&config)},
            "layers": [{"digest": digest(&layer)}],
        });
        Artifact {
            manifest: manifest.to_string().into_bytes(),
            blobs: BTreeMap::from([(digest(&config), config), (digest(&layer), layer)]),
        }
    }

    #[test]
    fn archives_round_trip_in_each_compression() {
        let dir = tempfile::tempdir().unwrap();
        for (file, compression) in [
            ("a.tar", Compression::None),
            ("a.tar.gz", Compression::Gzip),
            ("a.tar.zst", Compression::Zstd),
        ] {
            let path = dir.path().join(file);
            assert_eq!(Compression::from_path(&path), compression);
            write_archive(&path, compression, "localhost:5000/apps/a:v1", &artifact()).unwrap();
            let images = read_archive(&path).unwrap();
            assert_eq!(images.len(), 1);
            assert_eq!(images[0].name, "localhost:5000/apps/a:v1");
            assert_eq!(images[0].artifact.manifest, artifact().manifest);
            assert_eq!(images[0].artifact.blobs, artifact().blobs);
        }
    }

    #[test]
    fn bad_archives_say_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let not_tar = dir.path().join("junk.tar");
        std::fs::write(&not_tar, b"this is not a tar archive at all").unwrap();
        let e = read_archive(&not_tar).unwrap_err().to_string();
        assert!(e.contains("junk.tar"), "{e}");

        // A blob whose content does not match its name.
        let good = dir.path().join("good.tar");
        write_archive(&good, Compression::None, "localhost/a:v1", &artifact()).unwrap();
        let mut bytes = std::fs::read(&good).unwrap();
        let at = bytes
            .windows(b"asm component".len())
            .position(|w| w == b"asm component")
            .unwrap();
        bytes[at] = b'X';
        let corrupt = dir.path().join("corrupt.tar");
        std::fs::write(&corrupt, bytes).unwrap();
        let e = read_archive(&corrupt).unwrap_err().to_string();
        assert!(e.contains("corrupt.tar") && e.contains("is corrupt"), "{e}");

        // An image named by a bare tag names no repository.
        let tag_only = dir.path().join("tag.tar");
        let file = std::fs::File::create(&tag_only).unwrap();
        let mut tar = tar::Builder::new(file);
        let a = artifact();
        let index = json!({"schemaVersion": 2, "manifests": [{
            "mediaType": MANIFEST_MEDIA_TYPE, "digest": digest(&a.manifest),
            "annotations": {REF_NAME: "v1"},
        }]});
        append(
            &mut tar,
            "oci-layout",
            b"{\"imageLayoutVersion\":\"1.0.0\"}",
        )
        .unwrap();
        append(&mut tar, "index.json", index.to_string().as_bytes()).unwrap();
        append(&mut tar, &blob_entry(&digest(&a.manifest)), &a.manifest).unwrap();
        tar.into_inner().unwrap();
        let e = read_archive(&tag_only).unwrap_err().to_string();
        assert!(e.contains("no full name"), "{e}");
    }
}

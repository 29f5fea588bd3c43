//! Spin apps as OCI artifacts: references, registry access, `push` and `pull`.
//!
//! This module owns the registry side, in the layout `spin registry push` produces
//! (Spin 2.0+):
//!
//! - an `application/vnd.oci.image.manifest.v1+json` manifest with the
//!   `org.opencontainers.image.*` annotations;
//! - a plain OCI image config (architecture `wasm`, os `wasip1`) labelled
//!   `com.fermyon.spin.lockedAppDigest` with the locked-app layer's digest;
//! - one `application/vnd.wasm.content.layer.v1+wasm` layer per distinct component
//!   (core modules are componentized before pushing, as Spin 3.2+ does);
//! - one `application/vnd.wasm.content.layer.v1+data` layer per distinct component file
//!   larger than 128 bytes; smaller files are inlined in the locked app
//!   ([`crate::files`]);
//! - the locked app (`application/vnd.fermyon.spin.application.v1+config`) last, without
//!   `origin`.
//!
//! Pulls read that layout and the pre-2.0 one (locked app in the config blob), verify
//! every digest, and keep a content-addressed cache: `manifests/<registry>/<repo>/<tag>/`
//! (`manifest.json`, `config.json` = the locked app), `wasm/<digest>` and `data/<digest>`
//! for the layers, `blobs/<digest>` for the image config and the locked-app blob;
//! component files are written out under `assets/<manifest digest>/<component>/`.
//!
//! Cached blobs are verified against their digest before use and are not fetched again.
//! Concurrent pulls (processes or threads) sharing a cache are deduplicated: a blob is
//! fetched under an exclusive advisory lock on `<digest>.lock` next to its cache entry
//! (`flock`, released when the file is closed, so also when a puller dies), and the
//! cache entry is re-checked once the lock is held, so each blob is downloaded once.
//! Files are written atomically (unique temp file + rename); lock files are left in
//! place (removing them would race with waiting pullers).
//!
//! Registries on loopback (`localhost`, `127.0.0.1`, `[::1]`) are spoken to over plain
//! HTTP, others over HTTPS unless `insecure` is set. HTTPS trusts the platform's root
//! certificates as `rustls-native-certs` finds them (so `SSL_CERT_FILE` / `SSL_CERT_DIR`
//! are honoured), or Mozilla's roots when the platform has none. Credentials come from
//! the Docker config file (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`);
//! basic and bearer-token challenges are both answered (the token endpoint is asked
//! with the credentials as basic auth). A 401 the credentials cannot answer is an error
//! naming the registry.
//!
//! [`build`] makes an app's artifact in memory (what `push` uploads), [`fetch`] reads
//! one from a registry, [`store`] puts one in the pull cache as if it had been pulled
//! (the air-gapped path), and `layout` reads and writes OCI image-layout archives of
//! them ([`read_archive`], [`write_archive`]).
//!
//! Not handled yet: archive layers, and registry sources inside manifests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::locked_app::LockedApp;

mod cache;
mod client;
mod layout;

use crate::manifest::{Manifest, Source};
use cache::{cached_blob, io_err, write_atomic};
pub use client::RegistryClient;
pub use layout::{
    read_archive, write_archive, Archived, Artifact, Compression, Error as ArchiveError,
};

/// Media type of the OCI image manifest.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// Media type of the image config.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// Media type of a component layer.
pub const WASM_LAYER_MEDIA_TYPE: &str = "application/vnd.wasm.content.layer.v1+wasm";
/// Media type of a data (file) layer.
pub const DATA_LAYER_MEDIA_TYPE: &str = "application/vnd.wasm.content.layer.v1+data";
/// Media type of the locked-app layer.
pub const LOCKED_APP_MEDIA_TYPE: &str = "application/vnd.fermyon.spin.application.v1+config";
/// The config label naming the locked-app layer.
pub const LOCKED_APP_DIGEST_LABEL: &str = "com.fermyon.spin.lockedAppDigest";

/// Errors from registry operations.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The reference does not parse.
    #[error("invalid OCI reference `{0}`")]
    Reference(String),
    /// An HTTP exchange with the registry failed.
    #[error("{method} {url}: {message}")]
    Http {
        /// Method.
        method: String,
        /// URL.
        url: String,
        /// What happened.
        message: String,
    },
    /// Content did not match its digest.
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What was fetched.
        what: String,
        /// Expected digest.
        expected: String,
        /// Actual digest.
        actual: String,
    },
    /// The artifact is not a Spin app.
    #[error("{reference} is not a Spin app: {message}")]
    NotSpinApp {
        /// The reference.
        reference: String,
        /// Why.
        message: String,
    },
    /// Reading or writing the cache or the app failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The locked app could not be built or read.
    #[error(transparent)]
    LockedApp(#[from] crate::locked_app::Error),
    /// The manifest is invalid.
    #[error(transparent)]
    Manifest(#[from] crate::manifest::Error),
    /// A core module could not be componentized.
    #[error(transparent)]
    Componentize(#[from] crate::componentize::Error),
    /// Component files could not be listed or written out.
    #[error(transparent)]
    Files(#[from] crate::files::Error),
    /// The pull policy forbids the registry and the cache does not have it.
    #[error("{0} is not in the image cache and the pull policy forbids pulling it")]
    NotCached(String),
    /// The app uses something push does not support yet.
    #[error("{0}")]
    Unsupported(String),
}

/// Result type of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A parsed reference: `[registry/]repository[:tag][@digest]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Registry host (and port).
    pub registry: String,
    /// Repository path.
    pub repository: String,
    /// Tag (default `latest` when there is no digest).
    pub tag: Option<String>,
    /// Digest.
    pub digest: Option<String>,
}

impl Reference {
    /// Parses a reference; a first component with a `.` or `:`, or `localhost`, is the
    /// registry, otherwise the registry is `docker.io`.
    pub fn parse(s: &str) -> Result<Reference> {
        let bad = || Error::Reference(s.to_string());
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) if d.starts_with("sha256:") && d.len() == 71 => (r, Some(d.to_string())),
            Some(_) => return Err(bad()),
            None => (s, None),
        };
        let (registry, path) = match rest.split_once('/') {
            Some((first, path))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), path.to_string())
            }
            _ => ("docker.io".to_string(), rest.to_string()),
        };
        let (repository, tag) = match path.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo.to_string(), Some(tag.to_string())),
            _ => (path, None),
        };
        // The distribution spec's path components: lowercase alphanumerics, separators
        // (`.`, `_`, `-`) only between them; so no empty component (`/app`, `a//b`).
        let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        let component_ok = |c: &str| {
            c.bytes().next().is_some_and(alnum)
                && c.bytes().last().is_some_and(alnum)
                && c.bytes().all(|b| alnum(b) || b"._-".contains(&b))
        };
        let host_ok = registry
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric());
        if !host_ok || !repository.split('/').all(component_ok) {
            return Err(bad());
        }
        let tag = if tag.is_none() && digest.is_none() {
            Some("latest".to_string())
        } else {
            tag
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The tag or digest used to address the manifest.
    pub fn manifest_ref(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }

    fn is_loopback(&self) -> bool {
        let host = self
            .registry
            .rsplit_once(':')
            .map_or(self.registry.as_str(), |(h, _)| h);
        matches!(host, "localhost" | "127.0.0.1" | "[::1]") || host.starts_with("127.")
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    format!(
        "sha256:{}",
        hash.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// Pushes the app at `manifest_path` to `reference`; returns the manifest digest.
pub fn push(manifest_path: &Path, reference: &Reference, insecure: bool) -> Result<String> {
    let artifact = build(manifest_path)?;
    let client = RegistryClient::new(reference, insecure, true);
    for (d, bytes) in &artifact.blobs {
        client.push_blob(bytes, d)?;
    }
    client.push_manifest(&artifact.manifest)
}

/// Builds the artifact of the app at `manifest_path` in Spin's layout (see the module
/// doc), as `push` uploads it and `spinlet save` archives it.
pub fn build(manifest_path: &Path) -> Result<Artifact> {
    let manifest = Manifest::from_file(manifest_path)?;
    let app_dir = manifest_path.parent().unwrap_or(Path::new("."));

    let mut layers = Vec::new();
    let mut digests: BTreeMap<String, String> = BTreeMap::new();
    let mut blobs: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (id, source) in crate::locked_app::used_sources(&manifest) {
        let path = match source {
            Source::Local(p) => app_dir.join(p),
            _ => {
                return Err(Error::Unsupported(format!(
                    "component `{id}`: only local sources can be pushed"
                )))
            }
        };
        let bytes = std::fs::read(&path).map_err(io_err(&path))?;
        let (bytes, _) = crate::componentize::componentize_if_needed(bytes)?;
        let d = digest(&bytes);
        if !blobs.contains_key(&d) {
            layers.push(
                json!({ "mediaType": WASM_LAYER_MEDIA_TYPE, "digest": d, "size": bytes.len() }),
            );
            blobs.insert(d.clone(), bytes);
        }
        digests.insert(id, d);
    }
    let all = manifest.all_components();
    let mut files: BTreeMap<String, Vec<crate::files::LockedFile>> = BTreeMap::new();
    for id in digests.keys() {
        let Some(component) = all.get(id) else {
            continue;
        };
        let mut locked = Vec::new();
        for entry in crate::files::list(app_dir, &component.files, &component.exclude_files)? {
            let bytes = std::fs::read(&entry.host).map_err(io_err(&entry.host))?;
            let d = digest(&bytes);
            let file = crate::files::locked_entry(&entry.guest, &bytes, &d);
            if file.digest.is_some() && !blobs.contains_key(&d) {
                layers.push(
                    json!({ "mediaType": DATA_LAYER_MEDIA_TYPE, "digest": d, "size": bytes.len() }),
                );
                blobs.insert(d, bytes);
            }
            locked.push(file);
        }
        files.insert(id.clone(), locked);
    }
    let locked = LockedApp::from_manifest(&manifest, &|id| digests.get(id).cloned(), &|id| {
        files.get(id).cloned().unwrap_or_default()
    })?;
    let locked_bytes = serde_json::to_vec(&locked).map_err(crate::locked_app::Error::from)?;
    let locked_digest = digest(&locked_bytes);
    layers.push(json!({ "mediaType": LOCKED_APP_MEDIA_TYPE, "digest": locked_digest, "size": locked_bytes.len() }));
    blobs.insert(locked_digest.clone(), locked_bytes);

    let diff_ids: Vec<&Value> = layers.iter().map(|l| &l["digest"]).collect();
    let config = json!({
        "architecture": "wasm",
        "os": "wasip1",
        "config": { "Labels": { LOCKED_APP_DIGEST_LABEL: locked_digest } },
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    });
    let config_bytes = serde_json::to_vec(&config).map_err(crate::locked_app::Error::from)?;
    let config_digest = digest(&config_bytes);

    let mut annotations = serde_json::Map::new();
    annotations.insert(
        "org.opencontainers.image.title".into(),
        json!(manifest.application.name),
    );
    if let Some(v) = &manifest.application.version {
        annotations.insert("org.opencontainers.image.version".into(), json!(v));
    }
    if let Some(d) = &manifest.application.description {
        annotations.insert("org.opencontainers.image.description".into(), json!(d));
    }
    if !manifest.application.authors.is_empty() {
        annotations.insert(
            "org.opencontainers.image.authors".into(),
            json!(manifest.application.authors.join(", ")),
        );
    }
    let oci_manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": { "mediaType": CONFIG_MEDIA_TYPE, "digest": config_digest, "size": config_bytes.len() },
        "layers": layers,
        "annotations": annotations,
    });
    blobs.insert(config_digest, config_bytes);
    let manifest_bytes =
        serde_json::to_vec(&oci_manifest).map_err(crate::locked_app::Error::from)?;
    Ok(Artifact {
        manifest: manifest_bytes,
        blobs,
    })
}

/// Fetches `reference`'s manifest and every blob it names from the registry (digests
/// verified), without touching any cache: what `spinlet save` archives.
pub fn fetch(reference: &Reference, options: &PullOptions) -> Result<Artifact> {
    let client = RegistryClient::new(reference, options.insecure, false)
        .with_credentials(options.credentials.clone());
    let (manifest, _) = client.pull_manifest()?;
    let mut blobs = BTreeMap::new();
    for d in referenced_digests(reference, &manifest)? {
        let bytes = client.pull_blob(&d)?;
        blobs.insert(d, bytes);
    }
    Ok(Artifact { manifest, blobs })
}

/// The config and layer digests an OCI manifest names (each checked to be a sha256
/// digest, as they name cache files).
pub fn referenced_digests(reference: &Reference, manifest: &[u8]) -> Result<Vec<String>> {
    let not_spin = |message: String| Error::NotSpinApp {
        reference: reference.to_string(),
        message,
    };
    let oci: Value = serde_json::from_slice(manifest)
        .map_err(|_| not_spin("manifest is not JSON".to_string()))?;
    let config = oci["config"]["digest"]
        .as_str()
        .ok_or_else(|| not_spin("manifest has no config".to_string()))?;
    let layers = oci["layers"].as_array().cloned().unwrap_or_default();
    let mut digests = vec![config.to_string()];
    for layer in &layers {
        let d = layer["digest"]
            .as_str()
            .ok_or_else(|| not_spin("layer without digest".to_string()))?;
        digests.push(d.to_string());
    }
    if let Some(bad) = digests.iter().find(|d| !is_sha256_digest(d)) {
        return Err(not_spin(format!("digest `{bad}` is not a sha256 digest")));
    }
    Ok(digests)
}

/// Puts `artifact` in the cache under `cache_root` as `reference` (its tag, and its
/// digest) and converts it for loading, as a pull of it would: the preloaded
/// (air-gapped) path, after which a pull of `reference` with `IfNotPresent` or `Never`
/// needs no registry. Every blob is verified against its digest first.
pub fn store(reference: &Reference, artifact: &Artifact, cache_root: &Path) -> Result<PulledApp> {
    referenced_digests(reference, &artifact.manifest)?;
    let oci: Value = serde_json::from_slice(&artifact.manifest).map_err(|_| Error::NotSpinApp {
        reference: reference.to_string(),
        message: "manifest is not JSON".to_string(),
    })?;
    let config = (CONFIG_MEDIA_TYPE, oci["config"]["digest"].as_str());
    let layers = oci["layers"].as_array().into_iter().flatten();
    // Checked before anything is written: a container image must not fill the cache.
    let has_locked_layer = layers
        .clone()
        .any(|l| l["mediaType"] == LOCKED_APP_MEDIA_TYPE);
    let config_is_locked = config
        .1
        .and_then(|d| artifact.blobs.get(d))
        .and_then(|b| serde_json::from_slice::<Value>(b).ok())
        .is_some_and(|c| c.get("spin_lock_version").is_some());
    if !has_locked_layer && !config_is_locked {
        let media: Vec<&str> = layers
            .clone()
            .filter_map(|l| l["mediaType"].as_str())
            .collect();
        return Err(Error::NotSpinApp {
            reference: reference.to_string(),
            message: format!(
                "no locked-app layer ({LOCKED_APP_MEDIA_TYPE}) and no locked app in the \
                 config; its layers are {media:?}"
            ),
        });
    }
    let placed = layers.map(|l| {
        (
            l["mediaType"].as_str().unwrap_or_default(),
            l["digest"].as_str(),
        )
    });
    for (media, d) in std::iter::once(config).chain(placed) {
        let d = d.unwrap_or_default();
        let bytes = artifact.blobs.get(d).ok_or_else(|| Error::NotSpinApp {
            reference: reference.to_string(),
            message: format!("blob {d} is missing"),
        })?;
        let actual = digest(bytes);
        if actual != d {
            return Err(Error::DigestMismatch {
                what: format!("blob of {reference}"),
                expected: d.to_string(),
                actual,
            });
        }
        let path = blob_path(cache_root, media, d);
        if cache::read_verified(&path, d)?.is_none() {
            write_atomic(&path, bytes)?;
        }
    }
    let manifest_digest = digest(&artifact.manifest);
    if let Some(d) = &reference.digest {
        if d != &manifest_digest {
            return Err(Error::DigestMismatch {
                what: format!("manifest of {reference}"),
                expected: d.clone(),
                actual: manifest_digest,
            });
        }
    }
    let name = reference
        .tag
        .clone()
        .unwrap_or_else(|| manifest_digest.replace(':', "_"));
    write_atomic(
        &manifest_dir(cache_root, reference, &name).join("manifest.json"),
        &artifact.manifest,
    )?;
    pull_with(
        reference,
        cache_root,
        &PullOptions {
            policy: PullPolicy::Never,
            ..PullOptions::default()
        },
    )
}

/// Where the cache keeps the blob `d` of media type `media`: the image config and the
/// locked app under `blobs/`, components under `wasm/`, files under `data/`.
fn blob_path(cache_root: &Path, media: &str, d: &str) -> PathBuf {
    let dir = match media {
        WASM_LAYER_MEDIA_TYPE | "application/wasm" => "wasm",
        LOCKED_APP_MEDIA_TYPE | CONFIG_MEDIA_TYPE => "blobs",
        _ => "data",
    };
    cache_root.join(dir).join(d)
}

/// Whether `d` is `sha256:<64 lowercase hex>` (digests name cache files, so nothing
/// else is accepted).
fn is_sha256_digest(d: &str) -> bool {
    d.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// A pulled app: its manifest (sources pointing into the cache) and where it lives.
pub struct PulledApp {
    /// The converted manifest.
    pub manifest: Manifest,
    /// The cache directory of this reference.
    pub dir: PathBuf,
    /// The manifest digest.
    pub digest: String,
}

/// When a pull asks the registry (the kubelet's `imagePullPolicy`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PullPolicy {
    /// Resolve a tag at the registry every time (a digest reference found in the cache
    /// needs no registry: its content cannot change).
    #[default]
    Always,
    /// Use the cached manifest of a tag when there is one.
    IfNotPresent,
    /// Use only the cache; a reference not in it is an error.
    Never,
}

/// How a pull may reach the registry.
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// Talk plain HTTP to a non-loopback registry.
    pub insecure: bool,
    /// Credentials for this registry (instead of the Docker config file's).
    pub credentials: Option<(String, String)>,
    /// When to ask the registry.
    pub policy: PullPolicy,
}

/// Pulls `reference` into the cache under `cache_root` and converts it for loading.
pub fn pull(reference: &Reference, cache_root: &Path, insecure: bool) -> Result<PulledApp> {
    pull_with(
        reference,
        cache_root,
        &PullOptions {
            insecure,
            ..PullOptions::default()
        },
    )
}

/// The cache directory of a manifest named by a tag or (`sha256_...`) a digest.
fn manifest_dir(cache_root: &Path, reference: &Reference, name: &str) -> PathBuf {
    cache_root
        .join("manifests")
        .join(reference.registry.replace(':', "_"))
        .join(&reference.repository)
        .join(name)
}

/// The cached manifest `reference` names, when `policy` lets the cache answer.
fn cached_manifest(
    reference: &Reference,
    cache_root: &Path,
    policy: PullPolicy,
) -> Result<Option<(Vec<u8>, String)>> {
    if let Some(d) = &reference.digest {
        let path = manifest_dir(cache_root, reference, &d.replace(':', "_")).join("manifest.json");
        return Ok(cache::read_verified(&path, d)?.map(|b| (b, d.clone())));
    }
    if policy == PullPolicy::Always {
        return Ok(None);
    }
    let tag = reference.tag.as_deref().unwrap_or("latest");
    let path = manifest_dir(cache_root, reference, tag).join("manifest.json");
    match std::fs::read(&path) {
        Ok(bytes) => {
            let d = digest(&bytes);
            Ok(Some((bytes, d)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(&path)(e)),
    }
}

/// Pulls `reference` as `options` allow into the cache under `cache_root`.
pub fn pull_with(
    reference: &Reference,
    cache_root: &Path,
    options: &PullOptions,
) -> Result<PulledApp> {
    let client = RegistryClient::new(reference, options.insecure, false)
        .with_credentials(options.credentials.clone());
    let (manifest_bytes, manifest_digest) =
        match cached_manifest(reference, cache_root, options.policy)? {
            Some(cached) => cached,
            None if options.policy == PullPolicy::Never => {
                return Err(Error::NotCached(reference.to_string()))
            }
            None => client.pull_manifest()?,
        };
    let not_spin = |message: &str| Error::NotSpinApp {
        reference: reference.to_string(),
        message: message.to_string(),
    };
    let oci: Value =
        serde_json::from_slice(&manifest_bytes).map_err(|_| not_spin("manifest is not JSON"))?;
    let config_digest = oci["config"]["digest"]
        .as_str()
        .ok_or_else(|| not_spin("manifest has no config"))?;
    if !is_sha256_digest(config_digest) {
        return Err(not_spin(&format!(
            "config digest `{config_digest}` is not a sha256 digest"
        )));
    }
    let config_bytes = cached_blob(
        &client,
        &blob_path(cache_root, CONFIG_MEDIA_TYPE, config_digest),
        config_digest,
    )?;
    let layers = oci["layers"].as_array().cloned().unwrap_or_default();

    let wasm_dir = cache_root.join("wasm");
    let data_dir = cache_root.join("data");
    let mut locked_bytes = None;
    for layer in &layers {
        let d = layer["digest"]
            .as_str()
            .ok_or_else(|| not_spin("layer without digest"))?;
        if !is_sha256_digest(d) {
            return Err(not_spin(&format!(
                "layer digest `{d}` is not a sha256 digest"
            )));
        }
        let media = layer["mediaType"].as_str().unwrap_or_default();
        let bytes = cached_blob(&client, &blob_path(cache_root, media, d), d)?;
        if media == LOCKED_APP_MEDIA_TYPE {
            locked_bytes = Some(bytes);
        }
    }
    // Pre-2.0 layout: the locked app is the config blob.
    let locked_bytes = match locked_bytes {
        Some(b) => b,
        None => {
            let config: Value = serde_json::from_slice(&config_bytes)
                .map_err(|_| not_spin("config is not JSON"))?;
            if config.get("spin_lock_version").is_some() {
                config_bytes.clone()
            } else {
                return Err(not_spin(
                    "no locked-app layer and no locked app in the config",
                ));
            }
        }
    };
    // Kept under the digest too, so a reference pinned to it needs no registry again.
    let by_digest = manifest_dir(cache_root, reference, &manifest_digest.replace(':', "_"));
    let dir = match &reference.tag {
        Some(tag) => manifest_dir(cache_root, reference, tag),
        None => by_digest.clone(),
    };
    for d in [&dir, &by_digest] {
        write_atomic(&d.join("manifest.json"), &manifest_bytes)?;
        write_atomic(&d.join("config.json"), &locked_bytes)?;
    }

    let locked = LockedApp::from_json(&locked_bytes)?;
    let assets = cache_root
        .join("assets")
        .join(manifest_digest.replace(':', "_"));
    for c in &locked.components {
        if !c.files.is_empty() {
            crate::files::materialise(&assets.join(&c.id), &c.files, &|d| data_dir.join(d))?;
        }
    }
    let origin = format!("vnd.fermyon.origin-oci:{reference}");
    let manifest = locked.into_manifest(&origin, &|d| wasm_dir.join(d), &|id| assets.join(id))?;
    Ok(PulledApp {
        manifest,
        dir,
        digest: manifest_digest,
    })
}

#[cfg(test)]
mod tests {
    use super::client::challenge_params;
    use super::*;

    #[test]
    fn references() {
        let r = Reference::parse("localhost:5000/apps/hello:v1").unwrap();
        assert_eq!(r.registry, "localhost:5000");
        assert_eq!(r.repository, "apps/hello");
        assert_eq!(r.tag.as_deref(), Some("v1"));
        assert!(r.is_loopback());
        let r = Reference::parse("ghcr.io/o/app").unwrap();
        assert_eq!(r.tag.as_deref(), Some("latest"));
        assert!(!r.is_loopback());
        let d = format!("sha256:{}", "a".repeat(64));
        let r = Reference::parse(&format!("127.0.0.1:1/x@{d}")).unwrap();
        assert_eq!(r.manifest_ref(), d);
        assert_eq!(Reference::parse("hello").unwrap().registry, "docker.io");
        assert!(Reference::parse("Bad/Repo").is_err());
        // A path is not a reference: no empty or separator-edged path components.
        for path in [
            "/nonexistent/app",
            "a//b",
            "./app",
            "app/",
            "-a/b",
            "localhost:5000//x",
        ] {
            assert!(Reference::parse(path).is_err(), "{path}");
        }
        let r = Reference::parse("localhost:5000/my_org/app-name.v2:1.0").unwrap();
        assert_eq!(r.repository, "my_org/app-name.v2");
    }

    #[test]
    fn challenges() {
        let f = challenge_params(
            r#"realm="https://auth.example/token?x=1",service="reg, one",scope="repository:a/b:pull,push",error=insufficient_scope"#,
        );
        assert_eq!(f["realm"], "https://auth.example/token?x=1");
        assert_eq!(f["service"], "reg, one");
        assert_eq!(f["scope"], "repository:a/b:pull,push");
        assert_eq!(f["error"], "insufficient_scope");
        assert!(is_sha256_digest(&digest(b"x")));
        assert!(!is_sha256_digest("sha256:../../etc/passwd"));
    }

    #[test]
    fn digests() {
        assert_eq!(
            digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}

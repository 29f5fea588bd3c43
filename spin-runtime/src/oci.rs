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
//! Not handled yet: archive layers, and registry sources inside manifests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::locked_app::LockedApp;
use crate::manifest::{Manifest, Source};

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
        if repository.is_empty()
            || !repository
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/".contains(&b))
        {
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

/// The Docker config file credentials are read from.
fn docker_config_path() -> Option<PathBuf> {
    std::env::var_os("DOCKER_CONFIG")
        .map(|d| PathBuf::from(d).join("config.json"))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/config.json")))
}

/// Credentials for a registry from the Docker config file, if any.
fn docker_credentials(registry: &str) -> Option<(String, String)> {
    let path = docker_config_path()?;
    let config: Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    let auths = config.get("auths")?.as_object()?;
    let candidates = [
        registry.to_string(),
        format!("https://{registry}"),
        format!("http://{registry}"),
        format!("https://{registry}/v1/"),
    ];
    let entry = candidates.iter().find_map(|c| auths.get(c)).or_else(|| {
        (registry == "docker.io")
            .then(|| auths.get("https://index.docker.io/v1/"))
            .flatten()
    })?;
    if let Some(auth) = entry.get("auth").and_then(Value::as_str) {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth)
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (u, p) = text.split_once(':')?;
        return Some((u.to_string(), p.to_string()));
    }
    let u = entry.get("username")?.as_str()?;
    let p = entry.get("password")?.as_str()?;
    Some((u.to_string(), p.to_string()))
}

/// A client for one registry and repository.
pub struct RegistryClient {
    agent: ureq::Agent,
    base: String,
    reference: Reference,
    credentials: Option<(String, String)>,
    authorization: Mutex<Option<String>>,
    scope: String,
}

struct Reply {
    status: u16,
    headers: http::HeaderMap,
    body: Vec<u8>,
}

impl RegistryClient {
    /// A client for `reference`; `push` asks for push access.
    pub fn new(reference: &Reference, insecure: bool, push: bool) -> RegistryClient {
        let scheme = if insecure || reference.is_loopback() {
            "http"
        } else {
            "https"
        };
        let host = if reference.registry == "docker.io" {
            "registry-1.docker.io".to_string()
        } else {
            reference.registry.clone()
        };
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .tls_config(tls_config())
            .timeout_global(Some(std::time::Duration::from_secs(300)))
            .build()
            .into();
        RegistryClient {
            agent,
            base: format!("{scheme}://{host}"),
            reference: reference.clone(),
            credentials: docker_credentials(&reference.registry),
            authorization: Mutex::new(None),
            scope: format!(
                "repository:{}:{}",
                reference.repository,
                if push { "pull,push" } else { "pull" }
            ),
        }
    }

    /// Why a 401 could not be answered, naming the registry and where credentials come from.
    fn unauthorized_message(&self, detail: &str) -> String {
        let config = docker_config_path().map_or_else(
            || {
                "the Docker config file ($DOCKER_CONFIG/config.json or ~/.docker/config.json)"
                    .to_string()
            },
            |p| p.display().to_string(),
        );
        if self.credentials.is_some() {
            format!(
                "registry {} answered 401 Unauthorized: the credentials for it in {config} were rejected{detail}",
                self.reference.registry
            )
        } else {
            format!(
                "registry {} answered 401 Unauthorized: it requires credentials and {config} has none for it{detail}",
                self.reference.registry
            )
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v2/{}/{}", self.base, self.reference.repository, path)
    }

    fn exchange(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<Reply> {
        let http_err = |message: String| Error::Http {
            method: method.to_string(),
            url: url.to_string(),
            message,
        };
        let mut retried = false;
        loop {
            let mut req = http::Request::builder().method(method).uri(url);
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            let auth = self
                .authorization
                .lock()
                .map(|a| a.clone())
                .unwrap_or_default();
            if let Some(a) = &auth {
                req = req.header("Authorization", a.as_str());
            }
            let body = body.unwrap_or_default().to_vec();
            let req = req.body(body).map_err(|e| http_err(e.to_string()))?;
            let mut resp = self
                .agent
                .run(req)
                .map_err(|e| http_err(transport_message(&e, &self.reference.registry)))?;
            let status = resp.status().as_u16();
            if status == 401 && retried {
                return Err(http_err(self.unauthorized_message("")));
            }
            if status == 401 {
                retried = true;
                let challenge = resp
                    .headers()
                    .get("www-authenticate")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                let new_auth = self.answer_challenge(&challenge)?;
                if let Ok(mut a) = self.authorization.lock() {
                    *a = Some(new_auth);
                }
                continue;
            }
            let headers = resp.headers().clone();
            let body = resp
                .body_mut()
                .with_config()
                .limit(4 << 30)
                .read_to_vec()
                .map_err(|e| http_err(e.to_string()))?;
            return Ok(Reply {
                status,
                headers,
                body,
            });
        }
    }

    fn answer_challenge(&self, challenge: &str) -> Result<String> {
        let basic = self.credentials.as_ref().map(|(u, p)| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        });
        let unauthorized = |message: &str| Error::Http {
            method: "AUTH".into(),
            url: self.base.clone(),
            message: message.to_string(),
        };
        if challenge.to_ascii_lowercase().starts_with("basic") {
            return basic.ok_or_else(|| unauthorized(&self.unauthorized_message("")));
        }
        let Some(params) = challenge
            .strip_prefix("Bearer ")
            .or_else(|| challenge.strip_prefix("bearer "))
        else {
            return Err(unauthorized(&format!(
                "unsupported authentication challenge `{challenge}`"
            )));
        };
        let fields = challenge_params(params);
        let realm = fields
            .get("realm")
            .ok_or_else(|| unauthorized("bearer challenge without realm"))?;
        let mut url = format!(
            "{realm}{}scope={}",
            if realm.contains('?') { '&' } else { '?' },
            query_escape(&self.scope)
        );
        if let Some(service) = fields.get("service") {
            url.push_str(&format!("&service={}", query_escape(service)));
        }
        let mut req = self.agent.get(&url);
        if let Some(b) = &basic {
            req = req.header("Authorization", b.as_str());
        }
        let mut resp = req.call().map_err(|e| Error::Http {
            method: "GET".into(),
            url: url.clone(),
            message: transport_message(&e, realm),
        })?;
        let status = resp.status().as_u16();
        if status == 401 || status == 403 {
            return Err(unauthorized(&self.unauthorized_message(&format!(
                " (token endpoint {realm} answered {})",
                resp.status()
            ))));
        }
        if status != 200 {
            return Err(unauthorized(&format!(
                "token endpoint {realm} answered {}",
                resp.status()
            )));
        }
        let token_bytes = resp
            .body_mut()
            .read_to_vec()
            .map_err(|e| unauthorized(&e.to_string()))?;
        let token: Value =
            serde_json::from_slice(&token_bytes).map_err(|e| unauthorized(&e.to_string()))?;
        let token = token
            .get("token")
            .or_else(|| token.get("access_token"))
            .and_then(Value::as_str)
            .ok_or_else(|| unauthorized("token endpoint returned no token"))?;
        Ok(format!("Bearer {token}"))
    }

    fn expect(reply: &Reply, ok: &[u16], method: &str, url: &str) -> Result<()> {
        if ok.contains(&reply.status) {
            Ok(())
        } else {
            Err(Error::Http {
                method: method.into(),
                url: url.into(),
                message: format!(
                    "registry answered {}: {}",
                    reply.status,
                    String::from_utf8_lossy(&reply.body)
                        .chars()
                        .take(300)
                        .collect::<String>()
                ),
            })
        }
    }

    /// Uploads a blob unless the registry has it.
    pub fn push_blob(&self, bytes: &[u8], digest: &str) -> Result<()> {
        let url = self.url(&format!("blobs/{digest}"));
        if self.exchange("HEAD", &url, &[], None)?.status == 200 {
            return Ok(());
        }
        let start = self.url("blobs/uploads/");
        let reply = self.exchange("POST", &start, &[("Content-Length", "0")], Some(&[]))?;
        Self::expect(&reply, &[202], "POST", &start)?;
        let location = reply
            .headers
            .get("location")
            .and_then(|l| l.to_str().ok())
            .ok_or_else(|| Error::Http {
                method: "POST".into(),
                url: start.clone(),
                message: "upload response has no Location".into(),
            })?;
        let mut upload = if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else {
            format!("{}{location}", self.base)
        };
        upload.push(if upload.contains('?') { '&' } else { '?' });
        upload.push_str(&format!("digest={digest}"));
        let reply = self.exchange(
            "PUT",
            &upload,
            &[("Content-Type", "application/octet-stream")],
            Some(bytes),
        )?;
        Self::expect(&reply, &[201, 204], "PUT", &upload)
    }

    /// Uploads the manifest under `tag` (or the reference's tag) and returns its digest.
    pub fn push_manifest(&self, manifest: &[u8]) -> Result<String> {
        let url = self.url(&format!("manifests/{}", self.reference.manifest_ref()));
        let reply = self.exchange(
            "PUT",
            &url,
            &[("Content-Type", MANIFEST_MEDIA_TYPE)],
            Some(manifest),
        )?;
        Self::expect(&reply, &[201, 200], "PUT", &url)?;
        Ok(digest(manifest))
    }

    /// Fetches the manifest (verified against the reference's digest, if any).
    pub fn pull_manifest(&self) -> Result<(Vec<u8>, String)> {
        let url = self.url(&format!("manifests/{}", self.reference.manifest_ref()));
        let accept =
            format!("{MANIFEST_MEDIA_TYPE}, application/vnd.docker.distribution.manifest.v2+json");
        let reply = self.exchange("GET", &url, &[("Accept", accept.as_str())], None)?;
        Self::expect(&reply, &[200], "GET", &url)?;
        let actual = digest(&reply.body);
        let expected = self.reference.digest.clone().or_else(|| {
            reply
                .headers
                .get("docker-content-digest")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        });
        if let Some(expected) = expected {
            if expected != actual {
                return Err(Error::DigestMismatch {
                    what: format!("manifest of {}", self.reference),
                    expected,
                    actual,
                });
            }
        }
        Ok((reply.body, actual))
    }

    /// Fetches a blob and verifies its digest.
    pub fn pull_blob(&self, digest_str: &str) -> Result<Vec<u8>> {
        let url = self.url(&format!("blobs/{digest_str}"));
        let reply = self.exchange("GET", &url, &[], None)?;
        Self::expect(&reply, &[200], "GET", &url)?;
        let actual = digest(&reply.body);
        if actual != digest_str {
            return Err(Error::DigestMismatch {
                what: format!("blob of {}", self.reference),
                expected: digest_str.to_string(),
                actual,
            });
        }
        Ok(reply.body)
    }
}

/// The `key=value` / `key="value"` parameters of an authentication challenge (quoted
/// values may contain commas, as `scope` does).
fn challenge_params(params: &str) -> BTreeMap<String, String> {
    let mut fields = BTreeMap::new();
    let mut rest = params.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after = after.trim_start();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            value.push(escaped);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => value.push(c),
                }
            }
            (value, &quoted[end..])
        } else {
            match after.split_once(',') {
                Some((v, next)) => (v.trim().to_string(), next),
                None => (after.trim().to_string(), ""),
            }
        };
        fields.insert(key, value);
        rest = next.trim_start().trim_start_matches(',').trim_start();
    }
    fields
}

/// Percent-encodes a query value (everything but unreserved characters).
fn query_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The TLS configuration of registry clients: the platform's roots (honouring
/// `SSL_CERT_FILE` / `SSL_CERT_DIR`), or Mozilla's when there are none.
fn tls_config() -> ureq::tls::TlsConfig {
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        tracing::warn!(%error, "could not load some platform root certificates");
    }
    let roots = if native.certs.is_empty() {
        ureq::tls::RootCerts::WebPki
    } else {
        native
            .certs
            .iter()
            .map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned())
            .collect::<Vec<_>>()
            .into()
    };
    ureq::tls::TlsConfig::builder().root_certs(roots).build()
}

/// A transport error as a message, pointing at the trust store for TLS failures.
fn transport_message(error: &ureq::Error, host: &str) -> String {
    let text = error.to_string();
    let tls = matches!(error, ureq::Error::Rustls(_) | ureq::Error::Tls(_))
        || text.contains("certificate")
        || text.contains("rustls");
    if tls {
        format!(
            "TLS handshake with {host} failed: {text} (the registry's certificate must be \
             signed by a trusted CA; add it to the system store or point SSL_CERT_FILE at it)"
        )
    } else {
        text
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

/// Writes `bytes` to `path` atomically (temp file + rename).
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
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
fn read_verified(path: &Path, expected: &str) -> Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(bytes) if digest(&bytes) == expected => Ok(Some(bytes)),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// The blob `expected` from the cache file `path`, fetching it (once, across concurrent
/// pullers: see the module doc) when it is missing or does not match its digest.
fn cached_blob(client: &RegistryClient, path: &Path, expected: &str) -> Result<Vec<u8>> {
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

/// Pushes the app at `manifest_path` to `reference`; returns the manifest digest.
pub fn push(manifest_path: &Path, reference: &Reference, insecure: bool) -> Result<String> {
    let manifest = Manifest::from_file(manifest_path)?;
    let app_dir = manifest_path.parent().unwrap_or(Path::new("."));
    let client = RegistryClient::new(reference, insecure, true);

    let mut layers = Vec::new();
    let mut digests: BTreeMap<String, String> = BTreeMap::new();
    let mut pushed: Vec<String> = Vec::new();
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
        if !pushed.contains(&d) {
            client.push_blob(&bytes, &d)?;
            layers.push(
                json!({ "mediaType": WASM_LAYER_MEDIA_TYPE, "digest": d, "size": bytes.len() }),
            );
            pushed.push(d.clone());
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
            if file.digest.is_some() && !pushed.contains(&d) {
                client.push_blob(&bytes, &d)?;
                layers.push(
                    json!({ "mediaType": DATA_LAYER_MEDIA_TYPE, "digest": d, "size": bytes.len() }),
                );
                pushed.push(d);
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
    client.push_blob(&locked_bytes, &locked_digest)?;
    layers.push(json!({ "mediaType": LOCKED_APP_MEDIA_TYPE, "digest": locked_digest, "size": locked_bytes.len() }));

    let diff_ids: Vec<&Value> = layers.iter().map(|l| &l["digest"]).collect();
    let config = json!({
        "architecture": "wasm",
        "os": "wasip1",
        "config": { "Labels": { LOCKED_APP_DIGEST_LABEL: locked_digest } },
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    });
    let config_bytes = serde_json::to_vec(&config).map_err(crate::locked_app::Error::from)?;
    let config_digest = digest(&config_bytes);
    client.push_blob(&config_bytes, &config_digest)?;

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
    let manifest_bytes =
        serde_json::to_vec(&oci_manifest).map_err(crate::locked_app::Error::from)?;
    client.push_manifest(&manifest_bytes)
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

/// Pulls `reference` into the cache under `cache_root` and converts it for loading.
pub fn pull(reference: &Reference, cache_root: &Path, insecure: bool) -> Result<PulledApp> {
    let client = RegistryClient::new(reference, insecure, false);
    let (manifest_bytes, manifest_digest) = client.pull_manifest()?;
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
    let blobs_dir = cache_root.join("blobs");
    let config_bytes = cached_blob(&client, &blobs_dir.join(config_digest), config_digest)?;
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
        if media == LOCKED_APP_MEDIA_TYPE {
            locked_bytes = Some(cached_blob(&client, &blobs_dir.join(d), d)?);
            continue;
        }
        let dir = if media == WASM_LAYER_MEDIA_TYPE || media == "application/wasm" {
            &wasm_dir
        } else {
            &data_dir
        };
        cached_blob(&client, &dir.join(d), d)?;
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
    let tag = reference
        .tag
        .clone()
        .unwrap_or_else(|| manifest_digest.replace(':', "_"));
    let dir = cache_root
        .join("manifests")
        .join(reference.registry.replace(':', "_"))
        .join(&reference.repository)
        .join(tag);
    write_atomic(&dir.join("manifest.json"), &manifest_bytes)?;
    write_atomic(&dir.join("config.json"), &locked_bytes)?;

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

//! The registry side of [`super`]: one HTTP client per registry and repository (ureq),
//! answering basic and bearer-token challenges with the Docker config file's
//! credentials, over plain HTTP to loopback registries and HTTPS (platform roots) to the
//! others, and turning transport and 401 failures into errors that name the registry
//! and the fix. It knows nothing of the cache or of Spin's layout.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use base64::Engine as _;
use serde_json::Value;

use super::{digest, Error, Reference, Result, MANIFEST_MEDIA_TYPE};

/// The Docker config file credentials are read from.
pub(super) fn docker_config_path() -> Option<PathBuf> {
    std::env::var_os("DOCKER_CONFIG")
        .map(|d| PathBuf::from(d).join("config.json"))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/config.json")))
}

/// Credentials for a registry from the Docker config file, if any.
pub(super) fn docker_credentials(registry: &str) -> Option<(String, String)> {
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
    /// Uses `credentials` (when given) instead of the Docker config file's.
    pub fn with_credentials(mut self, credentials: Option<(String, String)>) -> RegistryClient {
        if credentials.is_some() {
            self.credentials = credentials;
        }
        self
    }

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
pub(super) fn challenge_params(params: &str) -> BTreeMap<String, String> {
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

/// Percent-encodes a query value (form encoding, as registries' token endpoints read it).
pub(super) fn query_escape(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The TLS configuration of registry clients: the platform's roots (honouring
/// `SSL_CERT_FILE` / `SSL_CERT_DIR`), or Mozilla's when there are none.
pub(super) fn tls_config() -> ureq::tls::TlsConfig {
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
pub(super) fn transport_message(error: &ureq::Error, host: &str) -> String {
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

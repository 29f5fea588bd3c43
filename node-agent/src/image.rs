//! Image pulls for pods: a container's `image` is an OCI reference to a Spin app, pulled
//! into the agent's content-addressed cache (shared by every replica and restart, and by
//! the sandboxes, which load from it); the pull's digest becomes the container's
//! `imageID`, and the sandbox is started from `repository@digest`, so every restart runs
//! the exact artifact that was pulled.
//!
//! Honours `imagePullPolicy` (a cached tag is used as is unless `Always`; `Never` only
//! looks in the cache) and `imagePullSecrets` (Docker config secrets' credentials for the
//! image's registry). Owns the registry cache under the agent's data dir; images
//! preloaded from archives for air-gapped nodes are [`airgap`]'s, which puts them in the
//! same cache, so a pull of their reference finds them there. Their code is compiled
//! ahead of the pods by [`precompile`].

pub mod airgap;
pub mod precompile;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use spin_runtime::oci::{PullOptions, PullPolicy, Reference};

/// Why a pull failed, with the kubelet's waiting reason for each.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The image is not a valid reference (`InvalidImageName`).
    #[error("Failed to apply default image tag {image:?}: couldn't parse image name {image:?}: invalid reference format")]
    InvalidName {
        /// The image as written in the pod.
        image: String,
    },
    /// The policy is `Never` and the image is not cached (`ErrImageNeverPull`).
    #[error("Container image {image:?} is not present with pull policy of Never")]
    NeverPull {
        /// The image.
        image: String,
    },
    /// The registry refused or the artifact is not a Spin app (`ErrImagePull`).
    #[error("failed to pull and unpack image {image:?}: {message}")]
    Pull {
        /// The image.
        image: String,
        /// The registry's or the runtime's error.
        message: String,
    },
}

impl Error {
    /// Whether pulling again can succeed (the kubelet then shows `ImagePullBackOff`).
    pub fn retries(&self) -> bool {
        matches!(self, Error::Pull { .. })
    }

    /// The container's waiting reason for this failure.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::InvalidName { .. } => "InvalidImageName",
            Error::NeverPull { .. } => "ErrImageNeverPull",
            Error::Pull { .. } => "ErrImagePull",
        }
    }
}

/// A pulled image.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The reference pinned to what was pulled: `registry/repository@sha256:...`.
    pub pinned: String,
    /// `sha256:...` of the manifest.
    pub digest: String,
    /// How long the pull took.
    pub elapsed: Duration,
    /// The app's Wasm files in the cache (what [`precompile`] compiles).
    pub wasm: Vec<PathBuf>,
}

/// Pulls `image` into the cache under `cache_dir` as `policy` (the container's
/// `imagePullPolicy`) allows, with `credentials` for its registry when given.
pub async fn pull(
    image: &str,
    cache_dir: &Path,
    policy: PullPolicy,
    credentials: Option<(String, String)>,
) -> Result<Pulled, Error> {
    let reference = Reference::parse(image).map_err(|_| Error::InvalidName {
        image: image.to_string(),
    })?;
    let registry_cache = cache_dir.join(spin_runtime::cache::REGISTRY_SUBDIR);
    let options = PullOptions {
        insecure: false,
        credentials,
        policy,
    };
    let started = Instant::now();
    let fetch = reference.clone();
    let pulled = tokio::task::spawn_blocking(move || {
        spin_runtime::oci::pull_with(&fetch, &registry_cache, &options)
            .map(|p| (precompile::wasm_files(&p), p.digest))
    })
    .await
    .map_err(|e| Error::Pull {
        image: image.to_string(),
        message: e.to_string(),
    })?;
    let (wasm, digest) = pulled.map_err(|e| match e {
        spin_runtime::oci::Error::NotCached(_) => Error::NeverPull {
            image: image.to_string(),
        },
        other => Error::Pull {
            image: image.to_string(),
            message: other.to_string(),
        },
    })?;
    let pinned = format!("{}/{}@{}", reference.registry, reference.repository, digest);
    Ok(Pulled {
        pinned,
        digest,
        elapsed: started.elapsed(),
        wasm,
    })
}

/// The container's pull policy (the API server defaults it; `IfNotPresent` otherwise).
pub fn policy(container: &k8s_openapi::api::core::v1::Container) -> PullPolicy {
    match container.image_pull_policy.as_deref() {
        Some("Always") => PullPolicy::Always,
        Some("Never") => PullPolicy::Never,
        _ => PullPolicy::IfNotPresent,
    }
}

/// The credentials a Docker config (`.dockerconfigjson`'s or `.dockercfg`'s JSON) holds
/// for `registry`.
pub fn credentials_for(registry: &str, config: &serde_json::Value) -> Option<(String, String)> {
    let auths = config
        .get("auths")
        .and_then(|a| a.as_object())
        .or_else(|| config.as_object())?;
    let host_of = |key: &str| {
        let k = key
            .trim_start_matches("https://")
            .trim_start_matches("http://");
        k.split('/').next().unwrap_or(k).to_string()
    };
    let entry = auths.iter().find_map(|(k, v)| {
        let host = host_of(k);
        let matches = host == registry
            || (registry == "docker.io"
                && (host == "index.docker.io" || host == "registry-1.docker.io"));
        matches.then_some(v)
    })?;
    if let (Some(u), Some(p)) = (
        entry.get("username").and_then(|v| v.as_str()),
        entry.get("password").and_then(|v| v.as_str()),
    ) {
        return Some((u.to_string(), p.to_string()));
    }
    use base64::Engine;
    let auth = entry.get("auth")?.as_str()?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

/// The credentials the pod's `imagePullSecrets` hold for `image`'s registry.
pub async fn pull_secret_credentials(
    client: &kube::Client,
    pod: &k8s_openapi::api::core::v1::Pod,
    image: &str,
) -> Option<(String, String)> {
    let registry = Reference::parse(image).ok()?.registry;
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(client.clone(), ns);
    for r in pod
        .spec
        .as_ref()
        .and_then(|s| s.image_pull_secrets.as_ref())
        .into_iter()
        .flatten()
    {
        let Ok(Some(secret)) = secrets.get_opt(&r.name).await else {
            continue;
        };
        let data = secret.data.unwrap_or_default();
        for key in [".dockerconfigjson", ".dockercfg"] {
            let config = data
                .get(key)
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b.0).ok());
            if let Some(found) = config.and_then(|c| credentials_for(&registry, &c)) {
                return Some(found);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_bad_name_is_invalid_image_name_and_an_unreachable_registry_is_err_image_pull() {
        let dir = tempfile::tempdir().unwrap();
        let e = pull("Not A/Reference", dir.path(), PullPolicy::Always, None)
            .await
            .unwrap_err();
        assert_eq!(e.reason(), "InvalidImageName");
        // A loopback port nothing listens on: the registry's connection error is kept.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = pull(
            &format!("127.0.0.1:{port}/apps/hello:v1"),
            dir.path(),
            PullPolicy::Always,
            None,
        )
        .await
        .unwrap_err();
        assert_eq!(e.reason(), "ErrImagePull");
        assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
        let e = pull(
            "127.0.0.1:1/apps/none:v1",
            dir.path(),
            PullPolicy::Never,
            None,
        )
        .await
        .unwrap_err();
        assert_eq!(e.reason(), "ErrImageNeverPull");
    }

    #[test]
    fn docker_configs_give_credentials_by_registry() {
        let config = serde_json::json!({"auths": {
            "https://registry.example:5000/v1/": {"auth": "dXNlcjpwYXNz"},
            "other.example": {"username": "u2", "password": "p2"},
        }});
        assert_eq!(
            credentials_for("registry.example:5000", &config),
            Some(("user".into(), "pass".into()))
        );
        assert_eq!(
            credentials_for("other.example", &config),
            Some(("u2".into(), "p2".into()))
        );
        assert_eq!(credentials_for("third.example", &config), None);
    }
}

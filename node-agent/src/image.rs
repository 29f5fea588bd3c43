//! Image pulls for pods: a container's `image` is an OCI reference to a Spin app, pulled
//! into the agent's content-addressed cache (shared by every replica and restart, and by
//! the sandboxes, which load from it); the pull's digest becomes the container's
//! `imageID`, and the sandbox is started from `repository@digest`, so every restart runs
//! the exact artifact that was pulled.
//!
//! Owns the registry cache under the agent's data dir; knows nothing of pods.

use std::path::Path;
use std::time::{Duration, Instant};

use spin_runtime::oci::Reference;

/// Why a pull failed, with the kubelet's waiting reason for each.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The image is not a valid reference (`InvalidImageName`).
    #[error("Failed to apply default image tag {image:?}: couldn't parse image name {image:?}: invalid reference format")]
    InvalidName {
        /// The image as written in the pod.
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
    /// The container's waiting reason for this failure.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::InvalidName { .. } => "InvalidImageName",
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
}

/// Pulls `image` into the cache under `cache_dir`.
pub async fn pull(image: &str, cache_dir: &Path) -> Result<Pulled, Error> {
    let reference = Reference::parse(image).map_err(|_| Error::InvalidName {
        image: image.to_string(),
    })?;
    let options = spin_runtime::app::AppOptions {
        cache_dir: Some(cache_dir.to_owned()),
        ..Default::default()
    };
    let started = Instant::now();
    let fetch = reference.clone();
    let pulled = tokio::task::spawn_blocking(move || {
        spin_runtime::serve::pull(&fetch, &options, false).map(|p| p.digest)
    })
    .await
    .map_err(|e| Error::Pull {
        image: image.to_string(),
        message: e.to_string(),
    })?;
    let digest = pulled.map_err(|e| Error::Pull {
        image: image.to_string(),
        message: match &e {
            spin_runtime::serve::Error::Pull { source, .. } => source.to_string(),
            other => other.to_string(),
        },
    })?;
    let pinned = format!("{}/{}@{}", reference.registry, reference.repository, digest);
    Ok(Pulled {
        pinned,
        digest,
        elapsed: started.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_bad_name_is_invalid_image_name_and_an_unreachable_registry_is_err_image_pull() {
        let dir = tempfile::tempdir().unwrap();
        let e = pull("Not A/Reference", dir.path()).await.unwrap_err();
        assert_eq!(e.reason(), "InvalidImageName");
        // A loopback port nothing listens on: the registry's connection error is kept.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = pull(&format!("127.0.0.1:{port}/apps/hello:v1"), dir.path())
            .await
            .unwrap_err();
        assert_eq!(e.reason(), "ErrImagePull");
        assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
    }
}

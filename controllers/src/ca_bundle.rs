//! The CA bundle Secret an executor with `installDefaultCACerts: true` makes its apps
//! mount (spin-operator's `ensureCASecret`): `caCertSecret`, or `spin-ca` when that is
//! unset, key `ca-certificates.crt`, annotated `app.kubernetes.io/managed-by:
//! spin-operator.spinkube.dev`, one per namespace and without an owner. It is created
//! only when missing and never rewritten, so a bundle the user put there (their own CA in
//! `caCertSecret`) stays theirs.
//!
//! spin-operator fills it with the Mozilla bundle compiled into it; spinlet takes the
//! host's trust bundle instead (`SSL_CERT_FILE`, else the first of the usual system
//! paths, in openssl-probe's order), so an app trusts what the device trusts. A host
//! without one gets no Secret (logged): the mount is optional, and the app still trusts
//! the Mozilla roots compiled into spin-runtime.
//!
//! Owns reading the host bundle and creating the Secret; the SpinApp controller
//! ([`crate::spinapp`]) asks for it before it applies an app's Deployment, and decides
//! where the volume goes ([`crate::spinapp::deployment`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use kube::api::{Api, PostParams};
use spinlet_types::ExecutorDeploymentConfig;

use crate::spinapp::deployment::{CA_KEY, DEFAULT_CA_SECRET};

/// The annotation spin-operator puts on the Secrets it creates.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "spin-operator.spinkube.dev");

/// Where hosts keep their trust bundle (openssl-probe's candidate files, in order).
const BUNDLE_FILES: [&str; 7] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
    "/usr/local/share/certs/ca-root-nss.crt",
    "/etc/pki/tls/cacert.pem",
];

/// The Secret an executor's apps need created when missing: `caCertSecret` (or
/// `spin-ca`) with `installDefaultCACerts: true`; none otherwise (a `caCertSecret` alone
/// is the user's to create).
pub fn secret_to_install(config: &ExecutorDeploymentConfig) -> Option<&str> {
    if config.install_default_ca_certs != Some(true) {
        return None;
    }
    match config.ca_cert_secret.as_deref() {
        Some(name) if !name.is_empty() => Some(name),
        _ => Some(DEFAULT_CA_SECRET),
    }
}

/// The first of `candidates` that holds a PEM certificate: (path, contents).
fn first_bundle(candidates: impl IntoIterator<Item = PathBuf>) -> Option<(PathBuf, String)> {
    candidates.into_iter().find_map(|path| {
        let text = std::fs::read_to_string(&path).ok()?;
        text.contains("-----BEGIN CERTIFICATE-----")
            .then_some((path, text))
    })
}

/// The host's trust bundle (read once): `SSL_CERT_FILE`'s, else the first system file.
pub fn host_bundle() -> Option<&'static (PathBuf, String)> {
    static BUNDLE: OnceLock<Option<(PathBuf, String)>> = OnceLock::new();
    BUNDLE
        .get_or_init(|| {
            let from_env = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from);
            first_bundle(
                from_env
                    .into_iter()
                    .chain(BUNDLE_FILES.iter().map(PathBuf::from)),
            )
        })
        .as_ref()
}

/// The Secret `name` in `ns` holding `bundle`.
pub fn secret(ns: &str, name: &str, bundle: &str) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(ns.to_string()),
            annotations: Some(BTreeMap::from([(
                MANAGED_BY.0.to_string(),
                MANAGED_BY.1.to_string(),
            )])),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".to_string()),
        data: Some(BTreeMap::from([(
            CA_KEY.to_string(),
            ByteString(bundle.as_bytes().to_vec()),
        )])),
        ..Secret::default()
    }
}

/// Creates the Secret `name` in `ns` from the host's bundle unless a Secret of that name
/// exists. `true` when it was created.
pub async fn ensure(client: &kube::Client, ns: &str, name: &str) -> Result<bool, kube::Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    if api.get_metadata_opt(name).await?.is_some() {
        return Ok(false);
    }
    let Some((path, bundle)) = host_bundle() else {
        // Said once: every reconcile of such an app comes here.
        static SAID: std::sync::Once = std::sync::Once::new();
        SAID.call_once(|| {
            tracing::warn!(
                namespace = ns,
                secret = name,
                "installDefaultCACerts: this host has no CA bundle (SSL_CERT_FILE or a system \
             file such as /etc/ssl/certs/ca-certificates.crt); the Secret is not created"
            )
        });
        return Ok(false);
    };
    match api
        .create(&PostParams::default(), &secret(ns, name, bundle))
        .await
    {
        Ok(_) => {
            tracing::info!(namespace = ns, secret = name, bundle = %path.display(), "created the CA bundle Secret");
            Ok(true)
        }
        // Someone else made it in between: theirs stays.
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_secret_an_executor_needs() {
        let config = |secret: Option<&str>, install: Option<bool>| ExecutorDeploymentConfig {
            ca_cert_secret: secret.map(str::to_string),
            install_default_ca_certs: install,
            ..ExecutorDeploymentConfig::default()
        };
        assert_eq!(
            secret_to_install(&config(None, Some(true))),
            Some("spin-ca")
        );
        assert_eq!(
            secret_to_install(&config(Some(""), Some(true))),
            Some("spin-ca")
        );
        assert_eq!(
            secret_to_install(&config(Some("mine"), Some(true))),
            Some("mine")
        );
        assert_eq!(secret_to_install(&config(Some("mine"), None)), None);
        assert_eq!(secret_to_install(&config(None, Some(false))), None);
    }

    #[test]
    fn the_first_file_with_a_certificate_is_the_bundle() {
        let dir = std::env::temp_dir().join(format!("spinlet-ca-bundle-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let good = dir.join("good.pem");
        let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        std::fs::write(&good, pem).unwrap();
        let found = first_bundle([dir.join("missing.pem"), empty, good.clone()]);
        assert_eq!(found, Some((good, pem.to_string())));
        let s = secret("apps", "spin-ca", pem);
        assert_eq!(
            s.metadata.annotations.unwrap()["app.kubernetes.io/managed-by"],
            "spin-operator.spinkube.dev"
        );
        assert_eq!(s.data.unwrap()["ca-certificates.crt"].0, pem.as_bytes());
        let _ = std::fs::remove_dir_all(&dir);
    }
}

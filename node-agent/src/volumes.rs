//! A pod's volumes, made on the host and mounted into its container as WASI preopens:
//! `configMap`, `secret` and `downwardAPI` volumes (and `projected` ones combining them)
//! as directories of files (`items` with their paths, `optional`), `emptyDir` as a
//! directory that lives as long as the pod, and `hostPath` directories (`Directory`,
//! `DirectoryOrCreate`). Each `volumeMount` becomes a preopen at its `mountPath`, read-only
//! when `readOnly` is set and always for the API-backed kinds, at `subPath` when given.
//!
//! A file mounted at `/runtime-config.toml` (spin-operator mounts the app's runtime-config
//! Secret key there with a `subPath`) is the app's runtime config, as containerd-shim-spin
//! reads it from the container's root: [`Mounted::runtime_config`]. A file mounted at
//! `/etc/ssl/certs/ca-certificates.crt` (spin-operator's `spin-ca` volume) is the app's
//! trust bundle, as Spin in a container reads the system bundle: [`Mounted::ca_bundle`].
//!
//! Files are written under `<sandbox dir>/volumes/<volume>/`, each replaced atomically, so
//! a refresh after a ConfigMap or Secret changes ([`Volumes::refresh`]) never shows a
//! half-written file. `serviceAccountToken` projections are skipped (spinlet issues no
//! service-account tokens yet). Reads ConfigMaps and Secrets through the `kube` client.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, KeyToPath, Pod, Volume, VolumeProjection};
use spin_runtime::app::Mount;

use crate::sources::Kind;

/// Where containerd-shim-spin reads an app's runtime config in its container.
pub const RUNTIME_CONFIG_PATH: &str = "/runtime-config.toml";

/// The system trust bundle in a (Debian-based) container, where spin-operator mounts the
/// executor's CA Secret.
pub const CA_BUNDLE_PATH: &str = "/etc/ssl/certs/ca-certificates.crt";

/// What a container's volume mounts give the sandbox.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mounted {
    /// Directories preopened in every component.
    pub preopens: Vec<Mount>,
    /// The runtime config file mounted at [`RUNTIME_CONFIG_PATH`], if any.
    pub runtime_config: Option<PathBuf>,
    /// The trust bundle mounted at [`CA_BUNDLE_PATH`], if any.
    pub ca_bundle: Option<PathBuf>,
}

/// Why a volume cannot be set up (the pod's `FailedMount` event).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("MountVolume.SetUp failed for volume {volume:?} : {message}")]
pub struct Error {
    /// The volume.
    pub volume: String,
    /// What is wrong.
    pub message: String,
}

fn err(volume: &str, message: impl Into<String>) -> Error {
    Error {
        volume: volume.to_string(),
        message: message.into(),
    }
}

/// A relative path that stays inside its directory (no `..`, not absolute).
fn safe_relative(path: &str) -> bool {
    !path.is_empty()
        && Path::new(path)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

/// Writes `content` to `dir/rel` atomically.
fn write_file(dir: &Path, rel: &str, content: &[u8]) -> std::io::Result<()> {
    let path = dir.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    if std::fs::read(&path).is_ok_and(|old| old == content) {
        return Ok(());
    }
    let tmp = path.with_extension("spinlet-tmp");
    std::fs::write(&tmp, content)?;
    std::fs::rename(&tmp, &path)
}

/// The files a key/value source gives: every key, or just `items` at their paths.
fn select(
    volume: &str,
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&Vec<KeyToPath>>,
    what: &str,
) -> Result<Vec<(String, Vec<u8>)>, Error> {
    match items {
        None => Ok(data.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
        Some(items) => items
            .iter()
            .map(|i| {
                let v = data.get(&i.key).ok_or_else(|| {
                    err(
                        volume,
                        format!("{what} references non-existent config key: {}", i.key),
                    )
                })?;
                if !safe_relative(&i.path) {
                    return Err(err(volume, format!("invalid path {:?}", i.path)));
                }
                Ok((i.path.clone(), v.clone()))
            })
            .collect(),
    }
}

/// A pod's volumes on the host.
pub struct Volumes {
    root: PathBuf,
}

impl Volumes {
    /// The volumes of a pod whose sandbox directory is `sandbox_dir`.
    pub fn new(sandbox_dir: &Path) -> Volumes {
        Volumes {
            root: sandbox_dir.join("volumes"),
        }
    }

    fn dir(&self, volume: &str) -> PathBuf {
        self.root.join(volume)
    }

    /// Makes (or refreshes) every volume of `pod`.
    pub async fn refresh(
        &self,
        client: &kube::Client,
        pod: &Pod,
        pod_ip: &str,
    ) -> Result<(), Error> {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        for v in pod
            .spec
            .as_ref()
            .and_then(|s| s.volumes.as_ref())
            .into_iter()
            .flatten()
        {
            self.make(client, ns, pod, v, pod_ip).await?;
        }
        Ok(())
    }

    async fn make(
        &self,
        client: &kube::Client,
        ns: &str,
        pod: &Pod,
        v: &Volume,
        pod_ip: &str,
    ) -> Result<(), Error> {
        let name = v.name.as_str();
        let dir = self.dir(name);
        let io = |e: std::io::Error| err(name, e.to_string());
        if v.empty_dir.is_some() {
            return std::fs::create_dir_all(&dir).map_err(io);
        }
        if v.host_path.is_some() {
            return Ok(());
        }
        let mut files: Vec<(String, Vec<u8>)> = Vec::new();
        if let Some(cm) = &v.config_map {
            let source = (Kind::ConfigMap, cm.name.as_str());
            files.extend(
                source_files(client, ns, name, source, cm.items.as_ref(), cm.optional).await?,
            );
        } else if let Some(secret) = &v.secret {
            let secret_name = secret.secret_name.clone().unwrap_or_default();
            let source = (Kind::Secret, secret_name.as_str());
            let (items, optional) = (secret.items.as_ref(), secret.optional);
            files.extend(source_files(client, ns, name, source, items, optional).await?);
        } else if let Some(d) = &v.downward_api {
            for item in d.items.iter().flatten() {
                files.push(downward_file(name, pod, item, pod_ip)?);
            }
        } else if let Some(p) = &v.projected {
            for source in p.sources.iter().flatten() {
                files.extend(projection(client, ns, name, pod, source, pod_ip).await?);
            }
        } else {
            return Err(err(name, "this volume type is not supported by spinlet (supported: configMap, secret, downwardAPI, projected, emptyDir, hostPath)"));
        }
        std::fs::create_dir_all(&dir).map_err(io)?;
        for (rel, content) in &files {
            write_file(&dir, rel, content).map_err(io)?;
        }
        Ok(())
    }

    /// The preopens and the runtime config `container`'s `volumeMounts` give.
    pub fn mounts(&self, pod: &Pod, container: &Container) -> Result<Mounted, Error> {
        let volumes = pod.spec.as_ref().and_then(|s| s.volumes.as_ref());
        let mut out = Vec::new();
        let mut runtime_config = None;
        let mut ca_bundle = None;
        for m in container.volume_mounts.iter().flatten() {
            let v = volumes
                .and_then(|vs| vs.iter().find(|v| v.name == m.name))
                .ok_or_else(|| err(&m.name, "no volume of that name in the pod"))?;
            let api_backed = v.config_map.is_some()
                || v.secret.is_some()
                || v.downward_api.is_some()
                || v.projected.is_some();
            let mut host = match &v.host_path {
                Some(h) => {
                    let path = PathBuf::from(&h.path);
                    match h.type_.as_deref().unwrap_or("") {
                        "DirectoryOrCreate" => std::fs::create_dir_all(&path).map_err(|e| err(&m.name, e.to_string()))?,
                        "" | "Directory" if path.is_dir() => {}
                        "" | "Directory" => return Err(err(&m.name, format!("hostPath type check failed: {} is not a directory", h.path))),
                        other => return Err(err(&m.name, format!("hostPath type {other:?} cannot be mounted in a Spin app: only directories can be preopened"))),
                    }
                    path
                }
                None => self.dir(&m.name),
            };
            if let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
                if !safe_relative(sub) {
                    return Err(err(&m.name, format!("invalid subPath {sub:?}")));
                }
                host = host.join(sub);
                if host.is_file() {
                    // One file of the volume (a key at `subPath`): WASI preopens only
                    // directories, so the guest does not see it; the runtime config at
                    // the root and the trust bundle are the host's to read, as the shim
                    // and Spin read them.
                    if m.mount_path == RUNTIME_CONFIG_PATH {
                        runtime_config = Some(host);
                    } else if m.mount_path == CA_BUNDLE_PATH {
                        ca_bundle = Some(host);
                    } else {
                        tracing::debug!(volume = %m.name, path = %m.mount_path, "a file subPath is not preopened");
                    }
                    continue;
                }
                std::fs::create_dir_all(&host).map_err(|e| err(&m.name, e.to_string()))?;
            }
            out.push(Mount {
                host,
                guest: m.mount_path.clone(),
                read_only: m.read_only.unwrap_or(false) || api_backed,
            });
        }
        Ok(Mounted {
            preopens: out,
            runtime_config,
            ca_bundle,
        })
    }
}

/// The files a ConfigMap or Secret volume source gives.
async fn source_files(
    client: &kube::Client,
    ns: &str,
    volume: &str,
    (kind, name): (Kind, &str),
    items: Option<&Vec<KeyToPath>>,
    optional: Option<bool>,
) -> Result<Vec<(String, Vec<u8>)>, Error> {
    let data = crate::sources::data(client, ns, kind, name)
        .await
        .map_err(|e| err(volume, e.to_string()))?;
    match data {
        Some(data) => select(volume, &data, items, kind.lower()),
        None if optional.unwrap_or(false) => Ok(Vec::new()),
        None => Err(err(volume, format!("{} {name:?} not found", kind.lower()))),
    }
}

fn downward_file(
    volume: &str,
    pod: &Pod,
    item: &k8s_openapi::api::core::v1::DownwardAPIVolumeFile,
    pod_ip: &str,
) -> Result<(String, Vec<u8>), Error> {
    if !safe_relative(&item.path) {
        return Err(err(volume, format!("invalid path {:?}", item.path)));
    }
    let ctx = crate::env::Context {
        pod_ip,
        host_ip: "",
        allocatable: (0, 0),
    };
    let value = if let Some(f) = &item.field_ref {
        match f.field_path.as_str() {
            // As files, labels and annotations are `key="value"` lines.
            "metadata.labels" | "metadata.annotations" => {
                let map = if f.field_path == "metadata.labels" {
                    &pod.metadata.labels
                } else {
                    &pod.metadata.annotations
                };
                map.iter()
                    .flatten()
                    .map(|(k, v)| format!("{k}={v:?}\n"))
                    .collect()
            }
            path => crate::env::field(pod, path, &ctx).map_err(|e| err(volume, e.0))?,
        }
    } else if let Some(r) = &item.resource_field_ref {
        let container = pod
            .spec
            .as_ref()
            .and_then(|s| {
                s.containers
                    .iter()
                    .find(|c| Some(&c.name) == r.container_name.as_ref())
                    .or(s.containers.first())
            })
            .ok_or_else(|| err(volume, "the pod has no container"))?;
        let divisor = r.divisor.as_ref().map(|d| d.0.as_str());
        crate::env::resource_field(container, &r.resource, divisor, &ctx)
            .map_err(|e| err(volume, e.0))?
    } else {
        String::new()
    };
    Ok((item.path.clone(), value.into_bytes()))
}

async fn projection(
    client: &kube::Client,
    ns: &str,
    volume: &str,
    pod: &Pod,
    source: &VolumeProjection,
    pod_ip: &str,
) -> Result<Vec<(String, Vec<u8>)>, Error> {
    if let Some(cm) = &source.config_map {
        let source = (Kind::ConfigMap, cm.name.as_str());
        return source_files(client, ns, volume, source, cm.items.as_ref(), cm.optional).await;
    }
    if let Some(s) = &source.secret {
        let source = (Kind::Secret, s.name.as_str());
        return source_files(client, ns, volume, source, s.items.as_ref(), s.optional).await;
    }
    if let Some(d) = &source.downward_api {
        return d
            .items
            .iter()
            .flatten()
            .map(|i| downward_file(volume, pod, i, pod_ip))
            .collect();
    }
    Ok(Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_and_items_select_keys() {
        assert!(safe_relative("a/b.txt"));
        for bad in ["", "/etc/passwd", "../x", "a/../../x"] {
            assert!(!safe_relative(bad), "{bad}");
        }
        let mut data = BTreeMap::new();
        data.insert("k".to_string(), b"v".to_vec());
        let items: Vec<KeyToPath> =
            serde_json::from_value(serde_json::json!([{"key": "k", "path": "dir/file"}])).unwrap();
        assert_eq!(
            select("vol", &data, Some(&items), "configmap").unwrap(),
            vec![("dir/file".to_string(), b"v".to_vec())]
        );
        let missing: Vec<KeyToPath> =
            serde_json::from_value(serde_json::json!([{"key": "nope", "path": "f"}])).unwrap();
        assert_eq!(
            select("vol", &data, Some(&missing), "secret").unwrap_err().to_string(),
            "MountVolume.SetUp failed for volume \"vol\" : secret references non-existent config key: nope"
        );
    }

    #[test]
    fn files_are_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        write_file(dir.path(), "a/b", b"one").unwrap();
        write_file(dir.path(), "a/b", b"two").unwrap();
        assert_eq!(std::fs::read(dir.path().join("a/b")).unwrap(), b"two");
        assert!(!dir.path().join("a/b.spinlet-tmp").exists());
    }
}

//! apiserver-shim: a kube-compatible API server stored in sled, which real `kubectl` and
//! the Rust `kube` client use as if it were Kubernetes.
//!
//! Data flow: `server` (TLS, HTTP, authentication) → `api` (routing) → `handlers`
//! (one module per verb family) → `decode`/`object` (schema and metadata rules) → `store`
//! (sled, revisions, group commit) → `watch` (events to clients). What differs per kind
//! (defaults, validation, update rules, columns, merge keys, …) is the kind's strategy in
//! `kinds`, which the generic modules ask instead of matching on kind names.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use apiserver_shim::{api::{Api, ApiOptions}, store::{Store, StoreConfig}};
//! let store = Store::open(std::path::Path::new("/tmp/db"), StoreConfig::default())?;
//! let api = Api::new(store, ApiOptions::default());
//! apiserver_shim::bootstrap(&api).await?;
//! # Ok(()) }
//! ```

pub mod admission;
pub mod api;
pub mod apiserver_endpoints;
pub mod auth;
pub mod commit;
pub mod conversion;
pub mod crd;
pub mod decode;
pub mod defaults;
pub mod discovery;
pub mod error;
pub mod event_ttl;
pub mod field_labels;
pub mod gc;
pub mod handlers;
pub mod kinds;
pub mod kubelet;
pub mod launch;
pub mod object;
pub mod openapi;
pub mod pki;
pub mod protobuf;
pub mod registry;
pub mod request;
pub mod selector;
pub mod server;
pub mod ssa;
pub mod store;
pub mod strategic;
pub mod table;
pub mod tls;
pub mod typed;
pub mod validation;
pub mod wal;
pub mod watch;

use std::sync::Arc;

use serde_json::json;

use crate::api::Api;
use crate::error::ApiError;
use crate::handlers::Existing;

/// The namespaces that exist from the first start.
pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Prepares a store for serving: registers stored CRDs, creates the system namespaces,
/// the CRDs of `ApiOptions::crds` and the `kubernetes` Service when missing, and
/// resumes cleanup of terminating namespaces.
pub async fn bootstrap(api: &Arc<Api>) -> Result<(), ApiError> {
    let (crds, _) = api
        .store
        .list("apiextensions.k8s.io", "customresourcedefinitions", None)?;
    for c in &crds {
        match crd::resource_from_crd(c) {
            Ok(r) => api.registry.put_custom(r),
            Err(e) => tracing::warn!(message = %e.message, "stored CRD is not servable"),
        }
    }
    for ns in SYSTEM_NAMESPACES {
        let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        handlers::ensure(api, ("", "v1", "namespaces"), None, obj, Existing::Keep).await?;
    }
    for c in api.options.crds.iter().cloned() {
        let crds = ("apiextensions.k8s.io", "v1", "customresourcedefinitions");
        handlers::ensure(api, crds, None, c, Existing::Update).await?;
    }
    let first = api.options.service_cidr.0.octets();
    let svc = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {
            "clusterIP": format!("{}.{}.{}.{}", first[0], first[1], first[2], first[3].wrapping_add(1)),
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}],
        },
    });
    handlers::ensure(
        api,
        ("", "v1", "services"),
        Some("default"),
        svc,
        Existing::Keep,
    )
    .await?;
    handlers::resume_terminating(api);
    gc::spawn(api.clone());
    event_ttl::spawn(api.clone(), api.options.event_ttl);
    Ok(())
}

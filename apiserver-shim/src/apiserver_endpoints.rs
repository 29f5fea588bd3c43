//! The `kubernetes` Service's Endpoints and EndpointSlice: where clients inside the
//! cluster reach this API server, as kube-apiserver's endpoint reconciler publishes them
//! (`default/kubernetes`, port name `https`, the server's advertised address).
//!
//! Owns only those two objects; written once the listener is bound (its port is known
//! then) and again at every start, so a changed address or port is followed. The
//! endpoints controllers leave them alone: the `kubernetes` Service has no selector.

use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::json;

use crate::api::Api;
use crate::error::ApiError;
use crate::handlers::{self, Existing};

/// Writes `default/kubernetes` Endpoints and EndpointSlice pointing at `advertise`.
pub async fn publish(api: &Arc<Api>, advertise: SocketAddr) -> Result<(), ApiError> {
    let ip = advertise.ip().to_string();
    let port = advertise.port();
    let endpoints = json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{
            "addresses": [{"ip": ip}],
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
        }],
    });
    handlers::ensure(
        api,
        ("", "v1", "endpoints"),
        Some("default"),
        endpoints,
        Existing::Content,
    )
    .await?;
    let address_type = if advertise.is_ipv4() { "IPv4" } else { "IPv6" };
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": "kubernetes"}},
        "addressType": address_type,
        "endpoints": [{"addresses": [ip], "conditions": {"ready": true}}],
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
    });
    handlers::ensure(
        api,
        ("discovery.k8s.io", "v1", "endpointslices"),
        Some("default"),
        slice,
        Existing::Content,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ApiOptions;
    use crate::store::{ObjectKey, Store, StoreConfig};

    fn key(group: &str, resource: &str) -> ObjectKey {
        ObjectKey {
            group: group.into(),
            resource: resource.into(),
            namespace: "default".into(),
            name: "kubernetes".into(),
        }
    }

    #[tokio::test]
    async fn the_kubernetes_service_points_at_the_server_and_follows_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
        let api = Api::new(store, ApiOptions::default());
        crate::bootstrap(&api).await.unwrap();

        publish(&api, "192.0.2.10:6443".parse().unwrap())
            .await
            .unwrap();
        let eps = api.store.get(&key("", "endpoints")).unwrap().unwrap();
        assert_eq!(eps["subsets"][0]["addresses"][0]["ip"], "192.0.2.10");
        assert_eq!(eps["subsets"][0]["ports"][0]["port"], 6443);
        let rv = eps["metadata"]["resourceVersion"].clone();

        publish(&api, "192.0.2.10:6443".parse().unwrap())
            .await
            .unwrap();
        let again = api.store.get(&key("", "endpoints")).unwrap().unwrap();
        assert_eq!(
            again["metadata"]["resourceVersion"], rv,
            "unchanged: not rewritten"
        );

        publish(&api, "192.0.2.11:7443".parse().unwrap())
            .await
            .unwrap();
        let moved = api.store.get(&key("", "endpoints")).unwrap().unwrap();
        assert_eq!(moved["subsets"][0]["addresses"][0]["ip"], "192.0.2.11");
        assert_eq!(moved["subsets"][0]["ports"][0]["port"], 7443);
        let slice = api
            .store
            .get(&key("discovery.k8s.io", "endpointslices"))
            .unwrap()
            .unwrap();
        assert_eq!(slice["endpoints"][0]["addresses"][0], "192.0.2.11");
        assert_eq!(
            slice["metadata"]["labels"]["kubernetes.io/service-name"],
            "kubernetes"
        );
    }
}

//! The `k8s-openapi` type of each built-in kind, in one table: bodies are decoded by a
//! round trip through it (`decode.rs`) and its JSON schema is published in the OpenAPI
//! documents (`openapi.rs`). Adding a built-in kind with a type is one row here.

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Something done with a kind's Rust type.
pub trait Visitor {
    /// The result.
    type Out;
    /// Called with the kind's type.
    fn visit<T: DeserializeOwned + Serialize + JsonSchema>(self) -> Self::Out;
}

/// Calls `v` with the type of (`kind`, `group`), if it is a built-in kind with one.
pub fn with_type<V: Visitor>(kind: &str, group: &str, v: V) -> Option<V::Out> {
    use k8s_openapi::api::{
        apps::v1 as apps, autoscaling::v2 as autoscaling, coordination::v1 as coordination,
        core::v1 as core, discovery::v1 as discovery, events::v1 as events,
        networking::v1 as networking, node::v1 as node,
    };
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext;
    Some(match (kind, group) {
        ("Namespace", "") => v.visit::<core::Namespace>(),
        ("Node", "") => v.visit::<core::Node>(),
        ("Pod", "") => v.visit::<core::Pod>(),
        ("Service", "") => v.visit::<core::Service>(),
        ("Endpoints", "") => v.visit::<core::Endpoints>(),
        ("ConfigMap", "") => v.visit::<core::ConfigMap>(),
        ("Secret", "") => v.visit::<core::Secret>(),
        ("Event", "") => v.visit::<core::Event>(),
        ("ServiceAccount", "") => v.visit::<core::ServiceAccount>(),
        ("Deployment", "apps") => v.visit::<apps::Deployment>(),
        ("ReplicaSet", "apps") => v.visit::<apps::ReplicaSet>(),
        ("Lease", "coordination.k8s.io") => v.visit::<coordination::Lease>(),
        ("RuntimeClass", "node.k8s.io") => v.visit::<node::RuntimeClass>(),
        ("EndpointSlice", "discovery.k8s.io") => v.visit::<discovery::EndpointSlice>(),
        ("Event", "events.k8s.io") => v.visit::<events::Event>(),
        ("HorizontalPodAutoscaler", "autoscaling") => {
            v.visit::<autoscaling::HorizontalPodAutoscaler>()
        }
        ("Ingress", "networking.k8s.io") => v.visit::<networking::Ingress>(),
        ("IngressClass", "networking.k8s.io") => v.visit::<networking::IngressClass>(),
        ("CustomResourceDefinition", "apiextensions.k8s.io") => {
            v.visit::<apiext::CustomResourceDefinition>()
        }
        _ => return None,
    })
}

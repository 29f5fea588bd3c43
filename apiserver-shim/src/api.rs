//! The API: shared state ([`Api`]) and the routing of one parsed request to discovery,
//! OpenAPI, health or a resource handler. Transport-independent: `server.rs` turns HTTP
//! into a [`Call`] and a [`Reply`] back into HTTP.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::error::ApiError;
use crate::registry::Registry;
use crate::request::{parse_path, Query, Target};
use crate::store::Store;
use crate::{discovery, handlers, openapi};

/// The Kubernetes version spinlet reports (kubectl's dispatcher picks its build by it).
pub const KUBE_VERSION: &str = "v1.32.4";

/// Tunables of the API.
#[derive(Clone, Debug)]
pub struct ApiOptions {
    /// The service CIDR cluster IPs come from (first address is the `kubernetes` service).
    pub service_cidr: (std::net::Ipv4Addr, u8),
    /// The range node ports come from, inclusive (`--service-node-port-range`).
    pub node_port_range: (u16, u16),
    /// Upper bound on a watch's lifetime.
    pub max_watch: Duration,
    /// How often a watch that asked for bookmarks gets one.
    pub bookmark_interval: Duration,
    /// The TLS client for kubelets (`pods/log`, `nodes/proxy`; [`crate::kubelet`]);
    /// without it those answer 503.
    pub kubelet_client: Option<Arc<rustls::ClientConfig>>,
    /// How long Events are kept after they were last seen (`--event-ttl`; zero: forever).
    pub event_ttl: Duration,
    /// In-process admission hooks run on creates and updates ([`crate::admission`]).
    pub admission: crate::admission::Hooks,
    /// CustomResourceDefinitions installed (created, or updated to this content) at
    /// bootstrap, e.g. `spinlet_types::crds()`.
    pub crds: Vec<Value>,
}

impl Default for ApiOptions {
    fn default() -> Self {
        ApiOptions {
            service_cidr: (std::net::Ipv4Addr::new(10, 43, 0, 0), 16),
            node_port_range: crate::handlers::DEFAULT_NODE_PORT_RANGE,
            max_watch: Duration::from_secs(1800),
            bookmark_interval: Duration::from_secs(60),
            kubelet_client: None,
            event_ttl: crate::event_ttl::DEFAULT_TTL,
            admission: crate::admission::Hooks::default(),
            crds: Vec::new(),
        }
    }
}

/// Shared API state.
pub struct Api {
    /// The object store.
    pub store: Arc<Store>,
    /// The served kinds.
    pub registry: Registry,
    /// Tunables.
    pub options: ApiOptions,
    /// Cluster IPs handed out but maybe not stored yet, so concurrent creates differ.
    pub(crate) recent_cluster_ips: std::sync::Mutex<Vec<std::net::Ipv4Addr>>,
    /// Node ports handed out but maybe not stored yet.
    pub(crate) recent_node_ports: std::sync::Mutex<Vec<u16>>,
}

/// One request, transport-independent.
pub struct Call {
    /// HTTP method.
    pub method: Method,
    /// Path without query.
    pub path: String,
    /// Parsed query.
    pub query: Query,
    /// Request headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl Call {
    /// A header's value, or "".
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// What the API answers.
pub enum Reply {
    /// A JSON document with a status code, content type and warnings.
    Json {
        /// HTTP status.
        code: u16,
        /// Body.
        body: Value,
        /// Content type.
        content_type: &'static str,
        /// `Warning` headers (299).
        warnings: Vec<String>,
    },
    /// A stream of newline-delimited JSON (watch).
    Stream(mpsc::Receiver<Bytes>),
    /// Plain text.
    Text(u16, String),
    /// A JSON document already encoded.
    RawJson(Bytes),
    /// A body relayed from a kubelet as it arrives (`pods/log`, `nodes/proxy`).
    Proxied {
        /// HTTP status.
        code: u16,
        /// Content type.
        content_type: String,
        /// The body's chunks.
        body: mpsc::Receiver<Bytes>,
    },
}

impl Reply {
    /// 200 JSON.
    pub fn ok(body: Value) -> Reply {
        Reply::json(200, body)
    }

    /// JSON with a code.
    pub fn json(code: u16, body: Value) -> Reply {
        Reply::Json {
            code,
            body,
            content_type: "application/json",
            warnings: Vec::new(),
        }
    }

    /// Adds warnings.
    pub fn with_warnings(self, w: Vec<String>) -> Reply {
        match self {
            Reply::Json {
                code,
                body,
                content_type,
                mut warnings,
            } => {
                warnings.extend(w);
                Reply::Json {
                    code,
                    body,
                    content_type,
                    warnings,
                }
            }
            other => other,
        }
    }
}

impl From<ApiError> for Reply {
    fn from(e: ApiError) -> Reply {
        Reply::json(e.code, e.to_status())
    }
}

impl Api {
    /// Creates the API over a store.
    pub fn new(store: Arc<Store>, options: ApiOptions) -> Arc<Api> {
        Arc::new(Api {
            store,
            registry: Registry::new(),
            options,
            recent_cluster_ips: std::sync::Mutex::new(Vec::new()),
            recent_node_ports: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// Answers one call.
    pub async fn handle(self: &Arc<Self>, call: Call) -> Reply {
        let get = call.method == Method::GET;
        match parse_path(&call.path) {
            Target::Version if get => Reply::ok(version()),
            Target::Health if get => Reply::Text(200, "ok".into()),
            Target::CoreVersions if get => self.discovery(&call, true),
            Target::Groups if get => self.discovery(&call, false),
            Target::Group(g) if get => match discovery::group(&self.registry.snapshot(), &g) {
                Some(v) => Reply::ok(v),
                None => ApiError::no_route().into(),
            },
            Target::GroupVersion(g, v) if get => {
                match discovery::resource_list(&self.registry.snapshot(), &g, &v) {
                    Some(v) => Reply::ok(v),
                    None => ApiError::no_route().into(),
                }
            }
            Target::OpenApiIndex if get => Reply::ok(openapi::index(&self.registry.snapshot())),
            Target::OpenApiDoc(g, v) if get => {
                match openapi::document(&self.registry.snapshot(), &g, &v) {
                    Some(d) => Reply::ok(d),
                    None => ApiError::no_route().into(),
                }
            }
            Target::NodeProxy { node, path } => {
                match handlers::node_proxy(self, &call, &node, &path).await {
                    Ok(r) => r,
                    Err(e) => e.into(),
                }
            }
            Target::Resource(path) => match handlers::handle(self, &call, path).await {
                Ok(r) => r,
                Err(e) => e.into(),
            },
            Target::Unknown | Target::OpenApiV2 => ApiError::no_route().into(),
            _ => ApiError::method_not_allowed(call.method.as_str(), &call.path).into(),
        }
    }

    fn discovery(&self, call: &Call, core: bool) -> Reply {
        let table = self.registry.snapshot();
        match discovery::wants_aggregated(call.header("accept")) {
            Some(v) => Reply::Json {
                code: 200,
                body: discovery::aggregated(&table, core, v),
                content_type: if v == "v2" {
                    discovery::AGGREGATED_V2
                } else {
                    discovery::AGGREGATED_V2BETA1
                },
                warnings: Vec::new(),
            },
            None if core => Reply::ok(discovery::core_versions()),
            None => Reply::ok(discovery::group_list(&table)),
        }
    }
}

fn version() -> Value {
    json!({
        "major": "1",
        "minor": "32",
        "gitVersion": format!("{KUBE_VERSION}+spinlet"),
        "gitCommit": "spinlet",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.23.0",
        "compiler": "rustc",
        "platform": format!("linux/{}", if cfg!(target_arch = "aarch64") { "arm64" } else { "amd64" }),
    })
}

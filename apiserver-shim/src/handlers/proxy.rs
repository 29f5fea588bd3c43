//! Requests relayed to a node's kubelet, as kube-apiserver's `LocationStreamer`,
//! upgrade-aware proxy and node proxy do: `pods/log` (options decoded and validated as
//! `ValidatePodLogOptions`, the container resolved as `LogLocation`'s
//! `validateContainer`, then `GET /containerLogs/{ns}/{pod}/{container}` on the pod's
//! node), `pods/portforward` (ports decoded as `PodPortForwardOptions`, the pod bound and
//! running, then the upgrade request sent to `/portForward/{ns}/{pod}?port=…`) and
//! `nodes/{name}/proxy/{path}`. Bodies are relayed chunk by chunk as they arrive, so
//! `kubectl logs -f` sees each line when the kubelet sends it; an upgrade the kubelet
//! accepts (101) joins the client's and the kubelet's connections byte for byte, so
//! SPDY and WebSocket alike pass through.
//!
//! Owns the options, the kubelet URL and the relaying; the connection itself is
//! [`crate::kubelet`]. Reads pods and nodes from the store, writes nothing.

use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::sync::mpsc;

use super::Ctx;
use crate::api::{Api, Call, Reply};
use crate::error::{ApiError, ApiResult, Cause};
use crate::kubelet;
use crate::request::{parse_path, Target};
use crate::store::ObjectKey;

/// The most of a kubelet's error body kept for the error message.
const MAX_ERROR_BODY: usize = 4096;

/// `v1.PodLogOptions` from a `pods/log` query.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct PodLogOptions {
    pub container: String,
    pub follow: bool,
    pub previous: bool,
    pub timestamps: bool,
    pub since_seconds: Option<i64>,
    pub since_time: Option<jiff::Timestamp>,
    pub tail_lines: Option<i64>,
    pub limit_bytes: Option<i64>,
    pub insecure_skip_tls_verify_backend: bool,
}

/// Go's query conversion for booleans: anything but `0`, `f`, `false` is true.
fn go_bool(v: Option<&str>) -> bool {
    v.is_some_and(|v| !(v == "0" || v.eq_ignore_ascii_case("f") || v.eq_ignore_ascii_case("false")))
}

fn int(call: &Call, name: &str) -> ApiResult<Option<i64>> {
    match call.query.get(name) {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| {
            ApiError::bad_request(format!(
                "{name}: strconv.ParseInt: parsing {v:?}: invalid syntax"
            ))
        }),
    }
}

impl PodLogOptions {
    /// Decodes the query (400 for a value that does not decode), then validates it
    /// (422 `PodLogOptions "<pod>" is invalid` with field causes).
    pub(crate) fn parse(call: &Call, pod: &str) -> ApiResult<PodLogOptions> {
        let since_time = match call.query.get("sinceTime") {
            None => None,
            Some(v) => Some(v.parse::<jiff::Timestamp>().map_err(|_| {
                ApiError::bad_request(format!(
                    "sinceTime: parsing time {v:?} as \"2006-01-02T15:04:05Z07:00\": cannot parse {v:?} as an RFC 3339 time"
                ))
            })?),
        };
        let o = PodLogOptions {
            container: call.query.get("container").unwrap_or("").to_string(),
            follow: go_bool(call.query.get("follow")),
            previous: go_bool(call.query.get("previous")),
            timestamps: go_bool(call.query.get("timestamps")),
            since_seconds: int(call, "sinceSeconds")?,
            since_time,
            tail_lines: int(call, "tailLines")?,
            limit_bytes: int(call, "limitBytes")?,
            insecure_skip_tls_verify_backend: go_bool(
                call.query.get("insecureSkipTLSVerifyBackend"),
            ),
        };
        let mut causes = Vec::new();
        let invalid = |field: &str, value: i64, why: &str| Cause {
            reason: "FieldValueInvalid",
            message: format!("Invalid value: {value}: {why}"),
            field: field.to_string(),
        };
        if let Some(n) = o.tail_lines.filter(|n| *n < 0) {
            causes.push(invalid(
                "tailLines",
                n,
                "must be greater than or equal to 0",
            ));
        }
        if let Some(n) = o.limit_bytes.filter(|n| *n < 1) {
            causes.push(invalid("limitBytes", n, "must be greater than 0"));
        }
        match (o.since_seconds, o.since_time) {
            (Some(_), Some(_)) => causes.push(Cause {
                reason: "FieldValueForbidden",
                message: "Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified"
                    .into(),
                field: String::new(),
            }),
            (Some(n), None) if n < 1 => {
                causes.push(invalid("sinceSeconds", n, "must be greater than 0"))
            }
            _ => {}
        }
        if !causes.is_empty() {
            return Err(ApiError::invalid("", "PodLogOptions", pod, causes));
        }
        Ok(o)
    }

    /// The kubelet's query for these options (`LogLocation`'s parameters).
    fn kubelet_query(&self) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        if self.follow {
            q.append_pair("follow", "true");
        }
        if self.previous {
            q.append_pair("previous", "true");
        }
        if self.timestamps {
            q.append_pair("timestamps", "true");
        }
        if let Some(n) = self.since_seconds {
            q.append_pair("sinceSeconds", &n.to_string());
        }
        if let Some(t) = &self.since_time {
            q.append_pair("sinceTime", &t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
        }
        if let Some(n) = self.tail_lines {
            q.append_pair("tailLines", &n.to_string());
        }
        if let Some(n) = self.limit_bytes {
            q.append_pair("limitBytes", &n.to_string());
        }
        q.finish()
    }
}

/// The container a log request reads (`validateContainer`): the one named, or the only
/// one; a pod with several needs a name.
pub(crate) fn resolve_container(pod: &Value, name: &str, asked: &str) -> ApiResult<String> {
    let names = |key: &str| -> Vec<String> {
        pod.pointer(&format!("/spec/{key}"))
            .and_then(Value::as_array)
            .map(|cs| {
                cs.iter()
                    .filter_map(|c| c.get("name")?.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let containers = names("containers");
    let init = names("initContainers");
    let ephemeral = names("ephemeralContainers");
    if asked.is_empty() {
        return match containers.len() {
            1 => Ok(containers[0].clone()),
            0 => Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}"
            ))),
            _ => {
                let mut msg = format!(
                    "a container name must be specified for pod {name}, choose one of: [{}]",
                    containers.join(" ")
                );
                if !init.is_empty() {
                    msg.push_str(&format!(
                        " or one of the init containers: [{}]",
                        init.join(" ")
                    ));
                }
                Err(ApiError::bad_request(msg))
            }
        };
    }
    if containers
        .iter()
        .chain(&init)
        .chain(&ephemeral)
        .any(|c| c == asked)
    {
        Ok(asked.to_string())
    } else {
        Err(ApiError::bad_request(format!(
            "container {asked} is not valid for pod {name}"
        )))
    }
}

fn node(api: &Arc<Api>, name: &str) -> ApiResult<Value> {
    let key = ObjectKey {
        group: String::new(),
        resource: "nodes".into(),
        namespace: String::new(),
        name: name.to_string(),
    };
    api.store
        .get(&key)?
        .ok_or_else(|| ApiError::not_found("", "nodes", name))
}

fn kubelet_tls(api: &Arc<Api>) -> ApiResult<Arc<rustls::ClientConfig>> {
    api.options.kubelet_client.clone().ok_or_else(|| {
        ApiError::server_response(
            503,
            "this API server has no kubelet client credentials".into(),
        )
    })
}

/// `GET …/pods/{name}/log`.
pub(super) async fn pod_log(
    api: &Arc<Api>,
    call: &Call,
    ctx: &Ctx,
    name: &str,
) -> ApiResult<Reply> {
    let opts = PodLogOptions::parse(call, name)?;
    let pod = api
        .store
        .get(&ctx.key(name))?
        .ok_or_else(|| ctx.not_found(name))?;
    let container = resolve_container(&pod, name, &opts.container)?;
    let node_name = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or("");
    if node_name.is_empty() {
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    }
    let node = node(api, node_name)?;
    let (host, port) = kubelet::endpoint(&node).map_err(ApiError::bad_request)?;
    let ns = ctx.namespace.clone().unwrap_or_default();
    let mut path = format!("/containerLogs/{ns}/{name}/{container}");
    let query = opts.kubelet_query();
    if !query.is_empty() {
        path.push('?');
        path.push_str(&query);
    }
    let resp = kubelet::get(kubelet_tls(api)?, &host, port, &path)
        .await
        .map_err(|e| ApiError::server_response(500, e.to_string()))?;
    let code = resp.status().as_u16();
    if !(200..=206).contains(&code) {
        // GenericHttpResponseChecker: the kubelet's message becomes the error's.
        let text = error_body(resp.into_body()).await;
        return Err(match code {
            400 => ApiError::bad_request(text),
            500 => ApiError::internal_with_message(text),
            _ => ApiError::server_response(code, text),
        });
    }
    Ok(relay(resp, "text/plain".into()))
}

/// `…/nodes/{name}/proxy/{path}`: relayed to the node's kubelet, status and body as the
/// kubelet answers.
pub async fn node_proxy(api: &Arc<Api>, call: &Call, name: &str, path: &str) -> ApiResult<Reply> {
    if call.method != Method::GET {
        return Err(ApiError::method_not_allowed(
            call.method.as_str(),
            "nodes/proxy",
        ));
    }
    let node = node(api, name)?;
    let (host, port) = kubelet::endpoint(&node).map_err(ApiError::bad_request)?;
    let mut target = path.to_string();
    let query = call.query.encode();
    if !query.is_empty() {
        target.push('?');
        target.push_str(&query);
    }
    let resp = kubelet::get(kubelet_tls(api)?, &host, port, &target)
        .await
        .map_err(|e| ApiError::server_response(500, e.to_string()))?;
    let content_type = resp
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("text/plain")
        .to_string();
    Ok(relay(resp, content_type))
}

/// `PodPortForwardOptions.ports` from a query: every `ports` parameter, each a
/// comma-separated list (`Convert_Slice_string_To_Slice_int32`: 0–65535).
fn forward_ports(query: Option<&str>) -> ApiResult<Vec<u16>> {
    let mut ports = Vec::new();
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if k != "ports" {
            continue;
        }
        for p in v.split(',') {
            ports.push(p.parse::<u16>().map_err(|_| {
                ApiError::bad_request(format!(
                    "cannot convert to []int32: strconv.ParseUint: parsing {p:?}: {}",
                    if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) {
                        "value out of range"
                    } else {
                        "invalid syntax"
                    }
                ))
            })?);
        }
    }
    Ok(ports)
}

/// Where a pod's port-forward goes (`PortForwardLocation`): the kubelet's host, port
/// and `/portForward/{ns}/{pod}?port=…`. 404 for a missing pod, 400 for one with no
/// node or not running.
fn port_forward_location(
    api: &Arc<Api>,
    namespace: &str,
    name: &str,
    query: Option<&str>,
) -> ApiResult<(String, u16, String)> {
    let ports = forward_ports(query)?;
    let key = ObjectKey {
        group: String::new(),
        resource: "pods".into(),
        namespace: namespace.to_string(),
        name: name.to_string(),
    };
    let pod = api
        .store
        .get(&key)?
        .ok_or_else(|| ApiError::not_found("", "pods", name))?;
    let node_name = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or("");
    if node_name.is_empty() {
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    }
    let phase = pod
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("Pending");
    if phase != "Running" {
        return Err(ApiError::bad_request(format!(
            "unable to forward port because pod is not running. Current status={phase}"
        )));
    }
    let node = node(api, node_name)?;
    let (host, port) = kubelet::endpoint(&node).map_err(ApiError::bad_request)?;
    let mut path = format!("/portForward/{namespace}/{name}");
    if !ports.is_empty() {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for p in &ports {
            q.append_pair("port", &p.to_string());
        }
        path.push('?');
        path.push_str(&q.finish());
    }
    Ok((host, port, path))
}

/// `…/pods/{name}/portforward` without an upgrade: checked as with one, then refused
/// (kube-apiserver's proxy requires the upgrade).
pub(super) async fn port_forward(
    api: &Arc<Api>,
    call: &Call,
    ctx: &Ctx,
    name: &str,
) -> ApiResult<Reply> {
    if !matches!(call.method, Method::GET | Method::POST) {
        return Err(ApiError::method_not_allowed(
            call.method.as_str(),
            "pods/portforward",
        ));
    }
    let query = call.query.encode();
    let ns = ctx.namespace.clone().unwrap_or_default();
    port_forward_location(api, &ns, name, Some(&query))?;
    Err(ApiError::bad_request("Upgrade request required"))
}

/// A path whose upgrade requests are relayed to a kubelet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpgradeRoute {
    /// `/api/v1/namespaces/{ns}/pods/{name}/portforward`.
    PortForward {
        /// The pod's namespace.
        namespace: String,
        /// The pod.
        name: String,
    },
    /// `/api/v1/nodes/{node}/proxy/{path}`.
    NodeProxy {
        /// The node.
        node: String,
        /// The kubelet path, with its leading `/`.
        path: String,
    },
}

/// The route of an upgrade request (`Connection: Upgrade` with an `Upgrade` header),
/// if it goes to a kubelet.
pub fn upgrade_route(headers: &HeaderMap, path: &str) -> Option<UpgradeRoute> {
    let upgrade = headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    if !upgrade {
        return None;
    }
    match parse_path(path) {
        Target::NodeProxy { node, path } => Some(UpgradeRoute::NodeProxy { node, path }),
        Target::Resource(r)
            if r.group.is_empty()
                && r.version == "v1"
                && r.resource == "pods"
                && r.subresource.as_deref() == Some("portforward") =>
        {
            Some(UpgradeRoute::PortForward {
                namespace: r.namespace?,
                name: r.name?,
            })
        }
        _ => None,
    }
}

/// The client's headers as the kubelet gets them: its credentials, the host and any
/// body framing dropped (kube-apiserver strips `Authorization` once authenticated).
fn forwarded_headers(headers: &HeaderMap) -> HeaderMap {
    let mut out = headers.clone();
    for h in [
        header::AUTHORIZATION,
        header::HOST,
        header::CONTENT_LENGTH,
        header::TRANSFER_ENCODING,
        header::PROXY_AUTHORIZATION,
    ] {
        out.remove(h);
    }
    out
}

/// Relays an upgrade request to the kubelet. On the kubelet's 101, answers with its
/// head and joins the two upgraded connections in the background (until either side
/// closes); otherwise the reply to send (an error, or the kubelet's own answer).
pub async fn upgrade(
    api: &Arc<Api>,
    route: UpgradeRoute,
    mut req: Request<Incoming>,
) -> Result<http::Response<()>, Reply> {
    let client_side = hyper::upgrade::on(&mut req);
    let (parts, _) = req.into_parts();
    let (host, port, target) = match route {
        UpgradeRoute::PortForward { namespace, name } => {
            if !matches!(parts.method, Method::GET | Method::POST) {
                return Err(ApiError::method_not_allowed(
                    parts.method.as_str(),
                    "pods/portforward",
                )
                .into());
            }
            port_forward_location(api, &namespace, &name, parts.uri.query()).map_err(Reply::from)?
        }
        UpgradeRoute::NodeProxy { node: name, path } => {
            let node = node(api, &name).map_err(Reply::from)?;
            let (host, port) =
                kubelet::endpoint(&node).map_err(|e| Reply::from(ApiError::bad_request(e)))?;
            let mut target = path;
            if let Some(q) = parts.uri.query().filter(|q| !q.is_empty()) {
                target.push('?');
                target.push_str(q);
            }
            (host, port, target)
        }
    };
    let tls = kubelet_tls(api).map_err(Reply::from)?;
    let mut resp = kubelet::upgrade(
        tls,
        &host,
        port,
        parts.method,
        &target,
        forwarded_headers(&parts.headers),
    )
    .await
    .map_err(|e| Reply::from(ApiError::server_response(500, e.to_string())))?;
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        let content_type = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("text/plain")
            .to_string();
        return Err(relay(resp, content_type));
    }
    let kubelet_side = hyper::upgrade::on(&mut resp);
    tokio::spawn(async move {
        match tokio::try_join!(client_side, kubelet_side) {
            Ok((client, kubelet)) => {
                let mut client = TokioIo::new(client);
                let mut kubelet = TokioIo::new(kubelet);
                if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut kubelet).await {
                    tracing::debug!(error = %e, "upgraded kubelet connection ended");
                }
            }
            Err(e) => tracing::debug!(error = %e, "joining an upgraded kubelet connection"),
        }
    });
    let mut head = http::Response::new(());
    *head.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    *head.headers_mut() = resp.headers().clone();
    Ok(head)
}

/// Up to [`MAX_ERROR_BODY`] bytes of an error body, as text.
async fn error_body(mut body: Incoming) -> String {
    let mut out = Vec::new();
    while out.len() < MAX_ERROR_BODY {
        match body.frame().await {
            Some(Ok(f)) => {
                if let Ok(d) = f.into_data() {
                    out.extend_from_slice(&d);
                }
            }
            _ => break,
        }
    }
    out.truncate(MAX_ERROR_BODY);
    String::from_utf8_lossy(&out).trim_end().to_string()
}

/// Relays the body chunk by chunk; stops (dropping the kubelet connection) as soon as
/// the client goes away.
fn relay(resp: http::Response<Incoming>, content_type: String) -> Reply {
    let code = resp.status().as_u16();
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    let mut body = resp.into_body();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                frame = body.frame() => match frame {
                    Some(Ok(f)) => {
                        if let Ok(d) = f.into_data() {
                            if !d.is_empty() && tx.send(d).await.is_err() {
                                return;
                            }
                        }
                    }
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "kubelet body ended with an error");
                        return;
                    }
                    None => return,
                },
                _ = tx.closed() => return,
            }
        }
    });
    Reply::Proxied {
        code,
        content_type,
        body: rx,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Query;
    use serde_json::json;

    fn call(query: &str) -> Call {
        Call {
            method: Method::GET,
            path: String::new(),
            query: Query::parse(Some(query)),
            headers: http::HeaderMap::new(),
            body: Bytes::new(),
        }
    }

    #[test]
    fn options_decode_validate_and_become_the_kubelet_query() {
        let o = PodLogOptions::parse(
            &call(
                "follow=true&tailLines=3&timestamps=1&sinceTime=2026-01-01T00:00:00Z&limitBytes=10",
            ),
            "p",
        )
        .unwrap();
        assert_eq!(
            o.kubelet_query(),
            "follow=true&timestamps=true&sinceTime=2026-01-01T00%3A00%3A00Z&tailLines=3&limitBytes=10"
        );
        let e = PodLogOptions::parse(&call("tailLines=abc"), "p").unwrap_err();
        assert_eq!(e.code, 400);
        assert!(
            e.message.contains("tailLines") && e.message.contains("abc"),
            "{}",
            e.message
        );
        let e = PodLogOptions::parse(&call("tailLines=-2"), "p").unwrap_err();
        assert_eq!(e.code, 422);
        assert_eq!(
            e.message,
            "PodLogOptions \"p\" is invalid: tailLines: Invalid value: -2: must be greater than or equal to 0"
        );
        let e = PodLogOptions::parse(&call("sinceSeconds=0"), "p").unwrap_err();
        assert!(e.message.contains("sinceSeconds"), "{}", e.message);
        let e = PodLogOptions::parse(&call("sinceSeconds=5&sinceTime=2026-01-01T00:00:00Z"), "p")
            .unwrap_err();
        assert_eq!(e.code, 422);
        let e = PodLogOptions::parse(&call("limitBytes=0"), "p").unwrap_err();
        assert!(e.message.contains("limitBytes"), "{}", e.message);
    }

    #[test]
    fn forward_ports_decode_as_kube_apiserver_decodes_them() {
        assert_eq!(
            forward_ports(Some("ports=80,8080&ports=9")).unwrap(),
            [80, 8080, 9]
        );
        assert_eq!(forward_ports(Some("&ports=80")).unwrap(), [80]);
        assert!(forward_ports(None).unwrap().is_empty());
        let e = forward_ports(Some("ports=http")).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                400,
                "cannot convert to []int32: strconv.ParseUint: parsing \"http\": invalid syntax"
            )
        );
        let e = forward_ports(Some("ports=70000")).unwrap_err();
        assert!(e.message.contains("out of range"), "{}", e.message);
    }

    #[test]
    fn upgrades_to_portforward_and_node_proxy_are_routed() {
        let mut h = http::HeaderMap::new();
        let path = "/api/v1/namespaces/default/pods/p/portforward";
        assert_eq!(upgrade_route(&h, path), None);
        h.insert(header::CONNECTION, "Upgrade".parse().unwrap());
        h.insert(header::UPGRADE, "SPDY/3.1".parse().unwrap());
        assert_eq!(
            upgrade_route(&h, path),
            Some(UpgradeRoute::PortForward {
                namespace: "default".into(),
                name: "p".into()
            })
        );
        assert_eq!(
            upgrade_route(&h, "/api/v1/nodes/n/proxy/x"),
            Some(UpgradeRoute::NodeProxy {
                node: "n".into(),
                path: "/x".into()
            })
        );
        assert_eq!(
            upgrade_route(&h, "/api/v1/namespaces/default/pods/p/log"),
            None
        );
        h.insert(header::AUTHORIZATION, "Bearer t".parse().unwrap());
        let f = forwarded_headers(&h);
        assert!(f.get(header::AUTHORIZATION).is_none() && f.get(header::UPGRADE).is_some());
    }

    #[test]
    fn the_container_is_named_or_the_only_one() {
        let one = json!({"spec": {"containers": [{"name": "app"}]}});
        assert_eq!(resolve_container(&one, "p", "").unwrap(), "app");
        assert_eq!(resolve_container(&one, "p", "app").unwrap(), "app");
        let e = resolve_container(&one, "p", "nope").unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (400, "container nope is not valid for pod p")
        );
        let two = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        let e = resolve_container(&two, "p", "").unwrap_err();
        assert_eq!(
            e.message,
            "a container name must be specified for pod p, choose one of: [a b]"
        );
    }
}

//! Requests relayed to a node's kubelet, as kube-apiserver's `LocationStreamer` and
//! node proxy do: `pods/log` (options decoded and validated as `ValidatePodLogOptions`,
//! the container resolved as `LogLocation`'s `validateContainer`, then
//! `GET /containerLogs/{ns}/{pod}/{container}` on the pod's node) and
//! `nodes/{name}/proxy/{path}`. Bodies are relayed chunk by chunk as they arrive, so
//! `kubectl logs -f` sees each line when the kubelet sends it.
//!
//! Owns the options, the kubelet URL and the relaying; the connection itself is
//! [`crate::kubelet`]. Reads pods and nodes from the store, writes nothing.

use std::sync::Arc;

use bytes::Bytes;
use http::Method;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::Value;
use tokio::sync::mpsc;

use super::Ctx;
use crate::api::{Api, Call, Reply};
use crate::error::{ApiError, ApiResult, Cause};
use crate::kubelet;
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

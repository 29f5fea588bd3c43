//! Events written under one group are read under the other, converted.

use http::Method;
use serde_json::{json, Value};

use super::test_fixture::{Fixture, JSON, MERGE};
use crate::api::ApiOptions;

const NEW: &str = "/apis/events.k8s.io/v1/namespaces/default/events";
const CORE: &str = "/api/v1/namespaces/default/events";

#[tokio::test]
async fn events_k8s_io_events_are_core_events() {
    let f = Fixture::new(ApiOptions::default()).await;
    let event = json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": "web.1"},
        "eventTime": "2026-12-05T20:00:00.000000Z",
        "reason": "ScalingReplicaSet", "type": "Normal", "action": "Scale",
        "reportingController": "deployment-controller", "reportingInstance": "spinlet",
        "regarding": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "namespace": "default"},
        "note": "Scaled up replica set web-1 from 0 to 2",
    });
    let (code, created) = f.call(Method::POST, NEW, event, JSON).await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["note"], "Scaled up replica set web-1 from 0 to 2");
    assert!(created.get("message").is_none(), "{created}");
    // Read back under its own group, one and all: in its own shape (the stored JSON is
    // core-shaped whatever apiVersion it carries).
    let (_, got) = f
        .call(Method::GET, &format!("{NEW}/web.1"), Value::Null, "")
        .await;
    assert_eq!(got["regarding"]["name"], "web", "{got}");
    let (_, listed) = f.call(Method::GET, NEW, Value::Null, "").await;
    assert_eq!(listed["items"][0]["regarding"]["name"], "web", "{listed}");
    assert!(
        listed["items"][0].get("involvedObject").is_none(),
        "{listed}"
    );

    // kubectl describe's query: core events by involvedObject.
    let (code, list) = f
        .call(
            Method::GET,
            &format!("{CORE}?fieldSelector=involvedObject.name=web,involvedObject.kind=Deployment"),
            Value::Null,
            "",
        )
        .await;
    assert_eq!(code, 200, "{list}");
    let item = &list["items"][0];
    assert_eq!(item["apiVersion"], "v1");
    assert_eq!(item["message"], "Scaled up replica set web-1 from 0 to 2");
    assert_eq!(item["involvedObject"]["name"], "web");
    assert_eq!(item["reportingComponent"], "deployment-controller");

    // A patch under the new group (the recorder's series update) keeps the shapes apart.
    let (code, patched) = f
        .call(
            Method::PATCH,
            &format!("{NEW}/web.1"),
            json!({"series": {"count": 2, "lastObservedTime": "2026-12-05T20:00:05.000000Z"}}),
            MERGE,
        )
        .await;
    assert_eq!(code, 200, "{patched}");
    assert_eq!(patched["series"]["count"], 2);
    assert_eq!(patched["regarding"]["name"], "web");
    let (_, core) = f
        .call(Method::GET, &format!("{CORE}/web.1"), Value::Null, "")
        .await;
    assert_eq!(core["series"]["count"], 2);
    assert!(core.get("regarding").is_none(), "{core}");
}

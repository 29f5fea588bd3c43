//! Lists in pages: `limit`, `continue`, `remainingItemCount`, one snapshot across pages,
//! 410 once the history is gone.

use http::Method;
use serde_json::{json, Value};

use super::test_fixture::{Fixture, JSON, MERGE};
use crate::api::ApiOptions;
use crate::store::StoreConfig;

const CMS: &str = "/api/v1/namespaces/default/configmaps";

async fn with_configmaps(f: &Fixture, names: &[&str]) {
    for n in names {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": n},
                        "data": {"v": "1"}});
        assert_eq!(f.call(Method::POST, CMS, cm, JSON).await.0, 201);
    }
}

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["metadata"]["name"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn pages_show_one_snapshot_whatever_changes_between_them() {
    let f = Fixture::new(ApiOptions::default()).await;
    with_configmaps(&f, &["a", "b", "c", "d", "e"]).await;
    let (code, first) = f
        .call(Method::GET, &format!("{CMS}?limit=2"), Value::Null, "")
        .await;
    assert_eq!(code, 200, "{first}");
    assert_eq!(names(&first), ["a", "b"]);
    assert_eq!(first["metadata"]["remainingItemCount"], 3);
    let token = first["metadata"]["continue"].as_str().unwrap().to_string();
    let rv = first["metadata"]["resourceVersion"].clone();

    // Between pages: c changes, d goes, f arrives.
    f.call(
        Method::PATCH,
        &format!("{CMS}/c"),
        json!({"data": {"v": "2"}}),
        MERGE,
    )
    .await;
    f.call(Method::DELETE, &format!("{CMS}/d"), Value::Null, "")
        .await;
    with_configmaps(&f, &["f"]).await;

    let (code, second) = f
        .call(
            Method::GET,
            &format!("{CMS}?limit=2&continue={token}"),
            Value::Null,
            "",
        )
        .await;
    assert_eq!(code, 200, "{second}");
    assert_eq!(names(&second), ["c", "d"], "the snapshot's objects");
    assert_eq!(second["items"][0]["data"]["v"], "1", "as they were then");
    assert_eq!(
        second["metadata"]["remainingItemCount"], 1,
        "e, in the snapshot"
    );
    assert_eq!(second["metadata"]["resourceVersion"], rv);
    let token = second["metadata"]["continue"].as_str().unwrap().to_string();
    let (_, third) = f
        .call(
            Method::GET,
            &format!("{CMS}?limit=2&continue={token}"),
            Value::Null,
            "",
        )
        .await;
    assert_eq!(names(&third), ["e"]);
    assert!(third["metadata"].get("continue").is_none(), "the last page");

    // A fresh list sees today's collection.
    let (_, now) = f.call(Method::GET, CMS, Value::Null, "").await;
    assert_eq!(names(&now), ["a", "b", "c", "e", "f"]);
}

/// Pages through `path` with `limit`, checking each page's remainingItemCount against
/// what the following pages hold; with `strip_offsets`, each token loses its `off` (as
/// a token from an older spinlet), so the server counts by walking instead.
async fn page_through(f: &Fixture, path: &str, limit: usize, strip_offsets: bool) -> Vec<String> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut seen = Vec::new();
    let mut claimed = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let url = match &token {
            None => format!("{path}?limit={limit}"),
            Some(t) => format!("{path}?limit={limit}&continue={t}"),
        };
        let (code, page) = f.call(Method::GET, &url, Value::Null, "").await;
        assert_eq!(code, 200, "{page}");
        seen.extend(names(&page));
        let Some(next) = page["metadata"]["continue"].as_str() else {
            assert!(page["metadata"].get("remainingItemCount").is_none());
            break;
        };
        let count = page["metadata"]["remainingItemCount"]
            .as_u64()
            .expect("a count");
        claimed.push((seen.len(), count));
        let mut doc: Value = serde_json::from_slice(&b64.decode(next).unwrap()).unwrap();
        assert_eq!(
            doc["off"].as_u64().unwrap_or(0) > 0,
            !strip_offsets || token.is_none()
        );
        if strip_offsets {
            doc.as_object_mut().unwrap().remove("off");
        }
        token = Some(b64.encode(doc.to_string()));
    }
    for (before, count) in claimed {
        assert_eq!(
            count as usize,
            seen.len() - before,
            "after {before} objects"
        );
    }
    seen
}

#[tokio::test]
async fn remaining_counts_hold_across_namespaces_changes_and_old_tokens() {
    let f = Fixture::new(ApiOptions::default()).await;
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}});
    assert_eq!(
        f.call(Method::POST, "/api/v1/namespaces", ns, JSON).await.0,
        201
    );
    with_configmaps(&f, &["a", "b", "c", "d", "e", "f", "g"]).await;
    for n in ["x", "y", "z"] {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": n}});
        let path = "/api/v1/namespaces/other/configmaps";
        assert_eq!(f.call(Method::POST, path, cm, JSON).await.0, 201);
    }
    f.call(Method::DELETE, &format!("{CMS}/c"), Value::Null, "")
        .await;
    let (_, all) = f
        .call(Method::GET, "/api/v1/configmaps", Value::Null, "")
        .await;
    for strip in [false, true] {
        for limit in [1, 2, 3] {
            assert_eq!(
                page_through(&f, CMS, limit, strip).await,
                ["a", "b", "d", "e", "f", "g"]
            );
            let everywhere = page_through(&f, "/api/v1/configmaps", limit, strip).await;
            assert_eq!(everywhere, names(&all), "limit {limit}");
        }
    }
}

#[tokio::test]
async fn selectors_page_without_a_count_and_bad_tokens_are_refused() {
    let f = Fixture::new(ApiOptions::default()).await;
    with_configmaps(&f, &["a", "b", "c"]).await;
    let (_, page) = f
        .call(
            Method::GET,
            &format!("{CMS}?limit=1&fieldSelector=metadata.name!=a"),
            Value::Null,
            "",
        )
        .await;
    assert_eq!(names(&page), ["b"]);
    assert!(page["metadata"].get("remainingItemCount").is_none());
    assert!(page["metadata"]["continue"].is_string());
    let (code, e) = f
        .call(
            Method::GET,
            &format!("{CMS}?continue=garbage"),
            Value::Null,
            "",
        )
        .await;
    assert_eq!(code, 400, "{e}");
    assert!(e["message"]
        .as_str()
        .unwrap()
        .starts_with("continue key is not valid"));
}

#[tokio::test]
async fn a_token_older_than_the_history_is_expired() {
    let config = StoreConfig {
        history_events: 5,
        ..StoreConfig::default()
    };
    let f = Fixture::with_store(config, ApiOptions::default()).await;
    with_configmaps(&f, &["a", "b", "c"]).await;
    let (_, first) = f
        .call(Method::GET, &format!("{CMS}?limit=1"), Value::Null, "")
        .await;
    let token = first["metadata"]["continue"].as_str().unwrap().to_string();
    // Enough writes to compact the history past the token's revision.
    for i in 0..40 {
        f.call(
            Method::PATCH,
            &format!("{CMS}/c"),
            json!({"data": {"v": i.to_string()}}),
            MERGE,
        )
        .await;
    }
    let mut code = 0;
    let mut body = Value::Null;
    for _ in 0..100 {
        (code, body) = f
            .call(
                Method::GET,
                &format!("{CMS}?limit=1&continue={token}"),
                Value::Null,
                "",
            )
            .await;
        if code == 410 {
            break;
        }
        // Compaction runs off the write path.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(code, 410, "{body}");
    assert_eq!(body["reason"], "Expired");
}

#[tokio::test]
async fn resource_version_match_reads_exactly_or_no_older() {
    let f = Fixture::new(ApiOptions::default()).await;
    with_configmaps(&f, &["a"]).await;
    let (_, first) = f.call(Method::GET, CMS, Value::Null, "").await;
    let rv = first["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    with_configmaps(&f, &["b"]).await;

    let (code, exact) = f
        .call(
            Method::GET,
            &format!("{CMS}?resourceVersion={rv}&resourceVersionMatch=Exact"),
            Value::Null,
            "",
        )
        .await;
    assert_eq!(code, 200, "{exact}");
    assert_eq!(names(&exact), ["a"], "the list as it was then");
    assert_eq!(exact["metadata"]["resourceVersion"], rv.as_str());
    let (_, newer) = f
        .call(
            Method::GET,
            &format!("{CMS}?resourceVersion={rv}&resourceVersionMatch=NotOlderThan"),
            Value::Null,
            "",
        )
        .await;
    assert_eq!(names(&newer), ["a", "b"]);

    let (code, e) = f
        .call(
            Method::GET,
            &format!("{CMS}?resourceVersion=999999"),
            Value::Null,
            "",
        )
        .await;
    assert_eq!((code, e["reason"].as_str()), (504, Some("Timeout")), "{e}");
    for (query, message) in [
        (
            "resourceVersionMatch=Exact",
            "resourceVersionMatch is forbidden unless resourceVersion is provided",
        ),
        (
            "resourceVersion=0&resourceVersionMatch=Exact",
            "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
        ),
        (
            "resourceVersion=1&resourceVersionMatch=Newest",
            "Unsupported value: \"Newest\"",
        ),
    ] {
        let (code, e) = f
            .call(Method::GET, &format!("{CMS}?{query}"), Value::Null, "")
            .await;
        assert_eq!(code, 422, "{query}: {e}");
        let text = e["message"].as_str().unwrap_or("");
        assert!(
            text.starts_with("ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch"),
            "{text}"
        );
        assert!(text.contains(message), "{text}");
    }
}

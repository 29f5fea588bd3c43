//! The admission hooks as the write handlers run them: on create, update, patch and
//! server-side apply of the main resource, in dry runs too, and never on deletes.

use std::sync::Arc;

use http::Method;
use serde_json::{json, Value};

use super::test_fixture;
use crate::admission::{FieldError, Hook, HookFuture, Hooks, Operation, Rejection, Request};
use crate::api::ApiOptions;

/// ConfigMaps get a `checked` label; a `data.forbidden` key is refused. Every request
/// seen is recorded as (operation, dry run).
#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<(Operation, bool)>>);

impl Hook for Recorder {
    fn handles(&self, group: &str, kind: &str) -> bool {
        group.is_empty() && kind == "ConfigMap"
    }
    fn mutate<'a>(&'a self, request: Request<'a>, object: &'a mut Value) -> HookFuture<'a> {
        Box::pin(async move {
            if let Ok(mut seen) = self.0.lock() {
                seen.push((request.operation, request.dry_run));
            }
            object["metadata"]["labels"]["checked"] = json!("yes");
            Ok(())
        })
    }
    fn validate<'a>(&'a self, _: Request<'a>, object: &'a Value) -> HookFuture<'a> {
        Box::pin(async move {
            match object.pointer("/data/forbidden") {
                Some(v) => Err(Rejection::Invalid(vec![FieldError {
                    field: "data.forbidden".into(),
                    value: v.clone(),
                    message: "this key is not allowed".into(),
                }])),
                None => Ok(()),
            }
        })
    }
}

struct Fixture {
    inner: test_fixture::Fixture,
    hook: Arc<Recorder>,
}

async fn fixture() -> Fixture {
    let hook = Arc::new(Recorder::default());
    let options = ApiOptions {
        admission: Hooks(vec![hook.clone()]),
        ..ApiOptions::default()
    };
    Fixture {
        inner: test_fixture::Fixture::new(options).await,
        hook,
    }
}

const CMS: &str = "/api/v1/namespaces/default/configmaps";

impl Fixture {
    async fn call(&self, method: Method, uri: &str, body: Value, ct: &str) -> (u16, Value) {
        self.inner.call(method, uri, body, ct).await
    }

    async fn get(&self, name: &str) -> (u16, Value) {
        self.call(Method::GET, &format!("{CMS}/{name}"), Value::Null, "")
            .await
    }

    fn seen(&self) -> Vec<(Operation, bool)> {
        self.hook.0.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

fn cm(name: &str, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data})
}

#[tokio::test]
async fn create_and_update_are_mutated_and_validated() {
    let f = fixture().await;
    let (code, created) = f
        .call(
            Method::POST,
            CMS,
            cm("a", json!({"k": "v"})),
            "application/json",
        )
        .await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["metadata"]["labels"]["checked"], "yes");

    let (code, status) = f
        .call(
            Method::PATCH,
            &format!("{CMS}/a"),
            json!({"data": {"forbidden": "x"}}),
            "application/merge-patch+json",
        )
        .await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(
        status["message"],
        "ConfigMap \"a\" is invalid: data.forbidden: Invalid value: \"x\": this key is not allowed"
    );
    assert_eq!(status["details"]["causes"][0]["field"], "data.forbidden");
    let (_, stored) = f.get("a").await;
    assert!(stored["data"].get("forbidden").is_none(), "nothing stored");

    let mut replaced = cm("a", json!({"k": "w"}));
    replaced["metadata"]["labels"] = json!({});
    let (code, updated) = f
        .call(
            Method::PUT,
            &format!("{CMS}/a"),
            replaced,
            "application/json",
        )
        .await;
    assert_eq!(code, 200, "{updated}");
    assert_eq!(updated["metadata"]["labels"]["checked"], "yes");
    assert_eq!(updated["data"]["k"], "w");

    let ops: Vec<Operation> = f.seen().into_iter().map(|(op, _)| op).collect();
    assert_eq!(
        ops,
        [Operation::Create, Operation::Update, Operation::Update]
    );
}

#[tokio::test]
async fn refused_creates_store_nothing_and_dry_runs_are_admitted() {
    let f = fixture().await;
    let (code, status) = f
        .call(
            Method::POST,
            CMS,
            cm("bad", json!({"forbidden": "1"})),
            "application/json",
        )
        .await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(f.get("bad").await.0, 404);

    let (code, status) = f
        .call(
            Method::POST,
            &format!("{CMS}?dryRun=All"),
            cm("dry", json!({"forbidden": "1"})),
            "application/json",
        )
        .await;
    assert_eq!(code, 422, "a dry run is refused like a real one: {status}");
    let (code, dry) = f
        .call(
            Method::POST,
            &format!("{CMS}?dryRun=All"),
            cm("dry", json!({})),
            "application/json",
        )
        .await;
    assert_eq!(code, 201, "{dry}");
    assert_eq!(dry["metadata"]["labels"]["checked"], "yes");
    assert_eq!(f.get("dry").await.0, 404, "a dry run stores nothing");
    assert!(f.seen().iter().any(|(_, dry)| *dry), "the hook was told");
}

#[tokio::test]
async fn server_side_apply_is_admitted_and_deletes_are_not() {
    let f = fixture().await;
    let (code, applied) = f
        .call(
            Method::PATCH,
            &format!("{CMS}/applied?fieldManager=test"),
            cm("applied", json!({"k": "v"})),
            "application/apply-patch+yaml",
        )
        .await;
    assert_eq!(code, 201, "{applied}");
    assert_eq!(applied["metadata"]["labels"]["checked"], "yes");
    let before = f.seen().len();
    let (code, _) = f
        .call(Method::DELETE, &format!("{CMS}/applied"), Value::Null, "")
        .await;
    assert_eq!(code, 200);
    assert_eq!(f.seen().len(), before, "deletes are not admitted");
}

//! A real store and [`Api`] for handler tests, called as the HTTP server calls it.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};
use serde_json::{json, Value};

use crate::api::{Api, ApiOptions, Call, Reply};
use crate::request::Query;
use crate::store::{Store, StoreConfig};

pub(super) struct Fixture {
    pub api: Arc<Api>,
    _dir: tempfile::TempDir,
}

pub(super) const JSON: &str = "application/json";
pub(super) const MERGE: &str = "application/merge-patch+json";
pub(super) const APPLY: &str = "application/apply-patch+yaml";

impl Fixture {
    /// A bootstrapped API on a fresh store.
    pub async fn new(options: ApiOptions) -> Fixture {
        Fixture::with_store(StoreConfig::default(), options).await
    }

    /// A bootstrapped API on a fresh store configured so.
    pub async fn with_store(config: StoreConfig, options: ApiOptions) -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), config).expect("store");
        let api = Api::new(store, options);
        crate::bootstrap(&api).await.expect("bootstrap");
        Fixture { api, _dir: dir }
    }

    /// One request: (status code, body).
    pub async fn call(&self, method: Method, uri: &str, body: Value, ct: &str) -> (u16, Value) {
        let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
        let mut headers = HeaderMap::new();
        if !ct.is_empty() {
            headers.insert(
                "content-type",
                HeaderValue::from_str(ct).expect("content type"),
            );
        }
        let call = Call {
            method,
            path: path.to_string(),
            query: Query::parse(Some(query)),
            headers,
            body: if body.is_null() {
                Bytes::new()
            } else {
                Bytes::from(body.to_string())
            },
        };
        match self.api.handle(call).await {
            Reply::Json { code, body, .. } => (code, body),
            Reply::RawJson(b) => (200, serde_json::from_slice(&b).expect("json")),
            Reply::Text(code, t) => (code, json!(t)),
            Reply::Stream(_) | Reply::Proxied { .. } => panic!("unexpected stream"),
        }
    }
}

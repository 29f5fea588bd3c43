//! The watch-fed caches controllers read instead of the API, as upstream's informers and
//! listers: a kube-runtime reflector over every object of a kind, whose stream of changed
//! objects also wakes the controller (through `watches_stream`), and the wait for a
//! cache's first list.
//!
//! Owns only building those and waiting on them; what a controller reads from its caches
//! and how it maps a changed object to what it wakes stay in its own module.

use std::future::Future;

use futures::Stream;
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use tokio_util::sync::CancellationToken;

/// A reflector over every `K`: the store reconciles read and the stream of changed
/// objects that wakes them.
pub fn reflected<K>(
    client: &kube::Client,
) -> (
    Store<K>,
    impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store::<K>();
    let stream = reflector::reflector(
        writer,
        watcher(Api::<K>::all(client.clone()), watcher::Config::default()).default_backoff(),
    )
    .touched_objects();
    (store, stream)
}

/// Whether the caches a pass reads have had their first list: `first_lists` resolves to
/// `true` once they all have. `false` when a watch ended, or when `shutdown` comes first —
/// a graceful shutdown waits for running passes, and keeps the watches (and so the
/// caches' writers) alive meanwhile: a pass waiting on a cache whose first list never
/// came would hold the process open for good.
pub async fn ready(shutdown: &CancellationToken, first_lists: impl Future<Output = bool>) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => false,
        ok = first_lists => ok,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_shutdown_ends_the_wait_for_a_cache_that_never_fills() {
        let (store, _writer) = reflector::store::<k8s_openapi::api::core::v1::Pod>();
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        assert!(!ready(&shutdown, async { store.wait_until_ready().await.is_ok() }).await);
    }

    #[tokio::test]
    async fn a_filled_cache_is_ready() {
        let (store, mut writer) = reflector::store::<k8s_openapi::api::core::v1::Pod>();
        writer.apply_watcher_event(&watcher::Event::InitDone);
        let shutdown = CancellationToken::new();
        assert!(ready(&shutdown, async { store.wait_until_ready().await.is_ok() }).await);
    }
}

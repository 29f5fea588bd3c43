//! WASI 0.3 HTTP handlers (`wasi:http/handler@0.3.x`, what spin-sdk 7 exports): instance
//! reuse and concurrent requests per instance.
//!
//! This module owns the lifecycle of WASI 0.3 instances; it does not route, add `spin-*`
//! headers or map failures to responses (that is [`crate::http_trigger`]'s job, shared
//! with WASI 0.2 handlers). A 0.3 handler is an async export: one instance can serve
//! many requests, several at a time, as Spin 3.6+ and `wasmtime serve` do. The worker
//! pool is wasmtime-wasi-http's `handler::ProxyHandler` (the one behind `wasmtime
//! serve`), so it is not rewritten here; this module supplies what it asks of an
//! embedder:
//!
//! - [`Pool::instantiate`]: a store built from the component's
//!   [`InstanceConfig`](crate::app::InstanceConfig) (memory cap, WASI context, host
//!   interfaces), epoch-yielding so a busy guest never starves the executor;
//! - how many requests an instance takes: [`Reuse`] (128 requests per instance and
//!   dropped after 1 s idle, as `wasmtime serve`; but one request at a time, where
//!   `wasmtime serve` allows 16, so a looping guest delays no other request);
//! - the request deadline: a request that has no response after `request_timeout`
//!   fails (the trigger answers 500), and an instance whose newest request is older
//!   than the deadline is dropped, which stops a guest stuck in a loop.
//!
//! A trap drops the instance; requests it was serving fail, later ones get a new one.
//!
//! Each serving thread ([`crate::workers`]) has a pool of its own, so a request, its
//! instance and the instance's worker task stay on the thread its connection is served
//! on; callers outside the serving threads share one more pool.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use wasmtime::component::GuestTaskId;
use wasmtime::{Engine, Store, StoreContextMut};
use wasmtime_wasi_http::handler::{
    HandlerState, Instance, Proxy, ProxyHandler, ShouldAccept, WorkerExpiration, WorkerState,
    WorkerStatus,
};
use wasmtime_wasi_http::p3::bindings::ServicePre;
use wasmtime_wasi_http::WasiBody;

use crate::app::InstanceConfig;
use crate::state::InstanceState;

/// How instances of a WASI 0.3 handler are reused (`spinlet run`'s
/// `--max-instance-reuse-count`, `--max-instance-concurrent-reuse-count` and
/// `--idle-instance-timeout`, Spin's flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reuse {
    /// Requests one instance serves before it is dropped.
    pub max_requests: usize,
    /// Requests one instance serves at the same time.
    pub max_concurrent: usize,
    /// How long an idle instance is kept for the next request.
    pub idle_timeout: Duration,
}

impl Default for Reuse {
    fn default() -> Self {
        Self {
            max_requests: 128,
            // One request at a time per instance: a guest busy in a loop holds its
            // instance, and a second request sent to it would wait for the deadline
            // too. Concurrent requests get instances of their own (cheap with the
            // pooling allocator), so one bad request never delays another.
            max_concurrent: 1,
            idle_timeout: Duration::from_secs(1),
        }
    }
}

/// Serves requests with reused instances of one WASI 0.3 component.
pub struct P3Handler {
    /// How a pool instantiates; each pool gets a copy.
    pool: Pool,
    /// One pool per serving thread, created on its first request
    /// ([`crate::workers::current`] modulo the length).
    per_thread: Box<[OnceLock<ProxyHandler<Pool>>]>,
    /// The pool of callers outside the serving threads.
    shared: OnceLock<ProxyHandler<Pool>>,
}

impl P3Handler {
    /// A handler instantiating `pre` with stores built from `config`, reusing instances
    /// as `reuse` says.
    pub fn new(
        pre: ServicePre<InstanceState>,
        engine: Engine,
        config: Arc<InstanceConfig>,
        request_timeout: Option<Duration>,
        reuse: Reuse,
    ) -> Self {
        Self {
            pool: Pool {
                pre,
                engine,
                config,
                request_timeout: request_timeout.unwrap_or(Duration::MAX),
                reuse,
            },
            per_thread: (0..crate::workers::per_core_count())
                .map(|_| OnceLock::new())
                .collect(),
            shared: OnceLock::new(),
        }
    }

    /// Handles one request (its URI absolute, its headers final).
    pub async fn handle(
        &self,
        request: http::Request<WasiBody>,
    ) -> wasmtime::Result<http::Response<WasiBody>> {
        let slot = match crate::workers::current() {
            Some(i) => &self.per_thread[i % self.per_thread.len()],
            None => &self.shared,
        };
        let handler = slot.get_or_init(|| ProxyHandler::new(self.pool.clone()));
        handler.handle((), request).await
    }
}

/// The embedder's side of the worker pool.
#[derive(Clone)]
struct Pool {
    pre: ServicePre<InstanceState>,
    engine: Engine,
    config: Arc<InstanceConfig>,
    request_timeout: Duration,
    reuse: Reuse,
}

impl HandlerState for Pool {
    type StoreData = InstanceState;
    type WorkerExpiration = Expiration;
    type WorkerState = Worker;

    async fn instantiate(&self) -> wasmtime::Result<Instance<InstanceState, Expiration, Worker>> {
        let mut store = Store::new(&self.engine, self.config.new_state()?);
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(1);
        store.epoch_deadline_async_yield_and_update(1);
        let service = self.pre.instantiate_async(&mut store).await?;
        Ok(Instance {
            store,
            proxy: Proxy::P3(service),
            // The request is converted with Spin's incoming header filter (`Host`
            // passes); the guest's own requests use `WasiHttpView::http`.
            view: InstanceState::incoming_http,
            expiration: Expiration {
                idle_timeout: self.reuse.idle_timeout,
                request_timeout: self.request_timeout,
                sleep: Box::pin(tokio::time::sleep(Duration::MAX)),
            },
            state: Worker {
                reuse: self.reuse,
                request_timeout: self.request_timeout,
            },
        })
    }
}

/// Per-instance limits on accepting requests.
struct Worker {
    reuse: Reuse,
    request_timeout: Duration,
}

impl WorkerState for Worker {
    type StoreData = InstanceState;
    type RequestData = ();

    fn should_accept_request(&self, concurrent: usize, total: usize) -> ShouldAccept {
        if total >= self.reuse.max_requests {
            ShouldAccept::Never
        } else if concurrent >= self.reuse.max_concurrent {
            ShouldAccept::No
        } else {
            ShouldAccept::Yes
        }
    }

    fn on_request_start(
        &self,
        _store: StoreContextMut<'_, InstanceState>,
        _data: (),
        _task: GuestTaskId,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + Sync>> {
        Box::pin(tokio::time::sleep(self.request_timeout))
    }

    fn drop(&self, store: Store<InstanceState>, result: wasmtime::Result<()>) {
        if let Err(error) = result {
            tracing::debug!(error = %format!("{error:#}"), "WASI 0.3 instance ended with an error");
        }
        drop(store);
    }
}

/// When an instance is dropped: idle too long, or its newest request past the deadline.
struct Expiration {
    idle_timeout: Duration,
    request_timeout: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl WorkerExpiration for Expiration {
    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        status: WorkerStatus,
        start: Instant,
    ) -> Poll<()> {
        let timeout = match status {
            WorkerStatus::Idle => self.idle_timeout,
            WorkerStatus::Requests | WorkerStatus::PostReturn => self.request_timeout,
        };
        let Some(deadline) = start.checked_add(timeout) else {
            return Poll::Pending;
        };
        let deadline = tokio::time::Instant::from_std(deadline);
        if self.sleep.deadline() != deadline {
            self.sleep.as_mut().reset(deadline);
        }
        self.sleep.as_mut().poll(cx)
    }
}

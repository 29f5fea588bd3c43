//! The Spin runtime: loads Spin apps and serves them in wasmtime as Spin does.
//!
//! `spinlet run` is built on this crate; the node agent will be too. The pieces, one
//! module per concept:
//!
//! - [`manifest`] and [`manifest_v1`]: `spin.toml` (v2, and v1 converted) schema and
//!   validation;
//! - [`runtime_config`]: the runtime config file;
//! - [`locked_app`] and [`oci`]: the locked-app JSON and registry push/pull (the HTTP
//!   client and auth in `oci::client`, the deduplicating pull cache in `oci::cache`);
//! - [`files`]: component files as data layers and inline content, and back;
//! - [`filled_stream`]: the already-filled streams the async query functions answer with;
//! - [`variables`]: providers, templates and the variables interfaces;
//! - [`key_value`]: key-value stores in sled or Redis, `fermyon:spin/key-value` and
//!   `wasi:keyvalue` (draft2);
//! - [`sqlite`]: SQLite databases, `fermyon:spin/sqlite` and `spin:sqlite`;
//! - [`outbound_rules`]: the `allowed_outbound_hosts` rule grammar and matcher every
//!   outbound interface shares;
//! - [`outbound`]: outgoing HTTP (`wasi:http`) under those rules, sent by
//!   [`http_client`];
//! - [`outbound_sockets`]: `wasi:sockets` (TCP, UDP, name lookup; 0.2 and 0.3) under
//!   those rules;
//! - [`outbound_redis`]: outbound Redis, `fermyon:spin/redis`;
//! - [`outbound_mqtt`]: outbound MQTT, `fermyon:spin/mqtt`;
//! - [`outbound_pg`]: outbound PostgreSQL, `fermyon:spin/postgres` and `spin:postgres`;
//! - [`outbound_mysql`]: outbound MySQL, `fermyon:spin/mysql` and `spin:mysql`;
//! - [`tls`]: the TLS client configuration of outbound HTTP, Redis and MQTT;
//! - [`unavailable`]: link-time stubs for interfaces not implemented yet;
//! - [`componentize`]: WASI preview1 core modules → components;
//! - [`engine`] and [`cache`]: the wasmtime engine and the compiled-code cache;
//! - [`tiers`]: tiered compilation, Winch's code served while Cranelift's compiles;
//! - [`state`]: the per-instance store data;
//! - [`app`]: the load sequence, from manifest to pre-instantiated components;
//! - [`routing`] and [`headers`]: Spin's route matching and `spin-*` headers;
//! - [`http_trigger`]: the HTTP server and per-request execution;
//! - [`response_body`]: response bodies read ahead so a response leaves in one write;
//! - [`http_p3`]: WASI 0.3 handlers, instances reused across concurrent requests;
//! - [`workers`]: the serving threads, one single-threaded runtime per core;
//! - [`code_pages`] and [`idle`]: the binary's code let go of once start-up is over and
//!   each time requests stop (and [`heap`]: freed heap given back after a compile);
//! - [`chaining`]: service chaining (`*.spin.internal`, `http://self`) in-process;
//! - [`serve`]: the one serve path (path or OCI reference → pull → load → serve) that
//!   `spinlet run` and the node agent's pod sandboxes share.
//!
//! # Lifecycle
//!
//! 1. [`app::load`] once per app: parse, resolve variables, open stores, build the
//!    engine, compile (or load from cache), link and pre-instantiate each component.
//! 2. [`http_trigger::HttpServer::serve_on`] accepts connections and hands each to a
//!    serving thread ([`workers::Workers`]); [`http_trigger::HttpServer::serve`] serves
//!    them on the caller's runtime instead. A WASI 0.2 request gets a fresh instance from
//!    the component's `ProxyPre`; a WASI 0.3 request goes to its serving thread's pool of
//!    reused instances.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! let options = spin_runtime::app::AppOptions {
//!     app: "spin.toml".into(),
//!     ..Default::default()
//! };
//! let app = Arc::new(spin_runtime::app::load(&options)?);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! spin_runtime::http_trigger::HttpServer::new(app)
//!     .serve(listener, std::future::pending())
//!     .await?;
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

pub mod app;
pub mod cache;
pub mod chaining;
pub mod code_pages;
pub mod componentize;
pub mod engine;
pub mod files;
pub mod filled_stream;
pub mod headers;
pub mod heap;
pub mod http_client;
pub mod http_p3;
pub mod http_trigger;
pub mod idle;
pub mod key_value;
pub mod locked_app;
pub mod manifest;
pub mod manifest_v1;
pub mod oci;
pub mod outbound;
pub mod outbound_mqtt;
pub mod outbound_mysql;
pub mod outbound_pg;
pub mod outbound_redis;
pub mod outbound_rules;
pub mod outbound_sockets;
pub mod response_body;
pub mod routing;
pub mod runtime_config;
pub mod serve;
pub mod sqlite;
pub mod state;
pub mod tiers;
pub mod tls;
pub mod unavailable;
pub mod variables;
pub mod workers;

//! Loading an app: manifest → resolved variables → compiled, linked, pre-instantiated
//! components → router.
//!
//! This module owns the load sequence and everything done once per app, in the order
//! that lets configuration errors surface before any compilation:
//!
//! 1. parse and validate `spin.toml` ([`crate::manifest`]) and the runtime config
//!    ([`crate::runtime_config`]);
//! 2. resolve application variables (a missing required one stops here), render each
//!    component's variables and `allowed_outbound_hosts` ([`crate::variables`]) and
//!    parse the rules ([`crate::outbound_rules`]: a malformed one stops here);
//! 3. open the key-value stores and sqlite databases under the state directory that
//!    some served component is granted, and no other ([`crate::key_value`],
//!    [`crate::sqlite`]): an app that uses neither starts without sled or SQLite;
//! 4. build the engine with the compile cache ([`crate::engine`], [`crate::cache`]);
//! 5. componentize core modules ([`crate::componentize`]), compile each distinct Wasm
//!    file once (on a compile-cache miss with Winch first, Cranelift in the background:
//!    [`crate::tiers`]), link it (real host interfaces, then
//!    "unavailable" stubs for the rest, [`crate::unavailable`]) and pre-instantiate it
//!    as a `wasi:http/incoming-handler` proxy;
//! 6. build the router ([`crate::routing`]).
//!
//! Per request, [`AppComponent::new_state`] builds a fresh [`InstanceState`].

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use wasmtime::component::{Component, Linker};
use wasmtime::StoreLimitsBuilder;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};
use wasmtime_wasi_http::handler::ProxyPre as AnyProxyPre;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p3::bindings::ServicePre;
use wasmtime_wasi_http::WasiHttpCtx;

use crate::engine::{EngineOptions, RuntimeEngine};
use crate::key_value::{KeyValueCtx, KeyValueStores};
use crate::manifest::{Manifest, RouteConfig, Source, StaticResponse, TriggerTarget};
use crate::outbound::{AllowedHosts, LocalHandlerSlot, OutboundHttp};
use crate::outbound_mqtt::MqttCtx;
use crate::outbound_mysql::MysqlCtx;
use crate::outbound_pg::PgCtx;
use crate::outbound_redis::RedisCtx;
use crate::routing::Router;
use crate::runtime_config::RuntimeConfig;
use crate::sqlite::{SqliteCtx, SqliteDatabases};
use crate::state::InstanceState;
use crate::tiers::{Tier, Tiering};
use crate::variables::{self, Providers, VariablesCtx};

/// Errors from loading an app.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The app argument is neither a manifest nor a directory containing `spin.toml`.
    #[error("no Spin app at {0}: expected a spin.toml file or a directory containing one")]
    NotFound(PathBuf),
    /// The manifest is invalid.
    #[error(transparent)]
    Manifest(#[from] crate::manifest::Error),
    /// Variables could not be resolved.
    #[error(transparent)]
    Variables(#[from] variables::Error),
    /// A component's allowed hosts are invalid.
    #[error("component `{component}`: {source}")]
    Outbound {
        /// Component id.
        component: String,
        /// The parse error.
        #[source]
        source: crate::outbound::Error,
    },
    /// The state directory could not be created.
    #[error("cannot create state directory {path}: {source}")]
    StateDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The runtime config file is invalid.
    #[error(transparent)]
    RuntimeConfig(#[from] crate::runtime_config::Error),
    /// The key-value stores could not be opened or a grant is unconfigured.
    #[error(transparent)]
    KeyValue(#[from] crate::key_value::Error),
    /// A sqlite database could not be opened or a grant is unconfigured.
    #[error(transparent)]
    Sqlite(#[from] crate::sqlite::Error),
    /// The engine could not be built.
    #[error(transparent)]
    Engine(#[from] crate::engine::Error),
    /// A component's source is not supported.
    #[error("component `{component}`: {message}")]
    Unsupported {
        /// Component id.
        component: String,
        /// What is unsupported.
        message: String,
    },
    /// A component's Wasm file could not be read.
    #[error("component `{component}`: cannot read {path}: {source}")]
    ReadSource {
        /// Component id.
        component: String,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A component failed to compile (or its compiled code to be stored or loaded).
    #[error("component `{component}`: cannot compile {path}: {source}")]
    Compile {
        /// Component id.
        component: String,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: crate::cache::Error,
    },
    /// A component failed to link or is not an HTTP component.
    #[error("component `{component}`: {source:#}")]
    Link {
        /// Component id.
        component: String,
        /// The wasmtime error.
        #[source]
        source: wasmtime::Error,
    },
    /// A route is invalid.
    #[error(transparent)]
    Route(#[from] crate::routing::Error),
    /// A component asked for by selective deployment is not in the app.
    #[error("specified component \"{0}\" not found in application")]
    UnknownComponent(String),
}

/// Result type of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What loading needs besides the manifest.
#[derive(Debug, Clone, Default)]
pub struct AppOptions {
    /// `spin.toml` or the directory containing it.
    pub app: PathBuf,
    /// `--variable NAME=VALUE` arguments.
    pub variables: Vec<String>,
    /// `--env NAME=VALUE` pairs, passed to every component's WASI environment.
    pub env: Vec<(String, String)>,
    /// State directory (default `<app dir>/.spin`).
    pub state_dir: Option<PathBuf>,
    /// Cache root; compiled code goes in its `compiled/` (default: see
    /// [`crate::cache::default_root`]).
    pub cache_dir: Option<PathBuf>,
    /// Per-instance linear memory cap in bytes (overrides the runtime config's).
    pub max_instance_memory: Option<u64>,
    /// The runtime config file (`--runtime-config-file`).
    pub runtime_config: Option<PathBuf>,
    /// Per-request deadline (none by default, as in `spin up`).
    pub request_timeout: Option<Duration>,
    /// How instances of WASI 0.3 handlers are reused.
    pub reuse: crate::http_p3::Reuse,
    /// Engine settings.
    pub engine: EngineOptions,
    /// Host directories preopened in every component besides its `files` (a pod's
    /// volumes).
    pub mounts: Vec<Mount>,
    /// Selective deployment: only these components run, with their triggers (`spin up
    /// --component-id`, containerd-shim-spin's `SPIN_COMPONENTS_TO_RETAIN`); `None` runs
    /// them all.
    pub components: Option<Vec<String>>,
}

/// A host directory preopened in every component.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Mount {
    /// The directory on the host.
    pub host: PathBuf,
    /// Where the guest sees it.
    pub guest: String,
    /// Whether the guest may only read.
    pub read_only: bool,
}

/// What a route leads to.
pub enum Target {
    /// A component.
    Component(Arc<AppComponent>),
    /// A static response.
    Static(StaticResponse),
}

/// One loaded component: pre-instantiated, with its per-instance configuration.
pub struct AppComponent {
    /// Component id.
    pub id: String,
    /// How requests reach the component's handler, and from which compiler's code; the
    /// fast tier's is replaced when the optimised code is ready ([`crate::tiers`]).
    handler: RwLock<(Arc<ComponentHandler>, Tier)>,
    /// What each instance's store is built from.
    pub instance: Arc<InstanceConfig>,
    request_timeout: Option<Duration>,
    reuse: crate::http_p3::Reuse,
}

impl AppComponent {
    /// A component serving requests through `pre` (code from `tier`); WASI 0.3 handlers
    /// get an instance pool ([`crate::http_p3`]) reusing instances as `reuse` says, whose
    /// requests expire after `request_timeout`.
    pub fn new(
        id: String,
        pre: AnyProxyPre<InstanceState>,
        tier: Tier,
        request_timeout: Option<Duration>,
        reuse: crate::http_p3::Reuse,
        instance: InstanceConfig,
    ) -> Self {
        let instance = Arc::new(instance);
        let handler = Self::handler_for(pre, &instance, request_timeout, reuse);
        Self {
            id,
            handler: RwLock::new((Arc::new(handler), tier)),
            instance,
            request_timeout,
            reuse,
        }
    }

    fn handler_for(
        pre: AnyProxyPre<InstanceState>,
        instance: &Arc<InstanceConfig>,
        request_timeout: Option<Duration>,
        reuse: crate::http_p3::Reuse,
    ) -> ComponentHandler {
        match pre {
            AnyProxyPre::P2(pre) => ComponentHandler::P2(pre),
            AnyProxyPre::P3(pre) => {
                let engine = pre.engine().clone();
                ComponentHandler::P3(crate::http_p3::P3Handler::new(
                    pre,
                    engine,
                    instance.clone(),
                    request_timeout,
                    reuse,
                ))
            }
        }
    }

    /// The handler new requests go to (requests in flight keep the one they started
    /// with).
    pub fn handler(&self) -> Arc<ComponentHandler> {
        self.handler
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .0
            .clone()
    }

    /// Which compiler's code new requests run.
    pub fn tier(&self) -> Tier {
        self.handler
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .1
    }

    /// Sends new requests to `pre` (code from `tier`) from now on.
    pub fn replace(&self, pre: AnyProxyPre<InstanceState>, tier: Tier) {
        let handler = Self::handler_for(pre, &self.instance, self.request_timeout, self.reuse);
        *self
            .handler
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = (Arc::new(handler), tier);
    }

    /// Builds fresh store data for one instance.
    pub fn new_state(&self) -> wasmtime::Result<InstanceState> {
        self.instance.new_state()
    }
}

/// A component's HTTP handler, by the `wasi:http` version it exports; its engine is the
/// one its code was compiled by.
pub enum ComponentHandler {
    /// `wasi:http/incoming-handler@0.2.x`: one fresh instance per request.
    P2(ProxyPre<InstanceState>),
    /// `wasi:http/handler@0.3.x`: instances reused, requests served concurrently.
    P3(crate::http_p3::P3Handler),
}

/// The per-instance configuration of one component: everything a new
/// [`InstanceState`] is built from.
pub struct InstanceConfig {
    env: Vec<(String, String)>,
    files: Vec<(PathBuf, String)>,
    mounts: Vec<Mount>,
    variables: Arc<HashMap<String, String>>,
    key_value: KeyValueCtx,
    sqlite: SqliteCtx,
    allowed_hosts: Arc<AllowedHosts>,
    local: LocalHandlerSlot,
    max_instance_memory: Option<u64>,
}

impl InstanceConfig {
    /// Builds fresh store data for one instance.
    pub fn new_state(&self) -> wasmtime::Result<InstanceState> {
        let mut wasi = WasiCtxBuilder::new();
        wasi.envs(&self.env).inherit_stdout().inherit_stderr();
        crate::outbound_sockets::configure(&mut wasi, &self.allowed_hosts);
        for (host, guest) in &self.files {
            wasi.preopened_dir(host, guest, FsPerms::ReadOnly)?;
        }
        for m in &self.mounts {
            let perms = if m.read_only {
                FsPerms::ReadOnly
            } else {
                FsPerms::ReadWrite
            };
            wasi.preopened_dir(&m.host, &m.guest, perms)?;
        }
        let mut limits = StoreLimitsBuilder::new();
        if let Some(max) = self.max_instance_memory {
            limits = limits.memory_size(usize::try_from(max).unwrap_or(usize::MAX));
        }
        Ok(InstanceState {
            table: Default::default(),
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            hooks: OutboundHttp::new(self.allowed_hosts.clone(), self.local.clone()),
            incoming: crate::headers::IncomingHeaders,
            limits: limits.build(),
            variables: VariablesCtx::new(self.variables.clone()),
            key_value: self.key_value.clone(),
            sqlite: self.sqlite.clone(),
            redis: RedisCtx::new(self.allowed_hosts.clone()),
            mqtt: MqttCtx::new(self.allowed_hosts.clone()),
            pg: PgCtx::new(self.allowed_hosts.clone()),
            mysql: MysqlCtx::new(self.allowed_hosts.clone()),
            activity: crate::engine::Activity::begin(),
        })
    }
}

/// Counters from loading, for logs and tests.
#[derive(Debug, Clone, Copy)]
pub struct LoadStats {
    /// Distinct Wasm files loaded.
    pub wasm_files: usize,
    /// Served from the compile cache.
    pub cache_hits: usize,
    /// Compiled with Cranelift (and stored in the cache) before serving.
    pub compiled: usize,
    /// Compiled with the fast tier, served from it until Cranelift's code replaces it
    /// ([`crate::tiers`]).
    pub fast_tier: usize,
    /// Of those, mapped from Winch's code an earlier start stored (it was stopped before
    /// its background compile stored Cranelift's).
    pub fast_tier_cached: usize,
    /// Time spent loading.
    pub elapsed: Duration,
}

/// A loaded app, ready to serve.
pub struct App {
    /// `application.name`.
    pub name: String,
    /// `application.version`.
    pub version: Option<String>,
    /// Routes to targets.
    pub router: Router<Target>,
    /// Every loaded component by id, private ones included (service chaining).
    pub components: HashMap<String, Arc<AppComponent>>,
    /// Where the components' chained requests go; the HTTP trigger registers itself.
    pub local: LocalHandlerSlot,
    /// The engine (keeps the epoch ticker alive).
    pub engine: RuntimeEngine,
    /// Key-value stores (flushed at shutdown).
    pub key_value: Arc<KeyValueStores>,
    /// Per-request deadline.
    pub request_timeout: Option<Duration>,
    /// Load counters.
    pub stats: LoadStats,
    /// The manifest digest when the app came from a registry.
    pub oci_image_digest: Option<String>,
}

/// The linker every component starts from: WASI 0.2 and 0.3, WASI-HTTP and the Spin
/// interfaces spinlet implements.
pub fn base_linker(engine: &wasmtime::Engine) -> wasmtime::Result<Linker<InstanceState>> {
    let mut base: Linker<InstanceState> = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut base)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut base)?;
    wasmtime_wasi::p3::add_to_linker(&mut base)?;
    wasmtime_wasi_http::p3::add_to_linker(&mut base)?;
    crate::outbound_sockets::add_to_linker(&mut base)?;
    variables::add_to_linker(&mut base)?;
    crate::key_value::add_to_linker(&mut base)?;
    crate::sqlite::add_to_linker(&mut base)?;
    crate::outbound_redis::add_to_linker(&mut base)?;
    crate::outbound_mqtt::add_to_linker(&mut base)?;
    crate::outbound_pg::add_to_linker(&mut base)?;
    crate::outbound_mysql::add_to_linker(&mut base)?;
    Ok(base)
}

/// Links one component: the base linker plus "unavailable" definitions for every other
/// import, pre-instantiated as a `wasi:http/handler@0.3.x` service when it exports one,
/// else as a `wasi:http/incoming-handler@0.2.x` proxy.
pub fn link_http_component(
    engine: &wasmtime::Engine,
    base: &Linker<InstanceState>,
    component: &Component,
) -> wasmtime::Result<AnyProxyPre<InstanceState>> {
    let mut linker = base.clone();
    let stubbed = crate::unavailable::define_unavailable(engine, &mut linker, component)?;
    if !stubbed.is_empty() {
        tracing::debug!(?stubbed, "imports linked as unavailable");
    }
    let pre = linker.instantiate_pre(component)?;
    if let Ok(service) = ServicePre::new(pre.clone()) {
        return Ok(AnyProxyPre::P3(service));
    }
    ProxyPre::new(pre).map(AnyProxyPre::P2).map_err(|e| {
        e.context(
            "not an HTTP component: it must export wasi:http/incoming-handler@0.2.x or wasi:http/handler@0.3.x",
        )
    })
}

/// Finds the manifest: `path` itself if it is a file, else `path/spin.toml`.
pub fn manifest_path(path: &Path) -> Result<PathBuf> {
    if path.is_file() {
        return Ok(path.to_owned());
    }
    let candidate = path.join("spin.toml");
    if candidate.is_file() {
        Ok(candidate)
    } else {
        Err(Error::NotFound(path.to_owned()))
    }
}

/// Loads the app described by `options`.
pub fn load(options: &AppOptions) -> Result<App> {
    let started = Instant::now();
    let manifest_path = manifest_path(&options.app)?;
    let app_dir = manifest_path
        .parent()
        .map(Path::to_owned)
        .unwrap_or_else(|| PathBuf::from("."));
    let manifest = Manifest::from_file(&manifest_path)?;
    let default_state_dir = app_dir.join(".spin");
    load_manifest(
        manifest,
        &app_dir,
        Some(default_state_dir),
        options,
        started,
    )
}

/// Loads an already parsed manifest whose relative paths are relative to `app_dir`.
/// The state directory is `--state-dir`, else the runtime config's `state_dir`, else
/// `default_state_dir`; with none, the default key-value store is kept in memory (as
/// Spin does for apps from a registry).
pub fn load_manifest(
    manifest: Manifest,
    app_dir: &Path,
    default_state_dir: Option<PathBuf>,
    options: &AppOptions,
    started: Instant,
) -> Result<App> {
    let runtime_config = match &options.runtime_config {
        Some(path) => RuntimeConfig::from_file(path)?,
        None => RuntimeConfig::default(),
    };
    let state_dir = options
        .state_dir
        .clone()
        .or_else(|| runtime_config.state_dir.clone())
        .or(default_state_dir);
    let max_instance_memory = options
        .max_instance_memory
        .or(runtime_config.max_instance_memory);

    // Variables first: a missing required variable must stop the app before compiling.
    let mut providers = Providers::from_args(&options.variables)?;
    providers.runtime = runtime_config.variables_providers.clone();
    let app_values = variables::resolve_app_variables(&manifest.variables, &providers)?;

    let components = manifest.all_components();
    let mut routes = manifest.http_routes();
    if let Some(retain) = &options.components {
        if let Some(unknown) = retain
            .iter()
            .find(|id| !components.contains_key(id.as_str()))
        {
            return Err(Error::UnknownComponent(unknown.clone()));
        }
        // Triggers of other components go with them; static responses stay.
        routes.retain(|(_, target, _)| match target {
            TriggerTarget::Component(c) => retain.contains(c),
            TriggerTarget::Static(_) => true,
        });
    }
    let used: HashSet<&str> = routes
        .iter()
        .filter_map(|(_, t, _)| match t {
            TriggerTarget::Component(c) => Some(c.as_str()),
            TriggerTarget::Static(_) => None,
        })
        .collect();

    // Every served component's allowed_outbound_hosts, rendered and parsed before anything
    // is opened or compiled: a malformed rule stops the app here.
    let mut allowed_hosts: HashMap<&str, Arc<AllowedHosts>> = HashMap::new();
    for (id, component) in components
        .iter()
        .filter(|(id, _)| used.contains(id.as_str()))
    {
        let mut rendered = Vec::new();
        for rule in &component.allowed_outbound_hosts {
            rendered.push((rule.as_str(), variables::render(rule, &app_values)?));
        }
        let parsed = AllowedHosts::parse_rendered(rendered).map_err(|source| Error::Outbound {
            component: id.clone(),
            source,
        })?;
        allowed_hosts.insert(id.as_str(), Arc::new(parsed));
    }

    // Only the stores and databases some served component is granted are opened.
    let granted = |labels: fn(&crate::manifest::Component) -> &Vec<String>| -> HashSet<&str> {
        components
            .iter()
            .filter(|(id, _)| used.contains(id.as_str()))
            .flat_map(|(_, c)| labels(c).iter().map(String::as_str))
            .collect()
    };
    let granted_kv = granted(|c| &c.key_value_stores);
    if !granted_kv.is_empty() {
        if let Some(state_dir) = &state_dir {
            std::fs::create_dir_all(state_dir).map_err(|source| Error::StateDir {
                path: state_dir.clone(),
                source,
            })?;
        }
    }
    let key_value = Arc::new(KeyValueStores::open_granted(
        state_dir.as_deref(),
        &runtime_config.key_value_stores,
        &granted_kv,
    )?);
    let granted_sqlite = granted(|c| &c.sqlite_databases);
    let mut sqlite = SqliteDatabases::new(state_dir.as_deref());
    for (label, path) in &runtime_config.sqlite_databases {
        sqlite.add(label, path.clone());
    }
    sqlite.open_granted(&granted_sqlite)?;
    let sqlite = Arc::new(sqlite);
    let cache_fallback = state_dir
        .clone()
        .unwrap_or_else(std::env::temp_dir)
        .join("cache");
    let app_dir = app_dir.to_owned();

    let cache_dir = options
        .cache_dir
        .clone()
        .unwrap_or_else(|| crate::cache::default_root(&cache_fallback))
        .join(crate::cache::COMPILED_SUBDIR);
    let engine = RuntimeEngine::new(&options.engine, &cache_dir)?;

    let link = |component: &str| {
        let component = component.to_string();
        move |source| Error::Link { component, source }
    };
    let base = base_linker(&engine.engine).map_err(link("(host)"))?;

    let local = LocalHandlerSlot::default();
    // Copies of files for mounts that cannot be preopened directly (see crate::files).
    let files_copy_root = state_dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("spinlet-{}", std::process::id())));
    let mut compiled: HashMap<PathBuf, (Component, Tier)> = HashMap::new();
    let mut tiering = Tiering::new(&engine);
    let mut loaded: HashMap<String, Arc<AppComponent>> = HashMap::new();
    for (id, component) in &components {
        if !used.contains(id.as_str()) {
            continue;
        }
        let unsupported = |message: String| Error::Unsupported {
            component: id.clone(),
            message,
        };
        let source_path = match &component.source {
            Source::Local(p) => app_dir.join(p),
            Source::Remote { url, .. } => {
                return Err(unsupported(format!(
                    "source url {url}: remote sources are not supported yet"
                )))
            }
            Source::Registry { package, .. } => {
                return Err(unsupported(format!(
                    "source package {package}: registry sources are not supported yet"
                )))
            }
        };
        let wasm = match compiled.get(&source_path) {
            Some(c) => c.clone(),
            None => {
                let component_id = id.clone();
                let prepare = |bytes| {
                    let (bytes, adapted) = crate::componentize::componentize_if_needed(bytes)
                        .map_err(|e| e.to_string())?;
                    if adapted {
                        tracing::debug!(component = %component_id, "core module componentized with the preview1 reactor adapter");
                    }
                    Ok(bytes)
                };
                let c = tiering
                    .load(&source_path, prepare)
                    .map_err(|source| match source {
                        crate::cache::Error::Read { path, source } => Error::ReadSource {
                            component: id.clone(),
                            path,
                            source,
                        },
                        source => Error::Compile {
                            component: id.clone(),
                            path: source_path.clone(),
                            source,
                        },
                    })?;
                compiled.insert(source_path.clone(), c.clone());
                c
            }
        };
        let (wasm, tier) = wasm;

        let pre = match tier {
            Tier::Optimized => link_http_component(&engine.engine, &base, &wasm),
            Tier::Fast => tiering
                .fast_linker()
                .and_then(|fast| link_http_component(wasm.engine(), fast, &wasm)),
        }
        .map_err(link(id))?;

        let variables = variables::render_component_variables(&component.variables, &app_values)?;
        let allowed_hosts = allowed_hosts.remove(id.as_str()).unwrap_or_default();
        key_value.check_grants(id, &component.key_value_stores)?;
        sqlite.check_grants(id, &component.sqlite_databases)?;
        let mut env: Vec<(String, String)> = component
            .environment
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (k, v) in &options.env {
            env.retain(|(ek, _)| ek != k);
            env.push((k.clone(), v.clone()));
        }
        let copy_dir = files_copy_root.join("files").join(id);
        let files = crate::files::mounts(
            &app_dir,
            &component.files,
            &component.exclude_files,
            &copy_dir,
        )
        .map_err(|e| unsupported(e.to_string()))?;
        let served = Arc::new(AppComponent::new(
            id.clone(),
            pre,
            tier,
            options.request_timeout,
            options.reuse,
            InstanceConfig {
                env,
                files,
                mounts: options.mounts.clone(),
                variables: Arc::new(variables),
                key_value: KeyValueCtx::new(
                    key_value.clone(),
                    Arc::new(component.key_value_stores.iter().cloned().collect()),
                ),
                sqlite: SqliteCtx::new(
                    sqlite.clone(),
                    Arc::new(component.sqlite_databases.iter().cloned().collect()),
                ),
                allowed_hosts,
                local: local.clone(),
                max_instance_memory,
            },
        ));
        if tier == Tier::Fast {
            tiering.serves(&source_path, &served);
        }
        loaded.insert(id.clone(), served);
    }
    let fast_tier = tiering.fast_files();
    let fast_tier_cached = tiering.fast_hits();
    tiering.optimise_in_background(base);

    let mut entries = Vec::new();
    for (_trigger, target, route) in routes {
        let RouteConfig::Route(route) = route else {
            continue; // private: reachable only through service chaining
        };
        let target = match target {
            TriggerTarget::Component(id) => match loaded.get(&id) {
                Some(c) => Target::Component(c.clone()),
                None => continue,
            },
            TriggerTarget::Static(r) => Target::Static(r),
        };
        entries.push((route, target));
    }
    let (router, duplicates) = Router::build(entries)?;
    for route in duplicates {
        tracing::error!(%route, "duplicate route: the later trigger replaces the earlier one");
    }

    let stats = LoadStats {
        wasm_files: compiled.len(),
        cache_hits: engine.cache.hits(),
        compiled: engine.cache.misses(),
        fast_tier,
        fast_tier_cached,
        elapsed: started.elapsed(),
    };
    Ok(App {
        name: manifest.application.name.clone(),
        version: manifest.application.version.clone(),
        router,
        components: loaded,
        local,
        engine,
        key_value,
        request_timeout: options.request_timeout,
        stats,
        oci_image_digest: None,
    })
}

//! `spinlet run`: serve a Spin app locally, the equivalent of `spin up`.
//!
//! Flags map onto `spin_runtime::app::AppOptions`; the work is `spin_runtime::serve`, the
//! serve path pod sandboxes share.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use spin_runtime::app::AppOptions;
use spin_runtime::engine::EngineOptions;
use spin_runtime::http_p3::Reuse;
use spin_runtime::serve::AppSource;

/// Flags of `spinlet run`.
#[derive(clap::Args)]
pub struct RunArgs {
    /// The app: a spin.toml file, a directory containing one, or an OCI reference
    /// (`registry/repository:tag`) pushed by `spinlet push` or `spin registry push`.
    pub app: String,
    /// Address to listen on.
    #[arg(long, env = "SPIN_HTTP_LISTEN_ADDR", default_value = spin_runtime::http_trigger::DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Set an application variable (NAME=VALUE); may be repeated. Takes precedence over
    /// SPIN_VARIABLE_<NAME> and the manifest default.
    #[arg(long = "variable", value_name = "NAME=VALUE")]
    pub variables: Vec<String>,
    /// Set an environment variable for every component (NAME=VALUE); may be repeated.
    #[arg(long = "env", short = 'e', value_name = "NAME=VALUE")]
    pub env: Vec<String>,
    /// Directory for app state such as the default key-value store [default: <app dir>/.spin].
    #[arg(long, env = "SPINLET_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Cache root: compiled code and registry pulls [default: ~/.cache/spinlet].
    #[arg(long, env = "SPINLET_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Talk plain HTTP to the registry (loopback registries always use plain HTTP).
    #[arg(long, env = "SPINLET_INSECURE_REGISTRY")]
    pub insecure: bool,
    /// Runtime config file (Spin's runtime-config.toml: state_dir, max_instance_memory,
    /// variables providers, key-value stores).
    #[arg(long, env = "SPINLET_RUNTIME_CONFIG_FILE")]
    pub runtime_config_file: Option<PathBuf>,
    /// Run only this component and its triggers (selective deployment, as `spin up
    /// --component-id`); may be repeated [default: every component].
    #[arg(long = "component-id", short = 'c', value_name = "ID")]
    pub component_ids: Vec<String>,
    /// Maximum linear memory per instance, in bytes [default: no limit].
    #[arg(long, env = "SPIN_MAX_INSTANCE_MEMORY")]
    pub max_instance_memory: Option<u64>,
    /// Per-request deadline, e.g. `30s` or `500ms` [default: none, as `spin up`].
    #[arg(long, env = "SPINLET_REQUEST_TIMEOUT", value_parser = parse_duration)]
    pub request_timeout: Option<Duration>,
    /// WASI 0.3 handlers: requests one instance serves before it is dropped. Each
    /// serving thread (one per core) keeps instances of its own, and a connection's
    /// requests are all served on one thread.
    #[arg(long, value_name = "N", default_value_t = Reuse::default().max_requests as u32, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_instance_reuse_count: u32,
    /// WASI 0.3 handlers: requests one instance serves at the same time. More than 1
    /// lets a request wait behind a slow one on the same instance (and share its
    /// deadline); spinlet's default gives each concurrent request its own instance.
    #[arg(long, value_name = "N", default_value_t = Reuse::default().max_concurrent as u32, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_instance_concurrent_reuse_count: u32,
    /// WASI 0.3 handlers: how long an idle instance is kept for the next request, e.g.
    /// `1s` or `250ms`.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub idle_instance_timeout: Duration,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((s, "s"), |i| (&s[..i], &s[i..]));
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration `{s}` (examples: 30s, 500ms, 2m)"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("invalid duration unit in `{s}` (use ms, s or m)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("invalid duration `{s}`: {e}"))
}

fn parse_pairs(flag: &str, pairs: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    pairs
        .iter()
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .with_context(|| format!("--{flag} {p}: expected NAME=VALUE"))
        })
        .collect()
}

/// Runs `spinlet run`.
pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    // mimalloc (src/allocator.rs) keeps freed pages with the thread that freed them: a
    // compile's working memory goes back to the system only when each compile thread
    // collects.
    let allocator = crate::allocator::choice();
    if allocator == crate::allocator::Choice::Mimalloc {
        spin_runtime::heap::collect_on_each_thread(crate::allocator::collect);
    }

    let options = AppOptions {
        app: PathBuf::from(&args.app),
        variables: args.variables.clone(),
        env: parse_pairs("env", &args.env)?,
        state_dir: args.state_dir.clone(),
        cache_dir: args.cache_dir.clone(),
        max_instance_memory: args.max_instance_memory,
        runtime_config: args.runtime_config_file.clone(),
        request_timeout: args.request_timeout,
        reuse: Reuse {
            max_requests: args.max_instance_reuse_count as usize,
            max_concurrent: args.max_instance_concurrent_reuse_count as usize,
            idle_timeout: args.idle_instance_timeout,
        },
        engine: EngineOptions::from_env(),
        mounts: Vec::new(),
        components: (!args.component_ids.is_empty()).then(|| args.component_ids.clone()),
    };
    let source = AppSource::parse(&args.app)?;
    let app = spin_runtime::serve::load(&source, &options, args.insecure)?;
    let stats = app.stats;
    tracing::info!(
        wasm_files = stats.wasm_files,
        from_cache = stats.cache_hits,
        compiled = stats.compiled,
        fast_tier = stats.fast_tier,
        fast_tier_cached = stats.fast_tier_cached,
        elapsed_ms = stats.elapsed.as_millis() as u64,
        ?allocator,
        "app loaded"
    );
    // Requests are served on one single-threaded runtime per core (spin_runtime::workers);
    // this thread only accepts connections and waits for the shutdown signal.
    spin_runtime::serve::serve(Arc::new(app), args.listen, shutdown_signal(), print_routes)?;
    Ok(())
}

/// What `spin up` prints once it listens.
fn print_routes(local: SocketAddr, app: &spin_runtime::app::App) {
    println!("Serving http://{local}");
    println!("Available Routes:");
    for (pattern, target) in app.router.routes() {
        let name = match target {
            spin_runtime::app::Target::Component(c) => c.id.clone(),
            spin_runtime::app::Target::Static(_) => "(static response)".to_string(),
        };
        let route = pattern.raw_or_prefix();
        let wildcard = if pattern.raw() != route || pattern.raw().ends_with("/*") {
            " (wildcard)"
        } else {
            ""
        };
        let shown = if route.is_empty() { "/" } else { route };
        println!("  {name}: http://{local}{shown}{wildcard}");
    }
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutting down");
}

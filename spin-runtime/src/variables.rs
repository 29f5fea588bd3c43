//! Application and component variables: providers, resolution and the guest interfaces.
//!
//! This module owns Spin's variable model. Application variables (`[variables]`) are
//! resolved once at start from the providers in Spin's order: `--variable` on the command
//! line, then the runtime config's providers in file order, then the environment
//! (`SPIN_VARIABLE_<NAME>`), then the manifest default. A
//! required variable that no provider resolves stops the app with its name in the error.
//! Component variables are templates over application variables (`"{{ name }}"`),
//! rendered at start.
//!
//! Guests read them through `fermyon:spin/variables@2.0.0` (`get`), its component-model
//! `async` successor `spin:variables/variables@3.0.0` (spin-sdk 7; the same lookup and
//! errors) and `wasi:config/store@0.2.0-draft-2024-09-27` (`get`, `get-all`).
//!
//! Lifecycle: [`resolve_app_variables`] once per app, [`render_component_variables`] once
//! per component, a [`VariablesCtx`] per instance (a cheap `Arc` clone), and
//! [`add_to_linker`] once per engine.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use wasmtime::component::{Accessor, HasData, Linker};

use crate::manifest::{is_valid_variable_name, Variable};

mod gen_ {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "spinlet:host/variables",
    });
}

use gen_::fermyon::spin::variables as spin_v2;
use gen_::spin::variables::variables as spin_v3;
use gen_::wasi::config::store as wasi_config;

/// The environment-variable prefix of the environment provider.
pub const ENV_PREFIX: &str = "SPIN_VARIABLE_";

/// Errors from resolving variables.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Required variables that no provider supplied.
    #[error("required variable{} not set: {}; set with --variable NAME=VALUE or SPIN_VARIABLE_<NAME>", if .0.len() == 1 { " is" } else { "s are" }, .0.join(", "))]
    MissingRequired(Vec<String>),
    /// A `--variable` names no variable in the manifest.
    #[error("--variable {0}: the manifest declares no such variable")]
    Unknown(String),
    /// A `--variable` argument is not `name=value`.
    #[error("--variable {0}: expected NAME=VALUE")]
    BadArgument(String),
    /// A template is malformed.
    #[error("invalid template `{template}`: {reason}")]
    Template {
        /// The template.
        template: String,
        /// What is wrong.
        reason: String,
    },
}

/// Result type of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where variable values come from, in priority order.
#[derive(Debug, Clone, Default)]
pub struct Providers {
    /// Values from `--variable NAME=VALUE`.
    pub cli: HashMap<String, String>,
    /// Runtime-config providers, in file order.
    pub runtime: Vec<crate::runtime_config::VariablesProvider>,
    /// The process environment, searched for `SPIN_VARIABLE_<NAME>`.
    pub env: HashMap<String, String>,
}

impl Providers {
    /// Providers from `--variable` arguments and the current process environment.
    pub fn from_args(args: &[String]) -> Result<Providers> {
        let mut cli = HashMap::new();
        for arg in args {
            let (k, v) = arg
                .split_once('=')
                .ok_or_else(|| Error::BadArgument(arg.clone()))?;
            cli.insert(k.trim().to_string(), v.to_string());
        }
        Ok(Providers {
            cli,
            runtime: Vec::new(),
            env: std::env::vars().collect(),
        })
    }

    fn lookup(&self, name: &str, def: &Variable) -> Option<String> {
        self.cli
            .get(name)
            .cloned()
            .or_else(|| self.runtime.iter().find_map(|p| p.get(name, &self.env)))
            .or_else(|| {
                self.env
                    .get(&format!("{ENV_PREFIX}{}", name.to_ascii_uppercase()))
                    .cloned()
            })
            .or_else(|| def.default.clone())
    }
}

/// Resolves every application variable; fails naming all missing required ones.
pub fn resolve_app_variables(
    declared: &BTreeMap<String, Variable>,
    providers: &Providers,
) -> Result<HashMap<String, String>> {
    for name in providers.cli.keys() {
        if !declared.contains_key(name) {
            return Err(Error::Unknown(name.clone()));
        }
    }
    let mut values = HashMap::new();
    let mut missing = Vec::new();
    for (name, def) in declared {
        match providers.lookup(name, def) {
            Some(v) => {
                values.insert(name.clone(), v);
            }
            None => missing.push(name.clone()),
        }
    }
    if missing.is_empty() {
        Ok(values)
    } else {
        Err(Error::MissingRequired(missing))
    }
}

/// The application variables a template references, in order.
pub fn template_references(template: &str) -> Result<Vec<String>> {
    Ok(parse_template(template)?
        .into_iter()
        .filter_map(|p| match p {
            Part::Var(v) => Some(v),
            Part::Lit(_) => None,
        })
        .collect())
}

/// Renders a template with resolved application variables.
pub fn render(template: &str, values: &HashMap<String, String>) -> Result<String> {
    let mut out = String::new();
    for part in parse_template(template)? {
        match part {
            Part::Lit(s) => out.push_str(&s),
            Part::Var(v) => match values.get(&v) {
                Some(value) => out.push_str(value),
                None => {
                    return Err(Error::Template {
                        template: template.to_string(),
                        reason: format!("no application variable `{v}`"),
                    })
                }
            },
        }
    }
    Ok(out)
}

/// Renders all of a component's variables.
pub fn render_component_variables(
    templates: &BTreeMap<String, String>,
    app_values: &HashMap<String, String>,
) -> Result<HashMap<String, String>> {
    templates
        .iter()
        .map(|(k, t)| Ok((k.clone(), render(t, app_values)?)))
        .collect()
}

enum Part {
    Lit(String),
    Var(String),
}

fn parse_template(template: &str) -> Result<Vec<Part>> {
    let bad = |reason: &str| Error::Template {
        template: template.to_string(),
        reason: reason.to_string(),
    };
    let mut parts = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        if start > 0 {
            parts.push(Part::Lit(rest[..start].to_string()));
        }
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or_else(|| bad("unclosed `{{`"))?;
        let name = after[..end].trim();
        if !is_valid_variable_name(name) {
            return Err(bad(&format!("`{name}` is not a valid variable name")));
        }
        parts.push(Part::Var(name.to_string()));
        rest = &after[end + 2..];
    }
    if !rest.is_empty() {
        parts.push(Part::Lit(rest.to_string()));
    }
    Ok(parts)
}

/// Per-instance variables state: the component's rendered variables.
#[derive(Debug, Clone, Default)]
pub struct VariablesCtx {
    values: Arc<HashMap<String, String>>,
}

impl VariablesCtx {
    /// A context serving `values` (the component's rendered variables).
    pub fn new(values: Arc<HashMap<String, String>>) -> Self {
        Self { values }
    }
}

/// A borrowed view of [`VariablesCtx`]; the guest interfaces are implemented on it.
pub struct VariablesCtxView<'a> {
    /// The context.
    pub ctx: &'a VariablesCtx,
}

/// Implemented by store data that holds a [`VariablesCtx`].
pub trait VariablesView: Send {
    /// Borrows the variables context.
    fn variables(&mut self) -> VariablesCtxView<'_>;
}

struct Variables;

impl HasData for Variables {
    type Data<'a> = VariablesCtxView<'a>;
}

/// Why a guest's `get` failed, in both versions' terms.
enum LookupError {
    InvalidName(String),
    Undefined(String),
}

impl VariablesCtx {
    /// The component variable `name`, as Spin's `get` answers it.
    fn lookup(&self, name: &str) -> Result<String, LookupError> {
        if !is_valid_variable_name(name) {
            return Err(LookupError::InvalidName(format!(
                "invalid variable name `{name}`"
            )));
        }
        self.values
            .get(name)
            .cloned()
            .ok_or_else(|| LookupError::Undefined(format!("no variable for `{name}`")))
    }
}

impl From<LookupError> for spin_v2::Error {
    fn from(e: LookupError) -> Self {
        match e {
            LookupError::InvalidName(m) => Self::InvalidName(m),
            LookupError::Undefined(m) => Self::Undefined(m),
        }
    }
}

impl From<LookupError> for spin_v3::Error {
    fn from(e: LookupError) -> Self {
        match e {
            LookupError::InvalidName(m) => Self::InvalidName(m),
            LookupError::Undefined(m) => Self::Undefined(m),
        }
    }
}

impl spin_v2::Host for VariablesCtxView<'_> {
    fn get(&mut self, name: String) -> Result<String, spin_v2::Error> {
        Ok(self.ctx.lookup(&name)?)
    }
}

impl spin_v3::Host for VariablesCtxView<'_> {}

impl<T> spin_v3::HostWithStore<T> for Variables {
    async fn get(accessor: &Accessor<T, Self>, name: String) -> Result<String, spin_v3::Error> {
        Ok(accessor.with(|mut a| a.get().ctx.lookup(&name))?)
    }
}

impl wasi_config::Host for VariablesCtxView<'_> {
    fn get(&mut self, key: String) -> Result<Option<String>, wasi_config::Error> {
        Ok(self.ctx.values.get(&key).cloned())
    }

    fn get_all(&mut self) -> Result<Vec<(String, String)>, wasi_config::Error> {
        let mut all: Vec<_> = self
            .ctx
            .values
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        all.sort();
        Ok(all)
    }
}

/// Links `fermyon:spin/variables@2.0.0`, `spin:variables/variables@3.0.0` and
/// `wasi:config/store` into `linker`.
pub fn add_to_linker<T: VariablesView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    spin_v2::add_to_linker::<T, Variables>(linker, T::variables)?;
    spin_v3::add_to_linker::<T, Variables>(linker, T::variables)?;
    wasi_config::add_to_linker::<T, Variables>(linker, T::variables)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declared() -> BTreeMap<String, Variable> {
        let mut d = BTreeMap::new();
        d.insert(
            "greeting".to_string(),
            Variable {
                default: Some("hello".into()),
                ..Default::default()
            },
        );
        d.insert(
            "token".to_string(),
            Variable {
                required: true,
                ..Default::default()
            },
        );
        d
    }

    #[test]
    fn precedence_cli_env_default() {
        let mut p = Providers::default();
        assert!(matches!(
            resolve_app_variables(&declared(), &p),
            Err(Error::MissingRequired(m)) if m == vec!["token".to_string()]
        ));
        p.env
            .insert("SPIN_VARIABLE_TOKEN".into(), "from-env".into());
        p.env
            .insert("SPIN_VARIABLE_GREETING".into(), "env-greeting".into());
        let v = resolve_app_variables(&declared(), &p).unwrap();
        assert_eq!(v["token"], "from-env");
        assert_eq!(v["greeting"], "env-greeting");
        p.cli.insert("greeting".into(), "cli".into());
        let v = resolve_app_variables(&declared(), &p).unwrap();
        assert_eq!(v["greeting"], "cli");
    }

    #[test]
    fn unknown_cli_variable() {
        let mut p = Providers::default();
        p.cli.insert("nope".into(), "x".into());
        assert!(matches!(
            resolve_app_variables(&declared(), &p),
            Err(Error::Unknown(_))
        ));
    }

    #[test]
    fn templates() {
        let mut values = HashMap::new();
        values.insert("a".to_string(), "1".to_string());
        values.insert("b_c".to_string(), "2".to_string());
        assert_eq!(render("x{{ a }}y{{b_c}}", &values).unwrap(), "x1y2");
        assert_eq!(
            template_references("{{a}} {{ b_c }}").unwrap(),
            vec!["a", "b_c"]
        );
        assert!(render("{{ a", &values).is_err());
        assert!(render("{{ Bad }}", &values).is_err());
    }
}

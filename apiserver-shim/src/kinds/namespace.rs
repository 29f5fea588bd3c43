//! Namespaces (kube-apiserver's pkg/registry/core/namespace): the `kubernetes` finalizer
//! and phase `Active` at create, the status kept at create, DNS-label names, printer
//! columns, field labels, and the custom REST storage (deletion marks `Terminating` and
//! runs the namespace finalizer; the `finalize` subresource).

use serde_json::{json, Value};

use super::{Kind, KindStrategy, NameRule, Rest};
use crate::defaults::set_default;
use crate::table::cells::{col, s};
use crate::table::{age_column, name_column, Column};

/// `/api/v1/namespaces`.
pub const NAMESPACE: Kind = Kind {
    group: "",
    version: "v1",
    kind: "Namespace",
    plural: "namespaces",
    singular: "namespace",
    namespaced: false,
    short_names: &["ns"],
    categories: &[],
    status: true,
    scale: false,
    strategy: &Namespace,
};

/// The Namespace strategy.
pub struct Namespace;

impl KindStrategy for Namespace {
    fn prepare_for_create(&self, obj: &mut Value) {
        set_default(obj, "/spec/finalizers", json!(["kubernetes"]));
        if let Some(o) = obj.as_object_mut() {
            o.insert("status".into(), json!({"phase": "Active"}));
        }
    }

    fn resets_status_on_create(&self) -> bool {
        false
    }

    fn name_rule(&self) -> NameRule {
        NameRule::Label
    }

    fn columns(&self) -> Vec<Column> {
        let mut c = vec![name_column()];
        c.push(col("Status", 0, |o| json!(s(o, "/status/phase"))));
        c.push(age_column());
        c
    }

    fn field_labels(&self) -> &'static [&'static str] {
        &["status.phase"]
    }

    fn rest(&self) -> Rest {
        Rest::Namespace
    }
}

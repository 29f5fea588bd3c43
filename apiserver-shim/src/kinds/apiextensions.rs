//! apiextensions.k8s.io CustomResourceDefinitions: generation tracking, printer
//! columns, and the custom REST storage (checked and established on every write, served
//! by the registry once stored, their objects deleted with them) that `handlers` and
//! `crd.rs` carry out.

use serde_json::json;

use super::{Kind, KindStrategy, Rest};
use crate::table::cells::{col, s};
use crate::table::{name_column, Column};

/// `/apis/apiextensions.k8s.io/v1/customresourcedefinitions`.
pub const CUSTOM_RESOURCE_DEFINITION: Kind = Kind {
    group: "apiextensions.k8s.io",
    version: "v1",
    kind: "CustomResourceDefinition",
    plural: "customresourcedefinitions",
    singular: "customresourcedefinition",
    namespaced: false,
    short_names: &["crd", "crds"],
    categories: &["api-extensions"],
    status: true,
    scale: false,
    strategy: &CustomResourceDefinition,
};

/// The CustomResourceDefinition strategy.
pub struct CustomResourceDefinition;

impl KindStrategy for CustomResourceDefinition {
    fn tracks_generation(&self) -> bool {
        true
    }

    fn columns(&self) -> Vec<Column> {
        let mut c = vec![name_column()];
        let mut created = col("Created At", 0, |o| {
            json!(s(o, "/metadata/creationTimestamp"))
        });
        created.ty = "date";
        c.push(created);
        c
    }

    fn rest(&self) -> Rest {
        Rest::CustomResourceDefinition
    }
}

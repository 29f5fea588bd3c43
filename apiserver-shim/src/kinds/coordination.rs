//! coordination.k8s.io Leases (node heartbeats, leader election): printer columns.

use serde_json::json;

use super::{Kind, KindStrategy};
use crate::table::cells::{col, s};
use crate::table::{age_column, name_column, Column};

/// `/apis/coordination.k8s.io/v1/leases`.
pub const LEASE: Kind = Kind {
    group: "coordination.k8s.io",
    version: "v1",
    kind: "Lease",
    plural: "leases",
    singular: "lease",
    namespaced: true,
    short_names: &[],
    categories: &[],
    status: false,
    scale: false,
    strategy: &Lease,
};

/// The Lease strategy.
pub struct Lease;

impl KindStrategy for Lease {
    fn columns(&self) -> Vec<Column> {
        let mut c = vec![name_column()];
        c.push(col("Holder", 0, |o| json!(s(o, "/spec/holderIdentity"))));
        c.push(age_column());
        c
    }
}

//! The strategy of custom resources (kube-apiextensions-apiserver's `customResourceStrategy`):
//! generation tracked, status reset at create, lists replaced whole by a merge patch
//! (strategic merge patch is refused for them by the handlers). Their schema, defaults
//! and printer columns come from their CRD (`crd.rs`, `decode.rs`, `table`), not from here.

use super::KindStrategy;
use crate::strategic::merge_keys::MergeSchema;

/// Objects of a CRD-defined kind.
pub struct CustomResource;

impl KindStrategy for CustomResource {
    fn tracks_generation(&self) -> bool {
        true
    }

    fn merge_schema(&self) -> Option<&'static MergeSchema> {
        None
    }
}

/// A built-in resource without a [`super::Kind`] entry (none is served): generic rules.
pub struct Unlisted;

impl KindStrategy for Unlisted {
    fn merge_schema(&self) -> Option<&'static MergeSchema> {
        None
    }
}

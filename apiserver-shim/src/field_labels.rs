//! The field selectors each kind supports, as kube-apiserver registers them (every kind:
//! `metadata.name`, `metadata.namespace`; then each kind's own: a pod's `spec.nodeName`,
//! an event's `involvedObject.name`, a secret's `type`, …). Any other field is refused
//! with kube-apiserver's 400, `field label not supported: <field>`, instead of quietly
//! matching nothing.
//!
//! Owns the check; each kind's own fields (and, for `events.k8s.io` Events, stored as
//! core Events, the stored spelling of theirs: `regarding.*` is `involvedObject.*`) are
//! in its strategy (`kinds/`). Knows nothing of how selectors match.

use crate::error::ApiError;
use crate::registry::Resource;
use crate::selector::FieldSelector;

/// The selector as it applies to stored objects of `r`, or kube-apiserver's 400 for a
/// field the kind does not support.
pub fn check(r: &Resource, mut selector: FieldSelector) -> Result<FieldSelector, ApiError> {
    let strategy = r.strategy();
    for (from, to) in strategy.field_label_aliases() {
        selector.rename_prefix(from, to);
    }
    let own = strategy.field_labels();
    for field in selector.fields() {
        let known = matches!(field.as_str(), "metadata.name" | "metadata.namespace")
            || own.contains(&field.as_str());
        if !known {
            return Err(ApiError::bad_request(format!(
                "field label not supported: {field}"
            )));
        }
    }
    Ok(selector)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;

    #[test]
    fn each_kind_has_its_fields_and_others_are_refused() {
        let table = Registry::new().snapshot();
        let pods = table.get("", "v1", "pods").unwrap();
        let ok = FieldSelector::parse("spec.nodeName=n1,status.phase!=Failed,metadata.name=p");
        assert!(check(pods, ok.unwrap()).is_ok());
        let bad = check(pods, FieldSelector::parse("spec.containers=x").unwrap()).unwrap_err();
        assert_eq!(bad.code, 400);
        assert_eq!(bad.message, "field label not supported: spec.containers");
        let cms = table.get("", "v1", "configmaps").unwrap();
        assert!(check(cms, FieldSelector::parse("data.k=v").unwrap()).is_err());

        let events = table.get("events.k8s.io", "v1", "events").unwrap();
        let sel = check(events, FieldSelector::parse("regarding.name=web").unwrap()).unwrap();
        assert_eq!(sel.fields().collect::<Vec<_>>(), ["involvedObject.name"]);
    }
}

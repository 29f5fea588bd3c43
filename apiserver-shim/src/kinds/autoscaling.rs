//! autoscaling/v2 HorizontalPodAutoscalers: `maxReplicas` validation, generation
//! tracking, printer columns.

use serde_json::{json, Value};

use super::{Kind, KindStrategy};
use crate::error::Cause;
use crate::table::cells::{arr, col, i, s};
use crate::table::{age_column, name_column, Column};
use crate::validation::invalid;

/// `/apis/autoscaling/v2/horizontalpodautoscalers`.
pub const HORIZONTAL_POD_AUTOSCALER: Kind = Kind {
    group: "autoscaling",
    version: "v2",
    kind: "HorizontalPodAutoscaler",
    plural: "horizontalpodautoscalers",
    singular: "horizontalpodautoscaler",
    namespaced: true,
    short_names: &["hpa"],
    categories: &["all"],
    status: true,
    scale: false,
    strategy: &HorizontalPodAutoscaler,
};

/// The HorizontalPodAutoscaler strategy.
pub struct HorizontalPodAutoscaler;

impl KindStrategy for HorizontalPodAutoscaler {
    fn validate(&self, obj: &Value, out: &mut Vec<Cause>) {
        let max = obj
            .pointer("/spec/maxReplicas")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if max < 1 {
            out.push(invalid(
                "spec.maxReplicas".into(),
                "Invalid value: must be greater than or equal to 1".into(),
            ));
        }
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    fn columns(&self) -> Vec<Column> {
        let mut c = vec![name_column()];
        c.push(col("Reference", 0, |o| {
            json!(format!(
                "{}/{}",
                s(o, "/spec/scaleTargetRef/kind"),
                s(o, "/spec/scaleTargetRef/name")
            ))
        }));
        c.push(col("Targets", 0, |o| {
            let n = arr(o, "/spec/metrics").len();
            json!(if n == 0 {
                "<none>".to_string()
            } else {
                format!("{n} metric(s)")
            })
        }));
        c.push(col("MinPods", 0, |o| {
            json!(o
                .pointer("/spec/minReplicas")
                .and_then(Value::as_i64)
                .unwrap_or(1))
        }));
        c.push(col("MaxPods", 0, |o| json!(i(o, "/spec/maxReplicas"))));
        c.push(col("Replicas", 0, |o| {
            json!(i(o, "/status/currentReplicas"))
        }));
        c.push(age_column());
        c
    }
}

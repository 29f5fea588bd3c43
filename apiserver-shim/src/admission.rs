//! Admission without webhooks: hooks registered in process by whoever composes the server
//! (the binary registers spin-operator's SpinApp and SpinAppExecutor rules), run on every
//! create and update of the main resource, mutating hooks first, validating hooks after,
//! as kube-apiserver runs its admission chain.
//!
//! Owns the hook interface and the order hooks run in. It knows nothing of any kind: a
//! hook says which group and kind it handles. It does not store anything; the write
//! handlers call [`admit`] between deciding the new object and storing it, and dry-run
//! requests are admitted too (the hook is told, and must then change nothing elsewhere).
//!
//! Why in process: spin-operator's webhooks need a serving certificate from cert-manager,
//! a Service and a running operator before the first SpinApp can be created (the docs'
//! "no endpoints available for service spin-operator-webhook-service" failure). Here the
//! rules are part of the server, so they are in force from the first request.
//!
//! Subresources (`status`, `scale`) and deletes are not admitted, as spin-operator's
//! webhook rules cover only create and update of the main resource.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::Value;

use crate::error::{ApiError, Cause};

/// What a request does to the object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// POST, or a server-side apply that creates.
    Create,
    /// PUT or PATCH of the main resource.
    Update,
}

/// What a hook learns about the request besides the object.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// Create or update.
    pub operation: Operation,
    /// The API group the request was made under (`core.spinoperator.dev`).
    pub group: &'a str,
    /// The kind (`SpinApp`).
    pub kind: &'a str,
    /// The namespace, for namespaced kinds.
    pub namespace: Option<&'a str>,
    /// The object as stored before this request (updates only).
    pub old: Option<&'a Value>,
    /// A dry run: nothing the hook does may outlive the request.
    pub dry_run: bool,
}

/// Why a hook refused an object.
#[derive(Clone, Debug)]
pub enum Rejection {
    /// The object is invalid: 422 with these causes.
    Invalid(Vec<FieldError>),
    /// The hook could not decide (e.g. it could not read what it needed): 500.
    Internal(String),
}

/// One invalid field.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldError {
    /// The field path, e.g. `spec.replicas`.
    pub field: String,
    /// The value found there (`null` when missing).
    pub value: Value,
    /// What is wrong, e.g. `replicas must be > 0`.
    pub message: String,
}

/// A boxed future a hook returns.
pub type HookFuture<'a> = Pin<Box<dyn Future<Output = Result<(), Rejection>> + Send + 'a>>;

/// An admission hook: one kind's defaulting and validation.
pub trait Hook: Send + Sync {
    /// Whether this hook handles objects of `group`/`kind`.
    fn handles(&self, group: &str, kind: &str) -> bool;

    /// Defaults or otherwise changes the object before it is validated and stored.
    fn mutate<'a>(&'a self, request: Request<'a>, object: &'a mut Value) -> HookFuture<'a>;

    /// Accepts or refuses the object as it will be stored.
    fn validate<'a>(&'a self, request: Request<'a>, object: &'a Value) -> HookFuture<'a>;
}

/// The hooks of one server, in registration order.
#[derive(Clone, Default)]
pub struct Hooks(pub Vec<Arc<dyn Hook>>);

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} admission hook(s)", self.0.len())
    }
}

/// Runs every hook that handles the object's kind: all mutations, then all validations.
/// The first refusal ends admission with its error.
pub async fn admit(
    hooks: &Hooks,
    request: Request<'_>,
    object: &mut Value,
) -> Result<(), ApiError> {
    let handling: Vec<&Arc<dyn Hook>> = hooks
        .0
        .iter()
        .filter(|h| h.handles(request.group, request.kind))
        .collect();
    if handling.is_empty() {
        return Ok(());
    }
    for hook in &handling {
        hook.mutate(request, object)
            .await
            .map_err(|r| to_error(&request, object, r))?;
    }
    for hook in &handling {
        hook.validate(request, object)
            .await
            .map_err(|r| to_error(&request, object, r))?;
    }
    Ok(())
}

fn to_error(request: &Request<'_>, object: &Value, rejection: Rejection) -> ApiError {
    let name = crate::object::name_of(object);
    match rejection {
        Rejection::Invalid(errors) => ApiError::invalid(
            request.group,
            request.kind,
            name,
            errors.into_iter().map(cause_of).collect(),
        ),
        Rejection::Internal(message) => ApiError::internal_with_message(format!(
            "admission of {} \"{name}\" failed: {message}",
            request.kind
        )),
    }
}

/// Renders a field error as kube-apiserver's `field.Invalid` does: the value, then why.
fn cause_of(e: FieldError) -> Cause {
    let (reason, message) = if e.value.is_null() {
        (
            "FieldValueRequired",
            format!("Required value: {}", e.message),
        )
    } else {
        let shown = match &e.value {
            Value::String(s) => format!("{s:?}"),
            other => other.to_string(),
        };
        (
            "FieldValueInvalid",
            format!("Invalid value: {shown}: {}", e.message),
        )
    };
    Cause {
        reason,
        message,
        field: e.field,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Sets `spec.size` to 1 when missing; refuses a negative size.
    struct Sizes;

    impl Hook for Sizes {
        fn handles(&self, group: &str, kind: &str) -> bool {
            group == "example.dev" && kind == "Thing"
        }
        fn mutate<'a>(&'a self, _: Request<'a>, object: &'a mut Value) -> HookFuture<'a> {
            Box::pin(async move {
                if object.pointer("/spec/size").is_none() {
                    object["spec"]["size"] = json!(1);
                }
                Ok(())
            })
        }
        fn validate<'a>(&'a self, _: Request<'a>, object: &'a Value) -> HookFuture<'a> {
            Box::pin(async move {
                let size = object.pointer("/spec/size").cloned().unwrap_or(Value::Null);
                if size.as_i64().is_some_and(|s| s < 0) {
                    return Err(Rejection::Invalid(vec![FieldError {
                        field: "spec.size".into(),
                        value: size,
                        message: "size must be >= 0".into(),
                    }]));
                }
                Ok(())
            })
        }
    }

    fn request(kind: &str) -> Request<'_> {
        Request {
            operation: Operation::Create,
            group: "example.dev",
            kind,
            namespace: Some("default"),
            old: None,
            dry_run: false,
        }
    }

    #[tokio::test]
    async fn mutates_then_validates_the_kinds_it_handles() {
        let hooks = Hooks(vec![Arc::new(Sizes)]);
        let mut thing = json!({"metadata": {"name": "a"}, "spec": {}});
        admit(&hooks, request("Thing"), &mut thing).await.unwrap();
        assert_eq!(thing["spec"]["size"], 1);

        let mut other = json!({"metadata": {"name": "b"}, "spec": {}});
        admit(&hooks, request("Other"), &mut other).await.unwrap();
        assert_eq!(
            other["spec"],
            json!({}),
            "a kind no hook handles is untouched"
        );
    }

    #[tokio::test]
    async fn a_refusal_is_a_422_naming_the_field_and_value() {
        let hooks = Hooks(vec![Arc::new(Sizes)]);
        let mut thing = json!({"metadata": {"name": "a"}, "spec": {"size": -2}});
        let e = admit(&hooks, request("Thing"), &mut thing)
            .await
            .unwrap_err();
        assert_eq!(e.code, 422);
        assert_eq!(e.reason, "Invalid");
        assert_eq!(
            e.message,
            "Thing.example.dev \"a\" is invalid: spec.size: Invalid value: -2: size must be >= 0"
        );
        let causes = &e.details.as_ref().unwrap()["causes"];
        assert_eq!(causes[0]["field"], "spec.size");
        assert_eq!(causes[0]["reason"], "FieldValueInvalid");
    }
}

//! spin-operator's webhooks without webhooks: the real kubectl applies SpinApps and
//! SpinAppExecutors to a real server, and bad ones are refused at admission with
//! spin-operator's messages naming the field, under both API groups, with nothing
//! created; a SpinApp without an executor gets the default one.

mod common;

use std::time::Duration;

use common::pods::wait_or_show;
use common::Server;

fn app(group: &str, name: &str, spec: &str) -> String {
    format!("apiVersion: {group}/v1alpha1\nkind: SpinApp\nmetadata:\n  name: {name}\nspec:\n{spec}")
}

fn wait_default_executor(s: &Server) {
    wait_or_show(
        "the out-of-the-box executor",
        Duration::from_secs(60),
        || {
            s.kubectl_output(&["get", "spinappexecutor", "containerd-shim-spin"], None)
                .status
                .success()
                .then_some(())
        },
        || s.log(),
    );
}

#[test]
fn bad_spinapps_are_refused_with_spin_operators_messages() {
    let s = Server::start();
    wait_default_executor(&s);
    for group in ["core.spinoperator.dev", "core.spinkube.dev"] {
        let cases = [
            (
                "no-image",
                "  replicas: 1\n  executor: containerd-shim-spin\n",
                "spec.image: Required value",
            ),
            (
                "unknown-executor",
                "  image: ghcr.io/example/app:v1\n  replicas: 1\n  executor: no-such-executor\n",
                "spec.executor: Invalid value: \"no-such-executor\": executor does not exist in namespace",
            ),
            (
                "negative",
                "  image: ghcr.io/example/app:v1\n  replicas: -1\n  executor: containerd-shim-spin\n",
                "spec.replicas: Invalid value: -1: replicas must be > 0",
            ),
            (
                "both",
                "  image: ghcr.io/example/app:v1\n  replicas: 2\n  enableAutoscaling: true\n  executor: containerd-shim-spin\n",
                "spec.replicas: Invalid value: 2: replicas cannot be set when autoscaling is enabled",
            ),
        ];
        for (name, spec, message) in cases {
            let manifest = app(group, name, spec);
            let err = s.kubectl_fails(&["apply", "-f", "-"], Some(&manifest));
            assert!(err.contains(message), "{group} {name}: {err}");
            assert!(
                err.contains(&format!("SpinApp.{group} \"{name}\" is invalid"))
                    || err.contains("is invalid"),
                "{err}"
            );
            let dry = s.kubectl_fails(&["apply", "--dry-run=server", "-f", "-"], Some(&manifest));
            assert!(dry.contains(message), "a dry run is admitted too: {dry}");
        }
    }
    let apps = s.kubectl(&["get", "spinapps", "-A", "-o", "name"]);
    assert!(apps.trim().is_empty(), "nothing created: {apps}");
    let deploys = s.kubectl(&["get", "deployments", "-A", "-o", "name"]);
    assert!(deploys.trim().is_empty(), "nothing created: {deploys}");
}

#[test]
fn an_app_without_executor_gets_the_default_and_bad_executors_are_refused() {
    let s = Server::start();
    wait_default_executor(&s);
    let manifest = app(
        "core.spinoperator.dev",
        "defaulted",
        "  image: ghcr.io/example/app:v1\n  replicas: 1\n",
    );
    s.kubectl_stdin(&["apply", "-f", "-"], &manifest);
    assert_eq!(
        s.jsonpath(&["spinapp", "defaulted"], "{.spec.executor}"),
        "containerd-shim-spin"
    );

    let executor = "apiVersion: core.spinkube.dev/v1alpha1\nkind: SpinAppExecutor\nmetadata:\n  name: confused\nspec:\n  createDeployment: true\n  deploymentConfig:\n    runtimeClassName: wasmtime-spin-v2\n    spinImage: ghcr.io/spinkube/spin:v1\n";
    let err = s.kubectl_fails(&["apply", "-f", "-"], Some(executor));
    assert!(
        err.contains("runtimeClassName and spinImage are mutually exclusive"),
        "{err}"
    );
    let neither = "apiVersion: core.spinkube.dev/v1alpha1\nkind: SpinAppExecutor\nmetadata:\n  name: empty\nspec:\n  createDeployment: true\n  deploymentConfig: {}\n";
    let err = s.kubectl_fails(&["apply", "-f", "-"], Some(neither));
    assert!(
        err.contains("either runtimeClassName or spinImage must be set"),
        "{err}"
    );
    // An app whose executor does not use deployments may not carry pod annotations.
    let service_only = "apiVersion: core.spinkube.dev/v1alpha1\nkind: SpinAppExecutor\nmetadata:\n  name: service-only\nspec:\n  createDeployment: false\n";
    s.kubectl_stdin(&["apply", "-f", "-"], service_only);
    let annotated = app(
        "core.spinkube.dev",
        "annotated",
        "  image: ghcr.io/example/app:v1\n  replicas: 1\n  executor: service-only\n  podAnnotations:\n    a: b\n",
    );
    let err = s.kubectl_fails(&["apply", "-f", "-"], Some(&annotated));
    assert!(
        err.contains(
            "podAnnotations can't be set when the executor does not use operator deployments"
        ),
        "{err}"
    );
}

//! The Deployment spin-operator builds for a SpinApp (`constructDeployment`,
//! `ConstructEnvForApp`, `ConstructVolumeMountsForApp`, `SpinHealthCheckToCoreProbe`):
//! one container named after the app, its environment, probes, volumes and labels.
//!
//! Pure: builds the object from the app, its executor and the names of the Secrets it
//! mounts; reads and writes nothing (the reconciler applies what this returns).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, HTTPGetAction, HTTPHeader, KeyToPath, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, SecretVolumeSource, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use spinlet_types::keys::{
    app_name_label, status_label, HTTP_PORT, HTTP_PORT_NAME, RUNTIME_CONFIG_KEY,
    RUNTIME_CONFIG_PATH, STATUS_READY,
};
use spinlet_types::{HealthProbe, OtelConfig, SpinApp, SpinAppExecutorSpec};

/// The name of the runtime-config volume.
pub const RUNTIME_CONFIG_VOLUME: &str = "spin-runtime-config";
/// The name of the CA bundle volume.
pub const CA_VOLUME: &str = "spin-ca";
/// The CA bundle Secret of `installDefaultCACerts` when `caCertSecret` is unset.
pub const DEFAULT_CA_SECRET: &str = "spin-ca";
/// Key of the CA bundle in its Secret.
pub const CA_KEY: &str = "ca-certificates.crt";
/// Where the CA bundle is mounted.
pub const CA_PATH: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Why a SpinApp's Deployment cannot be built (spin-operator's messages).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BuildError {
    /// The executor names neither a RuntimeClass nor a Spin image.
    #[error("must specify either runtimeClassName or spinImage")]
    NoRuntime,
    /// `loadFromSecret` and a generated runtime config at once.
    #[error("cannot specify both a user-provided runtime secret and a generated one")]
    TwoRuntimeConfigs,
    /// A check without `httpGet`.
    #[error("failed to construct {0} probe: probe exists but with unknown configuration, expected httpGet")]
    Probe(&'static str),
    /// `invocationLimits.memory` is not a quantity.
    #[error("failed to parse memory limit {0:?}")]
    InvocationMemory(String),
}

/// What a SpinApp's Deployment is built from.
pub struct Inputs<'a> {
    /// The app.
    pub app: &'a SpinApp,
    /// The API group whose label keys the app uses ([`super::group`]).
    pub group: &'a str,
    /// Its executor's spec.
    pub executor: &'a SpinAppExecutorSpec,
    /// The generated runtime-config Secret, if any.
    pub runtime_config_secret: Option<&'a str>,
    /// The app as the Deployment's controller.
    pub owner: OwnerReference,
}

/// The selector labels of an app's pods: app name and ready status.
pub fn selector_labels(group: &str, app: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (app_name_label(group), app.to_string()),
        (status_label(group, app), STATUS_READY.to_string()),
    ])
}

fn non_empty(map: Option<&BTreeMap<String, String>>) -> Option<BTreeMap<String, String>> {
    map.filter(|m| !m.is_empty()).cloned()
}

/// The app's Deployment.
pub fn build(i: &Inputs) -> Result<Deployment, BuildError> {
    let app = i.app;
    let spec = &app.spec;
    let name = app.metadata.name.clone().unwrap_or_default();
    let config = i.executor.deployment_config.clone().unwrap_or_default();
    if config.runtime_class_name.is_none() && config.spin_image.is_none() {
        return Err(BuildError::NoRuntime);
    }
    // spinlet runs every app natively; a `spinImage` executor's pods get no RuntimeClass
    // (the executor controller says so on the executor).
    let runtime_class_name = config.runtime_class_name.clone();
    let replicas = match spec.enable_autoscaling {
        Some(true) => None,
        _ => Some(spec.replicas.unwrap_or(0)),
    };
    let ca_secret = match (&config.ca_cert_secret, config.install_default_ca_certs) {
        (Some(s), _) if !s.is_empty() => Some(s.clone()),
        (_, Some(true)) => Some(DEFAULT_CA_SECRET.to_string()),
        _ => None,
    };
    let (volumes, mounts) = volumes(i, ca_secret.as_deref())?;
    let (readiness, liveness) = match &spec.checks {
        Some(c) => (
            probe(c.readiness.as_ref(), "readiness")?,
            probe(c.liveness.as_ref(), "liveness")?,
        ),
        None => (None, None),
    };
    let mut template_labels = spec.pod_labels.clone().unwrap_or_default();
    let selector = selector_labels(i.group, &name);
    template_labels.extend(selector.clone());
    let resources = spec.resources.as_ref().map(|r| ResourceRequirements {
        limits: r.limits.clone(),
        requests: r.requests.clone(),
        ..ResourceRequirements::default()
    });
    let container = Container {
        name: name.clone(),
        image: Some(spec.image.clone()),
        command: Some(vec!["/".to_string()]),
        ports: Some(vec![ContainerPort {
            name: Some(HTTP_PORT_NAME.to_string()),
            container_port: HTTP_PORT,
            ..ContainerPort::default()
        }]),
        env: Some(env(app, config.otel.as_ref())?),
        volume_mounts: (!mounts.is_empty()).then_some(mounts),
        resources,
        readiness_probe: readiness,
        liveness_probe: liveness,
        ..Container::default()
    };
    Ok(Deployment {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: app.metadata.namespace.clone(),
            labels: Some(BTreeMap::from([(app_name_label(i.group), name.clone())])),
            annotations: non_empty(spec.deployment_annotations.as_ref()),
            owner_references: Some(vec![i.owner.clone()]),
            ..ObjectMeta::default()
        },
        spec: Some(DeploymentSpec {
            replicas,
            selector: LabelSelector {
                match_labels: Some(selector),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(template_labels),
                    annotations: non_empty(spec.pod_annotations.as_ref()),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    runtime_class_name,
                    service_account_name: Some(
                        spec.service_account_name
                            .clone()
                            .filter(|s| !s.is_empty())
                            .unwrap_or_else(|| "default".to_string()),
                    ),
                    containers: vec![container],
                    image_pull_secrets: spec.image_pull_secrets.clone(),
                    volumes: (!volumes.is_empty()).then_some(volumes),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        status: None,
    })
}

/// The app container's environment, in spin-operator's order: `SPIN_VARIABLE_*` per
/// variable, `SPIN_HTTP_LISTEN_ADDR`, the executor's `OTEL_EXPORTER_OTLP_*`,
/// `SPIN_MAX_INSTANCE_MEMORY`, `SPIN_COMPONENTS_TO_RETAIN`; then `spec.env`.
pub fn env(app: &SpinApp, otel: Option<&OtelConfig>) -> Result<Vec<EnvVar>, BuildError> {
    let spec = &app.spec;
    let var = |name: &str, value: &str| EnvVar {
        name: name.to_string(),
        value: Some(value.to_string()),
        value_from: None,
    };
    let mut out: Vec<EnvVar> = spec
        .variables
        .iter()
        .flatten()
        .map(|v| EnvVar {
            name: format!("SPIN_VARIABLE_{}", v.name.to_uppercase()),
            value: v.value.clone().filter(|s| !s.is_empty()),
            value_from: v.value_from.clone(),
        })
        .collect();
    out.push(var(
        "SPIN_HTTP_LISTEN_ADDR",
        &format!("0.0.0.0:{HTTP_PORT}"),
    ));
    if let Some(otel) = otel {
        for (name, value) in [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &otel.exporter_otlp_endpoint),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                &otel.exporter_otlp_traces_endpoint,
            ),
            (
                "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
                &otel.exporter_otlp_metrics_endpoint,
            ),
            (
                "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
                &otel.exporter_otlp_logs_endpoint,
            ),
        ] {
            if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
                out.push(var(name, v));
            }
        }
    }
    if let Some(limit) = spec
        .invocation_limits
        .as_ref()
        .and_then(|l| l.get("memory"))
    {
        let bytes = crate::scheduler::resources::milli(limit)
            .map(|m| m / 1000 + i128::from(m % 1000 != 0))
            .ok_or_else(|| BuildError::InvocationMemory(limit.clone()))?;
        out.push(var("SPIN_MAX_INSTANCE_MEMORY", &bytes.to_string()));
    }
    if let Some(components) = &spec.components {
        out.push(var("SPIN_COMPONENTS_TO_RETAIN", &components.join(",")));
    }
    out.extend(spec.env.iter().flatten().cloned());
    Ok(out)
}

/// A check as a container probe: HTTP GET on port 80 with the CRD's defaults.
pub fn probe(
    check: Option<&HealthProbe>,
    which: &'static str,
) -> Result<Option<Probe>, BuildError> {
    let Some(check) = check else {
        return Ok(None);
    };
    let Some(get) = &check.http_get else {
        return Err(BuildError::Probe(which));
    };
    let headers: Vec<HTTPHeader> = get
        .http_headers
        .iter()
        .map(|h| HTTPHeader {
            name: h.name.clone(),
            value: h.value.clone(),
        })
        .collect();
    Ok(Some(Probe {
        http_get: Some(HTTPGetAction {
            path: Some(get.path.clone()),
            port: IntOrString::Int(HTTP_PORT),
            http_headers: (!headers.is_empty()).then_some(headers),
            ..HTTPGetAction::default()
        }),
        initial_delay_seconds: Some(check.initial_delay_seconds.unwrap_or(10)),
        timeout_seconds: Some(check.timeout_seconds.unwrap_or(1)),
        period_seconds: Some(check.period_seconds.unwrap_or(10)),
        success_threshold: Some(check.success_threshold.unwrap_or(1)),
        failure_threshold: Some(check.failure_threshold.unwrap_or(3)),
        ..Probe::default()
    }))
}

fn secret_volume(volume: &str, secret: &str, key: &str) -> Volume {
    Volume {
        name: volume.to_string(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret.to_string()),
            optional: Some(true),
            items: Some(vec![KeyToPath {
                key: key.to_string(),
                path: key.to_string(),
                mode: None,
            }]),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    }
}

fn file_mount(volume: &str, path: &str, key: &str) -> VolumeMount {
    VolumeMount {
        name: volume.to_string(),
        read_only: Some(true),
        mount_path: path.to_string(),
        sub_path: Some(key.to_string()),
        ..VolumeMount::default()
    }
}

/// Volumes and mounts in spin-operator's order: the runtime config (generated or
/// `loadFromSecret`), the app's own, the CA bundle.
fn volumes(
    i: &Inputs,
    ca_secret: Option<&str>,
) -> Result<(Vec<Volume>, Vec<VolumeMount>), BuildError> {
    let spec = &i.app.spec;
    let user = spec
        .runtime_config
        .as_ref()
        .and_then(|r| r.load_from_secret.as_deref())
        .filter(|s| !s.is_empty());
    let generated = i.runtime_config_secret.filter(|s| !s.is_empty());
    if user.is_some() && generated.is_some() {
        return Err(BuildError::TwoRuntimeConfigs);
    }
    let mut volumes = Vec::new();
    let mut mounts = Vec::new();
    if let Some(secret) = generated.or(user) {
        volumes.push(secret_volume(
            RUNTIME_CONFIG_VOLUME,
            secret,
            RUNTIME_CONFIG_KEY,
        ));
        mounts.push(file_mount(
            RUNTIME_CONFIG_VOLUME,
            RUNTIME_CONFIG_PATH,
            RUNTIME_CONFIG_KEY,
        ));
    }
    volumes.extend(spec.volumes.iter().flatten().cloned());
    mounts.extend(spec.volume_mounts.iter().flatten().cloned());
    if let Some(secret) = ca_secret {
        volumes.push(secret_volume(CA_VOLUME, secret, CA_KEY));
        mounts.push(file_mount(CA_VOLUME, CA_PATH, CA_KEY));
    }
    Ok((volumes, mounts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn app(spec: Value) -> SpinApp {
        serde_json::from_value(json!({
            "apiVersion": "core.spinoperator.dev/v1alpha1", "kind": "SpinApp",
            "metadata": {"name": "simple-spinapp", "namespace": "default", "uid": "u1"},
            "spec": spec,
        }))
        .expect("app")
    }

    fn executor(config: Value) -> SpinAppExecutorSpec {
        serde_json::from_value(json!({"createDeployment": true, "deploymentConfig": config}))
            .expect("executor")
    }

    fn owner() -> OwnerReference {
        OwnerReference {
            api_version: "core.spinoperator.dev/v1alpha1".into(),
            kind: "SpinApp".into(),
            name: "simple-spinapp".into(),
            uid: "u1".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }

    fn built(app: &SpinApp, ex: &SpinAppExecutorSpec, secret: Option<&str>) -> Value {
        let d = build(&Inputs {
            app,
            group: "core.spinoperator.dev",
            executor: ex,
            runtime_config_secret: secret,
            owner: owner(),
        })
        .expect("build");
        serde_json::to_value(d).expect("json")
    }

    #[test]
    fn simple_app_with_the_shim_executor() {
        let a = app(
            json!({"image": "ghcr.io/x/hello:v1", "replicas": 1, "executor": "containerd-shim-spin"}),
        );
        let ex = executor(json!({"runtimeClassName": "wasmtime-spin-v2"}));
        let d = built(&a, &ex, Some("simple-spinapp-abc"));
        assert_eq!(
            d,
            json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {
                    "labels": {"core.spinoperator.dev/app-name": "simple-spinapp"},
                    "name": "simple-spinapp", "namespace": "default",
                    "ownerReferences": [{"apiVersion": "core.spinoperator.dev/v1alpha1",
                        "blockOwnerDeletion": true, "controller": true, "kind": "SpinApp",
                        "name": "simple-spinapp", "uid": "u1"}],
                },
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": {
                        "core.spinoperator.dev/app-name": "simple-spinapp",
                        "core.spinoperator.dev/app.simple-spinapp.status": "ready"}},
                    "template": {
                        "metadata": {"labels": {
                            "core.spinoperator.dev/app-name": "simple-spinapp",
                            "core.spinoperator.dev/app.simple-spinapp.status": "ready"}},
                        "spec": {
                            "containers": [{
                                "command": ["/"],
                                "env": [{"name": "SPIN_HTTP_LISTEN_ADDR", "value": "0.0.0.0:80"}],
                                "image": "ghcr.io/x/hello:v1",
                                "name": "simple-spinapp",
                                "ports": [{"containerPort": 80, "name": "http-app"}],
                                "volumeMounts": [{"mountPath": "/runtime-config.toml",
                                    "name": "spin-runtime-config", "readOnly": true,
                                    "subPath": "runtime-config.toml"}],
                            }],
                            "runtimeClassName": "wasmtime-spin-v2",
                            "serviceAccountName": "default",
                            "volumes": [{"name": "spin-runtime-config", "secret": {
                                "items": [{"key": "runtime-config.toml", "path": "runtime-config.toml"}],
                                "optional": true, "secretName": "simple-spinapp-abc"}}],
                        },
                    },
                },
            })
        );
    }

    #[test]
    fn env_order_and_every_variable_source() {
        let a = app(json!({
            "image": "x", "replicas": 1,
            "variables": [
                {"name": "platform_name", "value": "Kubernetes"},
                {"name": "log_level", "valueFrom": {"configMapKeyRef": {"name": "spinapp-cfg", "key": "logLevel", "optional": true}}},
                {"name": "db_password", "valueFrom": {"secretKeyRef": {"name": "spinapp-secret", "key": "password", "optional": false}}},
                {"name": "pod_namespace", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "cpu", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
            ],
            "invocationLimits": {"memory": "40M"},
            "components": ["hello", "bye"],
            "env": [{"name": "ENV_VAR1", "value": "value1"}],
        }));
        let otel: OtelConfig = serde_json::from_value(json!({
            "exporter_otlp_endpoint": "http://otel:4318",
            "exporter_otlp_logs_endpoint": "http://otel:4318/logs"}))
        .expect("otel");
        let env = serde_json::to_value(env(&a, Some(&otel)).expect("env")).expect("json");
        assert_eq!(
            env,
            json!([
                {"name": "SPIN_VARIABLE_PLATFORM_NAME", "value": "Kubernetes"},
                {"name": "SPIN_VARIABLE_LOG_LEVEL", "valueFrom": {"configMapKeyRef": {"key": "logLevel", "name": "spinapp-cfg", "optional": true}}},
                {"name": "SPIN_VARIABLE_DB_PASSWORD", "valueFrom": {"secretKeyRef": {"key": "password", "name": "spinapp-secret", "optional": false}}},
                {"name": "SPIN_VARIABLE_POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "SPIN_VARIABLE_CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
                {"name": "SPIN_HTTP_LISTEN_ADDR", "value": "0.0.0.0:80"},
                {"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "http://otel:4318"},
                {"name": "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "value": "http://otel:4318/logs"},
                {"name": "SPIN_MAX_INSTANCE_MEMORY", "value": "40000000"},
                {"name": "SPIN_COMPONENTS_TO_RETAIN", "value": "hello,bye"},
                {"name": "ENV_VAR1", "value": "value1"},
            ])
        );
        let bad = app(json!({"image": "x", "invocationLimits": {"memory": "lots"}}));
        assert_eq!(env_err(&bad), BuildError::InvocationMemory("lots".into()));
    }

    fn env_err(a: &SpinApp) -> BuildError {
        match env(a, None) {
            Ok(_) => panic!("expected an error"),
            Err(e) => e,
        }
    }

    #[test]
    fn probes_default_as_the_crd_does() {
        let a = app(json!({"image": "x", "replicas": 1, "checks": {
            "liveness": {"httpGet": {"path": "/hello"}},
            "readiness": {"httpGet": {"path": "/go-hello", "httpHeaders": [{"name": "a", "value": "b"}]}, "periodSeconds": 3},
        }}));
        let d = built(&a, &executor(json!({"runtimeClassName": "r"})), None);
        let c = &d["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(
            c["livenessProbe"],
            json!({"httpGet": {"path": "/hello", "port": 80}, "initialDelaySeconds": 10,
                "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3})
        );
        assert_eq!(c["readinessProbe"]["periodSeconds"], 3);
        assert_eq!(
            c["readinessProbe"]["httpGet"]["httpHeaders"],
            json!([{"name": "a", "value": "b"}])
        );
        let no_get = app(json!({"image": "x", "checks": {"liveness": {"periodSeconds": 3}}}));
        let e = build(&Inputs {
            app: &no_get,
            group: "g",
            executor: &executor(json!({"runtimeClassName": "r"})),
            runtime_config_secret: None,
            owner: owner(),
        });
        assert_eq!(e.err(), Some(BuildError::Probe("liveness")));
    }

    #[test]
    fn customized_app_metadata_resources_and_volumes() {
        let a = app(json!({
            "image": "x", "replicas": 3,
            "imagePullSecrets": [{"name": "spin-image-secret"}],
            "serviceAccountName": "runner",
            "podAnnotations": {"key": "value"}, "deploymentAnnotations": {"d": "1"},
            "podLabels": {"team": "a"},
            "resources": {"limits": {"cpu": "1", "memory": "512Mi"}, "requests": {"cpu": "0.5", "memory": "256Mi"}},
            "volumes": [{"name": "data", "emptyDir": {}}],
            "volumeMounts": [{"name": "data", "mountPath": "/mnt/data"}],
        }));
        let ex = executor(json!({"runtimeClassName": "r", "installDefaultCACerts": true}));
        let d = built(&a, &ex, Some("gen"));
        let pod = &d["spec"]["template"];
        assert_eq!(d["metadata"]["annotations"], json!({"d": "1"}));
        assert_eq!(pod["metadata"]["annotations"], json!({"key": "value"}));
        assert_eq!(pod["metadata"]["labels"]["team"], "a");
        assert_eq!(pod["spec"]["serviceAccountName"], "runner");
        assert_eq!(
            pod["spec"]["imagePullSecrets"],
            json!([{"name": "spin-image-secret"}])
        );
        let c = &pod["spec"]["containers"][0];
        assert_eq!(c["resources"]["limits"]["memory"], "512Mi");
        let names: Vec<&str> = pod["spec"]["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .map(|v| v["name"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(names, ["spin-runtime-config", "data", "spin-ca"]);
        let paths: Vec<&str> = c["volumeMounts"]
            .as_array()
            .expect("mounts")
            .iter()
            .map(|v| v["mountPath"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(
            paths,
            [
                "/runtime-config.toml",
                "/mnt/data",
                "/etc/ssl/certs/ca-certificates.crt"
            ]
        );
        assert_eq!(pod["spec"]["volumes"][2]["secret"]["secretName"], "spin-ca");
    }

    #[test]
    fn autoscaling_spin_image_and_runtime_errors() {
        let auto = app(json!({"image": "x", "enableAutoscaling": true}));
        let d = built(&auto, &executor(json!({"runtimeClassName": "r"})), None);
        assert!(d["spec"].get("replicas").is_none());
        let d = built(
            &auto,
            &executor(json!({"spinImage": "ghcr.io/fermyon/spin:v2.7.0"})),
            None,
        );
        assert!(d["spec"]["template"]["spec"]
            .get("runtimeClassName")
            .is_none());
        assert_eq!(d["spec"]["template"]["spec"]["containers"][0]["image"], "x");
        let none = build(&Inputs {
            app: &auto,
            group: "g",
            executor: &SpinAppExecutorSpec {
                create_deployment: true,
                deployment_config: None,
            },
            runtime_config_secret: None,
            owner: owner(),
        });
        assert_eq!(none.err(), Some(BuildError::NoRuntime));
        let user = app(json!({"image": "x", "runtimeConfig": {"loadFromSecret": "mine"}}));
        let d = built(&user, &executor(json!({"runtimeClassName": "r"})), None);
        assert_eq!(
            d["spec"]["template"]["spec"]["volumes"][0]["secret"]["secretName"],
            "mine"
        );
        let both = build(&Inputs {
            app: &user,
            group: "g",
            executor: &executor(json!({"runtimeClassName": "r"})),
            runtime_config_secret: Some("gen"),
            owner: owner(),
        });
        assert_eq!(both.err(), Some(BuildError::TwoRuntimeConfigs));
    }
}

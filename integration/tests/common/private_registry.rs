//! A registry that wants credentials, as SpinKube's private-registry tutorial has one:
//! Debian's `docker-registry` with htpasswd (bcrypt) auth in the test's network
//! namespace, and the Docker config `spin registry login` would write for it; and `spinlet
//! push` into a namespace's registries, with or without that login. Owns no server and no
//! pods: the Secrets and pods that pull from it are the tests'.

use std::path::{Path, PathBuf};

use base64::Engine;

use super::pods::{registry_on, Killed, Netns};
use super::spinlet_bin;

/// A running registry on 127.0.0.1:`port` that lets in one user; stopped on drop.
pub struct PrivateRegistry {
    _registry: Killed,
    /// The directory holding `config.json` with the login (`DOCKER_CONFIG`).
    pub docker_config: PathBuf,
}

impl PrivateRegistry {
    /// Starts one in `ns` on 127.0.0.1:`port`, storing under `dir` (its htpasswd and the
    /// Docker config too), that lets in `user` with `password`.
    pub fn start(ns: &Netns, dir: &Path, port: u16, user: &str, password: &str) -> Self {
        std::fs::create_dir_all(dir).expect("registry dir");
        let htpasswd = dir.join("htpasswd");
        std::fs::write(
            &htpasswd,
            format!("{user}:{}\n", bcrypt::hash(password, 4).expect("bcrypt")),
        )
        .expect("htpasswd");
        let auth = format!(
            "auth:\n  htpasswd:\n    realm: spinlet-test\n    path: {}\n",
            htpasswd.display()
        );
        let registry = registry_on(ns, dir, port, &auth);
        let docker_config = dir.join("docker");
        std::fs::create_dir_all(&docker_config).expect("docker config dir");
        let login = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        std::fs::write(
            docker_config.join("config.json"),
            format!(r#"{{"auths":{{"127.0.0.1:{port}":{{"auth":"{login}"}}}}}}"#),
        )
        .expect("docker config");
        PrivateRegistry {
            _registry: registry,
            docker_config,
        }
    }

    /// `spinlet push <app> <reference>` in `ns` with this registry's login.
    pub fn push(&self, ns: &Netns, app: &Path, reference: &str) {
        push_with(ns, app, reference, Some(&self.docker_config));
    }
}

/// `spinlet push <app> <reference>` in `ns`, without credentials.
pub fn push(ns: &Netns, app: &Path, reference: &str) {
    push_with(ns, app, reference, None);
}

fn push_with(ns: &Netns, app: &Path, reference: &str, docker_config: Option<&Path>) {
    let mut cmd = ns.cmd(&spinlet_bin().to_string_lossy());
    if let Some(dir) = docker_config {
        cmd.env("DOCKER_CONFIG", dir);
    }
    let out = cmd
        .arg("push")
        .arg(app)
        .arg(reference)
        .output()
        .expect("run spinlet push");
    assert!(
        out.status.success(),
        "spinlet push {reference}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

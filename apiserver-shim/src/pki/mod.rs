//! The cluster's PKI and client credentials, created on first start as k3s does: a cluster
//! CA (`ca.rs`), the leaf certificates it signs — the serving certificate, an admin client
//! certificate (`O=system:masters`) and the client certificate the API server shows
//! kubelets — renewed at start within 90 days of expiry (`leaf.rs`), the join token in
//! k3s's secure format whose secret is the bearer token (`token.rs`), the fetch of a
//! server's CA checked against a join token (`join.rs`), `certificate rotate`'s move to a
//! backup dir ([`rotate`]), and the kubeconfig that carries them. Keys and the kubeconfig
//! are written 0600.
//!
//! Layout under the data dir:
//! `server/tls/{server-ca,serving,client-admin,client-kube-apiserver-kubelet}.{crt,key}`,
//! `server/token` (and `server/node-token`, a symlink to it, as k3s has), backups in
//! `server/tls-<unix seconds>/`. It only writes files; the TLS server setup is `tls.rs`.

pub mod ca;
pub mod join;
pub mod leaf;
pub mod token;

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use time::OffsetDateTime;

pub use leaf::{CertInfo, Issued, Leaf, Reason};

/// Errors while creating or loading credentials.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Certificate generation or parsing failed.
    #[error("certificate {what}: {source}")]
    Cert {
        /// Which certificate.
        what: &'static str,
        /// The rcgen error.
        #[source]
        source: rcgen::Error,
    },
    /// A certificate file does not hold a readable certificate.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The token file does not hold a join token.
    #[error("{path}: {source}")]
    Token {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: token::TokenError,
    },
    /// `certificate rotate --service` named no service this server has.
    #[error(
        "--service: {name:?} is not a service with certificates here (services: admin, api-server)"
    )]
    UnknownService {
        /// The name given.
        name: String,
    },
    /// Rotation needs the CA that signs the new certificates.
    #[error(
        "no cluster CA in {tls}: the server has not run with this data dir (nothing to rotate)"
    )]
    NoCa {
        /// The folder searched.
        tls: PathBuf,
    },
}

type Result<T> = std::result::Result<T, PkiError>;

/// The credentials the server and its admin use, as PEM.
#[derive(Clone)]
pub struct Pki {
    /// The CA certificate.
    pub ca_cert: String,
    /// The serving certificate.
    pub serving_cert: String,
    /// The serving key.
    pub serving_key: String,
    /// The admin client certificate.
    pub admin_cert: String,
    /// The admin client key.
    pub admin_key: String,
    /// The client certificate the API server shows kubelets (pods/log, nodes/proxy).
    pub kubelet_client_cert: String,
    /// Its key.
    pub kubelet_client_key: String,
    /// The bearer token accepted for the admin (the join token's secret).
    pub token: String,
    /// The join token, `K10<sha256 of the CA>::server:<token>`, as in `server/token`.
    pub join_token: String,
    /// The leaf certificates written by this call and why (renewals among them are what
    /// the server reports as warning events).
    pub issued: Vec<Issued>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn cert(what: &'static str) -> impl FnOnce(rcgen::Error) -> PkiError {
    move |source| PkiError::Cert { what, source }
}

/// Writes a file atomically with the given mode.
pub fn write_private(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(contents).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode)).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))?;
    Ok(())
}

fn read(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(path)(e)),
    }
}

/// The `server/tls` folder of a data dir.
pub fn tls_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("server").join("tls")
}

/// The names every serving certificate carries, as k3s's (plus loopback and the
/// `kubernetes` Service's first address).
const DEFAULT_NAMES: [&str; 8] = [
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
    "127.0.0.1",
    "::1",
    "10.43.0.1",
];

/// Loads the credentials under `data_dir`, creating what is missing and renewing leaf
/// certificates within [`leaf::RENEW_WITHIN_DAYS`] of expiry (each renewal logged as a
/// warning and listed in [`Pki::issued`]). `sans` are the extra DNS names and IP addresses
/// for the serving certificate.
pub fn ensure(data_dir: &Path, sans: &[String]) -> Result<Pki> {
    let tls = tls_dir(data_dir);
    let ca = ca::ensure(&tls)?;
    let mut names: Vec<String> = DEFAULT_NAMES.iter().map(|n| n.to_string()).collect();
    for s in sans {
        if !names.contains(s) {
            names.push(s.clone());
        }
    }
    let now = OffsetDateTime::now_utc();
    let mut issued = Vec::new();
    let mut get = |l: Leaf| -> Result<(String, String)> {
        let (c, k, done) = leaf::ensure(l, &tls, &ca, &names, now)?;
        if let Some(done) = done {
            log_issued(&done);
            issued.push(done);
        }
        Ok((c, k))
    };
    let (serving_cert, serving_key) = get(Leaf::Serving)?;
    let (admin_cert, admin_key) = get(Leaf::Admin)?;
    let (kc_cert, kc_key) = get(Leaf::KubeletClient)?;

    let server = data_dir.join("server");
    let (join_token, token) = token::ensure_server_token(&server.join("token"), &ca.pem)?;
    let node_token = server.join("node-token");
    if std::fs::symlink_metadata(&node_token).is_err() {
        std::os::unix::fs::symlink("token", &node_token).map_err(io(&node_token))?;
    }
    Ok(Pki {
        ca_cert: ca.pem,
        serving_cert,
        serving_key,
        admin_cert,
        admin_key,
        kubelet_client_cert: kc_cert,
        kubelet_client_key: kc_key,
        token,
        join_token,
        issued,
    })
}

/// An RFC 3339 time for unix seconds.
pub fn rfc3339(unix: i64) -> String {
    jiff::Timestamp::from_second(unix)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| unix.to_string())
}

fn log_issued(done: &Issued) {
    let file = done.file.display();
    let until = rfc3339(done.not_after);
    match done.reason {
        Reason::Renewed { was } => tracing::warn!(
            %file,
            subject = %done.subject,
            expired_at = %rfc3339(was),
            "certificate {file} would expire within {} days (at {}): renewed with the same key until {until}",
            leaf::RENEW_WITHIN_DAYS,
            rfc3339(was),
        ),
        Reason::Created => tracing::info!(%file, %until, "certificate created"),
        Reason::NamesChanged => {
            tracing::info!(%file, %until, "serving certificate re-issued for new names")
        }
        Reason::OtherCa => tracing::warn!(
            %file,
            %until,
            "certificate was not signed by the cluster CA: re-issued"
        ),
    }
}

/// What [`rotate`] did.
pub struct Rotated {
    /// Where the old files went.
    pub backup: PathBuf,
    /// The files moved there (their old paths).
    pub moved: Vec<PathBuf>,
    /// The credentials with the new certificates.
    pub pki: Pki,
}

/// `certificate rotate`: moves the leaf certificates and keys of `services` (k3s's names:
/// `admin`, `api-server`; none: all) to `server/tls-<unix seconds>/` and issues new ones
/// signed by the same CA, the serving certificate for the names the old one had. The
/// caller makes sure no server runs on `data_dir`.
pub fn rotate(data_dir: &Path, services: &[String]) -> Result<Rotated> {
    for s in services {
        if !Leaf::ALL.iter().any(|l| l.service() == s) {
            return Err(PkiError::UnknownService { name: s.clone() });
        }
    }
    let tls = tls_dir(data_dir);
    if read(&tls.join("server-ca.crt"))?.is_none() || read(&tls.join("server-ca.key"))?.is_none() {
        return Err(PkiError::NoCa { tls });
    }
    let serving = Leaf::Serving.cert_path(&tls);
    let sans = match read(&serving)? {
        Some(pem) => leaf::inspect(&serving, &pem)?.names,
        None => Vec::new(),
    };
    let stamp = jiff::Timestamp::now().as_second();
    let server = data_dir.join("server");
    let mut backup = server.join(format!("tls-{stamp}"));
    let mut n = 1;
    while backup.exists() {
        backup = server.join(format!("tls-{stamp}.{n}"));
        n += 1;
    }
    std::fs::create_dir_all(&backup).map_err(io(&backup))?;
    std::fs::set_permissions(&backup, std::fs::Permissions::from_mode(0o700))
        .map_err(io(&backup))?;
    let mut moved = Vec::new();
    for l in Leaf::ALL
        .into_iter()
        .filter(|l| services.is_empty() || services.iter().any(|s| s == l.service()))
    {
        for path in [l.cert_path(&tls), l.key_path(&tls)] {
            let Some(name) = path.file_name() else {
                continue;
            };
            match std::fs::rename(&path, backup.join(name)) {
                Ok(()) => moved.push(path),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(&path)(e)),
            }
        }
    }
    let pki = ensure(data_dir, &sans)?;
    Ok(Rotated { backup, moved, pki })
}

/// The CA and leaf certificates present under `data_dir`, with what each says of itself.
pub fn certificates(data_dir: &Path) -> Result<Vec<(PathBuf, CertInfo)>> {
    let tls = tls_dir(data_dir);
    let files = std::iter::once(tls.join("server-ca.crt"))
        .chain(Leaf::ALL.iter().map(|l| l.cert_path(&tls)));
    let mut out = Vec::new();
    for path in files {
        if let Some(pem) = read(&path)? {
            let info = leaf::inspect(&path, &pem)?;
            out.push((path, info));
        }
    }
    Ok(out)
}

/// The admin kubeconfig for `server` (e.g. `https://127.0.0.1:6443`).
pub fn kubeconfig(pki: &Pki, server: &str) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    format!(
        "apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority-data: {ca}
    server: {server}
  name: default
contexts:
- context:
    cluster: default
    user: default
  name: default
current-context: default
preferences: {{}}
users:
- name: default
  user:
    client-certificate-data: {cert}
    client-key-data: {key}
",
        ca = b64(&pki.ca_cert),
        cert = b64(&pki.admin_cert),
        key = b64(&pki.admin_key),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotate_moves_the_chosen_leaves_and_keeps_the_ca() {
        let dir = tempfile::tempdir().unwrap();
        let first = ensure(dir.path(), &["edge-1".into()]).unwrap();
        assert_eq!(first.issued.len(), 3);
        assert!(first.join_token.starts_with("K10"));
        let again = ensure(dir.path(), &["edge-1".into()]).unwrap();
        assert!(
            again.issued.is_empty(),
            "nothing to renew on a second start"
        );
        assert_eq!(again.serving_cert, first.serving_cert);

        let e = rotate(dir.path(), &["etcd".into()]).err().unwrap();
        assert!(e.to_string().contains("\"etcd\""), "{e}");
        let r = rotate(dir.path(), &["admin".into()]).unwrap();
        let tls = tls_dir(dir.path());
        assert_eq!(
            r.moved,
            vec![tls.join("client-admin.crt"), tls.join("client-admin.key")]
        );
        assert_eq!(
            std::fs::read_to_string(r.backup.join("client-admin.crt")).unwrap(),
            first.admin_cert
        );
        assert_ne!(r.pki.admin_cert, first.admin_cert);
        assert_ne!(r.pki.admin_key, first.admin_key);
        assert_eq!(r.pki.serving_cert, first.serving_cert);
        assert_eq!(r.pki.ca_cert, first.ca_cert);
        assert_eq!(r.pki.join_token, first.join_token);

        // All of them; the serving certificate keeps the names it had.
        let r = rotate(dir.path(), &[]).unwrap();
        assert_eq!(r.moved.len(), 6);
        let names = leaf::inspect(&tls, &r.pki.serving_cert).unwrap().names;
        assert!(names.contains(&"edge-1".to_string()), "{names:?}");
        assert_ne!(r.pki.serving_cert, first.serving_cert);

        let empty = tempfile::tempdir().unwrap();
        let e = rotate(empty.path(), &[]).err().unwrap();
        assert!(e.to_string().contains("no cluster CA"), "{e}");
    }
}

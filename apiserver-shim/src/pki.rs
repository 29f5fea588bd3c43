//! The cluster's PKI and client credentials, created on first start like k3s does:
//! a cluster CA, a serving certificate (re-issued at every start, so new hostnames and
//! addresses are covered), an admin client certificate (`O=system:masters`), the client
//! certificate the API server shows kubelets (`CN=kube-apiserver-kubelet-client`,
//! `O=system:masters`, as kubeadm's `apiserver-kubelet-client`), a bearer token, and the
//! kubeconfig that carries them. Keys and the kubeconfig are written 0600.
//!
//! Layout under the data dir:
//! `server/tls/{server-ca,serving,client-admin,client-kube-apiserver-kubelet}.{crt,key}`
//! and `server/token`. It only writes files; the TLS server setup is `tls.rs`.

use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

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
    /// The bearer token accepted for the admin.
    pub token: String,
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

fn dn(cn: &str, org: Option<&str>) -> DistinguishedName {
    let mut d = DistinguishedName::new();
    d.push(DnType::CommonName, cn);
    if let Some(o) = org {
        d.push(DnType::OrganizationName, o);
    }
    d
}

/// Loads the credentials under `data_dir`, creating what is missing. `sans` are the extra
/// DNS names and IP addresses for the serving certificate.
pub fn ensure(data_dir: &Path, sans: &[String]) -> Result<Pki> {
    let tls = data_dir.join("server").join("tls");
    let ca_crt = tls.join("server-ca.crt");
    let ca_key = tls.join("server-ca.key");
    let (ca_cert_pem, ca_key_pem) = match (read(&ca_crt)?, read(&ca_key)?) {
        (Some(c), Some(k)) => (c, k),
        _ => {
            let key = KeyPair::generate().map_err(cert("CA key"))?;
            let mut p = CertificateParams::default();
            let stamp = jiff::Timestamp::now().as_second();
            p.distinguished_name = dn(&format!("spinlet-server-ca@{stamp}"), None);
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            p.not_after = rcgen::date_time_ymd(2036, 1, 1);
            let c = p.self_signed(&key).map_err(cert("CA"))?;
            write_private(&ca_key, key.serialize_pem().as_bytes(), 0o600)?;
            write_private(&ca_crt, c.pem().as_bytes(), 0o644)?;
            (c.pem(), key.serialize_pem())
        }
    };
    let ca_signing = KeyPair::from_pem(&ca_key_pem).map_err(cert("CA key"))?;
    let issuer = Issuer::from_ca_cert_pem(&ca_cert_pem, ca_signing).map_err(cert("CA"))?;

    // Serving certificate: re-issued every start.
    let mut names: Vec<String> = vec![
        "localhost".into(),
        "kubernetes".into(),
        "kubernetes.default".into(),
        "kubernetes.default.svc".into(),
        "kubernetes.default.svc.cluster.local".into(),
        "127.0.0.1".into(),
        "::1".into(),
        "10.43.0.1".into(),
    ];
    for s in sans {
        if !names.contains(s) {
            names.push(s.clone());
        }
    }
    let mut p = CertificateParams::default();
    p.distinguished_name = dn("spinlet", Some("spinlet"));
    p.subject_alt_names = names
        .iter()
        .filter_map(|n| match n.parse::<IpAddr>() {
            Ok(ip) => Some(SanType::IpAddress(ip)),
            Err(_) => n.as_str().try_into().ok().map(SanType::DnsName),
        })
        .collect();
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let key = KeyPair::generate().map_err(cert("serving key"))?;
    let serving = p.signed_by(&key, &issuer).map_err(cert("serving"))?;
    let serving_cert = format!("{}{}", serving.pem(), ca_cert_pem);
    let serving_key = key.serialize_pem();
    write_private(&tls.join("serving.crt"), serving_cert.as_bytes(), 0o644)?;
    write_private(&tls.join("serving.key"), serving_key.as_bytes(), 0o600)?;

    // Client certificates: created once.
    let (admin_cert, admin_key) = client_cert(
        &tls.join("client-admin.crt"),
        &tls.join("client-admin.key"),
        dn("system:admin", Some("system:masters")),
        &issuer,
        "admin",
    )?;
    let (kubelet_client_cert, kubelet_client_key) = client_cert(
        &tls.join("client-kube-apiserver-kubelet.crt"),
        &tls.join("client-kube-apiserver-kubelet.key"),
        dn("kube-apiserver-kubelet-client", Some("system:masters")),
        &issuer,
        "kubelet client",
    )?;

    let token_path = data_dir.join("server").join("token");
    let token = match read(&token_path)? {
        Some(t) if !t.trim().is_empty() => t.trim().to_string(),
        _ => {
            use rand::Rng;
            let bytes: [u8; 24] = rand::rng().random();
            let t = hex(&bytes);
            write_private(&token_path, format!("{t}\n").as_bytes(), 0o600)?;
            t
        }
    };
    Ok(Pki {
        ca_cert: ca_cert_pem,
        serving_cert,
        serving_key,
        admin_cert,
        admin_key,
        kubelet_client_cert,
        kubelet_client_key,
        token,
    })
}

/// A client certificate signed by the CA, read from `crt`/`key` or created there.
fn client_cert(
    crt: &Path,
    key_path: &Path,
    subject: DistinguishedName,
    issuer: &Issuer<'_, KeyPair>,
    what: &'static str,
) -> Result<(String, String)> {
    if let (Some(c), Some(k)) = (read(crt)?, read(key_path)?) {
        return Ok((c, k));
    }
    let mut p = CertificateParams::default();
    p.distinguished_name = subject;
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let key = KeyPair::generate().map_err(cert(what))?;
    let c = p.signed_by(&key, issuer).map_err(cert(what))?;
    write_private(key_path, key.serialize_pem().as_bytes(), 0o600)?;
    write_private(crt, c.pem().as_bytes(), 0o644)?;
    Ok((c.pem(), key.serialize_pem()))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
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

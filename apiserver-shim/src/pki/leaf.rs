//! The leaf certificates the CA signs — the API server's serving certificate, the admin
//! client certificate and the client certificate the API server shows kubelets — and k3s's
//! rule for them: valid 365 days, renewed at start when within 90 days of expiry (keeping
//! the key), re-issued when missing, signed by another CA, or (serving) not covering the
//! names asked for. Also reads a certificate file's subject, names, usages and validity.
//!
//! Writes only the two files of the leaf it is asked about; knows nothing of the token or
//! the kubeconfig.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair,
    KeyUsagePurpose, SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};

use super::ca::Ca;
use super::{cert, read, write_private, PkiError, Result};

/// A leaf is renewed at start when it expires within this many days (k3s's
/// `CertificateRenewDays` before May 2025; issue 16 asks for 90).
pub const RENEW_WITHIN_DAYS: i64 = 90;

/// How long a new leaf is valid (k3s: one year).
pub const VALIDITY_DAYS: i64 = 365;

/// One of the server's leaf certificates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leaf {
    /// The API server's serving certificate (`serving.crt`, the CA appended).
    Serving,
    /// The admin client certificate (`client-admin.crt`, `O=system:masters`).
    Admin,
    /// The client certificate the API server shows kubelets for logs, exec and proxy
    /// (`client-kube-apiserver-kubelet.crt`), as kubeadm's `apiserver-kubelet-client`.
    KubeletClient,
}

impl Leaf {
    /// Every leaf, in the order they are created.
    pub const ALL: [Leaf; 3] = [Leaf::Serving, Leaf::Admin, Leaf::KubeletClient];

    /// The file name without extension, under `server/tls/`.
    pub fn stem(self) -> &'static str {
        match self {
            Leaf::Serving => "serving",
            Leaf::Admin => "client-admin",
            Leaf::KubeletClient => "client-kube-apiserver-kubelet",
        }
    }

    /// The k3s service name `certificate rotate --service` selects it by.
    pub fn service(self) -> &'static str {
        match self {
            Leaf::Serving | Leaf::KubeletClient => "api-server",
            Leaf::Admin => "admin",
        }
    }

    /// The certificate file under `tls`.
    pub fn cert_path(self, tls: &Path) -> PathBuf {
        tls.join(format!("{}.crt", self.stem()))
    }

    /// The key file under `tls`.
    pub fn key_path(self, tls: &Path) -> PathBuf {
        tls.join(format!("{}.key", self.stem()))
    }

    fn subject(self) -> DistinguishedName {
        let (cn, org) = match self {
            Leaf::Serving => ("spinlet", "spinlet"),
            Leaf::Admin => ("system:admin", "system:masters"),
            Leaf::KubeletClient => ("kube-apiserver-kubelet-client", "system:masters"),
        };
        let mut d = DistinguishedName::new();
        d.push(DnType::CommonName, cn);
        d.push(DnType::OrganizationName, org);
        d
    }

    fn what(self) -> &'static str {
        match self {
            Leaf::Serving => "serving",
            Leaf::Admin => "admin client",
            Leaf::KubeletClient => "kubelet client",
        }
    }
}

/// What a certificate file says about itself.
#[derive(Clone, Debug)]
pub struct CertInfo {
    /// The subject, e.g. `CN=system:admin, O=system:masters`.
    pub subject: String,
    /// Its DNS and IP subject alternative names.
    pub names: Vec<String>,
    /// `server`, `client`, `ca`.
    pub usages: Vec<&'static str>,
    /// Not valid before (unix seconds).
    pub not_before: i64,
    /// Not valid after (unix seconds).
    pub not_after: i64,
}

/// Reads the first certificate of a PEM file's text.
pub fn inspect(path: &Path, pem: &str) -> Result<CertInfo> {
    parsed(path, pem, |c| {
        let mut usages = Vec::new();
        if c.is_ca() {
            usages.push("ca");
        }
        if let Ok(Some(eku)) = c.extended_key_usage() {
            if eku.value.server_auth {
                usages.push("server");
            }
            if eku.value.client_auth {
                usages.push("client");
            }
        }
        let mut names = Vec::new();
        if let Ok(Some(san)) = c.subject_alternative_name() {
            for n in &san.value.general_names {
                match n {
                    x509_parser::extensions::GeneralName::DNSName(d) => names.push(d.to_string()),
                    x509_parser::extensions::GeneralName::IPAddress(b) => {
                        if let Some(ip) = ip_from(b) {
                            names.push(ip.to_string());
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(CertInfo {
            subject: c.subject().to_string(),
            names,
            usages,
            not_before: c.validity().not_before.timestamp(),
            not_after: c.validity().not_after.timestamp(),
        })
    })
}

fn ip_from(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

fn parsed<T>(
    path: &Path,
    pem: &str,
    f: impl FnOnce(&x509_parser::certificate::X509Certificate<'_>) -> Result<T>,
) -> Result<T> {
    let bad = |message: String| PkiError::Parse {
        path: path.to_path_buf(),
        message,
    };
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|e| bad(format!("not a PEM certificate: {e}")))?;
    let cert = block
        .parse_x509()
        .map_err(|e| bad(format!("not an X.509 certificate: {e}")))?;
    f(&cert)
}

/// Whether the certificate in `pem` is signed by `ca`.
fn signed_by(path: &Path, pem: &str, ca: &Ca) -> Result<bool> {
    let (_, ca_block) =
        x509_parser::pem::parse_x509_pem(ca.pem.as_bytes()).map_err(|e| PkiError::Parse {
            path: path.to_path_buf(),
            message: format!("the CA certificate: {e}"),
        })?;
    let ca_cert = ca_block.parse_x509().map_err(|e| PkiError::Parse {
        path: path.to_path_buf(),
        message: format!("the CA certificate: {e}"),
    })?;
    parsed(path, pem, |c| {
        Ok(c.verify_signature(Some(ca_cert.public_key())).is_ok())
    })
}

/// Why a leaf was (re-)issued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// There was none (first start, or moved away by `certificate rotate`).
    Created,
    /// It expired, or would within [`RENEW_WITHIN_DAYS`], at `was` (unix seconds).
    Renewed {
        /// The old certificate's not-after.
        was: i64,
    },
    /// The serving certificate did not cover every name asked for.
    NamesChanged,
    /// Another CA signed it.
    OtherCa,
}

/// A leaf written at this start.
#[derive(Clone, Debug)]
pub struct Issued {
    /// Which one.
    pub leaf: Leaf,
    /// Its certificate file.
    pub file: PathBuf,
    /// Its subject.
    pub subject: String,
    /// Why.
    pub reason: Reason,
    /// The new not-after (unix seconds).
    pub not_after: i64,
}

/// The leaf's certificate (PEM, the CA appended for the serving one) and key, read from
/// `tls` or (re-)issued there by the rules in the module doc. `names` are the serving
/// certificate's DNS names and addresses (ignored for client certificates).
pub fn ensure(
    leaf: Leaf,
    tls: &Path,
    ca: &Ca,
    names: &[String],
    now: OffsetDateTime,
) -> Result<(String, String, Option<Issued>)> {
    let (crt, key_path) = (leaf.cert_path(tls), leaf.key_path(tls));
    let existing = match (read(&crt)?, read(&key_path)?) {
        (Some(c), Some(k)) => Some((c, k)),
        _ => None,
    };
    let reason = match &existing {
        None => Some(Reason::Created),
        Some((pem, _)) => {
            let info = inspect(&crt, pem)?;
            if !signed_by(&crt, pem, ca)? {
                Some(Reason::OtherCa)
            } else if info.not_after - now.unix_timestamp() < RENEW_WITHIN_DAYS * 86_400 {
                Some(Reason::Renewed {
                    was: info.not_after,
                })
            } else if leaf == Leaf::Serving && !names.iter().all(|n| covers(&info.names, n)) {
                Some(Reason::NamesChanged)
            } else {
                None
            }
        }
    };
    let Some(reason) = reason else {
        let (c, k) = existing.unwrap_or_default();
        return Ok((c, k, None));
    };
    // A renewal keeps the key (k3s's LoadOrGenerateKeyFile); anything else makes one.
    let key = match (&reason, &existing) {
        (Reason::Renewed { .. } | Reason::NamesChanged, Some((_, k))) => KeyPair::from_pem(k)
            .map_err(|source| PkiError::Cert {
                what: leaf.what(),
                source,
            })?,
        _ => KeyPair::generate().map_err(cert(leaf.what()))?,
    };
    let mut p = CertificateParams::default();
    p.distinguished_name = leaf.subject();
    p.not_before = now - Duration::hours(1);
    p.not_after = now + Duration::days(VALIDITY_DAYS);
    use rand::Rng;
    let serial: [u8; 16] = rand::rng().random();
    p.serial_number = Some(SerialNumber::from_slice(&serial));
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    if leaf == Leaf::Serving {
        p.key_usages.push(KeyUsagePurpose::KeyEncipherment);
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        p.subject_alt_names = names
            .iter()
            .filter_map(|n| match n.parse::<IpAddr>() {
                Ok(ip) => Some(SanType::IpAddress(ip)),
                Err(_) => n.as_str().try_into().ok().map(SanType::DnsName),
            })
            .collect();
    } else {
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    }
    let signed = p.signed_by(&key, &ca.issuer).map_err(cert(leaf.what()))?;
    let cert_pem = match leaf {
        Leaf::Serving => format!("{}{}", signed.pem(), ca.pem),
        _ => signed.pem(),
    };
    let key_pem = key.serialize_pem();
    write_private(&key_path, key_pem.as_bytes(), 0o600)?;
    write_private(&crt, cert_pem.as_bytes(), 0o644)?;
    let info = inspect(&crt, &cert_pem)?;
    let issued = Issued {
        leaf,
        file: crt,
        subject: info.subject,
        reason,
        not_after: info.not_after,
    };
    Ok((cert_pem, key_pem, Some(issued)))
}

/// Whether a certificate's names cover `name` (IP addresses compared as addresses).
fn covers(have: &[String], name: &str) -> bool {
    match name.parse::<IpAddr>() {
        Ok(ip) => have.iter().any(|h| h.parse::<IpAddr>().ok() == Some(ip)),
        Err(_) => have.iter().any(|h| h.eq_ignore_ascii_case(name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca(dir: &Path) -> Ca {
        super::super::ca::ensure(dir).unwrap()
    }

    #[test]
    fn leaves_are_kept_then_renewed_near_expiry_with_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ca(dir.path());
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let now = OffsetDateTime::now_utc();
        let (c1, k1, issued) = ensure(Leaf::Admin, dir.path(), &ca, &names, now).unwrap();
        assert_eq!(issued.unwrap().reason, Reason::Created);
        let info = inspect(dir.path(), &c1).unwrap();
        assert_eq!(info.usages, vec!["client"]);
        assert!(info.subject.contains("system:admin"), "{}", info.subject);
        let year = info.not_after - now.unix_timestamp();
        assert!((364 * 86_400..=366 * 86_400).contains(&year), "{year}");
        // Nothing to do a day later.
        let (c2, _, issued) = ensure(
            Leaf::Admin,
            dir.path(),
            &ca,
            &names,
            now + Duration::days(1),
        )
        .unwrap();
        assert!(issued.is_none());
        assert_eq!(c1, c2);
        // 300 days later it is within 90 days: renewed, same key.
        let later = now + Duration::days(300);
        let (c3, k3, issued) = ensure(Leaf::Admin, dir.path(), &ca, &names, later).unwrap();
        let issued = issued.unwrap();
        assert_eq!(
            issued.reason,
            Reason::Renewed {
                was: info.not_after
            }
        );
        assert_ne!(c3, c1);
        assert_eq!(k3, k1);
        assert!(inspect(dir.path(), &c3).unwrap().not_after > info.not_after);
    }

    #[test]
    fn serving_follows_names_and_the_ca() {
        let dir = tempfile::tempdir().unwrap();
        let ca1 = ca(dir.path());
        let now = OffsetDateTime::now_utc();
        let names = vec!["localhost".to_string(), "10.0.0.1".to_string()];
        let (c, _, _) = ensure(Leaf::Serving, dir.path(), &ca1, &names, now).unwrap();
        let info = inspect(dir.path(), &c).unwrap();
        assert_eq!(info.names, names);
        assert_eq!(info.usages, vec!["server"]);
        assert!(c.ends_with(&ca1.pem), "the chain carries the CA");
        // A subset of names: kept.
        let (_, _, issued) = ensure(Leaf::Serving, dir.path(), &ca1, &names[..1], now).unwrap();
        assert!(issued.is_none());
        let more = vec!["localhost".into(), "10.0.0.1".into(), "edge-1".into()];
        let (_, _, issued) = ensure(Leaf::Serving, dir.path(), &ca1, &more, now).unwrap();
        assert_eq!(issued.unwrap().reason, Reason::NamesChanged);
        // Another CA: re-issued.
        let other = tempfile::tempdir().unwrap();
        let ca2 = ca(other.path());
        let (_, _, issued) = ensure(Leaf::Serving, dir.path(), &ca2, &more, now).unwrap();
        assert_eq!(issued.unwrap().reason, Reason::OtherCa);
    }
}

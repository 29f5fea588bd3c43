//! The cluster CA (`server-ca.{crt,key}`): created on first start, valid ten years as
//! k3s's, never renewed or rotated here (leaf renewal and `certificate rotate` keep it).

use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

use super::{cert, read, write_private, Result};

/// How long a new CA is valid (k3s: ten years).
pub const VALIDITY_DAYS: i64 = 3650;

/// The CA certificate and what signs with it.
pub struct Ca {
    /// The certificate as in `server-ca.crt` (what `/cacerts` serves and the join token
    /// hashes).
    pub pem: String,
    /// The signer.
    pub issuer: Issuer<'static, KeyPair>,
}

/// Loads the CA from `tls`, creating it when either file is missing.
pub fn ensure(tls: &Path) -> Result<Ca> {
    let (crt, key) = (tls.join("server-ca.crt"), tls.join("server-ca.key"));
    let (pem, key_pem) = match (read(&crt)?, read(&key)?) {
        (Some(c), Some(k)) => (c, k),
        _ => {
            let signing = KeyPair::generate().map_err(cert("CA key"))?;
            let mut p = CertificateParams::default();
            let now = OffsetDateTime::now_utc();
            let mut dn = DistinguishedName::new();
            dn.push(
                DnType::CommonName,
                format!("spinlet-server-ca@{}", now.unix_timestamp()),
            );
            p.distinguished_name = dn;
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            p.not_before = now - Duration::hours(1);
            p.not_after = now + Duration::days(VALIDITY_DAYS);
            let c = p.self_signed(&signing).map_err(cert("CA"))?;
            write_private(&key, signing.serialize_pem().as_bytes(), 0o600)?;
            write_private(&crt, c.pem().as_bytes(), 0o644)?;
            (c.pem(), signing.serialize_pem())
        }
    };
    let signing = KeyPair::from_pem(&key_pem).map_err(cert("CA key"))?;
    let issuer = Issuer::from_ca_cert_pem(&pem, signing).map_err(cert("CA"))?;
    Ok(Ca { pem, issuer })
}

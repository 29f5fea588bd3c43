//! Authentication: who a request comes from. A client certificate that chains to the
//! cluster CA (verified by rustls during the handshake) or the bearer token from the data
//! dir authenticates; anything else is anonymous and gets 401. There is one user class,
//! the cluster admin (`system:masters`), as with k3s's admin kubeconfig.

use http::HeaderMap;

/// Who sent a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Identity {
    /// Authenticated by a client certificate signed by the cluster CA.
    ClientCert,
    /// Authenticated by the bearer token.
    Token,
}

/// Authenticates a request from its TLS peer certificate and headers.
pub fn authenticate(has_client_cert: bool, headers: &HeaderMap, token: &str) -> Option<Identity> {
    if has_client_cert {
        return Some(Identity::ClientCert);
    }
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let presented = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))?
        .trim();
    constant_time_eq(presented.as_bytes(), token.as_bytes()).then_some(Identity::Token)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() || a.is_empty() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_rules() {
        let mut h = HeaderMap::new();
        assert_eq!(authenticate(false, &h, "abc"), None);
        h.insert(http::header::AUTHORIZATION, "Bearer abd".parse().unwrap());
        assert_eq!(authenticate(false, &h, "abc"), None);
        h.insert(http::header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(authenticate(false, &h, "abc"), Some(Identity::Token));
        assert_eq!(
            authenticate(true, &HeaderMap::new(), "abc"),
            Some(Identity::ClientCert)
        );
    }
}

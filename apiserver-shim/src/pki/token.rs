//! The join token in k3s's secure format, `K10<sha256 hex of the CA bundle>::<user>:<secret>`:
//! parsing (a bare secret, as older installs have, is still a token, without a CA hash),
//! formatting, the CA hash, and the server's `server/token` file, which is written in the
//! secure format while the bearer secret inside it never changes.
//!
//! The hash is over the CA file's bytes as served at `GET /cacerts`, as k3s hashes a
//! bundle of one certificate. Owns no network code (the fetch is `join.rs`).

use std::path::Path;

use sha2::{Digest, Sha256};

use super::{read, write_private, PkiError};

/// The prefix of the secure format.
pub const PREFIX: &str = "K10";

/// The user the server's own token names (`K10<hash>::server:<secret>`).
pub const SERVER_USER: &str = "server";

/// Why a join token cannot be used.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Nothing was given.
    #[error("the join token is empty")]
    Empty,
    /// A K10 token without the `::` between hash and credentials.
    #[error("the join token starts with K10 but has no \"::\" after the CA hash (expected K10<sha256 of the CA>::<user>:<secret>)")]
    NoSeparator,
    /// The CA hash is not 64 hex digits.
    #[error("the join token's CA hash {hash:?} is not a sha256 in hex (64 characters 0-9a-f, it has {len})")]
    BadHash {
        /// The hash as given.
        hash: String,
        /// Its length.
        len: usize,
    },
    /// The credentials part is not `<user>:<secret>` with a secret.
    #[error(
        "the join token's credentials after \"::\" are not <user>:<secret> with a non-empty secret"
    )]
    BadCredentials,
    /// The secret has characters an HTTP header cannot carry.
    #[error("the join token's secret has whitespace or control characters")]
    BadSecret,
}

/// A parsed join token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinToken {
    /// The sha256 (lowercase hex) the server's CA must have, when the token carries one.
    pub ca_hash: Option<String>,
    /// The user named in a K10 token (`server`), if any.
    pub user: Option<String>,
    /// The bearer secret.
    pub secret: String,
}

impl JoinToken {
    /// Parses a token: `K10<hash>::<user>:<secret>`, `K10::<user>:<secret>` (no hash), or a
    /// bare secret.
    pub fn parse(text: &str) -> Result<JoinToken, TokenError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(TokenError::Empty);
        }
        let Some(rest) = text.strip_prefix(PREFIX) else {
            check_secret(text)?;
            return Ok(JoinToken {
                ca_hash: None,
                user: None,
                secret: text.to_string(),
            });
        };
        let (hash, credentials) = rest.split_once("::").ok_or(TokenError::NoSeparator)?;
        let ca_hash = if hash.is_empty() {
            None
        } else if hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            Some(hash.to_ascii_lowercase())
        } else {
            return Err(TokenError::BadHash {
                hash: hash.to_string(),
                len: hash.len(),
            });
        };
        let (user, secret) = credentials
            .split_once(':')
            .filter(|(_, secret)| !secret.is_empty())
            .ok_or(TokenError::BadCredentials)?;
        check_secret(secret)?;
        Ok(JoinToken {
            ca_hash,
            user: Some(user.to_string()),
            secret: secret.to_string(),
        })
    }

    /// The token in the secure format for the CA `ca_pem`.
    pub fn format(ca_pem: &[u8], user: &str, secret: &str) -> String {
        format!("{PREFIX}{}::{user}:{secret}", ca_hash(ca_pem))
    }

    /// Checks `ca_pem` against the token's hash; a token without one accepts any CA.
    pub fn verify_ca(&self, ca_pem: &[u8]) -> Result<(), HashMismatch> {
        match &self.ca_hash {
            Some(expected) => {
                let actual = ca_hash(ca_pem);
                if *expected == actual {
                    Ok(())
                } else {
                    Err(HashMismatch {
                        expected: expected.clone(),
                        actual,
                    })
                }
            }
            None => Ok(()),
        }
    }
}

/// A CA whose sha256 is not the one the token names.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("the CA certificate's sha256 is {actual}, but the join token expects {expected}")]
pub struct HashMismatch {
    /// The token's hash.
    pub expected: String,
    /// The CA's.
    pub actual: String,
}

fn check_secret(secret: &str) -> Result<(), TokenError> {
    if secret.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(TokenError::BadSecret);
    }
    Ok(())
}

/// The sha256 of a CA bundle's bytes, lowercase hex.
pub fn ca_hash(ca_pem: &[u8]) -> String {
    Sha256::digest(ca_pem)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Reads `path` (the server's token file), creating it with a new secret when missing and
/// rewriting it in the secure format for `ca_pem` when it holds a bare secret or another
/// CA's hash; the secret itself is kept, so agents holding the old token still join.
/// Returns the token as written and its secret.
pub fn ensure_server_token(path: &Path, ca_pem: &str) -> Result<(String, String), PkiError> {
    let existing = read(path)?.filter(|t| !t.trim().is_empty());
    let secret = match &existing {
        Some(text) => {
            JoinToken::parse(text)
                .map_err(|source| PkiError::Token {
                    path: path.to_path_buf(),
                    source,
                })?
                .secret
        }
        None => {
            use rand::Rng;
            let bytes: [u8; 24] = rand::rng().random();
            bytes.iter().map(|x| format!("{x:02x}")).collect()
        }
    };
    let token = JoinToken::format(ca_pem.as_bytes(), SERVER_USER, &secret);
    if existing.as_deref().map(str::trim) != Some(token.as_str()) {
        if existing.is_some() {
            tracing::info!(file = %path.display(), "join token rewritten as K10<CA hash>::server:<secret> (the secret is unchanged)");
        }
        write_private(path, format!("{token}\n").as_bytes(), 0o600)?;
    }
    Ok((token, secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn secure_tokens_parse() {
        let t = JoinToken::parse(&format!("K10{HASH}::server:s3cret\n")).unwrap();
        assert_eq!(t.ca_hash.as_deref(), Some(HASH));
        assert_eq!(t.user.as_deref(), Some("server"));
        assert_eq!(t.secret, "s3cret");
        // Upper-case hex is the same hash; a secret may hold ':'.
        let t = JoinToken::parse(&format!("K10{}::node:a:b", HASH.to_uppercase())).unwrap();
        assert_eq!(t.ca_hash.as_deref(), Some(HASH));
        assert_eq!(t.secret, "a:b");
        // No hash: k3s's `K10::user:secret`.
        let t = JoinToken::parse("K10::server:x").unwrap();
        assert_eq!(t.ca_hash, None);
    }

    #[test]
    fn bare_secrets_are_tokens_without_a_hash() {
        let t = JoinToken::parse("  4f1c9a\n").unwrap();
        assert_eq!(
            t,
            JoinToken {
                ca_hash: None,
                user: None,
                secret: "4f1c9a".into()
            }
        );
    }

    #[test]
    fn malformed_tokens_are_named() {
        assert_eq!(JoinToken::parse(" \n"), Err(TokenError::Empty));
        assert_eq!(
            JoinToken::parse(&format!("K10{HASH}server:x")),
            Err(TokenError::NoSeparator)
        );
        let e = JoinToken::parse("K10abc::server:x").unwrap_err();
        assert_eq!(
            e,
            TokenError::BadHash {
                hash: "abc".into(),
                len: 3
            }
        );
        assert!(e.to_string().contains("\"abc\""), "{e}");
        let zs = "z".repeat(64);
        assert!(matches!(
            JoinToken::parse(&format!("K10{zs}::server:x")),
            Err(TokenError::BadHash { len: 64, .. })
        ));
        assert_eq!(
            JoinToken::parse(&format!("K10{HASH}::server")),
            Err(TokenError::BadCredentials)
        );
        assert_eq!(
            JoinToken::parse(&format!("K10{HASH}::server:")),
            Err(TokenError::BadCredentials)
        );
        assert_eq!(JoinToken::parse("two words"), Err(TokenError::BadSecret));
    }

    #[test]
    fn format_and_verify_round_trip() {
        let ca = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        let text = JoinToken::format(ca, SERVER_USER, "s");
        assert_eq!(text, format!("K10{}::server:s", ca_hash(ca)));
        let t = JoinToken::parse(&text).unwrap();
        assert_eq!(t.verify_ca(ca), Ok(()));
        let e = t.verify_ca(b"another CA").unwrap_err();
        assert_eq!(e.expected, ca_hash(ca));
        assert_eq!(e.actual, ca_hash(b"another CA"));
        assert!(e.to_string().contains(&e.actual) && e.to_string().contains(&e.expected));
        // sha256 of the empty string, as sha256sum prints it.
        assert_eq!(
            ca_hash(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn the_server_token_file_keeps_its_secret_and_follows_the_ca() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "oldsecret\n").unwrap();
        let (token, secret) = ensure_server_token(&path, "CA one").unwrap();
        assert_eq!(secret, "oldsecret");
        assert_eq!(token, JoinToken::format(b"CA one", "server", "oldsecret"));
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{token}\n")
        );
        let (again, _) = ensure_server_token(&path, "CA two").unwrap();
        assert_eq!(again, JoinToken::format(b"CA two", "server", "oldsecret"));
        std::fs::write(&path, "K10zz::server:x").unwrap();
        let e = ensure_server_token(&path, "CA").unwrap_err().to_string();
        assert!(e.contains("token") && e.contains("\"zz\""), "{e}");
        let fresh = dir.path().join("fresh");
        let (token, secret) = ensure_server_token(&fresh, "CA").unwrap();
        assert_eq!(secret.len(), 48);
        assert!(token.ends_with(&format!("::server:{secret}")));
    }
}

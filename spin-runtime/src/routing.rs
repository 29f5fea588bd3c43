//! HTTP route matching with Spin's rules.
//!
//! This module owns route syntax and selection: exact routes (`/cart`), trailing
//! wildcards (`/cart/...` or `/cart/*`), the catch-all (`/...`) and single-segment
//! captures (`/users/:id`). Among matching routes an exact route beats a wildcard and
//! otherwise the longest (most specific) prefix wins; a duplicate route replaces the
//! earlier one (logged). Private routes never enter the router. Path info keeps the
//! trailing slash the way Spin does (`/foo` → `""`, `/foo/` → `/`, `/foo/bar/` → `/bar/`).

use std::cmp::Ordering;

/// The reserved prefix for Spin's well-known endpoints.
pub const WELL_KNOWN_PREFIX: &str = "/.well-known/spin/";

/// A route that failed to parse.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A capture segment without a name (`/users/:`).
    #[error("route `{0}`: a `:` capture needs a name")]
    EmptyCapture(String),
    /// A wildcard not at the end (`/a/.../b`).
    #[error("route `{0}`: `...` or `*` is only allowed as the last segment")]
    MisplacedWildcard(String),
    /// A route under the reserved `/.well-known/spin/` prefix.
    #[error("route `{0}`: routes under /.well-known/spin/ are reserved")]
    Reserved(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Capture(String),
}

/// A parsed route pattern.
#[derive(Debug, Clone)]
pub struct RoutePattern {
    raw: String,
    based: String,
    segments: Vec<Segment>,
    wildcard: bool,
}

impl RoutePattern {
    /// Parses a route as written in the manifest.
    pub fn parse(raw: &str) -> Result<RoutePattern, Error> {
        // Spin: absolutize, then strip one trailing slash (base `/` contributes nothing).
        let absolute = if raw.starts_with('/') {
            raw.to_string()
        } else {
            format!("/{raw}")
        };
        let based = absolute
            .strip_suffix('/')
            .map(str::to_string)
            .unwrap_or_else(|| absolute.clone());
        if format!("{based}/").starts_with(WELL_KNOWN_PREFIX) {
            return Err(Error::Reserved(raw.to_string()));
        }
        let (prefix, wildcard) = if let Some(p) = based.strip_suffix("/...") {
            (p, true)
        } else if let Some(p) = based.strip_suffix("/*") {
            (p, true)
        } else if based == "..." || based == "*" {
            ("", true)
        } else {
            (based.as_str(), false)
        };
        let mut segments = Vec::new();
        for seg in prefix.split('/').filter(|s| !s.is_empty()) {
            if seg == "..." || seg == "*" {
                return Err(Error::MisplacedWildcard(raw.to_string()));
            }
            if let Some(name) = seg.strip_prefix(':') {
                if name.is_empty() {
                    return Err(Error::EmptyCapture(raw.to_string()));
                }
                segments.push(Segment::Capture(name.to_string()));
            } else {
                segments.push(Segment::Literal(seg.to_string()));
            }
        }
        Ok(RoutePattern {
            raw: raw.to_string(),
            based,
            segments,
            wildcard,
        })
    }

    /// The route as written in the manifest (`spin-raw-component-route`).
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// The route joined with the base `/` (`spin-matched-route`).
    pub fn based(&self) -> &str {
        &self.based
    }

    /// The raw route without a trailing `/...` (`spin-component-route`).
    pub fn raw_or_prefix(&self) -> &str {
        self.raw.strip_suffix("/...").unwrap_or(&self.raw)
    }

    fn matches(&self, path: &str) -> Option<(Vec<(String, String)>, String)> {
        let trimmed = path.trim_end_matches('/');
        let parts: Vec<&str> = trimmed.split('/').filter(|s| !s.is_empty()).collect();
        if parts.len() < self.segments.len()
            || (!self.wildcard && parts.len() != self.segments.len())
        {
            return None;
        }
        let mut captures = Vec::new();
        for (seg, part) in self.segments.iter().zip(&parts) {
            match seg {
                Segment::Literal(l) if l == part => {}
                Segment::Literal(_) => return None,
                Segment::Capture(name) => captures.push((name.clone(), (*part).to_string())),
            }
        }
        let path_info = if self.wildcard {
            let rest = parts[self.segments.len()..].join("/");
            match (rest.is_empty(), path.ends_with('/')) {
                (true, false) => String::new(),
                (true, true) => "/".to_string(),
                (false, false) => format!("/{rest}"),
                (false, true) => format!("/{rest}/"),
            }
        } else {
            String::new()
        };
        Some((captures, path_info))
    }

    /// Specificity order: compared segment by segment (literal > capture), then a route
    /// without a wildcard beats one with, then the longer route wins.
    fn specificity_cmp(&self, other: &RoutePattern) -> Ordering {
        let rank = |s: &Segment| match s {
            Segment::Literal(_) => 2,
            Segment::Capture(_) => 1,
        };
        for (a, b) in self.segments.iter().zip(&other.segments) {
            match rank(a).cmp(&rank(b)) {
                Ordering::Equal => {}
                unequal => return unequal,
            }
        }
        match self.segments.len().cmp(&other.segments.len()) {
            Ordering::Equal => other.wildcard.cmp(&self.wildcard),
            unequal => unequal,
        }
    }
}

/// A successful route match.
#[derive(Debug, Clone)]
pub struct RouteMatch<'r, T> {
    /// The matched pattern.
    pub pattern: &'r RoutePattern,
    /// What the route maps to.
    pub target: &'r T,
    /// `:name` captures, in route order.
    pub captures: Vec<(String, String)>,
    /// The trailing wildcard part of the path (`spin-path-info`).
    pub path_info: String,
}

/// A router from paths to targets (component ids, static responses).
#[derive(Debug, Clone)]
pub struct Router<T> {
    routes: Vec<(RoutePattern, T)>,
}

impl<T> Router<T> {
    /// Builds a router; a duplicate raw route replaces the earlier one, and each such
    /// replacement is returned as `(route, replaced index)` so the caller can log it.
    pub fn build(
        entries: impl IntoIterator<Item = (String, T)>,
    ) -> Result<(Router<T>, Vec<String>), Error> {
        let mut routes: Vec<(RoutePattern, T)> = Vec::new();
        let mut duplicates = Vec::new();
        for (raw, target) in entries {
            let pattern = RoutePattern::parse(&raw)?;
            if let Some(existing) = routes.iter_mut().find(|(p, _)| p.raw == pattern.raw) {
                duplicates.push(raw);
                *existing = (pattern, target);
            } else {
                routes.push((pattern, target));
            }
        }
        Ok((Router { routes }, duplicates))
    }

    /// The best route for `path` (the path component of the request URI), if any.
    pub fn route(&self, path: &str) -> Option<RouteMatch<'_, T>> {
        let mut best: Option<RouteMatch<'_, T>> = None;
        for (pattern, target) in &self.routes {
            if let Some((captures, path_info)) = pattern.matches(path) {
                let better = match &best {
                    None => true,
                    Some(b) => pattern.specificity_cmp(b.pattern) == Ordering::Greater,
                };
                if better {
                    best = Some(RouteMatch {
                        pattern,
                        target,
                        captures,
                        path_info,
                    });
                }
            }
        }
        best
    }

    /// Iterates over `(pattern, target)`.
    pub fn routes(&self) -> impl Iterator<Item = (&RoutePattern, &T)> {
        self.routes.iter().map(|(p, t)| (p, t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(routes: &[(&str, &str)]) -> Router<String> {
        Router::build(routes.iter().map(|(r, t)| (r.to_string(), t.to_string())))
            .unwrap()
            .0
    }

    fn target(r: &Router<String>, path: &str) -> Option<String> {
        r.route(path).map(|m| m.target.clone())
    }

    #[test]
    fn exact_beats_wildcard_and_longest_prefix_wins() {
        let r = router(&[
            ("/...", "all"),
            ("/foo/...", "foo"),
            ("/foo/bar", "foobar"),
            ("/foo/bar/...", "foobarwild"),
            ("/users/:id", "user"),
        ]);
        assert_eq!(target(&r, "/"), Some("all".into()));
        assert_eq!(target(&r, "/x/y"), Some("all".into()));
        assert_eq!(target(&r, "/foo"), Some("foo".into()));
        assert_eq!(target(&r, "/foo/baz"), Some("foo".into()));
        assert_eq!(target(&r, "/foo/bar"), Some("foobar".into()));
        assert_eq!(target(&r, "/foo/bar/baz"), Some("foobarwild".into()));
        assert_eq!(target(&r, "/users/42"), Some("user".into()));
        assert_eq!(target(&r, "/users/42/x"), Some("all".into()));
    }

    #[test]
    fn no_match() {
        let r = router(&[("/foo", "foo")]);
        assert!(r.route("/bar").is_none());
        assert!(r.route("/foo/bar").is_none());
        assert!(r.route("/foo/").is_some());
    }

    #[test]
    fn path_info_keeps_trailing_slash() {
        let r = router(&[("/foo/...", "foo")]);
        assert_eq!(r.route("/foo").unwrap().path_info, "");
        assert_eq!(r.route("/foo/").unwrap().path_info, "/");
        assert_eq!(r.route("/foo/bar").unwrap().path_info, "/bar");
        assert_eq!(r.route("/foo/bar/").unwrap().path_info, "/bar/");
    }

    #[test]
    fn captures_and_headers_forms() {
        let r = router(&[("/users/:user_id/...", "u")]);
        let m = r.route("/users/7/posts").unwrap();
        assert_eq!(m.captures, vec![("user_id".to_string(), "7".to_string())]);
        assert_eq!(m.pattern.raw_or_prefix(), "/users/:user_id");
        assert_eq!(m.pattern.based(), "/users/:user_id/...");
    }

    #[test]
    fn root_route_based_is_empty_like_spin() {
        let r = router(&[("/", "root")]);
        let m = r.route("/").unwrap();
        assert_eq!(m.pattern.based(), "");
        assert_eq!(m.pattern.raw(), "/");
    }

    #[test]
    fn duplicates_later_wins() {
        let (r, dups) = Router::build(vec![
            ("/a".to_string(), "first"),
            ("/a".to_string(), "second"),
        ])
        .unwrap();
        assert_eq!(dups, vec!["/a".to_string()]);
        assert_eq!(*r.route("/a").unwrap().target, "second");
    }

    #[test]
    fn reserved_and_invalid() {
        assert!(RoutePattern::parse("/.well-known/spin/x").is_err());
        assert!(RoutePattern::parse("/a/:").is_err());
        assert!(RoutePattern::parse("/a/.../b").is_err());
        assert!(RoutePattern::parse("/*").unwrap().wildcard);
    }
}

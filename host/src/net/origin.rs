//! Origins as grants and manifests name them (`https://api.example.com`,
//! `https://*.example.com:8443`, `*`), matched against where a connector's
//! request goes.

use std::net::IpAddr;

/// An origin, or a pattern of origins: `*`, `https://api.example.com[:port]`,
/// `https://*.example.com[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginPattern {
    Any,
    Origin {
        scheme: String,
        /// Lower case; a leading `*.` matches any subdomain (not the apex).
        host: String,
        port: u16,
    },
}

impl OriginPattern {
    pub fn parse(s: &str) -> Result<OriginPattern, String> {
        if s == "*" {
            return Ok(OriginPattern::Any);
        }
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| format!("{s:?} is not an origin like https://api.example.com"))?;
        let default_port = match scheme {
            "http" => 80,
            "https" => 443,
            _ => return Err(format!("{s:?}: scheme must be http or https")),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
            return Err(format!("{s:?}: an origin has no path, query or user"));
        }
        let (host, port) = split_host_port(rest).ok_or_else(|| format!("{s:?}: bad host or port"))?;
        let host = host.to_ascii_lowercase();
        let bare = host.strip_prefix("*.").unwrap_or(&host);
        if bare.is_empty() || bare.contains('*') || !valid_host(bare) {
            return Err(format!("{s:?}: bad host"));
        }
        Ok(OriginPattern::Origin {
            scheme: scheme.to_string(),
            host,
            port: port.unwrap_or(default_port),
        })
    }

    /// Does this pattern cover the concrete origin?
    pub fn matches(&self, scheme: &str, host: &str, port: u16) -> bool {
        match self {
            OriginPattern::Any => true,
            OriginPattern::Origin {
                scheme: s,
                host: h,
                port: p,
            } => s == scheme && *p == port && host_matches(h, host),
        }
    }

    /// Does this (requested) pattern cover everything `other` (granted) covers?
    pub(crate) fn covers(&self, other: &OriginPattern) -> bool {
        match (self, other) {
            (OriginPattern::Any, _) => true,
            (_, OriginPattern::Any) => false,
            (
                OriginPattern::Origin {
                    scheme: s1,
                    host: h1,
                    port: p1,
                },
                OriginPattern::Origin {
                    scheme: s2,
                    host: h2,
                    port: p2,
                },
            ) => {
                s1 == s2
                    && p1 == p2
                    && (h1 == h2 || (!h2.starts_with("*.") && host_matches(h1, h2)) || subdomain_pattern_covers(h1, h2))
            }
        }
    }

    pub(crate) fn names_ip_literal(&self) -> bool {
        matches!(self, OriginPattern::Origin { host, .. } if strip_brackets(host).parse::<IpAddr>().is_ok())
    }
}

fn subdomain_pattern_covers(outer: &str, inner: &str) -> bool {
    match (outer.strip_prefix("*."), inner.strip_prefix("*.")) {
        (Some(o), Some(i)) => i == o || i.ends_with(&format!(".{o}")),
        _ => false,
    }
}

fn host_matches(pattern: &str, host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    match pattern.strip_prefix("*.") {
        Some(suffix) => host.len() > suffix.len() + 1 && host.ends_with(&format!(".{suffix}")),
        None => pattern == host,
    }
}

fn strip_brackets(host: &str) -> &str {
    host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host)
}

fn valid_host(host: &str) -> bool {
    let h = strip_brackets(host);
    h.parse::<IpAddr>().is_ok()
        || (h.len() <= 253
            && h.split('.')
                .all(|l| !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')))
}

/// `host[:port]`, with IPv6 in brackets.
pub fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    if s.starts_with('[') {
        let end = s.find(']')?;
        let (host, rest) = s.split_at(end + 1);
        return match rest.strip_prefix(':') {
            Some(p) => Some((host, Some(p.parse().ok()?))),
            None if rest.is_empty() => Some((host, None)),
            None => None,
        };
    }
    match s.rsplit_once(':') {
        Some((h, p)) => Some((h, Some(p.parse().ok()?))),
        None => Some((s, None)),
    }
}

pub fn check_method(m: &str) -> Result<(), String> {
    if !m.is_empty() && m.len() <= 16 && m.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(format!("{m:?} is not an HTTP method in upper case"))
    }
}

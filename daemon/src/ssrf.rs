//! The SSRF guard on the network: DNS resolution under the guard's checks, and the guard plugged
//! into reqwest as a redirect policy and a DNS resolver. The checks themselves are pure and live in
//! `mcpd_guard::ssrf` (re-exported here); every OAuth request goes through both (`oauth/http.rs`).
use std::{net::SocketAddr, time::Duration};

use reqwest::Url;

pub use mcpd_guard::ssrf::*;

/// A resolver that never answers must not hold an OAuth flow forever.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Resolves `url`'s host and checks every address it resolves to; returns the addresses to connect to
/// (so the caller pins them and DNS rebinding cannot switch them afterwards).
pub async fn resolve(policy: &SsrfPolicy, url: &Url) -> Result<Vec<SocketAddr>, SsrfError> {
    // Re-check: the URL may not have come from `check_url`.
    policy.check_hop(url)?;
    let no_host = || SsrfError::BadUrl { why: "the url has no host; expected an absolute https:// url".to_owned() };
    let host = url.host_str().ok_or_else(no_host)?;
    let port = url.port_or_known_default().ok_or_else(no_host)?;
    resolve_host(policy, host, port).await
}

/// Resolves a host as it appears in a URL or as reqwest hands it to a resolver.
pub async fn resolve_host(policy: &SsrfPolicy, host: &str, port: u16) -> Result<Vec<SocketAddr>, SsrfError> {
    match policy.pre_resolve(host, port)? {
        PreResolved::Addrs(addrs) => Ok(addrs),
        PreResolved::Lookup(name) => {
            let lookup = tokio::net::lookup_host((host, port));
            let addrs = tokio::time::timeout(RESOLVE_TIMEOUT, lookup)
                .await
                .map_err(|_| SsrfError::Resolve { host: host.to_owned(), why: "timed out".to_owned() })?
                .map_err(|e| SsrfError::Resolve { host: host.to_owned(), why: e.to_string() })?;
            policy.check_addrs(host, &name, addrs)
        }
    }
}

/// A reqwest redirect policy that re-checks every hop with the guard (and caps hops at
/// [`MAX_REDIRECTS`]).
///
/// A refused hop fails the request with a redirect error whose source is the [`SsrfError`]. reqwest's
/// own message for it includes the previous URL; log it with `reqwest::Error::without_url`.
pub fn redirect_policy(policy: SsrfPolicy) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        // `previous` holds the first request and every hop since, so its length is this hop's number.
        if attempt.previous().len() > MAX_REDIRECTS {
            let host = attempt.url().host_str().unwrap_or_default().to_owned();
            return attempt.error(SsrfError::TooManyRedirects { host });
        }
        // The hop is already parsed (by the same parser `check_url` uses), so check it as parsed.
        match policy.check_hop(attempt.url()) {
            Ok(()) => attempt.follow(),
            Err(e) => attempt.error(e),
        }
    })
}

/// A reqwest DNS resolver that checks every address a name resolves to, for every connection the client
/// makes (redirect hops included). reqwest connects to literal IP hosts without asking it; those are
/// covered by [`SsrfPolicy::check_url`] and [`redirect_policy`].
#[derive(Debug, Clone)]
pub struct SsrfResolver {
    policy: SsrfPolicy,
}

// === impl SsrfResolver ===

impl SsrfResolver {
    pub fn new(policy: SsrfPolicy) -> Self {
        Self { policy }
    }
}

impl reqwest::dns::Resolve for SsrfResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            // Port 0: reqwest substitutes the URL's port.
            let addrs = resolve_host(&policy, name.as_str(), 0).await?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests;

//! The HTTP client every OAuth request goes through (discovery, registration, token, refresh):
//! rmcp's `OAuthHttpClient` built on the SSRF guard, so no URL a server hands mcpd can reach
//! a refused address, directly, through DNS or through a redirect.
use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use rmcp::transport::auth::{
    OAuthHttpClient, OAuthHttpClientError, OAuthHttpClientFuture, OAuthHttpRedirectPolicy, OAuthHttpRequest,
};

use crate::ssrf::{SsrfPolicy, SsrfResolver, redirect_policy};

/// Metadata documents and token responses are small; a bigger answer is hostile.
const MAX_BODY_BYTES: usize = 256 * 1024;
/// Bounds one OAuth request when rmcp suggests none.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
#[error("the OAuth response body exceeds {MAX_BODY_BYTES} bytes")]
struct TooLarge;

/// Requests and redirects checked by the SSRF policy; names resolved by it.
pub struct GuardedHttp {
    policy: SsrfPolicy,
    follow: reqwest::Client,
    stop: reqwest::Client,
    /// What the guard refused, for the error a person sees: rmcp may report a refused
    /// discovery URL only as "no usable metadata".
    refused: std::sync::Mutex<Vec<String>>,
}

impl GuardedHttp {
    pub fn new(policy: SsrfPolicy) -> Result<Arc<Self>, reqwest::Error> {
        let build = |redirect: reqwest::redirect::Policy| {
            reqwest::Client::builder()
                // A proxy resolves names itself, out of the guard's sight.
                .no_proxy()
                .connect_timeout(CONNECT_TIMEOUT)
                .redirect(redirect)
                .dns_resolver(Arc::new(SsrfResolver::new(policy.clone())))
                .build()
        };
        let follow = build(redirect_policy(policy.clone()))?;
        let stop = build(reqwest::redirect::Policy::none())?;
        Ok(Arc::new(Self { policy, follow, stop, refused: std::sync::Mutex::default() }))
    }
}

impl GuardedHttp {
    fn note(&self, why: String) {
        let mut refused = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        if !refused.contains(&why) && refused.len() < 8 {
            refused.push(why);
        }
    }

    /// What the guard refused so far (empty when nothing was), plus its verdict on every URL
    /// `context` names: rmcp screens discovered URLs itself and may report a refused one only
    /// as "no usable metadata".
    pub fn refusals(&self, context: &str) -> Vec<String> {
        let mut out = self.refused.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for word in context.split_whitespace() {
            let url = word.trim_end_matches([',', ';', '.', ')', ']', '"', '\'']).trim_start_matches(['(', '"', '\'']);
            if !url.contains("://") {
                continue;
            }
            if let Err(e) = self.policy.check_url(url) {
                let e = e.to_string();
                if !out.contains(&e) {
                    out.push(e);
                }
            }
        }
        out
    }
}

impl GuardedHttp {
    /// POSTs a form without following redirects (token revocation, RFC 7009), with HTTP
    /// Basic client authentication when `basic` is given. Returns the status.
    pub async fn post_form(
        &self,
        url: &str,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> Result<(http::StatusCode, String), String> {
        let url = self.policy.check_url(url).map_err(|e| e.to_string())?;
        // application/x-www-form-urlencoded, encoded by the URL parser's form serializer.
        let mut encoder = reqwest::Url::parse("http://form.invalid/").map_err(|e| e.to_string())?;
        encoder.query_pairs_mut().extend_pairs(form);
        let body = encoder.query().unwrap_or_default().to_owned();
        let mut req = self
            .stop
            .post(url)
            .header(http::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body)
            .timeout(REQUEST_TIMEOUT);
        if let Some((id, secret)) = basic {
            req = req.basic_auth(id, Some(secret));
        }
        let resp = req.send().await.map_err(|e| match ssrf_cause(&e) {
            Some(ssrf) => ssrf,
            None => e.without_url().to_string(),
        })?;
        let status = resp.status();
        // An OAuth error body is small JSON; read a bounded amount for the `error` code.
        let mut body = Vec::new();
        let mut stream = resp.bytes_stream();
        while let Some(Ok(chunk)) = stream.next().await {
            body.extend_from_slice(&chunk);
            if body.len() > 4096 {
                break;
            }
        }
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}

fn ssrf_cause(e: &reqwest::Error) -> Option<String> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(ssrf) = s.downcast_ref::<crate::ssrf::SsrfError>() {
            return Some(ssrf.to_string());
        }
        source = s.source();
    }
    None
}

fn boxed(e: impl std::error::Error + Send + Sync + 'static) -> OAuthHttpClientError {
    Box::new(e)
}

impl OAuthHttpClient for GuardedHttp {
    fn execute(&self, request: OAuthHttpRequest) -> OAuthHttpClientFuture<'_> {
        Box::pin(async move {
            let OAuthHttpRequest { request, redirect_policy, timeout, .. } = request;
            // Checked before anything is sent: a refused URL never gets a connection.
            if let Err(e) = self.policy.check_url(&request.uri().to_string()) {
                self.note(e.to_string());
                return Err(boxed(e));
            }
            let client = match redirect_policy {
                OAuthHttpRedirectPolicy::Stop => &self.stop,
                _ => &self.follow,
            };
            let mut request = reqwest::Request::try_from(request).map_err(|e| boxed(e.without_url()))?;
            *request.timeout_mut() = Some(timeout.unwrap_or(REQUEST_TIMEOUT).min(REQUEST_TIMEOUT));
            // URLs may carry codes; errors name the host only (the SSRF error says which).
            let response = match client.execute(request).await {
                Ok(r) => r,
                Err(e) => {
                    // A refused redirect hop or resolved address: name it.
                    if let Some(ssrf) = ssrf_cause(&e) {
                        self.note(ssrf);
                    }
                    return Err(boxed(e.without_url()));
                }
            };
            let mut builder = http::Response::builder().status(response.status()).version(response.version());
            for (name, value) in response.headers() {
                builder = builder.header(name, value);
            }
            let mut body = Vec::new();
            let mut stream = response.bytes_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| boxed(e.without_url()))?;
                if body.len() + chunk.len() > MAX_BODY_BYTES {
                    return Err(boxed(TooLarge));
                }
                body.extend_from_slice(&chunk);
            }
            builder.body(body).map_err(boxed)
        })
    }
}

//! The HTTP leg shared by both providers: POST a JSON body, retry 429/5xx, bound and parse the answer.
//!
//! Retries honour `Retry-After` (delta seconds or an HTTP date) and OpenAI's `retry-after-ms`, each wait
//! capped at [`MAX_WAIT`]; without a hint the wait doubles from [`INITIAL_BACKOFF`]. The whole exchange,
//! waits included, is bounded by the provider timeout. The API key is redacted from every error text.
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use serde_json::Value;
use tokio::time::Instant;

use super::LlmError;
use mcpd_config::redact_url;

/// Longest single wait between attempts, whatever the provider asks for.
pub(crate) const MAX_WAIT: Duration = Duration::from_secs(30);
/// First wait when the provider gives no `Retry-After`.
pub(crate) const INITIAL_BACKOFF: Duration = Duration::from_millis(500);
/// Largest successful answer read; a chat completion is far below this, so more means a broken peer.
const MAX_BODY: usize = 16 * 1024 * 1024;
/// How much of an error body is read: enough for the excerpt, without buffering a huge page.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// Length of the body excerpt kept in [`LlmError::Http`] and [`LlmError::Malformed`].
pub(crate) const EXCERPT_CHARS: usize = 500;
const REDACTED: &str = "[redacted]";

/// A configured endpoint: one URL, fixed headers, and the retry policy.
#[derive(Clone)]
pub(crate) struct Endpoint {
    client: reqwest::Client,
    url: String,
    headers: HeaderMap,
    timeout: Duration,
    max_retries: u32,
    /// The configured secrets (API key, extra header values), kept only to scrub them from error texts.
    secrets: Vec<String>,
}

impl std::fmt::Debug for Endpoint {
    // Hand-written so that the headers (which carry the key) are never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("url", &redact_url(&self.url))
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    pub(crate) fn new(
        url: String,
        mut headers: HeaderMap,
        timeout: Duration,
        max_retries: u32,
        secrets: Vec<String>,
    ) -> Result<Self, LlmError> {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        // Redirects are refused: a POST to an LLM API never legitimately redirects, and a custom
        // key header (`x-api-key`) would otherwise follow a redirect to another host.
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| LlmError::Config(format!("cannot build the HTTP client: {e}")))?;
        let secrets = secrets.into_iter().filter(|s| !s.is_empty()).collect();
        Ok(Self { client, url, headers, timeout, max_retries, secrets })
    }

    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// POSTs `body` and returns the parsed JSON of the first successful answer.
    pub(crate) async fn post_json(&self, body: &Value) -> Result<Value, LlmError> {
        let bytes = serde_json::to_vec(body)
            .map_err(|e| LlmError::InvalidRequest(format!("the request cannot be serialised: {e}")))?;
        match tokio::time::timeout(self.timeout, self.post_with_retries(bytes)).await {
            Ok(result) => result,
            Err(_) => Err(LlmError::Timeout),
        }
    }

    async fn post_with_retries(&self, body: Vec<u8>) -> Result<Value, LlmError> {
        let deadline = Instant::now() + self.timeout;
        let mut attempt: u32 = 0;
        loop {
            let resp = self
                .client
                .post(&self.url)
                .headers(self.headers.clone())
                .body(body.clone())
                .send()
                .await
                .map_err(|e| self.transport_error(e))?;
            let status = resp.status();
            if status.is_success() {
                let bytes = self.read_body(resp, MAX_BODY, false).await?;
                return serde_json::from_slice(&bytes).map_err(|e| {
                    LlmError::Malformed(format!(
                        "HTTP {} body is not JSON ({e}): {}",
                        status.as_u16(),
                        self.excerpt(&String::from_utf8_lossy(&bytes))
                    ))
                });
            }
            let retry_after = retry_after(resp.headers(), SystemTime::now());
            // The error body is only for the excerpt; a body that fails to arrive leaves it empty.
            let text = match self.read_body(resp, MAX_ERROR_BODY, true).await {
                Ok(b) => String::from_utf8_lossy(&b).into_owned(),
                Err(_) => String::new(),
            };
            let err = if status.as_u16() == 429 {
                LlmError::RateLimited { retry_after }
            } else {
                LlmError::Http { status: status.as_u16(), body_excerpt: self.excerpt(&text) }
            };
            let retryable = status.as_u16() == 429 || status.is_server_error();
            if !retryable || attempt >= self.max_retries {
                return Err(err);
            }
            let wait = retry_after.map_or_else(|| backoff_delay(attempt), |d| d.min(MAX_WAIT));
            // Waiting past the deadline cannot succeed; report the provider's answer instead of a timeout.
            if Instant::now() + wait >= deadline {
                return Err(err);
            }
            tracing::debug!(
                url = %redact_url(&self.url),
                status = status.as_u16(),
                attempt = attempt + 1,
                wait_ms = wait.as_millis() as u64,
                "LLM provider asked to retry"
            );
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// Reads the body up to `limit` bytes. Past it, `truncate` keeps what fits (error bodies are
    /// only excerpted); otherwise more is a protocol failure, not something to buffer.
    async fn read_body(&self, mut resp: reqwest::Response, limit: usize, truncate: bool) -> Result<Vec<u8>, LlmError> {
        let mut buf = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.transport_error(e))? {
            if buf.len() + chunk.len() > limit {
                if truncate {
                    buf.extend_from_slice(&chunk[..limit - buf.len()]);
                    return Ok(buf);
                }
                return Err(LlmError::Malformed(format!("the answer is larger than {} MiB", limit / (1024 * 1024))));
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf)
    }

    fn transport_error(&self, e: reqwest::Error) -> LlmError {
        if e.is_timeout() {
            return LlmError::Timeout;
        }
        // The full URL may carry a secret (a key in the query of a gateway URL): only its origin is named.
        let e = e.without_url();
        // reqwest's Display omits the cause ("error sending request"); the chain says what happened.
        let text = format!("POST {}: {}", redact_url(&self.url), mcpd_guard::error_chain(&e));
        LlmError::Transport(redact(&text, &self.secrets))
    }

    /// Redacted, trimmed, at most [`EXCERPT_CHARS`] characters.
    pub(crate) fn excerpt(&self, text: &str) -> String {
        excerpt(text, &self.secrets)
    }
}

/// Replaces every occurrence of each secret in `text`.
pub(crate) fn redact(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_owned();
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), REDACTED);
        }
    }
    out
}

/// Redacts first, then truncates, so that truncation can never leave part of a key behind.
pub(crate) fn excerpt(text: &str, secrets: &[String]) -> String {
    let clean = redact(text.trim(), secrets);
    match clean.char_indices().nth(EXCERPT_CHARS) {
        Some((cut, _)) => format!("{}…", &clean[..cut]),
        None => clean,
    }
}

/// `INITIAL_BACKOFF * 2^attempt`, capped at [`MAX_WAIT`].
pub(crate) fn backoff_delay(attempt: u32) -> Duration {
    INITIAL_BACKOFF.saturating_mul(1u32.checked_shl(attempt).unwrap_or(u32::MAX)).min(MAX_WAIT)
}

/// The wait the provider asked for: `retry-after-ms` (OpenAI) first, then `Retry-After`.
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let ms = headers
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|ms| ms.is_finite() && *ms >= 0.0)
        .map(|ms| Duration::from_secs_f64(ms.min(86_400_000.0) / 1000.0));
    ms.or_else(|| headers.get(RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(|v| parse_retry_after(v, now)))
}

/// Parses `Retry-After`: delta seconds (fractions tolerated) or an IMF-fixdate HTTP date.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0)));
    }
    let at = parse_http_date(v)?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the only form RFC 9110 lets servers send.
fn parse_http_date(s: &str) -> Option<SystemTime> {
    let mut it = s.split_ascii_whitespace();
    let _weekday = it.next()?.strip_suffix(',')?;
    let day: u32 = it.next()?.parse().ok()?;
    let month = match it.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i64 = it.next()?.parse().ok()?;
    let mut hms = it.next()?.split(':');
    let (h, m, sec): (u64, u64, u64) =
        (hms.next()?.parse().ok()?, hms.next()?.parse().ok()?, hms.next()?.parse().ok()?);
    if it.next()? != "GMT" || it.next().is_some() || !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let secs = u64::try_from(days).ok()? * 86_400 + h * 3600 + m * 60 + sec;
    Some(UNIX_EPOCH + Duration::from_secs(secs))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

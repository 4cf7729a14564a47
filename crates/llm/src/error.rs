//! Errors of the LLM provider layer. Messages are lowercase, say what to do, and never contain the API key.
use std::time::Duration;

/// Why a chat request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LlmError {
    /// The provider answered with a non-success status (after retries, for 5xx).
    #[error("the LLM provider answered HTTP {status}{}: {body_excerpt}", status_hint(*.status))]
    Http { status: u16, body_excerpt: String },
    /// The whole request (all attempts and waits) did not finish within the configured timeout.
    #[error(
        "the LLM provider did not answer within the configured timeout; raise `timeout` for this provider or ask for fewer tokens"
    )]
    Timeout,
    /// The provider's answer does not follow its API's wire format.
    #[error("the LLM provider sent an answer mcpd cannot use: {0}")]
    Malformed(String),
    /// The request never got an HTTP answer (DNS, connect, TLS, reset).
    #[error("could not reach the LLM provider: {0}; check `base_url` and that the provider is running")]
    Transport(String),
    /// HTTP 429 persisted through every retry, or the provider asked to wait past the timeout.
    #[error("the LLM provider is rate limiting requests (HTTP 429){}; lower the sampling rate or raise `max_retries`", retry_hint(.retry_after))]
    RateLimited { retry_after: Option<Duration> },
    /// The request cannot be expressed in the provider's wire format (e.g. a tool use in a user message).
    #[error("invalid chat request: {0}")]
    InvalidRequest(String),
    /// The provider configuration is unusable (e.g. a header name that is not valid HTTP).
    #[error("invalid LLM provider configuration: {0}")]
    Config(String),
}

impl LlmError {
    /// Whether retrying the same request later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Http { status, .. } => *status >= 500,
            Self::Timeout | Self::Transport(_) | Self::RateLimited { .. } => true,
            Self::Malformed(_) | Self::InvalidRequest(_) | Self::Config(_) => false,
        }
    }
}

fn status_hint(status: u16) -> &'static str {
    match status {
        401 | 403 => " (check the API key)",
        404 => " (check `base_url` and the model name)",
        400 | 422 => " (the provider rejected the request)",
        300..=399 => " (redirects are not followed; point `base_url` at the final address)",
        _ => "",
    }
}

fn retry_hint(retry_after: &Option<Duration>) -> String {
    retry_after.map(|d| format!("; it asked to retry after {:.1}s", d.as_secs_f64())).unwrap_or_default()
}

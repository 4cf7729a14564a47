//! LLM providers (OpenAI-compatible chat completions and the Anthropic Messages API) over reqwest.
//!
//! Callers build a provider-neutral [`ChatRequest`] and get a [`ChatResponse`] back; a [`Provider`]
//! (one `[llm.NAME]` table of the config) maps it to its wire format, sends it with retries on
//! 429/5xx (honouring `Retry-After`), bounds the whole exchange by its timeout, and maps the answer
//! back. Nothing here blocks the runtime, and no error text ever contains a configured secret.
//!
//! URL conventions follow each vendor's own SDKs, so a `base_url` copied from their docs works:
//! - `kind = "openai"`: `base_url` includes the version (`https://api.openai.com/v1`,
//!   `http://localhost:11434/v1`); requests go to `{base_url}/chat/completions`.
//! - `kind = "anthropic"`: `base_url` is the host (`https://api.anthropic.com`); requests go to
//!   `{base_url}/v1/messages` (a `base_url` already ending in `/v1` is accepted too).
//!
//! Tool names are not rewritten here: both APIs accept only `^[a-zA-Z0-9_-]{1,64}$`, so callers that
//! expose names such as `server.tool` keep their own alias table, and an invalid name is refused
//! with [`LlmError::InvalidRequest`] before anything is sent.
#![forbid(unsafe_code)]

mod anthropic;
mod error;
mod http;
mod model;
mod openai;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

pub use error::LlmError;
pub use model::{ChatRequest, ChatResponse, Message, Part, Role, StopReason, ToolChoice, ToolSpec, Usage};

use http::Endpoint;
use mcpd_config::{LlmConfig, LlmKind, redact_url};

/// One configured provider (either wire format). Cheap to clone: clones share the HTTP client and
/// its connection pool.
#[derive(Debug, Clone)]
pub struct Provider {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    name: String,
    kind: LlmKind,
    default_model: String,
    /// Upper bound on `max_tokens` of any request (the config's `max_tokens`).
    max_tokens: u32,
    /// The config's `max_tools`: most tools an agent run offers as they are.
    max_tools: u32,
    /// OpenAI's own API rejects `max_tokens` for reasoning models and takes `max_completion_tokens`
    /// for every model, while many compatible servers only know `max_tokens`.
    openai_completion_tokens: bool,
    endpoint: Endpoint,
}

impl Provider {
    /// Builds the provider of one `[llm.NAME]` table: URL, auth and extra headers, retry policy.
    pub fn new(cfg: &LlmConfig) -> Result<Self, LlmError> {
        let base = cfg.base_url.trim_end_matches('/');
        let mut headers = HeaderMap::new();
        let key = cfg.api_key.as_ref().map(|k| k.expose()).filter(|k| !k.is_empty());
        let url = match cfg.kind {
            LlmKind::OpenAi => {
                if let Some(key) = key {
                    headers.insert(reqwest::header::AUTHORIZATION, sensitive(&format!("Bearer {key}"), "the API key")?);
                }
                format!("{base}/chat/completions")
            }
            LlmKind::Anthropic => {
                if let Some(key) = key {
                    headers.insert("x-api-key", sensitive(key, "the API key")?);
                }
                headers.insert("anthropic-version", HeaderValue::from_static(anthropic::API_VERSION));
                // The Anthropic SDKs take the host as base URL; an OpenAI-style `.../v1` is tolerated.
                if base.ends_with("/v1") { format!("{base}/messages") } else { format!("{base}/v1/messages") }
            }
        };
        // Extra headers come last so that they can override the defaults (e.g. a newer
        // `anthropic-version`, or a gateway's own auth header).
        for (name, value) in &cfg.headers {
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| LlmError::Config(format!("invalid header name {name:?}")))?;
            headers.insert(header, sensitive(value.expose(), &format!("the value of header {name:?}"))?);
        }
        // Every configured secret is scrubbed from error texts, not only the API key: extra headers
        // often carry credentials too (gateway tokens, organisation ids). Values under 4 bytes
        // (flags like "1") are skipped: scrubbing them would garble every message and hide nothing.
        let secrets: Vec<String> = key
            .into_iter()
            .map(str::to_owned)
            .chain(cfg.headers.values().map(|v| v.expose().to_owned()))
            .filter(|s| s.len() >= 4)
            .collect();
        let endpoint = Endpoint::new(url, headers, cfg.timeout, cfg.max_retries, secrets)?;
        let openai_completion_tokens = cfg.kind == LlmKind::OpenAi
            && reqwest::Url::parse(base).is_ok_and(|u| u.host_str() == Some("api.openai.com"));
        Ok(Self {
            inner: Arc::new(Inner {
                name: cfg.name.clone(),
                kind: cfg.kind,
                default_model: cfg.model.clone(),
                max_tokens: cfg.max_tokens,
                max_tools: cfg.max_tools,
                openai_completion_tokens,
                endpoint,
            }),
        })
    }

    /// The config name (`[llm.NAME]`).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The model asked for when a request names none.
    pub fn default_model(&self) -> &str {
        &self.inner.default_model
    }

    /// The wire format this provider speaks.
    pub fn kind(&self) -> LlmKind {
        self.inner.kind
    }

    /// The configured `max_tools`: past it, an agent run is offered the search meta-tools.
    pub fn max_tools(&self) -> usize {
        self.inner.max_tools as usize
    }

    /// The configured cap on `max_tokens`.
    pub fn max_tokens(&self) -> u32 {
        self.inner.max_tokens
    }

    /// One chat completion with retries, bounded by the provider timeout.
    ///
    /// `req.max_tokens` is capped at the configured `max_tokens` (0 asks for the cap itself).
    pub async fn chat(&self, req: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let inner = &*self.inner;
        validate_tool_names(req)?;
        let model = req.model.as_deref().filter(|m| !m.is_empty()).unwrap_or(&inner.default_model);
        let max_tokens = match req.max_tokens {
            0 => inner.max_tokens,
            n => n.min(inner.max_tokens),
        };
        let body = match inner.kind {
            LlmKind::OpenAi => openai::request_body(req, model, max_tokens, inner.openai_completion_tokens)?,
            LlmKind::Anthropic => anthropic::request_body(req, model, max_tokens)?,
        };
        tracing::debug!(
            provider = %inner.name,
            url = %redact_url(inner.endpoint.url()),
            %model,
            messages = req.messages.len(),
            tools = req.tools.len(),
            "LLM chat request"
        );
        let answer = inner.endpoint.post_json(&body).await?;
        let parsed = match inner.kind {
            LlmKind::OpenAi => openai::parse_response(&answer, model),
            LlmKind::Anthropic => anthropic::parse_response(&answer, model),
        };
        // Parse errors quote the answer, which may echo a credential back.
        parsed.map_err(|e| match e {
            LlmError::Malformed(m) => LlmError::Malformed(inner.endpoint.excerpt(&m)),
            other => other,
        })
    }
}

/// A header value marked sensitive, which keeps it out of reqwest/hyper debug output.
fn sensitive(value: &str, what: &str) -> Result<HeaderValue, LlmError> {
    let mut v = HeaderValue::from_str(value)
        .map_err(|_| LlmError::Config(format!("{what} contains characters not allowed in an HTTP header")))?;
    v.set_sensitive(true);
    Ok(v)
}

/// Whether both APIs accept `name` as a tool name (`^[a-zA-Z0-9_-]{1,64}$`).
pub fn valid_tool_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Refuses tool names the APIs would reject, wherever they appear in the request, and a forced
/// tool that is not offered (both APIs answer 400 to that, with a less helpful message).
fn validate_tool_names(req: &ChatRequest) -> Result<(), LlmError> {
    let bad = |name: &str, place: String| {
        LlmError::InvalidRequest(format!(
            "{place}: tool name {name:?} is not accepted by LLM APIs (only letters, digits, '_' and '-', \
             at most 64); map it to an alias first"
        ))
    };
    for (i, tool) in req.tools.iter().enumerate() {
        if !valid_tool_name(&tool.name) {
            return Err(bad(&tool.name, format!("tool {i}")));
        }
    }
    for (i, msg) in req.messages.iter().enumerate() {
        for part in &msg.content {
            if let Part::ToolUse { name, .. } = part
                && !valid_tool_name(name)
            {
                return Err(bad(name, format!("message {i}")));
            }
        }
    }
    if let ToolChoice::Tool(name) = &req.tool_choice
        && !req.tools.is_empty()
    {
        if !valid_tool_name(name) {
            return Err(bad(name, "tool_choice".to_owned()));
        }
        if !req.tools.iter().any(|t| &t.name == name) {
            return Err(LlmError::InvalidRequest(format!("tool_choice names {name:?}, which is not among the tools")));
        }
    }
    Ok(())
}

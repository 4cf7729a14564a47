//! Streamable HTTP servers, through rmcp's client (SSE resume with Last-Event-ID, GET
//! stream for server-initiated messages, re-initialize on 404), with mcpd's limits.
use std::{collections::HashMap, time::Duration};

use http::{HeaderName, HeaderValue};
use rmcp::transport::{StreamableHttpClientTransport, streamable_http_client::StreamableHttpClientTransportConfig};

use super::AnyTransport;

#[derive(Debug, thiserror::Error)]
pub enum HttpSetupError {
    #[error("invalid header {name:?}: {reason}")]
    Header { name: String, reason: &'static str },
    #[error("header {0:?} is managed by the MCP transport and cannot be configured")]
    Reserved(String),
    #[error("cannot build HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// Headers the transport sets itself.
const RESERVED: &[&str] = &["accept", "mcp-session-id", "last-event-id", "content-type"];

pub fn headers(pairs: &[(String, String)]) -> Result<HashMap<HeaderName, HeaderValue>, HttpSetupError> {
    let mut out = HashMap::new();
    for (k, v) in pairs {
        if RESERVED.iter().any(|r| r.eq_ignore_ascii_case(k)) {
            return Err(HttpSetupError::Reserved(k.clone()));
        }
        let name = HeaderName::try_from(k.as_str())
            .map_err(|_| HttpSetupError::Header { name: k.clone(), reason: "not a valid header name" })?;
        let mut value = HeaderValue::try_from(v.as_str()).map_err(|_| HttpSetupError::Header {
            name: k.clone(),
            reason: "value has characters not allowed in a header",
        })?;
        value.set_sensitive(true);
        out.insert(name, value);
    }
    Ok(out)
}

/// An HTTP client that follows redirects only within the same origin, so configured
/// headers (which may carry credentials) never reach another server.
pub fn client(connect_timeout: Duration) -> Result<reqwest::Client, HttpSetupError> {
    let policy = reqwest::redirect::Policy::custom(|attempt| {
        let same_origin = attempt.previous().last().is_some_and(|prev| prev.origin() == attempt.url().origin());
        if attempt.previous().len() > 5 || !same_origin { attempt.stop() } else { attempt.follow() }
    });
    Ok(reqwest::Client::builder().connect_timeout(connect_timeout).redirect(policy).build()?)
}

/// Like [`connect`], with bearer tokens from an OAuth token source (see `crate::oauth`).
pub fn connect_authorized(
    url: &str,
    header_pairs: &[(String, String)],
    max_message_bytes: usize,
    auth: rmcp::transport::AuthClient<reqwest::Client>,
) -> Result<AnyTransport, HttpSetupError> {
    let config = transport_config(url, header_pairs, max_message_bytes)?;
    Ok(AnyTransport::HttpAuth(StreamableHttpClientTransport::with_client(auth, config)))
}

pub fn connect(
    url: &str,
    header_pairs: &[(String, String)],
    max_message_bytes: usize,
    connect_timeout: Duration,
) -> Result<AnyTransport, HttpSetupError> {
    let config = transport_config(url, header_pairs, max_message_bytes)?;
    Ok(AnyTransport::Http(StreamableHttpClientTransport::with_client(client(connect_timeout)?, config)))
}

/// The transport settings every Streamable HTTP session shares: configured headers, mcpd's
/// message limits, and a new session when the server forgets ours.
fn transport_config(
    url: &str,
    header_pairs: &[(String, String)],
    max_message_bytes: usize,
) -> Result<StreamableHttpClientTransportConfig, HttpSetupError> {
    Ok(StreamableHttpClientTransportConfig::with_uri(url.to_owned())
        .custom_headers(headers(header_pairs)?)
        .max_sse_event_size(max_message_bytes)
        .max_json_response_size(max_message_bytes)
        .reinit_on_expired_session(true))
}

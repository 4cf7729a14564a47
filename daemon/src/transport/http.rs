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
    /// The OAuth client-credentials exchange failed (discovery, registration or token).
    #[error("OAuth client credentials failed: {0}")]
    OAuth(String),
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

/// Like [`connect`], first obtaining a bearer token with the OAuth client-credentials grant.
/// rmcp does the protocol: protected resource metadata, authorization server metadata
/// (RFC 8414 / OpenID, in the spec's order), the token request with the RFC 8707
/// `resource`, the auth method the server advertises, and refreshes; metadata URLs are
/// checked against private addresses unless the server itself is on loopback.
pub async fn connect_oauth(
    url: &str,
    header_pairs: &[(String, String)],
    max_message_bytes: usize,
    connect_timeout: Duration,
    oauth: &crate::config::OAuthConfig,
) -> Result<AnyTransport, HttpSetupError> {
    use rmcp::transport::auth::{AuthClient, ClientCredentialsConfig, OAuthState};
    let oauth_err = |e: rmcp::transport::auth::AuthError| HttpSetupError::OAuth(e.to_string());
    let mut state = OAuthState::new(url, None).await.map_err(oauth_err)?;
    let creds = ClientCredentialsConfig::ClientSecret {
        client_id: oauth.client_id.clone(),
        client_secret: oauth.client_secret.expose().to_owned(),
        scopes: oauth.scopes.clone(),
        resource: Some(url.to_owned()),
    };
    tokio::time::timeout(connect_timeout, state.authenticate_client_credentials(creds))
        .await
        .map_err(|_| HttpSetupError::OAuth(format!("no token within {connect_timeout:?}")))?
        .map_err(oauth_err)?;
    let manager = state
        .into_authorization_manager()
        .ok_or_else(|| HttpSetupError::OAuth("the authorization did not complete".into()))?;
    let config = StreamableHttpClientTransportConfig::with_uri(url.to_owned())
        .custom_headers(headers(header_pairs)?)
        .max_sse_event_size(max_message_bytes)
        .max_json_response_size(max_message_bytes)
        .reinit_on_expired_session(true);
    let client = AuthClient::new(client(connect_timeout)?, manager);
    Ok(AnyTransport::HttpAuth(StreamableHttpClientTransport::with_client(client, config)))
}

pub fn connect(
    url: &str,
    header_pairs: &[(String, String)],
    max_message_bytes: usize,
    connect_timeout: Duration,
) -> Result<AnyTransport, HttpSetupError> {
    let config = StreamableHttpClientTransportConfig::with_uri(url.to_owned())
        .custom_headers(headers(header_pairs)?)
        .max_sse_event_size(max_message_bytes)
        .max_json_response_size(max_message_bytes)
        .reinit_on_expired_session(true);
    Ok(AnyTransport::Http(StreamableHttpClientTransport::with_client(client(connect_timeout)?, config)))
}

//! What servers ask of a client, answered the same way in both protocol eras: elicitation
//! (form and URL mode) goes to an attached app under mcpd's rules, sampling goes to the
//! [`Sampler`], roots come from the config. The session-era handler and the stateless-era
//! MRTR driver (`input_required` results) both call in here.
use std::{collections::BTreeMap, sync::Arc, sync::LazyLock};

use regex::Regex;
use rmcp::{
    ErrorData,
    model::{
        ClientCapabilities, ElicitationCapability, FormElicitationCapability, RootsCapabilities, SamplingCapability,
        UrlElicitationCapability,
    },
};
use serde_json::{Value, json};

use crate::{
    attach::{Attachments, DEFAULT_REPLY_TIMEOUT, RequestKind},
    event::EventKind,
    host::HostHandle,
    sampling::Sampler,
    upstream::Upstream,
};

/// What mcpd declares as a client, in both eras.
pub fn client_capabilities() -> ClientCapabilities {
    let mut caps = ClientCapabilities::default();
    // Declared always: with no app attached mcpd declines, which servers handle;
    // not declaring would hide the tools some servers only offer to capable clients.
    caps.elicitation = Some(
        ElicitationCapability::new()
            .with_form(FormElicitationCapability::default())
            .with_url(UrlElicitationCapability::new()),
    );
    // Sampling with tools (2025-11-25): mcpd maps tools and toolChoice to the provider.
    let mut sampling = SamplingCapability::default();
    sampling.tools = Some(serde_json::Map::new());
    caps.sampling = Some(sampling);
    let mut roots = RootsCapabilities::default();
    roots.list_changed = Some(true);
    caps.roots = Some(roots);
    // mcpd drives tasks (SEP-2663) for the calls it makes: a server may answer a long
    // `tools/call` with a task, which mcpd polls to its result (`call/task.rs`).
    let mut extensions = rmcp::model::ExtensionCapabilities::new();
    extensions.insert(rmcp::model::TASKS_EXTENSION_ID.to_owned(), serde_json::Map::new());
    caps.extensions = Some(extensions);
    caps
}

/// The capabilities declared on one 2026-07-28 request made for an MCP host: sampling only
/// if the host takes it or mcpd's route for the server can answer it, so that a server that
/// needs sampling refuses the call (-32021) rather than counting on an answer nobody gives.
pub fn client_capabilities_for(sampler: &Sampler, server: &str, host: &HostHandle) -> ClientCapabilities {
    let mut caps = client_capabilities();
    if !host.0.accepts("sampling/createMessage", &json!({})) && !sampler.can_answer(server) {
        caps.sampling = None;
    }
    caps
}

/// MRTR rounds driven for one request before giving up (rmcp's default is the same).
pub const MAX_MRTR_ROUNDS: usize = 10;

/// Field names and descriptions that ask for a secret; a form elicitation that asks for one
/// is declined (MCP: servers must not request sensitive information through forms).
static SECRET_FIELD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)(pass(word|wd|phrase)?|secret|token|api[_ -]?key|access[_ -]?key|private[_ -]?key|credential|\bpin\b|\bcvv\b|credit[_ -]?card|card[_ -]?number|\bssn\b|social security|seed phrase|mnemonic|2fa|otp\b|one[- ]time code)",
    )
    .expect("static regex compiles")
});

/// Stronger phrases for descriptions, which are prose: "your password" asks for one;
/// "do not give us your pin" does not.
static SECRET_PROSE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\b(password|passphrase|api[_ -]?key|secret key|private key|access token|credit card number|card number|cvv|social security number|seed phrase)\b",
    )
    .expect("static regex compiles")
});
static NEGATED: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)\b(do not|don't|never|not)\b").expect("static regex compiles"));

pub struct ServerRequests {
    pub attachments: Arc<Attachments>,
    pub sampler: Arc<Sampler>,
}

impl std::fmt::Debug for ServerRequests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerRequests").finish_non_exhaustive()
    }
}

fn decline() -> Value {
    json!({"action": "decline"})
}

/// The name of a form field that asks for a secret, if any.
pub fn secret_field(params: &Value) -> Option<String> {
    let props = params.pointer("/requestedSchema/properties")?.as_object()?;
    for (name, schema) in props {
        let labels = [Some(name.as_str()), schema.get("title").and_then(Value::as_str)];
        let password_format = schema.get("format").and_then(Value::as_str) == Some("password");
        let prose = schema.get("description").and_then(Value::as_str).unwrap_or("");
        let prose_asks = SECRET_PROSE.is_match(prose) && !NEGATED.is_match(prose);
        if password_format || prose_asks || labels.iter().flatten().any(|t| SECRET_FIELD.is_match(t)) {
            return Some(name.clone());
        }
    }
    None
}

/// `https://host:port/path` -> `host:port`; `None` unless http(s) with a host.
pub fn url_host(url: &str) -> Option<String> {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"))?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    (!host.is_empty()).then(|| host.to_lowercase())
}

// === impl ServerRequests ===

impl ServerRequests {
    /// An elicitation: declined when it asks for a secret (form mode), when its URL is not
    /// http(s) (URL mode), or when no app answers; otherwise the app's answer. URL mode
    /// hands the app the URL's host as `_mcpd.urlHost` so it can show it next to the URL.
    ///
    /// A `host` that takes elicitations (the MCP host whose call this is) is asked instead of
    /// an attached app, after the same rules.
    pub async fn elicit(&self, upstream: &Upstream, mut params: Value, host: Option<&HostHandle>) -> Value {
        let server = upstream.name.as_str();
        let url_mode = params.get("mode").and_then(Value::as_str) == Some("url") || params.get("url").is_some();
        if url_mode {
            let url = params.get("url").and_then(Value::as_str).unwrap_or("").to_owned();
            let Some(host) = url_host(&url) else {
                let why = "a URL-mode elicitation whose URL is not http(s) with a host".to_owned();
                upstream.events.emit(server, EventKind::ElicitationDeclined, None, why);
                return decline();
            };
            if let Some(obj) = params.as_object_mut() {
                obj.insert("_mcpd".into(), json!({"urlHost": host}));
            }
        } else if let Some(field) = secret_field(&params) {
            let why = format!("a form elicitation asked for a secret (field {field:?}); declined");
            tracing::warn!(server = %server, field = %field, "elicitation asking for a secret declined");
            upstream.events.emit(server, EventKind::ElicitationDeclined, None, why);
            return decline();
        }
        if let Some(h) = HostHandle::taking(host, "elicitation/create", &params) {
            // mcpd's own hint is for its attached apps; the host gets the server's request.
            if let Some(obj) = params.as_object_mut() {
                obj.remove("_mcpd");
            }
            return match tokio::time::timeout(DEFAULT_REPLY_TIMEOUT, h.ask("elicitation/create", params)).await {
                Ok(Ok(v)) => v,
                Ok(Err(e)) => {
                    tracing::info!(server = %server, reason = %e, "the host did not answer an elicitation; declined");
                    decline()
                }
                Err(_) => decline(),
            };
        }
        match self.attachments.route(server, RequestKind::Elicitation, params, DEFAULT_REPLY_TIMEOUT).await {
            Ok(v) => v,
            Err(e) => {
                // With nobody to ask, or nobody answering, the safe answer is "no".
                tracing::info!(server = %server, reason = %e, "elicitation declined");
                decline()
            }
        }
    }

    pub async fn sample(
        &self,
        upstream: &Upstream,
        params: Value,
        host: Option<&HostHandle>,
    ) -> Result<Value, ErrorData> {
        self.sampler.sample(upstream, params, host).await
    }

    /// `roots/list`: the server's configured roots.
    pub fn roots(&self, upstream: &Upstream) -> Value {
        let roots: Vec<Value> = upstream.roots().iter().map(|r| json!({"uri": r})).collect();
        json!({"roots": roots})
    }

    /// Fulfils the input requests of one MRTR `input_required` round, keyed as the server
    /// keyed them. A refused sampling request fails the round (and the call) with its error.
    ///
    /// Questions the caller's host takes go to it as one round, under the server's keys,
    /// after mcpd's rules (a form asking for a secret is declined here, sampling passes its
    /// budget); the rest are answered by mcpd's routes.
    pub async fn fulfil(
        &self,
        upstream: &Upstream,
        requests: &Value,
        host: Option<&HostHandle>,
    ) -> Result<BTreeMap<String, Value>, ErrorData> {
        let mut out = BTreeMap::new();
        let Some(map) = requests.as_object() else { return Ok(out) };
        let mut for_host = Vec::new();
        for (key, req) in map {
            let method = req.get("method").and_then(Value::as_str).unwrap_or("");
            let params = req.get("params").cloned().unwrap_or_else(|| json!({}));
            if let Some(h) = host
                && let Some((method, params)) = self.for_host(upstream, method, &params, h)?
            {
                for_host.push((key.clone(), method, params));
                continue;
            }
            let answer = match method {
                "sampling/createMessage" => self.sample(upstream, params, host).await?,
                "elicitation/create" => self.elicit(upstream, params, host).await,
                "roots/list" => self.roots(upstream),
                other => {
                    return Err(ErrorData::invalid_params(
                        format!("mcpd cannot fulfil an input request of method {other:?}"),
                        None,
                    ));
                }
            };
            out.insert(key.clone(), answer);
        }
        if let Some(h) = host.filter(|_| !for_host.is_empty()) {
            let answers = tokio::time::timeout(DEFAULT_REPLY_TIMEOUT, h.0.ask_all(for_host))
                .await
                .map_err(|_| ErrorData::internal_error("the MCP host did not answer in time", None))?
                .map_err(|e| ErrorData::internal_error(format!("the MCP host did not answer: {e}"), None))?;
            out.extend(answers);
        }
        Ok(out)
    }

    /// The question as the host gets it, if the host takes it after mcpd's rules; `None`
    /// leaves it to mcpd's own answers (which decline what the rules refuse).
    fn for_host(
        &self,
        upstream: &Upstream,
        method: &str,
        params: &Value,
        host: &HostHandle,
    ) -> Result<Option<(&'static str, Value)>, ErrorData> {
        match method {
            "elicitation/create" => {
                let url_mode = params.get("mode").and_then(Value::as_str) == Some("url") || params.get("url").is_some();
                let refused = if url_mode {
                    url_host(params.get("url").and_then(Value::as_str).unwrap_or("")).is_none()
                } else {
                    secret_field(params).is_some()
                };
                Ok((!refused && host.0.accepts(method, params)).then(|| ("elicitation/create", params.clone())))
            }
            "sampling/createMessage" if host.0.accepts(method, params) => {
                Ok(Some(("sampling/createMessage", self.sampler.admit(upstream, params.clone())?)))
            }
            // The admin's roots for the server come first; without any, the host's.
            "roots/list" if upstream.roots().is_empty() && host.0.accepts(method, params) => {
                Ok(Some(("roots/list", params.clone())))
            }
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_asking_for_secrets_are_recognised() {
        let form = |props: Value| json!({"message": "m", "requestedSchema": {"type": "object", "properties": props}});
        assert_eq!(secret_field(&form(json!({"password": {"type": "string"}}))).as_deref(), Some("password"));
        assert_eq!(
            secret_field(&form(json!({"k": {"type": "string", "title": "Your API key"}}))).as_deref(),
            Some("k")
        );
        assert_eq!(secret_field(&form(json!({"k": {"type": "string", "format": "password"}}))).as_deref(), Some("k"));
        assert_eq!(secret_field(&form(json!({"name": {"type": "string"}, "age": {"type": "integer"}}))), None);
        assert_eq!(secret_field(&form(json!({"color": {"type": "string", "description": "Favourite colour"}}))), None);
        // Prose that warns against sharing secrets is not a request for one.
        let warn = json!({"n": {"type": "integer", "description": "Your favorite integer (do not give us your phone number, pin, or other sensitive info)"}});
        assert_eq!(secret_field(&form(warn)), None);
        let asks = json!({"x": {"type": "string", "description": "Enter your password to continue"}});
        assert_eq!(secret_field(&form(asks)).as_deref(), Some("x"));
    }

    #[test]
    fn url_hosts() {
        assert_eq!(url_host("https://Login.Example.com:8443/a?b").as_deref(), Some("login.example.com:8443"));
        assert_eq!(url_host("https://user@evil.example/x").as_deref(), Some("evil.example"));
        assert_eq!(url_host("javascript:alert(1)"), None);
        assert_eq!(url_host("https:///nohost"), None);
    }
}

//! Answers servers' sampling requests (`sampling/createMessage` in the session era, the same
//! request inside an MRTR `input_required` result in the stateless era): routed per server to
//! a configured LLM provider or to an attached app, under per-server budgets.
//!
//! Budgets: requests per period (token bucket), a cap on `maxTokens`, and how many requests
//! of one server may be in flight at once (which bounds nesting: a sampling request made
//! while another of the same server is being answered). Message rules are enforced before
//! anything is sent: a message holding a tool result holds only tool results, and every tool
//! use is answered by the next message. A refusal is a JSON-RPC error the server can read.
//!
//! The mapping goes through the JSON wire form of the request and result, so it follows the
//! spec's shapes and not one SDK version's structs.
use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
};

use arc_swap::ArcSwap;
use rmcp::{ErrorData, model::ErrorCode};
use serde_json::{Value, json};

use crate::{
    attach::{Attachments, DEFAULT_REPLY_TIMEOUT, RequestKind},
    config::{Config, SamplingConfig, SamplingRoute},
    event::EventKind,
    limit::Limiter,
    live::LiveHandle,
    llm::{ChatRequest, ChatResponse, Message, Part, Provider, Role, StopReason, ToolChoice, ToolSpec},
    upstream::Upstream,
};

/// The code MCP uses for a request the client declined.
const REFUSED: ErrorCode = ErrorCode(-1);

struct ServerBudget {
    limiter: Option<Limiter>,
}

/// Routes and budgets, rebuilt from the config on (re)load.
struct Policies {
    default: SamplingConfig,
    servers: BTreeMap<String, SamplingConfig>,
    budgets: HashMap<String, ServerBudget>,
}

pub struct Sampler {
    live: LiveHandle,
    attachments: Arc<Attachments>,
    policies: ArcSwap<Policies>,
    in_flight: Mutex<HashMap<String, u32>>,
}

impl std::fmt::Debug for Sampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sampler").finish_non_exhaustive()
    }
}

fn refused(msg: impl Into<String>) -> ErrorData {
    ErrorData::new(REFUSED, msg.into(), None)
}

fn invalid(msg: impl Into<String>) -> ErrorData {
    ErrorData::invalid_params(msg.into(), None)
}

/// Decrements the in-flight count when a request ends, however it ends.
struct InFlight<'a> {
    sampler: &'a Sampler,
    server: String,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut m = self.sampler.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.server) {
            *n = n.saturating_sub(1);
        }
    }
}

// === impl Sampler ===

impl Sampler {
    pub fn new(live: LiveHandle, attachments: Arc<Attachments>, cfg: &Config) -> Self {
        Self {
            live,
            attachments,
            policies: ArcSwap::from_pointee(Self::policies(cfg)),
            in_flight: Mutex::new(HashMap::new()),
        }
    }

    fn policies(cfg: &Config) -> Policies {
        let default = cfg.sampling.clone();
        let mut servers = BTreeMap::new();
        let mut budgets = HashMap::new();
        for (name, s) in &cfg.servers {
            let eff = s.sampling.clone().unwrap_or_else(|| default.clone());
            budgets.insert(name.clone(), ServerBudget { limiter: eff.rate.map(Limiter::new) });
            servers.insert(name.clone(), eff);
        }
        Policies { default, servers, budgets }
    }

    /// Applies a reloaded config (budgets start afresh).
    pub fn apply(&self, cfg: &Config) {
        self.policies.store(Arc::new(Self::policies(cfg)));
    }

    /// Whether mcpd's route for `server` could answer a sampling request now: a provider
    /// to ask, or an attached app that takes it.
    pub fn can_answer(&self, server: &str) -> bool {
        let policies = self.policies.load();
        let cfg = policies.servers.get(server).unwrap_or(&policies.default);
        match &cfg.route {
            SamplingRoute::Refuse => false,
            SamplingRoute::App => self.attachments.has_app_for(server, RequestKind::Sampling),
            SamplingRoute::Llm(Some(name)) => self.live.load().providers.contains_key(name),
            SamplingRoute::Llm(None) => !self.live.load().providers.is_empty(),
        }
    }

    /// The checks every sampling request passes whoever answers it: the route does not
    /// refuse, the server's rate budget holds, the messages are well formed. Returns the
    /// params with `maxTokens` capped at the configured maximum.
    pub fn admit(&self, upstream: &Upstream, params: Value) -> Result<Value, ErrorData> {
        let server = upstream.name.as_str();
        let policies = self.policies.load();
        let cfg = policies.servers.get(server).unwrap_or(&policies.default).clone();
        let refuse = |why: String| refusal(upstream, why);
        if cfg.route == SamplingRoute::Refuse {
            return Err(refuse("sampling is disabled for this server (sampling.route = \"refuse\")".into()));
        }
        if let Some(b) = policies.budgets.get(server).and_then(|b| b.limiter.as_ref())
            && let Err(wait) = b.check("")
        {
            let rate = cfg.rate.map(|r| r.to_string()).unwrap_or_default();
            return Err(refuse(format!(
                "the sampling rate limit {rate} for server {server:?} is exceeded; retry in {}ms",
                wait.as_millis().max(1)
            )));
        }
        check_messages(&params)?;
        let mut params = params;
        // The configured cap on maxTokens holds whoever answers.
        if let Some(obj) = params.as_object_mut() {
            let asked = obj.get("maxTokens").and_then(Value::as_u64).unwrap_or(u64::from(cfg.max_tokens));
            obj.insert("maxTokens".into(), Value::from(asked.min(u64::from(cfg.max_tokens))));
        }
        Ok(params)
    }

    /// Answers one sampling request of `upstream`'s server. A `host` that takes sampling (the
    /// MCP host whose call this is) answers instead of the route, within the same budgets;
    /// `route = "refuse"` still refuses.
    pub async fn sample(
        &self,
        upstream: &Upstream,
        params: Value,
        host: Option<&crate::host::HostHandle>,
    ) -> Result<Value, ErrorData> {
        let server = upstream.name.as_str();
        let policies = self.policies.load();
        let cfg = policies.servers.get(server).unwrap_or(&policies.default).clone();
        let refuse = |why: String| refusal(upstream, why);
        let params = self.admit(upstream, params)?;
        let _guard = {
            let mut m = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
            let n = m.entry(server.to_owned()).or_insert(0);
            if *n >= cfg.max_concurrent {
                let max = cfg.max_concurrent;
                drop(m);
                return Err(refuse(format!(
                    "server {server:?} already has {max} sampling requests in flight (sampling.max_concurrent; nested requests count)"
                )));
            }
            *n += 1;
            InFlight { sampler: self, server: server.to_owned() }
        };
        if let Some(h) = crate::host::HostHandle::taking(host, "sampling/createMessage", &params) {
            return match tokio::time::timeout(DEFAULT_REPLY_TIMEOUT, h.ask("sampling/createMessage", params)).await {
                Ok(Ok(v)) => Ok(v),
                Ok(Err(e)) => Err(refuse(format!("the MCP host did not answer: {e}"))),
                Err(_) => Err(refuse("the MCP host did not answer in time".into())),
            };
        }
        match &cfg.route {
            SamplingRoute::App => {
                match self.attachments.route(server, RequestKind::Sampling, params, DEFAULT_REPLY_TIMEOUT).await {
                    Ok(v) => Ok(v),
                    Err(e) => Err(refuse(e.to_string())),
                }
            }
            SamplingRoute::Llm(name) => {
                let live = self.live.load();
                let providers = &live.providers;
                let provider = pick(providers, name.as_deref(), &params).ok_or_else(|| {
                    refuse(match name {
                        Some(n) => format!("no LLM provider named {n:?} is configured"),
                        None => "no LLM provider is configured".into(),
                    })
                })?;
                let req = to_chat(&params, cfg.max_tokens)?;
                let resp = provider.chat(&req).await.map_err(|e| refuse(format!("the LLM provider failed: {e}")))?;
                Ok(from_chat(&resp))
            }
            SamplingRoute::Refuse => Err(refuse("sampling is disabled".into())),
        }
    }
}

/// A refused sampling request: logged, announced as an event, and the error the server gets.
fn refusal(upstream: &Upstream, why: String) -> ErrorData {
    let server = upstream.name.as_str();
    tracing::info!(server = %server, reason = %why, "sampling request refused");
    upstream.events.emit(server, EventKind::SamplingRefused, None, why.clone());
    refused(format!("sampling request refused by mcpd: {why}"))
}

/// `route = "llm:NAME"` names the provider; `route = "llm"` picks by the request's model
/// hints (a hint that is part of a provider's model name), else the first provider.
fn pick(providers: &BTreeMap<String, Provider>, name: Option<&str>, params: &Value) -> Option<Provider> {
    if let Some(n) = name {
        return providers.get(n).cloned();
    }
    let hints: Vec<String> = params
        .pointer("/modelPreferences/hints")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|h| h.get("name").and_then(Value::as_str)).map(str::to_lowercase).collect())
        .unwrap_or_default();
    for h in &hints {
        if let Some(p) = providers.values().find(|p| p.default_model().to_lowercase().contains(h.as_str())) {
            return Some(p.clone());
        }
    }
    providers.values().next().cloned()
}

fn blocks(content: &Value) -> Vec<&Value> {
    match content {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    }
}

fn block_type(b: &Value) -> &str {
    b.get("type").and_then(Value::as_str).unwrap_or("")
}

/// The spec's message rules, checked before anything is sent anywhere.
pub fn check_messages(params: &Value) -> Result<(), ErrorData> {
    let msgs = params.get("messages").and_then(Value::as_array).ok_or_else(|| invalid("`messages` is missing"))?;
    if msgs.is_empty() {
        return Err(invalid("`messages` is empty"));
    }
    for (i, m) in msgs.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("");
        let content = blocks(m.get("content").unwrap_or(&Value::Null));
        let results = content.iter().filter(|b| block_type(b) == "tool_result").count();
        if results > 0 && results != content.len() {
            return Err(invalid(format!(
                "message {i} mixes tool results with other content; a tool-result message holds only tool results"
            )));
        }
        if results > 0 && role != "user" {
            return Err(invalid(format!("message {i} holds tool results but its role is {role:?}, not \"user\"")));
        }
        let uses: Vec<&str> = content
            .iter()
            .filter(|b| block_type(b) == "tool_use")
            .filter_map(|b| b.get("id").and_then(Value::as_str))
            .collect();
        if uses.is_empty() {
            continue;
        }
        let next = msgs.get(i + 1).map(|n| blocks(n.get("content").unwrap_or(&Value::Null))).unwrap_or_default();
        let answered: Vec<&str> = next
            .iter()
            .filter(|b| block_type(b) == "tool_result")
            .filter_map(|b| b.get("toolUseId").and_then(Value::as_str))
            .collect();
        for id in uses {
            if !answered.contains(&id) {
                return Err(invalid(format!(
                    "tool use {id:?} in message {i} has no tool result in the next message; every tool use must be answered"
                )));
            }
        }
    }
    Ok(())
}

fn part_of(b: &Value) -> Option<Part> {
    match block_type(b) {
        "text" => Some(Part::Text(b.get("text").and_then(Value::as_str).unwrap_or("").to_owned())),
        "image" => Some(Part::Image {
            mime: b.get("mimeType").and_then(Value::as_str).unwrap_or("image/png").to_owned(),
            data_base64: b.get("data").and_then(Value::as_str).unwrap_or("").to_owned(),
        }),
        "tool_use" => Some(Part::ToolUse {
            id: b.get("id").and_then(Value::as_str).unwrap_or("").to_owned(),
            name: b.get("name").and_then(Value::as_str).unwrap_or("").to_owned(),
            input: b.get("input").cloned().unwrap_or_else(|| json!({})),
        }),
        "tool_result" => Some(Part::ToolResult {
            tool_use_id: b.get("toolUseId").and_then(Value::as_str).unwrap_or("").to_owned(),
            content: b
                .get("content")
                .map(|c| {
                    blocks(c)
                        .into_iter()
                        .filter_map(part_of)
                        .filter(|p| matches!(p, Part::Text(_) | Part::Image { .. }))
                        .collect()
                })
                .unwrap_or_default(),
            is_error: b.get("isError").and_then(Value::as_bool).unwrap_or(false),
        }),
        // Audio has no place in either chat API; say so rather than drop it silently.
        "audio" => Some(Part::Text("[audio content omitted by mcpd: the LLM provider takes no audio]".into())),
        _ => None,
    }
}

/// The wire request as a provider-neutral chat request.
pub fn to_chat(params: &Value, max_tokens_cap: u32) -> Result<ChatRequest, ErrorData> {
    let mut messages = Vec::new();
    for m in params.get("messages").and_then(Value::as_array).into_iter().flatten() {
        let role = match m.get("role").and_then(Value::as_str) {
            Some("assistant") => Role::Assistant,
            _ => Role::User,
        };
        let content = blocks(m.get("content").unwrap_or(&Value::Null)).into_iter().filter_map(part_of).collect();
        messages.push(Message { role, content });
    }
    let tools: Vec<ToolSpec> = params
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|t| ToolSpec {
            name: t.get("name").and_then(Value::as_str).unwrap_or("").to_owned(),
            description: t.get("description").and_then(Value::as_str).unwrap_or("").to_owned(),
            input_schema: t.get("inputSchema").cloned().unwrap_or_else(|| json!({"type": "object"})),
        })
        .collect();
    let tool_choice = match params.pointer("/toolChoice/mode").and_then(Value::as_str) {
        Some("required") => ToolChoice::Required,
        Some("none") => ToolChoice::None,
        _ => ToolChoice::Auto,
    };
    let asked = params.get("maxTokens").and_then(Value::as_u64).unwrap_or(u64::from(max_tokens_cap));
    let max_tokens = u32::try_from(asked).unwrap_or(u32::MAX).min(max_tokens_cap).max(1);
    Ok(ChatRequest {
        model: None,
        system: params.get("systemPrompt").and_then(Value::as_str).map(str::to_owned),
        messages,
        tools,
        tool_choice,
        max_tokens,
        temperature: params.get("temperature").and_then(Value::as_f64).map(|t| t as f32),
        stop: params
            .get("stopSequences")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect())
            .unwrap_or_default(),
    })
}

/// The provider's answer as a `CreateMessageResult` on the wire.
pub fn from_chat(resp: &ChatResponse) -> Value {
    let content: Vec<Value> = resp
        .content
        .iter()
        .filter_map(|p| match p {
            Part::Text(t) => Some(json!({"type": "text", "text": t})),
            Part::ToolUse { id, name, input } => {
                Some(json!({"type": "tool_use", "id": id, "name": name, "input": input}))
            }
            _ => None,
        })
        .collect();
    let stop = match &resp.stop_reason {
        StopReason::EndTurn => "endTurn".to_owned(),
        StopReason::MaxTokens => "maxTokens".to_owned(),
        StopReason::StopSequence => "stopSequence".to_owned(),
        StopReason::ToolUse => "toolUse".to_owned(),
        StopReason::Other(o) => o.clone(),
    };
    let content = if content.len() == 1 { content[0].clone() } else { Value::Array(content) };
    json!({"role": "assistant", "content": content, "model": resp.model, "stopReason": stop})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_rules() {
        let ok = json!({"messages": [
            {"role": "user", "content": {"type": "text", "text": "hi"}},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "a", "name": "t", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "toolUseId": "a", "content": [{"type": "text", "text": "r"}]}]}
        ], "maxTokens": 10});
        assert!(check_messages(&ok).is_ok());
        let mixed = json!({"messages": [
            {"role": "user", "content": [{"type": "tool_result", "toolUseId": "a", "content": []}, {"type": "text", "text": "x"}]}
        ]});
        assert!(check_messages(&mixed).unwrap_err().message.contains("only tool results"));
        let unanswered = json!({"messages": [
            {"role": "assistant", "content": [{"type": "tool_use", "id": "a", "name": "t", "input": {}}]},
            {"role": "user", "content": {"type": "text", "text": "never mind"}}
        ]});
        assert!(check_messages(&unanswered).unwrap_err().message.contains("no tool result"));
        assert_eq!(check_messages(&json!({"messages": []})).unwrap_err().code, ErrorCode::INVALID_PARAMS);
    }

    #[test]
    fn maps_to_and_from_the_chat_model() {
        let params = json!({
            "messages": [
                {"role": "user", "content": {"type": "text", "text": "weather?"}},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "c1", "name": "get_weather", "input": {"city": "Paris"}}]},
                {"role": "user", "content": [{"type": "tool_result", "toolUseId": "c1", "content": [{"type": "text", "text": "sunny"}]}]}
            ],
            "systemPrompt": "be brief", "maxTokens": 100000,
            "tools": [{"name": "get_weather", "inputSchema": {"type": "object"}}],
            "toolChoice": {"mode": "required"}, "stopSequences": ["END"]
        });
        let req = to_chat(&params, 4096).unwrap();
        assert_eq!(req.max_tokens, 4096, "the budget caps maxTokens");
        assert_eq!(req.system.as_deref(), Some("be brief"));
        assert_eq!(req.tool_choice, ToolChoice::Required);
        assert_eq!(req.messages.len(), 3);
        assert!(matches!(&req.messages[2].content[0], Part::ToolResult { tool_use_id, .. } if tool_use_id == "c1"));
        let resp = ChatResponse {
            model: "m".into(),
            content: vec![Part::ToolUse {
                id: "c2".into(),
                name: "get_weather".into(),
                input: json!({"city": "Oslo"}),
            }],
            stop_reason: StopReason::ToolUse,
            usage: Default::default(),
        };
        let out = from_chat(&resp);
        assert_eq!(out["stopReason"], "toolUse");
        assert_eq!(out["content"]["type"], "tool_use");
        // The wire form parses as rmcp's result type.
        #[allow(deprecated)]
        let parsed: Result<rmcp::model::CreateMessageResult, _> = serde_json::from_value(out);
        assert!(parsed.is_ok(), "{parsed:?}");
    }
}

//! The Anthropic Messages API (`POST {base_url}/v1/messages`, `x-api-key`, `anthropic-version`).
//!
//! Mapping notes (why the shapes differ from the neutral model):
//! - the system prompt is the top-level `system`, not a message;
//! - every message carries an array of content blocks (`text`, `image`, `tool_use`, `tool_result`);
//! - in a user message the `tool_result` blocks must come first (the API answers 400 otherwise), so
//!   they are emitted before the message's other parts whatever their order in the neutral model;
//! - empty text blocks are refused by the API, so they are dropped (a message left empty is an error);
//! - `tool_choice` is `{type: auto | any | none | tool}`; `Required` maps to `any`;
//! - input tokens include prompt-cache reads and writes, since callers budget total input.
use serde_json::{Map, Value, json};

use super::http::excerpt;
use super::{ChatRequest, ChatResponse, LlmError, Part, Role, StopReason, ToolChoice, Usage};

/// The `anthropic-version` header sent unless the config's `headers` override it.
pub(crate) const API_VERSION: &str = "2023-06-01";

/// Builds the Messages API request body for `model`.
pub(crate) fn request_body(req: &ChatRequest, model: &str, max_tokens: u32) -> Result<Value, LlmError> {
    let mut messages = Vec::with_capacity(req.messages.len());
    for (i, msg) in req.messages.iter().enumerate() {
        let content = match msg.role {
            Role::User => user_blocks(i, &msg.content)?,
            Role::Assistant => assistant_blocks(i, &msg.content)?,
        };
        if content.is_empty() {
            return Err(LlmError::InvalidRequest(format!("message {i} has no content (empty text is not accepted)")));
        }
        let role = match msg.role {
            Role::User => "user",
            Role::Assistant => "assistant",
        };
        messages.push(json!({"role": role, "content": content}));
    }
    let mut body = Map::new();
    body.insert("model".into(), json!(model));
    body.insert("max_tokens".into(), json!(max_tokens));
    if let Some(system) = req.system.as_deref().filter(|s| !s.is_empty()) {
        body.insert("system".into(), json!(system));
    }
    body.insert("messages".into(), Value::Array(messages));
    if let Some(t) = req.temperature {
        body.insert("temperature".into(), json!(t));
    }
    if !req.stop.is_empty() {
        body.insert("stop_sequences".into(), json!(req.stop));
    }
    // Without tools neither `tools` nor `tool_choice` is sent: the API rejects a choice with nothing to choose.
    if !req.tools.is_empty() {
        let tools: Vec<Value> = req
            .tools
            .iter()
            .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.input_schema}))
            .collect();
        body.insert("tools".into(), Value::Array(tools));
        let choice = match &req.tool_choice {
            ToolChoice::Auto => json!({"type": "auto"}),
            ToolChoice::None => json!({"type": "none"}),
            ToolChoice::Required => json!({"type": "any"}),
            ToolChoice::Tool(name) => json!({"type": "tool", "name": name}),
        };
        body.insert("tool_choice".into(), choice);
    }
    Ok(Value::Object(body))
}

fn user_blocks(index: usize, parts: &[Part]) -> Result<Vec<Value>, LlmError> {
    let mut results = Vec::new();
    let mut rest = Vec::new();
    for part in parts {
        match part {
            Part::Text(t) => push_text(&mut rest, t),
            Part::Image { mime, data_base64 } => rest.push(image_block(mime, data_base64)),
            Part::ToolResult { tool_use_id, content, is_error } => {
                let mut blocks = Vec::new();
                for p in content {
                    match p {
                        Part::Text(t) => push_text(&mut blocks, t),
                        Part::Image { mime, data_base64 } => blocks.push(image_block(mime, data_base64)),
                        _ => {
                            return Err(LlmError::InvalidRequest(format!(
                                "message {index}: a tool result may hold only text and images"
                            )));
                        }
                    }
                }
                let mut block = Map::new();
                block.insert("type".into(), json!("tool_result"));
                block.insert("tool_use_id".into(), json!(tool_use_id));
                // An empty result omits `content` (an empty text block would be refused).
                if !blocks.is_empty() {
                    block.insert("content".into(), Value::Array(blocks));
                }
                if *is_error {
                    block.insert("is_error".into(), json!(true));
                }
                results.push(Value::Object(block));
            }
            Part::ToolUse { .. } => {
                return Err(LlmError::InvalidRequest(format!(
                    "message {index}: a user message cannot hold a tool use; tool uses belong to assistant messages"
                )));
            }
        }
    }
    results.extend(rest);
    Ok(results)
}

fn assistant_blocks(index: usize, parts: &[Part]) -> Result<Vec<Value>, LlmError> {
    let mut blocks = Vec::new();
    for part in parts {
        match part {
            Part::Text(t) => push_text(&mut blocks, t),
            Part::ToolUse { id, name, input } => {
                // The API wants an object; a model that produced `null` meant "no arguments".
                let input = match input {
                    Value::Null => json!({}),
                    Value::Object(_) => input.clone(),
                    _ => {
                        return Err(LlmError::InvalidRequest(format!(
                            "message {index}: the input of tool use {id:?} must be a JSON object"
                        )));
                    }
                };
                blocks.push(json!({"type": "tool_use", "id": id, "name": name, "input": input}));
            }
            Part::Image { .. } | Part::ToolResult { .. } => {
                return Err(LlmError::InvalidRequest(format!(
                    "message {index}: an assistant message may hold only text and tool uses"
                )));
            }
        }
    }
    Ok(blocks)
}

fn push_text(out: &mut Vec<Value>, text: &str) {
    if !text.is_empty() {
        out.push(json!({"type": "text", "text": text}));
    }
}

fn image_block(mime: &str, data_base64: &str) -> Value {
    json!({"type": "image", "source": {"type": "base64", "media_type": mime, "data": data_base64}})
}

/// Parses a Messages API answer. `requested_model` stands in when the answer omits `model`.
pub(crate) fn parse_response(v: &Value, requested_model: &str) -> Result<ChatResponse, LlmError> {
    if v.get("type").and_then(Value::as_str) == Some("error") || v.get("error").is_some_and(|e| !e.is_null()) {
        let err = v.get("error").unwrap_or(v);
        let msg = err.get("message").and_then(Value::as_str).map_or_else(|| err.to_string(), str::to_owned);
        return Err(LlmError::Malformed(format!("the answer is an error object: {msg}")));
    }
    let blocks = v.get("content").and_then(Value::as_array).ok_or_else(|| {
        LlmError::Malformed(format!("no `content` array in the answer: {}", excerpt(&v.to_string(), &[])))
    })?;
    let mut content = Vec::new();
    let mut saw_tool_use = false;
    for (i, block) in blocks.iter().enumerate() {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => {
                let text = block.get("text").and_then(Value::as_str).ok_or_else(|| {
                    LlmError::Malformed(format!("content block {i} is `text` without a string `text`"))
                })?;
                if !text.is_empty() {
                    content.push(Part::Text(text.to_owned()));
                }
            }
            Some("tool_use") => {
                content.push(parse_tool_use(i, block)?);
                saw_tool_use = true;
            }
            // Thinking, redacted thinking and server-side tool blocks carry nothing callers use.
            Some(_) => {}
            None => return Err(LlmError::Malformed(format!("content block {i} has no `type`"))),
        }
    }
    let stop_reason = match v.get("stop_reason").and_then(Value::as_str) {
        Some("end_turn") => StopReason::EndTurn,
        Some("max_tokens") => StopReason::MaxTokens,
        Some("stop_sequence") => StopReason::StopSequence,
        Some("tool_use") => StopReason::ToolUse,
        // A missing reason next to tool uses still means the model wants them run.
        None if saw_tool_use => StopReason::ToolUse,
        None => StopReason::EndTurn,
        Some(other) => StopReason::Other(other.to_owned()),
    };
    let usage = v.get("usage");
    let tokens = |key: &str| usage.and_then(|u| u.get(key)).and_then(Value::as_u64).unwrap_or(0);
    let input_tokens = tokens("input_tokens")
        .saturating_add(tokens("cache_creation_input_tokens"))
        .saturating_add(tokens("cache_read_input_tokens"));
    Ok(ChatResponse {
        model: v.get("model").and_then(Value::as_str).unwrap_or(requested_model).to_owned(),
        content,
        stop_reason,
        usage: Usage { input_tokens, output_tokens: tokens("output_tokens") },
    })
}

fn parse_tool_use(index: usize, block: &Value) -> Result<Part, LlmError> {
    let name = block
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| LlmError::Malformed(format!("tool_use block {index} has no name")))?;
    let id = block
        .get("id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .ok_or_else(|| LlmError::Malformed(format!("tool_use block {index} ({name:?}) has no id")))?;
    let input = match block.get("input") {
        None | Some(Value::Null) => json!({}),
        Some(obj @ Value::Object(_)) => obj.clone(),
        // Tolerated: some gateways translating from other formats pass the arguments as a JSON string.
        Some(Value::String(s)) if s.trim().is_empty() => json!({}),
        Some(Value::String(s)) => serde_json::from_str(s).map_err(|e| {
            LlmError::Malformed(format!(
                "the input of tool_use block {index} ({name:?}) is not valid JSON ({e}): {}",
                excerpt(s, &[])
            ))
        })?,
        Some(other) => {
            return Err(LlmError::Malformed(format!(
                "the input of tool_use block {index} ({name:?}) is neither an object nor a JSON string: {}",
                excerpt(&other.to_string(), &[])
            )));
        }
    };
    Ok(Part::ToolUse { id: id.to_owned(), name: name.to_owned(), input })
}

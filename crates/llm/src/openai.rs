//! OpenAI-compatible chat completions (`POST {base_url}/chat/completions`), as spoken by OpenAI,
//! vLLM, llama.cpp, Ollama, LiteLLM and most gateways.
//!
//! Mapping notes (why the shapes differ from the neutral model):
//! - tool results become `role: "tool"` messages, which must directly follow the assistant's
//!   `tool_calls`; so a user message's tool results are emitted first, and its remaining parts
//!   (plus any images a tool returned, which `tool` messages cannot carry) follow as one user message;
//! - tool-call arguments travel as a JSON *string* both ways;
//! - there is no `is_error` on tool messages, so an error result is prefixed with `error: `;
//! - the token cap is `max_completion_tokens` towards api.openai.com (its reasoning models refuse
//!   `max_tokens`) and `max_tokens` elsewhere (older compatible servers know only that).
use serde_json::{Map, Value, json};

use super::http::excerpt;
use super::{ChatRequest, ChatResponse, LlmError, Part, Role, StopReason, ToolChoice, Usage};

/// Builds the chat-completions request body for `model`. `completion_tokens` sends the cap as
/// `max_completion_tokens` (what OpenAI itself wants; its reasoning models refuse `max_tokens`)
/// instead of `max_tokens` (what most compatible servers understand).
pub(crate) fn request_body(
    req: &ChatRequest,
    model: &str,
    max_tokens: u32,
    completion_tokens: bool,
) -> Result<Value, LlmError> {
    let mut messages = Vec::new();
    if let Some(system) = req.system.as_deref().filter(|s| !s.is_empty()) {
        messages.push(json!({"role": "system", "content": system}));
    }
    for (i, msg) in req.messages.iter().enumerate() {
        match msg.role {
            Role::User => user_messages(i, &msg.content, &mut messages)?,
            Role::Assistant => messages.push(assistant_message(i, &msg.content)?),
        }
    }
    let mut body = Map::new();
    body.insert("model".into(), json!(model));
    body.insert("messages".into(), Value::Array(messages));
    let cap_key = if completion_tokens { "max_completion_tokens" } else { "max_tokens" };
    body.insert(cap_key.into(), json!(max_tokens));
    if let Some(t) = req.temperature {
        body.insert("temperature".into(), json!(t));
    }
    if !req.stop.is_empty() {
        body.insert("stop".into(), json!(req.stop));
    }
    // Both `tools` and `tool_choice` are omitted without tools: servers reject a choice with nothing to choose.
    if !req.tools.is_empty() {
        let tools: Vec<Value> = req
            .tools
            .iter()
            .map(|t| {
                json!({"type": "function", "function": {
                    "name": t.name, "description": t.description, "parameters": t.input_schema
                }})
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
        let choice = match &req.tool_choice {
            ToolChoice::Auto => json!("auto"),
            ToolChoice::None => json!("none"),
            ToolChoice::Required => json!("required"),
            ToolChoice::Tool(name) => json!({"type": "function", "function": {"name": name}}),
        };
        body.insert("tool_choice".into(), choice);
    }
    Ok(Value::Object(body))
}

fn user_messages(index: usize, parts: &[Part], out: &mut Vec<Value>) -> Result<(), LlmError> {
    let mut rest = Vec::new();
    for part in parts {
        match part {
            Part::Text(t) => rest.push(json!({"type": "text", "text": t})),
            Part::Image { mime, data_base64 } => rest.push(image_part(mime, data_base64)),
            Part::ToolResult { tool_use_id, content, is_error } => {
                let mut texts = Vec::new();
                let mut images = 0;
                for p in content {
                    match p {
                        Part::Text(t) => texts.push(t.as_str()),
                        Part::Image { mime, data_base64 } => {
                            images += 1;
                            rest.push(image_part(mime, data_base64));
                        }
                        _ => {
                            return Err(LlmError::InvalidRequest(format!(
                                "message {index}: a tool result may hold only text and images"
                            )));
                        }
                    }
                }
                let mut text = texts.join("\n");
                if images > 0 {
                    if !text.is_empty() {
                        text.push('\n');
                    }
                    text.push_str(&format!("({images} image(s) attached in the next user message)"));
                }
                if *is_error {
                    text = format!("error: {text}");
                }
                out.push(json!({"role": "tool", "tool_call_id": tool_use_id, "content": text}));
            }
            Part::ToolUse { .. } => {
                return Err(LlmError::InvalidRequest(format!(
                    "message {index}: a user message cannot hold a tool use; tool uses belong to assistant messages"
                )));
            }
        }
    }
    match rest.as_slice() {
        [] => {}
        // A lone text part goes as a plain string: the form every compatible server accepts.
        [only] if only["type"] == "text" => out.push(json!({"role": "user", "content": only["text"]})),
        _ => out.push(json!({"role": "user", "content": rest})),
    }
    Ok(())
}

fn image_part(mime: &str, data_base64: &str) -> Value {
    json!({"type": "image_url", "image_url": {"url": format!("data:{mime};base64,{data_base64}")}})
}

fn assistant_message(index: usize, parts: &[Part]) -> Result<Value, LlmError> {
    let mut texts = Vec::new();
    let mut calls = Vec::new();
    for part in parts {
        match part {
            Part::Text(t) => texts.push(t.as_str()),
            Part::ToolUse { id, name, input } => calls.push(json!({
                "id": id, "type": "function", "function": {"name": name, "arguments": input.to_string()}
            })),
            Part::Image { .. } | Part::ToolResult { .. } => {
                return Err(LlmError::InvalidRequest(format!(
                    "message {index}: an assistant message may hold only text and tool uses"
                )));
            }
        }
    }
    let mut msg = Map::new();
    msg.insert("role".into(), json!("assistant"));
    // `null` content is only valid next to tool calls; an empty turn is sent as empty text.
    let content = match (texts.is_empty(), calls.is_empty()) {
        (true, false) => Value::Null,
        _ => json!(texts.join("\n")),
    };
    msg.insert("content".into(), content);
    if !calls.is_empty() {
        msg.insert("tool_calls".into(), Value::Array(calls));
    }
    Ok(Value::Object(msg))
}

/// Parses a chat-completions answer. `requested_model` stands in when the server omits `model`.
pub(crate) fn parse_response(v: &Value, requested_model: &str) -> Result<ChatResponse, LlmError> {
    if let Some(err) = v.get("error").filter(|e| !e.is_null()) {
        let msg = err.get("message").and_then(Value::as_str).map_or_else(|| err.to_string(), str::to_owned);
        return Err(LlmError::Malformed(format!("the answer is an error object: {msg}")));
    }
    let choice = v.get("choices").and_then(Value::as_array).and_then(|c| c.first()).ok_or_else(|| {
        LlmError::Malformed(format!("no `choices[0]` in the answer: {}", excerpt(&v.to_string(), &[])))
    })?;
    let message = choice
        .get("message")
        .and_then(Value::as_object)
        .ok_or_else(|| LlmError::Malformed("`choices[0].message` is missing or not an object".into()))?;

    let mut content = Vec::new();
    match message.get("content") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            if !s.is_empty() {
                content.push(Part::Text(s.clone()));
            }
        }
        // Some compatible servers answer with an array of content parts.
        Some(Value::Array(parts)) => {
            for p in parts {
                if let Some(t) = p.get("text").and_then(Value::as_str) {
                    content.push(Part::Text(t.to_owned()));
                }
            }
        }
        Some(other) => {
            return Err(LlmError::Malformed(format!("`choices[0].message.content` is neither text nor null: {other}")));
        }
    }
    if content.is_empty()
        && let Some(refusal) = message.get("refusal").and_then(Value::as_str)
    {
        content.push(Part::Text(refusal.to_owned()));
    }

    let mut saw_tool_call = false;
    if let Some(calls) = message.get("tool_calls").filter(|c| !c.is_null()) {
        let calls = calls
            .as_array()
            .ok_or_else(|| LlmError::Malformed("`choices[0].message.tool_calls` is not an array".into()))?;
        for (i, call) in calls.iter().enumerate() {
            content.push(parse_tool_call(i, call)?);
            saw_tool_call = true;
        }
    }

    let finish = choice.get("finish_reason").and_then(Value::as_str);
    let stop_reason = match finish {
        // Some servers (e.g. Ollama) report `stop` even when the message calls tools.
        _ if saw_tool_call => StopReason::ToolUse,
        None | Some("stop") => StopReason::EndTurn,
        Some("length") => StopReason::MaxTokens,
        Some("tool_calls" | "function_call") => StopReason::ToolUse,
        Some(other) => StopReason::Other(other.to_owned()),
    };
    let usage = v.get("usage");
    let tokens = |key: &str| usage.and_then(|u| u.get(key)).and_then(Value::as_u64).unwrap_or(0);
    Ok(ChatResponse {
        model: v.get("model").and_then(Value::as_str).unwrap_or(requested_model).to_owned(),
        content,
        stop_reason,
        usage: Usage { input_tokens: tokens("prompt_tokens"), output_tokens: tokens("completion_tokens") },
    })
}

fn parse_tool_call(index: usize, call: &Value) -> Result<Part, LlmError> {
    let function =
        call.get("function").ok_or_else(|| LlmError::Malformed(format!("tool call {index} has no `function`")))?;
    let name = function
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| LlmError::Malformed(format!("tool call {index} has no function name")))?;
    let input = match function.get("arguments") {
        None | Some(Value::Null) => json!({}),
        Some(Value::String(s)) if s.trim().is_empty() => json!({}),
        Some(Value::String(s)) => serde_json::from_str(s).map_err(|e| {
            LlmError::Malformed(format!(
                "the arguments of tool call {index} ({name:?}) are not valid JSON ({e}): {}",
                excerpt(s, &[])
            ))
        })?,
        // Tolerated: a few servers send the arguments as an object rather than a string.
        Some(obj @ Value::Object(_)) => obj.clone(),
        Some(other) => {
            return Err(LlmError::Malformed(format!(
                "the arguments of tool call {index} ({name:?}) are neither a JSON string nor an object: {other}"
            )));
        }
    };
    let id = call
        .get("id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .map_or_else(|| format!("call_{index}"), str::to_owned);
    Ok(Part::ToolUse { id, name: name.to_owned(), input })
}

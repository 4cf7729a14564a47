//! Unit tests of the LLM layer: request mapping and response parsing for both wire formats,
//! tool-name rules, Retry-After parsing, redaction, and provider construction from the config.
//! The same code is exercised over real HTTP against `mcpd-fake-llm` in tests/tests/e2e/llm.rs.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{Value, json};

use super::http::{INITIAL_BACKOFF, MAX_WAIT, backoff_delay, excerpt, parse_retry_after, redact, retry_after};
use super::*;
use mcpd_config::{LlmConfig, LlmKind, Secret};

fn tool(name: &str) -> ToolSpec {
    ToolSpec {
        name: name.to_owned(),
        description: format!("the {name} tool"),
        input_schema: json!({"type": "object", "properties": {"city": {"type": "string"}}}),
    }
}

/// A conversation with every kind of part: a system prompt, an image, a tool call with its
/// (error and success) results, and a follow-up question.
fn full_request() -> ChatRequest {
    let mut req = ChatRequest::new(
        vec![
            Message {
                role: Role::User,
                content: vec![
                    Part::Text("what is the weather?".into()),
                    Part::Image { mime: "image/png".into(), data_base64: "iVBORw0K".into() },
                ],
            },
            Message {
                role: Role::Assistant,
                content: vec![
                    Part::Text("let me check".into()),
                    Part::ToolUse { id: "call_1".into(), name: "weather".into(), input: json!({"city": "Paris"}) },
                    Part::ToolUse { id: "call_2".into(), name: "weather".into(), input: json!({"city": "Oslo"}) },
                ],
            },
            Message {
                role: Role::User,
                content: vec![
                    Part::Text("and be brief".into()),
                    Part::ToolResult {
                        tool_use_id: "call_1".into(),
                        content: vec![Part::Text("sunny".into())],
                        is_error: false,
                    },
                    Part::ToolResult {
                        tool_use_id: "call_2".into(),
                        content: vec![Part::Text("no station".into())],
                        is_error: true,
                    },
                ],
            },
        ],
        256,
    );
    req.system = Some("you are terse".into());
    req.tools = vec![tool("weather")];
    req.temperature = Some(0.5);
    req.stop = vec!["END".into()];
    req
}

// ---------------------------------------------------------------- OpenAI request mapping

#[test]
fn openai_request_maps_system_turns_tool_calls_and_results() {
    let body = openai::request_body(&full_request(), "gpt-test", 256, false).unwrap();
    assert_eq!(body["model"], "gpt-test");
    assert_eq!(body["max_tokens"], 256);
    assert!(body.get("max_completion_tokens").is_none());
    assert_eq!(body["temperature"], 0.5);
    assert_eq!(body["stop"], json!(["END"]));
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(messages[0], json!({"role": "system", "content": "you are terse"}));
    assert_eq!(
        messages[1],
        json!({"role": "user", "content": [
            {"type": "text", "text": "what is the weather?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K"}}
        ]})
    );
    // Arguments travel as a JSON string.
    assert_eq!(
        messages[2],
        json!({"role": "assistant", "content": "let me check", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
            {"id": "call_2", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Oslo\"}"}}
        ]})
    );
    // Tool messages come right after the tool calls; the user's own text follows them.
    assert_eq!(messages[3], json!({"role": "tool", "tool_call_id": "call_1", "content": "sunny"}));
    assert_eq!(messages[4], json!({"role": "tool", "tool_call_id": "call_2", "content": "error: no station"}));
    assert_eq!(messages[5], json!({"role": "user", "content": "and be brief"}));
    assert_eq!(messages.len(), 6);
    assert_eq!(
        body["tools"],
        json!([{"type": "function", "function": {
            "name": "weather", "description": "the weather tool",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}
        }}])
    );
    assert_eq!(body["tool_choice"], "auto");
}

#[test]
fn openai_tool_choice_variants_and_no_choice_without_tools() {
    let mut req = full_request();
    for (choice, expected) in [
        (ToolChoice::Auto, json!("auto")),
        (ToolChoice::None, json!("none")),
        (ToolChoice::Required, json!("required")),
        (ToolChoice::Tool("weather".into()), json!({"type": "function", "function": {"name": "weather"}})),
    ] {
        req.tool_choice = choice;
        assert_eq!(openai::request_body(&req, "m", 1, false).unwrap()["tool_choice"], expected);
    }
    let mut plain = ChatRequest::new(vec![Message::user_text("hi")], 10);
    plain.tool_choice = ToolChoice::Required;
    let body = openai::request_body(&plain, "m", 10, false).unwrap();
    assert!(body.get("tools").is_none() && body.get("tool_choice").is_none(), "{body}");
    assert!(body.get("temperature").is_none() && body.get("stop").is_none(), "{body}");
    assert_eq!(body["messages"], json!([{"role": "user", "content": "hi"}]));
}

#[test]
fn openai_cap_field_and_edge_messages() {
    let req = ChatRequest::new(vec![Message::user_text("hi"), Message { role: Role::Assistant, content: vec![] }], 9);
    let body = openai::request_body(&req, "m", 9, true).unwrap();
    assert_eq!(body["max_completion_tokens"], 9);
    assert!(body.get("max_tokens").is_none());
    // An empty assistant turn is empty text, not `null` (which is only valid next to tool calls).
    assert_eq!(body["messages"][1], json!({"role": "assistant", "content": ""}));

    // Images returned by a tool go in a user message after the tool message.
    let req = ChatRequest::new(
        vec![Message {
            role: Role::User,
            content: vec![Part::ToolResult {
                tool_use_id: "c".into(),
                content: vec![Part::Image { mime: "image/jpeg".into(), data_base64: "AAAA".into() }],
                is_error: false,
            }],
        }],
        9,
    );
    let body = openai::request_body(&req, "m", 9, false).unwrap();
    assert_eq!(body["messages"][0]["role"], "tool");
    assert!(body["messages"][0]["content"].as_str().unwrap().contains("1 image(s)"));
    assert_eq!(body["messages"][1]["content"][0]["image_url"]["url"], "data:image/jpeg;base64,AAAA");
}

#[test]
fn parts_in_the_wrong_role_are_invalid_requests() {
    let tool_use = Part::ToolUse { id: "a".into(), name: "t".into(), input: json!({}) };
    let result = Part::ToolResult { tool_use_id: "a".into(), content: vec![], is_error: false };
    let cases = [
        Message { role: Role::User, content: vec![tool_use.clone()] },
        Message { role: Role::Assistant, content: vec![result.clone()] },
        Message {
            role: Role::Assistant,
            content: vec![Part::Image { mime: "image/png".into(), data_base64: "x".into() }],
        },
        Message {
            role: Role::User,
            content: vec![Part::ToolResult {
                tool_use_id: "a".into(),
                content: vec![tool_use.clone()],
                is_error: false,
            }],
        },
    ];
    for msg in cases {
        let req = ChatRequest::new(vec![msg.clone()], 5);
        assert!(matches!(openai::request_body(&req, "m", 5, false), Err(LlmError::InvalidRequest(_))), "{msg:?}");
        assert!(matches!(anthropic::request_body(&req, "m", 5), Err(LlmError::InvalidRequest(_))), "{msg:?}");
    }
}

// ---------------------------------------------------------------- Anthropic request mapping

#[test]
fn anthropic_request_maps_system_turns_tool_uses_and_results() {
    let body = anthropic::request_body(&full_request(), "claude-test", 256).unwrap();
    assert_eq!(body["model"], "claude-test");
    assert_eq!(body["max_tokens"], 256);
    assert_eq!(body["system"], "you are terse");
    assert_eq!(body["temperature"], 0.5);
    assert_eq!(body["stop_sequences"], json!(["END"]));
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3);
    assert_eq!(
        messages[0],
        json!({"role": "user", "content": [
            {"type": "text", "text": "what is the weather?"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0K"}}
        ]})
    );
    assert_eq!(
        messages[1],
        json!({"role": "assistant", "content": [
            {"type": "text", "text": "let me check"},
            {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "call_2", "name": "weather", "input": {"city": "Oslo"}}
        ]})
    );
    // Tool results first (the API requires it), with is_error only when set; then the text.
    assert_eq!(
        messages[2],
        json!({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": [{"type": "text", "text": "sunny"}]},
            {"type": "tool_result", "tool_use_id": "call_2", "content": [{"type": "text", "text": "no station"}], "is_error": true},
            {"type": "text", "text": "and be brief"}
        ]})
    );
    assert_eq!(
        body["tools"],
        json!([{"name": "weather", "description": "the weather tool",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}])
    );
    assert_eq!(body["tool_choice"], json!({"type": "auto"}));
}

#[test]
fn anthropic_tool_choice_variants_and_no_choice_without_tools() {
    let mut req = full_request();
    for (choice, expected) in [
        (ToolChoice::Auto, json!({"type": "auto"})),
        (ToolChoice::None, json!({"type": "none"})),
        (ToolChoice::Required, json!({"type": "any"})),
        (ToolChoice::Tool("weather".into()), json!({"type": "tool", "name": "weather"})),
    ] {
        req.tool_choice = choice;
        assert_eq!(anthropic::request_body(&req, "m", 1).unwrap()["tool_choice"], expected);
    }
    let mut plain = ChatRequest::new(vec![Message::user_text("hi")], 10);
    plain.tool_choice = ToolChoice::Tool("x".into());
    let body = anthropic::request_body(&plain, "m", 10).unwrap();
    for key in ["tools", "tool_choice", "system", "temperature", "stop_sequences"] {
        assert!(body.get(key).is_none(), "{key} in {body}");
    }
    assert_eq!(body["messages"], json!([{"role": "user", "content": [{"type": "text", "text": "hi"}]}]));
}

#[test]
fn anthropic_edge_content() {
    // An empty tool result omits `content`; empty text blocks are dropped.
    let req = ChatRequest::new(
        vec![Message {
            role: Role::User,
            content: vec![
                Part::Text(String::new()),
                Part::ToolResult { tool_use_id: "t".into(), content: vec![Part::Text(String::new())], is_error: false },
            ],
        }],
        5,
    );
    let body = anthropic::request_body(&req, "m", 5).unwrap();
    assert_eq!(body["messages"][0]["content"], json!([{"type": "tool_result", "tool_use_id": "t"}]));
    // A message left empty is refused before it reaches the API.
    let req = ChatRequest::new(vec![Message::user_text("")], 5);
    assert!(
        matches!(anthropic::request_body(&req, "m", 5), Err(LlmError::InvalidRequest(m)) if m.contains("message 0"))
    );
    // A tool use's input must be an object (null means no arguments).
    let with_input = |input: Value| {
        ChatRequest::new(
            vec![Message {
                role: Role::Assistant,
                content: vec![Part::ToolUse { id: "i".into(), name: "t".into(), input }],
            }],
            5,
        )
    };
    let body = anthropic::request_body(&with_input(Value::Null), "m", 5).unwrap();
    assert_eq!(body["messages"][0]["content"][0]["input"], json!({}));
    assert!(matches!(anthropic::request_body(&with_input(json!([1])), "m", 5), Err(LlmError::InvalidRequest(_))));
}

// ---------------------------------------------------------------- response parsing

#[test]
fn openai_parses_text_tool_calls_stop_reasons_and_usage() {
    let text = json!({
        "model": "gpt-x", "choices": [{"message": {"role": "assistant", "content": "hello"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 3}
    });
    let r = openai::parse_response(&text, "asked").unwrap();
    assert_eq!((r.model.as_str(), r.text(), r.stop_reason.clone()), ("gpt-x", "hello".to_owned(), StopReason::EndTurn));
    assert_eq!(r.usage, Usage { input_tokens: 12, output_tokens: 3 });

    let calls = json!({
        "choices": [{"message": {"role": "assistant", "content": null, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
            {"id": "c2", "type": "function", "function": {"name": "weather", "arguments": {"city": "Oslo"}}},
            {"type": "function", "function": {"name": "noargs", "arguments": ""}}
        ]}, "finish_reason": "tool_calls"}]
    });
    let r = openai::parse_response(&calls, "asked").unwrap();
    assert_eq!(r.model, "asked");
    assert_eq!(r.stop_reason, StopReason::ToolUse);
    assert_eq!(r.usage, Usage::default());
    let uses: Vec<_> = r.tool_uses().map(|(id, name, input)| (id.to_owned(), name.to_owned(), input.clone())).collect();
    assert_eq!(
        uses,
        [
            ("c1".to_owned(), "weather".to_owned(), json!({"city": "Paris"})),
            ("c2".to_owned(), "weather".to_owned(), json!({"city": "Oslo"})),
            ("call_2".to_owned(), "noargs".to_owned(), json!({})),
        ]
    );

    for (finish, expected) in [
        ("length", StopReason::MaxTokens),
        ("content_filter", StopReason::Other("content_filter".into())),
        ("stop", StopReason::EndTurn),
    ] {
        let v = json!({"choices": [{"message": {"content": "x"}, "finish_reason": finish}]});
        assert_eq!(openai::parse_response(&v, "m").unwrap().stop_reason, expected);
    }
    // Some servers say "stop" while calling tools: the calls decide.
    let v = json!({"choices": [{"message": {"tool_calls": [{"id": "a", "function": {"name": "t", "arguments": "{}"}}]}, "finish_reason": "stop"}]});
    assert_eq!(openai::parse_response(&v, "m").unwrap().stop_reason, StopReason::ToolUse);
}

#[test]
fn openai_malformed_answers() {
    for bad in [
        json!({}),
        json!({"choices": []}),
        json!({"choices": [{"finish_reason": "stop"}]}),
        json!({"choices": [{"message": {"content": 5}}]}),
        json!({"choices": [{"message": {"tool_calls": {"a": 1}}}]}),
        json!({"choices": [{"message": {"tool_calls": [{"function": {"arguments": "{}"}}]}}]}),
        json!({"choices": [{"message": {"tool_calls": [{"function": {"name": "t", "arguments": "{not json"}}]}}]}),
        json!({"choices": [{"message": {"tool_calls": [{"function": {"name": "t", "arguments": 7}}]}}]}),
        json!({"error": {"message": "overloaded"}}),
    ] {
        assert!(matches!(openai::parse_response(&bad, "m"), Err(LlmError::Malformed(_))), "{bad}");
    }
}

#[test]
fn anthropic_parses_text_tool_uses_stop_reasons_and_usage() {
    let v = json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
        "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "s"},
            {"type": "text", "text": "checking"},
            {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "toolu_2", "name": "weather", "input": "{\"city\":\"Oslo\"}"}
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 20, "output_tokens": 7, "cache_read_input_tokens": 5, "cache_creation_input_tokens": 1}
    });
    let r = anthropic::parse_response(&v, "asked").unwrap();
    assert_eq!(r.model, "claude-x");
    assert_eq!(r.text(), "checking");
    assert_eq!(r.stop_reason, StopReason::ToolUse);
    assert_eq!(r.usage, Usage { input_tokens: 26, output_tokens: 7 });
    let inputs: Vec<_> = r.tool_uses().map(|(id, _, input)| (id.to_owned(), input.clone())).collect();
    assert_eq!(
        inputs,
        [("toolu_1".to_owned(), json!({"city": "Paris"})), ("toolu_2".to_owned(), json!({"city": "Oslo"}))]
    );

    for (reason, expected) in [
        ("end_turn", StopReason::EndTurn),
        ("max_tokens", StopReason::MaxTokens),
        ("stop_sequence", StopReason::StopSequence),
        ("refusal", StopReason::Other("refusal".into())),
    ] {
        let v = json!({"content": [{"type": "text", "text": "x"}], "stop_reason": reason});
        assert_eq!(anthropic::parse_response(&v, "m").unwrap().stop_reason, expected);
    }
    let v = json!({"content": [], "stop_reason": null});
    let r = anthropic::parse_response(&v, "m").unwrap();
    assert_eq!((r.model.as_str(), r.stop_reason, r.content.len()), ("m", StopReason::EndTurn, 0));
}

#[test]
fn anthropic_malformed_answers() {
    for bad in [
        json!({}),
        json!({"content": "text"}),
        json!({"content": [{"text": "no type"}]}),
        json!({"content": [{"type": "text"}]}),
        json!({"content": [{"type": "tool_use", "id": "a", "input": {}}]}),
        json!({"content": [{"type": "tool_use", "name": "t", "input": {}}]}),
        json!({"content": [{"type": "tool_use", "id": "a", "name": "t", "input": "{nope"}]}),
        json!({"content": [{"type": "tool_use", "id": "a", "name": "t", "input": [1]}]}),
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    ] {
        assert!(matches!(anthropic::parse_response(&bad, "m"), Err(LlmError::Malformed(_))), "{bad}");
    }
}

// ---------------------------------------------------------------- tool names

#[test]
fn tool_names_are_checked_not_aliased() {
    assert!(valid_tool_name("read_file-2"));
    assert!(valid_tool_name(&"a".repeat(64)));
    for bad in ["", "fs.read_file", "has space", "ümlaut", &"a".repeat(65)] {
        assert!(!valid_tool_name(bad), "{bad:?}");
    }
    let mut req = ChatRequest::new(vec![Message::user_text("hi")], 5);
    req.tools = vec![tool("fs.read")];
    assert!(matches!(validate_tool_names(&req), Err(LlmError::InvalidRequest(m)) if m.contains("fs.read")));

    req.tools = vec![tool("read")];
    req.messages.push(Message {
        role: Role::Assistant,
        content: vec![Part::ToolUse { id: "1".into(), name: "a/b".into(), input: json!({}) }],
    });
    assert!(matches!(validate_tool_names(&req), Err(LlmError::InvalidRequest(m)) if m.contains("message 1")));

    req.messages.pop();
    req.tool_choice = ToolChoice::Tool("write".into());
    assert!(matches!(validate_tool_names(&req), Err(LlmError::InvalidRequest(m)) if m.contains("not among")));
    req.tool_choice = ToolChoice::Tool("read".into());
    assert!(validate_tool_names(&req).is_ok());
}

// ---------------------------------------------------------------- retries and redaction

#[test]
fn retry_after_forms() {
    let now = UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
    assert_eq!(parse_retry_after("1", now), Some(Duration::from_secs(1)));
    assert_eq!(parse_retry_after(" 2.5 ", now), Some(Duration::from_millis(2500)));
    assert_eq!(parse_retry_after("0", now), Some(Duration::ZERO));
    assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now), Some(Duration::from_secs(10)));
    // A date in the past means "now".
    assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:00 GMT", now), Some(Duration::ZERO));
    assert_eq!(parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT", UNIX_EPOCH), Some(Duration::ZERO));
    for bad in ["-1", "soon", "NaN", "inf", "Sun, 06 Nov 1994 08:49:37 UTC", "Sun, 32 Nov 1994 08:49:37 GMT", ""] {
        assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
    }
    // Absurd waits are clamped rather than overflowing.
    assert_eq!(parse_retry_after("1e300", now), Some(Duration::from_secs(86_400)));

    let mut headers = HeaderMap::new();
    assert_eq!(retry_after(&headers, SystemTime::now()), None);
    headers.insert("retry-after", HeaderValue::from_static("3"));
    assert_eq!(retry_after(&headers, SystemTime::now()), Some(Duration::from_secs(3)));
    // OpenAI's millisecond header is more precise and wins.
    headers.insert("retry-after-ms", HeaderValue::from_static("250"));
    assert_eq!(retry_after(&headers, SystemTime::now()), Some(Duration::from_millis(250)));
}

#[test]
fn backoff_doubles_and_caps() {
    assert_eq!(backoff_delay(0), INITIAL_BACKOFF);
    assert_eq!(backoff_delay(1), INITIAL_BACKOFF * 2);
    assert_eq!(backoff_delay(3), INITIAL_BACKOFF * 8);
    assert_eq!(backoff_delay(40), MAX_WAIT);
}

#[test]
fn secrets_are_redacted_before_truncation() {
    let secrets = vec!["sk-secret-123".to_owned(), "org-456".to_owned()];
    assert_eq!(redact("key sk-secret-123 org-456 sk-secret-123", &secrets), "key [redacted] [redacted] [redacted]");
    let long = format!("{}sk-secret-123", "x".repeat(495));
    let cut = excerpt(&long, &secrets);
    assert!(!cut.contains("sk-secret"), "{cut}");
    assert!(cut.ends_with('…'));
}

// ---------------------------------------------------------------- provider construction

fn config(kind: LlmKind, base_url: &str) -> LlmConfig {
    let mut c = LlmConfig::with_defaults("p".into(), kind, "default-model".into());
    c.base_url = base_url.into();
    c.api_key = Some(Secret::new("sk-test-key"));
    c
}

#[test]
fn provider_urls_follow_each_vendor_convention() {
    let url = |kind, base: &str| Provider::new(&config(kind, base)).unwrap().inner.endpoint.url().to_owned();
    assert_eq!(url(LlmKind::OpenAi, "https://api.openai.com/v1"), "https://api.openai.com/v1/chat/completions");
    assert_eq!(url(LlmKind::OpenAi, "http://localhost:11434/v1/"), "http://localhost:11434/v1/chat/completions");
    assert_eq!(url(LlmKind::Anthropic, "https://api.anthropic.com"), "https://api.anthropic.com/v1/messages");
    assert_eq!(url(LlmKind::Anthropic, "https://api.anthropic.com/v1"), "https://api.anthropic.com/v1/messages");
    assert_eq!(url(LlmKind::Anthropic, "http://gw.local/anthropic/"), "http://gw.local/anthropic/v1/messages");

    let p = Provider::new(&config(LlmKind::OpenAi, "https://api.openai.com/v1")).unwrap();
    assert!(p.inner.openai_completion_tokens);
    assert_eq!((p.name(), p.default_model(), p.kind(), p.max_tokens()), ("p", "default-model", LlmKind::OpenAi, 4096));
    let p2 = Provider::new(&config(LlmKind::OpenAi, "http://127.0.0.1:8080/v1")).unwrap();
    assert!(!p2.inner.openai_completion_tokens);
    // Debug output names no credential.
    assert!(!format!("{p:?}").contains("sk-test-key"));
}

#[test]
fn provider_config_errors() {
    let mut c = config(LlmKind::OpenAi, "http://x/v1");
    c.api_key = Some(Secret::new("bad\nkey"));
    assert!(matches!(Provider::new(&c), Err(LlmError::Config(m)) if !m.contains("bad")));
    let mut c = config(LlmKind::Anthropic, "http://x");
    c.headers.insert("bad header".into(), Secret::new("v"));
    assert!(matches!(Provider::new(&c), Err(LlmError::Config(_))));
}

#[tokio::test]
async fn invalid_tool_names_fail_before_any_request() {
    // Port 9 (discard) on loopback: if a request were sent, this would be a Transport error instead.
    let p = Provider::new(&config(LlmKind::Anthropic, "http://127.0.0.1:9")).unwrap();
    let mut req = ChatRequest::new(vec![Message::user_text("hi")], 5);
    req.tools = vec![tool("srv.tool")];
    assert!(matches!(p.chat(&req).await, Err(LlmError::InvalidRequest(_))));
}

#[test]
fn errors_read_well() {
    let e = LlmError::Http { status: 401, body_excerpt: "bad key".into() };
    assert_eq!(e.to_string(), "the LLM provider answered HTTP 401 (check the API key): bad key");
    let e = LlmError::RateLimited { retry_after: Some(Duration::from_millis(1500)) };
    assert!(e.to_string().contains("retry after 1.5s"), "{e}");
    assert!(e.is_transient() && LlmError::Timeout.is_transient());
    assert!(!LlmError::Malformed("x".into()).is_transient());
    assert!(LlmError::Http { status: 503, body_excerpt: String::new() }.is_transient());
}

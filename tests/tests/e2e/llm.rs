//! The LLM providers over real HTTP against `mcpd-fake-llm`, in both wire formats: answers, tool
//! calls, retries honouring Retry-After, persistent failures, malformed bodies, timeouts, and the
//! API key travelling in the right header without ever appearing in an error.
use std::path::Path;
use std::time::{Duration, Instant};

use mcpd::config::{LlmConfig, LlmKind};
use mcpd::llm::{ChatRequest, LlmError, Message, Part, Provider, Role, StopReason, ToolChoice, ToolSpec};
use mcpd_tests::*;
use serde_json::{Value, json};

const KEY: &str = "sk-fake-e2e-0123456789abcdef";
const OTHER_KEY: &str = "sk-other-e2e-fedcba9876543210";
const KINDS: [LlmKind; 2] = [LlmKind::OpenAi, LlmKind::Anthropic];

/// The `LlmConfig` of `[llm.fake]` pointing at `fake`, loaded through the real config loader with
/// `${env:FAKE_LLM_KEY}` resolved to `key`.
fn config(fake: &FakeLlm, kind: LlmKind, key: &str, extra: &str) -> LlmConfig {
    let base_url = match kind {
        LlmKind::OpenAi => fake.openai_base_url(),
        LlmKind::Anthropic => fake.anthropic_base_url(),
    };
    let toml = format!(
        "[llm.fake]\nkind = {}\nbase_url = {}\napi_key = \"${{env:FAKE_LLM_KEY}}\"\nmodel = \"fake-model\"\n{extra}\n",
        q(kind.as_str()),
        q(base_url)
    );
    let key = key.to_owned();
    let env = move |name: &str| (name == "FAKE_LLM_KEY").then(|| key.clone());
    let cfg = match mcpd::config::load_str(&toml, Path::new("llm-e2e.toml"), &env) {
        Ok(cfg) => cfg,
        Err(e) => panic!("config:\n{e}\n{toml}"),
    };
    cfg.llm["fake"].clone()
}

fn provider(fake: &FakeLlm, kind: LlmKind, extra: &str) -> Provider {
    Provider::new(&config(fake, kind, KEY, extra)).expect("provider")
}

fn weather_tool() -> ToolSpec {
    ToolSpec {
        name: "get_weather".into(),
        description: "Weather for a city".into(),
        input_schema: json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
    }
}

/// Every error text must be free of the key, whatever the provider echoed.
fn assert_no_key(e: &LlmError) {
    let text = format!("{e} {e:?}");
    assert!(!text.contains(KEY) && !text.contains(OTHER_KEY), "key leaked: {text}");
}

/// The chat requests the fake saw at its endpoint for `kind`.
fn chat_requests(fake: &FakeLlm, kind: LlmKind) -> Vec<Value> {
    let path = match kind {
        LlmKind::OpenAi => "/v1/chat/completions",
        LlmKind::Anthropic => "/v1/messages",
    };
    fake.requests().into_iter().filter(|r| r["path"] == path).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_answer_with_usage() {
    for kind in KINDS {
        let fake = FakeLlm::start(json!([{"text": "hello from the fake"}]));
        let p = provider(&fake, kind, "");
        let mut req = ChatRequest::new(vec![Message::user_text("say hello to me")], 100);
        req.system = Some("be kind".into());
        let r = p.chat(&req).await.expect("chat");
        assert_eq!(r.text(), "hello from the fake", "{kind:?}");
        assert_eq!(r.stop_reason, StopReason::EndTurn, "{kind:?}");
        assert_eq!(r.model, "fake-model");
        // Words: "say hello to me" + "be kind" in, four words out.
        assert_eq!((r.usage.input_tokens, r.usage.output_tokens), (6, 4), "{kind:?}");
        let sent = chat_requests(&fake, kind);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0]["body"]["model"], "fake-model");
        assert_eq!(sent[0]["body"]["max_tokens"], 100);
        assert!(sent[0]["body"].get("tools").is_none() && sent[0]["body"].get("tool_choice").is_none());
        match kind {
            LlmKind::OpenAi => assert_eq!(sent[0]["body"]["messages"][0]["role"], "system"),
            LlmKind::Anthropic => {
                assert_eq!(sent[0]["body"]["system"], "be kind");
                assert_eq!(sent[0]["anthropic_version"], "2023-06-01");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_call_round_trip() {
    for kind in KINDS {
        let fake = FakeLlm::start(json!([
            {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}], "text": "let me look"},
            {"echo_last_user": true}
        ]));
        let p = provider(&fake, kind, "");
        let mut req = ChatRequest::new(vec![Message::user_text("weather in Paris?")], 200);
        req.tools = vec![weather_tool()];
        req.tool_choice = ToolChoice::Required;
        let first = p.chat(&req).await.expect("first turn");
        assert_eq!(first.stop_reason, StopReason::ToolUse, "{kind:?}");
        assert_eq!(first.text(), "let me look");
        let uses: Vec<_> =
            first.tool_uses().map(|(id, name, input)| (id.to_owned(), name.to_owned(), input.clone())).collect();
        assert_eq!(uses.len(), 1, "{kind:?}");
        let (id, name, input) = uses[0].clone();
        assert_eq!((name.as_str(), input), ("get_weather", json!({"city": "Paris"})));
        assert!(!id.is_empty());

        // Second turn: the assistant's tool use and its result go back; the fake echoes the result.
        req.messages.push(Message { role: Role::Assistant, content: first.content.clone() });
        req.messages.push(Message {
            role: Role::User,
            content: vec![Part::ToolResult {
                tool_use_id: id.clone(),
                content: vec![Part::Text("sunny, 21C".into())],
                is_error: false,
            }],
        });
        req.tool_choice = ToolChoice::None;
        let second = p.chat(&req).await.expect("second turn");
        assert_eq!(second.stop_reason, StopReason::EndTurn);
        assert_eq!(
            second.text(),
            match kind {
                // OpenAI tool results are `tool` messages, so the last *user* message is the question.
                LlmKind::OpenAi => "weather in Paris?",
                LlmKind::Anthropic => "sunny, 21C",
            }
        );

        let sent = chat_requests(&fake, kind);
        assert_eq!(sent.len(), 2);
        let body = &sent[1]["body"];
        match kind {
            LlmKind::OpenAi => {
                assert_eq!(sent[0]["body"]["tool_choice"], "required");
                assert_eq!(body["tool_choice"], "none");
                let msgs = body["messages"].as_array().unwrap();
                assert_eq!(msgs[1]["tool_calls"][0]["id"], id.as_str());
                assert_eq!(msgs[1]["tool_calls"][0]["function"]["arguments"], "{\"city\":\"Paris\"}");
                assert_eq!(msgs[2], json!({"role": "tool", "tool_call_id": id, "content": "sunny, 21C"}));
                assert_eq!(body["tools"][0]["function"]["name"], "get_weather");
            }
            LlmKind::Anthropic => {
                assert_eq!(sent[0]["body"]["tool_choice"], json!({"type": "any"}));
                assert_eq!(body["tool_choice"], json!({"type": "none"}));
                let msgs = body["messages"].as_array().unwrap();
                assert_eq!(
                    msgs[1]["content"][1],
                    json!({"type": "tool_use", "id": id, "name": "get_weather", "input": {"city": "Paris"}})
                );
                assert_eq!(
                    msgs[2]["content"][0],
                    json!({"type": "tool_result", "tool_use_id": id, "content": [{"type": "text", "text": "sunny, 21C"}]})
                );
                assert_eq!(body["tools"][0]["input_schema"]["required"], json!(["city"]));
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_is_retried_after_the_requested_wait() {
    for kind in KINDS {
        let fake = FakeLlm::start(json!([{"status": 429, "retry_after": "1"}, {"text": "finally"}]));
        let p = provider(&fake, kind, "max_retries = 2");
        let started = Instant::now();
        let r = p.chat(&ChatRequest::new(vec![Message::user_text("hi")], 10)).await.expect("retried");
        let waited = started.elapsed();
        assert_eq!(r.text(), "finally");
        assert!(waited >= Duration::from_millis(950), "{kind:?}: Retry-After 1 not honoured, took {waited:?}");
        assert!(waited < Duration::from_secs(10), "{waited:?}");
        assert_eq!(chat_requests(&fake, kind).len(), 2, "{kind:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_rate_limit_and_server_errors_give_up_after_max_retries() {
    for kind in KINDS {
        // 500 without Retry-After: backoff 0.5 s, then 1 s; three attempts in all.
        let fake = FakeLlm::start(json!([{"status": 500}]));
        let p = provider(&fake, kind, "max_retries = 2");
        let e = p.chat(&ChatRequest::new(vec![Message::user_text("hi")], 10)).await.expect_err("500s");
        assert!(
            matches!(&e, LlmError::Http { status: 500, body_excerpt } if body_excerpt.contains("scripted HTTP 500")),
            "{e:?}"
        );
        assert_eq!(chat_requests(&fake, kind).len(), 3, "{kind:?}");
        assert_no_key(&e);

        // 429 every time: RateLimited with the provider's hint, after 1 + max_retries attempts.
        fake.set_script(json!([{"status": 429, "retry_after": "0"}]));
        let p = provider(&fake, kind, "max_retries = 1");
        let e = p.chat(&ChatRequest::new(vec![Message::user_text("hi")], 10)).await.expect_err("429s");
        assert!(matches!(e, LlmError::RateLimited { retry_after: Some(d) } if d.is_zero()), "{e:?}");
        assert_eq!(chat_requests(&fake, kind).len(), 5, "{kind:?}");

        // 400 is not retried.
        fake.set_script(json!([{"status": 400}]));
        let e = p.chat(&ChatRequest::new(vec![Message::user_text("hi")], 10)).await.expect_err("400");
        assert!(matches!(e, LlmError::Http { status: 400, .. }), "{e:?}");
        assert_eq!(chat_requests(&fake, kind).len(), 6, "{kind:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_answers_and_timeouts() {
    for kind in KINDS {
        let fake = FakeLlm::start(json!([{"raw": "not json at all"}]));
        let p = provider(&fake, kind, "timeout = \"1s\"");
        let req = ChatRequest::new(vec![Message::user_text("hi")], 10);
        let e = p.chat(&req).await.expect_err("malformed");
        assert!(matches!(&e, LlmError::Malformed(m) if m.contains("not json at all")), "{e:?}");

        // JSON, but not this API's shape.
        fake.set_script(json!([{"body": {"unexpected": true}}]));
        let e = p.chat(&req).await.expect_err("wrong shape");
        assert!(matches!(e, LlmError::Malformed(_)), "{e:?}");

        // Slower than the provider timeout.
        fake.set_script(json!([{"text": "late", "delay_ms": 3000}]));
        let started = Instant::now();
        let e = p.chat(&req).await.expect_err("timeout");
        assert!(matches!(e, LlmError::Timeout), "{e:?}");
        assert!(started.elapsed() < Duration::from_millis(2500), "{:?}", started.elapsed());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_goes_in_the_right_header_and_never_into_errors() {
    for kind in KINDS {
        let fake = FakeLlm::start_with(json!([{"text": "authorised"}]), &["--api-key", KEY]);
        let p = provider(&fake, kind, "");
        let r = p.chat(&ChatRequest::new(vec![Message::user_text("hi")], 10)).await.expect("right key accepted");
        assert_eq!(r.text(), "authorised");
        let sent = chat_requests(&fake, kind);
        let (auth, x_key) = (sent[0]["authorization_present"].as_bool(), sent[0]["x_api_key_present"].as_bool());
        match kind {
            LlmKind::OpenAi => assert_eq!((auth, x_key), (Some(true), Some(false))),
            LlmKind::Anthropic => assert_eq!((auth, x_key), (Some(false), Some(true))),
        }
        // The request body never carries the key.
        assert!(!sent[0]["body"].to_string().contains(KEY));

        // A wrong key: the fake echoes it in its 401 (as some providers do); the error must not.
        let wrong = Provider::new(&config(&fake, kind, OTHER_KEY, "")).expect("provider");
        let e = wrong.chat(&ChatRequest::new(vec![Message::user_text("hi")], 10)).await.expect_err("401");
        assert!(
            matches!(&e, LlmError::Http { status: 401, body_excerpt } if body_excerpt.contains("[redacted]")),
            "{e:?}"
        );
        assert!(e.to_string().contains("check the API key"), "{e}");
        assert_no_key(&e);
        // And the config's Debug output hides the key too.
        assert!(!format!("{:?}", config(&fake, kind, KEY, "")).contains(KEY));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_provider_is_a_transport_error() {
    let port = free_port();
    let toml = format!(
        "[llm.gone]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:{port}/v1\"\napi_key = \"${{env:K}}\"\nmodel = \"m\"\n"
    );
    let cfg = mcpd::config::load_str(&toml, Path::new("gone.toml"), &|_| Some(KEY.to_owned())).expect("config");
    let p = Provider::new(&cfg.llm["gone"]).expect("provider");
    let e = p.chat(&ChatRequest::new(vec![Message::user_text("hi")], 10)).await.expect_err("nothing listens");
    assert!(matches!(e, LlmError::Transport(_)), "{e:?}");
    assert_no_key(&e);
}

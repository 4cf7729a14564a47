//! `mcpd-fake-llm`: a scripted local LLM server speaking the real OpenAI chat-completions and
//! Anthropic Messages wire formats, so the providers, sampling and agents can be tested over real
//! HTTP without any network model. Run it with `--help` for the command line and script format.
//!
//! Architecture: one current-thread tokio runtime, hyper 1 HTTP/1.1 connections (one task each),
//! and a mutex-guarded state (script, step counter, request log) never held across an await.
//! Everything a client sends is bounded: bodies over 8 MiB get 413, the log keeps 1000 entries.

#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{Context, bail};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

/// Largest request body read; larger ones are refused with 413.
const MAX_BODY: usize = 8 * 1024 * 1024;
/// Request log entries kept (oldest dropped first).
const MAX_LOG: usize = 1000;

/// What `--help` adds after the options: the endpoints and the script format.
const AFTER_HELP: &str = r#"endpoints:
  POST /v1/chat/completions   OpenAI format: answers the next script step
  POST /v1/messages           Anthropic format: answers the next script step
  GET  /requests              JSON array of requests so far: {"path", "body" (JSON or raw
                              text), "authorization_present", "x_api_key_present",
                              "anthropic_version"}
  POST /script                replace the script (JSON array body); resets the step counter

script steps (one per chat request; when exhausted the LAST step repeats):
  {"text": "..."}                                  final answer (end_turn / stop)
  {"tool_calls": [{"name": "t", "arguments": {..}}], "text": "optional"}
                                                   tool calls (tool_use / tool_calls), ids generated
                                                   a string argument "$result:POINTER" is replaced by
                                                   what the JSON pointer POINTER finds in the last tool
                                                   result (parsed as JSON): a scripted agent that acts
                                                   on what its tools returned
  {"echo_last_user": true}                         answer with the text of the last user message
  {"status": 429, "retry_after": "1"}              an error status in the endpoint's error format
                                                   ("retry_after_ms": N sends retry-after-ms)
  {"status": N, "body": ...}                       any status with this body (a JSON string is sent raw)
  {"raw": "not json"}                              this raw body with status 200
  "delay_ms": N                                    combinable with any step: wait before answering
  "finish": "max_tokens"                           override the stop reason (end_turn, max_tokens,
                                                   stop_sequence, tool_use)
usage: input tokens = words in the request's messages (and system), output = words in the reply.
"#;

/// One scripted answer.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Step {
    text: Option<String>,
    tool_calls: Option<Vec<ToolCall>>,
    #[serde(default)]
    echo_last_user: bool,
    status: Option<u16>,
    /// A string or a number; sent verbatim as `Retry-After`.
    retry_after: Option<Value>,
    retry_after_ms: Option<u64>,
    body: Option<Value>,
    raw: Option<String>,
    delay_ms: Option<u64>,
    finish: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ToolCall {
    name: String,
    #[serde(default = "empty_object")]
    arguments: Value,
    id: Option<String>,
}

fn empty_object() -> Value {
    json!({})
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    OpenAi,
    Anthropic,
}

struct State {
    script: Vec<Step>,
    next: usize,
    /// Serial number for generated ids.
    served: u64,
    log: VecDeque<Value>,
}

struct Shared {
    state: Mutex<State>,
    api_key: Option<String>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-written in a way that
        // matters to a test server, so a poisoned lock is simply taken over.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn record(&self, entry: Value) {
        let mut st = self.lock();
        if st.log.len() >= MAX_LOG {
            st.log.pop_front();
        }
        st.log.push_back(entry);
    }
}

/// A scripted fake LLM server on 127.0.0.1 speaking the real wire formats. Prints
/// "fake-llm listening on http://127.0.0.1:PORT" to stderr once listening.
#[derive(clap::Parser)]
#[command(name = "mcpd-fake-llm", after_help = AFTER_HELP)]
struct Args {
    /// Port to bind (0: any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// JSON array of steps (default: [{"text": "ok"}]).
    #[arg(long)]
    script: Option<PathBuf>,
    /// Require this key (Authorization: Bearer KEY on /v1/chat/completions, x-api-key: KEY on
    /// /v1/messages); a wrong or missing key gets 401 with the presented key echoed in the
    /// error message, as some providers do.
    #[arg(long)]
    api_key: Option<String>,
}

fn parse_script(text: &[u8]) -> anyhow::Result<Vec<Step>> {
    let steps: Vec<Step> = serde_json::from_slice(text).context("the script must be a JSON array of steps")?;
    if steps.is_empty() {
        bail!("the script has no steps");
    }
    Ok(steps)
}

fn main() {
    let args = <Args as clap::Parser>::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mcpd-fake-llm: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(run(args)) {
        eprintln!("mcpd-fake-llm: {e:#}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let script = match &args.script {
        Some(path) => {
            let text = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            parse_script(&text).with_context(|| format!("bad script {}", path.display()))?
        }
        None => vec![Step { text: Some("ok".into()), ..Step::default() }],
    };
    let shared = Arc::new(Shared {
        state: Mutex::new(State { script, next: 0, served: 0, log: VecDeque::new() }),
        api_key: args.api_key,
    });
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await.context("bind")?;
    let port = listener.local_addr().context("local address")?.port();
    {
        // Test harnesses wait for this exact line to learn the port.
        let mut err = std::io::stderr().lock();
        writeln!(err, "fake-llm listening on http://127.0.0.1:{port}")?;
        err.flush()?;
    }
    loop {
        let (sock, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                // Running out of descriptors is transient; do not spin on it.
                eprintln!("mcpd-fake-llm: accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(shared.clone(), req));
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(sock), service);
            // Clients hanging up mid-request are normal in fault tests.
            let _ = conn.await;
        });
    }
}

/// What the log and the routing need from a request's head.
struct Head {
    method: Method,
    path: String,
    format: Option<Format>,
    authorization: Option<String>,
    x_api_key: Option<String>,
    anthropic_version: Option<String>,
}

impl Head {
    fn log_entry(&self, body: Value) -> Value {
        json!({
            "path": self.path,
            "body": body,
            "authorization_present": self.authorization.is_some(),
            "x_api_key_present": self.x_api_key.is_some(),
            "anthropic_version": self.anthropic_version,
        })
    }
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let head = Head {
        method: req.method().clone(),
        format: match path.as_str() {
            "/v1/chat/completions" => Some(Format::OpenAi),
            "/v1/messages" => Some(Format::Anthropic),
            _ => None,
        },
        path,
        authorization: header("authorization"),
        x_api_key: header("x-api-key"),
        anthropic_version: header("anthropic-version"),
    };
    // Announced oversize bodies are refused unread; `Limited` catches chunked ones.
    let announced = req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    let body = if announced.is_some_and(|n| n > MAX_BODY as u64) {
        None
    } else {
        match Limited::new(req.into_body(), MAX_BODY).collect().await {
            Ok(collected) => Some(collected.to_bytes()),
            Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => None,
            Err(e) => return Ok(plain(StatusCode::BAD_REQUEST, &format!("cannot read the request body: {e}"))),
        }
    };
    let Some(body) = body else {
        let message = "request body is larger than 8 MiB";
        return Ok(match head.format {
            Some(f) => {
                shared.record(head.log_entry(json!("(request body over 8 MiB refused)")));
                error_response(f, StatusCode::PAYLOAD_TOO_LARGE, message)
            }
            None => plain(StatusCode::PAYLOAD_TOO_LARGE, message),
        });
    };
    Ok(route(&shared, &head, &body).await)
}

async fn route(shared: &Shared, head: &Head, body: &[u8]) -> Response<Full<Bytes>> {
    match (&head.method, head.path.as_str(), head.format) {
        (&Method::GET, "/requests", _) => {
            let log: Vec<Value> = shared.lock().log.iter().cloned().collect();
            json_response(StatusCode::OK, &Value::Array(log))
        }
        (&Method::POST, "/script", _) => match parse_script(body) {
            Ok(steps) => {
                let n = steps.len();
                let mut st = shared.lock();
                st.script = steps;
                st.next = 0;
                json_response(StatusCode::OK, &json!({"steps": n}))
            }
            Err(e) => plain(StatusCode::BAD_REQUEST, &format!("{e:#}")),
        },
        (&Method::POST, _, Some(format)) => {
            let parsed: Result<Value, _> = serde_json::from_slice(body);
            shared.record(head.log_entry(match &parsed {
                Ok(v) => v.clone(),
                Err(_) => Value::String(String::from_utf8_lossy(body).into_owned()),
            }));
            let request = match parsed {
                Ok(v) if v.is_object() => v,
                _ => return error_response(format, StatusCode::BAD_REQUEST, "the request body is not a JSON object"),
            };
            if let Some(expected) = &shared.api_key {
                let presented = match format {
                    Format::OpenAi => head.authorization.as_deref().map(|a| a.strip_prefix("Bearer ").unwrap_or(a)),
                    Format::Anthropic => head.x_api_key.as_deref(),
                };
                if presented != Some(expected.as_str()) {
                    // Echoing the presented key mimics providers that do, so redaction gets tested.
                    let message = format!("Incorrect API key provided: {}", presented.unwrap_or("(none)"));
                    return error_response(format, StatusCode::UNAUTHORIZED, &message);
                }
            }
            chat(shared, format, &request).await
        }
        (_, "/requests" | "/script" | "/v1/chat/completions" | "/v1/messages", _) => {
            plain(StatusCode::METHOD_NOT_ALLOWED, "wrong method for this path")
        }
        _ => plain(
            StatusCode::NOT_FOUND,
            "unknown path: try POST /v1/chat/completions, POST /v1/messages, GET /requests or POST /script",
        ),
    }
}

/// Answers one chat request with the next script step.
async fn chat(shared: &Shared, format: Format, request: &Value) -> Response<Full<Bytes>> {
    let (step, serial) = {
        let mut st = shared.lock();
        let index = st.next.min(st.script.len().saturating_sub(1));
        st.next = st.next.saturating_add(1);
        st.served += 1;
        (st.script.get(index).cloned().unwrap_or_default(), st.served)
    };
    if let Some(ms) = step.delay_ms {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let mut resp = render(format, &step, request, serial);
    let headers = resp.headers_mut();
    if let Some(v) = &step.retry_after {
        let text = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if let Ok(h) = HeaderValue::from_str(&text) {
            headers.insert("retry-after", h);
        }
    }
    if let Some(ms) = step.retry_after_ms {
        headers.insert("retry-after-ms", HeaderValue::from(ms));
    }
    resp
}

fn render(format: Format, step: &Step, request: &Value, serial: u64) -> Response<Full<Bytes>> {
    let status = step.status.and_then(|s| StatusCode::from_u16(s).ok()).unwrap_or(StatusCode::OK);
    if let Some(raw) = &step.raw {
        return with_body(status, "application/json", raw.clone());
    }
    if let Some(body) = &step.body {
        return match body {
            Value::String(s) => with_body(status, "application/json", s.clone()),
            other => json_response(status, other),
        };
    }
    if !status.is_success() {
        return error_response(format, status, &format!("scripted HTTP {}", status.as_u16()));
    }

    let text = if step.echo_last_user { Some(last_user_text(format, request)) } else { step.text.clone() };
    let mut calls = step.tool_calls.clone().unwrap_or_default();
    if calls.iter().any(|c| c.arguments.to_string().contains("\"$result:")) {
        let last: Option<Value> = last_tool_result(format, request).and_then(|t| serde_json::from_str(&t).ok());
        for c in &mut calls {
            substitute(&mut c.arguments, last.as_ref());
        }
    }
    let model = request.get("model").and_then(Value::as_str).unwrap_or("fake-model");
    let input_tokens = request.get("messages").map_or(0, |m| count_words(m, false))
        + request.get("system").map_or(0, |s| count_words(s, true));
    let output_tokens = text.as_deref().map_or(0, word_count)
        + calls.iter().map(|c| word_count(&c.arguments.to_string()).max(1)).sum::<usize>();
    let finish = step.finish.as_deref().unwrap_or(if calls.is_empty() { "end_turn" } else { "tool_use" });

    let body = match format {
        Format::OpenAi => {
            let tool_calls: Vec<Value> = calls
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    json!({
                        "id": c.id.clone().unwrap_or_else(|| format!("call_fake_{serial}_{i}")),
                        "type": "function",
                        "function": {"name": c.name, "arguments": c.arguments.to_string()},
                    })
                })
                .collect();
            let mut message = json!({"role": "assistant", "content": text});
            if !tool_calls.is_empty() {
                message["tool_calls"] = Value::Array(tool_calls);
            }
            let finish_reason = match finish {
                "end_turn" | "stop_sequence" => "stop",
                "max_tokens" => "length",
                "tool_use" => "tool_calls",
                other => other,
            };
            json!({
                "id": format!("chatcmpl-fake-{serial}"),
                "object": "chat.completion",
                "created": 1_700_000_000u64 + serial,
                "model": model,
                "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
                "usage": {
                    "prompt_tokens": input_tokens,
                    "completion_tokens": output_tokens,
                    "total_tokens": input_tokens + output_tokens,
                },
            })
        }
        Format::Anthropic => {
            let mut content = Vec::new();
            if let Some(t) = text.as_deref().filter(|t| !t.is_empty()) {
                content.push(json!({"type": "text", "text": t}));
            }
            for (i, c) in calls.iter().enumerate() {
                content.push(json!({
                    "type": "tool_use",
                    "id": c.id.clone().unwrap_or_else(|| format!("toolu_fake_{serial}_{i}")),
                    "name": c.name,
                    "input": c.arguments,
                }));
            }
            json!({
                "id": format!("msg_fake_{serial}"),
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": content,
                "stop_reason": finish,
                "stop_sequence": null,
                "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
            })
        }
    };
    json_response(StatusCode::OK, &body)
}

fn word_count(s: &str) -> usize {
    s.split_whitespace().count()
}

/// Words of the human-readable strings in a request: message contents, text blocks, tool
/// arguments; not roles, ids or image data.
fn count_words(v: &Value, counted: bool) -> usize {
    match v {
        Value::String(s) if counted => word_count(s),
        Value::Array(items) => items.iter().map(|i| count_words(i, counted)).sum(),
        Value::Object(map) => {
            map.iter().map(|(k, v)| count_words(v, matches!(k.as_str(), "content" | "text" | "arguments"))).sum()
        }
        _ => 0,
    }
}

/// The text of the last user message (its text blocks, else the text of its tool results).
fn last_user_text(format: Format, request: &Value) -> String {
    let messages = request.get("messages").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let Some(last) = messages.iter().rev().find(|m| m.get("role").and_then(Value::as_str) == Some("user")) else {
        return String::new();
    };
    let texts = |blocks: &[Value]| -> Vec<String> {
        blocks
            .iter()
            .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|b| b.get("text").and_then(Value::as_str).map(str::to_owned))
            .collect()
    };
    match last.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(blocks)) => {
            let mut out = texts(blocks);
            if out.is_empty() && format == Format::Anthropic {
                for b in blocks.iter().filter(|b| b.get("type").and_then(Value::as_str) == Some("tool_result")) {
                    match b.get("content") {
                        Some(Value::String(s)) => out.push(s.clone()),
                        Some(Value::Array(inner)) => out.extend(texts(inner)),
                        _ => {}
                    }
                }
            }
            out.join("\n")
        }
        _ => String::new(),
    }
}

/// Replaces each `"$result:POINTER"` string in `v` with what POINTER finds in `last` (null
/// when nothing is there).
fn substitute(v: &mut Value, last: Option<&Value>) {
    match v {
        Value::String(s) => {
            if let Some(pointer) = s.strip_prefix("$result:") {
                *v = last.and_then(|l| l.pointer(pointer)).cloned().unwrap_or(Value::Null);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| substitute(i, last)),
        Value::Object(map) => map.values_mut().for_each(|i| substitute(i, last)),
        _ => {}
    }
}

/// The text of the last tool result in the conversation: an OpenAI `tool` message, or an
/// Anthropic `tool_result` block.
fn last_tool_result(format: Format, request: &Value) -> Option<String> {
    let messages = request.get("messages").and_then(Value::as_array)?;
    let text_of = |c: &Value| match c {
        Value::String(s) => Some(s.clone()),
        Value::Array(blocks) => {
            Some(blocks.iter().filter_map(|b| b.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join("\n"))
        }
        _ => None,
    };
    messages.iter().rev().find_map(|m| match format {
        Format::OpenAi => {
            (m.get("role").and_then(Value::as_str) == Some("tool")).then(|| text_of(m.get("content")?))?
        }
        Format::Anthropic => m
            .get("content")
            .and_then(Value::as_array)?
            .iter()
            .rev()
            .find(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
            .and_then(|b| text_of(b.get("content")?)),
    })
}

/// An error in the shape the endpoint's real API uses.
fn error_response(format: Format, status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    let kind = match status.as_u16() {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        _ => "api_error",
    };
    let body = match format {
        Format::OpenAi => json!({"error": {"message": message, "type": kind, "param": null, "code": null}}),
        Format::Anthropic => json!({"type": "error", "error": {"type": kind, "message": message}}),
    };
    json_response(status, &body)
}

fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    with_body(status, "application/json", body.to_string())
}

fn plain(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    with_body(status, "text/plain; charset=utf-8", format!("{text}\n"))
}

fn with_body(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

//! `mcpd-fault-server`: a hand-written MCP stdio server that injects faults a real server would not.
//!
//! It speaks newline-delimited JSON-RPC 2.0 on stdin/stdout without any MCP SDK so that it can
//! misbehave on purpose (garbage lines, huge lines, hangs, crashes, floods, ...). Run it with
//! `--help` for the command line.
//!
//! Architecture: one std thread reads stdin lines, one std thread writes stdout lines (fed by a
//! bounded channel, so a client that stops reading exerts backpressure), and a single-threaded
//! tokio runtime dispatches requests. Requests that may take time (`slow`, `hang`, `stderr`) run
//! in their own task, so a hanging call never blocks other requests.

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;

const SERVER_NAME: &str = "mcpd-fault-server";
const SERVER_VERSION: &str = "0.1.0";
const LATEST_PROTOCOL: &str = "2025-11-25";
const SUPPORTED_PROTOCOLS: &[&str] = &["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];
/// Client lines longer than this are fatal.
const MAX_LINE: u64 = 64 * 1024 * 1024;
const GARBAGE_LINE: &[u8] = b"this is not json {{{\n";
const BASE_TOOLS: &[&str] =
    &["echo", "slow", "hang", "crash", "garbage", "huge", "cancelled_count", "change_tools", "stderr"];

/// What `--help` adds after the options.
const AFTER_HELP: &str = "tools: echo, slow, hang, crash, garbage, huge, cancelled_count, change_tools, stderr,
       plus extra_<i> (--tools) and added_<n> (change_tools)";

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Mode {
    Normal,
    Silent,
    GarbageStart,
    ExitNow,
    HugeStart,
    Flood,
}

/// MCP fault-injection test server (newline-delimited JSON-RPC 2.0 over stdio).
#[derive(Debug, clap::Parser)]
#[command(name = "mcpd-fault-server", after_help = AFTER_HELP)]
struct Args {
    #[arg(long, value_enum, default_value_t = Mode::Normal)]
    mode: Mode,
    /// Add N generated tools extra_0..extra_{N-1}.
    #[arg(long = "tools", default_value_t = 0)]
    extra_tools: usize,
    /// tools/list page size.
    #[arg(long, default_value_t = 100, value_parser = at_least_one)]
    page_size: usize,
    /// Size of the startup line in huge-start mode.
    #[arg(long, default_value_t = 10_000_000)]
    huge_start_bytes: usize,
    /// Spawn `sleep 10000` (same process group); write "<grandchild pid>\n<own pid>\n" to PIDFILE.
    #[arg(long, value_name = "PIDFILE")]
    spawn_grandchild: Option<PathBuf>,
    /// Let the grandchild inherit stdin/stdout/stderr (default: /dev/null).
    #[arg(long)]
    grandchild_inherit_stdio: bool,
    /// Keep running after stdin EOF (default: exit 0).
    #[arg(long)]
    ignore_stdin_eof: bool,
    /// Ignore SIGTERM.
    #[arg(long)]
    ignore_sigterm: bool,
    /// Write own pid to PATH at startup.
    #[arg(long, value_name = "PATH")]
    pid_file: Option<PathBuf>,
    /// Flood mode: notifications per second (0: as fast as the client reads).
    #[arg(long, default_value_t = 0)]
    flood_rate: u64,
    /// Flood mode: every 100 ms, write the number of notifications handed to stdout to PATH
    /// (what a fault-suite run reports as the flood it survived).
    #[arg(long, value_name = "PATH")]
    flood_count_file: Option<PathBuf>,
}

fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err("must be a number of at least 1".to_owned()),
    }
}

/// Writes `contents` to `path` atomically (temp file + rename) so pollers never see a partial file.
fn write_atomic(path: &Path, contents: &str) -> anyhow::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, contents).with_context(|| format!("writing {}", path.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// I/O threads
// ---------------------------------------------------------------------------------------------

enum Out {
    Line(Vec<u8>),
    Flush(oneshot::Sender<()>),
}

enum In {
    Line(Vec<u8>),
    Eof,
    Fatal(String),
}

/// Blocking stdout writer: batches whatever is queued, flushes when the queue is empty.
/// On a write error (client gone) it stops, which makes every later send fail.
fn writer_thread(mut rx: mpsc::Receiver<Out>) {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, stdout.lock());
    while let Some(mut msg) = rx.blocking_recv() {
        loop {
            match msg {
                Out::Line(bytes) => {
                    if out.write_all(&bytes).is_err() {
                        return;
                    }
                }
                Out::Flush(done) => {
                    if out.flush().is_err() {
                        return;
                    }
                    let _ = done.send(());
                }
            }
            match rx.try_recv() {
                Ok(next) => msg = next,
                Err(_) => break,
            }
        }
        if out.flush().is_err() {
            return;
        }
    }
}

/// Blocking stdin reader: one message per line.
fn reader_thread(tx: mpsc::Sender<In>) {
    let mut stdin = BufReader::with_capacity(64 * 1024, std::io::stdin().lock());
    loop {
        let mut line = Vec::new();
        let res = (&mut stdin).take(MAX_LINE + 1).read_until(b'\n', &mut line);
        let msg = match res {
            Ok(0) => In::Eof,
            Ok(_) if line.len() as u64 > MAX_LINE => In::Fatal(format!("client line longer than {MAX_LINE} bytes")),
            Ok(_) => In::Line(line),
            Err(e) => In::Fatal(format!("reading stdin: {e}")),
        };
        let stop = !matches!(msg, In::Line(_));
        if tx.blocking_send(msg).is_err() || stop {
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// JSON-RPC encoding
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct Incoming {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    params: Value,
}

#[derive(Serialize)]
struct Response<'a, T> {
    jsonrpc: &'static str,
    id: &'a Value,
    result: T,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: i64,
    message: &'a str,
}

#[derive(Serialize)]
struct ErrorResponse<'a> {
    jsonrpc: &'static str,
    id: &'a Value,
    error: ErrorBody<'a>,
}

#[derive(Serialize)]
struct Notification<'a, T> {
    jsonrpc: &'static str,
    method: &'a str,
    params: T,
}

#[derive(Serialize)]
struct TextContent<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a str,
}

#[derive(Serialize)]
struct TextResult<'a> {
    content: [TextContent<'a>; 1],
    #[serde(rename = "isError", skip_serializing_if = "std::ops::Not::not")]
    is_error: bool,
}

fn text_result(text: &str) -> TextResult<'_> {
    TextResult { content: [TextContent { kind: "text", text }], is_error: false }
}

fn tool_error(text: &str) -> TextResult<'_> {
    TextResult { content: [TextContent { kind: "text", text }], is_error: true }
}

fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    let mut buf = Vec::with_capacity(128);
    serde_json::to_writer(&mut buf, msg).expect("serializing to a Vec cannot fail");
    buf.push(b'\n');
    buf
}

fn response<T: Serialize>(id: &Value, result: T) -> Vec<u8> {
    encode(&Response { jsonrpc: "2.0", id, result })
}

fn error_response(id: &Value, code: i64, message: &str) -> Vec<u8> {
    encode(&ErrorResponse { jsonrpc: "2.0", id, error: ErrorBody { code, message } })
}

fn notification<T: Serialize>(method: &str, params: T) -> Vec<u8> {
    encode(&Notification { jsonrpc: "2.0", method, params })
}

// ---------------------------------------------------------------------------------------------
// Server state
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct State {
    /// Names of tools added by `change_tools`, in order.
    added: Vec<String>,
    /// Request ids seen in `notifications/cancelled`, in order.
    cancelled: Vec<Value>,
    /// Abort handles of in-flight spawned requests, keyed by the id's JSON text.
    inflight: HashMap<String, AbortHandle>,
}

struct Server {
    args: Args,
    out: mpsc::Sender<Out>,
    state: Mutex<State>,
    flood_started: std::sync::atomic::AtomicBool,
}

impl Server {
    async fn send(&self, bytes: Vec<u8>) {
        // A failed send means stdout is gone; there is nobody left to talk to.
        let _ = self.out.send(Out::Line(bytes)).await;
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn base_tool(name: &str) -> Value {
    match name {
        "echo" => json!({
            "name": "echo",
            "description": "Returns its `text` argument unchanged.",
            "inputSchema": {
                "type": "object",
                "properties": {"text": {"type": "string", "description": "Text to echo back"}},
                "required": ["text"]
            }
        }),
        "slow" => json!({
            "name": "slow",
            "description": "Sleeps `ms` milliseconds, sending 5 progress notifications if a progressToken was given, then answers \"done\".",
            "inputSchema": {
                "type": "object",
                "properties": {"ms": {"type": "integer", "minimum": 0, "description": "Milliseconds to sleep"}},
                "required": ["ms"]
            }
        }),
        "hang" => json!({
            "name": "hang",
            "description": "Never answers.",
            "inputSchema": {"type": "object", "properties": {}}
        }),
        "crash" => json!({
            "name": "crash",
            "description": "Exits the server process immediately with `code` (default 1).",
            "inputSchema": {
                "type": "object",
                "properties": {"code": {"type": "integer", "description": "Exit code (default 1)"}}
            }
        }),
        "garbage" => json!({
            "name": "garbage",
            "description": "Writes a non-JSON line to stdout, then answers \"ok\".",
            "inputSchema": {"type": "object", "properties": {}}
        }),
        "huge" => json!({
            "name": "huge",
            "description": "Answers with a single JSON line of exactly `bytes` bytes (excluding the newline).",
            "inputSchema": {
                "type": "object",
                "properties": {"bytes": {"type": "integer", "minimum": 0, "description": "Size of the response line"}},
                "required": ["bytes"]
            }
        }),
        "cancelled_count" => json!({
            "name": "cancelled_count",
            "description": "Returns how many notifications/cancelled were received and their request ids.",
            "inputSchema": {"type": "object", "properties": {}},
            "outputSchema": {
                "type": "object",
                "properties": {
                    "count": {"type": "integer"},
                    "requestIds": {"type": "array", "items": {"type": ["string", "integer"]}}
                },
                "required": ["count", "requestIds"]
            }
        }),
        "change_tools" => json!({
            "name": "change_tools",
            "description": "Adds a tool added_<n>, sends notifications/tools/list_changed, then answers \"ok\".",
            "inputSchema": {"type": "object", "properties": {}}
        }),
        "stderr" => json!({
            "name": "stderr",
            "description": "Writes `lines` lines to stderr, then answers \"ok\".",
            "inputSchema": {
                "type": "object",
                "properties": {"lines": {"type": "integer", "minimum": 0, "description": "Number of lines"}},
                "required": ["lines"]
            }
        }),
        _ => unreachable!("not a base tool: {name}"),
    }
}

fn simple_tool(name: &str, description: &str) -> Value {
    json!({
        "name": name,
        "description": description,
        "inputSchema": {"type": "object", "properties": {}}
    })
}

const CURSOR_PREFIX: &str = "offset-";

impl Server {
    /// The tool at position `i` of the full list (base, then extra_*, then added_*).
    fn tool_at(&self, i: usize, added: &[String]) -> Value {
        let extra = self.args.extra_tools;
        if i < BASE_TOOLS.len() {
            base_tool(BASE_TOOLS[i])
        } else if i < BASE_TOOLS.len() + extra {
            let n = i - BASE_TOOLS.len();
            simple_tool(&format!("extra_{n}"), &format!("Generated tool number {n}; answers with its own name."))
        } else {
            let name = &added[i - BASE_TOOLS.len() - extra];
            simple_tool(name, "Tool added by change_tools; answers with its own name.")
        }
    }

    fn tools_list(&self, id: &Value, params: &Value) -> Vec<u8> {
        let start = match params.get("cursor") {
            None | Some(Value::Null) => 0,
            Some(Value::String(c)) => match c.strip_prefix(CURSOR_PREFIX).and_then(|n| n.parse::<usize>().ok()) {
                Some(n) => n,
                None => return error_response(id, -32602, "invalid cursor"),
            },
            Some(_) => return error_response(id, -32602, "invalid cursor"),
        };
        let added = self.state().added.clone();
        let total = BASE_TOOLS.len() + self.args.extra_tools + added.len();
        let start = start.min(total);
        let end = start.saturating_add(self.args.page_size).min(total);
        let tools: Vec<Value> = (start..end).map(|i| self.tool_at(i, &added)).collect();
        let mut result = json!({ "tools": tools });
        if end < total {
            result["nextCursor"] = Value::String(format!("{CURSOR_PREFIX}{end}"));
        }
        response(id, result)
    }

    /// Whether `name` is one of the generated (extra_*/added_*) tools.
    fn is_generated_tool(&self, name: &str) -> bool {
        if let Some(n) = name.strip_prefix("extra_") {
            // Canonical decimal only ("extra_07" or "extra_+7" are not tools).
            return n.parse::<usize>().is_ok_and(|i| i < self.args.extra_tools && i.to_string() == n);
        }
        name.starts_with("added_") && self.state().added.iter().any(|a| a == name)
    }
}

fn arg_u64(args: &Value, name: &str) -> Option<u64> {
    args.get(name).and_then(Value::as_u64)
}

// ---------------------------------------------------------------------------------------------
// Dispatch
// ---------------------------------------------------------------------------------------------

async fn handle_line(server: &Arc<Server>, line: &[u8]) {
    let line = line.trim_ascii();
    if line.is_empty() {
        return;
    }
    let msg: Incoming = match serde_json::from_slice(line) {
        Ok(m) => m,
        Err(_) => {
            let valid_json = serde_json::from_slice::<serde::de::IgnoredAny>(line).is_ok();
            let (code, message) = if valid_json { (-32600, "invalid request") } else { (-32700, "parse error") };
            server.send(error_response(&Value::Null, code, message)).await;
            return;
        }
    };
    let Some(method) = msg.method else {
        // A response to a server->client request (we never send any) or junk: ignore.
        return;
    };
    match msg.id {
        None => handle_notification(server, &method, &msg.params),
        Some(id) => handle_request(server, id, &method, msg.params).await,
    }
}

fn handle_notification(server: &Server, method: &str, params: &Value) {
    if method == "notifications/cancelled" {
        let request_id = params.get("requestId").cloned().unwrap_or(Value::Null);
        let mut state = server.state();
        if let Some(handle) = state.inflight.remove(&request_id.to_string()) {
            handle.abort();
        }
        state.cancelled.push(request_id);
    }
    // notifications/initialized and everything else: ignored.
}

async fn handle_request(server: &Arc<Server>, id: Value, method: &str, params: Value) {
    match method {
        "initialize" => {
            // Lets a test hold a server in `starting` without changing its identity
            // (command and args), e.g. to observe last-known tools after a restart.
            if let Some(ms) = std::env::var("MCPD_FAULT_INIT_DELAY_MS").ok().and_then(|v| v.parse::<u64>().ok()) {
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            }
            let requested = params.get("protocolVersion").and_then(Value::as_str);
            let version = match requested {
                Some(v) if SUPPORTED_PROTOCOLS.contains(&v) => v,
                _ => LATEST_PROTOCOL,
            };
            let result = json!({
                "protocolVersion": version,
                "capabilities": {"tools": {"listChanged": true}},
                "serverInfo": {"name": SERVER_NAME, "version": SERVER_VERSION}
            });
            server.send(response(&id, result)).await;
            if server.args.mode == Mode::Flood && !server.flood_started.swap(true, std::sync::atomic::Ordering::Relaxed)
            {
                tokio::spawn(flood(server.clone()));
            }
        }
        "ping" => server.send(response(&id, json!({}))).await,
        "tools/list" => server.send(server.tools_list(&id, &params)).await,
        "tools/call" => tools_call(server, id, params).await,
        _ => server.send(error_response(&id, -32601, "method not found")).await,
    }
}

async fn tools_call(server: &Arc<Server>, id: Value, params: Value) {
    let name = params.get("name").and_then(Value::as_str).unwrap_or("");
    let null = Value::Null;
    let args = params.get("arguments").unwrap_or(&null);
    match name {
        "echo" => {
            let bytes = match args.get("text").and_then(Value::as_str) {
                Some(text) => response(&id, text_result(text)),
                None => response(&id, tool_error("missing required string argument `text`")),
            };
            server.send(bytes).await;
        }
        "slow" => {
            let Some(ms) = arg_u64(args, "ms") else {
                let bytes = response(&id, tool_error("missing required integer argument `ms`"));
                return server.send(bytes).await;
            };
            let token = params.get("_meta").and_then(|m| m.get("progressToken")).cloned();
            spawn_request(server, &id, slow(server.clone(), id.clone(), ms, token));
        }
        "hang" => spawn_request(server, &id, std::future::pending()),
        "crash" => {
            let code = args.get("code").and_then(Value::as_i64).unwrap_or(1);
            std::process::exit(code as i32);
        }
        "garbage" => {
            server.send(GARBAGE_LINE.to_vec()).await;
            server.send(response(&id, text_result("ok"))).await;
        }
        "huge" => {
            let Some(bytes) = arg_u64(args, "bytes") else {
                let bytes = response(&id, tool_error("missing required integer argument `bytes`"));
                return server.send(bytes).await;
            };
            server.send(huge_response(&id, bytes as usize)).await;
        }
        "cancelled_count" => {
            let ids = server.state().cancelled.clone();
            let count = ids.len().to_string();
            let ids_text = Value::Array(ids.clone()).to_string();
            let result = json!({
                "content": [
                    {"type": "text", "text": count},
                    {"type": "text", "text": ids_text}
                ],
                "structuredContent": {"count": ids.len(), "requestIds": ids}
            });
            server.send(response(&id, result)).await;
        }
        "change_tools" => {
            {
                let mut state = server.state();
                let n = state.added.len();
                state.added.push(format!("added_{n}"));
            }
            server.send(notification("notifications/tools/list_changed", json!({}))).await;
            server.send(response(&id, text_result("ok"))).await;
        }
        "stderr" => {
            let Some(lines) = arg_u64(args, "lines") else {
                let bytes = response(&id, tool_error("missing required integer argument `lines`"));
                return server.send(bytes).await;
            };
            let srv = server.clone();
            let rid = id.clone();
            spawn_request(server, &id, async move {
                // Blocking writes (the client may not drain stderr) must not stall the runtime.
                let _ = tokio::task::spawn_blocking(move || {
                    let mut err = std::io::BufWriter::new(std::io::stderr().lock());
                    for i in 0..lines {
                        if writeln!(err, "mcpd-fault-server stderr line {i}").is_err() {
                            break;
                        }
                    }
                    let _ = err.flush();
                })
                .await;
                srv.send(response(&rid, text_result("ok"))).await;
            });
        }
        other if server.is_generated_tool(other) => {
            server.send(response(&id, text_result(other))).await;
        }
        other => {
            let message = format!("unknown tool: {other}");
            server.send(error_response(&id, -32602, &message)).await;
        }
    }
}

/// Runs `fut` as its own task, cancellable through `notifications/cancelled`.
fn spawn_request<F>(server: &Arc<Server>, id: &Value, fut: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    let key = id.to_string();
    let srv = server.clone();
    let task_key = key.clone();
    let handle = tokio::spawn(async move {
        fut.await;
        srv.state().inflight.remove(&task_key);
    });
    server.state().inflight.insert(key, handle.abort_handle());
}

async fn slow(server: Arc<Server>, id: Value, ms: u64, token: Option<Value>) {
    const STEPS: u64 = 5;
    let step = ms / STEPS;
    for i in 1..=STEPS {
        let this_step = if i == STEPS { ms - step * (STEPS - 1) } else { step };
        tokio::time::sleep(Duration::from_millis(this_step)).await;
        if let Some(token) = &token {
            let params = json!({"progressToken": token, "progress": i, "total": STEPS});
            server.send(notification("notifications/progress", params)).await;
        }
    }
    server.send(response(&id, text_result("done"))).await;
}

/// A response line of exactly `bytes` bytes (plus newline) when `bytes` exceeds the envelope size.
fn huge_response(id: &Value, bytes: usize) -> Vec<u8> {
    let envelope = response(id, text_result("")).len() - 1;
    let text = "x".repeat(bytes.saturating_sub(envelope));
    response(id, text_result(&text))
}

/// A `notifications/message` line of exactly `bytes` bytes (plus newline) when large enough.
fn huge_notification(bytes: usize) -> Vec<u8> {
    let msg = |data: &str| {
        notification("notifications/message", json!({"level": "info", "logger": "huge-start", "data": data}))
    };
    let envelope = msg("").len() - 1;
    msg(&"x".repeat(bytes.saturating_sub(envelope)))
}

async fn flood(server: Arc<Server>) {
    // Paced in 10 ms slices of rate/100 lines; a slice that falls behind is not made up, so
    // the rate is an upper bound and what was sent is in the count file.
    let per_slice = server.args.flood_rate.div_ceil(100);
    let mut slice = tokio::time::interval(Duration::from_millis(10));
    slice.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut n: u64 = 0;
    let mut counted = std::time::Instant::now();
    loop {
        if per_slice > 0 && n.is_multiple_of(per_slice) {
            slice.tick().await;
        }
        let line = notification(
            "notifications/message",
            json!({"level": "info", "logger": "flood", "data": format!("flood message {n}")}),
        );
        if server.out.send(Out::Line(line)).await.is_err() {
            return;
        }
        n += 1;
        if n.is_multiple_of(64) {
            tokio::task::yield_now().await;
            if let Some(path) = &server.args.flood_count_file
                && counted.elapsed() >= Duration::from_millis(100)
            {
                counted = std::time::Instant::now();
                let _ = write_atomic(path, &n.to_string());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// main
// ---------------------------------------------------------------------------------------------

fn main() {
    let args = <Args as clap::Parser>::parse();
    if let Err(e) = startup(&args) {
        eprintln!("mcpd-fault-server: {e:#}");
        std::process::exit(1);
    }
    if args.mode == Mode::ExitNow {
        eprintln!("mcpd-fault-server: exiting with code 3 (--mode exit-now)");
        std::process::exit(3);
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("building tokio runtime");
    if let Err(e) = runtime.block_on(run(args)) {
        eprintln!("mcpd-fault-server: {e:#}");
        std::process::exit(1);
    }
}

/// Pid files and the grandchild, before anything else happens.
fn startup(args: &Args) -> anyhow::Result<()> {
    let pid = std::process::id();
    if let Some(path) = &args.pid_file {
        write_atomic(path, &format!("{pid}\n"))?;
    }
    if let Some(path) = &args.spawn_grandchild {
        let stdio = || {
            if args.grandchild_inherit_stdio { Stdio::inherit() } else { Stdio::null() }
        };
        // Deliberately no process_group(): the grandchild shares our process group.
        let child = Command::new("sleep")
            .arg("10000")
            .stdin(stdio())
            .stdout(stdio())
            .stderr(stdio())
            .spawn()
            .context("spawning grandchild `sleep 10000`")?;
        write_atomic(path, &format!("{}\n{pid}\n", child.id()))?;
        // The Child handle is dropped without killing or waiting: the grandchild keeps running.
    }
    Ok(())
}

async fn run(args: Args) -> anyhow::Result<()> {
    if args.ignore_sigterm {
        let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing SIGTERM handler")?;
        tokio::spawn(async move {
            while sigterm.recv().await.is_some() {
                eprintln!("mcpd-fault-server: ignoring SIGTERM");
            }
        });
    }

    let (out_tx, out_rx) = mpsc::channel::<Out>(1024);
    let (in_tx, mut in_rx) = mpsc::channel::<In>(64);
    std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || reader_thread(in_tx))
        .context("spawning stdin thread")?;
    let silent = args.mode == Mode::Silent;
    if silent {
        drop(out_rx);
    } else {
        std::thread::Builder::new()
            .name("stdout".into())
            .spawn(move || writer_thread(out_rx))
            .context("spawning stdout thread")?;
    }

    let ignore_stdin_eof = args.ignore_stdin_eof;
    let mode = args.mode;
    let huge_start_bytes = args.huge_start_bytes;
    let server =
        Arc::new(Server { args, out: out_tx, state: Mutex::new(State::default()), flood_started: false.into() });

    match mode {
        Mode::GarbageStart => {
            for _ in 0..3 {
                server.send(GARBAGE_LINE.to_vec()).await;
            }
        }
        Mode::HugeStart => server.send(huge_notification(huge_start_bytes)).await,
        _ => {}
    }

    loop {
        match in_rx.recv().await {
            Some(In::Line(line)) => {
                if !silent {
                    handle_line(&server, &line).await;
                }
            }
            Some(In::Fatal(msg)) => bail!("{msg}"),
            Some(In::Eof) | None => break,
        }
    }

    if ignore_stdin_eof {
        std::future::pending::<()>().await;
    }
    // Let already-queued output reach the client before exiting.
    let (done_tx, done_rx) = oneshot::channel();
    if server.out.send(Out::Flush(done_tx)).await.is_ok() {
        let _ = tokio::time::timeout(Duration::from_secs(2), done_rx).await;
    }
    std::process::exit(0);
}

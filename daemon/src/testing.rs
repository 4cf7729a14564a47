//! Helpers for the core's unit tests: a config from TOML, a session context with no store
//! and no reaper, and a fake upstream (a scripted JSON-RPC server on an in-memory pipe)
//! that an rmcp client peer talks to, so the call path runs without any process.
use std::{
    path::Path,
    sync::{Arc, Mutex},
};

use rmcp::service::{ClientLifecycleMode, ClientServiceExt, RoleClient, RunningService};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};

use crate::{
    attach::Attachments,
    cache::ResourceCache,
    config::Config,
    live::{Live, LiveHandle},
    metrics::Metrics,
    registry::Registry,
    requests::ServerRequests,
    sampling::Sampler,
    session::SessionContext,
    trust::Trust,
};

/// A config from TOML that must be valid.
pub(crate) fn config(toml: &str) -> Config {
    crate::config::load_str(toml, Path::new("test.toml"), &|_| None).expect("test config is valid")
}

/// A session context over `config`, with in-memory trust and no store or reaper.
pub(crate) fn context(config: &Config) -> (SessionContext, LiveHandle) {
    let attachments = Arc::new(Attachments::default());
    let live = Live::handle(config.clone());
    let sampler = Arc::new(Sampler::new(live.clone(), attachments.clone(), config));
    let ctx = SessionContext {
        registry: Arc::new(Registry::default()),
        attachments: attachments.clone(),
        cache: ResourceCache::new(1 << 20),
        metrics: Arc::new(Metrics::default()),
        trust: Arc::new(Trust::in_memory()),
        requests: Arc::new(ServerRequests { attachments, sampler }),
        store: None,
        reaper: None,
        oauth: Arc::new(crate::oauth::OAuth::new(None)),
        start_slots: Arc::new(tokio::sync::Semaphore::new(4)),
        containment: Arc::new(crate::contain::Containment::ProcessTree),
    };
    (ctx, live)
}

/// What the fake upstream saw.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    /// Methods of the requests and notifications it received, in order.
    pub methods: Vec<String>,
    /// Arguments of each `tools/call`.
    pub calls: Vec<Value>,
}

/// A session-era server speaking newline-delimited JSON-RPC. Tools: `echo` (answers its
/// `text`), `hang` (never answers). Unknown requests get -32601.
pub(crate) async fn fake_upstream() -> (RunningService<RoleClient, ()>, Arc<Mutex<Seen>>) {
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let seen = Arc::new(Mutex::new(Seen::default()));
    let record = seen.clone();
    tokio::spawn(async move {
        let (read, mut write) = tokio::io::split(server_io);
        let mut lines = BufReader::new(read).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let Ok(msg) = serde_json::from_str::<Value>(&line) else { continue };
            let method = msg["method"].as_str().unwrap_or_default().to_owned();
            let id = msg.get("id").cloned();
            {
                let mut s = record.lock().unwrap_or_else(|p| p.into_inner());
                s.methods.push(method.clone());
                if method == "tools/call" {
                    s.calls.push(msg["params"].clone());
                }
            }
            let Some(id) = id else { continue };
            let answer = match method.as_str() {
                "initialize" => json!({"result": {
                    "protocolVersion": "2025-11-25",
                    "capabilities": {"tools": {}},
                    "serverInfo": {"name": "fake", "version": "1"}
                }}),
                "ping" => json!({"result": {}}),
                "tools/call" if msg["params"]["name"] == "hang" => continue,
                "tools/call" => json!({"result": {
                    "content": [{"type": "text", "text": msg["params"]["arguments"]["text"].clone()}]
                }}),
                _ => json!({"error": {"code": -32601, "message": "method not found"}}),
            };
            let mut out = answer;
            out["jsonrpc"] = json!("2.0");
            out["id"] = id;
            let mut text = out.to_string();
            text.push('\n');
            if write.write_all(text.as_bytes()).await.is_err() {
                return;
            }
        }
    });
    let (read, write) = tokio::io::split(client_io);
    let service =
        ().serve_with_lifecycle((read, write), ClientLifecycleMode::Initialize)
            .await
            .expect("the fake upstream answers");
    (service, seen)
}

/// Tool definitions for the fake upstream.
pub(crate) fn fake_tools() -> Vec<rmcp::model::Tool> {
    ["echo", "hang"]
        .into_iter()
        .map(|name| {
            serde_json::from_value(json!({
                "name": name,
                "description": format!("the fake upstream's {name}"),
                "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}}
            }))
            .expect("tool JSON")
        })
        .collect()
}

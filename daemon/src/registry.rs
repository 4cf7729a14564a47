//! The merged tool registry: `server.tool` names, stable order, lock-free snapshot reads.
//!
//! Writers (one session task per server) build a new snapshot and swap it in; readers
//! load the current `Arc` and never wait on a lock held across I/O.
use std::{collections::BTreeMap, sync::Arc};

use arc_swap::ArcSwap;
use rmcp::model::Tool;

use crate::config::ToolFilter;

/// One tool as apps see it.
#[derive(Debug)]
pub struct ToolEntry {
    pub server: String,
    /// The definition as the server sent it: what calls use and fingerprints cover.
    pub tool: Tool,
    /// The same definition with invisible, bidi, tag and control characters removed:
    /// what apps and models are shown.
    pub display: Tool,
    /// `tool` as JSON, kept for audit and `mcpd trust diff`.
    pub raw: serde_json::Value,
    /// Fingerprint of `raw` bound to the server identity.
    pub fingerprint: String,
    /// Scanner findings, rendered "severity kind at location: excerpt".
    pub findings: Vec<String>,
    /// A finding of medium severity or more: the tool is never trusted automatically.
    pub blocks_auto_trust: bool,
    /// Compiled inputSchema; `None` when the schema could not be compiled (calls are then
    /// sent unvalidated and the problem is logged once when the list is published).
    pub validator: Option<jsonschema::Validator>,
}

impl ToolEntry {
    /// Fingerprints and scans `tool`; `others` are the names of other servers' tools (for
    /// shadowing). CPU work: call from `spawn_blocking`.
    pub fn new(
        server: &str,
        identity: &str,
        tool: Tool,
        others: &crate::integrity::scan::OtherTools,
        validator: Option<jsonschema::Validator>,
    ) -> Self {
        let raw = serde_json::to_value(&tool).unwrap_or(serde_json::Value::Null);
        let fingerprint = crate::integrity::fingerprint::fingerprint(identity, "tool", &raw);
        let scan = crate::integrity::scan::scan_definition_with(&raw, others);
        let blocks_auto_trust = scan.findings.iter().any(|f| f.severity >= crate::integrity::scan::Severity::Medium);
        let findings = scan.findings.iter().map(crate::integrity::render_finding).collect();
        // The sanitised form keeps the name (names are already restricted to ASCII).
        let display = serde_json::from_value::<Tool>(scan.sanitized).unwrap_or_else(|_| tool.clone());
        Self { server: server.to_owned(), tool, display, raw, fingerprint, findings, blocks_auto_trust, validator }
    }

    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.server, self.tool.name)
    }

    /// MCP Apps: the `ui://` resource that renders this tool. `_meta.ui.resourceUri` is the
    /// current form; `_meta["ui/resourceUri"]` is what early MCP Apps servers sent.
    pub fn ui_resource_uri(&self) -> Option<&str> {
        let meta = self.tool.meta.as_ref()?;
        meta.get("ui")
            .and_then(|ui| ui.get("resourceUri"))
            .or_else(|| meta.get("ui/resourceUri"))
            .and_then(|v| v.as_str())
    }

    /// MCP Apps: who may call the tool; absent means both the model and the app.
    pub fn visibility(&self) -> Vec<String> {
        let declared = self
            .tool
            .meta
            .as_ref()
            .and_then(|m| m.get("ui"))
            .and_then(|ui| ui.get("visibility"))
            .and_then(|v| v.as_array())
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect::<Vec<_>>());
        match declared {
            Some(v) if !v.is_empty() => v,
            _ => vec!["model".to_owned(), "app".to_owned()],
        }
    }

    /// Tools only an app's UI may call never reach a model (agent loops skip them).
    pub fn app_only(&self) -> bool {
        !self.visibility().iter().any(|v| v == "model")
    }
}

/// All tools of one server.
#[derive(Debug, Default)]
pub struct ServerTools {
    pub tools: BTreeMap<String, Arc<ToolEntry>>,
    /// True when the list comes from the store and the server is not connected.
    pub stale: bool,
}

/// An immutable view of every server's tools.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub servers: BTreeMap<String, Arc<ServerTools>>,
}

impl Snapshot {
    /// Resolves `server.tool`. Server names cannot contain `.`, so the first dot splits.
    pub fn resolve(&self, qualified: &str) -> Option<(&Arc<ServerTools>, &Arc<ToolEntry>)> {
        let (server, tool) = qualified.split_once('.')?;
        let st = self.servers.get(server)?;
        Some((st, st.tools.get(tool)?))
    }

    /// Tools in stable order (server name, then tool name).
    pub fn iter(&self) -> impl Iterator<Item = (&Arc<ServerTools>, &Arc<ToolEntry>)> {
        self.servers.values().flat_map(|st| st.tools.values().map(move |t| (st, t)))
    }

    /// Names of every tool not of `server` (qualified and bare), for shadowing detection.
    pub fn names_except(&self, server: &str) -> Vec<String> {
        let mut out = Vec::new();
        for (name, st) in &self.servers {
            if name == server {
                continue;
            }
            for t in st.tools.keys() {
                out.push(format!("{name}.{t}"));
                out.push(t.clone());
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// A close qualified name, for "did you mean" hints.
    pub fn suggest(&self, qualified: &str) -> Option<String> {
        let mut best: Option<(f64, String)> = None;
        for (_, t) in self.iter() {
            let q = t.qualified_name();
            let score = strsim::jaro_winkler(&q, qualified);
            if score > 0.85 && best.as_ref().is_none_or(|(s, _)| score > *s) {
                best = Some((score, q));
            }
        }
        best.map(|(_, q)| q)
    }
}

#[derive(Debug, Default)]
pub struct Registry {
    current: ArcSwap<Snapshot>,
    /// Tool search over every published tool, re-indexed one server at a time under `write`.
    /// Visibility (trust, app-only) is decided at query time, so a verdict change needs no
    /// re-index.
    search: std::sync::RwLock<mcpd_search::Index>,
    /// Serialises writers so two servers publishing at once cannot lose an update.
    write: std::sync::Mutex<()>,
    /// The directory of the semantic ranker's model now in use (`[daemon] search_model`).
    search_model: std::sync::Mutex<Option<std::path::PathBuf>>,
}

// === impl Registry ===

impl Registry {
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Replaces one server's tools.
    pub fn publish(&self, server: &str, tools: ServerTools) {
        let _guard = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let docs: Vec<mcpd_search::ToolDoc> = tools.tools.values().map(|t| search_doc(t)).collect();
        let mut servers = self.current.load().servers.clone();
        servers.insert(server.to_owned(), Arc::new(tools));
        self.current.store(Arc::new(Snapshot { servers }));
        self.search.write().unwrap_or_else(|p| p.into_inner()).replace_server(server, docs);
    }

    /// The `k` best tools for `query` that `visible` admits, best first.
    pub fn search(&self, query: &str, k: usize, visible: &dyn Fn(&str, &str) -> bool) -> Vec<mcpd_search::Hit> {
        self.search.read().unwrap_or_else(|p| p.into_inner()).search(query, k, visible)
    }

    /// Ranks searches with the static embedding model in `dir` fused in (`None`: lexical
    /// only), re-indexing every tool. Loading reads the model's files: call it from the
    /// blocking pool. A model that fails to load leaves the ranker as it was.
    pub fn use_search_model(&self, dir: Option<&std::path::Path>) -> Result<(), mcpd_search::ModelError> {
        let mut current = self.search_model.lock().unwrap_or_else(|p| p.into_inner());
        if current.as_deref() == dir {
            return Ok(());
        }
        let fresh = match dir {
            Some(d) => mcpd_search::Index::with_embedder(Arc::new(mcpd_search::Embedder::load(d)?)),
            None => mcpd_search::Index::new(),
        };
        let _guard = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let mut fresh = fresh;
        for (server, st) in &self.current.load().servers {
            fresh.replace_server(server, st.tools.values().map(|t| search_doc(t)));
        }
        *self.search.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        *current = dir.map(std::path::Path::to_path_buf);
        Ok(())
    }

    /// Marks a server's tools stale (disconnected) without forgetting them.
    pub fn mark_stale(&self, server: &str) {
        let _guard = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let cur = self.current.load();
        let Some(st) = cur.servers.get(server) else {
            return;
        };
        if st.stale {
            return;
        }
        let mut servers = cur.servers.clone();
        servers.insert(server.to_owned(), Arc::new(ServerTools { tools: st.tools.clone(), stale: true }));
        self.current.store(Arc::new(Snapshot { servers }));
    }

    pub fn remove(&self, server: &str) {
        let _guard = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let mut servers = self.current.load().servers.clone();
        if servers.remove(server).is_some() {
            self.current.store(Arc::new(Snapshot { servers }));
        }
        self.search.write().unwrap_or_else(|p| p.into_inner()).replace_server(server, []);
    }
}

/// What search indexes of a tool: its sanitised (display) text, never the raw definition, so
/// invisible characters a scanner removed cannot steer ranking.
fn search_doc(t: &ToolEntry) -> mcpd_search::ToolDoc {
    let params = t
        .display
        .input_schema
        .get("properties")
        .and_then(|p| p.as_object())
        .map(|p| {
            p.iter()
                .map(|(n, d)| (n.clone(), d.get("description").and_then(|v| v.as_str()).unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default();
    mcpd_search::ToolDoc {
        server: t.server.clone(),
        name: t.tool.name.to_string(),
        title: t.display.title.clone().unwrap_or_default(),
        description: t.display.description.as_deref().unwrap_or_default().to_owned(),
        params,
    }
}

/// Builds a server's tool table: applies the config's allow/deny filter, drops tools whose
/// names break the spec's `[A-Za-z0-9_.-]{1,128}` rule, and compiles input schemas.
/// Compiling schemas is CPU work: call it from `spawn_blocking`.
pub fn build_server_tools(
    server: &str,
    identity: &str,
    tools: Vec<Tool>,
    filter: &ToolFilter,
    others: &[String],
    stale: bool,
) -> (ServerTools, Vec<String>) {
    let mut out = BTreeMap::new();
    let mut warnings = Vec::new();
    // Built once per list: scanning matches every definition against the same names.
    let others = crate::integrity::scan::OtherTools::new(others);
    for tool in tools {
        let name = tool.name.to_string();
        if !valid_tool_name(&name) {
            warnings.push(format!("tool name {name:?} is not valid (allowed: [A-Za-z0-9_.-]{{1,128}}); ignored"));
            continue;
        }
        if !filter.allows(&name) {
            continue;
        }
        if out.contains_key(&name) {
            warnings.push(format!("tool {name:?} is listed twice; the first definition is kept"));
            continue;
        }
        let schema = serde_json::Value::Object((*tool.input_schema).clone());
        let validator = match jsonschema::validator_for(&schema) {
            Ok(v) => Some(v),
            Err(e) => {
                warnings.push(format!(
                    "tool {name:?} has an inputSchema that does not compile ({e}); its arguments are not validated"
                ));
                None
            }
        };
        out.insert(name, Arc::new(ToolEntry::new(server, identity, tool, &others, validator)));
    }
    (ServerTools { tools: out, stale }, warnings)
}

fn valid_tool_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// A prompt or resource template as the session last listed it, pinned like a tool.
#[derive(Debug, Clone, PartialEq)]
pub struct PinItem {
    /// `prompt` or `resource-template`.
    pub kind: &'static str,
    pub name: String,
    pub fingerprint: String,
    pub raw: serde_json::Value,
    /// A scanner finding of medium severity or more.
    pub blocks_auto_trust: bool,
}

/// Puts `[daemon] search_model` to use (on the blocking pool: the model's files are read). A
/// model that cannot be loaded is logged and search stays lexical: the daemon's main job does
/// not depend on it.
pub async fn apply_search_model(registry: &Arc<Registry>, dir: Option<std::path::PathBuf>) {
    let r = registry.clone();
    let shown = dir.as_ref().map(|d| d.display().to_string());
    match tokio::task::spawn_blocking(move || r.use_search_model(dir.as_deref())).await {
        Ok(Ok(())) => {
            if let Some(d) = shown {
                tracing::info!(model = %d, "tool search ranks with the semantic model");
            }
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "tool search's semantic model was not loaded; search stays as it was")
        }
        Err(e) => tracing::error!(error = %e, "loading tool search's semantic model failed"),
    }
}

#[cfg(test)]
mod tests;

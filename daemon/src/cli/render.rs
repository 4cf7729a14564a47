//! Human and JSON renderings of API answers. Everything a server controls is escaped
//! before it reaches a terminal, so a hostile description cannot move the cursor or hide text.
use mcpd_client::proto::{self as pb, ServerState};
use serde_json::{Value, json};

/// Replaces control characters (including ESC, bidi overrides and zero-width marks) with visible escapes.
pub(crate) fn safe(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let invisible = matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}' | '\u{E0000}'..='\u{E007F}');
        if c.is_control() || invisible {
            out.push_str(&c.escape_unicode().to_string());
        } else {
            out.push(c);
        }
    }
    out
}

fn state_name(s: i32) -> &'static str {
    match ServerState::try_from(s).unwrap_or(ServerState::Unspecified) {
        ServerState::Unspecified => "unknown",
        ServerState::Starting => "starting",
        ServerState::Ready => "ready",
        ServerState::Degraded => "degraded",
        ServerState::Backoff => "backoff",
        ServerState::CircuitOpen => "circuit-open",
        ServerState::NeedsAuth => "needs-auth",
        ServerState::Disabled => "disabled",
        ServerState::Stopped => "stopped",
    }
}

fn human_ms(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0 if ms == 0 => "-".into(),
        0 => format!("{ms}ms"),
        1..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{}s", s / 60, s % 60),
        3600..=86399 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{}h", s / 86400, (s % 86400) / 3600),
    }
}

fn next_retry(unix_ms: u64) -> String {
    if unix_ms == 0 {
        return "-".into();
    }
    let now = mcpd::util::unix_ms();
    format!("in {}", human_ms(unix_ms.saturating_sub(now).max(1)))
}

fn table(rows: Vec<Vec<String>>) -> String {
    let cols = rows.first().map(Vec::len).unwrap_or(0);
    let mut widths = vec![0; cols];
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 == cols {
                line.push_str(c);
            } else {
                line.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

pub(crate) fn status_table(st: &pb::StatusResponse) -> String {
    let mut out = String::new();
    if let Some(d) = &st.daemon {
        out.push_str(&format!(
            "mcpd {} (pid {}) up {}, socket {}\n",
            d.version,
            d.pid,
            human_ms(d.uptime_ms),
            safe(&d.socket_path)
        ));
        out.push_str(&format!("MCP: `mcpd mcp` via {}", safe(&d.mcp_socket)));
        let scheme = if d.mcp_tls { "https" } else { "http" };
        match (d.mcp_listen.as_str(), d.mcp_auth.as_str()) {
            ("", _) => out.push_str(", HTTP endpoint off"),
            (addr, "none") => {
                out.push_str(&format!(", {scheme}://{}/mcp with NO token (mcp_auth = \"none\")", safe(addr)))
            }
            (addr, _) => {
                out.push_str(&format!(", {scheme}://{}/mcp with the token in {}", safe(addr), safe(&d.mcp_token_file)))
            }
        }
        out.push_str(&format!("; profiles {}\n", safe(&d.mcp_profiles.join(", "))));
        out.push_str(&format!("servers contained by {}\n\n", safe(&d.containment)));
    }
    let mut rows = vec![
        ["SERVER", "TRANSPORT", "PROTOCOL", "STATE", "TOOLS", "UPTIME", "NEXT RETRY", "LAST ERROR"]
            .map(String::from)
            .to_vec(),
    ];
    for s in &st.servers {
        let tools = if s.stale { format!("{} (stale)", s.tool_count) } else { s.tool_count.to_string() };
        let mut err = safe(&s.last_error);
        if err.chars().count() > 80 {
            err = err.chars().take(77).collect::<String>() + "...";
        }
        rows.push(vec![
            s.name.clone(),
            s.transport.clone(),
            if s.protocol_version.is_empty() { "-".into() } else { s.protocol_version.clone() },
            if s.waiting_for_start_slot { "starting (queued)".into() } else { state_name(s.state).into() },
            tools,
            human_ms(s.uptime_ms),
            next_retry(s.next_retry_unix_ms),
            if err.is_empty() { "-".into() } else { err },
        ]);
    }
    out.push_str(&table(rows));
    let tasks: Vec<_> = st.servers.iter().flat_map(|s| s.tasks.iter().map(move |t| (s, t))).collect();
    if !tasks.is_empty() {
        let mut rows = vec![["TASK", "TOOL", "STATUS", "AGE", "MESSAGE"].map(String::from).to_vec()];
        for (_, t) in tasks {
            let msg = safe(&t.status_message);
            rows.push(vec![
                safe(&t.task_id),
                safe(&t.tool),
                safe(&t.status),
                human_ms(t.age_ms),
                if msg.is_empty() { "-".into() } else { msg },
            ]);
        }
        out.push_str("\nrunning tasks\n");
        out.push_str(&table(rows));
    }
    out
}

pub(crate) fn status_json(st: &pb::StatusResponse) -> Value {
    json!({
        "daemon": st.daemon.as_ref().map(|d| json!({
            "version": d.version, "pid": d.pid, "uptime_ms": d.uptime_ms,
            "config_path": d.config_path, "socket_path": d.socket_path, "state_dir": d.state_dir,
            "cache": {"entries": d.cache_entries, "bytes": d.cache_bytes, "max_bytes": d.cache_max_bytes},
            "mcp": {
                "socket": d.mcp_socket, "listen": d.mcp_listen, "auth": d.mcp_auth, "tls": d.mcp_tls,
                "token_file": d.mcp_token_file, "profiles": d.mcp_profiles,
            },
            "containment": d.containment,
        })),
        "servers": st.servers.iter().map(|s| json!({
            "name": s.name, "transport": s.transport, "target": s.target, "state": state_name(s.state),
            "protocol_version": s.protocol_version, "era": s.era, "tool_count": s.tool_count,
            "stale": s.stale, "last_error": s.last_error, "next_retry_unix_ms": s.next_retry_unix_ms,
            "uptime_ms": s.uptime_ms, "connects": s.connects, "pid": s.pid,
            "server_name": s.server_name, "server_version": s.server_version,
            "in_flight": s.in_flight, "reconnects": s.reconnects,
            "waiting_for_start_slot": s.waiting_for_start_slot,
            "tasks": s.tasks.iter().map(|t| json!({
                "task_id": t.task_id, "tool": t.tool, "status": t.status,
                "status_message": t.status_message, "age_ms": t.age_ms,
            })).collect::<Vec<_>>(),
            "tool_stats": s.tool_stats.iter().map(|t| json!({
                "tool": t.tool, "calls": t.calls, "errors": t.errors, "mean_latency_us": t.mean_latency_us,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

pub(crate) fn tools_table(tools: &[pb::Tool]) -> String {
    let mut rows = vec![vec!["TOOL".to_string(), "DESCRIPTION".to_string()]];
    for t in tools {
        let desc = t.description.lines().next().unwrap_or("");
        let mut desc = safe(desc);
        if desc.chars().count() > 100 {
            desc = desc.chars().take(97).collect::<String>() + "...";
        }
        let mut name = if t.stale { format!("{} (stale)", t.qualified_name) } else { t.qualified_name.clone() };
        if !t.visibility.iter().any(|v| v == "model") {
            name.push_str(" (app only)");
        }
        if t.quarantined {
            name.push_str(" (quarantined)");
        }
        if !t.ui_resource_uri.is_empty() {
            desc = format!("{desc} [ui: {}]", safe(&t.ui_resource_uri));
        }
        rows.push(vec![name, desc]);
    }
    table(rows)
}

fn parse_or_null(s: &str) -> Value {
    if s.is_empty() { Value::Null } else { serde_json::from_str(s).unwrap_or(Value::Null) }
}

pub(crate) fn tools_json(tools: &[pb::Tool]) -> Value {
    Value::Array(
        tools
            .iter()
            .map(|t| {
                json!({
                    "name": t.qualified_name, "server": t.server, "tool": t.name, "title": t.title,
                    "description": t.description, "inputSchema": parse_or_null(&t.input_schema_json),
                    "outputSchema": parse_or_null(&t.output_schema_json),
                    "annotations": parse_or_null(&t.annotations_json), "_meta": parse_or_null(&t.meta_json),
                    "stale": t.stale, "uiResourceUri": t.ui_resource_uri, "visibility": t.visibility,
                    "fingerprint": t.fingerprint, "quarantined": t.quarantined,
                    "quarantineReason": t.quarantine_reason, "findings": t.findings,
                })
            })
            .collect(),
    )
}

/// Search results: rank, score, the tool and the fields that matched, then its description.
pub(crate) fn hits_table(hits: &[pb::ToolHit]) -> String {
    let mut rows = vec![vec![
        "#".to_string(),
        "SCORE".to_string(),
        "TOOL".to_string(),
        "MATCHED".to_string(),
        "DESCRIPTION".to_string(),
    ]];
    for (i, h) in hits.iter().enumerate() {
        let Some(t) = &h.tool else { continue };
        let mut desc = safe(t.description.lines().next().unwrap_or(""));
        if desc.chars().count() > 80 {
            desc = desc.chars().take(77).collect::<String>() + "...";
        }
        rows.push(vec![
            (i + 1).to_string(),
            format!("{:.2}", h.score),
            t.qualified_name.clone(),
            h.matched_fields.join(","),
            desc,
        ]);
    }
    if hits.is_empty() {
        return "no tool matches\n".to_owned();
    }
    table(rows)
}

pub(crate) fn hits_json(hits: &[pb::ToolHit]) -> Value {
    Value::Array(
        hits.iter()
            .filter_map(|h| {
                let tool = h.tool.as_ref()?;
                let mut v = tools_json(std::slice::from_ref(tool)).as_array()?.first()?.clone();
                v["score"] = json!(h.score);
                v["matched"] = json!(h.matched_fields);
                Some(v)
            })
            .collect(),
    )
}

pub(crate) fn call_json(r: &pb::CallToolResponse) -> Value {
    json!({
        "isError": r.is_error,
        "content": parse_or_null(&r.content_json),
        "structuredContent": parse_or_null(&r.structured_content_json),
        "_meta": parse_or_null(&r.meta_json),
        "truncated": r.truncated,
        "originalBytes": r.original_bytes,
        "durationUs": r.duration_us,
        "redactions": r.redactions,
    })
}

/// Text blocks as text; other blocks as one JSON line each.
pub(crate) fn call_text(r: &pb::CallToolResponse) -> String {
    let mut out = String::new();
    if let Value::Array(blocks) = parse_or_null(&r.content_json) {
        for b in blocks {
            match (b.get("type").and_then(Value::as_str), b.get("text").and_then(Value::as_str)) {
                (Some("text"), Some(t)) => out.push_str(&safe_multiline(t)),
                _ => out.push_str(&safe(&b.to_string())),
            }
            out.push('\n');
        }
    }
    if !r.structured_content_json.is_empty() && out.is_empty() {
        out.push_str(&safe(&r.structured_content_json));
        out.push('\n');
    }
    out
}

/// Cuts a server-controlled line for a table cell, escaped.
fn cell(s: &str, max: usize) -> String {
    let s = safe(s.lines().next().unwrap_or(""));
    if s.chars().count() > max { s.chars().take(max - 3).collect::<String>() + "..." } else { s }
}

pub(crate) fn resources_table(r: &pb::ListResourcesResponse) -> String {
    let mut rows = vec![["SERVER", "URI", "NAME", "MIME", "DESCRIPTION"].map(String::from).to_vec()];
    for x in &r.resources {
        rows.push(vec![
            x.server.clone(),
            cell(&x.uri, 60),
            cell(&x.name, 30),
            if x.mime_type.is_empty() { "-".into() } else { cell(&x.mime_type, 30) },
            cell(&x.description, 60),
        ]);
    }
    let mut out = table(rows);
    for e in &r.errors {
        out.push_str(&format!("warning: {}\n", safe(e)));
    }
    out
}

pub(crate) fn templates_table(r: &pb::ListResourceTemplatesResponse) -> String {
    let mut rows = vec![["SERVER", "URI TEMPLATE", "NAME", "DESCRIPTION"].map(String::from).to_vec()];
    for t in &r.templates {
        let description = if t.quarantined {
            format!("[quarantined: {}] {}", cell(&t.quarantine_reason, 50), cell(&t.description, 30))
        } else {
            cell(&t.description, 60)
        };
        rows.push(vec![t.server.clone(), cell(&t.uri_template, 60), cell(&t.name, 30), description]);
    }
    let mut out = table(rows);
    for e in &r.errors {
        out.push_str(&format!("warning: {}\n", safe(e)));
    }
    out
}

pub(crate) fn resources_json(r: &pb::ListResourcesResponse, t: Option<&pb::ListResourceTemplatesResponse>) -> Value {
    let mut errors: Vec<&String> = r.errors.iter().collect();
    let templates = t.map(|t| {
        errors.extend(t.errors.iter());
        t.templates
            .iter()
            .map(|x| {
                json!({"server": x.server, "template": parse_or_null(&x.json), "quarantined": x.quarantined,
                       "quarantine_reason": x.quarantine_reason})
            })
            .collect::<Vec<_>>()
    });
    json!({
        "resources": r.resources.iter().map(|x| json!({"server": x.server, "resource": parse_or_null(&x.json)})).collect::<Vec<_>>(),
        "templates": templates,
        "errors": errors,
    })
}

pub(crate) fn read_json(r: &pb::ReadResourceResponse) -> Value {
    json!({
        "contents": parse_or_null(&r.contents_json),
        "_meta": parse_or_null(&r.meta_json),
        "fromCache": r.from_cache,
        "ttlMs": r.ttl_ms,
    })
}

/// Text contents as text; binary contents as a one-line summary (never raw bytes on a terminal).
pub(crate) fn read_text(r: &pb::ReadResourceResponse) -> String {
    let mut out = String::new();
    if let Value::Array(items) = parse_or_null(&r.contents_json) {
        for it in items {
            if let Some(t) = it.get("text").and_then(Value::as_str) {
                out.push_str(&safe_multiline(t));
            } else {
                let uri = it.get("uri").and_then(Value::as_str).unwrap_or("");
                let mime = it.get("mimeType").and_then(Value::as_str).unwrap_or("application/octet-stream");
                let len = it.get("blob").and_then(Value::as_str).map(str::len).unwrap_or(0);
                out.push_str(&format!("[binary {} ({mime}), {len} base64 characters; use --json]", safe(uri)));
            }
            out.push('\n');
        }
    }
    out
}

pub(crate) fn prompts_table(r: &pb::ListPromptsResponse) -> String {
    let mut rows = vec![["PROMPT", "ARGUMENTS", "DESCRIPTION"].map(String::from).to_vec()];
    for p in &r.prompts {
        let args = match parse_or_null(&p.arguments_json) {
            Value::Array(a) => a
                .iter()
                .filter_map(|a| {
                    let name = a.get("name").and_then(Value::as_str)?;
                    let req = a.get("required").and_then(Value::as_bool).unwrap_or(false);
                    Some(if req { safe(name) } else { format!("[{}]", safe(name)) })
                })
                .collect::<Vec<_>>()
                .join(" "),
            _ => String::new(),
        };
        rows.push(vec![
            p.qualified_name.clone(),
            if args.is_empty() { "-".into() } else { args },
            if p.quarantined {
                format!("[quarantined: {}] {}", cell(&p.quarantine_reason, 60), cell(&p.description, 40))
            } else {
                cell(&p.description, 80)
            },
        ]);
    }
    let mut out = table(rows);
    for e in &r.errors {
        out.push_str(&format!("warning: {}\n", safe(e)));
    }
    out
}

pub(crate) fn prompts_json(r: &pb::ListPromptsResponse) -> Value {
    json!({
        "prompts": r.prompts.iter().map(|p| json!({
            "name": p.qualified_name, "server": p.server, "prompt": p.name, "title": p.title,
            "description": p.description, "arguments": parse_or_null(&p.arguments_json),
            "quarantined": p.quarantined, "quarantine_reason": p.quarantine_reason,
        })).collect::<Vec<_>>(),
        "errors": r.errors,
    })
}

pub(crate) fn prompt_json(r: &pb::GetPromptResponse) -> Value {
    json!({"description": r.description, "messages": parse_or_null(&r.messages_json)})
}

/// Each message as `role: text`; non-text content as one JSON line.
pub(crate) fn prompt_text(r: &pb::GetPromptResponse) -> String {
    let mut out = String::new();
    if let Value::Array(msgs) = parse_or_null(&r.messages_json) {
        for m in msgs {
            let role = m.get("role").and_then(Value::as_str).unwrap_or("?");
            let content = m.get("content").cloned().unwrap_or(Value::Null);
            let body = match content.get("text").and_then(Value::as_str) {
                Some(t) if content.get("type").and_then(Value::as_str) == Some("text") => safe_multiline(t),
                _ => safe(&content.to_string()),
            };
            out.push_str(&format!("{}: {body}\n", safe(role)));
        }
    }
    out
}

pub(crate) fn trust_table(entries: &[pb::TrustEntry]) -> String {
    let mut rows = vec![["TOOL", "MODE", "STATE", "FINGERPRINT", "BY", "REASON"].map(String::from).to_vec()];
    for e in entries {
        let fp = e.fingerprint.strip_prefix("sha256:").unwrap_or(&e.fingerprint);
        rows.push(vec![
            e.qualified_name.clone(),
            e.mode.clone(),
            e.state.clone(),
            fp.chars().take(12).collect(),
            if e.approved_by.is_empty() { "-".into() } else { e.approved_by.clone() },
            if e.reason.is_empty() { "-".into() } else { cell(&e.reason, 100) },
        ]);
    }
    table(rows)
}

pub(crate) fn trust_json(entries: &[pb::TrustEntry]) -> Value {
    Value::Array(
        entries
            .iter()
            .map(|e| {
                json!({
                    "name": e.qualified_name, "server": e.server, "tool": e.tool, "mode": e.mode,
                    "state": e.state, "reason": e.reason, "fingerprint": e.fingerprint,
                    "pinned_fingerprint": e.pinned_fingerprint, "approved_by": e.approved_by,
                    "approved_unix_ms": e.approved_unix_ms, "findings": e.findings,
                })
            })
            .collect(),
    )
}

pub(crate) fn audit_table(records: &[pb::AuditRecord]) -> String {
    let mut rows =
        vec![["TIME (UNIX MS)", "APP", "VIA", "TOOL", "OUTCOME", "DURATION", "ARGS"].map(String::from).to_vec()];
    for r in records {
        let args = r.arguments_sha256.strip_prefix("sha256:").unwrap_or(&r.arguments_sha256);
        // A step of a run: what made it and the run's id (its first 8 hex digits; --json has all).
        let via = if r.via.is_empty() {
            "-".to_owned()
        } else {
            format!("{} {}", cell(&r.via, 40), r.run_id.chars().take(8).collect::<String>())
        };
        rows.push(vec![
            r.unix_ms.to_string(),
            r.app.clone(),
            via,
            cell(&r.tool, 60),
            if r.redactions > 0 { format!("{} ({} redacted)", r.outcome, r.redactions) } else { r.outcome.clone() },
            format!("{}µs", r.duration_us),
            args.chars().take(12).collect(),
        ]);
    }
    table(rows)
}

pub(crate) fn audit_json(records: &[pb::AuditRecord]) -> Value {
    Value::Array(
        records
            .iter()
            .map(|r| {
                json!({
                    "unix_ms": r.unix_ms, "app": r.app, "tool": r.tool, "arguments_sha256": r.arguments_sha256,
                    "outcome": r.outcome, "message": r.message, "duration_us": r.duration_us,
                    "redactions": r.redactions, "via": r.via, "run_id": r.run_id,
                })
            })
            .collect(),
    )
}

/// How `mcpd agent` shows one event: steps to stderr, the answer to stdout.
pub(crate) enum AgentLine {
    Progress(String),
    Answer(String),
}

pub(crate) fn agent_line(ev: &pb::AgentEvent) -> AgentLine {
    use pb::agent_event::Event;
    let i = ev.iteration;
    match &ev.event {
        Some(Event::ModelTurn(t)) => AgentLine::Progress(format!(
            "[{i}] model: {} tool call(s), {} in / {} out tokens{}",
            t.tool_calls,
            t.input_tokens,
            t.output_tokens,
            if t.text.is_empty() { String::new() } else { format!(": {}", cell(&t.text, 100)) }
        )),
        Some(Event::ToolCall(c)) => {
            AgentLine::Progress(format!("[{i}] call {} {}", safe(&c.tool), cell(&c.arguments_json, 100)))
        }
        Some(Event::ToolResult(r)) => AgentLine::Progress(format!(
            "[{i}] {} {}: {}",
            if r.is_error { "error from" } else { "result of" },
            safe(&r.tool),
            cell(&r.text, 100)
        )),
        Some(Event::FinalAnswer(text)) => AgentLine::Answer(safe_multiline(text)),
        Some(Event::LimitReached(l)) => {
            AgentLine::Progress(format!("limit reached: {} ({})", safe(&l.limit), safe(&l.detail)))
        }
        None => AgentLine::Progress(String::new()),
    }
}

pub(crate) fn agent_json(ev: &pb::AgentEvent) -> Value {
    use pb::agent_event::Event;
    let body = match &ev.event {
        Some(Event::ModelTurn(t)) => json!({"type": "model_turn", "text": t.text, "tool_calls": t.tool_calls,
            "input_tokens": t.input_tokens, "output_tokens": t.output_tokens}),
        Some(Event::ToolCall(c)) => json!({"type": "tool_call", "id": c.id, "tool": c.tool,
            "arguments": parse_or_null(&c.arguments_json)}),
        Some(Event::ToolResult(r)) => json!({"type": "tool_result", "id": r.id, "tool": r.tool,
            "is_error": r.is_error, "text": r.text}),
        Some(Event::FinalAnswer(text)) => json!({"type": "final_answer", "text": text}),
        Some(Event::LimitReached(l)) => json!({"type": "limit_reached", "limit": l.limit, "detail": l.detail}),
        None => json!({"type": "unknown"}),
    };
    json!({"run_id": ev.run_id, "iteration": ev.iteration, "event": body})
}

/// Multi-line text a server controls (definitions, diffs), escaped line by line.
pub(crate) fn safe_block(s: &str) -> String {
    let mut out = safe_multiline(s);
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

fn safe_multiline(s: &str) -> String {
    s.split('\n').map(safe).collect::<Vec<_>>().join("\n")
}

pub(crate) fn progress_line(p: &pb::Progress) -> String {
    let amount = match p.total {
        Some(t) if t > 0.0 => format!("{:.0}%", 100.0 * p.progress / t),
        _ => format!("{}", p.progress),
    };
    if p.message.is_empty() { format!("progress {amount}") } else { format!("progress {amount}: {}", safe(&p.message)) }
}

pub(crate) fn event_line(ev: &pb::Event, json: bool) -> String {
    if json {
        return json!({
            "unix_ms": ev.unix_ms, "server": ev.server, "kind": ev.kind,
            "state": state_name(ev.state), "message": ev.message,
        })
        .to_string();
    }
    let state = if ev.state == 0 { String::new() } else { format!(" {}", state_name(ev.state)) };
    format!("{} {} {}{} {}", ev.unix_ms, ev.server, ev.kind, state, safe(&ev.message))
}

/// `mcpd auth status` as a table.
pub(super) fn auth_table(servers: &[pb::AuthServerStatus]) -> String {
    if servers.is_empty() {
        return "no server has an [oauth] table\n".to_owned();
    }
    let mut rows = vec![["SERVER", "GRANT", "STATE", "TOKEN", "EXPIRES", "SCOPES"].map(String::from).to_vec()];
    for s in servers {
        let token = match (s.logged_in, s.login_pending) {
            (_, true) => "login pending",
            (true, _) if s.refreshable => "refreshable",
            (true, _) => "yes",
            (false, _) => "none",
        };
        let now = mcpd::util::unix_ms();
        let expires = match s.expires_unix_ms {
            0 => "-".to_owned(),
            t if t <= now => "expired".to_owned(),
            t => format!("in {}", human_ms(t - now)),
        };
        rows.push(vec![
            safe(&s.server),
            s.grant.clone(),
            s.state.clone(),
            token.to_owned(),
            expires,
            safe(&s.scopes.join(" ")),
        ]);
    }
    table(rows)
}

pub(super) fn auth_json(servers: &[pb::AuthServerStatus]) -> serde_json::Value {
    serde_json::Value::Array(
        servers
            .iter()
            .map(|s| {
                serde_json::json!({
                    "server": s.server, "grant": s.grant, "state": s.state, "logged_in": s.logged_in,
                    "client_id": s.client_id, "scopes": s.scopes, "issuer": s.issuer,
                    "expires_unix_ms": s.expires_unix_ms, "refreshable": s.refreshable,
                    "login_pending": s.login_pending,
                })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_escapes_are_neutralised() {
        assert_eq!(safe("a\u{1b}[31mb"), "a\\u{1b}[31mb");
        assert_eq!(safe("x\u{202e}y"), "x\\u{202e}y");
        assert_eq!(safe("plain"), "plain");
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human_ms(0), "-");
        assert_eq!(human_ms(1500), "1s");
        assert_eq!(human_ms(3_700_000), "1h1m");
    }
}

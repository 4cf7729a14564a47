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
            "mcpd {} (pid {}) up {}, socket {}\n\n",
            d.version,
            d.pid,
            human_ms(d.uptime_ms),
            d.socket_path
        ));
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
            state_name(s.state).into(),
            tools,
            human_ms(s.uptime_ms),
            next_retry(s.next_retry_unix_ms),
            if err.is_empty() { "-".into() } else { err },
        ]);
    }
    out.push_str(&table(rows));
    out
}

pub(crate) fn status_json(st: &pb::StatusResponse) -> Value {
    json!({
        "daemon": st.daemon.as_ref().map(|d| json!({
            "version": d.version, "pid": d.pid, "uptime_ms": d.uptime_ms,
            "config_path": d.config_path, "socket_path": d.socket_path, "state_dir": d.state_dir,
        })),
        "servers": st.servers.iter().map(|s| json!({
            "name": s.name, "transport": s.transport, "target": s.target, "state": state_name(s.state),
            "protocol_version": s.protocol_version, "era": s.era, "tool_count": s.tool_count,
            "stale": s.stale, "last_error": s.last_error, "next_retry_unix_ms": s.next_retry_unix_ms,
            "uptime_ms": s.uptime_ms, "connects": s.connects, "pid": s.pid,
            "server_name": s.server_name, "server_version": s.server_version,
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
        let name = if t.stale { format!("{} (stale)", t.qualified_name) } else { t.qualified_name.clone() };
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
                    "stale": t.stale,
                })
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

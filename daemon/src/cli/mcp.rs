//! `mcpd mcp` (the stdio bridge a host launches) and `mcpd config snippet` (the entry to
//! paste into each host's config).
use std::{path::PathBuf, process::ExitCode};

/// The hosts `mcpd config snippet` knows, by the names users call them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Host {
    ClaudeDesktop,
    ClaudeCode,
    Cursor,
    Vscode,
}

/// Bridges stdin/stdout to the running daemon. Nothing else may write to stdout: it is the
/// host's MCP stream. Messages go to stderr, which hosts show in their MCP logs.
pub(crate) fn bridge(socket: Option<PathBuf>, profile: Option<String>) -> ExitCode {
    let grpc = socket.unwrap_or_else(mcpd_client::default_socket_path);
    let path = mcpd_client::bridge::mcp_socket_path(&grpc);
    // One thread is plenty to copy bytes, and keeps the bridge small beside its host.
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mcpd mcp: cannot start the async runtime: {e}");
            return ExitCode::from(super::EXIT_SOFTWARE);
        }
    };
    let run = mcpd_client::bridge::run(&path, profile.as_deref(), tokio::io::stdin(), tokio::io::stdout());
    match rt.block_on(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ mcpd_client::bridge::BridgeError::NoDaemon { .. }) => {
            eprintln!("mcpd mcp: {e}");
            ExitCode::from(super::EXIT_UNAVAILABLE)
        }
        Err(e) => {
            eprintln!("mcpd mcp: {e}");
            ExitCode::from(super::EXIT_FAILURE)
        }
    }
}

/// The exact config entry for `host`, launching this `mcpd` binary.
pub(crate) fn snippet(host: Host, socket: Option<PathBuf>, profile: Option<String>) -> ExitCode {
    let exe = std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_else(|_| "mcpd".into());
    println!("{}", render(host, &exe, socket.as_deref(), profile.as_deref()));
    ExitCode::SUCCESS
}

fn render(host: Host, exe: &str, socket: Option<&std::path::Path>, profile: Option<&str>) -> String {
    let mut args = vec!["mcp".to_owned()];
    if let Some(p) = profile {
        args.extend(["--profile".to_owned(), p.to_owned()]);
    }
    if let Some(s) = socket {
        args.extend(["--socket".to_owned(), s.display().to_string()]);
    }
    let name = match profile {
        Some(p) => format!("mcpd-{p}"),
        None => "mcpd".to_owned(),
    };
    let pretty = |v: serde_json::Value| serde_json::to_string_pretty(&v).unwrap_or_default();
    match host {
        // claude_desktop_config.json and ~/.cursor/mcp.json share the `mcpServers` shape.
        Host::ClaudeDesktop | Host::Cursor => {
            pretty(serde_json::json!({ "mcpServers": { name: { "command": exe, "args": args } } }))
        }
        // Claude Code takes the same entry from the command line (or a project's .mcp.json).
        Host::ClaudeCode => {
            let quoted: Vec<String> = std::iter::once(exe.to_owned()).chain(args).map(|a| shell_quote(&a)).collect();
            format!("claude mcp add --scope user {name} -- {}", quoted.join(" "))
        }
        // .vscode/mcp.json (or the user settings' `mcp` section) uses `servers` with a type.
        Host::Vscode => {
            pretty(serde_json::json!({ "servers": { name: { "type": "stdio", "command": exe, "args": args } } }))
        }
    }
}

/// `s` quoted for a POSIX shell when it needs it.
fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:@".contains(c)) {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_are_valid_entries_for_each_host() {
        let desktop: serde_json::Value =
            serde_json::from_str(&render(Host::ClaudeDesktop, "/usr/bin/mcpd", None, None)).expect("json");
        assert_eq!(desktop["mcpServers"]["mcpd"]["command"], "/usr/bin/mcpd");
        assert_eq!(desktop["mcpServers"]["mcpd"]["args"], serde_json::json!(["mcp"]));
        let vscode: serde_json::Value =
            serde_json::from_str(&render(Host::Vscode, "/usr/bin/mcpd", None, Some("coding"))).expect("json");
        assert_eq!(vscode["servers"]["mcpd-coding"]["type"], "stdio");
        assert_eq!(vscode["servers"]["mcpd-coding"]["args"], serde_json::json!(["mcp", "--profile", "coding"]));
        let code = render(Host::ClaudeCode, "/opt/my tools/mcpd", Some(std::path::Path::new("/run/m.sock")), None);
        assert_eq!(code, "claude mcp add --scope user mcpd -- '/opt/my tools/mcpd' mcp --socket /run/m.sock");
    }
}

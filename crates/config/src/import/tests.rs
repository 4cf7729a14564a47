//! Tests for `mcpd config import`: the sample files of every client, names,
//! variables, secret handling, skipped servers and that every output loads
//! with mcpd's own config loader.

use std::collections::BTreeMap;
use std::path::Path;

use super::*;
use crate::{Config, ServerConfig, TransportConfig, load_str};

const CLAUDE_DESKTOP: &str = include_str!("../../../../tests/import-samples/claude_desktop_config.json");
const CLAUDE_CODE: &str = include_str!("../../../../tests/import-samples/claude-code.mcp.json");
const CURSOR: &str = include_str!("../../../../tests/import-samples/cursor-mcp.json");
const VSCODE: &str = include_str!("../../../../tests/import-samples/vscode-mcp.json");
const VSCODE_SETTINGS: &str = include_str!("../../../../tests/import-samples/vscode-settings.json");

/// Every secret literal in the samples; none may reach the TOML or the report.
const SAMPLE_SECRETS: &[&str] = &[
    "ghp_EXAMPLEexample0123456789EXAMPLE012345",
    "BSAexampleNotARealKey",
    "patEXAMPLE1234.0123456789abcdef0123456789abcdef",
    "internal-example-key-0001",
    "ntn_EXAMPLE0123456789example0123456789",
    "sk_test_EXAMPLE0123456789abcdefEXAMPLE",
    "example-secret",
    "exampleToken0123456789abcdef",
];

fn run(src: &str, format: Option<Format>) -> Imported {
    match import_from(src, format, Some("sample.json")) {
        Ok(i) => i,
        Err(e) => panic!("import failed: {e}"),
    }
}

/// Loads with exactly the resolver the brief asks for: every `${env:..}` is "x".
fn load_x(toml: &str) -> Config {
    match load_str(toml, Path::new("import.toml"), &|_| Some("x".into())) {
        Ok(c) => c,
        Err(e) => panic!("generated TOML does not load:\n{e}\n---\n{toml}"),
    }
}

/// Loads with every variable resolving to `<NAME>`, which shows where each
/// value comes from.
fn load_named(toml: &str) -> Config {
    match load_str(toml, Path::new("import.toml"), &|n| Some(format!("<{n}>"))) {
        Ok(c) => c,
        Err(e) => panic!("generated TOML does not load:\n{e}\n---\n{toml}"),
    }
}

fn server<'c>(c: &'c Config, name: &str) -> &'c ServerConfig {
    match c.servers.get(name) {
        Some(s) => s,
        None => panic!("no server {name}; have {:?}", c.servers.keys().collect::<Vec<_>>()),
    }
}

struct Stdio {
    command: String,
    args: Vec<String>,
    env: BTreeMap<String, String>,
    cwd: Option<std::path::PathBuf>,
}

fn stdio(s: &ServerConfig) -> Stdio {
    match &s.transport {
        TransportConfig::Stdio { command, args, env, cwd } => Stdio {
            command: command.clone(),
            args: args.clone(),
            env: env.iter().map(|(k, v)| (k.clone(), v.expose().to_owned())).collect(),
            cwd: cwd.clone(),
        },
        other => panic!("expected stdio, got {other:?}"),
    }
}

/// (kind, url, headers) of a remote server.
fn remote(s: &ServerConfig) -> (&'static str, String, BTreeMap<String, String>) {
    let (url, headers) = match &s.transport {
        TransportConfig::Http { url, headers } | TransportConfig::Sse { url, headers } => (url, headers),
        other => panic!("expected a remote server, got {other:?}"),
    };
    let headers = headers.iter().map(|(k, v)| (k.clone(), v.expose().to_owned())).collect();
    (s.transport.kind(), url.clone(), headers)
}

fn has_note(imp: &Imported, kind: NoteKind, server: Option<&str>, needle: &str) -> bool {
    imp.report.iter().any(|n| n.kind == kind && n.server.as_deref() == server && n.message.contains(needle))
}

#[track_caller]
fn assert_note(imp: &Imported, kind: NoteKind, server: Option<&str>, needle: &str) {
    assert!(
        has_note(imp, kind, server, needle),
        "no {kind:?} note for {server:?} containing {needle:?}; report:\n{}",
        report_text(imp)
    );
}

fn report_text(imp: &Imported) -> String {
    imp.report.iter().map(|n| n.to_string()).collect::<Vec<_>>().join("\n")
}

#[track_caller]
fn assert_no_leak(imp: &Imported, secrets: &[&str]) {
    let report = report_text(imp);
    for s in secrets {
        assert!(!imp.toml.contains(s), "secret {s:?} leaked into the TOML:\n{}", imp.toml);
        assert!(!report.contains(s), "secret {s:?} leaked into the report:\n{report}");
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

// ---------------------------------------------------------------------------
// The sample files.

#[test]
fn claude_desktop_sample() {
    let imp = run(CLAUDE_DESKTOP, None);
    assert_eq!(imp.format, Format::ClaudeDesktop);
    assert_eq!(imp.servers, strings(&["filesystem", "github", "brave-search", "sqlite", "weather-local"]));
    assert_no_leak(&imp, SAMPLE_SECRETS);

    let c = load_x(&imp.toml);
    assert_eq!(c.servers.len(), 5);
    let fs = stdio(server(&c, "filesystem"));
    assert_eq!(fs.command, "npx");
    assert_eq!(
        fs.args,
        strings(&["-y", "@modelcontextprotocol/server-filesystem", "/Users/alice/Desktop", "/Users/alice/Downloads"])
    );
    assert!(fs.env.is_empty());

    let c = load_named(&imp.toml);
    let gh = stdio(server(&c, "github"));
    assert_eq!(gh.command, "docker");
    // The bare `-e NAME` keeps pointing at the variable docker forwards.
    assert_eq!(gh.args[4], "GITHUB_PERSONAL_ACCESS_TOKEN");
    assert_eq!(gh.env.get("GITHUB_PERSONAL_ACCESS_TOKEN").map(String::as_str), Some("<GITHUB_PERSONAL_ACCESS_TOKEN>"));
    let brave = stdio(server(&c, "brave-search"));
    assert_eq!(brave.env.get("BRAVE_API_KEY").map(String::as_str), Some("<BRAVE_API_KEY>"));
    let weather = server(&c, "weather-local");
    assert!(!weather.enabled);
    let w = stdio(weather);
    // Not secrets: a log level, and a number under a TOKEN name.
    assert_eq!(w.env.get("LOG_LEVEL").map(String::as_str), Some("debug"));
    assert_eq!(w.env.get("MAX_TOKENS").map(String::as_str), Some("4096"));
    assert!(server(&c, "sqlite").enabled);

    assert_note(&imp, NoteKind::Renamed, Some("github"), "was \"GitHub\"");
    assert_note(&imp, NoteKind::Renamed, Some("brave-search"), "was \"brave_search\"");
    assert_note(&imp, NoteKind::Renamed, Some("weather-local"), "was \"Weather (local)\"");
    assert_note(&imp, NoteKind::InlineSecret, Some("github"), "export GITHUB_PERSONAL_ACCESS_TOKEN");
    assert_note(&imp, NoteKind::InlineSecret, Some("brave-search"), "export BRAVE_API_KEY");
    assert_note(&imp, NoteKind::NotMapped, Some("weather-local"), "key \"autoApprove\"");
    assert!(!has_note(&imp, NoteKind::InlineSecret, Some("weather-local"), ""));
    // The header comment names the source, notes become comments.
    assert!(imp.toml.starts_with("# mcpd servers imported from \"sample.json\" (Claude Desktop format)"));
    assert!(imp.toml.contains("# renamed: was \"GitHub\""));
    assert!(imp.toml.contains("GITHUB_PERSONAL_ACCESS_TOKEN = \"${env:GITHUB_PERSONAL_ACCESS_TOKEN}\""));
}

#[test]
fn claude_code_sample() {
    let imp = run(CLAUDE_CODE, None);
    assert_eq!(imp.format, Format::ClaudeCode);
    assert_eq!(imp.servers, strings(&["sentry", "linear", "api-server", "db", "airtable", "internal"]));
    assert_no_leak(&imp, SAMPLE_SECRETS);
    load_x(&imp.toml);

    let c = load_named(&imp.toml);
    let (kind, url, headers) = remote(server(&c, "sentry"));
    assert_eq!((kind, url.as_str()), ("http", "https://mcp.sentry.dev/mcp"));
    assert!(headers.is_empty());
    assert_eq!(remote(server(&c, "linear")).0, "sse");

    let (kind, url, headers) = remote(server(&c, "api-server"));
    assert_eq!(kind, "http");
    assert_eq!(url, "https://<API_HOST>/mcp");
    assert_eq!(headers.get("Authorization").map(String::as_str), Some("Bearer <API_KEY>"));
    assert_eq!(headers.get("X-Team").map(String::as_str), Some("platform"));
    assert_note(&imp, NoteKind::Info, Some("api-server"), "the default \"api.example.com\" of ${API_HOST:-...}");

    let db = stdio(server(&c, "db"));
    assert_eq!(db.args, strings(&["-y", "@bytebase/dbhub", "--dsn", "<DATABASE_URL>"]));
    assert_eq!(db.env.get("DBHUB_LOG_LEVEL").map(String::as_str), Some("<LOG_LEVEL>"));
    assert_note(&imp, NoteKind::Info, Some("db"), "LOG_LEVEL must be set");

    let air = stdio(server(&c, "airtable"));
    assert_eq!(air.env.get("AIRTABLE_API_KEY").map(String::as_str), Some("<AIRTABLE_API_KEY>"));
    assert_note(&imp, NoteKind::InlineSecret, Some("airtable"), "export AIRTABLE_API_KEY");

    let (_, _, headers) = remote(server(&c, "internal"));
    assert_eq!(headers.get("X-Api-Key").map(String::as_str), Some("<MCPD_INTERNAL_X_API_KEY>"));
    assert_note(&imp, NoteKind::InlineSecret, Some("internal"), "headers.X-Api-Key");
    assert_note(&imp, NoteKind::NotMapped, Some("internal"), "key \"oauth\"");
    assert_note(&imp, NoteKind::Info, None, "API_HOST, API_KEY");
}

#[test]
fn cursor_sample() {
    let imp = run(CURSOR, None);
    assert_eq!(imp.format, Format::Cursor);
    assert_eq!(imp.servers, strings(&["context7", "notion", "local-docs", "playwright-sse", "stripe", "figma"]));
    assert_no_leak(&imp, SAMPLE_SECRETS);
    load_x(&imp.toml);

    let c = load_named(&imp.toml);
    let (kind, _, headers) = remote(server(&c, "context7"));
    assert_eq!(kind, "http");
    assert_eq!(headers.get("CONTEXT7_API_KEY").map(String::as_str), Some("<CONTEXT7_API_KEY>"));
    // A reference is not an inline secret.
    assert!(!has_note(&imp, NoteKind::InlineSecret, Some("context7"), ""));

    let notion = stdio(server(&c, "notion"));
    assert_eq!(notion.env.get("NOTION_TOKEN").map(String::as_str), Some("<NOTION_TOKEN>"));

    let docs = stdio(server(&c, "local-docs"));
    assert_eq!(docs.args, strings(&["<MCPD_WORKSPACE_FOLDER>/tools/docs-server.js", "--home", "<HOME>/docs"]));
    assert_note(&imp, NoteKind::Export, Some("local-docs"), "export MCPD_WORKSPACE_FOLDER");
    assert_note(&imp, NoteKind::NotMapped, Some("local-docs"), "key \"envFile\"");

    assert_eq!(remote(server(&c, "playwright-sse")).0, "sse");
    assert_note(&imp, NoteKind::Info, Some("playwright-sse"), "ends in /sse");

    let stripe = stdio(server(&c, "stripe"));
    assert_eq!(stripe.args, strings(&["-y", "@stripe/mcp", "--tools=all", "--api-key=<MCPD_STRIPE_API_KEY>"]));
    assert_note(&imp, NoteKind::InlineSecret, Some("stripe"), "args[3]");

    assert_eq!(remote(server(&c, "figma")).0, "http");
    assert_note(&imp, NoteKind::NotMapped, Some("figma"), "key \"auth\" (mcpd does not do OAuth");
}

#[test]
fn vscode_sample_with_comments_trailing_commas_and_inputs() {
    let imp = run(VSCODE, None);
    assert_eq!(imp.format, Format::VsCode);
    assert_eq!(imp.servers, strings(&["github", "perplexity", "playwright", "fetch", "memory"]));
    load_x(&imp.toml);

    let c = load_named(&imp.toml);
    let (kind, url, headers) = remote(server(&c, "github"));
    assert_eq!((kind, url.as_str()), ("http", "https://api.githubcopilot.com/mcp/"));
    assert_eq!(headers.get("Authorization").map(String::as_str), Some("Bearer <MCPD_INPUT_GITHUB_PAT>"));
    assert_note(
        &imp,
        NoteKind::Export,
        Some("github"),
        "the VS Code input \"github_pat\" (\"GitHub Personal Access Token\") is now read from \
         ${env:MCPD_INPUT_GITHUB_PAT}",
    );

    let pplx = stdio(server(&c, "perplexity"));
    assert_eq!(pplx.env.get("PERPLEXITY_API_KEY").map(String::as_str), Some("<MCPD_INPUT_PERPLEXITY_KEY>"));
    assert_note(&imp, NoteKind::Export, Some("perplexity"), "(\"Perplexity API Key\")");
    assert_note(&imp, NoteKind::Renamed, Some("perplexity"), "was \"Perplexity\"");

    let pw = stdio(server(&c, "playwright"));
    assert_eq!(pw.args[3], "<MCPD_WORKSPACE_FOLDER>/.playwright");
    assert_eq!(pw.cwd, None);
    assert_note(&imp, NoteKind::NotMapped, Some("playwright"), "key \"cwd\"");
    assert_note(&imp, NoteKind::NotMapped, Some("playwright"), "key \"dev\"");

    // Comment markers inside strings survive the JSONC stripping.
    let fetch = stdio(server(&c, "fetch"));
    assert_eq!(
        fetch.env.get("USER_AGENT").map(String::as_str),
        Some("Mozilla/5.0 (see https://example.com/bot) // not a comment /* nor this */")
    );

    let memory = stdio(server(&c, "memory"));
    assert_eq!(
        memory.env.get("MEMORY_FILE_PATH").map(String::as_str),
        Some("<MCPD_WORKSPACE_FOLDER>/.vscode/memory.json")
    );
    assert_note(&imp, NoteKind::NotMapped, Some("memory"), "key \"envFile\"");
}

#[test]
fn vscode_settings_sample() {
    let imp = run(VSCODE_SETTINGS, None);
    assert_eq!(imp.format, Format::VsCode);
    assert_eq!(imp.servers, strings(&["brave-search", "remote-tools", "time"]));
    assert_no_leak(&imp, SAMPLE_SECRETS);
    load_x(&imp.toml);

    let c = load_named(&imp.toml);
    let brave = stdio(server(&c, "brave-search"));
    assert_eq!(brave.env.get("BRAVE_API_KEY").map(String::as_str), Some("<MCPD_INPUT_BRAVE_KEY>"));
    let (kind, _, headers) = remote(server(&c, "remote-tools"));
    assert_eq!(kind, "sse");
    assert_eq!(headers.get("Authorization").map(String::as_str), Some("Bearer <MCPD_REMOTE_TOOLS_AUTHORIZATION>"));
    assert_note(&imp, NoteKind::InlineSecret, Some("remote-tools"), "the token only; \"Bearer \" stays in the file");
    let time = stdio(server(&c, "time"));
    assert_eq!(time.args, strings(&["mcp-server-time", "--local-timezone=<TZ>"]));
}

#[test]
fn every_sample_loads_with_the_brief_resolver_and_leaks_nothing() {
    for src in [CLAUDE_DESKTOP, CLAUDE_CODE, CURSOR, VSCODE, VSCODE_SETTINGS] {
        let imp = run(src, None);
        let c = load_x(&imp.toml);
        assert_eq!(c.servers.keys().cloned().collect::<Vec<_>>().len(), imp.servers.len());
        assert_no_leak(&imp, SAMPLE_SECRETS);
        // The report lists kinds in order.
        assert!(imp.report.windows(2).all(|w| w[0].kind <= w[1].kind));
    }
}

// ---------------------------------------------------------------------------
// Format detection and errors.

#[test]
fn detection_by_shape() {
    let cases = [
        (r#"{"mcpServers": {"a": {"command": "x"}}}"#, Format::ClaudeDesktop),
        (r#"{"mcpServers": {"a": {"type": "stdio", "command": "x"}}}"#, Format::ClaudeCode),
        (r#"{"mcpServers": {"a": {"command": "x", "args": ["${HOME}"]}}}"#, Format::ClaudeCode),
        (r#"{"mcpServers": {"a": {"command": "x", "env": {"A": "${env:A}"}}}}"#, Format::Cursor),
        (r#"{"mcpServers": {"a": {"url": "https://h/mcp"}}}"#, Format::Cursor),
        (r#"{"servers": {"a": {"type": "stdio", "command": "x"}}}"#, Format::VsCode),
        (r#"{"x": 1, "mcp": {"servers": {"a": {"command": "x"}}}}"#, Format::VsCode),
    ];
    for (src, expected) in cases {
        assert_eq!(run(src, None).format, expected, "{src}");
    }
}

#[test]
fn forced_format_is_used_and_must_fit() {
    let src = r#"{"mcpServers": {"a": {"command": "x"}}}"#;
    assert_eq!(run(src, Some(Format::Cursor)).format, Format::Cursor);
    assert!(matches!(import(src, Some(Format::VsCode)), Err(ImportError::FormatMismatch { format: "vscode", .. })));
    let vs = r#"{"servers": {"a": {"command": "x"}}}"#;
    assert!(matches!(import(vs, Some(Format::ClaudeCode)), Err(ImportError::FormatMismatch { .. })));
    assert_eq!("claude-code".parse::<Format>().ok(), Some(Format::ClaudeCode));
    assert!(matches!("zed".parse::<Format>(), Err(ImportError::UnknownFormat(_))));
    for (f, name) in Format::ALL.iter().zip(Format::NAMES) {
        assert_eq!(f.as_str(), name);
    }
}

#[test]
fn unusable_inputs_are_errors() {
    assert!(matches!(import("{", None), Err(ImportError::Json(_))));
    assert!(matches!(import("[1, 2]", None), Err(ImportError::Unrecognised)));
    assert!(matches!(import(r#"{"servers2": {}}"#, None), Err(ImportError::Unrecognised)));
    assert!(matches!(import(r#"{"mcpServers": []}"#, None), Err(ImportError::NotAnObject { .. })));
    assert!(matches!(import("{/* open", None), Err(ImportError::UnterminatedComment { line: 1 })));
    // Errors never carry input text.
    let e = import(r#"{"mcpServers": {"a": {"env": {"K": "sk-SECRETSECRETSECRETSECRET"}} x}"#, None);
    match e {
        Err(e) => assert!(!e.to_string().contains("SECRET"), "{e}"),
        Ok(_) => panic!("expected a JSON error"),
    }
}

#[test]
fn nothing_importable_gives_no_servers_but_valid_toml() {
    let imp = run(r#"{"mcpServers": {}}"#, None);
    assert!(imp.servers.is_empty());
    assert!(load_x(&imp.toml).servers.is_empty());
}

#[test]
fn unmappable_servers_are_skipped_and_named() {
    let src = r#"{"mcpServers": {
        "empty": {},
        "notobj": 3,
        "badargs": {"command": "x", "args": ["a", {"b": 1}]},
        "ws": {"type": "ws", "url": "ws://h/mcp"},
        "stdio-no-cmd": {"type": "stdio", "url": "https://h/mcp"},
        "http-no-url": {"type": "http", "command": "x"},
        "ok": {"command": "x", "args": ["a", 1, true]}
    }}"#;
    let imp = run(src, None);
    assert_eq!(imp.servers, strings(&["ok"]));
    for (name, why) in [
        ("\"empty\"", "neither \"command\" nor \"url\""),
        ("\"notobj\"", "not a JSON object"),
        ("\"badargs\"", "args[1] is not a string"),
        ("\"ws\"", "not an http:// or https:// URL"),
        ("\"stdio-no-cmd\"", "no \"command\""),
        ("\"http-no-url\"", "no \"url\""),
    ] {
        assert_note(&imp, NoteKind::Skipped, Some(name), why);
    }
    let c = load_x(&imp.toml);
    assert_eq!(stdio(server(&c, "ok")).args, strings(&["a", "1", "true"]));
}

// ---------------------------------------------------------------------------
// Names.

#[test]
fn names_are_sanitised_truncated_and_unique() {
    assert_eq!(sanitize_name("My Server!"), "my-server");
    assert_eq!(sanitize_name("__x__y__"), "x-y");
    assert_eq!(sanitize_name("Ünïcødé"), "n-c-d");
    assert_eq!(sanitize_name("!!!"), "server");
    assert_eq!(sanitize_name(&"a".repeat(40)), "a".repeat(32));
    assert_eq!(sanitize_name(&format!("{}-b", "a".repeat(31))), "a".repeat(31));

    // Valid names keep themselves even when a later one would sanitise to them.
    let names = assign_names(&["GitHub", "github", "git_hub", "git-hub"]);
    assert_eq!(names, strings(&["github-2", "github", "git-hub-2", "git-hub"]));
    let long = "a".repeat(40);
    let names = assign_names(&[&long, &long.to_uppercase()]);
    assert_eq!(names[0], "a".repeat(32));
    assert_eq!(names[1], format!("{}-2", "a".repeat(30)));
    assert!(names.iter().all(|n| valid_name(n)));
}

#[test]
fn renames_are_reported_with_the_reason() {
    let imp = run(r#"{"mcpServers": {"Files": {"command": "x"}, "files": {"command": "y"}}}"#, None);
    assert_eq!(imp.servers, strings(&["files-2", "files"]));
    assert_note(
        &imp,
        NoteKind::Renamed,
        Some("files-2"),
        "was \"Files\" (names must match [a-z0-9-]{1,32}; \"files\" was taken)",
    );
    load_x(&imp.toml);
}

#[test]
fn hostile_names_cannot_inject_toml() {
    let src = r#"{"mcpServers": {"evil\n[servers.injected]\ncommand = \"rm\"": {"command": "x"}}}"#;
    let imp = run(src, None);
    let c = load_x(&imp.toml);
    assert_eq!(c.servers.len(), 1);
    assert!(!c.servers.contains_key("injected"));
    assert!(imp.report.iter().all(|n| !n.to_string().contains('\n')));
}

// ---------------------------------------------------------------------------
// Variables.

#[test]
fn variables_are_parsed_in_every_client_syntax() {
    let env = |n: &str, d: Option<&str>| Piece::Var(Var::Env { name: n.to_owned(), default: d.map(str::to_owned) });
    assert_eq!(parse_value("${A}"), vec![env("A", None)]);
    assert_eq!(parse_value("${env:A}/x"), vec![env("A", None), Piece::Lit("/x".into())]);
    assert_eq!(parse_value("${A:-x:y}"), vec![env("A", Some("x:y"))]);
    assert_eq!(parse_value("${A:-${B}}"), vec![env("A", Some("${B}"))]);
    assert_eq!(parse_value("${input:k}"), vec![Piece::Var(Var::Input("k".into()))]);
    assert_eq!(parse_value("${userHome}"), vec![Piece::Var(Var::Home)]);
    assert_eq!(parse_value("${workspaceFolder}"), vec![Piece::Var(Var::Workspace)]);
    assert_eq!(parse_value("${/}"), vec![Piece::Var(Var::PathSep)]);
    assert_eq!(parse_value("${command:x}"), vec![Piece::Var(Var::Unknown("command:x".into()))]);
    assert_eq!(parse_value("a ${ b"), vec![Piece::Lit("a ${ b".into())]);
    assert_eq!(parse_value("$HOME"), vec![Piece::Lit("$HOME".into())]);
}

#[test]
fn literal_dollar_braces_survive_as_mcpd_escapes() {
    let src = r#"{"mcpServers": {"a": {"command": "x", "args": ["echo ${", "$${", "price $5"]}}}"#;
    let imp = run(src, None);
    assert!(imp.toml.contains(r#""echo $${""#), "{}", imp.toml);
    let c = load_x(&imp.toml);
    assert_eq!(stdio(server(&c, "a")).args, strings(&["echo ${", "$${", "price $5"]));
}

#[test]
fn a_dollar_right_before_a_variable_is_dropped_and_reported() {
    let imp = run(r#"{"mcpServers": {"a": {"command": "x", "args": ["$${HOME}"]}}}"#, None);
    let c = load_named(&imp.toml);
    assert_eq!(stdio(server(&c, "a")).args, strings(&["<HOME>"]));
    assert_note(&imp, NoteKind::NotMapped, Some("a"), "right before a variable");
}

#[test]
fn unknown_editor_variables_become_env_placeholders() {
    let src = r#"{"servers": {"a": {"command": "x", "args": ["${config:python.path}"]}}}"#;
    let imp = run(src, None);
    let c = load_named(&imp.toml);
    assert_eq!(stdio(server(&c, "a")).args, strings(&["<MCPD_VAR_CONFIG_PYTHON_PATH>"]));
    assert_note(&imp, NoteKind::NotMapped, Some("a"), "${config:python.path} is a VS Code variable");
}

#[test]
fn cwd_keeps_env_references_and_notes_relative_paths() {
    let src = r#"{"mcpServers": {
        "a": {"command": "x", "cwd": "${HOME}/srv"},
        "b": {"command": "x", "cwd": "srv"}
    }}"#;
    let imp = run(src, None);
    let c = load_named(&imp.toml);
    assert_eq!(stdio(server(&c, "a")).cwd, Some("<HOME>/srv".into()));
    assert_eq!(stdio(server(&c, "b")).cwd, Some("srv".into()));
    assert_note(&imp, NoteKind::Info, Some("b"), "is relative");
}

// ---------------------------------------------------------------------------
// Secrets.

#[test]
fn secret_values_by_shape() {
    for s in [
        "Bearer abcdefgh12345",
        "sk-proj-abcdefghijklmnopqrstuvwx",
        "ghp_0123456789abcdefghijABCDEFGHIJ012345",
        "xoxb-1234-5678-abcdefghijkl",
        "AKIAIOSFODNN7EXAMPLE",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlc2ln",
        "aB3dE5fG7hJ9kL1mN3pQ5rS7tV9w",
        "0123456789abcdef0123456789abcdef",
    ] {
        assert!(looks_secret_value(s), "{s} should look secret");
    }
    for s in [
        "",
        "npx",
        "@modelcontextprotocol/server-filesystem",
        "ghcr.io/github/github-mcp-server",
        "/Users/alice/Library/Application Support/x",
        "https://mcp.example.com/mcp",
        "123e4567-e89b-12d3-a456-426614174000",
        "mcp-server-kubernetes-v2",
        "Bearer ${TOKEN}",
        "Bearer short",
        "debug",
    ] {
        assert!(!looks_secret_value(s), "{s} should not look secret");
    }
}

#[test]
fn secret_names_and_harmless_values() {
    assert!(secret_name("GITHUB_TOKEN") && secret_name("api-key") && secret_name("Authorization"));
    assert!(secret_name("DB_PASSWORD") && secret_name("GOOGLE_APPLICATION_CREDENTIALS"));
    assert!(!secret_name("LOG_LEVEL") && !secret_name("PWD"));
    assert!(harmless("MAX_TOKENS", "4096"));
    assert!(!harmless("DB_PASSWORD", "1234"));
    assert!(harmless("KEY_FILE", "/etc/ssl/key.pem"));
    assert!(harmless("AUTH_ENABLED", "true"));
    assert!(harmless("AUTH_URL", "https://auth.example.com/oauth"));
    assert!(!harmless("AUTH_URL", "https://auth.example.com/?token=abcdefgh"));
    assert!(!harmless("API_KEY", "abc"));
}

#[test]
fn url_secrets_are_moved_out() {
    let src = r#"{"mcpServers": {
        "q": {"url": "https://mcp.example.com/mcp?api_key=abc123&region=eu"},
        "p": {"url": "https://actions.example.com/mcp/aB3dE5fG7hJ9kL1mN3pQ5rS7tV9w/sse"},
        "u": {"url": "https://bob:hunter2@mcp.example.com/mcp"}
    }}"#;
    let imp = run(src, None);
    assert_no_leak(&imp, &["abc123", "aB3dE5fG7hJ9kL1mN3pQ5rS7tV9w", "hunter2"]);
    let c = load_named(&imp.toml);
    assert_eq!(remote(server(&c, "q")).1, "https://mcp.example.com/mcp?api_key=<MCPD_Q_URL_API_KEY>&region=eu");
    assert_eq!(remote(server(&c, "p")).1, "https://actions.example.com/mcp/<MCPD_P_URL_TOKEN>/sse");
    assert_eq!(remote(server(&c, "p")).0, "sse");
    assert_eq!(remote(server(&c, "u")).1, "https://bob:<MCPD_U_URL_PASSWORD>@mcp.example.com/mcp");
    assert_note(&imp, NoteKind::InlineSecret, Some("q"), "query parameter \"api_key\"");
}

#[test]
fn bridge_arguments_lose_their_secrets() {
    let src = r#"{"mcpServers": {"remote": {"command": "npx", "args": [
        "mcp-remote", "https://mcp.example.com/sse?token=abcdef123456",
        "--header", "Authorization: Bearer tok_0123456789abcdef",
        "--password", "correct-horse-battery",
        "--verbose", "somedir"
    ]}}}"#;
    let imp = run(src, None);
    assert_no_leak(&imp, &["abcdef123456", "tok_0123456789abcdef", "correct-horse-battery"]);
    let c = load_named(&imp.toml);
    assert_eq!(
        stdio(server(&c, "remote")).args,
        strings(&[
            "mcp-remote",
            "https://mcp.example.com/sse?token=<MCPD_REMOTE_URL_TOKEN>",
            "--header",
            "Authorization: Bearer <MCPD_REMOTE_AUTHORIZATION>",
            "--password",
            "<MCPD_REMOTE_PASSWORD>",
            "--verbose",
            "somedir",
        ])
    );
}

#[test]
fn docker_env_arguments_keep_the_variable_name() {
    let src = r#"{"mcpServers": {"d": {"command": "docker", "args": ["run", "-e", "API_TOKEN=abcdefgh12345678"]}}}"#;
    let imp = run(src, None);
    assert_no_leak(&imp, &["abcdefgh12345678"]);
    let c = load_named(&imp.toml);
    assert_eq!(stdio(server(&c, "d")).args, strings(&["run", "-e", "API_TOKEN=<API_TOKEN>"]));
}

#[test]
fn secret_names_never_collide_with_other_values() {
    let src = r#"{"mcpServers": {
        "a": {"command": "x", "env": {"API_KEY": "first-secret-value"}},
        "b": {"command": "x", "env": {"API_KEY": "second-secret-value"}},
        "c": {"command": "x", "env": {"API_KEY": "first-secret-value"}},
        "d": {"command": "x", "env": {"GITHUB_TOKEN": "${GITHUB_TOKEN}"}},
        "e": {"command": "x", "env": {"GITHUB_TOKEN": "literal-token-value"}}
    }}"#;
    let imp = run(src, None);
    let c = load_named(&imp.toml);
    let env = |s: &str, k: &str| stdio(server(&c, s)).env.get(k).cloned().unwrap_or_default();
    assert_eq!(env("a", "API_KEY"), "<API_KEY>");
    assert_eq!(env("b", "API_KEY"), "<MCPD_B_API_KEY>");
    // The same secret twice shares one variable.
    assert_eq!(env("c", "API_KEY"), "<API_KEY>");
    // A name the source reads itself is never reused for a different secret.
    assert_eq!(env("d", "GITHUB_TOKEN"), "<GITHUB_TOKEN>");
    assert_eq!(env("e", "GITHUB_TOKEN"), "<MCPD_E_GITHUB_TOKEN>");
}

#[test]
fn mixed_values_with_a_secret_move_as_a_whole() {
    let src = r#"{"mcpServers": {"a": {"command": "x", "env": {"DSN": "postgres://u:${USER}@h/db?k=aB3dE5fG7hJ9kL1mN3pQ5rS7tV9w"}}}}"#;
    let imp = run(src, None);
    assert_no_leak(&imp, &["aB3dE5fG7hJ9kL1mN3pQ5rS7tV9w"]);
    let c = load_named(&imp.toml);
    assert_eq!(stdio(server(&c, "a")).env.get("DSN").map(String::as_str), Some("<DSN>"));
    assert_note(&imp, NoteKind::InlineSecret, Some("a"), "the whole value");
}

// ---------------------------------------------------------------------------
// Other keys.

#[test]
fn timeouts_disabled_and_tool_lists() {
    let src = r#"{"mcpServers": {
        "a": {"command": "x", "timeout": 60, "disabled": true, "alwaysAllow": ["t"]},
        "b": {"command": "x", "timeout": 30000, "includeTools": ["read_*", "bad tool()"], "excludeTools": ["rm"]},
        "c": {"command": "x", "timeout": 1500, "disabledTools": ["write_file"], "transport": "x"}
    }}"#;
    let imp = run(src, None);
    let c = load_x(&imp.toml);
    let a = server(&c, "a");
    assert_eq!(a.call_timeout, std::time::Duration::from_secs(60));
    assert!(!a.enabled);
    let b = server(&c, "b");
    assert_eq!(b.call_timeout, std::time::Duration::from_secs(30));
    assert_eq!(b.tools.allow, strings(&["read_*"]));
    assert_eq!(b.tools.deny, strings(&["rm"]));
    let cc = server(&c, "c");
    assert_eq!(cc.call_timeout, std::time::Duration::from_millis(1500));
    assert_eq!(cc.tools.deny, strings(&["write_file"]));
    assert_note(&imp, NoteKind::NotMapped, Some("a"), "key \"alwaysAllow\"");
    assert_note(&imp, NoteKind::NotMapped, Some("b"), "item \"bad tool()\"");
    assert_note(&imp, NoteKind::NotMapped, Some("c"), "key \"transport\" (mcpd has no equivalent)");
    assert_note(&imp, NoteKind::Info, Some("a"), "read as seconds");
}

#[test]
fn transport_keys_of_the_other_kind_are_not_mapped() {
    let src = r#"{"mcpServers": {
        "s": {"command": "x", "url": "https://h/mcp", "headers": {"A": "b"}},
        "h": {"type": "http", "url": "https://h/mcp", "command": "x", "env": {"A": "b"}, "args": ["y"], "cwd": "/"}
    }}"#;
    let imp = run(src, None);
    let c = load_x(&imp.toml);
    assert_eq!(server(&c, "s").transport.kind(), "stdio");
    assert_eq!(server(&c, "h").transport.kind(), "http");
    for key in ["url", "headers"] {
        assert_note(&imp, NoteKind::NotMapped, Some("s"), &format!("key \"{key}\""));
    }
    for key in ["command", "env", "args", "cwd"] {
        assert_note(&imp, NoteKind::NotMapped, Some("h"), &format!("key \"{key}\""));
    }
}

#[test]
fn shell_style_commands_are_split() {
    let imp = run(r#"{"mcpServers": {"a": {"command": "npx -y pkg", "args": ["--x"]}}}"#, None);
    let c = load_x(&imp.toml);
    let a = stdio(server(&c, "a"));
    assert_eq!((a.command.as_str(), a.args), ("npx", strings(&["-y", "pkg", "--x"])));
    assert_note(&imp, NoteKind::Info, Some("a"), "without a shell");
}

#[test]
fn bad_env_and_header_entries_are_dropped_and_named() {
    let src = r#"{"mcpServers": {
        "s": {"command": "x", "env": {"A=B": "1", "N": null, "O": {"x": 1}, "NUM": 3}},
        "h": {"type": "http", "url": "https://h/mcp", "headers": {"Bad Name": "x", "X-Ok": "vällue", "X-Fine": "v"}}
    }}"#;
    let imp = run(src, None);
    let c = load_x(&imp.toml);
    let s = stdio(server(&c, "s"));
    assert_eq!(s.env.keys().cloned().collect::<Vec<_>>(), strings(&["NUM"]));
    assert_eq!(s.env.get("NUM").map(String::as_str), Some("3"));
    let (_, _, headers) = remote(server(&c, "h"));
    assert_eq!(headers.keys().cloned().collect::<Vec<_>>(), strings(&["X-Fine"]));
    assert_note(&imp, NoteKind::NotMapped, Some("s"), "key \"env.A=B\"");
    assert_note(&imp, NoteKind::NotMapped, Some("s"), "key \"env.N\" (null");
    assert_note(&imp, NoteKind::NotMapped, Some("h"), "not a valid HTTP header name");
    assert_note(&imp, NoteKind::NotMapped, Some("h"), "characters HTTP headers cannot carry");
}

#[test]
fn toml_strings_escape_everything_unsafe() {
    assert_eq!(toml_str("a\"b\\c\nd\te\u{1}"), r#""a\"b\\c\nd\te\u0001""#);
    assert_eq!(toml_key("API_KEY"), "API_KEY");
    assert_eq!(toml_key("my key"), "\"my key\"");
    assert_eq!(toml_key(""), "\"\"");
}

#[test]
fn values_mcpd_rejects_skip_only_their_server() {
    let src = r#"{"mcpServers": {
        "nohost": {"url": "https:///mcp"},
        "fine": {"url": "https://h/mcp"}
    }}"#;
    let imp = run(src, None);
    assert_eq!(imp.servers, strings(&["fine"]));
    assert_note(&imp, NoteKind::Skipped, Some("\"nohost\""), "do not pass mcpd's config check");
    load_x(&imp.toml);
}

#[test]
fn absurd_timeouts_and_odd_variables_are_not_mapped() {
    let src = r#"{"mcpServers": {
        "tiny": {"command": "x", "timeout": 0.0001},
        "huge": {"command": "x", "timeout": 1e20},
        "text": {"command": "x", "timeout": "60"},
        "odd": {"command": "x", "args": ["${env:${X}}"]}
    }}"#;
    let imp = run(src, None);
    assert_eq!(imp.servers.len(), 4);
    for s in ["tiny", "huge", "text"] {
        assert_note(&imp, NoteKind::NotMapped, Some(s), "key \"timeout\"");
    }
    let c = load_x(&imp.toml);
    assert_eq!(server(&c, "huge").call_timeout, crate::DaemonConfig::default().call_timeout);
    assert_note(&imp, NoteKind::NotMapped, Some("odd"), "mcpd cannot resolve");
}

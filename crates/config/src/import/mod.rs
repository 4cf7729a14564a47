//! `mcpd config import`: turns other clients' `mcpServers` JSON into mcpd TOML.
//!
//! Reads the MCP server lists of Claude Desktop (`claude_desktop_config.json`),
//! Claude Code (`.mcp.json`), Cursor (`mcp.json`) and VS Code (`.vscode/mcp.json`
//! or the `"mcp"` key of `settings.json`, JSONC allowed) and writes the same
//! servers as `[servers.NAME]` tables. Steps:
//!
//! 1. strip JSONC comments and trailing commas ([`jsonc`]), parse, find the
//!    server map and guess (or take) the [`Format`];
//! 2. pull each server apart into a typed `Spec`, skipping the ones that
//!    cannot be a server at all and noting every key without an mcpd twin;
//! 3. give every server a valid, unique mcpd name;
//! 4. rewrite values: the clients' `${VAR}`, `${env:VAR}`, `${VAR:-default}`,
//!    `${input:id}`, `${workspaceFolder}`, ... become mcpd's `${env:NAME}`, and
//!    inline secrets are replaced by `${env:NAME}` so they never reach the TOML;
//! 5. render the TOML and check it with mcpd's own loader, so what we print
//!    is always a config `mcpd config check` accepts (once the variables are set).
//!
//! Nothing here ever prints a secret value: notes name keys and variables only,
//! and every string taken from the input is shown escaped (`{:?}`), so a
//! crafted server name cannot break out of a TOML comment or a terminal line.

mod jsonc;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;
use std::path::Path;
use std::str::FromStr;

use serde_json::{Map, Value};

/// The client whose config file is being imported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// `claude_desktop_config.json`: `{"mcpServers": {NAME: {command, args, env}}}`.
    ClaudeDesktop,
    /// `.mcp.json`: `mcpServers` with `type`, `url`, `headers` and `${VAR:-default}`.
    ClaudeCode,
    /// `~/.cursor/mcp.json`: `mcpServers` with `${env:NAME}`, `envFile`, remote `url`s.
    Cursor,
    /// `.vscode/mcp.json` (`servers` + `inputs`) or settings (`"mcp": {"servers": ..}`).
    VsCode,
}

impl Format {
    pub const ALL: [Format; 4] = [Format::ClaudeDesktop, Format::ClaudeCode, Format::Cursor, Format::VsCode];
    /// The `--format` spellings, in [`Format::ALL`] order.
    pub const NAMES: [&'static str; 4] = ["claude-desktop", "claude-code", "cursor", "vscode"];

    /// The `--format` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::ClaudeDesktop => "claude-desktop",
            Format::ClaudeCode => "claude-code",
            Format::Cursor => "cursor",
            Format::VsCode => "vscode",
        }
    }

    /// The product name, for messages.
    pub fn label(self) -> &'static str {
        match self {
            Format::ClaudeDesktop => "Claude Desktop",
            Format::ClaudeCode => "Claude Code",
            Format::Cursor => "Cursor",
            Format::VsCode => "VS Code",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Format {
    type Err = ImportError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::ALL.into_iter().find(|f| f.as_str() == s).ok_or_else(|| ImportError::UnknownFormat(s.to_owned()))
    }
}

/// Why an import produced nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    #[error("unknown format {0:?}, expected one of claude-desktop, claude-code, cursor, vscode")]
    UnknownFormat(String),
    #[error("unterminated /* comment starting at line {line}")]
    UnterminatedComment { line: usize },
    /// serde_json's message, which names a position but never echoes input.
    #[error("invalid JSON: {0}")]
    Json(String),
    #[error(
        "not a recognised MCP client config: expected a JSON object with \"mcpServers\" (Claude Desktop, \
         Claude Code, Cursor), \"servers\" (VS Code mcp.json) or \"mcp\": {{\"servers\": ..}} (VS Code settings)"
    )]
    Unrecognised,
    #[error("the {format} format keeps its servers in {expected}, which this file does not have")]
    FormatMismatch { format: &'static str, expected: &'static str },
    #[error("{key} must be a JSON object mapping server names to servers")]
    NotAnObject { key: &'static str },
    /// A bug: the TOML we produced does not pass mcpd's own config check.
    #[error("internal error: the generated config does not pass mcpd's config check:\n{0}")]
    Invalid(String),
}

impl ImportError {
    /// True for [`ImportError::Invalid`] (our bug), false for bad input.
    pub fn is_internal(&self) -> bool {
        matches!(self, ImportError::Invalid(_))
    }
}

/// What a [`Note`] is about; the report lists notes in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NoteKind {
    /// The server's name was changed to fit `[a-z0-9-]{1,32}` or to be unique.
    Renamed,
    /// The server was left out entirely.
    Skipped,
    /// A literal secret was replaced by `${env:NAME}`; the admin must export NAME.
    InlineSecret,
    /// A client-side variable (`${input:..}`, `${workspaceFolder}`) now reads an
    /// environment variable the admin must export.
    Export,
    /// A key (or value) has no mcpd equivalent and was dropped or replaced.
    NotMapped,
    /// Everything else worth knowing (interpretations, lost defaults).
    Info,
}

impl NoteKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NoteKind::Renamed => "renamed",
            NoteKind::Skipped => "skipped",
            NoteKind::InlineSecret => "inline secret",
            NoteKind::Export => "export",
            NoteKind::NotMapped => "not mapped",
            NoteKind::Info => "note",
        }
    }
}

/// One line of the import report. Never contains a secret value; strings from
/// the input are escaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub kind: NoteKind,
    /// The server's mcpd name, or its quoted original name for skipped
    /// servers; `None` for notes about the whole file.
    pub server: Option<String>,
    pub message: String,
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.server {
            Some(server) => write!(f, "{}: server {server}: {}", self.kind.as_str(), self.message),
            None => write!(f, "{}: {}", self.kind.as_str(), self.message),
        }
    }
}

/// A finished import.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The mcpd config text (`[servers.*]` tables with comments).
    pub toml: String,
    /// Renames, skipped servers, inline secrets, unmapped keys, in that order.
    pub report: Vec<Note>,
    /// The detected (or forced) input format.
    pub format: Format,
    /// mcpd names of the servers written, in input order; empty when every
    /// server was skipped.
    pub servers: Vec<String>,
}

/// Converts a client config to mcpd TOML; `format: None` detects it.
pub fn import(src: &str, format: Option<Format>) -> Result<Imported, ImportError> {
    import_from(src, format, None)
}

/// Like [`import`]; `origin` (usually the file name) is named in the TOML's
/// header comment.
pub fn import_from(src: &str, format: Option<Format>, origin: Option<&str>) -> Result<Imported, ImportError> {
    let plain = jsonc::strip(src)?;
    let root: Value = serde_json::from_str(&plain).map_err(|e| ImportError::Json(e.to_string()))?;
    let Value::Object(root) = root else {
        return Err(ImportError::Unrecognised);
    };
    let (format, servers, inputs) = locate(&root, format)?;

    let mut report = Vec::new();
    let mut specs = Vec::new();
    for (original, entry) in servers {
        match extract(entry) {
            Ok(spec) => specs.push((original.as_str(), spec)),
            Err(why) => {
                report.push(Note { kind: NoteKind::Skipped, server: Some(format!("{original:?}")), message: why })
            }
        }
    }

    let originals: Vec<&str> = specs.iter().map(|(o, _)| *o).collect();
    let names = assign_names(&originals);
    let mut tr = Translator {
        inputs: &inputs,
        format,
        referenced: specs.iter().flat_map(|(_, s)| s.referenced_env()).collect(),
        claimed: BTreeMap::new(),
        reads: BTreeSet::new(),
    };
    let mut servers_out = Vec::new();
    for ((original, mut spec), name) in specs.into_iter().zip(names) {
        let mut notes = Vec::new();
        // JSON keys are unique, so a valid name always keeps itself; only
        // sanitised names can collide, and then the suffix is worth explaining.
        if name != original {
            let sanitized = sanitize_name(original);
            let taken = if sanitized == name { String::new() } else { format!("; {sanitized:?} was taken") };
            notes.push((NoteKind::Renamed, format!("was {original:?} (names must match [a-z0-9-]{{1,32}}{taken})")));
        }
        notes.append(&mut spec.notes);
        let reads_before = tr.reads.clone();
        tr.translate(&name, &mut spec, &mut notes);
        // The same variable used twice in one server gives the same note twice.
        let mut seen = BTreeSet::new();
        notes.retain(|n| seen.insert(n.clone()));
        spec.notes = notes;
        // Whatever the input held that the rules above did not foresee (a URL
        // without a host, ...) costs this server only, not the whole import.
        let mut one = String::new();
        render_server(&mut one, &name, &spec);
        if let Err(problems) = check_toml(&one) {
            tr.reads = reads_before;
            let message = format!("its values do not pass mcpd's config check: {}", problems.join("; "));
            report.push(Note { kind: NoteKind::Skipped, server: Some(format!("{original:?}")), message });
            continue;
        }
        servers_out.push((name, spec));
    }

    let mut global = Vec::new();
    if servers_out.iter().any(|(_, s)| s.kind == Kind::Stdio) {
        global.push(
            "mcpd starts stdio servers with only PATH, HOME and their own env (clients pass their whole \
             environment): add any other variable a server relies on to its env"
                .to_owned(),
        );
    }
    if !tr.reads.is_empty() {
        let names: Vec<&str> = tr.reads.iter().map(String::as_str).collect();
        global.push(format!("the imported servers read these variables from mcpd's environment: {}", names.join(", ")));
    }

    let toml = render_toml(format, origin, &servers_out, &report, &global, &tr.reads);
    let names: Vec<String> = servers_out.iter().map(|(n, _)| n.clone()).collect();
    self_check(&toml, &names)?;

    for (name, spec) in servers_out {
        for (kind, message) in spec.notes {
            report.push(Note { kind, server: Some(name.clone()), message });
        }
    }
    for message in global {
        report.push(Note { kind: NoteKind::Info, server: None, message });
    }
    // Stable: within a kind, notes keep input order.
    report.sort_by_key(|n| n.kind);
    Ok(Imported { toml, report, format, servers: names })
}

/// The whole output must load with mcpd's own loader; every server already
/// passed [`check_toml`] alone, so a failure here is a bug of ours.
fn self_check(toml: &str, names: &[String]) -> Result<(), ImportError> {
    match check_toml(toml) {
        Ok(n) if n == names.len() => Ok(()),
        Ok(n) => Err(ImportError::Invalid(format!("expected {} servers, loaded {n}", names.len()))),
        Err(problems) => Err(ImportError::Invalid(problems.join("\n"))),
    }
}

/// Loads `toml` with mcpd's config loader; `Ok` is the number of servers,
/// `Err` the problem messages (which never contain secret values). Variables
/// resolve to a URL so that a `url` made only of a variable passes the URL check.
fn check_toml(toml: &str) -> Result<usize, Vec<String>> {
    let env = |_: &str| Some("http://x".to_owned());
    match crate::load_str(toml, Path::new("import.toml"), &env) {
        Ok(cfg) => Ok(cfg.servers.len()),
        Err(e) => Err(e.problems.into_iter().map(|p| p.message).collect()),
    }
}

// ---------------------------------------------------------------------------
// Format detection.

type Inputs = BTreeMap<String, Option<String>>;

/// Finds the server map (and VS Code inputs) for the forced or detected format.
fn locate(
    root: &Map<String, Value>,
    forced: Option<Format>,
) -> Result<(Format, &Map<String, Value>, Inputs), ImportError> {
    let claude = root.get("mcpServers");
    // VS Code: mcp.json has top-level "servers"; settings.json nests both under "mcp".
    let vscode = match root.get("servers") {
        Some(servers) => Some((servers, root.get("inputs"), "\"servers\"")),
        None => root
            .get("mcp")
            .and_then(Value::as_object)
            .and_then(|mcp| mcp.get("servers").map(|s| (s, mcp.get("inputs"), "\"mcp.servers\""))),
    };
    let (format, servers, inputs, key) = match (forced, claude, vscode) {
        (Some(Format::VsCode), _, Some((s, i, key))) => (Format::VsCode, s, i, key),
        (Some(Format::VsCode), _, None) => {
            return Err(ImportError::FormatMismatch {
                format: "vscode",
                expected: "\"servers\" (mcp.json) or \"mcp\": {\"servers\": ..} (settings.json)",
            });
        }
        (Some(f), Some(s), _) => (f, s, None, "\"mcpServers\""),
        (Some(f), None, _) => {
            return Err(ImportError::FormatMismatch { format: f.as_str(), expected: "\"mcpServers\"" });
        }
        (None, Some(s), _) => (detect_claude_family(s), s, None, "\"mcpServers\""),
        (None, None, Some((s, i, key))) => (Format::VsCode, s, i, key),
        (None, None, None) => return Err(ImportError::Unrecognised),
    };
    let Value::Object(servers) = servers else {
        return Err(ImportError::NotAnObject { key });
    };
    Ok((format, servers, read_inputs(inputs)))
}

/// Claude Desktop, Claude Code and Cursor share `mcpServers`; tell them apart
/// by what only one of them writes. Cursor: `${env:..}`, `${userHome}`,
/// `${workspaceFolder}`, `envFile`, `auth`, or a `url` without `type`. Claude
/// Code: `type`, `oauth`, `headersHelper`, or plain `${VAR}`. Otherwise the
/// plain command/args/env shape of Claude Desktop (also Cline, Windsurf, ...).
fn detect_claude_family(servers: &Value) -> Format {
    let (mut cursor, mut code) = (false, false);
    for entry in servers.as_object().into_iter().flat_map(|m| m.values()) {
        let Some(obj) = entry.as_object() else {
            continue;
        };
        let has = |k: &str| obj.contains_key(k);
        cursor |= has("envFile") || has("auth") || ((has("url") || has("serverUrl")) && !has("type"));
        code |= has("type") || has("oauth") || has("headersHelper");
        each_string(entry, &mut |s| {
            if s.contains("${env:") || s.contains("${userHome}") || s.contains("${workspaceFolder") {
                cursor = true;
            } else if s.contains("${") {
                code = true;
            }
        });
    }
    if cursor {
        Format::Cursor
    } else if code {
        Format::ClaudeCode
    } else {
        Format::ClaudeDesktop
    }
}

fn each_string(v: &Value, f: &mut dyn FnMut(&str)) {
    match v {
        Value::String(s) => f(s),
        Value::Array(items) => items.iter().for_each(|i| each_string(i, f)),
        Value::Object(m) => m.values().for_each(|i| each_string(i, f)),
        _ => {}
    }
}

/// VS Code `inputs`: id -> description (shown in notes; never a secret, it is
/// the prompt text).
fn read_inputs(inputs: Option<&Value>) -> Inputs {
    let mut out = Inputs::new();
    for input in inputs.and_then(Value::as_array).into_iter().flatten() {
        if let Some(id) = input.get("id").and_then(Value::as_str) {
            out.insert(id.to_owned(), input.get("description").and_then(Value::as_str).map(str::to_owned));
        }
    }
    out
}

// ---------------------------------------------------------------------------
// One server: from JSON to a typed spec.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Kind {
    #[default]
    Stdio,
    Http,
    Sse,
}

type Pending = (NoteKind, String);

/// One server, first with the client's raw strings, then (after
/// [`Translator::translate`]) with mcpd strings. No `Debug`: before the
/// translation it holds inline secrets.
#[derive(Default)]
struct Spec {
    kind: Kind,
    command: String,
    args: Vec<String>,
    cwd: Option<String>,
    url: String,
    env: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    enabled: bool,
    call_timeout: Option<String>,
    allow: Vec<String>,
    deny: Vec<String>,
    notes: Vec<Pending>,
}

impl Spec {
    /// Environment variables the source itself reads (`${VAR}`, `${env:VAR}`),
    /// which a moved secret must not take as its name.
    fn referenced_env(&self) -> Vec<String> {
        let values = std::iter::once(self.command.as_str())
            .chain(self.args.iter().map(String::as_str))
            .chain(self.cwd.as_deref())
            .chain(std::iter::once(self.url.as_str()))
            .chain(self.env.iter().map(|(_, v)| v.as_str()))
            .chain(self.headers.iter().map(|(_, v)| v.as_str()));
        let mut out = Vec::new();
        for v in values {
            for piece in parse_value(v) {
                if let Piece::Var(Var::Env { name, .. }) = piece {
                    out.push(name);
                }
            }
        }
        out
    }
}

/// Keys we read; everything else is reported as not mapped.
const MAPPED_KEYS: &[&str] = &[
    "type",
    "command",
    "args",
    "env",
    "url",
    "serverUrl",
    "httpUrl",
    "headers",
    "cwd",
    "disabled",
    "timeout",
    "includeTools",
    "excludeTools",
    "disabledTools",
];

/// A week: longer "timeouts" are typos or "never", which mcpd does not have.
const MAX_TIMEOUT_MS: f64 = 7.0 * 24.0 * 3600.0 * 1000.0;

const APPROVAL: &str = "mcpd does not ask before tool calls; limit what is exposed with tools.allow and tools.deny";
const NO_OAUTH: &str =
    "mcpd does not do OAuth; give the server a token header, e.g. Authorization = \"Bearer ${env:NAME}\"";
const NO_SANDBOX: &str =
    "mcpd has no sandbox settings; servers run in their own process group with a scrubbed environment";

/// Why well-known keys have no mcpd equivalent.
const REASONS: &[(&str, &str)] = &[
    ("autoApprove", APPROVAL),
    ("alwaysAllow", APPROVAL),
    (
        "envFile",
        "mcpd does not read env files; set the variables in mcpd's environment (e.g. systemd EnvironmentFile=) \
         and list them in env as NAME = \"${env:NAME}\"",
    ),
    ("oauth", NO_OAUTH),
    ("auth", NO_OAUTH),
    ("headersHelper", "mcpd does not run commands to make headers; use ${file:PATH} or ${env:NAME} in headers"),
    ("dev", "editor watch/debug mode has no daemon equivalent"),
    ("sandbox", NO_SANDBOX),
    ("sandboxEnabled", NO_SANDBOX),
];

/// Reads one server entry; `Err` is why it is skipped.
fn extract(entry: &Value) -> Result<Spec, String> {
    let Some(obj) = entry.as_object() else {
        return Err("its entry is not a JSON object".to_owned());
    };
    let mut spec = Spec { enabled: true, ..Spec::default() };
    let not_mapped = |notes: &mut Vec<Pending>, key: &str, why: &str| {
        notes.push((NoteKind::NotMapped, format!("key {key:?} ({why})")));
    };

    let declared = match obj.get("type") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) => match t.to_ascii_lowercase().as_str() {
            "stdio" => Some(Kind::Stdio),
            // Cursor and Cline spell Streamable HTTP several ways.
            "http" | "streamable-http" | "streamablehttp" | "streamable_http" => Some(Kind::Http),
            "sse" => Some(Kind::Sse),
            _ => {
                let why = format!("unknown transport {t:?}; chosen from command/url instead");
                not_mapped(&mut spec.notes, "type", &why);
                None
            }
        },
        Some(_) => {
            not_mapped(&mut spec.notes, "type", "not a string; chosen from command/url instead");
            None
        }
    };
    let command = match obj.get("command") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err("\"command\" is not a string".to_owned()),
    };
    // Windsurf writes serverUrl, Gemini CLI httpUrl (always Streamable HTTP).
    let mut url = None;
    let mut declared = declared;
    for key in ["url", "serverUrl", "httpUrl"] {
        match obj.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if url.is_none() => {
                url = Some(s.trim().to_owned());
                if key == "httpUrl" && declared.is_none() {
                    declared = Some(Kind::Http);
                }
            }
            Some(Value::String(_)) => not_mapped(&mut spec.notes, key, "a url was already given"),
            Some(_) => return Err(format!("{key:?} is not a string")),
        }
    }

    spec.kind = match (declared, &command, &url) {
        (Some(Kind::Stdio), None, _) => return Err("its type is \"stdio\" but it has no \"command\"".to_owned()),
        (Some(k @ (Kind::Http | Kind::Sse)), _, None) => {
            let t = if k == Kind::Http { "http" } else { "sse" };
            return Err(format!("its type is \"{t}\" but it has no \"url\""));
        }
        (Some(k), _, _) => k,
        (None, Some(_), _) => Kind::Stdio,
        (None, None, Some(u)) => {
            // Clients that try Streamable HTTP and fall back to SSE leave the
            // choice open; mcpd needs one, and an /sse path is the legacy endpoint.
            let path = u.split(['?', '#']).next().unwrap_or("").trim_end_matches('/');
            if path.ends_with("/sse") {
                spec.notes.push((
                    NoteKind::Info,
                    "the url ends in /sse, so it was imported as transport = \"sse\" (legacy HTTP+SSE); \
                     make it transport = \"http\" if the server speaks Streamable HTTP"
                        .to_owned(),
                ));
                Kind::Sse
            } else {
                Kind::Http
            }
        }
        (None, None, None) => return Err("it has neither \"command\" nor \"url\"".to_owned()),
    };

    let stdio = spec.kind == Kind::Stdio;
    if stdio {
        spec.command = command.unwrap_or_default();
        if url.is_some() {
            not_mapped(
                &mut spec.notes,
                "url",
                "the server runs as a command (stdio); mcpd uses one transport per server",
            );
        }
    } else {
        let u = url.unwrap_or_default();
        let lower = u.to_ascii_lowercase();
        // A url starting with a variable can only be checked once it is set.
        if !(lower.starts_with("http://") || lower.starts_with("https://") || u.starts_with("${")) {
            return Err("its url is not an http:// or https:// URL".to_owned());
        }
        spec.url = u;
        if command.is_some() {
            not_mapped(&mut spec.notes, "command", "the server is remote (url); mcpd uses one transport per server");
        }
    }
    let only_stdio = "only stdio servers have it";
    let only_remote = "only http and sse servers have it";

    match obj.get("args") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) if stdio => {
            for (i, item) in items.iter().enumerate() {
                // Dropping an argument would change what the server does.
                spec.args.push(scalar(item).ok_or_else(|| format!("args[{i}] is not a string"))?);
            }
        }
        Some(Value::Array(_)) => not_mapped(&mut spec.notes, "args", only_stdio),
        Some(_) => return Err("\"args\" is not an array".to_owned()),
    }
    for (key, slot, wanted) in [("env", &mut spec.env, stdio), ("headers", &mut spec.headers, !stdio)] {
        match obj.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) if wanted => {
                for (k, v) in m {
                    match (v, scalar(v)) {
                        (Value::Null, _) => spec.notes.push((
                            NoteKind::NotMapped,
                            format!(
                                "key \"{key}.{}\" (null unsets a variable; mcpd starts servers with a clean \
                                 environment anyway)",
                                shown(k)
                            ),
                        )),
                        (_, Some(s)) => slot.push((k.clone(), s)),
                        (_, None) => {
                            spec.notes.push((NoteKind::NotMapped, format!("key \"{key}.{}\" (not a string)", shown(k))))
                        }
                    }
                }
            }
            Some(Value::Object(_)) => not_mapped(&mut spec.notes, key, if stdio { only_remote } else { only_stdio }),
            Some(_) => not_mapped(&mut spec.notes, key, "not an object of strings"),
        }
    }
    match obj.get("cwd") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if stdio && !s.trim().is_empty() => spec.cwd = Some(s.clone()),
        Some(Value::String(_)) if stdio => {}
        Some(Value::String(_)) => not_mapped(&mut spec.notes, "cwd", only_stdio),
        Some(_) => not_mapped(&mut spec.notes, "cwd", "not a string"),
    }
    match obj.get("disabled") {
        None | Some(Value::Null | Value::Bool(false)) => {}
        Some(Value::Bool(true)) => spec.enabled = false,
        Some(_) => not_mapped(&mut spec.notes, "disabled", "not a boolean"),
    }
    if let Some(t) = obj.get("timeout") {
        // Cline writes seconds, Claude and Gemini CLI milliseconds; no sane
        // value is both, so small numbers are seconds.
        let n = t.as_f64().filter(|n| n.is_finite() && *n > 0.0);
        let ms = n.map(|n| if n < 1000.0 { (n * 1000.0).round() } else { n.round() });
        match (n, ms.filter(|ms| (1.0..=MAX_TIMEOUT_MS).contains(ms))) {
            (Some(n), Some(ms)) => {
                let unit = if n < 1000.0 { "seconds" } else { "milliseconds" };
                // In 1..=MAX_TIMEOUT_MS and integral, so the cast is exact.
                let ms = ms as u64;
                let value = if ms.is_multiple_of(1000) { format!("{}s", ms / 1000) } else { format!("{ms}ms") };
                spec.notes.push((
                    NoteKind::Info,
                    format!(
                        "timeout {t} read as {unit}: call_timeout = \"{value}\" (values under 1000 are taken as \
                         seconds, as Cline writes them, larger ones as milliseconds)"
                    ),
                ));
                spec.call_timeout = Some(value);
            }
            _ => not_mapped(&mut spec.notes, "timeout", "not a number of seconds or milliseconds up to a week"),
        }
    }
    for (key, allow) in [("includeTools", true), ("excludeTools", false), ("disabledTools", false)] {
        let Some(v) = obj.get(key) else {
            continue;
        };
        let Some(items) = v.as_array() else {
            not_mapped(&mut spec.notes, key, "not an array of tool names");
            continue;
        };
        for item in items {
            match item.as_str() {
                Some(tool) if valid_tool_pattern(tool) => {
                    let list = if allow { &mut spec.allow } else { &mut spec.deny };
                    list.push(tool.to_owned());
                }
                _ => spec.notes.push((
                    NoteKind::NotMapped,
                    format!(
                        "key {key:?}: item {} (mcpd tool patterns are made of letters, digits, \"_\", \".\", \"-\", \
                         \"*\" and \"?\")",
                        shown_json(item)
                    ),
                )),
            }
        }
    }
    for key in obj.keys() {
        if MAPPED_KEYS.contains(&key.as_str()) {
            continue;
        }
        let why = REASONS.iter().find(|(k, _)| *k == key).map_or("mcpd has no equivalent", |(_, why)| *why);
        not_mapped(&mut spec.notes, key, why);
    }
    Ok(spec)
}

/// Strings, numbers and booleans as text (VS Code allows numbers in env).
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The same charset mcpd's config check allows in `tools.allow` / `tools.deny`.
fn valid_tool_pattern(p: &str) -> bool {
    !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '*' | '?' | '-'))
}

/// An input string safe to print inside quotes: control characters and quotes escaped.
fn shown(s: &str) -> String {
    s.escape_debug().to_string()
}

/// A short, escaped rendering of a JSON value for "this item" messages.
fn shown_json(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Array(_) => "(an array)".to_owned(),
        Value::Object(_) => "(an object)".to_owned(),
        other => other.to_string(),
    }
}

// ---------------------------------------------------------------------------
// Names.

/// mcpd's server name rule, `[a-z0-9-]{1,32}`.
fn valid_name(name: &str) -> bool {
    (1..=32).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Valid names keep themselves first, so a server that already had a good
/// name is never the one renamed; the others are sanitised and suffixed
/// `-2`, `-3`, ... until unique.
fn assign_names(originals: &[&str]) -> Vec<String> {
    let mut taken = BTreeSet::new();
    let mut out: Vec<Option<String>> =
        originals.iter().map(|o| (valid_name(o) && taken.insert((*o).to_owned())).then(|| (*o).to_owned())).collect();
    for (slot, original) in out.iter_mut().zip(originals) {
        if slot.is_some() {
            continue;
        }
        let base = sanitize_name(original);
        let mut name = base.clone();
        let mut n = 2;
        while taken.contains(&name) {
            let suffix = format!("-{n}");
            let keep = 32usize.saturating_sub(suffix.len());
            name =
                format!("{}{suffix}", base.get(..keep.min(base.len())).unwrap_or(base.as_str()).trim_end_matches('-'));
            n += 1;
        }
        taken.insert(name.clone());
        *slot = Some(name);
    }
    out.into_iter().map(Option::unwrap_or_default).collect()
}

/// Lowercase; every run of other characters becomes one `-`; at most 32.
fn sanitize_name(original: &str) -> String {
    let mut out = String::new();
    for c in original.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    // All ASCII from here, so byte truncation is safe.
    out.truncate(32);
    let out = out.trim_end_matches('-');
    if out.is_empty() { "server".to_owned() } else { out.to_owned() }
}

/// `MY_VAR`-style: uppercase letters, digits, single `_`.
fn env_part(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        let c = c.to_ascii_uppercase();
        if c.is_ascii_uppercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('_') {
            out.push('_');
        }
    }
    out.trim_end_matches('_').to_owned()
}

/// A conventional environment variable name, usable as `${env:NAME}`.
fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

// ---------------------------------------------------------------------------
// Values: the clients' `${...}` and mcpd's `${env:NAME}`.

/// A value split into literal text and `${...}` references.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Lit(String),
    Var(Var),
}

/// What a `${...}` in a client config stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Var {
    /// `${VAR}`, `${env:VAR}`, `${VAR:-default}`.
    Env {
        name: String,
        default: Option<String>,
    },
    /// VS Code `${input:id}`: prompted for by the editor.
    Input(String),
    /// `${userHome}`.
    Home,
    /// `${pathSeparator}`, `${/}`.
    PathSep,
    /// `${workspaceFolder}` (and the older `${workspaceRoot}`).
    Workspace,
    WorkspaceBasename,
    /// Anything else (`${config:..}`, `${command:..}`, `${file}`, ...).
    Unknown(String),
}

/// Splits `s` at `${...}` (nested braces allowed, as in `${A:-${B}}`); an
/// unterminated `${` is literal text, as the clients treat it.
fn parse_value(s: &str) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut lit = String::new();
    let mut rest = s;
    while let Some(pos) = rest.find("${") {
        lit.push_str(&rest[..pos]);
        let after = &rest[pos + 2..];
        match matching_close(after) {
            Some(end) => {
                if !lit.is_empty() {
                    pieces.push(Piece::Lit(std::mem::take(&mut lit)));
                }
                pieces.push(Piece::Var(classify(&after[..end])));
                rest = &after[end + 1..];
            }
            None => {
                lit.push_str("${");
                rest = after;
            }
        }
    }
    lit.push_str(rest);
    if !lit.is_empty() {
        pieces.push(Piece::Lit(lit));
    }
    pieces
}

/// Byte index of the `}` closing a `${` whose inside starts `s`.
fn matching_close(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut depth = 1usize;
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'$' && b.get(i + 1) == Some(&b'{') {
            depth += 1;
            i += 2;
            continue;
        }
        if c == b'}' {
            depth -= 1;
            if depth == 0 {
                return Some(i);
            }
        }
        i += 1;
    }
    None
}

fn classify(inner: &str) -> Var {
    match inner {
        "userHome" => return Var::Home,
        "pathSeparator" | "/" => return Var::PathSep,
        "workspaceFolder" | "workspaceRoot" => return Var::Workspace,
        "workspaceFolderBasename" => return Var::WorkspaceBasename,
        _ => {}
    }
    // `$`, braces or spaces in a name would not survive as mcpd's `${env:NAME}`;
    // control characters would reach the report unescaped.
    if let Some(name) = inner.strip_prefix("env:")
        && !name.is_empty()
        && !name.contains(|c: char| c.is_whitespace() || c.is_control() || matches!(c, '$' | '{' | '}'))
    {
        return Var::Env { name: name.to_owned(), default: None };
    }
    if let Some(id) = inner.strip_prefix("input:")
        && !id.is_empty()
    {
        return Var::Input(id.to_owned());
    }
    if is_ident(inner) {
        return Var::Env { name: inner.to_owned(), default: None };
    }
    if let Some((name, default)) = inner.split_once(":-")
        && is_ident(name)
    {
        return Var::Env { name: name.to_owned(), default: Some(default.to_owned()) };
    }
    Var::Unknown(inner.to_owned())
}

/// Literal text in mcpd syntax: `${` must be written `$${`.
fn escape_lit(s: &str) -> String {
    s.replace("${", "$${")
}

/// A value turned into mcpd syntax, with what the caller should report.
struct Rendered {
    text: String,
    /// It used an editor-only variable (`${workspaceFolder}`, unknown kinds).
    editor_only: bool,
    notes: Vec<Pending>,
    reads: Vec<String>,
}

/// Per-import state for rewriting values.
struct Translator<'a> {
    inputs: &'a Inputs,
    format: Format,
    /// Variables the source reads itself; never reused for a moved secret.
    referenced: BTreeSet<String>,
    /// Variable name -> the secret it stands for, so that two different
    /// secrets never share a name (the same secret twice may).
    claimed: BTreeMap<String, String>,
    /// Every variable the output reads, for the summary.
    reads: BTreeSet<String>,
}

impl Translator<'_> {
    /// Rewrites every value of `spec` (named `server` in mcpd) in place.
    fn translate(&mut self, server: &str, spec: &mut Spec, notes: &mut Vec<Pending>) {
        let upper = env_part(server);
        match spec.kind {
            Kind::Stdio => {
                self.command(spec, notes);
                let args = std::mem::take(&mut spec.args);
                spec.args = self.args(&upper, &args, notes);
                if let Some(cwd) = spec.cwd.take() {
                    spec.cwd = self.cwd(&cwd, notes);
                }
                let env = std::mem::take(&mut spec.env);
                for (key, raw) in env {
                    if key.is_empty() || key.contains(['=', '\0']) {
                        let why = "not a valid environment variable name";
                        notes.push((NoteKind::NotMapped, format!("key \"env.{}\" ({why})", shown(&key))));
                        continue;
                    }
                    let value = self.env_value(&upper, &key, &raw, notes);
                    spec.env.push((key, value));
                }
            }
            Kind::Http | Kind::Sse => {
                let url = std::mem::take(&mut spec.url);
                spec.url = self.url(&upper, &url, notes);
                let headers = std::mem::take(&mut spec.headers);
                for (name, raw) in headers {
                    if let Some(value) = self.header(&upper, &name, &raw, notes) {
                        spec.headers.push((name, value));
                    }
                }
            }
        }
    }

    /// Turns client variables into mcpd's `${env:NAME}` and escapes the rest.
    fn render(&self, field: &str, raw: &str) -> Rendered {
        let mut r = Rendered { text: String::new(), editor_only: false, notes: Vec::new(), reads: Vec::new() };
        for piece in parse_value(raw) {
            let var = match piece {
                Piece::Lit(s) => {
                    r.text.push_str(&escape_lit(&s));
                    continue;
                }
                Piece::Var(Var::PathSep) => {
                    // mcpd runs on Unix.
                    r.text.push('/');
                    continue;
                }
                Piece::Var(v) => v,
            };
            // mcpd reads `$` + `${env:X}` as the escape `$${`: it cannot write
            // a `$` right before a substitution.
            if r.text.ends_with('$') {
                // Every one of them: `$$` + `${env:X}` would still start with `$${`.
                while r.text.ends_with('$') {
                    r.text.pop();
                }
                r.notes.push((
                    NoteKind::NotMapped,
                    format!(
                        "key \"{field}\" (a \"$\" right before a variable cannot be written in mcpd syntax and \
                         was dropped)"
                    ),
                ));
            }
            let name = match var {
                Var::Env { name, default: Some(d) } => {
                    let shown_default = if contains_secret(&d) || secret_name(&name) || d.contains("${") {
                        String::new()
                    } else {
                        format!(" {d:?}")
                    };
                    r.notes.push((
                        NoteKind::Info,
                        format!(
                            "{field}: the default{shown_default} of ${{{name}:-...}} was dropped (mcpd has no \
                             defaults): {name} must be set"
                        ),
                    ));
                    name
                }
                Var::Env { name, default: None } => name,
                Var::Input(id) => {
                    let env = format!("MCPD_INPUT_{}", env_part(&id));
                    let what = match self.inputs.get(&id) {
                        Some(Some(desc)) => format!("the VS Code input {id:?} ({desc:?})"),
                        Some(None) => format!("the VS Code input {id:?}"),
                        None => format!("the VS Code input {id:?} (not declared in \"inputs\")"),
                    };
                    r.notes.push((
                        NoteKind::Export,
                        format!("{field}: {what} is now read from ${{env:{env}}}: export {env} with that value"),
                    ));
                    env
                }
                Var::Home => "HOME".to_owned(),
                Var::Workspace | Var::WorkspaceBasename => {
                    r.editor_only = true;
                    let (client_var, env, what) = if var == Var::Workspace {
                        ("workspaceFolder", "MCPD_WORKSPACE_FOLDER", "the project directory")
                    } else {
                        ("workspaceFolderBasename", "MCPD_WORKSPACE_FOLDER_BASENAME", "the project directory's name")
                    };
                    r.notes.push((
                        NoteKind::Export,
                        format!(
                            "{field}: ${{{client_var}}} is now read from ${{env:{env}}}: export {env} as {what}, \
                             or write the path into the value"
                        ),
                    ));
                    env.to_owned()
                }
                Var::Unknown(inner) => {
                    r.editor_only = true;
                    let part: String = env_part(&inner).chars().take(40).collect();
                    let env = if part.is_empty() { "MCPD_VAR".to_owned() } else { format!("MCPD_VAR_{part}") };
                    let what = if contains_secret(&inner) {
                        "a variable".to_owned()
                    } else {
                        format!("${{{}}}", shown(&inner))
                    };
                    r.notes.push((
                        NoteKind::NotMapped,
                        format!(
                            "key \"{field}\" ({what} is a {} variable mcpd cannot resolve; it was written as \
                             ${{env:{env}}}: export {env} or edit the value)",
                            self.format.label()
                        ),
                    ));
                    env
                }
                // Handled above, before the `$` check.
                Var::PathSep => continue,
            };
            r.text.push_str(&format!("${{env:{name}}}"));
            r.reads.push(name);
        }
        r
    }

    fn take(&mut self, notes: &mut Vec<Pending>, r: Rendered) -> String {
        notes.extend(r.notes);
        self.reads.extend(r.reads);
        r.text
    }

    /// Picks the variable a moved secret is read from: `preferred` (the env
    /// key) if free, else `fallback`, `fallback_2`, ...
    fn claim(&mut self, preferred: Option<&str>, fallback: &str, secret: &str) -> String {
        if let Some(p) = preferred.filter(|p| is_ident(p))
            && self.try_claim(p, secret)
        {
            return p.to_owned();
        }
        if self.try_claim(fallback, secret) {
            return fallback.to_owned();
        }
        let mut n = 2u32;
        loop {
            let candidate = format!("{fallback}_{n}");
            if self.try_claim(&candidate, secret) {
                return candidate;
            }
            n += 1;
        }
    }

    fn try_claim(&mut self, name: &str, secret: &str) -> bool {
        if self.referenced.contains(name) {
            return false;
        }
        match self.claimed.get(name) {
            Some(existing) => existing == secret,
            None => {
                self.claimed.insert(name.to_owned(), secret.to_owned());
                true
            }
        }
    }

    fn command(&mut self, spec: &mut Spec, notes: &mut Vec<Pending>) {
        let raw = std::mem::take(&mut spec.command);
        // Some clients run the command through a shell, so "npx -y pkg" works
        // there; mcpd executes it directly. A path may contain spaces, so only
        // split when it does not look like one.
        let mut words = raw.split_whitespace();
        if raw.contains(char::is_whitespace)
            && !raw.contains(['/', '\\', '"', '\''])
            && !raw.contains("${")
            && let Some(first) = words.next()
        {
            notes.push((
                NoteKind::Info,
                format!(
                    "command {raw:?} was split into command {first:?} and arguments (mcpd starts it without a shell)"
                ),
            ));
            let mut args: Vec<String> = words.map(str::to_owned).collect();
            args.append(&mut spec.args);
            spec.args = args;
            spec.command = first.to_owned();
            return;
        }
        let r = self.render("command", &raw);
        spec.command = self.take(notes, r);
    }

    fn args(&mut self, upper: &str, args: &[String], notes: &mut Vec<Pending>) -> Vec<String> {
        let mut out = Vec::with_capacity(args.len());
        let mut prev_flag: Option<&str> = None;
        for (i, arg) in args.iter().enumerate() {
            let field = format!("args[{i}]");
            let flag = prev_flag.take();
            if arg.starts_with('-') && !arg.contains('=') {
                prev_flag = Some(arg.trim_start_matches('-'));
            }
            let source = self.arg_source(upper, i, &field, arg, flag, notes);
            let r = self.render(&field, &source);
            out.push(self.take(notes, r));
        }
        out
    }

    /// One argument with any inline secret replaced by `${env:NAME}` (still
    /// in client syntax; [`Translator::render`] makes it mcpd's). `flag` is
    /// the option right before it (`token` for `--token VALUE`).
    fn arg_source(
        &mut self,
        upper: &str,
        i: usize,
        field: &str,
        arg: &str,
        flag: Option<&str>,
        notes: &mut Vec<Pending>,
    ) -> String {
        // A URL (mcp-remote and other bridges, database DSNs): move secrets
        // out, keep the rest.
        if arg.contains("://") && !arg.contains(char::is_whitespace) {
            return self.scrub_url(upper, field, arg, notes);
        }
        // `Authorization: Bearer TOKEN`, as bridges take with --header.
        if let Some((name, value)) = arg.split_once(':')
            && value.starts_with(' ')
            && name.len() >= 2
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            let value = value.trim();
            if !value.contains("${") && ((secret_name(name) && !harmless(name, value)) || looks_secret_value(value)) {
                let moved = self.move_secret(field, &format!("MCPD_{upper}_{}", env_part(name)), value, notes);
                return format!("{name}: {moved}");
            }
            return arg.to_owned();
        }
        // `--api-key=VALUE` and docker's `-e NAME=VALUE`: judge the value by the name.
        if let Some((lhs, rhs)) = arg.split_once('=') {
            let name = lhs.trim_start_matches('-');
            if !rhs.is_empty()
                && !rhs.contains("${")
                && ((secret_name(name) && !harmless(name, rhs)) || looks_secret_value(rhs))
            {
                // `NAME=VALUE` handed to a container: the variable keeps its name.
                let preferred = (!lhs.starts_with('-')).then_some(name);
                let env = self.claim(preferred, &format!("MCPD_{upper}_{}", env_part(name)), rhs);
                notes.push(secret_note(field, &env, ""));
                return format!("{lhs}=${{env:{env}}}");
            }
        }
        if !arg.contains("${") {
            // `--token VALUE`: an option named like a secret followed by a word
            // that is not a path, number or switch; short words are more likely
            // positional arguments after a boolean option.
            let by_flag = flag
                .filter(|f| secret_name(f) && !arg.starts_with('-') && arg.len() >= 8 && !harmless(f, arg))
                .map(env_part)
                .filter(|p| !p.is_empty());
            if by_flag.is_some() || contains_secret(arg) {
                let fallback = match by_flag {
                    Some(f) => format!("MCPD_{upper}_{f}"),
                    None => format!("MCPD_{upper}_ARG{i}"),
                };
                let env = self.claim(None, &fallback, arg);
                notes.push(secret_note(field, &env, ""));
                return format!("${{env:{env}}}");
            }
        } else if parse_value(arg).iter().any(|p| matches!(p, Piece::Lit(s) if contains_secret(s))) {
            let env = self.claim(None, &format!("MCPD_{upper}_ARG{i}"), arg);
            notes.push(secret_note(field, &env, WHOLE));
            return format!("${{env:{env}}}");
        }
        arg.to_owned()
    }

    /// Replaces a secret by `${env:NAME}`; for `Bearer TOKEN` (and the other
    /// schemes) only the token moves, so the admin exports just the token.
    fn move_secret(&mut self, field: &str, fallback: &str, value: &str, notes: &mut Vec<Pending>) -> String {
        if let Some((scheme, token)) = auth_scheme(value)
            && !token.is_empty()
        {
            let env = self.claim(None, fallback, token);
            let kept = format!(" (the token only; {:?} stays in the file)", format!("{scheme} "));
            notes.push(secret_note(field, &env, &kept));
            return format!("{scheme} ${{env:{env}}}");
        }
        let env = self.claim(None, fallback, value);
        notes.push(secret_note(field, &env, ""));
        format!("${{env:{env}}}")
    }

    /// `cwd` keeps environment references; editor variables cannot be
    /// resolved by a daemon, so such a cwd is dropped.
    fn cwd(&mut self, raw: &str, notes: &mut Vec<Pending>) -> Option<String> {
        let r = self.render("cwd", raw);
        if r.editor_only {
            notes.push((
                NoteKind::NotMapped,
                "key \"cwd\" (it uses an editor variable such as ${workspaceFolder} that mcpd cannot resolve; \
                 the server starts in mcpd's working directory unless you set cwd)"
                    .to_owned(),
            ));
            return None;
        }
        let text = self.take(notes, r);
        if !text.starts_with('/') && !text.starts_with("${") {
            notes.push((
                NoteKind::Info,
                format!("cwd {raw:?} is relative: mcpd takes it relative to the directory of the config file"),
            ));
        }
        Some(text)
    }

    fn env_value(&mut self, upper: &str, key: &str, raw: &str, notes: &mut Vec<Pending>) -> String {
        let field = format!("env.{}", shown(key));
        let pieces = parse_value(raw);
        let literal = pieces.iter().all(|p| matches!(p, Piece::Lit(_)));
        let secret = if literal {
            (secret_name(key) && !harmless(key, raw)) || contains_secret(raw)
        } else {
            pieces.iter().any(|p| matches!(p, Piece::Lit(s) if contains_secret(s)))
        };
        let source = if secret {
            let env = self.claim(Some(key), &format!("MCPD_{upper}_{}", env_part(key)), raw);
            let whole = if literal { "" } else { WHOLE };
            notes.push(secret_note(&field, &env, whole));
            format!("${{env:{env}}}")
        } else {
            raw.to_owned()
        };
        let r = self.render(&field, &source);
        self.take(notes, r)
    }

    /// `None`: the header cannot be expressed and was reported.
    fn header(&mut self, upper: &str, name: &str, raw: &str, notes: &mut Vec<Pending>) -> Option<String> {
        let field = format!("headers.{}", shown(name));
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            notes.push((NoteKind::NotMapped, format!("key \"{field}\" (not a valid HTTP header name)")));
            return None;
        }
        let pieces = parse_value(raw);
        let lits: Vec<&str> =
            pieces.iter().filter_map(|p| if let Piece::Lit(s) = p { Some(s.as_str()) } else { None }).collect();
        // mcpd checks the resolved value the same way (visible ASCII and tab).
        if lits.iter().any(|s| !s.bytes().all(|b| b == b'\t' || (b' '..0x7f).contains(&b))) {
            let why = "its value has characters HTTP headers cannot carry";
            notes.push((NoteKind::NotMapped, format!("key \"{field}\" ({why})")));
            return None;
        }
        let literal = lits.len() == pieces.len();
        let fallback = format!("MCPD_{upper}_{}", env_part(name));
        // `Authorization` and the like are caught by name (AUTH, KEY, TOKEN, ...).
        let source = if literal && ((secret_name(name) && !harmless(name, raw)) || contains_secret(raw)) {
            self.move_secret(&field, &fallback, raw, notes)
        } else if !literal && lits.iter().any(|s| contains_secret(s)) {
            let env = self.claim(None, &fallback, raw);
            notes.push(secret_note(&field, &env, WHOLE));
            format!("${{env:{env}}}")
        } else {
            raw.to_owned()
        };
        let r = self.render(&field, &source);
        Some(self.take(notes, r))
    }

    fn url(&mut self, upper: &str, raw: &str, notes: &mut Vec<Pending>) -> String {
        let scrubbed = self.scrub_url(upper, "url", raw, notes);
        let r = self.render("url", &scrubbed);
        self.take(notes, r)
    }

    /// Moves a password, secret-looking query parameters and token-like path
    /// segments out of a URL (hosted MCP endpoints often carry keys there);
    /// the result is still in client syntax.
    fn scrub_url(&mut self, upper: &str, field: &str, raw: &str, notes: &mut Vec<Pending>) -> String {
        let mut scrubbed = raw.to_owned();
        // From the end, so earlier ranges stay valid.
        for (range, part) in url_secret_spans(raw).into_iter().rev() {
            let Some(secret) = raw.get(range.clone()) else {
                continue;
            };
            let (suffix, what) = match &part {
                UrlPart::Password => ("URL_PASSWORD".to_owned(), "the password".to_owned()),
                UrlPart::Param(p) => (format!("URL_{}", env_part(p)), format!("query parameter \"{}\"", shown(p))),
                UrlPart::Segment => ("URL_TOKEN".to_owned(), "a path segment".to_owned()),
            };
            let env = self.claim(None, &format!("MCPD_{upper}_{suffix}"), secret);
            notes.push((
                NoteKind::InlineSecret,
                format!(
                    "{field}: {what} looked like a secret and was not written; export {env} in mcpd's environment \
                     with it, exactly as it appears in the URL"
                ),
            ));
            scrubbed.replace_range(range, &format!("${{env:{env}}}"));
        }
        scrubbed
    }
}

/// Note suffix when a value mixing variables and a secret moved as a whole.
const WHOLE: &str = " (the whole value, with its variables resolved)";

fn secret_note(field: &str, env: &str, extra: &str) -> Pending {
    (
        NoteKind::InlineSecret,
        format!("{field}: the value was not written; export {env} in mcpd's environment with it{extra}"),
    )
}

// ---------------------------------------------------------------------------
// Secret heuristics. False positives only cost the admin an export, false
// negatives put a secret into a file, so the rules lean towards "secret".

/// Words that make a key, header, flag or query parameter name a secret's.
const SECRET_WORDS: &[&str] = &["KEY", "TOKEN", "SECRET", "PASSWORD", "PASS", "AUTH", "CREDENTIAL", "COOKIE"];
/// Names with these never get the "short number" exemption (a PIN is a secret,
/// MAX_TOKENS=4096 is not).
const STRONG_WORDS: &[&str] = &["SECRET", "PASS", "CREDENTIAL"];

/// Well-known token prefixes (OpenAI/Anthropic, Stripe, GitHub, GitLab, Slack,
/// AWS, Google, Hugging Face, npm, PyPI, SendGrid, Linear, Notion, ...).
const TOKEN_PREFIXES: &[&str] = &[
    "sk-",
    "sk_",
    "rk_",
    "pk_live_",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "glpat-",
    "xoxb-",
    "xoxp-",
    "xoxa-",
    "xoxs-",
    "xapp-",
    "AKIA",
    "ASIA",
    "AIza",
    "ya29.",
    "hf_",
    "npm_",
    "pypi-",
    "SG.",
    "lin_api_",
    "ntn_",
    "secret_",
    "dop_v1_",
    "shpat_",
    "gsk_",
    "pplx-",
    "tvly-",
    "r8_",
];

fn secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    SECRET_WORDS.iter().any(|w| upper.contains(w))
}

/// Values that are not secrets even under a secret-sounding name: empty,
/// booleans, paths (`KEY_FILE=/etc/x.pem`), URLs without secrets, and short
/// numbers (`MAX_TOKENS=4096`) unless the name is a strong one.
fn harmless(name: &str, value: &str) -> bool {
    let v = value.trim();
    if v.is_empty()
        || matches!(v.to_ascii_lowercase().as_str(), "true" | "false" | "yes" | "no" | "on" | "off" | "none" | "null")
        || looks_like_path(v)
    {
        return true;
    }
    let lower = v.to_ascii_lowercase();
    if (lower.starts_with("http://") || lower.starts_with("https://")) && url_secret_spans(v).is_empty() {
        return true;
    }
    let upper = name.to_ascii_uppercase();
    let strong = STRONG_WORDS.iter().any(|w| upper.contains(w));
    !strong && v.len() <= 6 && v.bytes().all(|b| b.is_ascii_digit())
}

fn looks_like_path(v: &str) -> bool {
    let b = v.as_bytes();
    let drive = b.len() >= 3 && b[0].is_ascii_alphabetic() && b[1] == b':' && matches!(b[2], b'\\' | b'/');
    drive || ["/", "~/", "./", "../"].iter().any(|p| v.starts_with(p))
}

/// `Bearer xyz` -> ("Bearer", "xyz") for the usual HTTP auth schemes.
fn auth_scheme(v: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = v.trim().split_once(' ')?;
    ["bearer", "basic", "token", "bot"].contains(&scheme.to_ascii_lowercase().as_str()).then(|| (scheme, rest.trim()))
}

/// Whether a literal value looks like a credential by itself: an auth header
/// value, a known token prefix, a JWT, or a long random-looking string.
fn looks_secret_value(v: &str) -> bool {
    let v = v.trim();
    if v.is_empty() || v.contains("${") {
        return false;
    }
    if let Some((_, token)) = auth_scheme(v) {
        return token.len() >= 8 && !token.contains(char::is_whitespace);
    }
    if v.contains(char::is_whitespace) {
        return false;
    }
    if v.len() >= 20 && TOKEN_PREFIXES.iter().any(|p| v.starts_with(p)) {
        return true;
    }
    if v.starts_with("eyJ") && v.len() >= 30 && v.matches('.').count() == 2 {
        return true;
    }
    high_entropy(v)
}

/// Whether a longer text (a DSN, JSON, `k=v` list, a literal next to
/// variables) holds a secret somewhere: the whole, any token-like word in it,
/// or a secret part of a URL in it.
fn contains_secret(text: &str) -> bool {
    looks_secret_value(text)
        || text.split(|c: char| !(c.is_ascii_alphanumeric() || "-_.+/~".contains(c))).any(looks_secret_value)
        || (text.contains("://") && !url_secret_spans(text).is_empty())
}

/// Long, token-charset, mixed-class, high-entropy strings. UUIDs are left out
/// (usually ids, and a secret one under a KEY/TOKEN name is caught by name).
fn high_entropy(v: &str) -> bool {
    if v.len() < 24
        || !v.chars().all(|c| c.is_ascii_alphanumeric() || "-_.=+/~".contains(c))
        || v.starts_with(['/', '.', '~', '-'])
        || is_uuid(v)
    {
        return false;
    }
    let count = |f: fn(&u8) -> bool| v.as_bytes().iter().filter(|b| f(b)).count();
    let (digits, upper, lower) =
        (count(u8::is_ascii_digit), count(u8::is_ascii_uppercase), count(u8::is_ascii_lowercase));
    let hex = v.bytes().all(|b| b.is_ascii_hexdigit());
    let mixed = (upper >= 2 && lower >= 2) || (hex && v.len() >= 32);
    digits >= 2 && upper + lower >= 2 && mixed && entropy(v) >= 3.5
}

fn is_uuid(v: &str) -> bool {
    let groups: Vec<&str> = v.split('-').collect();
    groups.len() == 5
        && groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups.iter().all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Shannon entropy in bits per character.
fn entropy(v: &str) -> f64 {
    let mut counts = BTreeMap::new();
    for c in v.chars() {
        *counts.entry(c).or_insert(0usize) += 1;
    }
    // Lengths here are far below 2^52, so the float conversion is exact.
    let n = v.chars().count() as f64;
    counts.values().map(|&k| k as f64 / n).map(|p| -p * p.log2()).sum()
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum UrlPart {
    Password,
    Param(String),
    Segment,
}

/// Byte ranges of secret-looking parts of a URL: the userinfo password, query
/// values under secret names or looking like tokens, token-like path segments.
/// Parts that already hold a `${...}` are left alone.
fn url_secret_spans(url: &str) -> Vec<(Range<usize>, UrlPart)> {
    let mut out = Vec::new();
    let Some(sep) = url.find("://") else {
        return out;
    };
    let start = sep + 3;
    let rest = &url[start..];
    let auth_end = start + rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &url[start..auth_end];
    if let Some(at) = authority.rfind('@')
        && let Some(colon) = authority[..at].find(':')
    {
        let range = start + colon + 1..start + at;
        if !range.is_empty() && !url[range.clone()].contains("${") {
            out.push((range, UrlPart::Password));
        }
    }
    let tail_end = url[auth_end..].find('#').map_or(url.len(), |i| auth_end + i);
    let path_end = url[auth_end..tail_end].find('?').map_or(tail_end, |i| auth_end + i);
    let mut pos = auth_end;
    for segment in url[auth_end..path_end].split('/') {
        let range = pos..pos + segment.len();
        pos += segment.len() + 1;
        if looks_secret_value(segment) {
            out.push((range, UrlPart::Segment));
        }
    }
    if path_end < tail_end {
        let mut pos = path_end + 1;
        for pair in url[path_end + 1..tail_end].split('&') {
            let pair_start = pos;
            pos += pair.len() + 1;
            let Some((k, v)) = pair.split_once('=') else {
                continue;
            };
            let range = pair_start + k.len() + 1..pair_start + pair.len();
            if !v.is_empty() && !v.contains("${") && ((secret_name(k) && !harmless(k, v)) || looks_secret_value(v)) {
                out.push((range, UrlPart::Param(k.to_owned())));
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// TOML output.

/// A TOML basic string; control characters are escaped so nothing from the
/// input can end the string or the line.
fn toml_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn toml_key(k: &str) -> String {
    if !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        k.to_owned()
    } else {
        toml_str(k)
    }
}

/// One line: inline tables (`tools = { .. }`) cannot span lines in TOML 1.0.
fn toml_inline_array(items: &[String]) -> String {
    format!("[{}]", items.iter().map(|s| toml_str(s)).collect::<Vec<_>>().join(", "))
}

/// One line when it fits in 100 columns after `indent_over` columns of key,
/// else one item per line.
fn toml_array(items: &[String], indent_over: usize) -> String {
    let one_line = toml_inline_array(items);
    if one_line.len() + indent_over <= 100 {
        return one_line;
    }
    let mut out = String::from("[\n");
    for item in items {
        out.push_str(&format!("  {},\n", toml_str(item)));
    }
    out.push(']');
    out
}

/// Wraps `text` into `# `-prefixed comment lines of about 100 columns.
fn comment(out: &mut String, text: &str) {
    let mut line = String::from("#");
    for word in text.split(' ') {
        if line.len() > 2 && line.len() + 1 + word.len() > 100 {
            out.push_str(&line);
            out.push('\n');
            line = String::from("#  ");
        }
        line.push(' ');
        line.push_str(word);
    }
    out.push_str(&line);
    out.push('\n');
}

fn render_toml(
    format: Format,
    origin: Option<&str>,
    servers: &[(String, Spec)],
    skipped: &[Note],
    global: &[String],
    reads: &BTreeSet<String>,
) -> String {
    let mut out = String::new();
    let from = match origin {
        Some(o) => format!("from {o:?} ({} format)", format.label()),
        None => format!("from a {} config", format.label()),
    };
    comment(&mut out, &format!("mcpd servers imported {from} by `mcpd config import`."));
    comment(&mut out, "Review the notes, then check the file with `mcpd config check FILE`.");
    if !reads.is_empty() {
        comment(
            &mut out,
            "Inline secrets were not copied: every ${env:NAME} below needs NAME set in mcpd's environment.",
        );
    }
    for message in global {
        comment(&mut out, &format!("note: {message}"));
    }
    for note in skipped {
        comment(&mut out, &note.to_string());
    }
    for (name, spec) in servers {
        out.push('\n');
        render_server(&mut out, name, spec);
    }
    out
}

/// One `[servers.NAME]` table (plus its env/headers tables), notes first as comments.
fn render_server(out: &mut String, name: &str, spec: &Spec) {
    for (kind, message) in &spec.notes {
        comment(out, &format!("{}: {message}", kind.as_str()));
    }
    out.push_str(&format!("[servers.{name}]\n"));
    match spec.kind {
        Kind::Stdio => {
            out.push_str(&format!("command = {}\n", toml_str(&spec.command)));
            if !spec.args.is_empty() {
                out.push_str(&format!("args = {}\n", toml_array(&spec.args, 7)));
            }
            if let Some(cwd) = &spec.cwd {
                out.push_str(&format!("cwd = {}\n", toml_str(cwd)));
            }
        }
        Kind::Http | Kind::Sse => {
            if spec.kind == Kind::Sse {
                out.push_str("transport = \"sse\"\n");
            }
            out.push_str(&format!("url = {}\n", toml_str(&spec.url)));
        }
    }
    if !spec.enabled {
        out.push_str("enabled = false\n");
    }
    if let Some(t) = &spec.call_timeout {
        out.push_str(&format!("call_timeout = {}\n", toml_str(t)));
    }
    let mut filters = Vec::new();
    if !spec.allow.is_empty() {
        filters.push(format!("allow = {}", toml_inline_array(&spec.allow)));
    }
    if !spec.deny.is_empty() {
        filters.push(format!("deny = {}", toml_inline_array(&spec.deny)));
    }
    if !filters.is_empty() {
        out.push_str(&format!("tools = {{ {} }}\n", filters.join(", ")));
    }
    for (table, entries) in [("env", &spec.env), ("headers", &spec.headers)] {
        if entries.is_empty() {
            continue;
        }
        out.push_str(&format!("\n[servers.{name}.{table}]\n"));
        for (k, v) in entries {
            out.push_str(&format!("{} = {}\n", toml_key(k), toml_str(v)));
        }
    }
}

//! Reading the main file and its includes into a [`Config`].

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::de::DeTable;

use super::llm::parse_llm;
use super::model::{Config, DaemonConfig, LogFormat};
use super::pipeline::parse_pipelines;
use super::problem::{ConfigError, Problem, io_message, line_col};
use super::reader::{FileCtx, Val};
use super::server::{Registry, parse_servers};

const TOP_KEYS: &[&str] = &["daemon", "servers", "llm", "sampling", "pipelines", "profiles", "policy"];
/// Accepted and kept raw so configs for newer daemons still load.
const RESERVED_KEYS: &[&str] = &["policy"];
const DAEMON_KEYS: &[&str] = &[
    "socket",
    "state_dir",
    "include",
    "shutdown_grace",
    "call_timeout",
    "connect_timeout",
    "max_message_bytes",
    "max_result_bytes",
    "log_format",
    "log_level",
    "resource_cache_bytes",
    "resource_ttl",
    "metrics_listen",
    "app_rate_limit",
    "audit_max_entries",
    "tofu_window",
    "search_model",
    "max_starting",
    "worker_threads",
    "containment",
];

type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

pub(crate) fn load_str(src: &str, origin: &Path, env: Env<'_>) -> Result<Config, ConfigError> {
    let dir = origin.parent().unwrap_or(Path::new(""));
    let mut problems = Vec::new();
    let mut files = vec![origin.to_path_buf()];
    let mut loaded = HashSet::new();
    loaded.insert(identity(origin));

    let root = match DeTable::parse(src) {
        Ok(root) => root,
        Err(e) => {
            // Without the main file there is no include list to follow.
            problems.push(syntax_problem(origin, src, &e));
            return Err(ConfigError { problems });
        }
    };
    let root = root.get_ref();

    let mut secrets = Vec::new();
    let mut ctx = FileCtx { file: origin, dir, src, env, problems: &mut problems, secrets: &mut secrets };
    let (daemon, includes) = match root.get("daemon") {
        Some(v) => parse_daemon(&mut ctx, v),
        None => (DaemonConfig::default(), Vec::new()),
    };
    let mut extra = BTreeMap::new();
    let mut sampling = super::model::SamplingConfig::default();
    let mut llm = BTreeMap::new();
    let mut reg = Registry::default();
    let mut pipelines_value = None;
    let mut profiles = BTreeMap::new();
    for (key, value) in root.iter() {
        let name = key.get_ref().as_ref();
        match name {
            "daemon" => {}
            "servers" => parse_servers(&mut ctx, value, &daemon, &mut reg),
            "pipelines" => pipelines_value = Some(value),
            "profiles" => profiles = super::mcp::parse_profiles(&mut ctx, value),
            "sampling" => {
                if let Some(s) = super::server::parse_sampling(&mut ctx, "sampling", value, &sampling.clone()) {
                    sampling = s;
                }
            }
            "llm" => llm = parse_llm(&mut ctx, value),
            _ if RESERVED_KEYS.contains(&name) => {
                if let Some(raw) = ctx.raw_value(value) {
                    extra.insert(name.to_owned(), raw);
                }
            }
            _ => ctx.unknown_key(key, TOP_KEYS, "at top level"),
        }
    }

    for (path, span) in &includes {
        let targets = match include_targets(path) {
            Ok(targets) => targets,
            Err(message) => {
                report_at(&mut problems, origin, src, span, message);
                continue;
            }
        };
        for file in targets {
            // Overlapping include entries (or the main file's own directory)
            // would otherwise report every server as a duplicate.
            if !loaded.insert(identity(&file)) {
                continue;
            }
            match std::fs::read_to_string(&file) {
                Ok(text) => {
                    files.push(file.clone());
                    load_included(&file, &text, env, &daemon, &mut reg, &mut problems, &mut secrets);
                }
                Err(e) => {
                    let message = format!("cannot read included file \"{}\": {}", file.display(), io_message(&e));
                    report_at(&mut problems, origin, src, span, message);
                }
            }
        }
    }

    // Pipelines and profiles name servers, which included files may define: checked last.
    let mut ctx = FileCtx { file: origin, dir, src, env, problems: &mut problems, secrets: &mut secrets };
    let pipelines = match pipelines_value {
        Some(v) => parse_pipelines(&mut ctx, v, &reg.servers),
        None => BTreeMap::new(),
    };
    let profiles = super::mcp::check_profiles(&mut ctx, profiles, &reg.servers);

    if problems.is_empty() {
        Ok(Config {
            daemon,
            servers: reg.servers,
            llm,
            files,
            extra,
            sampling,
            pipelines,
            profiles,
            secrets: known_secrets(secrets),
        })
    } else {
        // Stable sort: file load order, then position, keeping discovery
        // order for problems at the same spot.
        let order = |p: &Problem| files.iter().position(|f| *f == p.file).unwrap_or(usize::MAX);
        problems.sort_by_key(|p| (order(p), p.line, p.col));
        Err(ConfigError { problems })
    }
}

/// Best-effort identity of a file for de-duplicating includes.
fn identity(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

fn report_at(problems: &mut Vec<Problem>, file: &Path, src: &str, span: &Range<usize>, message: String) {
    let (line, col) = line_col(src, span.start);
    problems.push(Problem { file: file.to_path_buf(), line, col, message });
}

fn syntax_problem(file: &Path, src: &str, e: &toml::de::Error) -> Problem {
    let (line, col) = line_col(src, e.span().map_or(0, |s| s.start));
    Problem {
        file: file.to_path_buf(),
        line,
        col,
        message: format!("invalid toml: {}", e.message().trim_end_matches('.')),
    }
}

/// The files an `include` entry stands for: a file itself, or every
/// non-hidden `*.toml` directly inside a directory, sorted by name.
fn include_targets(path: &Path) -> Result<Vec<PathBuf>, String> {
    let fail = |e: std::io::Error| format!("cannot read include \"{}\": {}", path.display(), io_message(&e));
    let meta = std::fs::metadata(path).map_err(fail)?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(path).map_err(fail)? {
        let entry = entry.map_err(fail)?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        // Hidden files are editor droppings (".#x.toml") or disabled on purpose.
        if name.starts_with('.') || !name.ends_with(".toml") {
            continue;
        }
        let file = entry.path();
        if file.is_file() {
            out.push(file);
        }
    }
    out.sort();
    Ok(out)
}

/// An included file: only `[servers.*]` tables are allowed.
fn load_included(
    file: &Path,
    src: &str,
    env: Env<'_>,
    daemon: &DaemonConfig,
    reg: &mut Registry,
    problems: &mut Vec<Problem>,
    secrets: &mut Vec<String>,
) {
    let root = match DeTable::parse(src) {
        Ok(root) => root,
        Err(e) => {
            problems.push(syntax_problem(file, src, &e));
            return;
        }
    };
    let mut ctx = FileCtx { file, dir: file.parent().unwrap_or(Path::new("")), src, env, problems, secrets };
    for (key, value) in root.get_ref().iter() {
        let name = key.get_ref().as_ref();
        if name == "servers" {
            parse_servers(&mut ctx, value, daemon, reg);
        } else {
            ctx.report(key.span(), format!("only [servers.*] tables are allowed in included files, found \"{name}\""));
        }
    }
}

/// The `[daemon]` table, plus each include entry with its position for
/// reporting unreadable includes.
fn parse_daemon(ctx: &mut FileCtx<'_>, v: &Val<'_>) -> (DaemonConfig, Vec<(PathBuf, Range<usize>)>) {
    let mut d = DaemonConfig::default();
    let mut includes = Vec::new();
    let Some(table) = ctx.table("daemon", v) else {
        return (d, includes);
    };
    for (k, v) in table.iter() {
        let key = k.get_ref().as_ref();
        match key {
            "socket" => keep(&mut d.socket, ctx.path(key, v).map(Some)),
            "state_dir" => keep(&mut d.state_dir, ctx.path(key, v).map(Some)),
            "containment" => keep(
                &mut d.containment,
                ctx.choice(
                    key,
                    v,
                    &[
                        ("auto", super::model::ContainmentMode::Auto),
                        ("process-tree", super::model::ContainmentMode::ProcessTree),
                    ],
                ),
            ),
            "max_starting" => {
                keep(&mut d.max_starting, ctx.integer(key, v, 0, Some(1024)).and_then(|n| usize::try_from(n).ok()))
            }
            "worker_threads" => {
                keep(&mut d.worker_threads, ctx.integer(key, v, 0, Some(256)).and_then(|n| usize::try_from(n).ok()))
            }
            "search_model" => {
                if let Some(dir) = ctx.path(key, v) {
                    // The files are read by the daemon; a directory without them is a typo the
                    // admin hears about now, with the rest of the config's problems.
                    let missing: Vec<&str> = ["tokenizer.json", "model.safetensors"]
                        .into_iter()
                        .filter(|f| !dir.join(f).is_file())
                        .collect();
                    if missing.is_empty() {
                        d.search_model = Some(dir);
                    } else {
                        ctx.report(
                            v.span(),
                            format!(
                                "\"search_model\" must be a static embedding model's directory; {} has no {}",
                                dir.display(),
                                missing.join(" or ")
                            ),
                        );
                    }
                }
            }
            "include" => {
                let Some(entries) =
                    ctx.strings(key, v, false, &|s| s.is_empty().then(|| "include entry must not be empty".to_owned()))
                else {
                    continue;
                };
                let spans = match v.get_ref() {
                    toml::de::DeValue::Array(items) => items.iter().map(|i| i.span()).collect::<Vec<_>>(),
                    _ => Vec::new(),
                };
                for (entry, span) in entries.into_iter().zip(spans) {
                    let path = ctx.dir.join(entry);
                    d.include.push(path.clone());
                    includes.push((path, span));
                }
            }
            "shutdown_grace" => keep(&mut d.shutdown_grace, ctx.duration(key, v)),
            "call_timeout" => keep(&mut d.call_timeout, ctx.positive_duration(key, v)),
            "connect_timeout" => keep(&mut d.connect_timeout, ctx.positive_duration(key, v)),
            "max_message_bytes" => keep(&mut d.max_message_bytes, ctx.size(key, v, 1024)),
            "max_result_bytes" => keep(&mut d.max_result_bytes, ctx.size(key, v, 1024)),
            "resource_cache_bytes" => keep(&mut d.resource_cache_bytes, ctx.size(key, v, 0)),
            "resource_ttl" => keep(&mut d.resource_ttl, ctx.duration(key, v)),
            "tofu_window" => keep(&mut d.tofu_window, ctx.duration(key, v)),
            "app_rate_limit" => keep(&mut d.app_rate_limit, super::server::rate(ctx, key, v).map(Some)),
            "audit_max_entries" => keep(
                &mut d.audit_max_entries,
                ctx.integer(key, v, 0, Some(100_000_000)).and_then(|n| usize::try_from(n).ok()),
            ),
            "metrics_listen" => {
                if let Some(text) = ctx.string(key, v) {
                    match text.parse::<std::net::SocketAddr>() {
                        Ok(addr) if addr.ip().is_loopback() => d.metrics_listen = Some(addr),
                        // Metrics name servers and tools: they stay on this machine.
                        Ok(_) => ctx.report(v.span(), format!("\"metrics_listen\" must be a loopback address (e.g. \"127.0.0.1:9464\"), found {text:?}")),
                        Err(_) => ctx.report(v.span(), format!("\"metrics_listen\" must be an address with a port, e.g. \"127.0.0.1:9464\", found {text:?}")),
                    }
                }
            }
            "log_format" => {
                let options: Vec<_> = LogFormat::ALL.iter().map(|f| (f.as_str(), *f)).collect();
                keep(&mut d.log_format, ctx.choice(key, v, &options));
            }
            "log_level" => {
                if let Some(level) = ctx.string(key, v) {
                    if level.trim().is_empty() {
                        ctx.report(v.span(), "\"log_level\" must not be empty");
                    } else {
                        d.log_level = level.to_owned();
                    }
                }
            }
            _ if super::mcp::daemon_key(ctx, &mut d, key, v) => {}
            _ => {
                let known: Vec<&str> = DAEMON_KEYS.iter().chain(super::mcp::MCP_DAEMON_KEYS).copied().collect();
                ctx.unknown_key(k, &known, "in [daemon]")
            }
        }
    }
    super::mcp::check_daemon(ctx, &d, v.span());
    (d, includes)
}

fn keep<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

/// Values shorter than this are not treated as secrets: a substituted "1" or "on" would
/// otherwise blank out every such word the daemon prints, and is no credential.
pub(crate) const MIN_SECRET_LEN: usize = 6;

/// The distinct substituted values worth hiding, longest first (so a secret that contains
/// another is replaced whole).
fn known_secrets(mut found: Vec<String>) -> Vec<super::secret::Secret> {
    found.retain(|s| s.chars().count() >= MIN_SECRET_LEN);
    found.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    found.dedup();
    found.into_iter().map(super::secret::Secret::new).collect()
}

//! Validation of `[servers.NAME]` tables.

use std::collections::BTreeMap;
use std::path::PathBuf;

use toml::de::DeTable;

use super::model::{
    BackoffConfig, CrashLoopConfig, DaemonConfig, ProtocolPref, SamplingConfig, SamplingRoute, ServerConfig,
    ToolFilter, TransportConfig, TrustMode,
};
use super::problem::line_col;
use super::reader::{FileCtx, Key, Val};

const SERVER_KEYS: &[&str] = &[
    "transport",
    "command",
    "args",
    "env",
    "cwd",
    "url",
    "headers",
    "protocol",
    "enabled",
    "connect_timeout",
    "call_timeout",
    "shutdown_grace",
    "max_concurrency",
    "max_message_bytes",
    "notification_rate",
    "liveness_interval",
    "tofu_new_tools",
    "tools_refresh",
    "backoff",
    "crash_loop",
    "tools",
    "trust",
    "pins",
    "redact_secrets",
    "rate_limit",
    "tool_rate_limits",
    "confirm_destructive",
    "sampling",
    "roots",
    "oauth",
];
const OAUTH_KEYS: &[&str] = &[
    "grant",
    "client_id",
    "client_secret",
    "private_key",
    "signing_algorithm",
    "scopes",
    "client_metadata_url",
    "client_name",
    "redirect_port",
    "login_command",
    "allow_loopback",
    "allow",
];
const SAMPLING_KEYS: &[&str] = &["route", "rate", "max_tokens", "max_concurrent"];
const STDIO_KEYS: &[&str] = &["command", "args", "env", "cwd"];
const HTTP_KEYS: &[&str] = &["url", "headers"];
const BACKOFF_KEYS: &[&str] = &["initial", "max", "multiplier", "jitter"];
const CRASH_LOOP_KEYS: &[&str] = &["max_failures", "window", "open_for"];
const TOOLS_KEYS: &[&str] = &["allow", "deny"];

/// Servers gathered across the main file and its includes.
#[derive(Default)]
pub(crate) struct Registry {
    pub(crate) servers: BTreeMap<String, ServerConfig>,
    /// Where each name was first defined, for duplicate reports.
    seen: BTreeMap<String, (PathBuf, usize, usize)>,
}

/// Reads a `servers` table (main or included file) into `reg`.
pub(crate) fn parse_servers(ctx: &mut FileCtx<'_>, v: &Val<'_>, daemon: &DaemonConfig, reg: &mut Registry) {
    let Some(table) = ctx.table("servers", v) else {
        return;
    };
    for (key, value) in table.iter() {
        let name = key.get_ref().as_ref();
        let duplicate = match reg.seen.get(name) {
            Some((file, line, col)) => {
                let message = format!("server \"{name}\" is already defined at {}:{line}:{col}", file.display());
                ctx.report(key.span(), message);
                true
            }
            None => {
                let (line, col) = line_col(ctx.src, key.span().start);
                reg.seen.insert(name.to_owned(), (ctx.file.to_path_buf(), line, col));
                false
            }
        };
        // A duplicate is still validated so its own problems show up too.
        let parsed = parse_server(ctx, key, value, daemon);
        if let (Some(server), false) = (parsed, duplicate) {
            reg.servers.insert(name.to_owned(), server);
        }
    }
}

fn valid_name(name: &str) -> bool {
    (1..=32).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Stdio,
    Http,
    Sse,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Stdio => "stdio",
            Kind::Http => "http",
            Kind::Sse => "sse",
        }
    }
}

fn parse_server(ctx: &mut FileCtx<'_>, key: &Key<'_>, v: &Val<'_>, daemon: &DaemonConfig) -> Option<ServerConfig> {
    let name = key.get_ref().as_ref();
    let mut name_ok = valid_name(name);
    if !name_ok {
        ctx.report(key.span(), format!("server name \"{name}\" must match [a-z0-9-]{{1,32}}"));
    } else if name == super::pipeline::PIPELINE_SERVER {
        // `pipeline.NAME` always names a configured pipeline.
        ctx.report(key.span(), "server name \"pipeline\" is reserved for pipelines (`pipeline.NAME`); pick another");
        name_ok = false;
    }
    let table = ctx.table(&format!("servers.{name}"), v)?;
    let place = format!("in [servers.{name}]");
    let transport = parse_transport(ctx, key, table);

    let placeholder =
        TransportConfig::Stdio { command: String::new(), args: Vec::new(), env: BTreeMap::new(), cwd: None };
    let mut s = ServerConfig::with_defaults(name.to_owned(), placeholder, daemon);
    let mut ok = name_ok;
    for (k, v) in table.iter() {
        let key_name = k.get_ref().as_ref();
        // Each arm keeps the default when its reader reports a problem; the
        // problem alone already makes the whole load fail.
        let good = match key_name {
            "transport" | "command" | "args" | "env" | "cwd" | "url" | "headers" => true,
            "protocol" => set(&mut s.protocol, ctx.choice(key_name, v, &protocol_options())),
            "enabled" => set(&mut s.enabled, ctx.boolean(key_name, v)),
            "connect_timeout" => set(&mut s.connect_timeout, ctx.positive_duration(key_name, v)),
            "call_timeout" => set(&mut s.call_timeout, ctx.positive_duration(key_name, v)),
            "shutdown_grace" => set(&mut s.shutdown_grace, ctx.duration(key_name, v)),
            "max_concurrency" => set(
                &mut s.max_concurrency,
                ctx.integer(key_name, v, 1, Some(1024)).and_then(|n| usize::try_from(n).ok()),
            ),
            "max_message_bytes" => set(&mut s.max_message_bytes, ctx.size(key_name, v, 1024)),
            "notification_rate" => set(
                &mut s.notification_rate,
                ctx.integer(key_name, v, 0, Some(10_000_000)).and_then(|n| u32::try_from(n).ok()),
            ),
            "liveness_interval" => set(&mut s.liveness_interval, ctx.duration(key_name, v)),
            "tools_refresh" => set(&mut s.tools_refresh, ctx.duration(key_name, v)),
            "backoff" => set(&mut s.backoff, parse_backoff(ctx, name, v)),
            "crash_loop" => set(&mut s.crash_loop, parse_crash_loop(ctx, name, v)),
            "tools" => set(&mut s.tools, parse_tools(ctx, name, v)),
            "trust" => set(&mut s.trust, ctx.choice(key_name, v, &trust_options())),
            "tofu_new_tools" => {
                set(&mut s.tofu_trusts_new_tools, ctx.choice(key_name, v, &[("quarantine", false), ("trust", true)]))
            }
            "pins" => set(&mut s.pins, parse_pins(ctx, v)),
            "redact_secrets" => set(&mut s.redact_secrets, ctx.boolean(key_name, v)),
            "rate_limit" => set(&mut s.rate_limit, rate(ctx, key_name, v).map(Some)),
            "tool_rate_limits" => set(&mut s.tool_rate_limits, parse_tool_rates(ctx, v)),
            "confirm_destructive" => set(&mut s.confirm_destructive, ctx.boolean(key_name, v)),
            // Server overrides start from the built-in defaults; `[sampling]` applies to
            // servers without their own table.
            "sampling" => set(
                &mut s.sampling,
                parse_sampling(ctx, &format!("servers.{name}.sampling"), v, &SamplingConfig::default()).map(Some),
            ),
            "roots" => set(&mut s.roots, parse_roots(ctx, v)),
            "oauth" => set(&mut s.oauth, parse_oauth(ctx, name, v).map(Some)),
            _ => {
                ctx.unknown_key(k, SERVER_KEYS, &place);
                false
            }
        };
        ok &= good;
    }
    s.transport = transport?;
    s.source = raw_source(table);
    if s.oauth.is_some() && !matches!(s.transport, TransportConfig::Http { .. }) {
        ctx.report(key.span(), format!("[servers.{name}] has \"oauth\", which needs transport \"http\""));
        ok = false;
    }
    ok.then_some(s)
}

/// Stores `value` if present; returns whether it was.
fn set<T>(slot: &mut T, value: Option<T>) -> bool {
    match value {
        Some(v) => {
            *slot = v;
            true
        }
        None => false,
    }
}

/// `[sampling]` or `servers.X.sampling = { route, rate, max_tokens, max_concurrent }`.
pub(crate) fn parse_sampling(
    ctx: &mut FileCtx<'_>,
    place: &str,
    v: &Val<'_>,
    base: &SamplingConfig,
) -> Option<SamplingConfig> {
    let table = ctx.table(place, v)?;
    let mut out = base.clone();
    let mut ok = true;
    for (k, v) in table.iter() {
        let key = k.get_ref().as_ref();
        let path = format!("{place}.{key}");
        ok &= match key {
            "route" => match ctx.string(&path, v) {
                Some("app") => set(&mut out.route, Some(SamplingRoute::App)),
                Some("refuse") => set(&mut out.route, Some(SamplingRoute::Refuse)),
                Some("llm") => set(&mut out.route, Some(SamplingRoute::Llm(None))),
                Some(r) if r.strip_prefix("llm:").is_some_and(|n| !n.is_empty()) => {
                    set(&mut out.route, Some(SamplingRoute::Llm(r.strip_prefix("llm:").map(str::to_owned))))
                }
                Some(other) => {
                    ctx.report(
                        v.span(),
                        format!("invalid \"{path}\" {other:?}: use \"app\", \"llm\", \"llm:NAME\" or \"refuse\""),
                    );
                    false
                }
                None => false,
            },
            "rate" => set(&mut out.rate, rate(ctx, &path, v).map(Some)),
            "max_tokens" => {
                set(&mut out.max_tokens, ctx.integer(&path, v, 1, Some(1_000_000)).and_then(|n| u32::try_from(n).ok()))
            }
            "max_concurrent" => {
                set(&mut out.max_concurrent, ctx.integer(&path, v, 1, Some(64)).and_then(|n| u32::try_from(n).ok()))
            }
            _ => {
                ctx.unknown_key(k, SAMPLING_KEYS, &format!("in [{place}]"));
                false
            }
        };
    }
    ok.then_some(out)
}

/// `[servers.NAME.oauth]`: `grant`, a pre-registered client, scopes, the login hook and
/// what OAuth URLs may reach.
fn parse_oauth(ctx: &mut FileCtx<'_>, server: &str, v: &Val<'_>) -> Option<super::model::OAuthConfig> {
    use super::model::{OAuthConfig, OAuthGrant};
    let table = ctx.table("oauth", v)?;
    let place = format!("in [servers.{server}.oauth]");
    let mut out = OAuthConfig {
        grant: OAuthGrant::AuthorizationCode,
        client_id: None,
        client_secret: None,
        private_key: None,
        signing_algorithm: super::model::JwtAlgorithm::Rs256,
        scopes: Vec::new(),
        client_metadata_url: None,
        client_name: "mcpd".to_owned(),
        redirect_port: 0,
        login_command: Vec::new(),
        allow_loopback: false,
        allow: Vec::new(),
    };
    let mut ok = true;
    for (k, v) in table.iter() {
        let good = match k.get_ref().as_ref() {
            "grant" => set(
                &mut out.grant,
                ctx.choice(
                    "oauth.grant",
                    v,
                    &[
                        ("authorization_code", OAuthGrant::AuthorizationCode),
                        ("client_credentials", OAuthGrant::ClientCredentials),
                    ],
                ),
            ),
            "client_id" => set(&mut out.client_id, ctx.string("oauth.client_id", v).map(|s| Some(s.to_owned()))),
            "client_secret" => set(&mut out.client_secret, secret_value(ctx, "oauth.client_secret", v).map(Some)),
            "private_key" => set(&mut out.private_key, secret_value(ctx, "oauth.private_key", v).map(Some)),
            "signing_algorithm" => {
                use super::model::JwtAlgorithm as A;
                let choices = [
                    ("RS256", A::Rs256),
                    ("RS384", A::Rs384),
                    ("RS512", A::Rs512),
                    ("ES256", A::Es256),
                    ("ES384", A::Es384),
                ];
                set(&mut out.signing_algorithm, ctx.choice("oauth.signing_algorithm", v, &choices))
            }
            "scopes" => set(&mut out.scopes, ctx.strings("oauth.scopes", v, false, &|_| None)),
            "client_metadata_url" => {
                let url = ctx.string("oauth.client_metadata_url", v).map(str::to_owned);
                match url {
                    Some(u) if !is_cimd_url(&u) => {
                        ctx.report(
                            v.span(),
                            "\"oauth.client_metadata_url\" must be an https:// URL with a path (where the client ID metadata document is hosted)",
                        );
                        false
                    }
                    u => set(&mut out.client_metadata_url, u.map(Some)),
                }
            }
            "client_name" => set(&mut out.client_name, ctx.string("oauth.client_name", v).map(str::to_owned)),
            "redirect_port" => {
                set(&mut out.redirect_port, ctx.integer("oauth.redirect_port", v, 0, Some(65535)).map(|p| p as u16))
            }
            "login_command" => {
                let cmd = ctx.strings("oauth.login_command", v, true, &|_| None);
                if cmd.as_ref().is_some_and(|c| c.is_empty()) {
                    ctx.report(v.span(), "\"oauth.login_command\" needs at least the program to run");
                    false
                } else {
                    set(&mut out.login_command, cmd)
                }
            }
            "allow_loopback" => set(&mut out.allow_loopback, ctx.boolean("oauth.allow_loopback", v)),
            "allow" => {
                let check = |entry: &str| {
                    let policy = mcpd_guard::ssrf::SsrfPolicy { allow_loopback: false, allow: vec![entry.to_owned()] };
                    policy.validate().err().map(|e| e.to_string())
                };
                set(&mut out.allow, ctx.strings("oauth.allow", v, false, &check))
            }
            _ => {
                ctx.unknown_key(k, OAUTH_KEYS, &place);
                false
            }
        };
        ok &= good;
    }
    if out.client_secret.is_some() && out.client_id.is_none() {
        ctx.report(v.span(), format!("[servers.{server}.oauth] has \"client_secret\" without \"client_id\""));
        ok = false;
    }
    let credentials = usize::from(out.client_secret.is_some()) + usize::from(out.private_key.is_some());
    if out.grant == OAuthGrant::ClientCredentials && (out.client_id.is_none() || credentials != 1) {
        ctx.report(
            v.span(),
            format!(
                "[servers.{server}.oauth] grant \"client_credentials\" needs \"client_id\" and one of \"client_secret\" or \"private_key\" (private_key_jwt)"
            ),
        );
        ok = false;
    }
    if out.grant == OAuthGrant::AuthorizationCode && out.private_key.is_some() {
        ctx.report(
            v.span(),
            format!("[servers.{server}.oauth] \"private_key\" (private_key_jwt) needs grant \"client_credentials\""),
        );
        ok = false;
    }
    ok.then_some(out)
}

/// A credential: from `${env:NAME}` or `${file:PATH}`, never inline in the config; the
/// value joins the secrets kept out of every output.
fn secret_value(ctx: &mut FileCtx<'_>, key: &str, v: &Val<'_>) -> Option<super::secret::Secret> {
    let raw = ctx.string(key, v).unwrap_or("");
    if !raw.is_empty() && !raw.starts_with("${") {
        ctx.report(
            v.span(),
            format!("\"{key}\" must come from ${{env:NAME}} or ${{file:PATH}}, not be written inline"),
        );
        return None;
    }
    let secret = ctx.expanded(key, v)?;
    ctx.secrets.push(secret.clone());
    Some(super::secret::Secret::new(secret))
}

/// A client ID metadata document URL: https with a path other than `/`.
fn is_cimd_url(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|u| u.scheme() == "https" && u.host_str().is_some() && u.path() != "/")
}

/// `roots = ["/srv/data", "file:///home/me/src"]`: absolute paths or `file://` URIs.
fn parse_roots(ctx: &mut FileCtx<'_>, v: &Val<'_>) -> Option<Vec<String>> {
    let check = |r: &str| {
        let ok = r.starts_with('/') || r.strip_prefix("file:///").is_some();
        (!ok).then(|| format!("root {r:?} must be an absolute path or a file:/// URI"))
    };
    let roots = ctx.strings("roots", v, false, &check)?;
    Some(roots.into_iter().map(|r| if r.starts_with('/') { format!("file://{r}") } else { r }).collect())
}

fn trust_options() -> Vec<(&'static str, TrustMode)> {
    TrustMode::ALL.iter().map(|t| (t.as_str(), *t)).collect()
}

/// A rate such as "10/s", "600/m" or "100/10s".
pub(crate) fn rate(ctx: &mut FileCtx<'_>, key: &str, v: &Val<'_>) -> Option<crate::rate::Rate> {
    let text = ctx.string(key, v)?;
    match text.parse() {
        Ok(r) => Some(r),
        Err(e) => {
            ctx.report(v.span(), format!("invalid rate {text:?} for \"{key}\": {e}"));
            None
        }
    }
}

/// `pins = { tool = "sha256:<64 hex>" }`, as printed by `mcpd trust list`.
fn parse_pins(ctx: &mut FileCtx<'_>, v: &Val<'_>) -> Option<BTreeMap<String, String>> {
    let table = ctx.table("pins", v)?;
    let mut out = BTreeMap::new();
    let mut ok = true;
    for (k, v) in table.iter() {
        let tool = k.get_ref().as_ref();
        let Some(fp) = ctx.string(&format!("pins.{tool}"), v) else {
            ok = false;
            continue;
        };
        let hex = fp.strip_prefix("sha256:").unwrap_or("");
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            ctx.report(
                v.span(),
                format!("pin for tool \"{tool}\" must look like \"sha256:<64 lowercase hex digits>\" (see `mcpd trust list`)"),
            );
            ok = false;
            continue;
        }
        out.insert(tool.to_owned(), fp.to_owned());
    }
    ok.then_some(out)
}

/// `tool_rate_limits = { tool = "10/s" }`.
fn parse_tool_rates(ctx: &mut FileCtx<'_>, v: &Val<'_>) -> Option<BTreeMap<String, crate::rate::Rate>> {
    let table = ctx.table("tool_rate_limits", v)?;
    let mut out = BTreeMap::new();
    let mut ok = true;
    for (k, v) in table.iter() {
        let tool = k.get_ref().as_ref();
        match rate(ctx, &format!("tool_rate_limits.{tool}"), v) {
            Some(r) => {
                out.insert(tool.to_owned(), r);
            }
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn protocol_options() -> Vec<(&'static str, ProtocolPref)> {
    ProtocolPref::ALL.iter().map(|p| (p.as_str(), *p)).collect()
}

/// Picks the transport (explicit `transport`, else inferred from `command`
/// / `url`) and reads its keys; keys of the other transports are problems.
/// What the config writes for the server's command and args, or its URL, before `${}`
/// substitution: the server's identity (so rotating a secret keeps its trust) and what
/// status shows (so a secret in an argument or a URL query never is).
fn raw_source(table: &DeTable<'_>) -> String {
    let raw = |v: &Val<'_>| match v.get_ref() {
        toml::de::DeValue::String(s) => Some(s.to_string()),
        _ => None,
    };
    if let Some(url) = table.get("url").and_then(raw) {
        return url;
    }
    let command = table.get("command").and_then(raw).unwrap_or_default();
    let args: Vec<String> = match table.get("args").map(|v| v.get_ref()) {
        Some(toml::de::DeValue::Array(items)) => items.iter().filter_map(raw).collect(),
        _ => Vec::new(),
    };
    serde_json::to_string(&(command, args)).unwrap_or_default()
}

fn parse_transport(ctx: &mut FileCtx<'_>, key: &Key<'_>, table: &DeTable<'_>) -> Option<TransportConfig> {
    let name = key.get_ref().as_ref();
    let command = table.get("command");
    let url = table.get_key_value("url");
    let kind = match table.get("transport") {
        Some(v) => ctx.choice("transport", v, &[("stdio", Kind::Stdio), ("http", Kind::Http), ("sse", Kind::Sse)])?,
        None => match (command, url) {
            (Some(_), Some((url_key, _))) => {
                ctx.report(url_key.span(), format!("[servers.{name}] has both \"command\" and \"url\", set only one"));
                return None;
            }
            (Some(_), None) => Kind::Stdio,
            (None, Some(_)) => Kind::Http,
            (None, None) => {
                ctx.report(key.span(), format!("[servers.{name}] needs \"command\" (stdio) or \"url\" (http, sse)"));
                return None;
            }
        },
    };

    let (foreign, only_for) = match kind {
        Kind::Stdio => (HTTP_KEYS, "http and sse"),
        Kind::Http | Kind::Sse => (STDIO_KEYS, "stdio"),
    };
    let mut ok = true;
    for f in foreign {
        if let Some((k, _)) = table.get_key_value(*f) {
            ctx.report(
                k.span(),
                format!(
                    "\"{f}\" is only valid for {only_for} servers, [servers.{name}] uses transport \"{}\"",
                    kind.as_str()
                ),
            );
            ok = false;
        }
    }

    let required = if kind == Kind::Stdio { "command" } else { "url" };
    let Some(main) = table.get(required) else {
        ctx.report(
            key.span(),
            format!("[servers.{name}] uses transport \"{}\" but has no \"{required}\"", kind.as_str()),
        );
        return None;
    };

    let transport = match kind {
        Kind::Stdio => {
            let command = ctx.expanded("command", main);
            if command.as_deref() == Some("") {
                ctx.report(main.span(), "\"command\" must not be empty");
                ok = false;
            }
            let args = match table.get("args") {
                Some(v) => ctx.strings("args", v, true, &|_| None),
                None => Some(Vec::new()),
            };
            let env = match table.get("env") {
                Some(v) => ctx.secrets("env", v, &check_env_name, &|_, _| None),
                None => Some(BTreeMap::new()),
            };
            let cwd = match table.get("cwd") {
                Some(v) => ctx.path("cwd", v).map(Some),
                None => Some(None),
            };
            TransportConfig::Stdio { command: command?, args: args?, env: env?, cwd: cwd? }
        }
        Kind::Http | Kind::Sse => {
            let url = ctx.expanded("url", main);
            // The expanded URL may hold a secret, so it is never echoed.
            if let Some(u) = &url
                && !valid_http_url(u)
            {
                ctx.report(main.span(), "\"url\" must be an http:// or https:// url with a host");
                ok = false;
            }
            let headers = match table.get("headers") {
                Some(v) => ctx.secrets("headers", v, &check_header_name, &check_header_value),
                None => Some(BTreeMap::new()),
            };
            let (url, headers) = (url?, headers?);
            if kind == Kind::Http {
                TransportConfig::Http { url, headers }
            } else {
                TransportConfig::Sse { url, headers }
            }
        }
    };
    ok.then_some(transport)
}

fn check_env_name(name: &str) -> Option<String> {
    (name.is_empty() || name.contains(['=', '\0'])).then(|| format!("invalid environment variable name \"{name}\""))
}

pub(crate) fn check_header_name(name: &str) -> Option<String> {
    http::HeaderName::from_bytes(name.as_bytes()).is_err().then(|| format!("invalid http header name \"{name}\""))
}

pub(crate) fn check_header_value(name: &str, value: &str) -> Option<String> {
    http::HeaderValue::from_str(value)
        .is_err()
        .then(|| format!("value of header \"{name}\" is not a valid http header value"))
}

/// `http://` or `https://` followed by a non-empty host. Deliberately
/// small: the HTTP client does the full parse when connecting.
pub(crate) fn valid_http_url(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    let Some(rest) = lower.strip_prefix("https://").or_else(|| lower.strip_prefix("http://")) else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if host_port.starts_with('[') {
        // IPv6 literal: "[::1]:8080".
        host_port.split(']').next().unwrap_or("").trim_start_matches('[')
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    !host.is_empty() && !host.contains(char::is_whitespace)
}

fn parse_backoff(ctx: &mut FileCtx<'_>, server: &str, v: &Val<'_>) -> Option<BackoffConfig> {
    let table = ctx.table("backoff", v)?;
    let place = format!("in [servers.{server}.backoff]");
    let mut b = BackoffConfig::default();
    let mut ok = true;
    for (k, v) in table.iter() {
        ok &= match k.get_ref().as_ref() {
            "initial" => set(&mut b.initial, ctx.positive_duration("backoff.initial", v)),
            "max" => set(&mut b.max, ctx.duration("backoff.max", v)),
            "multiplier" => set(&mut b.multiplier, ctx.number("backoff.multiplier", v, 1.0, None)),
            "jitter" => set(&mut b.jitter, ctx.number("backoff.jitter", v, 0.0, Some(1.0))),
            _ => {
                ctx.unknown_key(k, BACKOFF_KEYS, &place);
                false
            }
        };
    }
    if ok && b.max < b.initial {
        // Point at whichever side the user wrote; `max` is the usual culprit.
        let span = table.get("max").or_else(|| table.get("initial")).map_or_else(|| v.span(), |x| x.span());
        ctx.report(
            span,
            format!(
                "\"backoff.max\" ({}) must not be less than \"backoff.initial\" ({})",
                humantime::format_duration(b.max),
                humantime::format_duration(b.initial)
            ),
        );
        ok = false;
    }
    ok.then_some(b)
}

fn parse_crash_loop(ctx: &mut FileCtx<'_>, server: &str, v: &Val<'_>) -> Option<CrashLoopConfig> {
    let table = ctx.table("crash_loop", v)?;
    let place = format!("in [servers.{server}.crash_loop]");
    let mut c = CrashLoopConfig::default();
    let mut ok = true;
    for (k, v) in table.iter() {
        ok &= match k.get_ref().as_ref() {
            "max_failures" => set(
                &mut c.max_failures,
                ctx.integer("crash_loop.max_failures", v, 1, Some(i64::from(u32::MAX)))
                    .and_then(|n| u32::try_from(n).ok()),
            ),
            "window" => set(&mut c.window, ctx.positive_duration("crash_loop.window", v)),
            "open_for" => set(&mut c.open_for, ctx.positive_duration("crash_loop.open_for", v)),
            _ => {
                ctx.unknown_key(k, CRASH_LOOP_KEYS, &place);
                false
            }
        };
    }
    ok.then_some(c)
}

fn parse_tools(ctx: &mut FileCtx<'_>, server: &str, v: &Val<'_>) -> Option<ToolFilter> {
    let table = ctx.table("tools", v)?;
    let place = format!("in [servers.{server}.tools]");
    let mut t = ToolFilter::default();
    let mut ok = true;
    for (k, v) in table.iter() {
        let key = k.get_ref().as_ref();
        ok &= match key {
            "allow" | "deny" => {
                let path = format!("tools.{key}");
                let check = |g: &str| check_glob(g, &path);
                let globs = ctx.strings(&path, v, false, &check);
                let slot = if key == "allow" { &mut t.allow } else { &mut t.deny };
                set(slot, globs)
            }
            _ => {
                ctx.unknown_key(k, TOOLS_KEYS, &place);
                false
            }
        };
    }
    ok.then_some(t)
}

fn check_glob(glob: &str, key: &str) -> Option<String> {
    let valid =
        !glob.is_empty() && glob.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '*' | '?' | '-'));
    (!valid).then(|| {
        format!(
            "invalid tool pattern \"{glob}\" in \"{key}\", use only letters, digits, \"_\", \".\", \"-\", \"*\" and \"?\""
        )
    })
}

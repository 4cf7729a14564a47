//! The validated configuration model and its defaults.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::secret::{Secret, redact_url};

/// A fully validated configuration: the main file plus every included file.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub daemon: DaemonConfig,
    /// Keyed by server name (the `[servers.NAME]` table key).
    pub servers: BTreeMap<String, ServerConfig>,
    /// Every file that contributed, main file first, then includes in load
    /// order; a reload watcher watches these (and `daemon.include`).
    pub files: Vec<PathBuf>,
    /// Top-level tables reserved for future subsystems (`llm`, `sampling`,
    /// `pipelines`, `policy`), kept raw and not validated so that configs
    /// written for newer daemons still load.
    pub extra: BTreeMap<String, toml::Value>,
}

/// The `[daemon]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonConfig {
    /// `None`: the daemon picks [`super::default_socket_path`] at runtime.
    pub socket: Option<PathBuf>,
    /// `None`: the daemon picks [`super::default_state_dir`] at runtime.
    pub state_dir: Option<PathBuf>,
    /// Directories (every `*.toml` inside, sorted) or files holding more
    /// `[servers.X]` tables; already resolved against the main file's dir.
    pub include: Vec<PathBuf>,
    pub shutdown_grace: Duration,
    pub call_timeout: Duration,
    pub connect_timeout: Duration,
    pub max_message_bytes: usize,
    pub max_result_bytes: usize,
    pub log_format: LogFormat,
    /// An `EnvFilter` directive string, only checked to be non-empty.
    pub log_level: String,
    /// Memory cap of the resource read cache (0 disables it).
    pub resource_cache_bytes: usize,
    /// How long a read stays fresh when the server gives no `ttlMs`.
    pub resource_ttl: Duration,
    /// Loopback address for the Prometheus text endpoint (`/metrics`); `None`: off.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Calls per period from one calling app (told apart by Unix peer credentials).
    pub app_rate_limit: Option<crate::limit::Rate>,
    /// Audit records kept (oldest dropped first).
    pub audit_max_entries: usize,
    /// `trust = "tofu"`: tools a server lists this soon after it is first trusted are
    /// trusted on first use too (servers often register tools right after the handshake).
    pub tofu_window: Duration,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        Self {
            socket: None,
            state_dir: None,
            include: Vec::new(),
            shutdown_grace: Duration::from_secs(5),
            call_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(30),
            max_message_bytes: 8 * 1024 * 1024,
            max_result_bytes: 1024 * 1024,
            log_format: LogFormat::Text,
            log_level: "info".to_owned(),
            resource_cache_bytes: 64 * 1024 * 1024,
            resource_ttl: Duration::from_secs(30),
            metrics_listen: None,
            app_rate_limit: None,
            audit_max_entries: 100_000,
            tofu_window: Duration::from_secs(30),
        }
    }
}

/// `daemon.log_format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl LogFormat {
    pub const ALL: [LogFormat; 2] = [LogFormat::Text, LogFormat::Json];

    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

/// One `[servers.NAME]` table. The supervisor diffs these with `PartialEq`
/// so that only servers whose config changed are restarted on reload.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// The table key; matches `^[a-z0-9-]{1,32}$`.
    pub name: String,
    pub transport: TransportConfig,
    pub protocol: ProtocolPref,
    pub enabled: bool,
    pub connect_timeout: Duration,
    pub call_timeout: Duration,
    /// stdio: spacing of stdin close -> SIGTERM -> SIGKILL.
    pub shutdown_grace: Duration,
    pub max_concurrency: usize,
    pub max_message_bytes: usize,
    /// Zero disables liveness pings.
    pub liveness_interval: Duration,
    pub backoff: BackoffConfig,
    pub crash_loop: CrashLoopConfig,
    pub tools: ToolFilter,
    /// How tool definitions become callable (see [`TrustMode`]).
    pub trust: TrustMode,
    /// `trust = "pinned"`: expected fingerprints by tool name.
    pub pins: BTreeMap<String, String>,
    /// Redact secrets (API keys, tokens, private keys, passwords) from results.
    pub redact_secrets: bool,
    /// Calls per period to this server as a whole.
    pub rate_limit: Option<crate::limit::Rate>,
    /// Calls per period to one tool, by tool name.
    pub tool_rate_limits: BTreeMap<String, crate::limit::Rate>,
    /// Tools annotated `destructiveHint` need the caller's explicit confirmation.
    pub confirm_destructive: bool,
}

/// `trust`: when a tool definition may be called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrustMode {
    /// Trust on first use: first sight pins (unless the scanner objects); later changes quarantine.
    #[default]
    Tofu,
    /// Nothing is callable until an admin approves it (`mcpd trust approve`).
    Approve,
    /// Only definitions whose fingerprints are listed in `pins` are callable.
    Pinned,
}

impl TrustMode {
    pub const ALL: [TrustMode; 3] = [TrustMode::Tofu, TrustMode::Approve, TrustMode::Pinned];

    pub fn as_str(self) -> &'static str {
        match self {
            TrustMode::Tofu => "tofu",
            TrustMode::Approve => "approve",
            TrustMode::Pinned => "pinned",
        }
    }
}

impl ServerConfig {
    /// A server with every optional key at its default, taking the
    /// daemon-wide defaults from `daemon`.
    pub fn with_defaults(name: String, transport: TransportConfig, daemon: &DaemonConfig) -> Self {
        Self {
            name,
            transport,
            protocol: ProtocolPref::Auto,
            enabled: true,
            connect_timeout: daemon.connect_timeout,
            call_timeout: daemon.call_timeout,
            shutdown_grace: Duration::from_secs(3),
            max_concurrency: 32,
            max_message_bytes: daemon.max_message_bytes,
            liveness_interval: Duration::from_secs(30),
            backoff: BackoffConfig::default(),
            crash_loop: CrashLoopConfig::default(),
            tools: ToolFilter::default(),
            trust: TrustMode::Tofu,
            pins: BTreeMap::new(),
            redact_secrets: true,
            rate_limit: None,
            tool_rate_limits: BTreeMap::new(),
            confirm_destructive: false,
        }
    }
}

/// How to reach a server.
#[derive(Clone, PartialEq, Eq)]
pub enum TransportConfig {
    /// A child process speaking newline-delimited JSON-RPC on stdin/stdout.
    Stdio {
        command: String,
        args: Vec<String>,
        env: BTreeMap<String, Secret>,
        /// Already resolved against the defining file's directory.
        cwd: Option<PathBuf>,
    },
    /// Streamable HTTP.
    Http { url: String, headers: BTreeMap<String, Secret> },
    /// Legacy HTTP+SSE (protocol 2024-11-05).
    Sse { url: String, headers: BTreeMap<String, Secret> },
}

impl TransportConfig {
    /// The config spelling: "stdio", "http" or "sse".
    pub fn kind(&self) -> &'static str {
        match self {
            TransportConfig::Stdio { .. } => "stdio",
            TransportConfig::Http { .. } => "http",
            TransportConfig::Sse { .. } => "sse",
        }
    }
}

// Hand-written because `url` may have been built from `${env:..}` secrets
// (e.g. a token in the query string) and must not leak through `{:?}`.
impl fmt::Debug for TransportConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransportConfig::Stdio { command, args, env, cwd } => f
                .debug_struct("Stdio")
                .field("command", command)
                .field("args", args)
                .field("env", env)
                .field("cwd", cwd)
                .finish(),
            TransportConfig::Http { url, headers } => {
                f.debug_struct("Http").field("url", &redact_url(url)).field("headers", headers).finish()
            }
            TransportConfig::Sse { url, headers } => {
                f.debug_struct("Sse").field("url", &redact_url(url)).field("headers", headers).finish()
            }
        }
    }
}

/// `protocol`: which MCP protocol revision to offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProtocolPref {
    /// Offer the newest revision and accept what the server answers.
    #[default]
    Auto,
    V2026_07_28,
    V2025_11_25,
    V2025_06_18,
    V2025_03_26,
    V2024_11_05,
}

impl ProtocolPref {
    pub const ALL: [ProtocolPref; 6] = [
        ProtocolPref::Auto,
        ProtocolPref::V2026_07_28,
        ProtocolPref::V2025_11_25,
        ProtocolPref::V2025_06_18,
        ProtocolPref::V2025_03_26,
        ProtocolPref::V2024_11_05,
    ];

    /// The config spelling ("auto" or the revision date).
    pub fn as_str(self) -> &'static str {
        match self {
            ProtocolPref::Auto => "auto",
            ProtocolPref::V2026_07_28 => "2026-07-28",
            ProtocolPref::V2025_11_25 => "2025-11-25",
            ProtocolPref::V2025_06_18 => "2025-06-18",
            ProtocolPref::V2025_03_26 => "2025-03-26",
            ProtocolPref::V2024_11_05 => "2024-11-05",
        }
    }

    /// The pinned revision, or `None` for `auto`.
    pub fn pinned(self) -> Option<&'static str> {
        match self {
            ProtocolPref::Auto => None,
            other => Some(other.as_str()),
        }
    }
}

/// `backoff = { initial, max, multiplier, jitter }`: restart delays.
#[derive(Debug, Clone, PartialEq)]
pub struct BackoffConfig {
    pub initial: Duration,
    pub max: Duration,
    pub multiplier: f64,
    /// Fraction of the delay randomised, 0.0..=1.0.
    pub jitter: f64,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        Self { initial: Duration::from_millis(500), max: Duration::from_secs(60), multiplier: 2.0, jitter: 0.3 }
    }
}

/// `crash_loop = { max_failures, window, open_for }`: after `max_failures`
/// failures within `window`, stop restarting for `open_for`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrashLoopConfig {
    pub max_failures: u32,
    pub window: Duration,
    pub open_for: Duration,
}

impl Default for CrashLoopConfig {
    fn default() -> Self {
        Self { max_failures: 5, window: Duration::from_secs(60), open_for: Duration::from_secs(5 * 60) }
    }
}

/// `tools = { allow = [..], deny = [..] }`: glob patterns (`*`, `?`) over
/// tool names; deny wins over allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolFilter {
    pub allow: Vec<String>,
    pub deny: Vec<String>,
}

impl Default for ToolFilter {
    fn default() -> Self {
        Self { allow: vec!["*".to_owned()], deny: Vec::new() }
    }
}

impl ToolFilter {
    /// Whether a tool of this name is exposed.
    pub fn allows(&self, tool: &str) -> bool {
        self.allow.iter().any(|g| glob_match(g, tool)) && !self.deny.iter().any(|g| glob_match(g, tool))
    }
}

/// Matches `*` (any run) and `?` (one char); iterative with single-star
/// backtracking so pathological patterns stay linear-ish.
pub(crate) fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == '?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

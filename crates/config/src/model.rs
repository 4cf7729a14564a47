//! The validated configuration model and its defaults.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::secret::{Secret, redact_url};

/// A fully validated configuration: the main file plus every included file.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub daemon: DaemonConfig,
    /// Keyed by server name (the `[servers.NAME]` table key).
    pub servers: BTreeMap<String, ServerConfig>,
    /// LLM providers, keyed by name (the `[llm.NAME]` table key).
    pub llm: BTreeMap<String, LlmConfig>,
    /// Every file that contributed, main file first, then includes in load
    /// order; a reload watcher watches these (and `daemon.include`).
    pub files: Vec<PathBuf>,
    /// Top-level tables reserved for future subsystems (`sampling`,
    /// `policy`), kept raw and not validated so that configs
    /// written for newer daemons still load.
    pub extra: BTreeMap<String, toml::Value>,
    /// `[[pipelines]]` keyed by name; each is the virtual tool `pipeline.NAME`.
    pub pipelines: BTreeMap<String, PipelineConfig>,
    /// `[sampling]`: how servers' sampling requests are answered (servers may override).
    pub sampling: SamplingConfig,
    /// `[profiles.NAME]`: what each MCP host sees through the MCP front end.
    pub profiles: BTreeMap<String, ProfileConfig>,
    /// Every value that came from `${env:}` / `${file:}` and every secret-typed value
    /// (env, headers, OAuth client secret, LLM key), at least `MIN_SECRET_LEN` long, longest
    /// first: the daemon registers them with its redactor so none is ever printed.
    pub secrets: Vec<Secret>,
}

/// Where a server's sampling requests go, and their budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SamplingConfig {
    pub route: SamplingRoute,
    /// Requests per period from one server.
    pub rate: Option<crate::rate::Rate>,
    /// Cap on a request's `maxTokens`.
    pub max_tokens: u32,
    /// Requests of one server in flight at once (nested requests count).
    pub max_concurrent: u32,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        Self { route: SamplingRoute::App, rate: "30/m".parse().ok(), max_tokens: 4096, max_concurrent: 2 }
    }
}

/// `route`: "app" (an attached app answers), "llm" (a provider chosen by model hints),
/// "llm:NAME" (that provider), or "refuse".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SamplingRoute {
    App,
    Llm(Option<String>),
    Refuse,
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
    pub app_rate_limit: Option<crate::rate::Rate>,
    /// Audit records kept (oldest dropped first).
    pub audit_max_entries: usize,
    /// `trust = "tofu"`: tools a server lists this soon after it is first trusted are
    /// trusted on first use too (servers often register tools right after the handshake).
    pub tofu_window: Duration,
    /// The MCP front end over Streamable HTTP (`mcp_listen`, `mcp_auth`, ...).
    pub mcp: McpHttpConfig,
    /// A static embedding model's directory for tool search's semantic ranker; `None`: the
    /// lexical ranker alone. Checked at load to hold the model's files.
    pub search_model: Option<PathBuf>,
    /// Stdio servers starting (spawned, not yet through their handshake) at once; 0: twice
    /// the CPU count. A start storm of heavy servers otherwise starves every one of them
    /// past its connect timeout.
    pub max_starting: usize,
    /// Threads of the daemon's async runtime; 0: half the CPUs, at least one. On a small
    /// machine the client, the daemon and the servers share the cores, and a second
    /// worker mostly adds cross-thread wake-ups (measured in tests/bench/README.md).
    pub worker_threads: usize,
    /// How server processes are contained (`containment`).
    pub containment: ContainmentMode,
}

/// `[daemon] containment`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ContainmentMode {
    /// A cgroup v2 per server where the daemon may create them, else the process tree.
    #[default]
    Auto,
    /// Process groups, `/proc` descendants and the daemon as child subreaper, even where
    /// cgroups could be used.
    ProcessTree,
}

/// `[daemon] mcp_*`: the MCP front end's Streamable HTTP endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct McpHttpConfig {
    /// `mcp_listen`; `None`: the endpoint is off.
    pub listen: Option<std::net::SocketAddr>,
    /// `mcp_auth`: a bearer token on every request (the default), or none (loopback only).
    pub auth: McpAuth,
    /// `mcp_token = "${file:PATH}"`: where the bearer token lives; `None`: `mcp-token` in the
    /// state directory. The daemon writes it (mode 0600) on first start when it is absent.
    pub token_file: Option<PathBuf>,
    /// `mcp_origins`: browser origins allowed besides the endpoint's own loopback origins.
    pub origins: Vec<String>,
    /// `mcp_hosts`: `Host` values allowed besides loopback names (a name-based bind).
    pub hosts: Vec<String>,
    /// `mcp_tls_cert` / `mcp_tls_key`: PEM files; both or neither. A non-loopback
    /// `mcp_listen` needs them and token auth.
    pub tls: Option<TlsFiles>,
}

/// A certificate chain and its private key, PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// `mcp_auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum McpAuth {
    #[default]
    Token,
    /// No token: only for a loopback bind (the conformance suite cannot send headers).
    None,
}

impl McpAuth {
    pub fn as_str(self) -> &'static str {
        match self {
            McpAuth::Token => "token",
            McpAuth::None => "none",
        }
    }
}

/// One `[profiles.NAME]` table: the view of the registry one MCP host gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileConfig {
    pub name: String,
    /// Servers whose tools, resources and prompts are served (`pipeline` names the
    /// pipelines); `None`: every server and the pipelines.
    pub servers: Option<Vec<String>>,
    /// Globs over qualified names (`server.tool`); deny wins.
    pub tools: ToolFilter,
    /// How tool and prompt names are spelled for the host.
    pub names: NameStyle,
    /// Whether `tools/list` is the full list or only the search meta-tools.
    pub discovery: Discovery,
}

impl ProfileConfig {
    /// The profile a host gets when it names none: everything, dotted names.
    pub fn everything() -> Self {
        ProfileConfig {
            name: DEFAULT_PROFILE.to_owned(),
            servers: None,
            tools: ToolFilter::default(),
            names: NameStyle::Dotted,
            discovery: Discovery::List,
        }
    }

    /// Whether this profile serves `server`'s items at all.
    pub fn serves(&self, server: &str) -> bool {
        self.servers.as_ref().is_none_or(|s| s.iter().any(|n| n == server))
    }
}

/// The profile served when none is named; a `[profiles.default]` table replaces it.
pub const DEFAULT_PROFILE: &str = "default";

/// `names`: how a profile spells `server.tool` for its host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NameStyle {
    /// `server.tool`, as the gRPC API names tools.
    #[default]
    Dotted,
    /// `server__tool`: for hosts whose tool names allow only `[A-Za-z0-9_-]`.
    Alias,
    /// The tool's own name: for a profile of exactly one server (checked at load).
    Bare,
}

/// `discovery`: how a profile's host finds its tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Discovery {
    /// `tools/list` lists every served tool.
    #[default]
    List,
    /// `tools/list` lists only `search_tools`, `describe_tool` and `call_tool`: for hosts
    /// (and models) that degrade, or refuse, past a few dozen tools.
    Search,
}

impl Discovery {
    pub const ALL: [Discovery; 2] = [Discovery::List, Discovery::Search];

    pub fn as_str(self) -> &'static str {
        match self {
            Discovery::List => "list",
            Discovery::Search => "search",
        }
    }
}

impl NameStyle {
    pub const ALL: [NameStyle; 3] = [NameStyle::Dotted, NameStyle::Alias, NameStyle::Bare];

    pub fn as_str(self) -> &'static str {
        match self {
            NameStyle::Dotted => "dotted",
            NameStyle::Alias => "alias",
            NameStyle::Bare => "bare",
        }
    }
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
            search_model: None,
            max_starting: 0,
            worker_threads: 0,
            containment: ContainmentMode::Auto,
            mcp: McpHttpConfig::default(),
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
    /// The command and args (a JSON array pair) or the URL as the config writes them,
    /// before `${}` substitution; empty for configs built in code. The server's identity
    /// is built from it, so a rotated secret keeps the server's trust.
    pub source: String,
    pub protocol: ProtocolPref,
    pub enabled: bool,
    pub connect_timeout: Duration,
    pub call_timeout: Duration,
    /// stdio: spacing of stdin close -> SIGTERM -> SIGKILL.
    pub shutdown_grace: Duration,
    pub max_concurrency: usize,
    pub max_message_bytes: usize,
    /// stdio: messages per second the server may send beyond answers to what mcpd sent
    /// it; past it mcpd reads the server slower. Zero: no budget.
    pub notification_rate: u32,
    /// Zero disables liveness pings.
    pub liveness_interval: Duration,
    /// Tools are listed again this often even without a list-changed notification (a
    /// server that changes silently is caught); zero turns the periodic re-list off. A list
    /// result's `ttlMs` asks for an earlier one (at most once a second).
    pub tools_refresh: Duration,
    pub backoff: BackoffConfig,
    pub crash_loop: CrashLoopConfig,
    pub tools: ToolFilter,
    /// How tool definitions become callable (see [`TrustMode`]).
    pub trust: TrustMode,
    /// `tofu_new_tools = "trust"`: under tofu, a tool the server adds after its first use is
    /// trusted on sight too (for servers that legitimately grow). The default,
    /// `"quarantine"`, makes it wait for `mcpd trust approve`.
    pub tofu_trusts_new_tools: bool,
    /// `trust = "pinned"`: expected fingerprints by tool name.
    pub pins: BTreeMap<String, String>,
    /// Redact secrets (API keys, tokens, private keys, passwords) from results.
    pub redact_secrets: bool,
    /// Calls per period to this server as a whole.
    pub rate_limit: Option<crate::rate::Rate>,
    /// Calls per period to one tool, by tool name.
    pub tool_rate_limits: BTreeMap<String, crate::rate::Rate>,
    /// Tools annotated `destructiveHint` need the caller's explicit confirmation.
    pub confirm_destructive: bool,
    /// Overrides `[sampling]` for this server.
    pub sampling: Option<SamplingConfig>,
    /// Roots offered to the server (`file://` URIs); changing only these on reload sends
    /// `notifications/roots/list_changed` instead of restarting the server.
    pub roots: Vec<String>,
    /// OAuth 2.1 for an HTTP server: authorization code (a person logs in once with
    /// `mcpd auth login`) or client credentials (machine-to-machine).
    pub oauth: Option<OAuthConfig>,
}

/// `[servers.NAME.oauth]`. mcpd discovers the authorization server from the MCP server
/// (protected resource metadata, then RFC 8414 / OpenID discovery), sends the RFC 8707
/// `resource`, keeps tokens only in its store and uses them only for this server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthConfig {
    pub grant: OAuthGrant,
    /// A client registered with the authorization server out of band. Without it mcpd uses
    /// `client_metadata_url` (when the server supports client ID metadata documents), else
    /// dynamic registration.
    pub client_id: Option<String>,
    /// The pre-registered client's secret (`client_secret_basic` or `_post`, as the
    /// authorization server advertises); none for a public client.
    pub client_secret: Option<Secret>,
    /// client_credentials with `private_key_jwt` (RFC 7523): the client's PEM private key
    /// (RSA or EC), instead of a secret.
    pub private_key: Option<Secret>,
    /// How the `private_key_jwt` assertion is signed.
    pub signing_algorithm: JwtAlgorithm,
    /// Scopes to ask for; empty = the challenge's `scope`, else the resource's `scopes_supported`.
    pub scopes: Vec<String>,
    /// An https URL where mcpd's client ID metadata document is hosted.
    pub client_metadata_url: Option<String>,
    /// `client_name` in dynamic registration.
    pub client_name: String,
    /// Port of the loopback redirect listener (`http://127.0.0.1:PORT/callback`); 0 = any free port.
    pub redirect_port: u16,
    /// Runs with the authorization URL appended whenever a login needs a browser (headless
    /// setups, tests); without it a person runs `mcpd auth login NAME`.
    pub login_command: Vec<String>,
    /// Let OAuth URLs use http:// and loopback addresses (servers and IdPs on this machine).
    pub allow_loopback: bool,
    /// Hosts or CIDR ranges that OAuth URLs may reach although they are private.
    pub allow: Vec<String>,
}

/// `signing_algorithm` of a `private_key_jwt` client assertion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtAlgorithm {
    Rs256,
    Rs384,
    Rs512,
    Es256,
    Es384,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuthGrant {
    /// The user authorizes in a browser; mcpd stores and refreshes the tokens.
    AuthorizationCode,
    /// The client's own credentials (SEP-1046); needs `client_id` and `client_secret` or
    /// `private_key`.
    ClientCredentials,
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
            source: String::new(),
            protocol: ProtocolPref::Auto,
            enabled: true,
            connect_timeout: daemon.connect_timeout,
            call_timeout: daemon.call_timeout,
            shutdown_grace: Duration::from_secs(3),
            max_concurrency: 32,
            max_message_bytes: daemon.max_message_bytes,
            notification_rate: 1000,
            liveness_interval: Duration::from_secs(30),
            tools_refresh: Duration::from_secs(300),
            backoff: BackoffConfig::default(),
            crash_loop: CrashLoopConfig::default(),
            tools: ToolFilter::default(),
            trust: TrustMode::Tofu,
            tofu_trusts_new_tools: false,
            pins: BTreeMap::new(),
            redact_secrets: true,
            rate_limit: None,
            tool_rate_limits: BTreeMap::new(),
            confirm_destructive: false,
            sampling: None,
            roots: Vec::new(),
            oauth: None,
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
pub fn glob_match(pattern: &str, text: &str) -> bool {
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

/// One `[llm.NAME]` table: an LLM provider (used for sampling and agents).
#[derive(Clone, PartialEq, Eq)]
pub struct LlmConfig {
    /// The table key; matches `^[a-z0-9-]{1,32}$`.
    pub name: String,
    pub kind: LlmKind,
    /// No trailing `/`. `openai`: includes the API version (`https://api.openai.com/v1`);
    /// `anthropic`: the host only (`https://api.anthropic.com`). May hold `${env:..}` values.
    pub base_url: String,
    /// Sent as `Authorization: Bearer` (openai) or `x-api-key` (anthropic); `None` for local
    /// servers that need no key.
    pub api_key: Option<Secret>,
    /// The model asked for when a request names none.
    pub model: String,
    /// Bound on one chat completion, retries and their waits included.
    pub timeout: Duration,
    /// Retries after HTTP 429 or 5xx.
    pub max_retries: u32,
    /// Upper bound on the tokens one completion may generate.
    pub max_tokens: u32,
    /// Extra request headers (values are secrets); they override the defaults.
    pub headers: BTreeMap<String, Secret>,
    /// Most tools an agent run offers this model as they are; a run over more is offered
    /// the search meta-tools (`search_tools`, `describe_tool`, `call_tool`) instead.
    pub max_tools: u32,
}

/// Tools an agent run offers a model as they are, unless `max_tools` says otherwise: past a
/// few dozen, models pick worse, and some providers refuse more than 128.
pub(crate) const DEFAULT_MAX_TOOLS: u32 = 40;

impl LlmConfig {
    /// Defaults for every optional key of a provider of `kind`.
    pub fn with_defaults(name: String, kind: LlmKind, model: String) -> Self {
        Self {
            name,
            kind,
            base_url: kind.default_base_url().to_owned(),
            api_key: None,
            model,
            timeout: Duration::from_secs(60),
            max_retries: 3,
            max_tokens: 4096,
            headers: BTreeMap::new(),
            max_tools: DEFAULT_MAX_TOOLS,
        }
    }
}

// Hand-written because `base_url` may have been built from `${env:..}` secrets.
impl fmt::Debug for LlmConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LlmConfig")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("base_url", &redact_url(&self.base_url))
            .field("api_key", &self.api_key)
            .field("model", &self.model)
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .field("max_tokens", &self.max_tokens)
            .field("max_tools", &self.max_tools)
            .field("headers", &self.headers)
            .finish()
    }
}

/// `kind`: the wire format an LLM provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LlmKind {
    /// OpenAI-compatible chat completions (OpenAI, vLLM, llama.cpp, Ollama, LiteLLM, ...).
    OpenAi,
    /// The Anthropic Messages API.
    Anthropic,
}

impl LlmKind {
    pub const ALL: [LlmKind; 2] = [LlmKind::OpenAi, LlmKind::Anthropic];

    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            LlmKind::OpenAi => "openai",
            LlmKind::Anthropic => "anthropic",
        }
    }

    /// `base_url` when the table sets none.
    pub fn default_base_url(self) -> &'static str {
        match self {
            LlmKind::OpenAi => "https://api.openai.com/v1",
            LlmKind::Anthropic => "https://api.anthropic.com",
        }
    }

    /// The header that carries `api_key`.
    pub fn key_header(self) -> &'static str {
        match self {
            LlmKind::OpenAi => "authorization",
            LlmKind::Anthropic => "x-api-key",
        }
    }
}

/// Default of a pipeline's `max_depth`.
pub const PIPELINE_DEFAULT_DEPTH: u32 = 4;
/// Largest `max_depth` a pipeline may set; also the hard cap at runtime.
pub const PIPELINE_MAX_DEPTH: u32 = 8;

/// One `[[pipelines]]` entry, served as the virtual tool `pipeline.NAME`.
///
/// Arguments hold `{{...}}` templates as written; the loader has checked their
/// syntax and that they only name earlier steps, so the engine
/// ([`crate::pipeline`]) only resolves them.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineConfig {
    /// Matches `^[a-z0-9-]{1,32}$`.
    pub name: String,
    /// Empty when the config gives none.
    pub description: String,
    pub input_schema: InputSchema,
    /// How many pipelines deep calls below this one may nest (1..=8).
    pub max_depth: u32,
    /// In order; never empty.
    pub steps: Vec<PipelineStep>,
}

/// One `[[pipelines.steps]]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineStep {
    /// Matches `^[a-z0-9_]{1,32}$`, unique in its pipeline.
    pub id: String,
    pub kind: StepKind,
}

/// What a step does: exactly one of `tool`, `parallel` or `branch`.
#[derive(Debug, Clone, PartialEq)]
pub enum StepKind {
    /// `tool` + `args`.
    Call(ToolCall),
    /// `parallel = [{ id, tool, args }, ..]`: branches run concurrently.
    Parallel(Vec<ParallelBranch>),
    /// `branch = [{ when, tool, args }, ..]` + `default`: the first route whose
    /// condition holds, else the default.
    Branch { routes: Vec<Route>, default: ToolCall },
}

/// A tool to call and its (templated) arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    /// `server.tool` or `pipeline.NAME`.
    pub tool: String,
    /// The arguments object; string values may contain `{{...}}` templates.
    pub args: serde_json::Map<String, serde_json::Value>,
}

/// One entry of a `parallel` step.
#[derive(Debug, Clone, PartialEq)]
pub struct ParallelBranch {
    /// Matches `^[a-z0-9_]{1,32}$`, unique in its step.
    pub id: String,
    pub call: ToolCall,
}

/// One entry of a `branch` step.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub when: Condition,
    pub call: ToolCall,
}

/// `when = { path = "steps.ID.structured.x", <test> = ... }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// A reference like those inside `{{...}}`, without the braces.
    pub path: String,
    pub test: ConditionTest,
}

/// The test of a [`Condition`]. A path without a value makes every test
/// false except `not_equals` (true) and `exists = false` (true).
#[derive(Debug, Clone, PartialEq)]
pub enum ConditionTest {
    /// JSON equality; numbers compare by value (`1` equals `1.0`).
    Equals(serde_json::Value),
    NotEquals(serde_json::Value),
    /// A substring of a string, an element of an array, or a key of an object.
    Contains(serde_json::Value),
    /// Whether the path has a non-null value.
    Exists(bool),
    /// A regex search in a string value.
    Matches(Pattern),
}

/// A compiled regex that compares (and prints) by its source text.
#[derive(Clone)]
pub struct Pattern(regex::Regex);

impl Pattern {
    pub fn new(source: &str) -> Result<Self, regex::Error> {
        regex::Regex::new(source).map(Self)
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn is_match(&self, text: &str) -> bool {
        self.0.is_match(text)
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pattern({:?})", self.as_str())
    }
}

/// A pipeline's `input_schema`, compiled once at load so each run validates
/// its input without compiling on the runtime. Compares by the schema JSON.
#[derive(Clone)]
pub struct InputSchema {
    json: serde_json::Value,
    validator: Option<Arc<jsonschema::Validator>>,
}

impl InputSchema {
    /// Compiles `json`; the error says why it does not compile.
    pub fn new(json: serde_json::Value) -> Result<Self, String> {
        let validator = jsonschema::validator_for(&json).map_err(|e| e.to_string())?;
        Ok(Self { json, validator: Some(Arc::new(validator)) })
    }

    /// The schema as written (the virtual tool's `inputSchema`).
    pub fn json(&self) -> &serde_json::Value {
        &self.json
    }

    /// Every violation of `input`, joined; at most 5 are listed.
    pub fn check(&self, input: &serde_json::Value) -> Result<(), String> {
        const LISTED: usize = 5;
        let Some(validator) = &self.validator else {
            return Ok(());
        };
        let errors: Vec<String> = validator
            .iter_errors(input)
            .map(|e| {
                let at = e.instance_path().to_string();
                if at.is_empty() { e.to_string() } else { format!("{e} (at {at})") }
            })
            .collect();
        if errors.is_empty() {
            return Ok(());
        }
        let mut text = errors.iter().take(LISTED).cloned().collect::<Vec<_>>().join("; ");
        if errors.len() > LISTED {
            text.push_str(&format!("; and {} more", errors.len() - LISTED));
        }
        Err(text)
    }
}

impl Default for InputSchema {
    /// `{"type": "object"}`: any arguments object.
    fn default() -> Self {
        let json = serde_json::json!({ "type": "object" });
        // This schema always compiles; should it not, inputs go unchecked
        // rather than the daemon failing.
        let validator = jsonschema::validator_for(&json).ok().map(Arc::new);
        Self { json, validator }
    }
}

impl PartialEq for InputSchema {
    fn eq(&self, other: &Self) -> bool {
        self.json == other.json
    }
}

impl fmt::Debug for InputSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InputSchema({})", self.json)
    }
}

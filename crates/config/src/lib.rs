//! mcpd's config: parse, validate (collecting every problem), resolve secrets; and
//! [`import`], which turns other MCP clients' configs into mcpd's.
//!
//! The config is TOML: an optional `[daemon]` table, `[servers.NAME]`
//! tables and `[llm.NAME]` tables (LLM providers), plus more
//! `[servers.NAME]` tables in files named by
//! `daemon.include`. Loading never stops at the first problem: every
//! problem in every file is reported with `file:line:col`, so one run of
//! `mcpd check` shows everything to fix. The only exception is a TOML
//! syntax error, which is the single problem reported for that file.
//!
//! String values of `command`, `args`, `cwd`, `env`, `headers`, `url`,
//! `base_url`, `api_key`, `socket` and `state_dir` may contain `${env:NAME}` and `${file:PATH}`
//! (relative to the file that mentions it, trailing newlines trimmed);
//! `$${` is a literal `${`. `env` and `headers` values are [`Secret`]s.
//!
//! `[[pipelines]]` (composed tools, run by the daemon's pipeline engine) live in the main
//! file and are validated after the includes, since their steps name servers
//! that included files may define.

#![forbid(unsafe_code)]

pub mod import;
mod llm;
mod load;
mod mcp;
mod model;
mod paths;
mod pipeline;
mod problem;
pub mod rate;
mod reader;
mod secret;
mod server;
mod units;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

pub use model::glob_match;
pub use model::{
    BackoffConfig, Config, CrashLoopConfig, DaemonConfig, LlmConfig, LlmKind, LogFormat, ProtocolPref, ServerConfig,
    ToolFilter, TransportConfig, TrustMode,
};
pub use model::{
    Condition, ConditionTest, InputSchema, PIPELINE_DEFAULT_DEPTH, PIPELINE_MAX_DEPTH, ParallelBranch, Pattern,
    PipelineConfig, PipelineStep, Route, StepKind, ToolCall,
};
pub use model::{
    ContainmentMode, DEFAULT_PROFILE, Discovery, McpAuth, McpHttpConfig, NameStyle, ProfileConfig, TlsFiles,
};
pub use model::{JwtAlgorithm, OAuthConfig, OAuthGrant, SamplingConfig, SamplingRoute};
pub use pipeline::{PIPELINE_SERVER, Piece, parse_template, split_path};
pub use problem::{ConfigError, Problem};
pub use secret::{Secret, redact_url};

/// Process exit code for an unusable config (`EX_CONFIG` from sysexits.h).
pub const EXIT_CONFIG: i32 = 78;

/// Reads and validates the config at `path` and every file it includes,
/// resolving `${env:..}` from the process environment.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let src = std::fs::read_to_string(path).map_err(|e| ConfigError {
        problems: vec![Problem {
            file: path.to_path_buf(),
            line: 1,
            col: 1,
            message: format!("cannot read config file: {}", problem::io_message(&e)),
        }],
    })?;
    load_str(&src, path, &|name| std::env::var(name).ok())
}

/// Like [`load`] with the main file's text given; `origin` names it in
/// problems and anchors relative paths and includes; `env` resolves
/// `${env:NAME}`.
pub fn load_str(src: &str, origin: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    load::load_str(src, origin, env)
}

/// `$XDG_RUNTIME_DIR/mcpd/mcpd.sock`; as root `/run/mcpd/mcpd.sock`;
/// otherwise `/tmp/mcpd-$UID/mcpd.sock`.
pub fn default_socket_path() -> PathBuf {
    paths::socket_path(&paths::Identity::current())
}

/// `$XDG_STATE_HOME/mcpd`; as root `/var/lib/mcpd`; otherwise
/// `$HOME/.local/state/mcpd` (or `/tmp/mcpd-$UID/state` without a home).
pub fn default_state_dir() -> PathBuf {
    paths::state_dir(&paths::Identity::current())
}

impl Config {
    /// The configured socket, or the runtime default.
    pub fn socket_path(&self) -> PathBuf {
        self.daemon.socket.clone().unwrap_or_else(default_socket_path)
    }

    /// The configured state directory, or the runtime default.
    pub fn state_dir(&self) -> PathBuf {
        self.daemon.state_dir.clone().unwrap_or_else(default_state_dir)
    }
}

//! mcpd: one MCP client for the whole machine. This is the core crate; the leaf crates it
//! builds on cannot reach it (`tests/layering/check.py` keeps it so).
//!
//! # Layout
//! - Leaf crates, re-exported here under their old module names: [`config`] and [`import`]
//!   (`mcpd-config`), [`integrity`] and [`redact`] and the SSRF checks (`mcpd-guard`, pure),
//!   [`llm`] (`mcpd-llm`), [`store`] (`mcpd-store`, the only crate that depends on sled).
//! - [`call`]: the call core, the one path every caller takes (gRPC handlers, agents,
//!   pipelines): checks, send, bound and redact, audit and metrics. [`live`]: the snapshot
//!   of config, policy, pipelines and providers that a reload swaps whole.
//! - [`supervisor`] starts one [`session`] task per server; each owns its
//!   [`transport`] (stdio child, Streamable HTTP, legacy SSE), its [`state`] and its
//!   reconnect policy ([`backoff`]). [`upstream`] is the handle the rest reads.
//! - [`registry`]: the merged `server.tool` namespace, read lock-free by [`call`] and [`api`].
//! - [`resource`]: resources, prompts and completion across servers; reads cached by [`cache`].
//! - [`agent`] and [`pipeline`]: bounded loops over the call core.
//! - [`api`]: the gRPC front end, a thin translation over the core; errors become statuses
//!   only in `api/status.rs`. [`mcp`]: the MCP front end (the `mcpd mcp` bridge's socket and
//!   the Streamable HTTP endpoint), the same kind of translation for MCP hosts.
//! - [`metrics`]: per-tool counters and latency histograms (Status and Prometheus text).
//! - [`daemon`]: the state front ends share, and reload. [`serve`]: wiring, signals,
//!   shutdown. [`reaper`]: kills server process groups when the daemon dies.
#![forbid(unsafe_code)]

pub use mcpd_config::{self as config, import};
pub use mcpd_guard::{integrity, known, redact};
pub use mcpd_llm as llm;
pub use mcpd_store as store;

pub mod agent;
pub mod api;
pub mod attach;
pub mod backoff;
pub mod cache;
pub mod call;
pub mod contain;
pub mod daemon;
pub mod discovery;
pub mod error;
pub mod event;
pub mod host;
pub mod limit;
pub mod listing;
pub mod live;
pub mod mcp;
pub mod metrics;
pub mod oauth;
pub mod pipeline;
pub mod policy;
pub mod reaper;
pub mod registry;
pub mod requests;
pub mod resource;
pub mod sampling;
pub mod serve;
pub mod session;
pub mod ssrf;
pub mod state;
pub mod supervisor;
#[cfg(test)]
mod testing;
pub mod transport;
pub mod trust;
pub mod upstream;
pub mod util;

//! mcpd: one MCP client for the whole machine.
//!
//! # Layout
//! - [`config`]: parse and validate the TOML config, collecting every problem.
//! - [`supervisor`] starts one [`session`] task per server; each owns its
//!   [`transport`] (stdio child, Streamable HTTP, legacy SSE) and reconnect policy ([`backoff`]).
//! - [`registry`]: the merged `server.tool` namespace, read lock-free by [`call`] and [`api`].
//! - [`resource`]: resources, prompts and completion across servers; reads cached by [`cache`].
//! - [`metrics`]: per-tool counters and latency histograms (Status and Prometheus text).
//! - [`store`]: the only module that touches sled. [`reaper`]: kills server process
//!   groups when the daemon dies. [`daemon`]: wiring, signals, shutdown.
#![forbid(unsafe_code)]

pub mod agent;
pub mod api;
pub mod attach;
pub mod backoff;
pub mod cache;
pub mod call;
pub mod config;
pub mod daemon;
pub mod error;
pub mod event;
pub mod import;
pub mod integrity;
pub mod limit;
pub mod live;
pub mod llm;
pub mod metrics;
pub mod oauth;
pub mod pipeline;
pub mod policy;
pub mod reaper;
pub mod redact;
pub mod registry;
pub mod requests;
pub mod resource;
pub mod sampling;
pub mod serve;
pub mod session;
pub mod ssrf;
pub mod state;
pub mod store;
pub mod supervisor;
pub mod transport;
pub mod trust;
pub mod upstream;
pub mod util;

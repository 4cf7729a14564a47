//! End-to-end tests: a real `mcpd` binary, real MCP peers (npm reference servers, the
//! official Python SDK, a PyPI reference server) and our fault-injection server.
mod agent;
mod audit;
mod auth;
mod cli;
mod discovery;
mod faults;
mod integrity;
mod interop;
mod lifecycle;
mod llm;
mod mcp_front;
mod oauth;
mod pipelines;
mod reload;
mod requests;
mod resources;
mod search;
mod secrets;
mod store;
mod systemd;
mod tasks;

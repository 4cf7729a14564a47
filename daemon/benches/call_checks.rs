//! Benchmark (not a test): what the per-call policy and integrity checks add to a call.
//!
//! Measures, on one tool of a realistic registry (50 servers x 20 tools), the checks
//! `call::authorize` runs before any I/O: resolving `server.tool` in the lock-free snapshot,
//! the trust verdict (pin lookup + fingerprint comparison, on every call), and the rate limits
//! (tool, server and per-app token buckets). Run: `cargo bench -p mcpd --bench call_checks`.
//! Target: median under 5 µs.
use std::{sync::Arc, time::Instant};

use mcpd::{
    config::{self, Config},
    event::EventBus,
    policy::Policy,
    registry::{Registry, build_server_tools},
    trust::{Trust, Verdict},
    upstream::Upstream,
};

const SERVERS: usize = 50;
const TOOLS: usize = 20;
const ROUNDS: usize = 200_000;

fn config() -> Config {
    let mut text = String::from("[daemon]\napp_rate_limit = \"1000000000/s\"\n");
    for s in 0..SERVERS {
        text.push_str(&format!(
            "[servers.s{s}]\ncommand = \"x\"\nrate_limit = \"1000000000/s\"\ntool_rate_limits = {{ t7 = \"1000000000/s\" }}\n"
        ));
    }
    config::load_str(&text, std::path::Path::new("bench.toml"), &|_| None).expect("bench config is valid")
}

fn tool(name: &str) -> rmcp::model::Tool {
    serde_json::from_value(serde_json::json!({
        "name": name,
        "description": "Read the complete contents of a file from the file system.",
        "inputSchema": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
        "annotations": {"readOnlyHint": true}
    }))
    .expect("tool JSON")
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let cfg = config();
    let registry = Registry::default();
    let trust = Trust::in_memory();
    let mut upstreams = Vec::new();
    for (name, scfg) in &cfg.servers {
        let up = Arc::new(Upstream::new(Arc::new(scfg.clone()), EventBus::default()));
        let tools: Vec<_> = (0..TOOLS).map(|t| tool(&format!("t{t}"))).collect();
        let (st, _) = build_server_tools(name, &up.identity, tools, &scfg.tools, &[], false);
        rt.block_on(trust.approve(&up, &st, None)).expect("approve in memory");
        registry.publish(name, st);
        upstreams.push(up);
    }
    let policy = Policy::from_config(&cfg);
    let up = upstreams.iter().find(|u| u.name == "s17").expect("server s17");
    let qualified = "s17.t7";

    let mut samples = Vec::with_capacity(ROUNDS);
    for i in 0..ROUNDS + 10_000 {
        let t0 = Instant::now();
        let snap = registry.snapshot();
        let (_, entry) = snap.resolve(qualified).expect("resolves");
        let v = trust.verdict(&up.config, &up.identity, entry);
        let p = policy.check("uid:1000 pid:4242", "s17", qualified);
        let dt = t0.elapsed();
        assert!(v == Verdict::Trusted && p.is_ok());
        if i >= 10_000 {
            samples.push(dt.as_nanos() as u64);
        }
    }
    samples.sort_unstable();
    let pct = |p: f64| samples[((samples.len() as f64 - 1.0) * p) as usize] as f64 / 1000.0;
    let (p50, p90, p99) = (pct(0.50), pct(0.90), pct(0.99));
    println!(
        "call checks (resolve + trust verdict + 3 rate limits), {SERVERS} servers x {TOOLS} tools, {ROUNDS} rounds:"
    );
    println!(
        "  p50 {p50:.3} µs   p90 {p90:.3} µs   p99 {p99:.3} µs   target p50 < 5 µs: {}",
        if p50 < 5.0 { "PASS" } else { "MISS" }
    );
}

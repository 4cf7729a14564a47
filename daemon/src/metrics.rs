//! Counters and latency histograms per server and tool, in Status and as Prometheus text. The only user of `prometheus-client`.
//!
//! Series are created only for tools that resolved in the registry (bounded by the registry's
//! caps), never for names an app made up, so an app cannot grow the label space.
use std::{net::SocketAddr, sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::Full;
use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, histogram::Histogram},
    registry::Registry,
};
use tokio_util::sync::CancellationToken;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ToolLabels {
    server: String,
    tool: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServerLabels {
    server: String,
}

/// A tool's numbers as `mcpd status` shows them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ToolStats {
    pub calls: u64,
    pub errors: u64,
    pub mean_latency: Duration,
}

pub struct Metrics {
    registry: Registry,
    calls: Family<ToolLabels, Counter>,
    errors: Family<ToolLabels, Counter>,
    latency: Family<ToolLabels, Histogram, fn() -> Histogram>,
    /// Total latency in µs, for the mean in Status (the histogram's own sum is not
    /// readable outside prometheus-client's test API). Not exported.
    latency_us: Family<ToolLabels, Counter>,
    reconnects: Family<ServerLabels, Counter>,
    quarantines: Family<ServerLabels, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn latency_histogram() -> Histogram {
    // 100 µs .. ~100 s, factor 2: covers a local echo and a slow remote tool alike.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(0.0001, 2.0, 21))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("mcpd");
        let calls = Family::<ToolLabels, Counter>::default();
        let errors = Family::<ToolLabels, Counter>::default();
        let latency = Family::<ToolLabels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram as _);
        let reconnects = Family::<ServerLabels, Counter>::default();
        let quarantines = Family::<ServerLabels, Counter>::default();
        registry.register("tool_calls", "Tool calls sent to a server", calls.clone());
        registry.register("tool_errors", "Tool calls that failed or returned isError", errors.clone());
        registry.register("tool_call_seconds", "Tool call latency through mcpd", latency.clone());
        registry.register("server_reconnects", "Sessions started after the first", reconnects.clone());
        registry.register("tool_quarantines", "Tools quarantined by integrity checks", quarantines.clone());
        Self { registry, calls, errors, latency, latency_us: Family::default(), reconnects, quarantines }
    }
}

// === impl Metrics ===

impl Metrics {
    /// Records one finished call of a resolved tool.
    pub fn record_call(&self, server: &str, tool: &str, elapsed: Duration, failed: bool) {
        let l = ToolLabels { server: server.to_owned(), tool: tool.to_owned() };
        self.calls.get_or_create(&l).inc();
        if failed {
            self.errors.get_or_create(&l).inc();
        }
        self.latency.get_or_create(&l).observe(elapsed.as_secs_f64());
        self.latency_us.get_or_create(&l).inc_by(elapsed.as_micros() as u64);
    }

    pub fn record_reconnect(&self, server: &str) {
        self.reconnects.get_or_create(&ServerLabels { server: server.to_owned() }).inc();
    }

    pub fn record_quarantine(&self, server: &str) {
        self.quarantines.get_or_create(&ServerLabels { server: server.to_owned() }).inc();
    }

    /// Numbers for one tool; `None` if it was never called.
    pub fn tool(&self, server: &str, tool: &str) -> Option<ToolStats> {
        let l = ToolLabels { server: server.to_owned(), tool: tool.to_owned() };
        let calls = self.calls.get(&l)?.get();
        let errors = self.errors.get(&l).map(|c| c.get()).unwrap_or(0);
        let total_us = self.latency_us.get(&l).map(|c| c.get()).unwrap_or(0);
        let mean = Duration::from_micros(total_us.checked_div(calls).unwrap_or(0));
        Some(ToolStats { calls, errors, mean_latency: mean })
    }

    pub fn reconnects(&self, server: &str) -> u64 {
        self.reconnects.get(&ServerLabels { server: server.to_owned() }).map(|c| c.get()).unwrap_or(0)
    }

    /// The Prometheus text exposition of everything.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// Serves `GET /metrics` (HTTP/1.1, via hyper) on a loopback address until `stop` fires.
/// Each connection is bounded in time, so a stuck scraper cannot pin anything.
pub async fn serve(addr: SocketAddr, metrics: Arc<Metrics>, stop: CancellationToken) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "metrics endpoint listening");
    loop {
        let (sock, _) = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(error = %e, "metrics accept failed");
                    continue;
                }
            },
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let metrics = metrics.clone();
                async move { Ok::<_, std::convert::Infallible>(respond(&metrics, req.method(), req.uri().path())) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(sock), service);
            let _ = tokio::time::timeout(Duration::from_secs(30), conn).await;
        });
    }
}

fn respond(metrics: &Metrics, method: &hyper::Method, path: &str) -> hyper::Response<Full<Bytes>> {
    let (status, ctype, body) = match (method, path) {
        (&hyper::Method::GET, "/metrics") => {
            (hyper::StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", metrics.encode())
        }
        _ => (hyper::StatusCode::NOT_FOUND, "text/plain; charset=utf-8", "try GET /metrics\n".to_owned()),
    };
    let mut resp = hyper::Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(ctype));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_errors_and_latency_per_tool() {
        let m = Metrics::default();
        assert_eq!(m.tool("a", "echo"), None);
        m.record_call("a", "echo", Duration::from_millis(2), false);
        m.record_call("a", "echo", Duration::from_millis(4), true);
        m.record_reconnect("a");
        let s = m.tool("a", "echo").expect("recorded");
        assert_eq!((s.calls, s.errors), (2, 1));
        assert_eq!(s.mean_latency, Duration::from_millis(3));
        assert_eq!(m.reconnects("a"), 1);
        assert_eq!(m.reconnects("b"), 0);
        let text = m.encode();
        assert!(text.contains(r#"mcpd_tool_calls_total{server="a",tool="echo"} 2"#), "{text}");
        assert!(text.contains(r#"mcpd_tool_errors_total{server="a",tool="echo"} 1"#), "{text}");
        assert!(text.contains("mcpd_tool_call_seconds_bucket"), "{text}");
        assert!(text.contains(r#"mcpd_server_reconnects_total{server="a"} 1"#), "{text}");
    }
}

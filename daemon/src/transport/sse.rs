//! Legacy HTTP+SSE transport (protocol 2024-11-05): a GET event stream whose first
//! `endpoint` event names the URL to POST messages to. rmcp no longer ships a client
//! for it, so mcpd keeps this small one.
use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use futures::StreamExt;
use http::{HeaderName, HeaderValue};
use rmcp::service::{RoleClient, RxJsonRpcMessage, TxJsonRpcMessage};
use tokio::sync::mpsc;

use super::AnyTransport;

#[derive(Debug, thiserror::Error)]
pub enum SseError {
    #[error("GET {url}: {source}")]
    Request {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("GET {url}: server answered {status}")]
    Status { url: String, status: u16 },
    #[error("the event stream ended before the endpoint event")]
    NoEndpoint,
    #[error("no endpoint event within {0:?}")]
    EndpointTimeout(Duration),
    #[error("endpoint {0:?} is not a valid URL relative to the stream")]
    BadEndpoint(String),
    #[error("endpoint {0} is on another origin; refusing to send messages (and headers) there")]
    ForeignEndpoint(String),
    #[error("POST {url}: {source}")]
    Post {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("POST {url}: server answered {status}")]
    PostStatus { url: String, status: u16 },
    #[error("cannot encode message: {0}")]
    Encode(#[from] serde_json::Error),
}

pub struct LegacySseTransport {
    client: reqwest::Client,
    endpoint: reqwest::Url,
    headers: Arc<HashMap<HeaderName, HeaderValue>>,
    rx: mpsc::Receiver<RxJsonRpcMessage<RoleClient>>,
    reader: tokio::task::JoinHandle<()>,
}

pub async fn connect(
    url: &str,
    header_pairs: &[(String, String)],
    max_message_bytes: usize,
    connect_timeout: Duration,
) -> Result<AnyTransport, Box<dyn std::error::Error + Send + Sync>> {
    let headers = Arc::new(super::http::headers(header_pairs)?);
    let client = super::http::client(connect_timeout)?;
    let base = reqwest::Url::parse(url).map_err(|_| SseError::BadEndpoint(url.to_owned()))?;
    let mut req = client.get(base.clone()).header("accept", "text/event-stream");
    for (k, v) in headers.iter() {
        req = req.header(k, v);
    }
    let resp = req.send().await.map_err(|source| SseError::Request { url: url.to_owned(), source })?;
    if !resp.status().is_success() {
        return Err(SseError::Status { url: url.to_owned(), status: resp.status().as_u16() }.into());
    }
    // Counts bytes since the last complete event, so one endless event cannot grow memory.
    let pending = Arc::new(AtomicUsize::new(0));
    let counter = pending.clone();
    let bytes = resp.bytes_stream().map(move |chunk| {
        let chunk = chunk.map_err(std::io::Error::other)?;
        if counter.fetch_add(chunk.len(), Ordering::Relaxed) + chunk.len() > max_message_bytes {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "event too large"));
        }
        Ok(chunk)
    });
    let mut events = Box::pin(sse_stream::SseStream::from_bytes_stream(bytes));

    let endpoint = tokio::time::timeout(connect_timeout, async {
        while let Some(ev) = events.next().await {
            let Ok(ev) = ev else { break };
            pending.store(0, Ordering::Relaxed);
            if ev.event.as_deref() == Some("endpoint") {
                return Ok(ev.data.unwrap_or_default());
            }
        }
        Err(SseError::NoEndpoint)
    })
    .await
    .map_err(|_| SseError::EndpointTimeout(connect_timeout))??;
    let endpoint_url = base.join(endpoint.trim()).map_err(|_| SseError::BadEndpoint(endpoint.clone()))?;
    if endpoint_url.origin() != base.origin() {
        return Err(SseError::ForeignEndpoint(endpoint_url.to_string()).into());
    }

    let (tx, rx) = mpsc::channel(256);
    let reader = tokio::spawn(async move {
        while let Some(ev) = events.next().await {
            let Ok(ev) = ev else { break };
            pending.store(0, Ordering::Relaxed);
            if !matches!(ev.event.as_deref(), None | Some("message")) {
                continue;
            }
            let Some(data) = ev.data else { continue };
            match serde_json::from_str::<RxJsonRpcMessage<RoleClient>>(&data) {
                Ok(msg) => {
                    if tx.send(msg).await.is_err() {
                        break;
                    }
                }
                Err(e) => tracing::debug!(error = %e, "ignoring unparsable SSE message"),
            }
        }
    });
    Ok(AnyTransport::Sse(LegacySseTransport { client, endpoint: endpoint_url, headers, rx, reader }))
}

// === impl LegacySseTransport ===

impl LegacySseTransport {
    pub fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleClient>,
    ) -> impl Future<Output = Result<(), SseError>> + Send + 'static {
        let client = self.client.clone();
        let url = self.endpoint.clone();
        let headers = self.headers.clone();
        async move {
            let body = serde_json::to_vec(&item)?;
            let mut req = client.post(url.clone()).header("content-type", "application/json").body(body);
            for (k, v) in headers.iter() {
                req = req.header(k, v);
            }
            let resp = req.send().await.map_err(|source| SseError::Post { url: url.to_string(), source })?;
            if !resp.status().is_success() {
                return Err(SseError::PostStatus { url: url.to_string(), status: resp.status().as_u16() });
            }
            Ok(())
        }
    }

    pub async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleClient>> {
        self.rx.recv().await
    }

    pub async fn close(&mut self) -> Result<(), SseError> {
        self.reader.abort();
        Ok(())
    }
}

impl Drop for LegacySseTransport {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt as _;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64),
            ..Default::default()
        })]

        /// The legacy SSE parser takes any bytes in any chunks without panicking, and never
        /// makes up more data than it was given.
        #[test]
        fn any_event_stream_is_parsed_without_panicking(
            chunks in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80), 0..12),
            shaped in proptest::collection::vec("(event: [a-z]{0,8}\n|data: [ -~]{0,20}\n|id: [0-9]{0,3}\n|retry: [0-9]{0,4}\n|:[ -~]{0,10}\n|\n|\r\n)", 0..16),
        ) {
            let mut all = chunks;
            all.push(shaped.concat().into_bytes());
            let total: usize = all.iter().map(Vec::len).sum();
            let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
            let data: usize = rt.block_on(async {
                let stream = futures::stream::iter(
                    all.into_iter().map(|c| Ok::<_, std::io::Error>(bytes::Bytes::from(c))),
                );
                let mut events = Box::pin(sse_stream::SseStream::from_bytes_stream(stream));
                let mut data = 0;
                while let Some(ev) = events.next().await {
                    match ev {
                        Ok(ev) => data += ev.data.map_or(0, |d| d.len()),
                        Err(_) => break,
                    }
                }
                data
            });
            proptest::prop_assert!(data <= total);
        }
    }
}

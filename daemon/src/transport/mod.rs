//! The three MCP transports (stdio, Streamable HTTP, legacy HTTP+SSE) unified behind one enum rmcp can drive.
use std::{future::Future, pin::Pin};

use rmcp::{
    service::{RoleClient, RxJsonRpcMessage, TxJsonRpcMessage},
    transport::{StreamableHttpClientTransport, Transport, async_rw::AsyncRwTransport},
};

pub mod budget;
pub mod http;
pub mod limit;
pub mod sse;
pub mod stdio;

/// Any transport error, boxed: callers only log it and reconnect.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct TransportError(Box<dyn std::error::Error + Send + Sync>);

impl TransportError {
    pub fn new(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Box::new(e))
    }
}

type StdioRw = AsyncRwTransport<
    RoleClient,
    limit::LimitedReader<tokio::process::ChildStdout>,
    budget::CreditWriter<tokio::process::ChildStdin>,
>;

pub enum AnyTransport {
    Stdio(StdioRw),
    Http(StreamableHttpClientTransport<reqwest::Client>),
    /// Streamable HTTP with OAuth bearer tokens (rmcp's `AuthClient` refreshes them).
    HttpAuth(StreamableHttpClientTransport<rmcp::transport::auth::AuthClient<reqwest::Client>>),
    Sse(sse::LegacySseTransport),
}

type SendFuture = Pin<Box<dyn Future<Output = Result<(), TransportError>> + Send + 'static>>;

impl Transport<RoleClient> for AnyTransport {
    type Error = TransportError;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleClient>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        // One box per message: the variants' futures differ in type, and the cost is
        // small next to serialising the message.
        let fut: SendFuture = match self {
            AnyTransport::Stdio(t) => {
                let f = t.send(item);
                Box::pin(async move { f.await.map_err(TransportError::new) })
            }
            AnyTransport::Http(t) => {
                let f = t.send(item);
                Box::pin(async move { f.await.map_err(TransportError::new) })
            }
            AnyTransport::HttpAuth(t) => {
                let f = t.send(item);
                Box::pin(async move { f.await.map_err(TransportError::new) })
            }
            AnyTransport::Sse(t) => {
                let f = t.send(item);
                Box::pin(async move { f.await.map_err(TransportError::new) })
            }
        };
        fut
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleClient>> {
        match self {
            AnyTransport::Stdio(t) => t.receive().await,
            AnyTransport::Http(t) => t.receive().await,
            AnyTransport::HttpAuth(t) => t.receive().await,
            AnyTransport::Sse(t) => t.receive().await,
        }
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        match self {
            AnyTransport::Stdio(t) => t.close().await.map_err(TransportError::new),
            AnyTransport::Http(t) => t.close().await.map_err(TransportError::new),
            AnyTransport::HttpAuth(t) => t.close().await.map_err(TransportError::new),
            AnyTransport::Sse(t) => t.close().await.map_err(TransportError::new),
        }
    }
}

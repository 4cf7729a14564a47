//! The front end's Unix socket, for the stdio bridge (`mcpd mcp`).
//!
//! The bridge connects, sends one hello line naming its profile, reads one answer line,
//! and from then on the connection carries the host's newline-delimited JSON-RPC as is.
//! The socket sits beside the gRPC socket with the same 0600 mode, so the same users may
//! use it; the audit names the bridge by its peer credentials.
use std::{path::Path, sync::Arc};

use rmcp::{RoleServer, ServiceExt, transport::async_rw::AsyncRwTransport};
use serde::{Deserialize, Serialize};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{UnixListener, UnixStream},
};
use tokio_util::sync::CancellationToken;

use super::{Front, Shared};
use crate::config::DEFAULT_PROFILE;

/// A hello longer than this is not a bridge.
const MAX_HELLO: u64 = 4096;

/// The bridge's first line.
#[derive(Debug, Serialize, Deserialize)]
pub struct Hello {
    /// `None`: the default profile.
    #[serde(default)]
    pub profile: Option<String>,
}

/// The daemon's answer line: `ok`, or why the connection is refused.
#[derive(Debug, Serialize, Deserialize)]
pub struct Answer {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
}

/// The MCP socket for a gRPC socket path: the same directory and stem, `.mcp.sock` (one
/// definition, shared with the bridge).
pub fn socket_path(grpc_socket: &Path) -> std::path::PathBuf {
    mcpd_client::bridge::mcp_socket_path(grpc_socket)
}

/// Accepts bridge connections until `stop`.
pub async fn serve(shared: Arc<Shared>, listener: UnixListener, stop: CancellationToken) {
    loop {
        let stream = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "MCP socket accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let (shared, stop) = (shared.clone(), stop.clone());
        tokio::spawn(async move {
            if let Err(e) = connection(shared, stream, stop).await {
                tracing::debug!(error = %e, "MCP bridge connection ended");
            }
        });
    }
}

async fn connection(shared: Arc<Shared>, stream: UnixStream, stop: CancellationToken) -> std::io::Result<()> {
    let transport = match stream.peer_cred().ok().and_then(|c| c.pid()) {
        Some(pid) => format!("stdio pid:{pid}"),
        None => "stdio".to_owned(),
    };
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut line = String::new();
    (&mut reader).take(MAX_HELLO).read_line(&mut line).await?;
    let answer = match serde_json::from_str::<Hello>(line.trim()) {
        Ok(h) => {
            let profile = h.profile.unwrap_or_else(|| DEFAULT_PROFILE.to_owned());
            match super::profile_of(&shared.daemon, &profile) {
                Some(_) => Ok(profile),
                None => Err(format!("no profile named {profile:?} in the daemon's config")),
            }
        }
        Err(_) => Err("expected a hello line from `mcpd mcp`".to_owned()),
    };
    let reply = |a: &Answer| serde_json::to_string(a).unwrap_or_default() + "\n";
    let profile = match answer {
        Ok(p) => {
            write.write_all(reply(&Answer { ok: true, error: String::new() }).as_bytes()).await?;
            p
        }
        Err(error) => {
            write.write_all(reply(&Answer { ok: false, error }).as_bytes()).await?;
            return Ok(());
        }
    };
    let limit = shared.daemon.core.live.load().config.daemon.max_message_bytes;
    let front = Front::new(shared, profile, transport);
    let transport =
        AsyncRwTransport::<RoleServer, _, _>::new(reader, write).with_max_line_length(limit.saturating_add(1));
    let running =
        front.serve_with_ct(transport, stop.child_token()).await.map_err(|e| std::io::Error::other(e.to_string()))?;
    let _ = running.waiting().await;
    Ok(())
}

//! The stdio bridge behind `mcpd mcp`: a host's stdin/stdout joined to the daemon's MCP
//! socket, so a host that launches `mcpd mcp` talks MCP to the running daemon.
//!
//! The bridge sends one hello line naming its profile and reads one answer line; after
//! that it copies bytes both ways and never parses MCP itself (the daemon does).
use std::path::{Path, PathBuf};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

/// Why the bridge could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// No daemon listens on the socket. The bridge never starts one of its own.
    #[error(
        "no mcpd daemon is running (nothing answers on {path}): start it with `mcpd serve` (or `systemctl --user start mcpd`), then let the host start `mcpd mcp` again"
    )]
    NoDaemon {
        /// The MCP socket tried.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The daemon refused the hello (an unknown profile).
    #[error("mcpd refused the connection: {0}")]
    Refused(String),
    /// Reading or writing failed.
    #[error("bridge I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// The MCP socket beside a gRPC socket (the daemon binds both).
pub fn mcp_socket_path(grpc_socket: &Path) -> PathBuf {
    grpc_socket.with_extension("mcp.sock")
}

/// Joins `input`/`output` (the host's stdio) to the daemon's MCP socket until either side
/// closes.
pub async fn run<R, W>(socket: &Path, profile: Option<&str>, input: R, mut output: W) -> Result<(), BridgeError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .map_err(|source| BridgeError::NoDaemon { path: socket.to_owned(), source })?;
    let (read, mut write) = stream.into_split();
    let hello = serde_json::json!({ "profile": profile });
    write.write_all(format!("{hello}\n").as_bytes()).await?;
    let mut from_daemon = BufReader::new(read);
    let mut line = String::new();
    from_daemon.read_line(&mut line).await?;
    let answer: serde_json::Value = serde_json::from_str(line.trim())
        .map_err(|_| BridgeError::Refused("the daemon did not answer the bridge's hello".into()))?;
    if answer.get("ok").and_then(|v| v.as_bool()) != Some(true) {
        let why = answer.get("error").and_then(|v| v.as_str()).unwrap_or("no reason given");
        return Err(BridgeError::Refused(why.to_owned()));
    }
    let mut input = input;
    let up = async {
        tokio::io::copy(&mut input, &mut write).await?;
        // The host closed stdin: tell the daemon, which ends the session.
        write.shutdown().await
    };
    let down = async {
        tokio::io::copy_buf(&mut from_daemon, &mut output).await?;
        output.flush().await
    };
    // A daemon that goes away leaves nothing to bridge to: that ends the bridge at once. A
    // host that closes stdin still gets the answers already on their way: the daemon ends
    // the session on the shutdown and then closes its side.
    tokio::pin!(down);
    tokio::select! {
        r = up => {
            r?;
            down.await?;
        }
        r = &mut down => r?,
    }
    Ok(())
}

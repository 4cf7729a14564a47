//! Binds the Unix socket (0600 in a 0700 directory) and serves the API, health and reflection on it.
use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use mcpd_proto::v1::mcpd_server::McpdServer;
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tokio_util::sync::CancellationToken;

use super::Api;

#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("cannot create socket directory {path}: {source}")]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("another mcpd is already serving on {0}")]
    InUse(PathBuf),
    #[error("cannot bind {path}: {source}")]
    Bind {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("reflection service: {0}")]
    Reflection(String),
}

/// Binds the socket. A stale socket file (no daemon answering) is replaced; a live one is an error.
pub async fn bind(path: &Path) -> Result<UnixListener, BindError> {
    if let Some(dir) = path.parent() {
        let existed = dir.exists();
        std::fs::create_dir_all(dir).map_err(|source| BindError::Dir { path: dir.to_owned(), source })?;
        // Only tighten a directory we created: /tmp or /run must keep their own modes.
        if !existed {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|source| BindError::Dir { path: dir.to_owned(), source })?;
        }
    }
    if path.exists() {
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            return Err(BindError::InUse(path.to_owned()));
        }
        let _ = std::fs::remove_file(path);
    }
    let listener = UnixListener::bind(path).map_err(|source| BindError::Bind { path: path.to_owned(), source })?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|source| BindError::Bind { path: path.to_owned(), source })?;
    Ok(listener)
}

pub async fn serve(
    api: Api,
    listener: UnixListener,
    shutdown: CancellationToken,
) -> Result<(), tonic::transport::Error> {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_serving::<McpdServer<Api>>().await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(mcpd_proto::FILE_DESCRIPTOR_SET)
        .build_v1();
    let mut builder = tonic::transport::Server::builder();
    let router = builder.add_service(health).add_service(
        McpdServer::new(api).max_decoding_message_size(64 * 1024 * 1024).max_encoding_message_size(64 * 1024 * 1024),
    );
    let router = match reflection {
        Ok(r) => router.add_service(r),
        Err(e) => {
            tracing::warn!(error = %e, "gRPC reflection unavailable");
            router
        }
    };
    router.serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown.cancelled_owned()).await
}

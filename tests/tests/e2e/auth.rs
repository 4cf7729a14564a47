//! Remote servers behind authorization: a 401 puts the server in `needs-auth` with what it
//! asked for, instead of a reconnect loop.
use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use mcpd_tests::*;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// A loopback HTTP server that answers every request 401 with a Bearer challenge.
async fn unauthorized_server() -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                let _ = tokio::time::timeout(Duration::from_secs(2), sock.read(&mut buf)).await;
                let body = format!(
                    "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer resource_metadata=\"http://127.0.0.1:{port}/.well-known/oauth-protected-resource\", scope=\"mcp:read\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                let _ = sock.write_all(body.as_bytes()).await;
            });
        }
    });
    (port, hits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_needs_authorization_shows_needs_auth_and_is_not_retried() {
    let (port, hits) = unauthorized_server().await;
    let d = TestDaemon::start(&format!(
        "[servers.remote]\nurl = \"http://127.0.0.1:{port}/mcp\"\nbackoff = {{ initial = \"100ms\", max = \"200ms\" }}\n{}",
        fault_server("f", &[], "")
    ));
    let st = d.wait_state("remote", proto::ServerState::NeedsAuth, Duration::from_secs(30)).await;
    assert!(st.last_error.contains("requires authorization"), "{}", st.last_error);
    assert!(st.last_error.contains("mcp:read"), "{}", st.last_error);
    assert!(st.last_error.contains(&format!("resource metadata at http://127.0.0.1:{port}/")), "{}", st.last_error);
    assert_eq!(st.next_retry_unix_ms, 0);
    let seen = hits.load(Ordering::SeqCst);
    // With a 100 ms backoff a retry loop would have hit the server many times by now.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(hits.load(Ordering::SeqCst), seen, "mcpd kept retrying a server that needs authorization");
    let mut c = d.client().await;
    let e = c.call_tool("remote.anything", "{}", None).await.unwrap_err();
    assert_eq!(e.code(), Some(tonic::Code::NotFound));
    // The other server is unaffected.
    d.wait_state("f", proto::ServerState::Ready, Duration::from_secs(30)).await;
    let out = std::process::Command::new(mcpd_bin())
        .args(["--socket", &d.socket.display().to_string(), "status"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("needs-auth"));
}

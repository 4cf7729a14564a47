//! The loopback redirect listener of one login (RFC 8252 §7.3): `http://127.0.0.1:PORT/callback`,
//! bound for that login only and closed after its first callback, so a code or `state` can be
//! delivered once.
use std::time::Duration;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// A browser sends a short request; anything longer is not a redirect.
const MAX_REQUEST_BYTES: usize = 16 * 1024;
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// What the authorization server sent back.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Params {
    pub code: Option<String>,
    pub state: Option<String>,
    pub iss: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

pub struct Listener {
    listener: TcpListener,
    pub redirect_uri: String,
}

/// A pending answer to the browser.
pub struct Reply(TcpStream);

pub async fn bind(port: u16) -> std::io::Result<Listener> {
    // IPv4 loopback literal, not `localhost`: the name may resolve elsewhere (RFC 8252 §8.3).
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    let port = listener.local_addr()?.port();
    Ok(Listener { listener, redirect_uri: format!("http://127.0.0.1:{port}/callback") })
}

impl Listener {
    /// Waits for a request to `/callback`; other paths (a browser's `/favicon.ico`) get 404.
    pub async fn next(&self) -> std::io::Result<(Params, Reply)> {
        loop {
            let (mut stream, _) = self.listener.accept().await?;
            let Ok(Some(target)) =
                tokio::time::timeout(READ_TIMEOUT, read_target(&mut stream)).await.unwrap_or(Ok(None))
            else {
                continue;
            };
            let Ok(url) = reqwest::Url::parse(&format!("http://127.0.0.1{target}")) else {
                Reply(stream).send(400, "mcpd: malformed request").await;
                continue;
            };
            if url.path() != "/callback" {
                Reply(stream).send(404, "not found").await;
                continue;
            }
            let mut p = Params::default();
            for (k, v) in url.query_pairs() {
                let slot = match k.as_ref() {
                    "code" => &mut p.code,
                    "state" => &mut p.state,
                    "iss" => &mut p.iss,
                    "error" => &mut p.error,
                    "error_description" => &mut p.error_description,
                    _ => continue,
                };
                *slot = Some(v.into_owned());
            }
            return Ok((p, Reply(stream)));
        }
    }
}

impl Reply {
    pub async fn send(mut self, status: u16, text: &str) {
        let reason = match status {
            200 => "OK",
            404 => "Not Found",
            _ => "Bad Request",
        };
        let body = format!(
            "<!doctype html><meta charset=utf-8><title>mcpd</title><p>{}</p>\n",
            text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
        );
        let head = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nCache-Control: no-store\r\nReferrer-Policy: no-referrer\r\nConnection: close\r\n\r\n",
            body.len()
        );
        // The browser may have gone; the login's outcome does not depend on this page.
        let _ = self.0.write_all(head.as_bytes()).await;
        let _ = self.0.write_all(body.as_bytes()).await;
        let _ = self.0.shutdown().await;
    }
}

/// The request target of a `GET`, or `None` for anything else.
async fn read_target(stream: &mut TcpStream) -> std::io::Result<Option<String>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).await?;
        if n == 0 || buf.len() + n > MAX_REQUEST_BYTES {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf);
    let mut parts = head.lines().next().unwrap_or_default().split(' ');
    match (parts.next(), parts.next()) {
        (Some("GET"), Some(target)) if target.starts_with('/') => Ok(Some(target.to_owned())),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn send(port: u16, request: &str) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
        s.write_all(request.as_bytes()).await.expect("write");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out).await;
        out
    }

    #[tokio::test]
    async fn takes_the_first_callback_and_ignores_other_paths() {
        let l = bind(0).await.expect("bind");
        assert!(l.redirect_uri.starts_with("http://127.0.0.1:") && l.redirect_uri.ends_with("/callback"));
        let port: u16 = l.redirect_uri.trim_end_matches("/callback").rsplit(':').next().unwrap().parse().unwrap();
        let browser = tokio::spawn(async move {
            let favicon = send(port, "GET /favicon.ico HTTP/1.1\r\nHost: x\r\n\r\n").await;
            let cb = send(port, "GET /callback?code=c%2F1&state=s&iss=https%3A%2F%2Fas&x=y HTTP/1.1\r\n\r\n").await;
            (favicon, cb)
        });
        let (p, reply) = l.next().await.expect("callback");
        assert_eq!(p.code.as_deref(), Some("c/1"));
        assert_eq!((p.state.as_deref(), p.iss.as_deref(), p.error.as_deref()), (Some("s"), Some("https://as"), None));
        reply.send(200, "<ok> & done").await;
        let (favicon, cb) = browser.await.unwrap();
        assert!(favicon.starts_with("HTTP/1.1 404"), "{favicon}");
        assert!(cb.starts_with("HTTP/1.1 200") && cb.contains("&lt;ok&gt; &amp; done"), "{cb}");
        assert!(cb.contains("Cache-Control: no-store"), "{cb}");
    }
}

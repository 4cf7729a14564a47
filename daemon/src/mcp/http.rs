//! The front end's Streamable HTTP endpoint (`[daemon] mcp_listen`), both protocol eras.
//!
//! Every request is checked before rmcp sees it, in this order: `Host` and `Origin` against
//! DNS rebinding (403), the path (`/mcp` is the default profile, `/mcp/NAME` a named one;
//! 404 otherwise), then the bearer token (401) unless `mcp_auth = "none"`. Only then does
//! the request reach rmcp's Streamable HTTP service for its profile, which runs the session
//! era (`initialize`, `Mcp-Session-Id`, the GET stream) and the stateless era
//! (`server/discover`, per-request `_meta`) side by side.
use std::{
    collections::HashMap,
    convert::Infallible,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
};

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rmcp::transport::streamable_http_server::{
    StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::{Front, Shared};
use crate::config::{DEFAULT_PROFILE, McpAuth, McpHttpConfig};

type Body = BoxBody<Bytes, Infallible>;
/// What rmcp's service is handed: the request body as it came, or as the gate read it.
type InBody = BoxBody<Bytes, hyper::Error>;
type Service = StreamableHttpService<Front, LocalSessionManager>;
/// SEP-2243: a header that disagrees with the body.
const HEADER_MISMATCH: i32 = -32020;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot bind the MCP endpoint {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("MCP endpoint token {path}: {source}")]
    Token {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("MCP endpoint TLS: {0}")]
    Tls(String),
}

/// The bound endpoint, ready to serve.
pub struct Endpoint {
    listener: tokio::net::TcpListener,
    gate: Arc<Gate>,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

/// The checks in front of rmcp, and one rmcp service per profile.
struct Gate {
    shared: Arc<Shared>,
    /// SHA-256 of the token; `None`: `mcp_auth = "none"`.
    token_digest: Option<[u8; 32]>,
    hosts: Vec<String>,
    origins: Vec<String>,
    services: std::sync::Mutex<HashMap<String, Service>>,
    stop: CancellationToken,
}

/// Reads the token file, writing a new random token (mode 0600) when it is absent.
pub fn load_or_create_token(path: &Path) -> Result<String, HttpError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let fail = |source| HttpError::Token { path: path.to_owned(), source };
    match std::fs::read_to_string(path) {
        Ok(t) if !t.trim().is_empty() => return Ok(t.trim().to_owned()),
        Ok(_) => {
            return Err(fail(std::io::Error::other("the file is empty: delete it to have a new token written")));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(fail(e)),
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let token: String = {
        let bytes: [u8; 32] = rand::random();
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    };
    // create_new: two daemons racing cannot both write, and a file that appeared meanwhile
    // is read instead.
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(mut f) => {
            f.write_all(format!("{token}\n").as_bytes()).map_err(fail)?;
            f.sync_all().map_err(fail)?;
            Ok(token)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => load_or_create_token(path),
        Err(e) => Err(fail(e)),
    }
}

/// Where the token lives when the config names no file.
pub fn default_token_path(state_dir: &Path) -> PathBuf {
    state_dir.join("mcp-token")
}

impl Endpoint {
    /// Binds `cfg.listen` and prepares the checks. The token is registered as a secret, so
    /// it never appears in anything mcpd prints.
    pub async fn bind(
        shared: Arc<Shared>,
        cfg: &McpHttpConfig,
        addr: SocketAddr,
        stop: CancellationToken,
    ) -> Result<Self, HttpError> {
        let token_digest = match cfg.auth {
            McpAuth::None => None,
            McpAuth::Token => {
                let path = cfg.token_file.clone().unwrap_or_else(|| default_token_path(&shared.daemon.state_dir));
                let token = tokio::task::spawn_blocking(move || load_or_create_token(&path))
                    .await
                    .map_err(|e| HttpError::Tls(e.to_string()))??;
                crate::known::add(&token);
                Some(Sha256::digest(token.as_bytes()).into())
            }
        };
        let tls = match &cfg.tls {
            Some(files) => Some(tls_acceptor(&files.cert, &files.key)?),
            None => None,
        };
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| HttpError::Bind { addr, source })?;
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(addr.port());
        let scheme = if tls.is_some() { "https" } else { "http" };
        let mut hosts = Vec::new();
        let mut origins = Vec::new();
        for name in ["localhost", "127.0.0.1", "[::1]"] {
            hosts.push(name.to_owned());
            hosts.push(format!("{name}:{port}"));
            origins.push(format!("{scheme}://{name}:{port}"));
        }
        hosts.extend(cfg.hosts.iter().cloned());
        origins.extend(cfg.origins.iter().cloned());
        let gate = Gate { shared, token_digest, hosts, origins, services: Default::default(), stop };
        Ok(Endpoint { listener, gate: Arc::new(gate), tls })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves connections until the stop token fires.
    pub async fn serve(self) {
        let Endpoint { listener, gate, tls } = self;
        loop {
            let (stream, _) = tokio::select! {
                _ = gate.stop.cancelled() => return,
                a = listener.accept() => match a {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "MCP endpoint accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            let (gate, tls) = (gate.clone(), tls.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let gate = gate.clone();
                    async move { Ok::<_, Infallible>(gate.handle(req).await) }
                });
                let builder = hyper::server::conn::http1::Builder::new();
                let res = match tls {
                    Some(acceptor) => match acceptor.accept(stream).await {
                        Ok(s) => builder.serve_connection(TokioIo::new(s), svc).await,
                        Err(e) => {
                            tracing::debug!(error = %e, "MCP endpoint TLS handshake failed");
                            return;
                        }
                    },
                    None => builder.serve_connection(TokioIo::new(stream), svc).await,
                };
                if let Err(e) = res {
                    tracing::debug!(error = %e, "MCP endpoint connection ended");
                }
            });
        }
    }
}

fn tls_acceptor(cert: &Path, key: &Path) -> Result<tokio_rustls::TlsAcceptor, HttpError> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| HttpError::Tls(format!("cannot read certificates from {}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(HttpError::Tls(format!("{} holds no certificate", cert.display())));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| HttpError::Tls(format!("cannot read a private key from {}: {e}", key.display())))?;
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| HttpError::Tls(e.to_string()))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

fn plain(status: StatusCode, text: &str) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(format!("{text}\n"))).boxed());
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

impl Gate {
    async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        if let Err(why) = self.check_origin(&req) {
            return plain(StatusCode::FORBIDDEN, why);
        }
        let profile = match req.uri().path().trim_end_matches('/') {
            "/mcp" => DEFAULT_PROFILE.to_owned(),
            p => match p.strip_prefix("/mcp/") {
                Some(name) if !name.contains('/') => name.to_owned(),
                _ => return plain(StatusCode::NOT_FOUND, "the MCP endpoint is /mcp (or /mcp/PROFILE)"),
            },
        };
        if !self.authorized(&req) {
            let mut r = plain(StatusCode::UNAUTHORIZED, "a bearer token is required (the daemon's mcp token file)");
            r.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer realm=\"mcpd\""));
            return r;
        }
        let Some(service) = self.service(&profile) else {
            return plain(StatusCode::NOT_FOUND, "no such profile in the daemon's config");
        };
        let req = match self.check_param_headers(&profile, req).await {
            Ok(req) => req,
            Err(refusal) => return refusal,
        };
        use tower::ServiceExt;
        match service.oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        }
    }

    /// DNS rebinding: a browser page on another site must not reach the endpoint, whatever
    /// name it resolved to this machine.
    fn check_origin<B>(&self, req: &Request<B>) -> Result<(), &'static str> {
        let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok());
        match host {
            Some(h) if self.hosts.iter().any(|a| a.eq_ignore_ascii_case(h)) => {}
            _ => return Err("the Host header names no address of this endpoint"),
        }
        if let Some(origin) = req.headers().get(header::ORIGIN) {
            let origin = origin.to_str().unwrap_or("");
            if !self.origins.iter().any(|a| a.eq_ignore_ascii_case(origin)) {
                return Err("requests from this Origin are not allowed (mcp_origins lists the allowed ones)");
            }
        }
        Ok(())
    }

    /// SEP-2243 (2026-07-28): a `tools/call` of a tool whose string parameters carry an
    /// `x-mcp-header` annotation must repeat each such argument in its `Mcp-Param-NAME` header
    /// (plain, or `=?base64?...?=`); a missing, undecodable or different header is refused with
    /// 400 and -32020 before the call is made. Other requests pass untouched and unread.
    async fn check_param_headers(
        &self,
        profile: &str,
        req: Request<Incoming>,
    ) -> Result<Request<InBody>, Response<Body>> {
        let stateless = req
            .headers()
            .get("mcp-protocol-version")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() >= "2026-07-28");
        let is_call =
            req.headers().get("mcp-method").and_then(|v| v.to_str().ok()).map(str::trim) == Some("tools/call");
        let name = req.headers().get("mcp-name").and_then(|v| v.to_str().ok()).map(|n| n.trim().to_owned());
        let annotated = match (req.method() == http::Method::POST && stateless && is_call, name) {
            (true, Some(name)) => self.header_params(profile, &name),
            _ => Vec::new(),
        };
        if annotated.is_empty() {
            return Ok(req.map(|b| b.boxed()));
        }
        let limit = self.shared.daemon.core.live.load().config.daemon.max_message_bytes;
        let (parts, body) = req.into_parts();
        let bytes = match http_body_util::Limited::new(body, limit).collect().await {
            Ok(c) => c.to_bytes(),
            Err(_) => return Err(plain(StatusCode::PAYLOAD_TOO_LARGE, "the request body is too large or broken")),
        };
        let msg: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let args = msg.pointer("/params/arguments").cloned().unwrap_or_default();
        for (param, suffix) in annotated {
            let header = parts.headers.get(format!("mcp-param-{suffix}")).map(|v| v.to_str().map(str::trim));
            let arg = args.get(&param).and_then(|v| v.as_str());
            let problem = match (arg, header) {
                (None, _) => None,
                (Some(_), None) => Some(format!("the argument {param:?} needs its Mcp-Param-{suffix} header")),
                (Some(_), Some(Err(_))) => Some(format!("Mcp-Param-{suffix} is not valid text")),
                (Some(a), Some(Ok(h))) => match param_header_value(h) {
                    Ok(v) if v == a => None,
                    Ok(_) => Some(format!("Mcp-Param-{suffix} does not match the argument {param:?}")),
                    Err(why) => Some(format!("Mcp-Param-{suffix}: {why}")),
                },
            };
            if let Some(why) = problem {
                let body = serde_json::json!({
                    "jsonrpc": "2.0",
                    "id": msg.get("id").cloned().unwrap_or(serde_json::Value::Null),
                    "error": {"code": HEADER_MISMATCH, "message": why},
                });
                let mut r = Response::new(Full::new(Bytes::from(body.to_string())).boxed());
                *r.status_mut() = StatusCode::BAD_REQUEST;
                r.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
                return Err(r);
            }
        }
        Ok(Request::from_parts(parts, Full::new(bytes).map_err(|never| match never {}).boxed()))
    }

    /// The string parameters of `name` (as the profile names tools) that carry an
    /// `x-mcp-header` annotation, with the header suffix each names.
    fn header_params(&self, profile: &str, name: &str) -> Vec<(String, String)> {
        let d = &self.shared.daemon;
        let Some(qualified) = super::profile_of(d, profile).and_then(|p| super::view::qualified(&p, name)) else {
            return Vec::new();
        };
        let snap = d.core.registry.snapshot();
        let Some((_, entry)) = snap.resolve(&qualified) else { return Vec::new() };
        let Some(props) = entry.tool.input_schema.get("properties").and_then(|p| p.as_object()) else {
            return Vec::new();
        };
        props
            .iter()
            .filter(|(_, def)| def.get("type").and_then(|t| t.as_str()) == Some("string"))
            .filter_map(|(param, def)| {
                let suffix = def.get("x-mcp-header")?.as_str()?;
                (!suffix.is_empty()).then(|| (param.clone(), suffix.to_owned()))
            })
            .collect()
    }

    fn authorized<B>(&self, req: &Request<B>) -> bool {
        let Some(expected) = &self.token_digest else { return true };
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim);
        let Some(given) = given else { return false };
        // Digests of equal length, compared without an early exit: the time taken says
        // nothing about how much of a guess was right.
        let got: [u8; 32] = Sha256::digest(given.as_bytes()).into();
        got.iter().zip(expected.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }

    fn service(&self, profile: &str) -> Option<Service> {
        super::profile_of(&self.shared.daemon, profile)?;
        let mut services = self.services.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = services.get(profile) {
            return Some(s.clone());
        }
        let (shared, name) = (self.shared.clone(), profile.to_owned());
        let limit = shared.daemon.core.live.load().config.daemon.max_message_bytes;
        let config = StreamableHttpServerConfig::default()
            // Checked above, with the port and the configured names.
            .disable_allowed_hosts()
            .disable_allowed_origins()
            .with_sse_keep_alive(Some(super::SESSION_KEEP_ALIVE))
            // 2026-07-28 requests whose handler sends nothing before the result are answered
            // as plain JSON, not a one-event SSE stream (rmcp falls back to SSE when it must).
            .with_json_response(true)
            .with_max_request_body_bytes(limit)
            .with_cancellation_token(self.stop.child_token());
        let service = StreamableHttpService::new(
            move || Ok(Front::new(shared.clone(), name.clone(), "http")),
            Arc::new(LocalSessionManager::default()),
            config,
        );
        services.insert(profile.to_owned(), service.clone());
        Some(service)
    }
}

/// An `Mcp-Param-*` value: `=?base64?B64?=` is strict standard Base64 (padding required, no
/// other characters) of UTF-8 text; anything else is the value itself.
fn param_header_value(h: &str) -> Result<String, &'static str> {
    use base64::Engine as _;
    let Some(b64) = h.strip_prefix("=?base64?").and_then(|r| r.strip_suffix("?=")) else {
        return Ok(h.to_owned());
    };
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).map_err(|_| "invalid Base64")?;
    String::from_utf8(bytes).map_err(|_| "the Base64 value is not UTF-8 text")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn param_headers_decode_strictly() {
        assert_eq!(param_header_value("=?base64?SGVsbG8=?=").as_deref(), Ok("Hello"));
        assert!(param_header_value("=?base64?SGVsbG8?=").is_err(), "padding is required");
        assert!(param_header_value("=?base64?SGVs!!!bG8=?=").is_err());
        // Without both ends of the wrapper the value is literal.
        assert_eq!(param_header_value("=?base64?SGVsbG8=").as_deref(), Ok("=?base64?SGVsbG8="));
        assert_eq!(param_header_value("SGVsbG8=").as_deref(), Ok("SGVsbG8="));
    }

    #[test]
    fn a_token_is_written_once_with_mode_0600_and_read_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/mcp-token");
        let first = load_or_create_token(&path).expect("created");
        assert_eq!(first.len(), 64);
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(load_or_create_token(&path).expect("read"), first);
        std::fs::write(&path, "\n").expect("write");
        assert!(load_or_create_token(&path).is_err(), "an emptied token file is an error, not a new open door");
    }
}

//! Typed async client for the mcpd gRPC API (`mcpd.v1`), over a Unix socket or TCP.
//!
//! ```no_run
//! # async fn demo() -> Result<(), mcpd_client::ClientError> {
//! let mut client = mcpd_client::Client::connect_default().await?;
//! for tool in client.list_tools(None).await? {
//!     println!("{}", tool.qualified_name);
//! }
//! let result = client.call_tool("everything.echo", r#"{"message":"hi"}"#, None).await?;
//! println!("{}", result.content_json);
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bridge;

use std::{path::PathBuf, time::Duration};

use hyper_util::rt::TokioIo;
pub use mcpd_proto::v1 as proto;
use proto::mcpd_client::McpdClient;
use tokio_stream::StreamExt;
use tonic::{
    Request, Status,
    metadata::MetadataValue,
    transport::{Channel, Endpoint},
};

/// What can go wrong talking to the daemon.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The daemon could not be reached.
    #[error("cannot connect to mcpd at {target}: {source}")]
    Connect {
        /// Socket path or URL.
        target: String,
        /// Cause.
        #[source]
        source: tonic::transport::Error,
    },
    /// The address is not a socket path, `unix:` path or `http(s)://` URL.
    #[error("invalid mcpd address {0:?}")]
    Address(String),
    /// The daemon answered with an error status.
    #[error("{}: {}", code_name(.0.code()), .0.message())]
    Status(Status),
    /// The stream ended before a result arrived.
    #[error("the call stream ended without a result")]
    NoResult,
    /// The attach stream is closed.
    #[error("the attachment to mcpd is closed")]
    Detached,
}

fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        NotFound => "not found",
        InvalidArgument => "invalid argument",
        FailedPrecondition => "failed precondition",
        PermissionDenied => "permission denied",
        ResourceExhausted => "resource exhausted",
        Unavailable => "unavailable",
        DeadlineExceeded => "deadline exceeded",
        Cancelled => "cancelled",
        Unauthenticated => "unauthenticated",
        Unimplemented => "unimplemented",
        _ => "error",
    }
}

// Not `#[from]`: that would also make the status the error's `source`, and error
// chains would print the same message twice.
impl From<Status> for ClientError {
    fn from(s: Status) -> Self {
        ClientError::Status(s)
    }
}

impl ClientError {
    /// The gRPC code when the daemon answered with an error status.
    pub fn code(&self) -> Option<tonic::Code> {
        match self {
            ClientError::Status(s) => Some(s.code()),
            _ => None,
        }
    }
}

/// Where the daemon listens by default, matching the daemon's own choice:
/// `$MCPD_SOCKET`, else `$XDG_RUNTIME_DIR/mcpd/mcpd.sock`, else `/run/mcpd/mcpd.sock` for root,
/// else `/tmp/mcpd-$UID/mcpd.sock`.
pub fn default_socket_path() -> PathBuf {
    if let Some(p) = std::env::var_os("MCPD_SOCKET") {
        return PathBuf::from(p);
    }
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR") {
        return PathBuf::from(dir).join("mcpd").join("mcpd.sock");
    }
    let uid = current_uid();
    if uid == 0 { PathBuf::from("/run/mcpd/mcpd.sock") } else { PathBuf::from(format!("/tmp/mcpd-{uid}/mcpd.sock")) }
}

fn current_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    // The owner of /proc/self is the real uid of this process; avoids unsafe libc calls.
    std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(u32::MAX)
}

/// A connection to mcpd. Cheap to clone; clones share the connection.
#[derive(Clone, Debug)]
pub struct Client {
    inner: McpdClient<Channel>,
    token: Option<MetadataValue<tonic::metadata::Ascii>>,
}

impl Client {
    /// Connects to the default socket (see [`default_socket_path`]).
    pub async fn connect_default() -> Result<Self, ClientError> {
        Self::connect_unix(default_socket_path()).await
    }

    /// Connects to `addr`: a filesystem path, `unix:PATH`, or an `http://host:port` URL.
    pub async fn connect(addr: &str) -> Result<Self, ClientError> {
        if let Some(path) = addr.strip_prefix("unix://").or_else(|| addr.strip_prefix("unix:")) {
            return Self::connect_unix(PathBuf::from(path)).await;
        }
        if addr.starts_with("http://") || addr.starts_with("https://") {
            let endpoint = Endpoint::from_shared(addr.to_owned())
                .map_err(|_| ClientError::Address(addr.to_owned()))?
                .connect_timeout(Duration::from_secs(5));
            let channel =
                endpoint.connect().await.map_err(|source| ClientError::Connect { target: addr.to_owned(), source })?;
            return Ok(Self::from_channel(channel));
        }
        if addr.is_empty() {
            return Err(ClientError::Address(addr.to_owned()));
        }
        Self::connect_unix(PathBuf::from(addr)).await
    }

    /// Connects over a Unix domain socket.
    pub async fn connect_unix(path: PathBuf) -> Result<Self, ClientError> {
        // The URI is required by tonic but unused: every connection goes to the socket.
        let endpoint = Endpoint::from_static("http://localhost").connect_timeout(Duration::from_secs(5));
        let target = path.display().to_string();
        let channel = endpoint
            .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
                let path = path.clone();
                async move {
                    let stream = tokio::net::UnixStream::connect(path).await?;
                    Ok::<_, std::io::Error>(TokioIo::new(stream))
                }
            }))
            .await
            .map_err(|source| ClientError::Connect { target, source })?;
        Ok(Self::from_channel(channel))
    }

    /// Wraps an existing channel.
    pub fn from_channel(channel: Channel) -> Self {
        Self { inner: McpdClient::new(channel).max_decoding_message_size(64 * 1024 * 1024), token: None }
    }

    /// Sends `authorization: Bearer TOKEN` with every request (needed for TCP listeners).
    pub fn with_token(mut self, token: &str) -> Result<Self, ClientError> {
        let value =
            format!("Bearer {token}").parse().map_err(|_| ClientError::Address("token is not valid ASCII".into()))?;
        self.token = Some(value);
        Ok(self)
    }

    fn request<T>(&self, msg: T) -> Request<T> {
        let mut req = Request::new(msg);
        if let Some(token) = &self.token {
            req.metadata_mut().insert("authorization", token.clone());
        }
        req
    }

    /// Daemon and server status.
    pub async fn status(&mut self) -> Result<proto::StatusResponse, ClientError> {
        let req = self.request(proto::StatusRequest {});
        Ok(self.inner.status(req).await?.into_inner())
    }

    /// Configured servers and their state.
    pub async fn list_servers(&mut self) -> Result<Vec<proto::ServerStatus>, ClientError> {
        let req = self.request(proto::ListServersRequest {});
        Ok(self.inner.list_servers(req).await?.into_inner().servers)
    }

    /// Tools of all servers, or of `server` only.
    pub async fn list_tools(&mut self, server: Option<&str>) -> Result<Vec<proto::Tool>, ClientError> {
        let req = self.request(proto::ListToolsRequest { server: server.unwrap_or_default().to_owned() });
        Ok(self.inner.list_tools(req).await?.into_inner().tools)
    }

    /// The `k` tools (0 = 10) that best fit a task in words, best first, of `servers` only when
    /// that is not empty.
    pub async fn search_tools(
        &mut self,
        query: &str,
        k: u32,
        servers: &[String],
    ) -> Result<Vec<proto::ToolHit>, ClientError> {
        let req = self.request(proto::SearchToolsRequest { query: query.to_owned(), k, servers: servers.to_vec() });
        Ok(self.inner.search_tools(req).await?.into_inner().hits)
    }

    /// Calls `server.tool` with JSON `arguments` and waits for the result.
    pub async fn call_tool(
        &mut self,
        name: &str,
        arguments_json: &str,
        timeout: Option<Duration>,
    ) -> Result<proto::CallToolResponse, ClientError> {
        let req = self.request(call_request(name, arguments_json, timeout));
        Ok(self.inner.call_tool(req).await?.into_inner())
    }

    /// Calls `server.tool`, handing each progress notification to `on_progress`.
    /// Dropping the returned future cancels the call upstream.
    pub async fn call_tool_with_progress(
        &mut self,
        name: &str,
        arguments_json: &str,
        timeout: Option<Duration>,
        on_progress: impl FnMut(proto::Progress),
    ) -> Result<proto::CallToolResponse, ClientError> {
        self.call_with_progress(call_request(name, arguments_json, timeout), on_progress).await
    }

    /// Sends a whole [`proto::CallToolRequest`] (e.g. with `confirm` set for a destructive tool).
    pub async fn call(&mut self, req: proto::CallToolRequest) -> Result<proto::CallToolResponse, ClientError> {
        let req = self.request(req);
        Ok(self.inner.call_tool(req).await?.into_inner())
    }

    /// Like [`Client::call`], handing each progress notification to `on_progress`.
    pub async fn call_with_progress(
        &mut self,
        req: proto::CallToolRequest,
        mut on_progress: impl FnMut(proto::Progress),
    ) -> Result<proto::CallToolResponse, ClientError> {
        let req = self.request(req);
        let mut stream = self.inner.call_tool_stream(req).await?.into_inner();
        while let Some(event) = stream.next().await {
            match event?.event {
                Some(proto::call_tool_event::Event::Progress(p)) => on_progress(p),
                Some(proto::call_tool_event::Event::Result(r)) => return Ok(r),
                None => {}
            }
        }
        Err(ClientError::NoResult)
    }

    /// Streams daemon events, optionally for one server.
    pub async fn watch_events(&mut self, server: Option<&str>) -> Result<tonic::Streaming<proto::Event>, ClientError> {
        let req = self.request(proto::WatchEventsRequest { server: server.unwrap_or_default().to_owned() });
        Ok(self.inner.watch_events(req).await?.into_inner())
    }

    /// Asks the daemon to re-read its config file and apply it as a diff.
    pub async fn reload(&mut self) -> Result<proto::ReloadResponse, ClientError> {
        let req = self.request(proto::ReloadRequest {});
        Ok(self.inner.reload(req).await?.into_inner())
    }

    /// The last `lines` lines (0 = all kept) a stdio server wrote to stderr.
    pub async fn logs(&mut self, server: &str, lines: u32) -> Result<Vec<String>, ClientError> {
        let req = self.request(proto::LogsRequest { server: server.to_owned(), lines });
        Ok(self.inner.logs(req).await?.into_inner().lines)
    }

    /// Resources of every connected server (or one); `errors` names servers that could not be asked.
    pub async fn list_resources(&mut self, server: Option<&str>) -> Result<proto::ListResourcesResponse, ClientError> {
        let req = self.request(proto::ListResourcesRequest { server: server.unwrap_or_default().to_owned() });
        Ok(self.inner.list_resources(req).await?.into_inner())
    }

    /// Resource templates of every connected server (or one).
    pub async fn list_resource_templates(
        &mut self,
        server: Option<&str>,
    ) -> Result<proto::ListResourceTemplatesResponse, ClientError> {
        let req = self.request(proto::ListResourcesRequest { server: server.unwrap_or_default().to_owned() });
        Ok(self.inner.list_resource_templates(req).await?.into_inner())
    }

    /// Reads a resource; from mcpd's cache while fresh unless `fresh`.
    pub async fn read_resource(
        &mut self,
        server: &str,
        uri: &str,
        fresh: bool,
    ) -> Result<proto::ReadResourceResponse, ClientError> {
        let req = self.request(proto::ReadResourceRequest { server: server.to_owned(), uri: uri.to_owned(), fresh });
        Ok(self.inner.read_resource(req).await?.into_inner())
    }

    /// Subscribes to a resource's updates; they arrive on [`Client::watch_events`] as `resource_updated`.
    pub async fn subscribe_resource(&mut self, server: &str, uri: &str) -> Result<(), ClientError> {
        let req = self.request(proto::SubscribeResourceRequest { server: server.to_owned(), uri: uri.to_owned() });
        self.inner.subscribe_resource(req).await?;
        Ok(())
    }

    /// Prompts of every connected server (or one), qualified as `server.prompt`.
    pub async fn list_prompts(&mut self, server: Option<&str>) -> Result<proto::ListPromptsResponse, ClientError> {
        let req = self.request(proto::ListPromptsRequest { server: server.unwrap_or_default().to_owned() });
        Ok(self.inner.list_prompts(req).await?.into_inner())
    }

    /// Gets `server.prompt` with string arguments.
    pub async fn get_prompt(
        &mut self,
        name: &str,
        arguments: impl IntoIterator<Item = (String, String)>,
    ) -> Result<proto::GetPromptResponse, ClientError> {
        let req =
            self.request(proto::GetPromptRequest { name: name.to_owned(), arguments: arguments.into_iter().collect() });
        Ok(self.inner.get_prompt(req).await?.into_inner())
    }

    /// Argument completion for a prompt or a resource template (set exactly one in `req`).
    pub async fn complete(&mut self, req: proto::CompleteRequest) -> Result<proto::CompleteResponse, ClientError> {
        let req = self.request(req);
        Ok(self.inner.complete(req).await?.into_inner())
    }

    /// Attaches as an application that answers server requests (elicitation and/or
    /// sampling, per `hello`). Keep the returned [`Attachment`] alive for as long as the
    /// app answers; dropping it detaches.
    pub async fn attach(&mut self, hello: proto::AttachHello) -> Result<Attachment, ClientError> {
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let first = proto::AttachClientMessage { msg: Some(proto::attach_client_message::Msg::Hello(hello)) };
        // The channel is fresh and has room: this cannot fail or wait.
        let _ = tx.try_send(first);
        let req = self.request(tokio_stream::wrappers::ReceiverStream::new(rx));
        let mut inbound = self.inner.attach(req).await?.into_inner();
        let attach_id = match inbound.message().await? {
            Some(proto::AttachServerMessage { msg: Some(proto::attach_server_message::Msg::Ready(r)) }) => r.attach_id,
            _ => return Err(ClientError::NoResult),
        };
        Ok(Attachment { attach_id, inbound, outbound: tx })
    }

    /// Trust state of every tool (or one server's).
    pub async fn trust_list(&mut self, server: Option<&str>) -> Result<Vec<proto::TrustEntry>, ClientError> {
        let req = self.request(proto::TrustListRequest { server: server.unwrap_or_default().to_owned() });
        Ok(self.inner.trust_list(req).await?.into_inner().entries)
    }

    /// The approved definition of `server.tool` against the current one.
    pub async fn trust_diff(&mut self, name: &str) -> Result<proto::TrustDiffResponse, ClientError> {
        let req = self.request(proto::TrustDiffRequest { name: name.to_owned() });
        Ok(self.inner.trust_diff(req).await?.into_inner())
    }

    /// Approves `server.tool` or every tool of `server`; returns what changed. The pin is
    /// on the daemon's disk when this returns.
    pub async fn trust_approve(&mut self, target: &str) -> Result<Vec<String>, ClientError> {
        let req = self.request(proto::TrustTarget { target: target.to_owned() });
        Ok(self.inner.trust_approve(req).await?.into_inner().tools)
    }

    /// Revokes trust in `server.tool` or every tool of `server`.
    pub async fn trust_revoke(&mut self, target: &str) -> Result<Vec<String>, ClientError> {
        let req = self.request(proto::TrustTarget { target: target.to_owned() });
        Ok(self.inner.trust_revoke(req).await?.into_inner().tools)
    }

    /// The newest audit records (0 = 100), optionally of one server.
    pub async fn audit(&mut self, limit: u32, server: Option<&str>) -> Result<Vec<proto::AuditRecord>, ClientError> {
        let req = self.request(proto::AuditRequest { limit, server: server.unwrap_or_default().to_owned() });
        Ok(self.inner.audit(req).await?.into_inner().records)
    }

    /// Starts an agent run; read its events from the stream (dropping it cancels the run).
    pub async fn run_agent(
        &mut self,
        req: proto::RunAgentRequest,
    ) -> Result<tonic::Streaming<proto::AgentEvent>, ClientError> {
        let req = self.request(req);
        Ok(self.inner.run_agent(req).await?.into_inner())
    }

    /// Runs a pipeline; its step events then its result arrive on the stream.
    pub async fn run_pipeline(
        &mut self,
        name: &str,
        arguments_json: &str,
    ) -> Result<tonic::Streaming<proto::PipelineEvent>, ClientError> {
        let req = self.request(proto::RunPipelineRequest {
            name: name.to_owned(),
            arguments_json: arguments_json.to_owned(),
            timeout_ms: 0,
        });
        Ok(self.inner.run_pipeline(req).await?.into_inner())
    }

    /// Starts an OAuth login: the first event carries the URL to open, the last how it ended.
    pub async fn auth_login(&mut self, server: &str) -> Result<tonic::Streaming<proto::AuthLoginEvent>, ClientError> {
        let req = self.request(proto::AuthLoginRequest { server: server.to_owned() });
        Ok(self.inner.auth_login(req).await?.into_inner())
    }

    /// OAuth state of every server with an `[oauth]` table (or one); never a token.
    pub async fn auth_status(&mut self, server: Option<&str>) -> Result<Vec<proto::AuthServerStatus>, ClientError> {
        let req = self.request(proto::AuthStatusRequest { server: server.unwrap_or_default().to_owned() });
        Ok(self.inner.auth_status(req).await?.into_inner().servers)
    }

    /// Revokes (when the authorization server allows) and forgets a server's OAuth tokens.
    pub async fn auth_logout(&mut self, server: &str) -> Result<proto::AuthLogoutResponse, ClientError> {
        let req = self.request(proto::AuthLogoutRequest { server: server.to_owned() });
        Ok(self.inner.auth_logout(req).await?.into_inner())
    }

    /// The raw generated client, for RPCs this wrapper does not cover yet.
    pub fn raw(&mut self) -> &mut McpdClient<Channel> {
        &mut self.inner
    }
}

fn call_request(name: &str, arguments_json: &str, timeout: Option<Duration>) -> proto::CallToolRequest {
    proto::CallToolRequest {
        name: name.to_owned(),
        arguments_json: arguments_json.to_owned(),
        timeout_ms: timeout.map(|t| t.as_millis() as u64).unwrap_or(0),
        confirm: false,
    }
}

/// An attached application's side of the `Attach` stream.
#[derive(Debug)]
pub struct Attachment {
    /// The daemon's id for this attachment.
    pub attach_id: String,
    inbound: tonic::Streaming<proto::AttachServerMessage>,
    outbound: tokio::sync::mpsc::Sender<proto::AttachClientMessage>,
}

impl Attachment {
    /// The next server request routed to this app; `None` when the daemon closed the stream.
    pub async fn next_request(&mut self) -> Result<Option<proto::ServerRequest>, ClientError> {
        loop {
            match self.inbound.message().await? {
                Some(proto::AttachServerMessage { msg: Some(proto::attach_server_message::Msg::Request(r)) }) => {
                    return Ok(Some(r));
                }
                Some(_) => continue,
                None => return Ok(None),
            }
        }
    }

    /// Answers request `id` with an MCP result object (`Ok`) or a refusal message (`Err`).
    pub async fn reply(&self, id: &str, result: Result<serde_json::Value, String>) -> Result<(), ClientError> {
        let outcome = match result {
            Ok(v) => proto::server_request_reply::Outcome::ResultJson(v.to_string()),
            Err(e) => proto::server_request_reply::Outcome::Error(e),
        };
        let msg = proto::AttachClientMessage {
            msg: Some(proto::attach_client_message::Msg::Reply(proto::ServerRequestReply {
                id: id.to_owned(),
                outcome: Some(outcome),
            })),
        };
        self.outbound.send(msg).await.map_err(|_| ClientError::Detached)
    }
}

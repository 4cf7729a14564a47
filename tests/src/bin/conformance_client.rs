//! `mcpd-conformance-client`: runs one client scenario of the official MCP conformance suite
//! THROUGH mcpd. The harness calls `mcpd-conformance-client [ARGS...] URL` with
//! `MCP_CONFORMANCE_SCENARIO` set; this writes a temp config with one HTTP server `conf` at
//! URL, starts the real daemon (`mcpd` next to this executable, or `$MCPD_BIN`), waits until
//! `conf` is ready, does the scenario's work through `mcpd_client::Client`, stops the daemon
//! with SIGTERM and exits 0 only if all of that worked. The daemon log goes to stderr.
//! `$MCPD_CONFORMANCE_PROTOCOL` overrides the server's `protocol` (default "auto", what users get: mcpd probes
//! `server/discover` and falls back to `initialize`).
//!
//! The `auth/*` scenarios run mcpd's real authorization-code login: the config gives `conf` an
//! `[oauth]` table whose `login_command` is this executable in `--follow URL` mode (the
//! headless hook), which fetches the authorization URL and follows the mock authorization
//! server's redirect to mcpd's loopback listener, as a browser would.
use std::{
    path::{Path, PathBuf},
    process::{Child, Command, ExitCode, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow, bail};
use mcpd_client::{Client, proto};
use serde_json::{Map, Value, json};

/// The config name of the scenario's server; its tools are `conf.NAME`.
const SERVER: &str = "conf";
/// How long the daemon may take to bind its socket and to get `conf` ready.
const STARTUP: Duration = Duration::from_secs(20);
/// Deadline of one tool call (the harness kills us after `--timeout` anyway).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// What mcpd's config names as its client ID metadata document (the mock accepts any https URL).
const CIMD_URL: &str = "https://conformance-test.local/client-metadata.json";

fn main() -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mcpd-conformance-client: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // On SIGTERM (the harness's timeout) or SIGINT, dropping `run` drops the daemon
    // guard, which stops mcpd: no daemon outlives the adapter.
    let outcome = rt.block_on(async {
        tokio::select! {
            r = run() => r,
            sig = terminated() => Err(anyhow!("interrupted by {sig}")),
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcpd-conformance-client: FAILED: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGTERM or SIGINT (never, if the handlers cannot be installed).
async fn terminated() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(mut term), Ok(mut int)) => tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        },
        _ => std::future::pending().await,
    }
}

async fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--follow") {
        return follow(args.get(2).context("usage: mcpd-conformance-client --follow URL")?).await;
    }
    let url = std::env::args().next_back().filter(|a| a.contains("://")).context(
        "usage: mcpd-conformance-client URL (the conformance harness appends the server URL as the last argument)",
    )?;
    let scenario = std::env::var("MCP_CONFORMANCE_SCENARIO").context("MCP_CONFORMANCE_SCENARIO is not set")?;
    eprintln!("mcpd-conformance-client: scenario {scenario:?}, server {url}");

    // Credential scenarios hand the client its credentials in MCP_CONFORMANCE_CONTEXT; they
    // reach mcpd the way an admin's would: client_id in the config, the secret from the env.
    let context = || -> Result<(String, String)> {
        let ctx: serde_json::Value = serde_json::from_str(
            &std::env::var("MCP_CONFORMANCE_CONTEXT").context("MCP_CONFORMANCE_CONTEXT is not set")?,
        )
        .context("MCP_CONFORMANCE_CONTEXT is not JSON")?;
        let id = ctx["client_id"].as_str().context("no client_id in the context")?.to_owned();
        let secret = ctx["client_secret"].as_str().context("no client_secret in the context")?.to_owned();
        Ok((id, secret))
    };
    let oauth = if scenario == "auth/client-credentials-jwt" {
        let ctx = context_json().context("MCP_CONFORMANCE_CONTEXT is not set or not JSON")?;
        let field = |k: &str| ctx[k].as_str().map(str::to_owned).with_context(|| format!("no {k} in the context"));
        Some(OAuth::PrivateKeyJwt {
            client_id: field("client_id")?,
            key: field("private_key_pem")?,
            alg: field("signing_algorithm")?,
        })
    } else if scenario.starts_with("auth/client-credentials") {
        Some(OAuth::ClientCredentials(context()?))
    } else if scenario == "auth/pre-registration" {
        Some(OAuth::Login(Some(context()?)))
    } else if scenario.starts_with("auth/") {
        Some(OAuth::Login(None))
    } else {
        None
    };
    let mut daemon = Daemon::start(&url, oauth)?;
    let outcome = async {
        let mut client = daemon.connect().await?;
        // An app answers what the server asks (elicitation, sampling) in every scenario: it
        // must be attached before the tool call; attaching before the server is ready is
        // fine too (the daemon routes by server name).
        let attachment = Some(attach_app(&client).await?);
        let status = daemon.wait_ready(&mut client).await?;
        eprintln!(
            "mcpd-conformance-client: {SERVER} ready: protocol {} ({}), server {} {}, {} tool(s)",
            status.protocol_version, status.era, status.server_name, status.server_version, status.tool_count
        );
        let result = scenario_work(&scenario, &mut client).await;
        if let Some(task) = attachment {
            task.abort();
            if let Ok(Err(e)) = task.await {
                // An attachment that failed is worth knowing about even if the call passed.
                eprintln!("mcpd-conformance-client: attachment ended with an error: {e:#}");
            }
        }
        result
    }
    .await;
    let stopped = daemon.stop();
    daemon.dump_log();
    outcome?;
    stopped
}

/// The work each scenario expects a client to do once connected.
async fn scenario_work(scenario: &str, client: &mut Client) -> Result<()> {
    match scenario {
        // The handshake itself is what is checked; list the (empty) tools like the reference.
        // Authorized by now (the login hook ran); call every tool like the reference client.
        // Step-up scenarios answer 403 until the scope is wide enough: mcpd re-authorizes and
        // retries by itself, and gives up after 3 step-ups, so a failed call is an outcome
        // the checks judge, not an adapter error.
        "initialize" | "auth/client-credentials-basic" => {
            let tools = client.list_tools(Some(SERVER)).await.context("listing tools")?;
            eprintln!("mcpd-conformance-client: {} tool(s)", tools.len());
            Ok(())
        }
        "tools_call" => {
            require_tool(client, "add_numbers").await?;
            let r = call(client, "add_numbers", json!({"a": 5, "b": 3})).await?;
            let text = first_text(&r)?;
            if !text.contains('8') {
                bail!("add_numbers(5, 3) answered {text:?}, expected the sum 8");
            }
            Ok(())
        }
        "elicitation-sep1034-client-defaults" => {
            require_tool(client, "test_client_elicitation_defaults").await?;
            let r = call(client, "test_client_elicitation_defaults", json!({})).await?;
            let text = first_text(&r)?;
            if !text.starts_with("Elicitation completed") {
                bail!("the elicitation tool answered {text:?}, expected \"Elicitation completed: ...\"");
            }
            Ok(())
        }
        // The server ends the tool call's SSE stream without the result; rmcp must wait the
        // announced `retry`, resume with GET + Last-Event-ID and take the result from there.
        "sse-retry" => {
            require_tool(client, "test_reconnection").await?;
            let r = call(client, "test_reconnection", json!({})).await?;
            let text = first_text(&r)?;
            if !text.contains("Reconnection test completed") {
                bail!("test_reconnection answered {text:?}");
            }
            Ok(())
        }
        // Round-trip the focal tool's inputSchema as mcpd's ListTools gave it: what the
        // server sees echoed is what mcpd kept of it.
        "json-schema-2020-12-preservation" => {
            let tools = client.list_tools(Some(SERVER)).await.context("listing tools")?;
            let focal = tools
                .iter()
                .find(|t| t.name == "json_schema_2020_12_tool")
                .context("json_schema_2020_12_tool is not listed")?;
            let schema: Value =
                serde_json::from_str(&focal.input_schema_json).context("the inputSchema is not JSON")?;
            call(client, "json_schema_echo", json!({ "schema": schema })).await?;
            Ok(())
        }
        // Every other scenario, known or not: do what a host does with a server, and let
        // the harness's checks judge the traffic.
        _ => generic(client).await,
    }
}

/// The generic work: the calls the scenario's context names (`toolCalls`), else every
/// listed tool with arguments built from its schema; then every resource read and every
/// prompt got. A failed call is an outcome the checks judge, not an adapter error; only
/// a listing that fails is.
async fn generic(client: &mut Client) -> Result<()> {
    let tools = client.list_tools(Some(SERVER)).await.context("listing tools")?;
    eprintln!("mcpd-conformance-client: {} tool(s)", tools.len());
    let named: Vec<(String, Value)> = context_json()
        .and_then(|c| c.get("toolCalls").and_then(Value::as_array).cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|c| Some((c.get("name")?.as_str()?.to_owned(), c.get("arguments").cloned().unwrap_or(json!({})))))
        .collect();
    let calls: Vec<(String, Value)> = if named.is_empty() {
        tools
            .iter()
            .map(|t| {
                let schema: Value = serde_json::from_str(&t.input_schema_json).unwrap_or(json!({}));
                (t.name.clone(), arguments_for(&schema))
            })
            .collect()
    } else {
        named
    };
    for (tool, args) in calls {
        let name = format!("{SERVER}.{tool}");
        match client.call_tool(&name, &args.to_string(), Some(CALL_TIMEOUT)).await {
            Ok(r) => eprintln!("mcpd-conformance-client: {name}({args}) -> is_error={} {}", r.is_error, r.content_json),
            Err(e) => eprintln!("mcpd-conformance-client: {name}({args}) failed: {e}"),
        }
    }
    match client.list_resources(Some(SERVER)).await {
        Ok(list) => {
            for r in list.resources {
                match client.read_resource(SERVER, &r.uri, true).await {
                    Ok(c) => eprintln!("mcpd-conformance-client: read {} -> {}", r.uri, c.contents_json),
                    Err(e) => eprintln!("mcpd-conformance-client: read {} failed: {e}", r.uri),
                }
            }
        }
        Err(e) => eprintln!("mcpd-conformance-client: listing resources failed: {e}"),
    }
    match client.list_prompts(Some(SERVER)).await {
        Ok(list) => {
            for p in list.prompts {
                let args: Vec<Value> = serde_json::from_str(&p.arguments_json).unwrap_or_default();
                let args = args
                    .iter()
                    .filter(|a| a.get("required").and_then(Value::as_bool).unwrap_or(false))
                    .filter_map(|a| Some((a.get("name")?.as_str()?.to_owned(), "test".to_owned())));
                match client.get_prompt(&p.qualified_name, args).await {
                    Ok(g) => eprintln!("mcpd-conformance-client: prompt {} -> {}", p.qualified_name, g.messages_json),
                    Err(e) => eprintln!("mcpd-conformance-client: prompt {} failed: {e}", p.qualified_name),
                }
            }
        }
        Err(e) => eprintln!("mcpd-conformance-client: listing prompts failed: {e}"),
    }
    Ok(())
}

/// The harness's `MCP_CONFORMANCE_CONTEXT`, when set and JSON.
fn context_json() -> Option<Value> {
    serde_json::from_str(&std::env::var("MCP_CONFORMANCE_CONTEXT").ok()?).ok()
}

/// Arguments for a tool from its input schema: every required property and every one with
/// a `default`, each set to an example of its schema.
fn arguments_for(schema: &Value) -> Value {
    let mut args = Map::new();
    let required = required_names(schema);
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, prop) in props {
            if required.contains(&name.as_str()) || prop.get("default").is_some() {
                args.insert(name.clone(), example(schema, prop, 0));
            }
        }
    }
    Value::Object(args)
}

/// The names a schema's `required` lists.
fn required_names(schema: &Value) -> Vec<&str> {
    schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// A value that `prop` accepts: its default, const, first enum value or example, else one
/// made from its type. Local `$ref`s resolve against `root`; depth bounds recursion.
fn example(root: &Value, prop: &Value, depth: usize) -> Value {
    if depth > 8 {
        return Value::Null;
    }
    for key in ["default", "const"] {
        if let Some(v) = prop.get(key) {
            return v.clone();
        }
    }
    for key in ["enum", "examples"] {
        if let Some(v) = prop.get(key).and_then(Value::as_array).and_then(|a| a.first()) {
            return v.clone();
        }
    }
    if let Some(target) = prop.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix('#'))
        && let Some(t) = root.pointer(target)
    {
        return example(root, t, depth + 1);
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(first) = prop.get(key).and_then(Value::as_array).and_then(|a| a.first()) {
            return example(root, first, depth + 1);
        }
    }
    let ty = match prop.get("type") {
        Some(Value::Array(types)) => types.iter().filter_map(Value::as_str).find(|t| *t != "null").unwrap_or("null"),
        Some(Value::String(t)) => t.as_str(),
        _ => "string",
    };
    match ty {
        "integer" | "number" => prop.get("minimum").cloned().unwrap_or(json!(1)),
        "boolean" => json!(true),
        "null" => Value::Null,
        "array" => {
            let n = prop.get("minItems").and_then(Value::as_u64).unwrap_or(0).min(4);
            let item = prop.get("items").cloned().unwrap_or(json!({}));
            Value::Array((0..n).map(|_| example(root, &item, depth + 1)).collect())
        }
        "object" => {
            let mut o = Map::new();
            let required = required_names(prop);
            if let Some(props) = prop.get("properties").and_then(Value::as_object) {
                for name in required {
                    if let Some(p) = props.get(name) {
                        o.insert(name.to_owned(), example(root, p, depth + 1));
                    }
                }
            }
            Value::Object(o)
        }
        _ => json!("test"),
    }
}

/// Fails unless `conf.TOOL` is listed.
async fn require_tool(client: &mut Client, tool: &str) -> Result<()> {
    let tools = client.list_tools(Some(SERVER)).await.context("listing tools")?;
    let names: Vec<&str> = tools.iter().map(|t| t.qualified_name.as_str()).collect();
    let want = format!("{SERVER}.{tool}");
    if !names.contains(&want.as_str()) {
        bail!("{want} is not listed; tools: {names:?}");
    }
    Ok(())
}

async fn call(client: &mut Client, tool: &str, args: Value) -> Result<proto::CallToolResponse> {
    let name = format!("{SERVER}.{tool}");
    let started = Instant::now();
    let r = client
        .call_tool(&name, &args.to_string(), Some(CALL_TIMEOUT))
        .await
        .with_context(|| format!("calling {name}"))?;
    eprintln!(
        "mcpd-conformance-client: {name} answered in {:?}: is_error={} content={}",
        started.elapsed(),
        r.is_error,
        r.content_json
    );
    if r.is_error {
        bail!("{name} returned an error result: {}", r.content_json);
    }
    Ok(r)
}

fn first_text(r: &proto::CallToolResponse) -> Result<String> {
    let content: Value = serde_json::from_str(&r.content_json).context("result content is not JSON")?;
    content
        .get(0)
        .and_then(|c| c.get("text"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .with_context(|| format!("result has no text block: {}", r.content_json))
}

/// Attaches as an app that answers `elicitation/create` from `conf` by accepting with every
/// field of the requested schema set to its `default` (SEP-1034), and `sampling/createMessage`
/// with a fixed text. Returns once the daemon said `ready`; the returned task answers
/// requests until aborted.
async fn attach_app(client: &Client) -> Result<tokio::task::JoinHandle<Result<()>>> {
    let hello = proto::AttachHello {
        app: "conformance".into(),
        servers: vec![SERVER.into()],
        elicitation: true,
        sampling: true,
    };
    let mut attachment = client.clone().attach(hello).await.context("attaching as an app")?;
    Ok(tokio::spawn(async move {
        while let Some(req) = attachment.next_request().await.context("reading the attachment stream")? {
            eprintln!("mcpd-conformance-client: {} from {}: {}", req.method, req.server, req.params_json);
            let answer = match req.method.as_str() {
                "elicitation/create" => accept_with_defaults(&req.params_json),
                "sampling/createMessage" => Ok(json!({
                    "role": "assistant",
                    "content": {"type": "text", "text": "a sampled answer from the conformance app"},
                    "model": "conformance-app",
                    "stopReason": "endTurn",
                })),
                other => Err(format!("this app does not answer {other}")),
            };
            if let Err(e) = &answer {
                eprintln!("mcpd-conformance-client: declining request {}: {e}", req.id);
            }
            attachment.reply(&req.id, answer).await.with_context(|| format!("replying to request {}", req.id))?;
        }
        Ok(())
    }))
}

/// `{"action":"accept","content":{...}}` with each property's schema `default`; a property
/// without one is left out, unless it is required.
fn accept_with_defaults(params_json: &str) -> Result<Value, String> {
    let params: Value = serde_json::from_str(params_json).map_err(|e| format!("params are not JSON: {e}"))?;
    let schema = params.get("requestedSchema");
    let props = schema
        .and_then(|s| s.get("properties"))
        .and_then(Value::as_object)
        .ok_or("the request has no requestedSchema.properties (url elicitation is not supported)")?;
    let required = schema.map(required_names).unwrap_or_default();
    let mut content = Map::new();
    for (name, prop) in props {
        match prop.get("default") {
            Some(default) => {
                content.insert(name.clone(), default.clone());
            }
            // A required field without a default gets an example of its schema, as a
            // user filling in the form would give something.
            None if required.contains(&name.as_str()) => {
                content.insert(name.clone(), example(schema.unwrap_or(&Value::Null), prop, 0));
            }
            None => {}
        }
    }
    Ok(json!({"action": "accept", "content": content}))
}

/// The daemon under test, on a temp socket and state dir; SIGTERMed (then killed) on drop.
struct Daemon {
    dir: tempfile::TempDir,
    socket: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

/// How `conf` authorizes.
enum OAuth {
    /// Machine-to-machine: (client_id, client_secret).
    ClientCredentials((String, String)),
    /// Machine-to-machine with a signed assertion (`private_key_jwt`): the PEM key and
    /// the algorithm the scenario names.
    PrivateKeyJwt { client_id: String, key: String, alg: String },
    /// The authorization-code login, with a pre-registered (client_id, client_secret) or
    /// with CIMD / dynamic registration.
    Login(Option<(String, String)>),
}

/// The headless login hook: fetch the authorization URL and follow its redirects to mcpd's
/// loopback listener, as a browser would; fails unless the last page is a success.
async fn follow(url: &str) -> Result<()> {
    let client = reqwest::Client::builder().no_proxy().build().context("building the HTTP client")?;
    let r = client.get(url).send().await.context("following the authorization URL")?;
    let status = r.status();
    let body = r.text().await.unwrap_or_default();
    if !status.is_success() {
        bail!("the redirect chain ended with {status}: {body}");
    }
    Ok(())
}

impl Daemon {
    fn start(url: &str, oauth: Option<OAuth>) -> Result<Self> {
        let bin = mcpd_bin()?;
        // Pinned by default: the mock servers misbehave on the `server/discover` probe of "auto".
        let protocol = std::env::var("MCPD_CONFORMANCE_PROTOCOL").unwrap_or_else(|_| "auto".to_owned());
        let dir = tempfile::tempdir().context("creating a temp dir")?;
        let socket = dir.path().join("mcpd.sock");
        let config = dir.path().join("mcpd.toml");
        let log = dir.path().join("mcpd.log");
        let mut body = format!(
            "[daemon]\nsocket = {}\nstate_dir = {}\nshutdown_grace = \"2s\"\nlog_level = \"info,mcpd=debug\"\n\n\
             [servers.{SERVER}]\ntransport = \"http\"\nurl = {}\nprotocol = {}\nliveness_interval = \"0s\"\n\
             backoff = {{ initial = \"200ms\", max = \"1s\" }}\n",
            mcpd_tests::q(socket.display().to_string()),
            mcpd_tests::q(dir.path().join("state").display().to_string()),
            mcpd_tests::q(url),
            mcpd_tests::q(protocol),
        );
        let mut secret_env = None;
        match oauth {
            Some(OAuth::ClientCredentials((id, secret))) => {
                body.push_str(&format!(
                    "oauth = {{ grant = \"client_credentials\", client_id = {}, client_secret = \"${{env:MCPD_CONFORMANCE_CLIENT_SECRET}}\", allow_loopback = true }}\n",
                    mcpd_tests::q(id)
                ));
                secret_env = Some(secret);
            }
            Some(OAuth::PrivateKeyJwt { client_id, key, alg }) => {
                body.push_str(&format!(
                    "oauth = {{ grant = \"client_credentials\", client_id = {}, private_key = \"${{env:MCPD_CONFORMANCE_CLIENT_SECRET}}\", signing_algorithm = {}, allow_loopback = true }}\n",
                    mcpd_tests::q(client_id),
                    mcpd_tests::q(alg)
                ));
                secret_env = Some(key);
            }
            Some(OAuth::Login(pre)) => {
                let me = std::env::current_exe().context("locating this executable")?;
                body.push_str(&format!(
                    "[servers.{SERVER}.oauth]\nallow_loopback = true\nclient_metadata_url = {}\nlogin_command = [{}, \"--follow\"]\n",
                    mcpd_tests::q(CIMD_URL),
                    mcpd_tests::q(me.display().to_string()),
                ));
                if let Some((id, secret)) = pre {
                    body.push_str(&format!(
                        "client_id = {}\nclient_secret = \"${{env:MCPD_CONFORMANCE_CLIENT_SECRET}}\"\n",
                        mcpd_tests::q(id)
                    ));
                    secret_env = Some(secret);
                }
            }
            None => {}
        }
        std::fs::write(&config, body).with_context(|| format!("writing {}", config.display()))?;
        let log_file = std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut cmd = Command::new(&bin);
        if let Some(secret) = secret_env {
            cmd.env("MCPD_CONFORMANCE_CLIENT_SECRET", secret);
        }
        let child = cmd
            .args(["serve", "--config"])
            .arg(&config)
            .env_remove("MCPD_SOCKET")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().context("duplicating the log file handle")?)
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        Ok(Self { dir, socket, log, child: Some(child) })
    }

    /// Waits for the socket and connects.
    async fn connect(&mut self) -> Result<Client> {
        let deadline = Instant::now() + STARTUP;
        while !self.socket.exists() {
            self.check_alive()?;
            if Instant::now() > deadline {
                bail!("mcpd did not bind {} within {STARTUP:?}", self.socket.display());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The socket file appears at bind, a moment before the daemon listens on it.
        loop {
            match Client::connect_unix(self.socket.clone()).await {
                Ok(c) => return Ok(c),
                Err(e) if Instant::now() > deadline => return Err(e).context("connecting to mcpd"),
                Err(_) => {
                    self.check_alive()?;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }

    /// Waits until `conf` is READY; fails with its last error if it backs off or never gets there.
    async fn wait_ready(&mut self, client: &mut Client) -> Result<proto::ServerStatus> {
        let deadline = Instant::now() + STARTUP;
        loop {
            self.check_alive()?;
            let st = client.status().await.context("asking mcpd for status")?;
            let server = st.servers.into_iter().find(|s| s.name == SERVER);
            if let Some(s) = server {
                let state = proto::ServerState::try_from(s.state).unwrap_or(proto::ServerState::Unspecified);
                match state {
                    proto::ServerState::Ready => return Ok(s),
                    // mcpd refused or stopped re-authorizing (a hostile or always-refusing server): final.
                    proto::ServerState::NeedsAuth
                        if s.last_error.contains("will not log in again")
                            || s.last_error.contains("step-up")
                            || s.last_error.contains("automatic OAuth login failed") =>
                    {
                        bail!("server {SERVER} stays in needs-auth: {}", s.last_error)
                    }
                    proto::ServerState::Backoff | proto::ServerState::CircuitOpen => {
                        bail!("server {SERVER} failed to connect ({state:?}): {}", s.last_error)
                    }
                    _ if Instant::now() > deadline => {
                        bail!("server {SERVER} not ready within {STARTUP:?} ({state:?}): {}", s.last_error)
                    }
                    _ => {}
                }
            } else if Instant::now() > deadline {
                bail!("mcpd does not list server {SERVER}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn check_alive(&mut self) -> Result<()> {
        if let Some(c) = self.child.as_mut()
            && let Some(status) = c.try_wait().context("checking on mcpd")?
        {
            self.child = None;
            bail!("mcpd exited early with {status}");
        }
        Ok(())
    }

    /// SIGTERM, then wait up to 15 s (SIGKILL after that); Ok only on a clean exit.
    fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else { return Err(anyhow!("mcpd is not running")) };
        signal(&child, rustix::process::Signal::TERM);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = child.try_wait().context("waiting for mcpd")? {
                return if status.success() { Ok(()) } else { Err(anyhow!("mcpd exited with {status} on SIGTERM")) };
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("mcpd did not exit within 15s of SIGTERM (killed)");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Copies the daemon log to stderr (the harness keeps it in stderr.txt).
    fn dump_log(&self) {
        let text = strip_ansi(&std::fs::read_to_string(&self.log).unwrap_or_default());
        eprintln!("---- mcpd log ({}) ----\n{text}---- end of mcpd log ----", self.dir.path().display());
    }
}

impl Drop for Daemon {
    /// Only reached with mcpd still running when the work was interrupted: stop it, show its log.
    fn drop(&mut self) {
        if self.child.is_some() {
            if let Err(e) = self.stop() {
                eprintln!("mcpd-conformance-client: {e:#}");
            }
            self.dump_log();
        }
    }
}

/// Drops ANSI escape sequences (`ESC [ ... letter`): the daemon colours its log even in a file.
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn signal(child: &Child, sig: rustix::process::Signal) {
    if let Some(pid) = i32::try_from(child.id()).ok().and_then(rustix::process::Pid::from_raw) {
        let _ = rustix::process::kill_process(pid, sig);
    }
}

/// `$MCPD_BIN`, else `mcpd` next to this executable (`target/<profile>/`).
fn mcpd_bin() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("MCPD_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().context("locating this executable")?;
    let p = exe.parent().map(|d| d.join("mcpd")).unwrap_or_else(|| Path::new("mcpd").to_owned());
    if !p.exists() {
        bail!("{} is missing: build the workspace binaries first (`cargo build --workspace --bins`)", p.display());
    }
    Ok(p)
}

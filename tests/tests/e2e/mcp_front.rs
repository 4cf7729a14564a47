//! mcpd as an MCP server: a host on the official Python SDK (tests/servers/py_host.py)
//! through both front ends (`mcpd mcp`, launched as a host launches it, and the Streamable
//! HTTP endpoint) in both protocol eras; profiles; the refusals in front of the endpoint; and
//! the bridge with no daemon. Upstream: the session-era fault server `f` and a Python SDK
//! server `p` that negotiates 2026-07-28.
use std::{path::Path, process::Command, time::Duration};

use mcpd_tests::*;
use serde_json::Value;

const READY: Duration = Duration::from_secs(60);

fn servers() -> String {
    format!(
        "{}[servers.p]\ncommand = {}\nargs = [{}]\n",
        fault_server("f", &[], ""),
        q(python().display().to_string()),
        q(py_server_script().display().to_string())
    )
}

const PROFILES: &str = "[profiles.only-f]\nservers = [\"f\"]\nnames = \"alias\"\ntools = { deny = [\"f.crash*\"] }\n";

fn host_script() -> std::path::PathBuf {
    repo_root().join("tests/servers/py_host.py")
}

/// Which front end a host uses.
enum Via<'a> {
    Http { url: String, token: Option<&'a str> },
    Stdio { socket: &'a Path, profile: Option<&'a str> },
}

/// Runs py_host.py with `steps`; its JSON lines, and whether it exited 0.
fn host(via: &Via<'_>, mode: &str, steps: &[&str]) -> (Vec<Value>, bool, String) {
    let mut cmd = Command::new(python());
    cmd.arg(host_script());
    match via {
        Via::Http { url, token } => {
            cmd.args(["--http", url]);
            if let Some(t) = token {
                cmd.args(["--token", t]);
            }
        }
        Via::Stdio { socket, profile } => {
            cmd.arg("--stdio").arg(mcpd_bin()).arg("--socket").arg(socket);
            if let Some(p) = profile {
                cmd.args(["--profile", p]);
            }
        }
    }
    cmd.args(["--mode", mode]).args(steps);
    let out = cmd.env_remove("MCPD_SOCKET").output().expect("run py_host.py");
    let lines = String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    (lines, out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn token_of(d: &TestDaemon) -> String {
    std::fs::read_to_string(d.state_dir.join("mcp-token")).expect("token file written").trim().to_owned()
}

fn names(line: &Value) -> Vec<String> {
    line["names"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_sdk_host_works_through_both_front_ends_in_both_eras() {
    let pipeline = "[[pipelines]]\nname = \"shout\"\ndescription = \"echo through f\"\n[[pipelines.steps]]\nid = \"say\"\ntool = \"f.echo\"\nargs = { text = \"piped\" }\n";
    let d = TestDaemon::start_with("mcp_listen = \"127.0.0.1:0\"", &format!("{}{pipeline}", servers()));
    let port = d.mcp_port().await;
    d.wait_state("f", proto::ServerState::Ready, READY).await;
    d.wait_state("p", proto::ServerState::Ready, READY).await;
    let token = token_of(&d);
    let url = format!("http://127.0.0.1:{port}/mcp");
    let steps = [
        "era",
        "tools",
        r#"call:f.echo:{"text":"via f"}"#,
        r#"call:p.add:{"a":2,"b":3}"#,
        r#"call:p.nope:{}"#,
        "prompts",
        r#"prompt:p.greet:{"name":"Ada"}"#,
        "read:test://greeting",
        "call:pipeline.shout:{}",
    ];
    for (mode, era) in [("legacy", "2025-11-25"), ("auto", "2026-07-28")] {
        for via in
            [Via::Http { url: url.clone(), token: Some(&token) }, Via::Stdio { socket: &d.socket, profile: None }]
        {
            let kind = if matches!(via, Via::Http { .. }) { "http" } else { "stdio" };
            let (lines, ok, err) = host(&via, mode, &steps);
            assert!(ok, "{kind} {mode}: the host failed: {lines:?}\n{err}\ndaemon log:\n{}", d.log_text());
            assert_eq!(lines[0]["version"], era, "{kind} {mode}");
            let tools = names(&lines[1]);
            assert!(tools.contains(&"f.echo".to_owned()) && tools.contains(&"p.add".to_owned()), "{tools:?}");
            // MCP Apps tools only an app's UI may call are not shown to the host's model.
            assert!(!tools.contains(&"p.open_widget".to_owned()), "{tools:?}");
            assert_eq!(lines[2]["text"], "via f", "{kind} {mode}: {:?}", lines[2]);
            assert_eq!(lines[3]["structured"]["result"], 5, "{kind} {mode}: {:?}", lines[3]);
            let unknown = lines[4]["protocol_error"].as_str().unwrap_or("");
            assert!(unknown.contains("no tool named"), "{kind} {mode}: an unknown tool is an error: {:?}", lines[4]);
            assert!(names(&lines[5]).contains(&"p.greet".to_owned()), "{:?}", lines[5]);
            assert!(lines[6]["text"].as_str().unwrap_or("").contains("Ada"), "{:?}", lines[6]);
            assert_eq!(lines[7]["text"], "hello", "{:?}", lines[7]);
            // Pipelines are tools like any other.
            assert!(tools.contains(&"pipeline.shout".to_owned()), "{tools:?}");
            assert!(lines[8]["text"].as_str().unwrap_or("").contains("piped"), "{kind} {mode}: {:?}", lines[8]);
        }
    }
    // Every call took the core path: audited, naming the host and its front end.
    let mut c = d.client().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let records = loop {
        let r = c.audit(100, None).await.expect("Audit answers");
        if r.len() >= 16 || tokio::time::Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let by_host: Vec<_> = records.iter().filter(|r| r.app.starts_with("mcp:py-host")).collect();
    assert!(by_host.iter().any(|r| r.app.contains("(http, profile default)") && r.tool == "f.echo"), "{by_host:#?}");
    assert!(
        by_host.iter().any(|r| r.app.contains("(stdio pid:") && r.tool == "p.add" && r.outcome == "ok"),
        "{by_host:#?}"
    );
    let st = c.status().await.expect("Status");
    let daemon = st.daemon.expect("daemon status");
    assert_eq!(daemon.mcp_listen, format!("127.0.0.1:{port}"));
    assert_eq!(daemon.mcp_auth, "token");
    assert!(daemon.mcp_socket.ends_with("mcpd.mcp.sock"), "{}", daemon.mcp_socket);
    // The token is the daemon's secret: nothing it prints shows it.
    assert!(!d.log_text().contains(&token), "the token leaked into the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiles_decide_what_each_host_sees() {
    let d = TestDaemon::start_with("mcp_listen = \"127.0.0.1:0\"", &format!("{}{PROFILES}", servers()));
    let port = d.mcp_port().await;
    d.wait_state("f", proto::ServerState::Ready, READY).await;
    d.wait_state("p", proto::ServerState::Ready, READY).await;
    let token = token_of(&d);
    let steps = ["tools", r#"call:f__echo:{"text":"aliased"}"#];
    for via in [
        Via::Http { url: format!("http://127.0.0.1:{port}/mcp/only-f"), token: Some(&token) },
        Via::Stdio { socket: &d.socket, profile: Some("only-f") },
    ] {
        let (lines, ok, err) = host(&via, "auto", &steps);
        assert!(ok, "{lines:?}\n{err}");
        let tools = names(&lines[0]);
        assert!(tools.contains(&"f__echo".to_owned()), "{tools:?}");
        assert!(tools.iter().all(|t| t.starts_with("f__")), "only f's tools, aliased: {tools:?}");
        assert!(!tools.contains(&"f__crash".to_owned()), "the profile denies f.crash*: {tools:?}");
        assert_eq!(lines[1]["text"], "aliased");
        // Another server's tool is not reachable through the profile.
        let (lines, _, _) = host(&via, "auto", &[r#"call:p__add:{"a":1,"b":1}"#]);
        assert!(lines[0]["protocol_error"].as_str().unwrap_or("").contains("unknown tool"), "{lines:?}");
    }
    // An unknown profile: 404 on HTTP, a clear refusal from the bridge.
    let (status, _) = post(port, "/mcp/nope", &[("Authorization", &format!("Bearer {token}"))]).await;
    assert_eq!(status, 404);
    let out = Command::new(mcpd_bin())
        .args(["mcp", "--profile", "nope", "--socket"])
        .arg(&d.socket)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run mcpd mcp");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no profile named \"nope\""), "{err}");
}

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"0"}}}"#;
const CALL: &str = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"f.echo","arguments":{"text":"should not arrive"}}}"#;

/// A raw HTTP/1.1 POST with the default Host (`127.0.0.1:PORT`) unless `headers` set one.
async fn post_body(port: u16, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("endpoint listening");
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nConnection: close\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        head.push_str(&format!("Host: 127.0.0.1:{port}\r\n"));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).await.expect("request sent");
    s.write_all(body.as_bytes()).await.expect("body sent");
    let mut out = Vec::new();
    // An SSE answer stays open; the status line is all some checks need.
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, text)
}

async fn post(port: u16, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    post_body(port, path, headers, INITIALIZE).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_origins_hosts_and_tokens_are_refused_before_any_upstream() {
    let d = TestDaemon::start_with("mcp_listen = \"127.0.0.1:0\"", &fault_server("f", &[], ""));
    let port = d.mcp_port().await;
    d.wait_state("f", proto::ServerState::Ready, READY).await;
    let token = token_of(&d);
    let bearer = format!("Bearer {token}");
    let cases: [(&[(&str, &str)], u16); 5] = [
        (&[("Authorization", &bearer), ("Origin", "http://evil.example")], 403),
        (&[("Authorization", &bearer), ("Host", "evil.example")], 403),
        // A rebinding page: the right address under a foreign name.
        (&[("Authorization", &bearer), ("Host", "attacker.example:80")], 403),
        (&[], 401),
        (&[("Authorization", "Bearer not-the-token")], 401),
    ];
    for (headers, want) in cases {
        let (status, text) = post_body(port, "/mcp", headers, CALL).await;
        assert_eq!(status, want, "{headers:?}: {text}");
    }
    // The right token from a loopback origin passes.
    let origin = format!("http://localhost:{port}");
    let (status, text) = post(port, "/mcp", &[("Authorization", &bearer), ("Origin", &origin)]).await;
    assert_eq!(status, 200, "{text}");
    // None of the refused calls reached the server: nothing was called, nothing audited.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut c = d.client().await;
    let records = c.audit(100, None).await.expect("Audit answers");
    assert!(records.is_empty(), "refused requests reached the call path: {records:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_auth_none_takes_no_token_and_says_so() {
    let d = TestDaemon::start_with("mcp_listen = \"127.0.0.1:0\"\nmcp_auth = \"none\"", &fault_server("f", &[], ""));
    let port = d.mcp_port().await;
    d.wait_state("f", proto::ServerState::Ready, READY).await;
    let (status, text) = post(port, "/mcp", &[]).await;
    assert_eq!(status, 200, "{text}");
    assert!(!d.state_dir.join("mcp-token").exists(), "no token is written when auth is off");
    let out = Command::new(mcpd_bin()).args(["status", "--json", "--socket"]).arg(&d.socket).output().expect("status");
    let v: Value = serde_json::from_slice(&out.stdout).expect("status json");
    assert_eq!(v["daemon"]["mcp"]["auth"], "none");
    let table = Command::new(mcpd_bin()).args(["status", "--socket"]).arg(&d.socket).output().expect("status");
    assert!(String::from_utf8_lossy(&table.stdout).contains("NO token"));
}

#[test]
fn the_bridge_without_a_daemon_fails_at_once_and_says_how_to_start_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let started = std::time::Instant::now();
    let out = Command::new(mcpd_bin())
        .args(["mcp", "--socket"])
        .arg(dir.path().join("mcpd.sock"))
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run mcpd mcp");
    assert!(started.elapsed() < Duration::from_secs(5), "it must not wait for a daemon");
    assert_eq!(out.status.code(), Some(69), "EX_UNAVAILABLE");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no mcpd daemon is running") && err.contains("mcpd serve"), "{err}");
    assert!(out.stdout.is_empty(), "stdout is the host's MCP stream: nothing else goes there");
    // It started no daemon of its own.
    assert!(!dir.path().join("mcpd.sock").exists());
}

#[test]
fn config_snippets_launch_this_binary() {
    let out = Command::new(mcpd_bin()).args(["config", "snippet", "claude-desktop"]).output().expect("snippet");
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["mcpServers"]["mcpd"]["command"], mcpd_bin().display().to_string());
    assert_eq!(v["mcpServers"]["mcpd"]["args"][0], "mcp");
}

/// Sampling and elicitation asked during a host's call reach that host, whatever its era
/// and front end, from a 2026-07-28 server (`p`: `input_required` rounds upstream) and a
/// session-era one (`ev`, server-everything: requests on its session). A 2026-07-28 host is
/// asked in `input_required` rounds of its own `tools/call`. mcpd's rules still come first:
/// a form asking for a password never reaches the host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hosts_own_calls_send_it_the_sampling_and_elicitation_they_cause() {
    let servers = format!(
        "{}[servers.ev]\ncommand = {}\nargs = [\"stdio\"]\n",
        servers(),
        q(everything_bin().display().to_string())
    );
    let d = TestDaemon::start_with("mcp_listen = \"127.0.0.1:0\"", &servers);
    let port = d.mcp_port().await;
    for s in ["p", "ev"] {
        d.wait_state(s, proto::ServerState::Ready, READY).await;
    }
    let token = token_of(&d);
    let steps = [
        "call:p.ask_user:{}",
        r#"call:p.ask_llm:{"prompt":"why"}"#,
        r#"call:ev.trigger-sampling-request:{"prompt":"hi","maxTokens":10}"#,
        "call:ev.trigger-elicitation-request:{}",
        "call:p.ask_password:{}",
    ];
    for mode in ["legacy", "auto"] {
        for via in [
            Via::Http { url: format!("http://127.0.0.1:{port}/mcp"), token: Some(&token) },
            Via::Stdio { socket: &d.socket, profile: None },
        ] {
            let kind = if matches!(via, Via::Http { .. }) { "http" } else { "stdio" };
            let (lines, ok, err) = host(&via, mode, &steps);
            assert!(ok, "{kind} {mode}: {lines:?}\n{err}\ndaemon log:\n{}", d.log_text());
            assert_eq!(lines[0]["text"], "hello Ada (36)", "{kind} {mode}: {:?}", lines[0]);
            assert_eq!(lines[0]["elicited"], 1, "{kind} {mode}");
            assert!(lines[1]["text"].as_str().unwrap_or("").contains("sampled: why"), "{kind} {mode}: {:?}", lines[1]);
            assert_eq!(lines[1]["sampled"], 1, "{kind} {mode}");
            assert!(lines[2]["text"].as_str().unwrap_or("").contains("sampled: "), "{kind} {mode}: {:?}", lines[2]);
            assert_eq!(lines[2]["sampled"], 2, "{kind} {mode}");
            assert!(lines[3]["text"].as_str().unwrap_or("").contains("Ada"), "{kind} {mode}: {:?}", lines[3]);
            assert_eq!(lines[3]["elicited"], 2, "{kind} {mode}");
            // Declined by mcpd before the host is asked.
            assert_eq!(lines[4]["text"], "decline", "{kind} {mode}: {:?}", lines[4]);
            assert_eq!(lines[4]["elicited"], 2, "{kind} {mode}: the password form reached the host");
        }
    }
}

/// Runs the MCP Inspector CLI (`--cli`) with `args`; its stdout as JSON.
fn inspector(args: &[&str]) -> Value {
    let out = Command::new(node22())
        .arg(inspector_script())
        .arg("--cli")
        .args(args)
        .env("MCP_CATALOG_PATH", std::env::temp_dir().join(format!("mcpd-inspector-{}.json", std::process::id())))
        .env_remove("MCPD_SOCKET")
        .output()
        .expect("run the Inspector CLI");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "inspector {args:?} failed: {text}\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("inspector {args:?} printed no JSON ({e}): {text}"))
}

/// The MCP Inspector, a client nobody here wrote, lists and calls tools through `mcpd mcp`
/// (launching it as a host does) and through the HTTP endpoint with the bearer token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mcp_inspector_cli_lists_and_calls_tools_through_both_front_ends() {
    let d = TestDaemon::start_with("mcp_listen = \"127.0.0.1:0\"", &servers());
    let port = d.mcp_port().await;
    d.wait_state("f", proto::ServerState::Ready, READY).await;
    d.wait_state("p", proto::ServerState::Ready, READY).await;
    let mcpd = mcpd_bin().display().to_string();
    let socket = d.socket.display().to_string();
    let bridge = [mcpd.as_str(), "mcp", "--socket", socket.as_str()];
    let auth = format!("Authorization: Bearer {}", token_of(&d));
    let url = format!("http://127.0.0.1:{port}/mcp");
    let http = [url.as_str(), "--transport", "http", "--header", auth.as_str()];
    for target in [&bridge[..], &http[..]] {
        let list = inspector(&[target, &["--method", "tools/list"]].concat());
        let names: Vec<&str> =
            list["tools"].as_array().expect("tools").iter().filter_map(|t| t["name"].as_str()).collect();
        assert!(names.contains(&"f.echo") && names.contains(&"p.add"), "{target:?}: {names:?}");
        let call = inspector(
            &[target, &["--method", "tools/call", "--tool-name", "f.echo", "--tool-arg", "text=inspected"]].concat(),
        );
        assert_eq!(call["content"][0]["text"], "inspected", "{target:?}: {call}");
        let call = inspector(
            &[target, &["--method", "tools/call", "--tool-name", "p.echo", "--tool-arg", "text=stateless"]].concat(),
        );
        assert_eq!(call["content"][0]["text"], "stateless", "{target:?}: {call}");
    }
    let mut c = d.client().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let records = c.audit(100, None).await.expect("Audit answers");
    assert!(records.iter().filter(|r| r.app.starts_with("mcp:") && r.outcome == "ok").count() >= 4, "{records:#?}");
}

/// With `mcp_tls_cert`/`mcp_tls_key` the endpoint speaks HTTPS only (a bind that is not
/// loopback needs it; the config refuses otherwise), and the gate still wants the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoint_serves_https_with_a_configured_certificate() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).expect("certificate");
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert_pem, key_pem) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_pem, cert.cert.pem()).expect("write cert");
    std::fs::write(&key_pem, cert.key_pair.serialize_pem()).expect("write key");
    let daemon = format!(
        "mcp_listen = \"127.0.0.1:0\"\nmcp_tls_cert = {}\nmcp_tls_key = {}",
        q(cert_pem.display().to_string()),
        q(key_pem.display().to_string())
    );
    let d = TestDaemon::start_with(&daemon, &fault_server("f", &[], ""));
    let port = d.mcp_port().await;
    d.wait_state("f", proto::ServerState::Ready, READY).await;
    let root = reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).expect("root");
    let client = reqwest::Client::builder().add_root_certificate(root).build().expect("client");
    let post = |token: Option<String>| {
        let mut r = client
            .post(format!("https://localhost:{port}/mcp"))
            .header("Content-Type", "application/json")
            .header("Accept", "application/json, text/event-stream")
            .body(INITIALIZE);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    let ok = post(Some(token_of(&d))).await.expect("https answers");
    assert_eq!(ok.status(), 200);
    let refused = post(None).await.expect("https answers");
    assert_eq!(refused.status(), 401);
    // Plain HTTP on the same port gets no MCP answer.
    let (status, _) =
        post_body(port, "/mcp", &[("Authorization", &format!("Bearer {}", token_of(&d)))], INITIALIZE).await;
    assert_ne!(status, 200);
}

/// A host that gives up on a call cancels it all the way: mcpd cancels it upstream (the
/// fault server counts the notifications/cancelled it got) and audits it as cancelled. Both
/// front ends, both host eras.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_gives_up_cancels_the_call_upstream() {
    let d = TestDaemon::start_with("mcp_listen = \"127.0.0.1:0\"", &servers());
    let port = d.mcp_port().await;
    d.wait_state("f", proto::ServerState::Ready, READY).await;
    let token = token_of(&d);
    let mut expected = 0;
    for mode in ["legacy", "auto"] {
        for via in [
            Via::Http { url: format!("http://127.0.0.1:{port}/mcp"), token: Some(&token) },
            Via::Stdio { socket: &d.socket, profile: None },
        ] {
            let (lines, ok, err) = host(&via, mode, &["cancel:f.hang:{}:1"]);
            assert!(ok && lines[0]["cancelled"] == true, "{mode}: {lines:?}\n{err}");
            expected += 1;
            // The cancellation reaches the server shortly after the host gives up.
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            loop {
                let (lines, _, _) = host(&via, mode, &["call:f.cancelled_count:{}"]);
                let n = lines[0]["structured"]["count"].as_u64().unwrap_or(0);
                if n >= expected {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "{mode}: the server saw {n} cancellations, want {expected}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    let mut c = d.client().await;
    let records = c.audit(100, Some("f")).await.expect("Audit answers");
    let cancelled = records.iter().filter(|r| r.tool == "f.hang" && r.outcome == "Cancelled").count();
    assert_eq!(cancelled, 4, "{records:#?}");
}

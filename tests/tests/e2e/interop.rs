//! Interop with servers nobody here wrote, over every transport and both protocol eras.
use std::time::Duration;

use mcpd_tests::*;

const READY: Duration = Duration::from_secs(60);

fn everything_stdio(name: &str) -> String {
    format!("[servers.{name}]\ncommand = {}\nargs = [\"stdio\"]\n", q(everything_bin().display().to_string()))
}

async fn check_everything(d: &TestDaemon, server: &str, transport: &str) {
    let st = d.wait_state(server, proto::ServerState::Ready, READY).await;
    assert_eq!(st.transport, transport);
    assert_eq!(st.era, "session", "server-everything 2026.8.31 is session-era only");
    assert!(!st.protocol_version.is_empty());
    let mut c = d.client().await;
    let tools = c.list_tools(Some(server)).await.unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
    assert!(names.contains(&"echo") && names.contains(&"get-sum"), "{names:?}");
    assert!(tools.iter().all(|t| t.qualified_name == format!("{server}.{}", t.name)));
    let r = c.call_tool(&format!("{server}.echo"), r#"{"message":"héllo \"mcpd\""}"#, None).await.unwrap();
    assert!(!r.is_error);
    assert_eq!(first_text(&r), "Echo: héllo \"mcpd\"");
    let r = c.call_tool(&format!("{server}.get-sum"), r#"{"a":2,"b":40}"#, None).await.unwrap();
    assert!(first_text(&r).contains("42"), "{}", r.content_json);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_over_stdio() {
    let d = TestDaemon::start(&everything_stdio("everything"));
    check_everything(&d, "everything", "stdio").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_over_streamable_http() {
    let peer = everything_http("streamableHttp");
    let d = TestDaemon::start(&format!("[servers.remote]\nurl = \"http://127.0.0.1:{}/mcp\"\n", peer.port));
    check_everything(&d, "remote", "http").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_over_legacy_sse() {
    let peer = everything_http("sse");
    let d = TestDaemon::start(&format!(
        "[servers.legacy]\nurl = \"http://127.0.0.1:{}/sse\"\ntransport = \"sse\"\n",
        peer.port
    ));
    check_everything(&d, "legacy", "sse").await;
}

fn py_stdio(name: &str, protocol: &str) -> String {
    format!(
        "[servers.{name}]\ncommand = {}\nargs = [{}]\nprotocol = {}\n",
        q(python().display().to_string()),
        q(py_server_script().display().to_string()),
        q(protocol)
    )
}

async fn check_python(d: &TestDaemon, server: &str, version: &str, era: &str) {
    let st = d.wait_state(server, proto::ServerState::Ready, READY).await;
    assert_eq!(st.protocol_version, version, "{st:?}");
    assert_eq!(st.era, era);
    let mut c = d.client().await;
    let r = c.call_tool(&format!("{server}.add"), r#"{"a":20,"b":22}"#, None).await.unwrap();
    assert!(!r.is_error, "{}", r.content_json);
    let structured: serde_json::Value = serde_json::from_str(&r.structured_content_json).unwrap();
    assert_eq!(structured["result"], 42);
    let r = c.call_tool(&format!("{server}.echo"), r#"{"text":"ünïcode ✓"}"#, None).await.unwrap();
    assert_eq!(first_text(&r), "ünïcode ✓");
    // The server reports the version it saw on the request: proof of the era on the wire.
    let r = c.call_tool(&format!("{server}.whoami"), "{}", None).await.unwrap();
    assert_eq!(first_text(&r), version);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_both_eras_over_stdio() {
    let d = TestDaemon::start(&format!("{}{}", py_stdio("modern", "auto"), py_stdio("legacy", "2025-11-25")));
    check_python(&d, "modern", "2026-07-28", "stateless").await;
    check_python(&d, "legacy", "2025-11-25", "session").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_both_eras_over_http() {
    let peer = py_http();
    let url = format!("http://127.0.0.1:{}/mcp", peer.port);
    let d = TestDaemon::start(&format!(
        "[servers.modern]\nurl = {u}\n\n[servers.legacy]\nurl = {u}\nprotocol = \"2025-06-18\"\n",
        u = q(&url)
    ));
    check_python(&d, "modern", "2026-07-28", "stateless").await;
    check_python(&d, "legacy", "2025-06-18", "session").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pypi_time_server() {
    let d = TestDaemon::start(&format!(
        "[servers.time]\ncommand = {}\nargs = [\"--local-timezone\", \"UTC\"]\n",
        q(peer("venv/bin/mcp-server-time").display().to_string())
    ));
    d.wait_state("time", proto::ServerState::Ready, READY).await;
    let mut c = d.client().await;
    let r = c.call_tool("time.get_current_time", r#"{"timezone":"Europe/Paris"}"#, None).await.unwrap();
    assert!(!r.is_error, "{}", r.content_json);
    let body: serde_json::Value = serde_json::from_str(&first_text(&r)).expect("time server answers JSON text");
    assert_eq!(body["timezone"], "Europe/Paris");
    assert!(body["datetime"].as_str().is_some_and(|s| s.len() >= 19), "{body}");
    let r = c
        .call_tool(
            "time.convert_time",
            r#"{"source_timezone":"UTC","time":"12:00","target_timezone":"Asia/Tokyo"}"#,
            None,
        )
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_str(&first_text(&r)).unwrap();
    assert!(body["target"]["datetime"].as_str().is_some_and(|s| s.contains("T21:00")), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_streams_from_a_real_server() {
    let d = TestDaemon::start(&everything_stdio("everything"));
    d.wait_state("everything", proto::ServerState::Ready, READY).await;
    let mut c = d.client().await;
    let mut seen = Vec::new();
    let r = c
        .call_tool_with_progress(
            "everything.trigger-long-running-operation",
            r#"{"duration":1,"steps":4}"#,
            Some(Duration::from_secs(30)),
            |p| seen.push(p),
        )
        .await
        .unwrap();
    assert!(!r.is_error, "{}", r.content_json);
    assert!(seen.len() >= 3, "expected progress notifications, got {seen:?}");
    assert!(seen.windows(2).all(|w| w[0].progress <= w[1].progress), "{seen:?}");
    assert_eq!(seen[0].total, Some(4.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_servers_get_only_their_configured_environment() {
    let d = TestDaemon::start(&format!(
        "[servers.e]\ncommand = {}\nargs = [\"stdio\"]\nenv = {{ CONFIGURED = \"yes\" }}\n",
        q(everything_bin().display().to_string())
    ));
    d.wait_state("e", proto::ServerState::Ready, READY).await;
    let mut c = d.client().await;
    let r = c.call_tool("e.get-env", "{}", None).await.unwrap();
    let text = first_text(&r);
    let env: serde_json::Value = serde_json::from_str(&text).expect("get-env answers JSON");
    let keys: Vec<&String> = env.as_object().unwrap().keys().collect();
    assert_eq!(env["CONFIGURED"], "yes");
    assert!(env.get("MCPD_TEST_DAEMON_ONLY").is_none(), "the daemon's environment leaked: {keys:?}");
    assert!(env.get("PATH").is_some() && env.get("HOME").is_some(), "{keys:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_http_server_is_reconnected() {
    let peer = everything_http("streamableHttp");
    let port = peer.port;
    let d = TestDaemon::start(&format!(
        "[servers.remote]\nurl = \"http://127.0.0.1:{port}/mcp\"\nbackoff = {{ initial = \"100ms\", max = \"500ms\" }}\nliveness_interval = \"500ms\"\n"
    ));
    d.wait_state("remote", proto::ServerState::Ready, READY).await;
    // The server restarts and forgets every session: mcpd must notice and reconnect
    // (re-initializing on 404, or via liveness and backoff).
    drop(peer);
    let mut cmd = std::process::Command::new(everything_bin());
    cmd.arg("streamableHttp").env("PORT", port.to_string());
    let _peer = PeerProcess::spawn(cmd, port);
    let mut c = d.client().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match c.call_tool("remote.echo", r#"{"message":"again"}"#, Some(Duration::from_secs(5))).await {
            Ok(r) if first_text(&r) == "Echo: again" => break,
            other => {
                assert!(tokio::time::Instant::now() < deadline, "never recovered: {other:?}\n{}", d.log_text());
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

//! Resources, prompts, completion, MCP Apps metadata and metrics, against real servers.
use std::time::Duration;

use mcpd_tests::*;

const READY: Duration = Duration::from_secs(60);

fn everything_stdio(name: &str) -> String {
    format!("[servers.{name}]\ncommand = {}\nargs = [\"stdio\"]\n", q(everything_bin().display().to_string()))
}

fn py_stdio(name: &str, protocol: &str, extra_args: &[&str]) -> String {
    let mut args = vec![q(py_server_script().display().to_string())];
    args.extend(extra_args.iter().map(q));
    format!(
        "[servers.{name}]\ncommand = {}\nargs = [{}]\nprotocol = {}\n",
        q(python().display().to_string()),
        args.join(", "),
        q(protocol)
    )
}

fn text_of(r: &proto::ReadResourceResponse) -> String {
    let v: serde_json::Value = serde_json::from_str(&r.contents_json).expect("contents are JSON");
    v[0]["text"].as_str().unwrap_or_default().to_owned()
}

/// server-everything: listing, templates, a cached read, then a subscription whose update
/// notification invalidates the cache entry and reaches WatchEvents.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_resources_are_cached_and_invalidated_by_updates() {
    let d = TestDaemon::start_with("resource_ttl = \"10m\"\n", &everything_stdio("everything"));
    d.wait_state("everything", proto::ServerState::Ready, READY).await;
    let mut c = d.client().await;

    let list = c.list_resources(None).await.unwrap();
    assert!(list.errors.is_empty(), "{:?}", list.errors);
    assert!(!list.resources.is_empty());
    assert!(list.resources.iter().all(|r| r.server == "everything" && !r.uri.is_empty()));
    let templates = c.list_resource_templates(Some("everything")).await.unwrap();
    assert!(
        templates.templates.iter().any(|t| t.uri_template == "demo://resource/dynamic/text/{resourceId}"),
        "{:?}",
        templates.templates
    );

    let uri = "demo://resource/dynamic/text/1";
    let first = c.read_resource("everything", uri, false).await.unwrap();
    assert!(!first.from_cache);
    assert!(text_of(&first).starts_with("Resource 1:"), "{}", first.contents_json);
    let second = c.read_resource("everything", uri, false).await.unwrap();
    assert!(second.from_cache, "a read within the TTL must come from the cache");
    assert_eq!(second.contents_json, first.contents_json);
    let forced = c.read_resource("everything", uri, true).await.unwrap();
    assert!(!forced.from_cache, "--fresh must skip the cache");
    let cached = c.read_resource("everything", uri, false).await.unwrap();
    assert!(cached.from_cache);

    let mut events = c.watch_events(Some("everything")).await.unwrap();
    c.subscribe_resource("everything", uri).await.unwrap();
    // The server sends an update at once, then every 5 s, for subscribed URIs.
    let r = c.call_tool("everything.toggle-subscriber-updates", "{}", None).await.unwrap();
    assert!(!r.is_error, "{}", r.content_json);
    let update = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(ev) = events.message().await.unwrap() {
            if ev.kind == "resource_updated" {
                return ev;
            }
        }
        panic!("event stream ended");
    })
    .await
    .expect("no resource_updated event within 15 s");
    assert_eq!(update.message, uri);
    let after = c.read_resource("everything", uri, false).await.unwrap();
    assert!(!after.from_cache, "an update notification must invalidate the cached read");

    let st = c.status().await.unwrap();
    let daemon = st.daemon.unwrap();
    assert!(daemon.cache_entries >= 1 && daemon.cache_bytes > 0 && daemon.cache_bytes <= daemon.cache_max_bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_prompts_and_completion() {
    let d = TestDaemon::start(&everything_stdio("everything"));
    d.wait_state("everything", proto::ServerState::Ready, READY).await;
    let mut c = d.client().await;
    let prompts = c.list_prompts(None).await.unwrap();
    let names: Vec<&str> = prompts.prompts.iter().map(|p| p.qualified_name.as_str()).collect();
    assert!(names.contains(&"everything.simple-prompt"), "{names:?}");
    let p = c.get_prompt("everything.simple-prompt", []).await.unwrap();
    let msgs: serde_json::Value = serde_json::from_str(&p.messages_json).unwrap();
    assert_eq!(msgs[0]["role"], "user", "{msgs}");
    assert!(msgs[0]["content"]["text"].as_str().is_some_and(|t| !t.is_empty()), "{msgs}");

    let args = c.get_prompt("everything.args-prompt", [("city".to_owned(), "Paris".to_owned())]).await.unwrap();
    assert!(args.messages_json.contains("Paris"), "{}", args.messages_json);

    let done = c
        .complete(proto::CompleteRequest {
            server: "everything".into(),
            resource_template: "demo://resource/dynamic/text/{resourceId}".into(),
            argument: "resourceId".into(),
            value: "7".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(done.values, vec!["7".to_owned()]);

    let e = c.get_prompt("nodot", []).await.unwrap_err();
    assert_eq!(e.code(), Some(tonic::Code::InvalidArgument));
    let e = c.read_resource("nosuch", "x://y", false).await.unwrap_err();
    assert_eq!(e.code(), Some(tonic::Code::NotFound));
}

/// The Python SDK in both eras: the session era uses the configured TTL; the stateless era
/// honours the server's `ttlMs`, including 0 ("immediately stale": never cached).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_reads_honour_ttl_in_both_eras() {
    let servers = format!(
        "{}{}{}",
        py_stdio("session", "2025-11-25", &[]),
        py_stdio("hinted", "2026-07-28", &["--read-ttl-ms", "700"]),
        py_stdio("nocache", "2026-07-28", &[]),
    );
    let d = TestDaemon::start_with("resource_ttl = \"1s\"\n", &servers);
    d.wait_all_ready(READY).await;
    let mut c = d.client().await;

    for (server, ttl_ms) in [("session", 1000u64), ("hinted", 700)] {
        let a = c.read_resource(server, "test://counter", false).await.unwrap();
        assert!(!a.from_cache);
        assert_eq!(a.ttl_ms, ttl_ms, "{server}");
        let b = c.read_resource(server, "test://counter", false).await.unwrap();
        assert!(b.from_cache, "{server}: second read within the TTL");
        assert_eq!(text_of(&a), text_of(&b));
        tokio::time::sleep(Duration::from_millis(ttl_ms + 400)).await;
        let after = c.read_resource(server, "test://counter", false).await.unwrap();
        assert!(!after.from_cache, "{server}: read after the TTL must go to the server");
        let n: u64 = text_of(&after).parse().unwrap();
        assert!(n > text_of(&a).parse::<u64>().unwrap(), "{server}: the server was not asked again");
    }

    let a = c.read_resource("nocache", "test://counter", false).await.unwrap();
    assert_eq!(a.ttl_ms, 0);
    let b = c.read_resource("nocache", "test://counter", false).await.unwrap();
    assert!(!b.from_cache, "ttlMs 0 means immediately stale");
    assert_ne!(text_of(&a), text_of(&b));
}

/// MCP Apps: the `ui://` resource keeps its `_meta` (CSP); the tool's `_meta.ui` link and its
/// app-only visibility show in ListTools.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_apps_metadata_passes_through() {
    let d = TestDaemon::start(&py_stdio("apps", "2025-11-25", &[]));
    d.wait_state("apps", proto::ServerState::Ready, READY).await;
    let mut c = d.client().await;
    let tools = c.list_tools(Some("apps")).await.unwrap();
    let open = tools.iter().find(|t| t.name == "open_widget").expect("open_widget listed");
    assert_eq!(open.ui_resource_uri, "ui://widget/app.html");
    assert_eq!(open.visibility, vec!["app".to_owned()]);
    let echo = tools.iter().find(|t| t.name == "echo").unwrap();
    assert!(echo.ui_resource_uri.is_empty());
    assert_eq!(echo.visibility, vec!["model".to_owned(), "app".to_owned()]);

    let r = c.read_resource("apps", "ui://widget/app.html", false).await.unwrap();
    let contents: serde_json::Value = serde_json::from_str(&r.contents_json).unwrap();
    assert_eq!(contents[0]["mimeType"], "text/html;profile=mcp-app");
    assert_eq!(contents[0]["_meta"]["ui"]["csp"]["connectDomains"][0], "https://api.example.com", "{contents}");
    assert!(contents[0]["text"].as_str().unwrap().contains("widget"));
}

/// Calls are counted per tool in Status and on the Prometheus endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_in_status_and_prometheus_text() {
    let port = free_port();
    let d =
        TestDaemon::start_with(&format!("metrics_listen = \"127.0.0.1:{port}\"\n"), &py_stdio("py", "2025-11-25", &[]));
    d.wait_state("py", proto::ServerState::Ready, READY).await;
    let mut c = d.client().await;
    for _ in 0..3 {
        c.call_tool("py.echo", r#"{"text":"x"}"#, None).await.unwrap();
    }
    // An argument error is counted as a failed call; an unknown tool is not counted at all.
    let _ = c.call_tool("py.add", r#"{"a":"not a number"}"#, None).await;
    let _ = c.call_tool("py.nosuch", "{}", None).await;

    let st = c.status().await.unwrap();
    let py = st.servers.iter().find(|s| s.name == "py").unwrap();
    let echo = py.tool_stats.iter().find(|t| t.tool == "echo").expect("echo stats");
    assert_eq!((echo.calls, echo.errors), (3, 0));
    assert!(echo.mean_latency_us > 0);
    let add = py.tool_stats.iter().find(|t| t.tool == "add").expect("add stats");
    assert_eq!((add.calls, add.errors), (1, 1));
    assert!(py.tool_stats.iter().all(|t| t.tool != "nosuch"));

    let body = http_get(port, "/metrics").await;
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.contains(r#"mcpd_tool_calls_total{server="py",tool="echo"} 3"#), "{body}");
    assert!(body.contains(r#"mcpd_tool_errors_total{server="py",tool="add"} 1"#), "{body}");
    assert!(body.contains(r#"mcpd_tool_call_seconds_count{server="py",tool="echo"} 3"#), "{body}");
    assert!(http_get(port, "/other").await.starts_with("HTTP/1.1 404"));
}

/// Stateless era: a subscription rides the `subscriptions/listen` filter; the server's
/// update reaches WatchEvents and drops the cached read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stateless_subscription_invalidates_through_listen() {
    let d = TestDaemon::start(&py_stdio("modern", "2026-07-28", &["--read-ttl-ms", "600000"]));
    d.wait_state("modern", proto::ServerState::Ready, READY).await;
    let mut c = d.client().await;
    let a = c.read_resource("modern", "test://counter", false).await.unwrap();
    assert!(c.read_resource("modern", "test://counter", false).await.unwrap().from_cache);
    let mut events = c.watch_events(Some("modern")).await.unwrap();
    c.subscribe_resource("modern", "test://counter").await.unwrap();
    // The listen stream re-opens with the new filter; touch until the update arrives.
    let update = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let r = c.call_tool("modern.touch", r#"{"uri":"test://counter"}"#, None).await.unwrap();
            assert!(!r.is_error, "{}", r.content_json);
            let got = tokio::time::timeout(Duration::from_millis(500), async {
                while let Some(ev) = events.message().await.unwrap() {
                    if ev.kind == "resource_updated" {
                        return ev;
                    }
                }
                panic!("event stream ended");
            })
            .await;
            if let Ok(ev) = got {
                return ev;
            }
        }
    })
    .await
    .expect("no resource_updated event within 20 s");
    assert_eq!(update.message, "test://counter");
    let b = c.read_resource("modern", "test://counter", false).await.unwrap();
    assert!(!b.from_cache);
    assert_ne!(text_of(&a), text_of(&b));
}

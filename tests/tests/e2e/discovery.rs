//! Progressive discovery: a host on a `discovery = "search"` profile sees only the
//! meta-tools and reaches tools through them (both eras, both front ends), and an agent over
//! 500 tools of servers of both eras is offered the meta-tools and calls the tool its search
//! found (both LLM wire formats), with the semantic ranker's model loaded from local files.
use std::{process::Command, time::Duration};

use mcpd_tests::*;
use serde_json::{Value, json};

const READY: Duration = Duration::from_secs(90);

/// Runs py_host.py over `mcpd mcp` (stdio) or the HTTP endpoint with `steps`.
fn host(args: &[String], mode: &str, steps: &[&str]) -> (Vec<Value>, bool, String) {
    let out = Command::new(python())
        .arg(repo_root().join("tests/servers/py_host.py"))
        .args(args)
        .args(["--mode", mode])
        .args(steps)
        .env_remove("MCPD_SOCKET")
        .output()
        .expect("run py_host.py");
    let lines = String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    (lines, out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn tool_names(v: &Value) -> Vec<String> {
    v["structured"]["tools"]
        .as_array()
        .map(|a| a.iter().filter_map(|t| t["name"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_profile_shows_only_the_meta_tools_and_reaches_every_tool_through_them() {
    let config = format!(
        "[servers.everything]\ncommand = {}\nargs = [\"stdio\"]\n\n\
         [servers.py]\ncommand = {py}\nargs = [{}]\nprotocol = \"2026-07-28\"\n\n\
         [servers.gated]\ncommand = {py}\nargs = [{}]\nprotocol = \"2025-11-25\"\ntrust = \"approve\"\n\n\
         [profiles.lean]\ndiscovery = \"search\"\nnames = \"alias\"\ntools = {{ deny = [\"everything.get-env\"] }}\n",
        q(everything_bin().display().to_string()),
        q(py_server_script().display().to_string()),
        q(repo_root().join("tests/servers/rug_server.py").display().to_string()),
        py = q(python().display().to_string()),
    );
    let d = TestDaemon::start_with("mcp_listen = \"127.0.0.1:0\"", &config);
    let port = d.mcp_port().await;
    d.wait_all_ready(READY).await;
    let token = std::fs::read_to_string(d.state_dir.join("mcp-token")).expect("token file").trim().to_owned();
    let steps = [
        "tools",
        r#"call:search_tools:{"query":"what do 17 and 25 add up to"}"#,
        r#"call:describe_tool:{"name":"py__add"}"#,
        r#"call:call_tool:{"name":"py__add","arguments":{"a":2,"b":3}}"#,
        r#"call:call_tool:{"name":"py__ask_user"}"#,
        r#"call:call_tool:{"name":"py__open_widget"}"#,
        r#"call:call_tool:{"name":"nope__x","arguments":{}}"#,
        r#"call:search_tools:{"query":"print the environment variables","k":25}"#,
        r#"call:describe_tool:{"name":"gated__calc"}"#,
        r#"call:search_tools:{}"#,
        r#"call:py__echo:{"text":"direct"}"#,
    ];
    let vias: [(&str, Vec<String>); 2] = [
        (
            "stdio",
            vec![
                "--stdio".into(),
                mcpd_bin().display().to_string(),
                "--socket".into(),
                d.socket.display().to_string(),
                "--profile".into(),
                "lean".into(),
            ],
        ),
        ("http", vec!["--http".into(), format!("http://127.0.0.1:{port}/mcp/lean"), "--token".into(), token]),
    ];
    for (kind, args) in &vias {
        for mode in ["legacy", "auto"] {
            let (l, ok, err) = host(args, mode, &steps);
            let at = format!("{kind} {mode}");
            assert!(ok, "{at}: the host failed: {l:?}\n{err}\ndaemon log:\n{}", d.log_text());
            // The host's list is the three meta-tools, nothing else.
            assert_eq!(l[0]["names"], json!(["search_tools", "describe_tool", "call_tool"]), "{at}");
            // Search reaches both eras' servers, under the profile's names.
            let found = tool_names(&l[1]);
            assert!(found.contains(&"everything__get-sum".into()) && found.contains(&"py__add".into()), "{at}: {l:?}");
            assert!(found.iter().all(|n| !n.starts_with("gated__")), "{at}: quarantined tools are never offered");
            assert_eq!(l[2]["structured"]["inputSchema"]["required"], json!(["a", "b"]), "{at}: {:?}", l[2]);
            // A call through call_tool is the tool's own result.
            assert_eq!(l[3]["structured"]["result"], 5, "{at}: {:?}", l[3]);
            // The server's question reaches the host through call_tool too (an input_required
            // round in the stateless era, a request on the session in the other).
            assert_eq!(l[4]["text"], "hello Ada (36)", "{at}: {:?}", l[4]);
            assert!(
                l[5]["is_error"] == true && l[5]["text"].as_str().unwrap_or("").contains("MCP App"),
                "{at}: {:?}",
                l[5]
            );
            // A model's mistake is a tool result it can read, not a protocol error.
            assert!(l[6]["is_error"] == true && l[6].get("protocol_error").is_none(), "{at}: {:?}", l[6]);
            // The profile's deny filter holds in search, and quarantine in describe.
            assert!(!tool_names(&l[7]).contains(&"everything__get-env".into()), "{at}: {:?}", l[7]);
            assert!(l[8]["is_error"] == true, "{at}: {:?}", l[8]);
            assert!(l[9]["is_error"] == true && l[9]["text"].as_str().unwrap_or("").contains("query"), "{at}");
            // A host that kept a tool's name may still call it directly.
            assert_eq!(l[10]["text"], "direct", "{at}: {:?}", l[10]);
        }
    }
    // Calls through call_tool took the call path: audited under the tool called, naming the host.
    let mut c = d.client().await;
    audited(&mut c, |r| r.iter().filter(|r| r.tool == "py.add" && r.app.starts_with("mcp:")).count() >= 4).await;
}

/// Waits until the audit log (written behind the calls) satisfies `pred`.
async fn audited(c: &mut mcpd_client::Client, pred: impl Fn(&[proto::AuditRecord]) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let records = c.audit(500, None).await.expect("Audit answers");
        if pred(&records) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{records:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The 500-tool catalogue: the benchmark dataset's real definitions spread over four Python
/// SDK servers (two per era), each with 97 generated distractors.
fn catalogue(extra: &str) -> String {
    let script = repo_root().join("tests/servers/py_catalog.py");
    let mut out = String::from(extra);
    let groups = [
        ("dev", "github,time", "2025-11-25"),
        ("local", "everything,filesystem", "2026-07-28"),
        ("work", "git,memory,slack", "2025-11-25"),
        ("web", "puppeteer,google-maps,sqlite,redis,brave-search,fetch,sequential-thinking,postgres", "2026-07-28"),
    ];
    for (i, (name, origins, protocol)) in groups.iter().enumerate() {
        out.push_str(&format!(
            "[servers.{name}]\ncommand = {}\nargs = [{}, \"--origins\", {}, \"--distractors\", \"97\", \"--slice\", \"{i}\"]\nprotocol = {}\n\n",
            q(python().display().to_string()),
            q(script.display().to_string()),
            q(origins),
            q(protocol),
        ));
    }
    out
}

fn results(events: &[proto::AgentEvent]) -> Vec<&proto::AgentToolResult> {
    events
        .iter()
        .filter_map(|e| match &e.event {
            Some(proto::agent_event::Event::ToolResult(r)) => Some(r),
            _ => None,
        })
        .collect()
}

/// The tool names offered in one chat request, in either wire format.
fn offered(request: &Value) -> Vec<String> {
    request["body"]["tools"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t["function"]["name"].as_str().or_else(|| t["name"].as_str()).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_over_500_tools_searches_and_calls_the_right_one() {
    let fake = FakeLlm::start(json!([{"text": "nothing to do"}]));
    let llm = |kind: &str| {
        let url = if kind == "openai" { fake.openai_base_url() } else { fake.anthropic_base_url() };
        format!("[llm.{kind}]\nkind = \"{kind}\"\nbase_url = \"{url}\"\nmodel = \"fake-model\"\ntimeout = \"20s\"\n\n")
    };
    // With the semantic ranker too: its model is read from the pinned package's files.
    let model = format!("search_model = {}", q(search_model_dir().display().to_string()));
    let d = TestDaemon::start_with(&model, &catalogue(&format!("{}{}", llm("openai"), llm("anthropic"))));
    d.wait_all_ready(READY).await;
    assert!(d.log_text().contains("tool search ranks with the semantic model"), "{}", d.log_text());
    let mut c = d.client().await;
    let all = c.list_tools(None).await.expect("ListTools");
    assert_eq!(all.len(), 500, "the catalogue registers 500 tools");

    // Each task is one the dataset has; the scripted model searches with the task's words
    // and calls whatever came first, so the right tool is reached only if search ranks it so.
    let tasks = [
        (
            "openai",
            "when was this file last modified and how big is it",
            json!({"path": "notes.txt"}),
            "filesystem.get_file_info",
            "local",
        ),
        (
            "anthropic",
            "what is 9am Sydney time in Berlin",
            json!({"source_timezone": "Australia/Sydney", "target_timezone": "Europe/Berlin", "time": "09:00"}),
            "time.convert_time",
            "dev",
        ),
    ];
    for (kind, task, args, origin, server) in tasks {
        fake.set_script(json!([
            {"tool_calls": [{"name": "search_tools", "arguments": {"query": task}}]},
            {"tool_calls": [{"name": "call_tool", "arguments": {"name": "$result:/tools/0/name", "arguments": args}}]},
            {"text": "done"}
        ]));
        let before = fake.requests().len();
        let events = agent_events(
            &mut c,
            proto::RunAgentRequest { task: task.into(), provider: kind.into(), ..Default::default() },
        )
        .await;
        let r = results(&events);
        assert_eq!(r.len(), 2, "{kind}: {events:#?}");
        assert_eq!(r[0].tool, "search_tools", "{kind}");
        let called = &r[1];
        // The catalogue answers "ORIGIN.NAME called with ARGS".
        let reached = called.text.split_once(" called with ").map(|(o, a)| (o, serde_json::from_str::<Value>(a).ok()));
        assert!(
            !called.is_error && reached == Some((origin, Some(args.clone()))),
            "{kind}: {called:?}\nsearch said {}",
            r[0].text
        );
        assert!(called.tool.starts_with(&format!("{server}.")), "{kind}: events name the tool called: {called:?}");
        // The model was offered the meta-tools, never the 500.
        let requests = fake.requests();
        for req in &requests[before..] {
            assert_eq!(offered(req), ["search_tools", "describe_tool", "call_tool"], "{kind}");
        }
        // The call was audited as the tool itself, within the run.
        audited(&mut c, |r| r.iter().any(|a| a.tool == called.tool && !a.run_id.is_empty())).await;
    }

    // A run's server filter bounds its search; forcing the full list offers every tool.
    fake.set_script(json!([
        {"tool_calls": [{"name": "search_tools", "arguments": {"query": "what do 17 and 25 add up to", "k": 25}}]},
        {"text": "done"}
    ]));
    let events = agent_events(
        &mut c,
        proto::RunAgentRequest {
            task: "add".into(),
            provider: "openai".into(),
            servers: vec!["web".into()],
            ..Default::default()
        },
    )
    .await;
    let r = results(&events);
    let found: Value = serde_json::from_str(&r[0].text).expect("search result JSON");
    let names: Vec<&str> = found["tools"].as_array().into_iter().flatten().filter_map(|t| t["name"].as_str()).collect();
    assert!(!names.is_empty() && names.iter().all(|n| n.starts_with("web.")), "{names:?}");
    fake.set_script(json!([{"text": "done"}]));
    let before = fake.requests().len();
    let full = proto::RunAgentRequest {
        task: "x".into(),
        provider: "openai".into(),
        discovery: proto::AgentDiscovery::Full as i32,
        ..Default::default()
    };
    agent_events(&mut c, full).await;
    assert_eq!(offered(&fake.requests()[before]).len(), 500);
}

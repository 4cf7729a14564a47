//! Agent loops, sampling routed to an LLM provider, and mcpd's rules for elicitation, driven
//! by the local fake LLM (real OpenAI and Anthropic wire formats) and real servers.
use std::time::Duration;

use mcpd_tests::*;
use serde_json::{Value, json};

const READY: Duration = Duration::from_secs(60);

fn llm(kind: &str, fake: &FakeLlm) -> String {
    let url = if kind == "openai" { fake.openai_base_url() } else { fake.anthropic_base_url() };
    format!(
        "[llm.local]\nkind = \"{kind}\"\nbase_url = \"{url}\"\nmodel = \"fake-model\"\ntimeout = \"20s\"\nmax_retries = 1\n"
    )
}

fn py(name: &str, protocol: &str, extra: &str) -> String {
    format!(
        "[servers.{name}]\ncommand = {}\nargs = [{}]\nprotocol = {}\n{extra}\n",
        q(python().display().to_string()),
        q(py_server_script().display().to_string()),
        q(protocol)
    )
}

fn everything(name: &str, extra: &str) -> String {
    format!("[servers.{name}]\ncommand = {}\nargs = [\"stdio\"]\n{extra}\n", q(everything_bin().display().to_string()))
}

fn final_answer(events: &[proto::AgentEvent]) -> Option<String> {
    events.iter().find_map(|e| match &e.event {
        Some(proto::agent_event::Event::FinalAnswer(t)) => Some(t.clone()),
        _ => None,
    })
}

fn limit(events: &[proto::AgentEvent]) -> Option<String> {
    events.iter().find_map(|e| match &e.event {
        Some(proto::agent_event::Event::LimitReached(l)) => Some(l.limit.clone()),
        _ => None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_uses_tools_and_answers_in_both_wire_formats() {
    for kind in ["openai", "anthropic"] {
        let fake = FakeLlm::start(json!([
            {"tool_calls": [{"name": "f__echo", "arguments": {"text": "ping"}}, {"name": "f__nosuch", "arguments": {}}]},
            {"text": "the tool said ping"}
        ]));
        let d = TestDaemon::start(&format!("{}{}", llm(kind, &fake), fault_server("f", &[], "")));
        d.wait_state("f", proto::ServerState::Ready, READY).await;
        let mut c = d.client().await;
        let events =
            agent_events(&mut c, proto::RunAgentRequest { task: "echo ping".into(), ..Default::default() }).await;
        assert_eq!(final_answer(&events).as_deref(), Some("the tool said ping"), "{kind}: {events:#?}");
        assert!(events.iter().all(|e| e.run_id.len() == 32));
        let results: Vec<&proto::AgentToolResult> = events
            .iter()
            .filter_map(|e| match &e.event {
                Some(proto::agent_event::Event::ToolResult(r)) => Some(r),
                _ => None,
            })
            .collect();
        assert_eq!(results.len(), 2, "{kind}: {events:#?}");
        let echo = results.iter().find(|r| r.tool == "f.echo").expect("the alias maps back to f.echo");
        assert!(!echo.is_error && echo.text == "ping", "{kind}: {echo:?}");
        // A bad tool call fails alone; the other still ran.
        assert!(results.iter().any(|r| r.is_error && r.text.contains("no such tool")), "{kind}");
        // The second request carried the tool results back to the model.
        let reqs = fake.requests();
        assert_eq!(reqs.len(), 2, "{kind}");
        assert!(reqs[1]["body"].to_string().contains("ping"), "{kind}: {}", reqs[1]["body"]);
        assert!(reqs[0]["body"].to_string().contains("f__echo"), "tools are offered under their aliases");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_stops_at_the_iteration_limit_with_tools_forbidden_on_the_last_turn() {
    // A model that always wants another tool call.
    let fake = FakeLlm::start(
        json!([{"tool_calls": [{"name": "f__echo", "arguments": {"text": "again"}}], "text": "still going"}]),
    );
    let d = TestDaemon::start(&format!("{}{}", llm("openai", &fake), fault_server("f", &[], "")));
    d.wait_state("f", proto::ServerState::Ready, READY).await;
    let mut c = d.client().await;
    let events =
        agent_events(&mut c, proto::RunAgentRequest { task: "loop".into(), max_iterations: 3, ..Default::default() })
            .await;
    assert_eq!(limit(&events).as_deref(), Some("iterations"), "{events:#?}");
    assert!(final_answer(&events).is_some());
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 3);
    assert_eq!(reqs[2]["body"]["tool_choice"], "none", "the last turn forbids tools: {}", reqs[2]["body"]);
    assert_ne!(reqs[0]["body"]["tool_choice"], "none");

    // The tool-call budget ends a run the same way.
    fake.set_script(json!([{"tool_calls": [{"name": "f__echo", "arguments": {"text": "x"}}, {"name": "f__echo", "arguments": {"text": "y"}}]}]));
    let events =
        agent_events(&mut c, proto::RunAgentRequest { task: "loop".into(), max_tool_calls: 3, ..Default::default() })
            .await;
    assert_eq!(limit(&events).as_deref(), Some("tool_calls"), "{events:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_stops_a_run_and_a_dropped_caller_cancels_upstream() {
    let fake = FakeLlm::start(json!([{"delay_ms": 5000, "text": "too late"}]));
    let d = TestDaemon::start(&format!("{}{}", llm("anthropic", &fake), fault_server("f", &[], "")));
    d.wait_state("f", proto::ServerState::Ready, READY).await;
    let mut c = d.client().await;
    let started = std::time::Instant::now();
    let events =
        agent_events(&mut c, proto::RunAgentRequest { task: "slow".into(), deadline_ms: 700, ..Default::default() })
            .await;
    assert_eq!(limit(&events).as_deref(), Some("deadline"), "{events:#?}");
    assert!(started.elapsed() < Duration::from_secs(4), "the deadline did not stop the run");

    // The model asks for a tool that never answers; the caller goes away.
    fake.set_script(json!([{"tool_calls": [{"name": "f__hang", "arguments": {}}]}]));
    let mut stream = c.run_agent(proto::RunAgentRequest { task: "hang".into(), ..Default::default() }).await.unwrap();
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(20), stream.message()).await.unwrap().unwrap().unwrap();
        if matches!(ev.event, Some(proto::agent_event::Event::ToolCall(_))) {
            break;
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(stream);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = c.call_tool("f.cancelled_count", "{}", None).await.unwrap();
        let s: Value = serde_json::from_str(&r.structured_content_json).unwrap();
        if s["requestIds"].as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the hanging call was not cancelled upstream");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampling_goes_to_the_provider_and_a_tight_loop_is_throttled() {
    let fake = FakeLlm::start(json!([{"text": "sampled by the provider"}]));
    let servers = format!(
        "{}[sampling]\nroute = \"llm:local\"\n\n{}{}",
        llm("openai", &fake),
        everything("e", "sampling = { route = \"llm:local\", rate = \"2/m\" }"),
        fault_server("f", &[], ""),
    );
    let d = TestDaemon::start(&servers);
    d.wait_all_ready(READY).await;
    let mut c = d.client().await;
    let mut events = c.watch_events(Some("e")).await.unwrap();
    for _ in 0..2 {
        let r = c
            .call_tool("e.trigger-sampling-request", r#"{"prompt":"hi","maxTokens":20}"#, Some(Duration::from_secs(30)))
            .await
            .unwrap();
        assert!(r.content_json.contains("sampled by the provider"), "{}", r.content_json);
    }
    // The third request in the same minute is refused with a readable JSON-RPC error.
    let r = c.call_tool("e.trigger-sampling-request", r#"{"prompt":"hi","maxTokens":20}"#, None).await;
    let text = match r {
        Ok(r) => r.content_json,
        Err(e) => e.to_string(),
    };
    assert!(text.contains("rate limit") && text.contains("2/m"), "{text}");
    let refused = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(ev) = events.message().await.unwrap() {
            if ev.kind == "sampling_refused" {
                return ev.message;
            }
        }
        String::new()
    })
    .await
    .expect("a sampling_refused event");
    assert!(refused.contains("2/m"));
    // Other servers never notice.
    assert_eq!(first_text(&c.call_tool("f.echo", r#"{"text":"fine"}"#, None).await.unwrap()), "fine");
    let bodies = fake.requests();
    assert_eq!(bodies.len(), 2, "the refused request never reached the provider");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_server_samples_with_tools_and_elicits_in_both_eras() {
    let fake = FakeLlm::start(json!([{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}]));
    let servers = format!(
        "{}[sampling]\nroute = \"llm\"\n\n{}{}",
        llm("anthropic", &fake),
        py("legacy", "2025-11-25", ""),
        py("modern", "2026-07-28", ""),
    );
    let d = TestDaemon::start(&servers);
    d.wait_all_ready(READY).await;
    let mut c = d.client().await;
    for server in ["legacy", "modern"] {
        let r = c.call_tool(&format!("{server}.ask_llm"), r#"{"prompt":"weather in Paris?"}"#, None).await.unwrap();
        assert!(!r.is_error, "{server}: {}", r.content_json);
        let v: Value = serde_json::from_str(&first_text(&r)).unwrap();
        assert_eq!(v["content"][0]["tool_use"], "get_weather", "{server}: {v}");
        assert_eq!(v["content"][0]["input"]["city"], "Paris", "{server}: {v}");
        assert_eq!(v["stop"], "toolUse", "{server}: {v}");
        // No app attached: the form is declined; a form asking for a password is declined always.
        let r = c.call_tool(&format!("{server}.ask_user"), "{}", None).await.unwrap();
        assert_eq!(first_text(&r), "decline", "{server}: {}", r.content_json);
    }
    let bodies = fake.requests();
    assert_eq!(bodies.len(), 2, "one sampling request per era");
    assert!(bodies.iter().all(|b| b["body"].to_string().contains("get_weather")), "tools reached the provider");

    // With an app attached, the form reaches it; the password form still does not.
    let mut app = c
        .attach(proto::AttachHello { app: "t".into(), servers: vec![], elicitation: true, sampling: false })
        .await
        .unwrap();
    let answering = tokio::spawn(async move {
        let mut asked = Vec::new();
        while let Ok(Some(req)) = app.next_request().await {
            asked.push(req.params_json.clone());
            app.reply(&req.id, Ok(json!({"action": "accept", "content": {"name": "Ada", "age": 36}}))).await.unwrap();
            if asked.len() == 2 {
                return (asked, app);
            }
        }
        (asked, app)
    });
    let mut events = c.watch_events(None).await.unwrap();
    for server in ["legacy", "modern"] {
        let r = c.call_tool(&format!("{server}.ask_user"), "{}", None).await.unwrap();
        assert_eq!(first_text(&r), "hello Ada (36)", "{server}: {}", r.content_json);
        let r = c.call_tool(&format!("{server}.ask_password"), "{}", None).await.unwrap();
        assert_eq!(first_text(&r), "decline", "{server}: {}", r.content_json);
    }
    let (asked, _app) = tokio::time::timeout(Duration::from_secs(10), answering).await.unwrap().unwrap();
    assert!(asked.iter().all(|p| !p.contains("password")), "the password form reached the app: {asked:?}");
    let declined = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(ev) = events.message().await.unwrap() {
            if ev.kind == "elicitation_declined" {
                return ev.message;
            }
        }
        String::new()
    })
    .await
    .unwrap();
    assert!(declined.contains("password"), "{declined}");
}

/// The Python SDK server's sampling in both eras reaches an attached app (route "app", the
/// default) and is refused cleanly without one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_server_sampling_reaches_an_attached_app_in_both_eras() {
    let d = TestDaemon::start(&format!("{}{}", py("legacy", "2025-11-25", ""), py("modern", "2026-07-28", "")));
    d.wait_all_ready(READY).await;
    let mut c = d.client().await;
    for server in ["legacy", "modern"] {
        let text = match c.call_tool(&format!("{server}.ask_llm"), r#"{"prompt":"hi"}"#, None).await {
            Ok(r) => {
                assert!(r.is_error, "{server}: sampling without an app must fail: {}", r.content_json);
                r.content_json
            }
            Err(e) => e.to_string(),
        };
        assert!(text.contains("refused") || text.contains("no attached application"), "{server}: {text}");
    }
    let mut app = c
        .attach(proto::AttachHello { app: "t".into(), servers: vec![], elicitation: false, sampling: true })
        .await
        .unwrap();
    let answering = tokio::spawn(async move {
        let mut seen = 0;
        while let Ok(Some(req)) = app.next_request().await {
            assert_eq!(req.method, "sampling/createMessage");
            let params: Value = serde_json::from_str(&req.params_json).unwrap();
            assert_eq!(params["tools"][0]["name"], "get_weather", "{params}");
            let answer = json!({
                "role": "assistant", "model": "app-model", "stopReason": "toolUse",
                "content": [{"type": "tool_use", "id": "t1", "name": "get_weather", "input": {"city": "Oslo"}}]
            });
            app.reply(&req.id, Ok(answer)).await.unwrap();
            seen += 1;
            if seen == 2 {
                return (seen, app);
            }
        }
        (seen, app)
    });
    for server in ["legacy", "modern"] {
        let r = c.call_tool(&format!("{server}.ask_llm"), r#"{"prompt":"weather?"}"#, None).await.unwrap();
        assert!(!r.is_error, "{server}: {}", r.content_json);
        let v: Value = serde_json::from_str(&first_text(&r)).unwrap();
        assert_eq!(v["model"], "app-model", "{server}: {v}");
        assert_eq!(v["content"][0]["input"]["city"], "Oslo", "{server}: {v}");
    }
    let (seen, _app) = tokio::time::timeout(Duration::from_secs(10), answering).await.unwrap().unwrap();
    assert_eq!(seen, 2);
}

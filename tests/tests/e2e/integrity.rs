//! Tool integrity against a real Python SDK server that changes its tools at runtime, trust
//! modes, policy refusals, secret redaction, the audit log, and approvals that survive SIGKILL.
use std::time::Duration;

use mcpd_tests::*;
use tonic::Code;

const READY: Duration = Duration::from_secs(60);

fn rug(name: &str, extra: &str) -> String {
    format!(
        "[servers.{name}]\ncommand = {}\nargs = [{}]\nprotocol = \"2025-11-25\"\n{extra}\n",
        q(python().display().to_string()),
        q(repo_root().join("tests/servers/rug_server.py").display().to_string())
    )
}

/// Waits for a `quarantined` event about `tool`, or panics.
async fn quarantined_event(d: &TestDaemon, events: &mut tonic::Streaming<proto::Event>, tool: &str) -> String {
    tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(ev) = events.message().await.expect("event stream") {
            if ev.kind == "quarantined" && ev.message.starts_with(&format!("{tool}:")) {
                return ev.message;
            }
        }
        panic!("event stream ended");
    })
    .await
    .unwrap_or_else(|_| panic!("no quarantine event for {tool} within 15 s; log:\n{}", d.log_text()))
}

async fn state_of(c: &mut Client, tool: &str) -> proto::TrustEntry {
    let (server, _) = tool.split_once('.').unwrap();
    c.trust_list(Some(server))
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.qualified_name == tool)
        .unwrap_or_else(|| panic!("{tool} not in trust list"))
}

/// Waits until a tool's trust state is `state` (the refresh after list_changed is debounced).
async fn wait_trust(c: &mut Client, tool: &str, state: &str) -> proto::TrustEntry {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let e = c.trust_list(None).await.unwrap().into_iter().find(|e| e.qualified_name == tool);
        if let Some(e) = e
            && e.state == state
        {
            return e;
        }
        assert!(tokio::time::Instant::now() < deadline, "{tool} did not become {state}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn calc_ok(c: &mut Client) {
    let r = c.call_tool("rug.calc", r#"{"a":2,"b":3}"#, None).await.expect("calc is callable");
    assert!(!r.is_error, "{}", r.content_json);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_rug_pull_is_caught_and_refresh_without_change_is_not() {
    let d = TestDaemon::start_with("tofu_window = \"0s\"\n", &rug("rug", ""));
    d.wait_state("rug", proto::ServerState::Ready, READY).await;
    let mut c = d.client().await;
    calc_ok(&mut c).await;
    let first = state_of(&mut c, "rug.calc").await;
    assert_eq!((first.state.as_str(), first.approved_by.as_str()), ("trusted", "tofu"));
    let mut events = c.watch_events(Some("rug")).await.unwrap();

    // Re-registering the same definition (a refresh) changes nothing.
    c.call_tool("rug.mutate", r#"{"kind":"same"}"#, None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(state_of(&mut c, "rug.calc").await.state, "trusted");
    calc_ok(&mut c).await;

    for (kind, field) in [
        ("description", "description"),
        ("hidden_param", "inputSchema"),
        ("enum", "inputSchema"),
        ("default", "inputSchema"),
        ("annotation", "annotations"),
    ] {
        c.call_tool("rug.mutate", &format!(r#"{{"kind":"{kind}"}}"#), None).await.unwrap();
        let msg = quarantined_event(&d, &mut events, "rug.calc").await;
        assert!(msg.contains(field), "{kind}: {msg}");
        let e = c.call_tool("rug.calc", r#"{"a":2,"b":3}"#, None).await.unwrap_err();
        assert_eq!(e.code(), Some(Code::FailedPrecondition), "{kind}: {e}");
        assert!(e.to_string().contains("changed since it was approved"), "{kind}: {e}");
        let diff = c.trust_diff("rug.calc").await.unwrap();
        // The SDK derives outputSchema from the function too, so a new function may change it as well.
        assert!(diff.changed_fields.iter().any(|f| f == field), "{kind}: {:?}", diff.changed_fields);
        assert!(diff.diff.contains("-") && diff.diff.contains("+"), "{kind}: {}", diff.diff);
        // Approving the new definition makes it callable; going back is a change again.
        assert_eq!(c.trust_approve("rug.calc").await.unwrap(), vec!["rug.calc".to_owned()]);
        calc_ok(&mut c).await;
        c.call_tool("rug.mutate", r#"{"kind":"original"}"#, None).await.unwrap();
        quarantined_event(&d, &mut events, "rug.calc").await;
        c.trust_approve("rug.calc").await.unwrap();
        calc_ok(&mut c).await;
    }

    // Removal, then re-adding the very same definition: quarantined until approved.
    c.call_tool("rug.mutate", r#"{"kind":"remove"}"#, None).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while c.list_tools(Some("rug")).await.unwrap().iter().any(|t| t.name == "calc") {
        assert!(tokio::time::Instant::now() < deadline, "calc was not removed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    c.call_tool("rug.mutate", r#"{"kind":"original"}"#, None).await.unwrap();
    let msg = quarantined_event(&d, &mut events, "rug.calc").await;
    assert!(msg.contains("removed") && msg.contains("came back"), "{msg}");
    assert_eq!(c.call_tool("rug.calc", "{}", None).await.unwrap_err().code(), Some(Code::FailedPrecondition));
    c.trust_approve("rug").await.unwrap();
    calc_ok(&mut c).await;

    // A rename: the new name is a tool nobody approved.
    c.call_tool("rug.mutate", r#"{"kind":"rename"}"#, None).await.unwrap();
    let msg = quarantined_event(&d, &mut events, "rug.calc2").await;
    assert!(msg.contains("appeared after"), "{msg}");
    let e = c.call_tool("rug.calc2", r#"{"a":1,"b":1}"#, None).await.unwrap_err();
    assert_eq!(e.code(), Some(Code::FailedPrecondition));

    // ListTools says so too, with the fingerprint.
    let tools = c.list_tools(Some("rug")).await.unwrap();
    let calc2 = tools.iter().find(|t| t.name == "calc2").unwrap();
    assert!(calc2.quarantined && calc2.fingerprint.starts_with("sha256:"));
    let mutate = tools.iter().find(|t| t.name == "mutate").unwrap();
    assert!(!mutate.quarantined);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_mode_and_pinned_mode() {
    let d =
        TestDaemon::start(&format!("{}{}", rug("gated", "trust = \"approve\""), rug("pinned", "trust = \"pinned\"")));
    d.wait_all_ready(READY).await;
    let mut c = d.client().await;
    let e = c.call_tool("gated.calc", r#"{"a":1,"b":2}"#, None).await.unwrap_err();
    assert_eq!(e.code(), Some(Code::FailedPrecondition));
    assert!(e.to_string().contains("awaits approval"), "{e}");
    let approved = c.trust_approve("gated.calc").await.unwrap();
    assert_eq!(approved, vec!["gated.calc".to_owned()]);
    assert!(!c.call_tool("gated.calc", r#"{"a":1,"b":2}"#, None).await.unwrap().is_error);
    // Revoked: refused again, and a later approve restores it.
    c.trust_revoke("gated.calc").await.unwrap();
    let e = c.call_tool("gated.calc", r#"{"a":1,"b":2}"#, None).await.unwrap_err();
    assert!(e.to_string().contains("revoked"), "{e}");

    // Pinned: nothing is callable until the config carries the fingerprint.
    let e = c.call_tool("pinned.calc", r#"{"a":1,"b":2}"#, None).await.unwrap_err();
    assert!(e.to_string().contains("not pinned in the config"), "{e}");
    let e = c.trust_approve("pinned.calc").await.unwrap_err();
    assert_eq!(e.code(), Some(Code::FailedPrecondition));
    let fp = state_of(&mut c, "pinned.calc").await.fingerprint;
    let config = std::fs::read_to_string(&d.config).unwrap();
    let pinned = config.replace("trust = \"pinned\"", &format!("trust = \"pinned\"\npins = {{ calc = \"{fp}\" }}"));
    std::fs::write(&d.config, pinned).unwrap();
    let r = c.reload().await.unwrap();
    assert!(r.applied, "{:?}", r.problems);
    d.wait_state("pinned", proto::ServerState::Ready, READY).await;
    wait_trust(&mut c, "pinned.calc", "trusted").await;
    assert!(!c.call_tool("pinned.calc", r#"{"a":1,"b":2}"#, None).await.unwrap().is_error);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_denials_confirmation_redaction_and_audit() {
    let servers = format!(
        "{}{}",
        fault_server(
            "f",
            &[],
            "rate_limit = \"100/s\"\ntool_rate_limits = { echo = \"3/m\" }\ntools = { deny = [\"crash\"] }\n"
        ),
        rug("rug", "confirm_destructive = true"),
    );
    let d = TestDaemon::start_with("tofu_window = \"1h\"\n", &servers);
    d.wait_all_ready(READY).await;
    let mut c = d.client().await;
    let secret = "ghp_abcdefghijklmnopqrstuvwxyz0123456789";
    for _ in 0..3 {
        let r = c.call_tool("f.echo", &format!(r#"{{"text":"token={secret}"}}"#), None).await.unwrap();
        assert!(!first_text(&r).contains(secret), "a secret left mcpd: {}", r.content_json);
        assert!(r.redactions >= 1);
    }
    let e = c.call_tool("f.echo", r#"{"text":"x"}"#, None).await.unwrap_err();
    assert_eq!(e.code(), Some(Code::ResourceExhausted));
    assert!(e.to_string().contains("3/m") && e.to_string().contains("tool f.echo"), "{e}");
    let e = c.call_tool("f.crash", "{}", None).await.unwrap_err();
    assert_eq!(e.code(), Some(Code::PermissionDenied));
    assert!(e.to_string().contains("tools filter"), "{e}");

    // A destructive tool needs the caller's confirmation.
    c.call_tool("rug.mutate", r#"{"kind":"annotation"}"#, None).await.unwrap();
    wait_trust(&mut c, "rug.calc", "quarantined").await;
    c.trust_approve("rug.calc").await.unwrap();
    let e = c.call_tool("rug.calc", r#"{"a":1,"b":2}"#, None).await.unwrap_err();
    assert_eq!(e.code(), Some(Code::PermissionDenied));
    assert!(e.to_string().contains("destructive"), "{e}");
    let r = c
        .call(proto::CallToolRequest {
            name: "rug.calc".into(),
            arguments_json: r#"{"a":1,"b":2}"#.into(),
            confirm: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(!r.is_error);

    // Every call is in the audit log, newest first, with the caller and a hash of the arguments.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let records = c.audit(100, Some("f")).await.unwrap();
    assert!(records.len() >= 5, "{records:?}");
    assert_eq!(records[0].tool, "f.crash");
    assert_eq!(records[0].outcome, "PermissionDenied");
    assert_eq!(records[1].outcome, "ResourceExhausted");
    assert!(records.iter().any(|r| r.outcome == "ok" && r.redactions >= 1));
    assert!(records.iter().all(|r| r.app.starts_with("uid:") && r.arguments_sha256.starts_with("sha256:")));
    assert!(records.iter().all(|r| !r.message.contains(secret)));
}

/// SIGKILL at random moments while approvals are being acknowledged: every acknowledged
/// approval is there after restart, and the store always opens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_approvals_survive_sigkill() {
    const TOOLS: usize = 200;
    let servers = fault_server("gate", &["--tools", &TOOLS.to_string()], "trust = \"approve\"");
    let mut d = TestDaemon::start(&servers);
    d.wait_state("gate", proto::ServerState::Ready, READY).await;
    let mut acked: Vec<String> = Vec::new();
    let mut next = 0usize;
    let mut kills = 0u32;
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut rand = move || {
        // xorshift: deterministic "random" kill moments, reproducible on failure.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    while next < TOOLS {
        let mut c = connect(&d).await;
        let kill_after = Duration::from_millis(2 + rand() % 40);
        let approver = async {
            let mut done = Vec::new();
            while next + done.len() < TOOLS {
                let tool = format!("gate.extra_{}", next + done.len());
                match c.trust_approve(&tool).await {
                    Ok(changed) if changed == vec![tool.clone()] => done.push(tool),
                    Ok(other) => panic!("approve {tool} changed {other:?}"),
                    Err(_) => break,
                }
            }
            done
        };
        let done = tokio::select! {
            done = approver => done,
            _ = tokio::time::sleep(kill_after) => Vec::new(),
        };
        // Anything acknowledged before the kill counts; the in-flight one may or may not land.
        let in_flight_done = done.len();
        next += in_flight_done;
        acked.extend(done);
        d.signal(rustix::process::Signal::KILL);
        d.wait_exit(Duration::from_secs(10));
        kills += 1;
        // Sometimes kill again right at the next open, before it can serve.
        if rand() % 4 == 0 {
            d.restart();
            std::thread::sleep(Duration::from_millis(rand() % 30));
            d.signal(rustix::process::Signal::KILL);
            d.wait_exit(Duration::from_secs(10));
            kills += 1;
        }
        d.restart();
        let mut c = connect(&d).await;
        let trusted: std::collections::HashSet<String> = c
            .trust_list(Some("gate"))
            .await
            .expect("the store opens after every kill")
            .into_iter()
            .filter(|e| e.pinned_fingerprint.starts_with("sha256:"))
            .map(|e| e.qualified_name)
            .collect();
        for t in &acked {
            assert!(trusted.contains(t), "acknowledged approval of {t} lost after kill {kills}");
        }
        // Approvals that landed but were not acknowledged before the kill are fine; continue after them.
        while next < TOOLS && trusted.contains(&format!("gate.extra_{next}")) {
            acked.push(format!("gate.extra_{next}"));
            next += 1;
        }
    }
    assert!(kills >= 10, "only {kills} kills");
    eprintln!("{} approvals acknowledged across {kills} SIGKILLs, none lost", acked.len());
}

/// Connects once the restarted daemon answers (a killed daemon leaves its socket file behind,
/// so the file existing proves nothing).
async fn connect(d: &TestDaemon) -> Client {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(mut c) = Client::connect_unix(d.socket.clone()).await
            && c.status().await.is_ok()
        {
            return c;
        }
        assert!(tokio::time::Instant::now() < deadline, "daemon did not come back; log:\n{}", d.log_text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The stateless era (2026-07-28, what the Python SDK negotiates by default), over stdio and
/// over HTTP: list changes arrive only on `subscriptions/listen`, and a server may change
/// without saying so (the periodic re-list, `tools_refresh`, catches that).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stateless_era_rug_pulls_are_caught_with_and_without_a_notification() {
    let http = rug_http();
    let servers = format!(
        "[servers.rug]\ncommand = {}\nargs = [{}]\nprotocol = \"2026-07-28\"\ntools_refresh = \"2s\"\n\
         [servers.rugh]\nurl = \"http://127.0.0.1:{}/mcp\"\nprotocol = \"2026-07-28\"\ntools_refresh = \"2s\"\n",
        q(python().display().to_string()),
        q(repo_root().join("tests/servers/rug_server.py").display().to_string()),
        http.port
    );
    let d = TestDaemon::start_with("tofu_window = \"0s\"\n", &servers);
    let mut c = d.client().await;
    for server in ["rug", "rugh"] {
        d.wait_state(server, proto::ServerState::Ready, READY).await;
        let s = c.list_servers().await.unwrap().into_iter().find(|s| s.name == server).unwrap();
        assert_eq!((s.protocol_version.as_str(), s.era.as_str()), ("2026-07-28", "stateless"), "{server}");
        let calc = format!("{server}.calc");
        let mutate = format!("{server}.mutate");
        let args = r#"{"a":2,"b":3}"#;
        assert!(!c.call_tool(&calc, args, None).await.unwrap().is_error);
        let mut events = c.watch_events(Some(server)).await.unwrap();

        // Announced on the listen stream.
        c.call_tool(&mutate, r#"{"kind":"description"}"#, None).await.unwrap();
        let msg = quarantined_event(&d, &mut events, &calc).await;
        assert!(msg.contains("description"), "{server}: {msg}");
        let e = c.call_tool(&calc, args, None).await.unwrap_err();
        assert_eq!(e.code(), Some(Code::FailedPrecondition), "{server}: {e}");
        let diff = c.trust_diff(&calc).await.unwrap();
        assert!(diff.changed_fields.iter().any(|f| f == "description"), "{server}: {:?}", diff.changed_fields);
        c.trust_approve(&calc).await.unwrap();
        assert!(!c.call_tool(&calc, args, None).await.unwrap().is_error);

        // Not announced at all: the periodic re-list finds it.
        c.call_tool(&mutate, r#"{"kind":"hidden_param","silent":true}"#, None).await.unwrap();
        let msg = quarantined_event(&d, &mut events, &calc).await;
        assert!(msg.contains("inputSchema"), "{server}: {msg}");
        let e = c.call_tool(&calc, args, None).await.unwrap_err();
        assert_eq!(e.code(), Some(Code::FailedPrecondition), "{server}: {e}");
    }
}

/// Under tofu, first use ends at the first call (or the first-use window, whichever comes
/// first): a tool the server adds afterwards is listed but quarantined, unless the server
/// sets `tofu_new_tools = "trust"`. The default 30 s window is still open here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_added_after_first_use_is_quarantined_unless_the_server_opts_out() {
    let d = TestDaemon::start(&format!("{}{}", rug("rug", ""), rug("grows", "tofu_new_tools = \"trust\"")));
    let mut c = d.client().await;
    for (server, trusted) in [("rug", false), ("grows", true)] {
        d.wait_state(server, proto::ServerState::Ready, READY).await;
        let calc = format!("{server}.calc");
        // First use.
        assert!(!c.call_tool(&calc, r#"{"a":2,"b":3}"#, None).await.unwrap().is_error);
        // `rename` takes calc away and adds calc2, a tool nobody has seen.
        c.call_tool(&format!("{server}.mutate"), r#"{"kind":"rename"}"#, None).await.unwrap();
        let calc2 = format!("{server}.calc2");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        let tool = loop {
            let tools = c.list_tools(Some(server)).await.unwrap();
            if let Some(t) = tools.into_iter().find(|t| t.qualified_name == calc2) {
                break t;
            }
            assert!(tokio::time::Instant::now() < deadline, "{calc2} was not listed");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(!tool.quarantined, trusted, "{server}: {}", tool.quarantine_reason);
        let r = c.call_tool(&calc2, r#"{"a":1,"b":1}"#, None).await;
        if trusted {
            assert!(!r.unwrap().is_error, "{server}");
        } else {
            let e = r.unwrap_err();
            assert_eq!(e.code(), Some(Code::FailedPrecondition), "{server}: {e}");
            assert!(e.to_string().contains("appeared after"), "{server}: {e}");
        }
    }
}

/// Prompts are pinned like tools, in both eras: the first listing pins them, a changed
/// prompt is quarantined (ListPrompts says so, GetPrompt refuses it) until approved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_prompt_is_quarantined_in_both_eras() {
    let stateless = format!(
        "[servers.rugs]\ncommand = {}\nargs = [{}]\nprotocol = \"2026-07-28\"\n",
        q(python().display().to_string()),
        q(repo_root().join("tests/servers/rug_server.py").display().to_string())
    );
    let d = TestDaemon::start(&format!("{}{stateless}", rug("rug", "")));
    let mut c = d.client().await;
    for server in ["rug", "rugs"] {
        d.wait_state(server, proto::ServerState::Ready, READY).await;
        let hello = format!("{server}.hello");
        let args = || [("name".to_owned(), "Ada".to_owned())];
        let listed = c.list_prompts(Some(server)).await.unwrap();
        let p = listed.prompts.iter().find(|p| p.qualified_name == hello).expect("hello is listed");
        assert!(!p.quarantined, "{server}: {}", p.quarantine_reason);
        assert!(c.get_prompt(&hello, args()).await.unwrap().messages_json.contains("Ada"));

        c.call_tool(&format!("{server}.mutate"), r#"{"kind":"prompt"}"#, None).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        let p = loop {
            let listed = c.list_prompts(Some(server)).await.unwrap();
            let p = listed.prompts.into_iter().find(|p| p.qualified_name == hello).unwrap();
            if p.quarantined {
                break p;
            }
            assert!(tokio::time::Instant::now() < deadline, "{server}: the changed prompt was not quarantined");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert!(p.quarantine_reason.contains("description"), "{server}: {}", p.quarantine_reason);
        // GetPrompt refuses it once the session has seen the change.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        let e = loop {
            match c.get_prompt(&hello, args()).await {
                Err(e) => break e,
                Ok(_) => assert!(tokio::time::Instant::now() < deadline, "{server}: GetPrompt still serves it"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(e.code(), Some(Code::FailedPrecondition), "{server}: {e}");
        assert!(e.to_string().contains("changed since it was approved"), "{server}: {e}");

        let approved = c.trust_approve(&hello).await.unwrap();
        assert_eq!(approved, [format!("{hello} (prompt)")]);
        assert!(c.get_prompt(&hello, args()).await.unwrap().messages_json.contains("Ada"));
        let listed = c.list_prompts(Some(server)).await.unwrap();
        assert!(!listed.prompts.iter().find(|p| p.qualified_name == hello).unwrap().quarantined);
    }
}

//! No configured secret leaves mcpd: a random canary passed to servers through `${env:}` and
//! `${file:}` substitution (in args, env, a header, a URL query, an OAuth client
//! secret and an LLM key, with an unreachable URL and a server that dies quoting its
//! arguments, so errors are produced) appears on no surface: status, events, logs, audit,
//! metrics, gRPC errors, tool results, the CLI, or the daemon's own stdout and stderr.
//! Rotating the secret keeps the server's identity, and so its trust.
use std::time::Duration;

use mcpd_tests::*;

const READY: Duration = Duration::from_secs(60);

fn canary() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("canary{:x}{:x}", nanos, std::process::id())
}

fn assert_clean(what: &str, text: &str, canary: &str) {
    assert!(!text.contains(canary), "the canary leaked through {what}:\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_secret_appears_on_no_surface() {
    let secrets = tempfile::tempdir().unwrap();
    let canary = canary();
    let file = secrets.path().join("canary");
    std::fs::write(&file, format!("{canary}\n")).unwrap();
    // `${file:}` in some places, `${env:}` in others: both are registered.
    let sub = format!("${{file:{}}}", file.display());
    let env = "${env:MCPD_TEST_CANARY}";
    let metrics = free_port();
    let fault = q(fault_server_bin().display().to_string());
    let servers = format!(
        // A healthy server with the canary in its env.
        "{ok}\
         [servers.dies]\ncommand = {fault}\nargs = [\"{env}\"]\nbackoff = {{ initial = \"100ms\", max = \"1s\" }}\n\
         [servers.remote]\nurl = \"http://127.0.0.1:1/mcp?api_key={env}\"\nheaders = {{ Authorization = \"Bearer {env}\" }}\n\
         connect_timeout = \"2s\"\nbackoff = {{ initial = \"100ms\", max = \"1s\" }}\n\
         [servers.authed]\nurl = \"http://127.0.0.1:1/mcp\"\nconnect_timeout = \"2s\"\n\
         oauth = {{ grant = \"client_credentials\", client_id = \"mcpd\", client_secret = \"{sub}\", allow_loopback = true }}\n\
         [llm.local]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:1/v1\"\napi_key = \"{sub}\"\nmodel = \"m\"\ntimeout = \"2s\"\nmax_retries = 0\n",
        ok = fault_server("ok", &[], &format!("env = {{ TOKEN = \"{sub}\" }}")),
    );
    let d = TestDaemon::start_with_env(
        &format!("metrics_listen = \"127.0.0.1:{metrics}\"\n"),
        &servers,
        &[("MCPD_TEST_CANARY", &canary)],
    );
    d.wait_state("ok", proto::ServerState::Ready, READY).await;
    let mut c = d.client().await;
    let mut events = c.watch_events(None).await.unwrap();

    // Let the broken servers fail a few times.
    for server in ["dies", "remote"] {
        d.wait_state(server, proto::ServerState::Backoff, READY).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;

    // gRPC errors (and what the audit log keeps of them).
    let mut texts = Vec::new();
    for tool in ["dies.echo", "remote.echo", "authed.echo", "ok.nosuch"] {
        let e = c.call_tool(tool, "{}", None).await.unwrap_err();
        texts.push((format!("the error of {tool}"), e.to_string()));
    }
    // A result that quotes the secret back.
    let r = c.call_tool("ok.echo", &format!(r#"{{"text":"the token is {canary}"}}"#), None).await.unwrap();
    texts.push(("a tool result".into(), r.content_json.clone()));
    assert!(r.redactions >= 1, "{r:?}");
    // An agent run whose provider is unreachable.
    let agent = c.run_agent(proto::RunAgentRequest { task: "hi".into(), ..Default::default() }).await;
    match agent {
        Ok(mut s) => {
            while let Ok(Some(ev)) =
                tokio::time::timeout(Duration::from_secs(20), s.message()).await.unwrap_or(Ok(None))
            {
                texts.push(("an agent event".into(), format!("{ev:?}")));
            }
        }
        Err(e) => texts.push(("RunAgent's error".into(), e.to_string())),
    }

    let status = c.status().await.unwrap();
    texts.push(("Status".into(), format!("{status:?}")));
    for server in ["ok", "dies", "remote", "authed"] {
        texts.push((format!("the logs of {server}"), c.logs(server, 0).await.unwrap().join("\n")));
    }
    texts.push(("the audit log".into(), format!("{:?}", c.audit(1000, None).await.unwrap())));
    texts.push(("Prometheus metrics".into(), http_get(metrics, "/metrics").await));
    texts.push(("AuthStatus".into(), format!("{:?}", c.auth_status(None).await.unwrap())));
    // Events seen so far.
    let mut seen = String::new();
    while let Ok(Some(Ok(Some(ev)))) =
        tokio::time::timeout(Duration::from_millis(300), async { Some(events.message().await) }).await
    {
        seen.push_str(&format!("{ev:?}\n"));
    }
    assert!(seen.contains("dies"), "events were collected: {seen}");
    texts.push(("WatchEvents".into(), seen));
    // The CLI.
    let sock = d.socket.display().to_string();
    for args in
        [vec!["status", "--json"], vec!["status"], vec!["logs", "dies"], vec!["audit", "--json"], vec!["trust", "list"]]
    {
        let out = std::process::Command::new(mcpd_bin()).arg("--socket").arg(&sock).args(&args).output().unwrap();
        texts.push((
            format!("mcpd {}", args.join(" ")),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        ));
    }
    // A server whose own stderr quotes its arguments produced lines; so did the HTTP errors.
    let dies = status.servers.iter().find(|s| s.name == "dies").unwrap();
    assert!(!dies.last_error.is_empty() && !dies.stderr_tail.is_empty(), "{dies:?}");
    // The leaks were there to be stopped: the server's stderr quoted the secret.
    assert!(dies.stderr_tail.iter().any(|l| l.contains("[REDACTED:config]")), "{dies:?}");
    assert!(r.content_json.contains("[REDACTED:config]"), "{}", r.content_json);
    // Status shows what the config says, before substitution (and no URL query).
    assert!(dies.target.ends_with(" ${env:MCPD_TEST_CANARY}"), "{}", dies.target);
    let remote = status.servers.iter().find(|s| s.name == "remote").unwrap();
    assert_eq!(remote.target, "http://127.0.0.1:1/mcp");
    for (what, text) in &texts {
        assert_clean(what, text, &canary);
    }
    // The daemon's own stdout and stderr, after a reload (which registers the secrets again).
    assert!(c.reload().await.unwrap().applied);
    drop(c);
    let log = d.log_text();
    assert!(log.contains("dies") || log.contains("remote"), "the daemon logged the failures:\n{log}");
    assert_clean("the daemon's stdout and stderr", &log, &canary);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_a_secret_keeps_the_servers_trust() {
    let secrets = tempfile::tempdir().unwrap();
    let file = secrets.path().join("token");
    // The substituted value is part of the command line, which is part of the identity.
    std::fs::write(&file, "100000").unwrap();
    let arg = format!("--page-size=${{file:{}}}", file.display());
    let servers = fault_server("f", &[&arg], "trust = \"approve\"");
    let d = TestDaemon::start(&servers);
    d.wait_state("f", proto::ServerState::Ready, READY).await;
    let mut c = d.client().await;
    c.trust_approve("f").await.unwrap();
    assert!(!c.call_tool("f.echo", r#"{"text":"a"}"#, None).await.unwrap().is_error);

    std::fs::write(&file, "200000").unwrap();
    let r = c.reload().await.unwrap();
    assert_eq!(r.changed, ["f"], "the new secret restarts the server");
    d.wait_state("f", proto::ServerState::Ready, READY).await;
    // Same identity, so the approval still holds.
    let r = c.call_tool("f.echo", r#"{"text":"b"}"#, None).await.unwrap();
    assert!(!r.is_error);
}

//! What servers ask of a client (elicitation, sampling) reaches an attached app through
//! mcpd, and is declined cleanly when no app is attached.
use std::time::Duration;

use mcpd_tests::*;

fn everything(name: &str) -> String {
    format!("[servers.{name}]\ncommand = {}\nargs = [\"stdio\"]\n", q(everything_bin().display().to_string()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elicitation_without_an_app_is_declined() {
    let d = TestDaemon::start(&everything("e"));
    d.wait_state("e", proto::ServerState::Ready, Duration::from_secs(60)).await;
    let mut c = d.client().await;
    let r = c.call_tool("e.trigger-elicitation-request", "{}", None).await.unwrap();
    assert!(first_text(&r).contains("declined"), "{}", r.content_json);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elicitation_and_sampling_reach_an_attached_app() {
    let d = TestDaemon::start(&everything("e"));
    d.wait_state("e", proto::ServerState::Ready, Duration::from_secs(60)).await;
    let mut c = d.client().await;
    let mut app = c
        .attach(proto::AttachHello {
            app: "test-app".into(),
            servers: vec!["e".into()],
            elicitation: true,
            sampling: true,
        })
        .await
        .unwrap();
    assert_eq!(app.attach_id.len(), 32);
    let answering = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Ok(Some(req)) = app.next_request().await {
            assert_eq!(req.server, "e");
            let params: serde_json::Value = serde_json::from_str(&req.params_json).unwrap();
            let answer = match req.method.as_str() {
                "elicitation/create" => {
                    // Fill every requested field with a value of its type.
                    let mut content = serde_json::Map::new();
                    let props = params["requestedSchema"]["properties"].as_object().cloned().unwrap_or_default();
                    for (k, schema) in props {
                        let v = match schema["type"].as_str() {
                            Some("boolean") => serde_json::json!(true),
                            Some("number") | Some("integer") => serde_json::json!(7),
                            _ => match schema["enum"].as_array().and_then(|e| e.first()) {
                                Some(first) => first.clone(),
                                None => serde_json::json!("from-the-app"),
                            },
                        };
                        content.insert(k, v);
                    }
                    serde_json::json!({"action": "accept", "content": content})
                }
                "sampling/createMessage" => serde_json::json!({
                    "model": "test-model",
                    "role": "assistant",
                    "content": {"type": "text", "text": "the app's answer"},
                    "stopReason": "endTurn"
                }),
                other => panic!("unexpected {other}"),
            };
            seen.push(req.method.clone());
            app.reply(&req.id, Ok(answer)).await.unwrap();
            if seen.len() == 2 {
                // Keep the attachment: dropping it resets the stream, replies in flight included.
                return (seen, app);
            }
        }
        (seen, app)
    });
    let r = c.call_tool("e.trigger-elicitation-request", "{}", Some(Duration::from_secs(30))).await.unwrap();
    assert!(first_text(&r).contains("provided the requested information"), "{}", r.content_json);
    let r = c
        .call_tool("e.trigger-sampling-request", r#"{"prompt":"say hi","maxTokens":20}"#, Some(Duration::from_secs(30)))
        .await
        .unwrap();
    assert!(r.content_json.contains("the app's answer"), "{}", r.content_json);
    let (seen, _app) = tokio::time::timeout(Duration::from_secs(10), answering).await.unwrap().unwrap();
    assert_eq!(seen, vec!["elicitation/create", "sampling/createMessage"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_rejects_a_bad_hello() {
    let d = TestDaemon::start(&fault_server("f", &[], ""));
    let mut c = d.client().await;
    let e =
        c.attach(proto::AttachHello { app: "x".into(), servers: vec![], elicitation: false, sampling: false }).await;
    assert_eq!(e.unwrap_err().code(), Some(tonic::Code::InvalidArgument));
    let e = c
        .attach(proto::AttachHello {
            app: "x".into(),
            servers: vec!["nope".into()],
            elicitation: true,
            sampling: false,
        })
        .await;
    assert_eq!(e.unwrap_err().code(), Some(tonic::Code::NotFound));
}

/// Roots come from the config; changing only the roots on reload tells the server
/// (`roots/list_changed`) instead of restarting it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roots_are_served_and_a_roots_only_change_is_announced_not_restarted() {
    let servers = format!("{}roots = [\"/srv/one\"]\n", everything("e"));
    let d = TestDaemon::start(&servers);
    d.wait_state("e", proto::ServerState::Ready, Duration::from_secs(60)).await;
    let mut c = d.client().await;
    let roots_text = |c: &mut Client| {
        let mut c = c.clone();
        async move {
            let r = c.call_tool("e.get-roots-list", "{}", Some(Duration::from_secs(30))).await.unwrap();
            r.content_json
        }
    };
    // The server asks for roots right after the handshake; give it a moment.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let text = roots_text(&mut c).await;
        if text.contains("file:///srv/one") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "roots never reached the server: {text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let before = c.status().await.unwrap().servers.into_iter().find(|s| s.name == "e").unwrap();
    let config = std::fs::read_to_string(&d.config).unwrap();
    std::fs::write(&d.config, config.replace("\"/srv/one\"", "\"/srv/one\", \"/srv/two\"")).unwrap();
    let r = c.reload().await.unwrap();
    assert!(r.applied && r.changed == vec!["e".to_owned()], "{r:?}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let text = roots_text(&mut c).await;
        if text.contains("file:///srv/two") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the new roots never reached the server: {text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let after = c.status().await.unwrap().servers.into_iter().find(|s| s.name == "e").unwrap();
    assert_eq!((after.pid, after.connects), (before.pid, before.connects), "a roots-only change restarted the server");
}

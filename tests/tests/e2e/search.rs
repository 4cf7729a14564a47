//! Tool search over gRPC and the CLI: ranking across servers of both eras, visibility
//! (quarantined and app-only tools never returned), server filters, and the index following
//! list changes.
use std::{process::Command, time::Duration};

use mcpd_tests::*;

const READY: Duration = Duration::from_secs(60);

fn config() -> String {
    format!(
        "[servers.everything]\ncommand = {}\nargs = [\"stdio\"]\n\n\
         [servers.py]\ncommand = {py}\nargs = [{}]\nprotocol = \"2026-07-28\"\n\n\
         [servers.gated]\ncommand = {py}\nargs = [{}]\nprotocol = \"2025-11-25\"\ntrust = \"approve\"\n",
        q(everything_bin().display().to_string()),
        q(py_server_script().display().to_string()),
        q(repo_root().join("tests/servers/rug_server.py").display().to_string()),
        py = q(python().display().to_string()),
    )
}

fn names(hits: &[proto::ToolHit]) -> Vec<String> {
    hits.iter().filter_map(|h| h.tool.as_ref()).map(|t| t.qualified_name.clone()).collect()
}

async fn search(c: &mut mcpd_client::Client, q: &str, servers: &[&str]) -> Vec<String> {
    let servers: Vec<String> = servers.iter().map(|s| s.to_string()).collect();
    names(&c.search_tools(q, 5, &servers).await.unwrap())
}

/// Polls until `pred` holds for the search results, or panics with the last ones.
async fn until(c: &mut mcpd_client::Client, q: &str, what: &str, pred: impl Fn(&[String]) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let hits = search(c, q, &[]).await;
        if pred(&hits) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: {hits:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_ranks_across_eras_hides_what_a_model_may_not_call_and_follows_changes() {
    let d = TestDaemon::start(&config());
    d.wait_all_ready(READY).await;
    let mut c = d.client().await;

    // Both eras' servers are indexed, and words the tools never use still reach them.
    let hits = c.search_tools("what do 17 and 25 add up to", 5, &[]).await.unwrap();
    let found = names(&hits);
    assert!(found.contains(&"everything.get-sum".to_owned()), "{found:?}");
    assert!(found.contains(&"py.add".to_owned()), "{found:?}");
    let top = hits[0].tool.as_ref().unwrap();
    assert!(!top.input_schema_json.is_empty() && !hits[0].matched_fields.is_empty());
    assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
    assert_eq!(
        search(&mut c, "repeat back the text I give you", &["py"]).await.first().map(String::as_str),
        Some("py.echo")
    );

    // Quarantined (awaiting approval) and app-only tools are never returned.
    let mult = "multiply two integers";
    assert!(!search(&mut c, mult, &[]).await.contains(&"gated.calc".to_owned()));
    assert!(!search(&mut c, "open the widget", &[]).await.iter().any(|n| n.starts_with("py.") && n.contains("widget")));
    c.trust_approve("gated.calc").await.unwrap();
    until(&mut c, mult, "approved calc is found", |h| h.first().map(String::as_str) == Some("gated.calc")).await;
    c.trust_revoke("gated.calc").await.unwrap();
    until(&mut c, mult, "revoked calc is hidden", |h| !h.contains(&"gated.calc".to_owned())).await;
    c.trust_approve("gated.calc").await.unwrap();
    until(&mut c, mult, "calc approved again", |h| h.contains(&"gated.calc".to_owned())).await;
    // A list change re-indexes the server: a removed tool is no longer found.
    c.trust_approve("gated.mutate").await.unwrap();
    c.call_tool("gated.mutate", r#"{"kind":"remove"}"#, None).await.unwrap();
    until(&mut c, mult, "removed calc is gone", |h| !h.contains(&"gated.calc".to_owned())).await;

    // Filters: one server only; an unknown server or an empty query is refused.
    assert!(search(&mut c, "echo", &["everything"]).await.iter().all(|n| n.starts_with("everything.")));
    let e = c.search_tools("echo", 5, &["nope".to_owned()]).await.unwrap_err();
    assert_eq!(e.code(), Some(tonic::Code::NotFound), "{e}");
    let e = c.search_tools("  ", 5, &[]).await.unwrap_err();
    assert_eq!(e.code(), Some(tonic::Code::InvalidArgument), "{e}");

    // The CLI: a table, and JSON with scores and matched fields.
    let sock = d.socket.display().to_string();
    let out = Command::new(mcpd_bin())
        .args(["--socket", &sock, "tools", "--search", "add two numbers", "-k", "3", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let arr = v.as_array().unwrap();
    assert!(!arr.is_empty() && arr.len() <= 3, "{v}");
    assert!(arr.iter().any(|t| t["name"] == "py.add" || t["name"] == "everything.get-sum"), "{v}");
    assert!(arr[0]["score"].as_f64().unwrap() > 0.0 && arr[0]["matched"].is_array());
    let out =
        Command::new(mcpd_bin()).args(["--socket", &sock, "tools", "--search", "add two numbers"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("SCORE") && text.contains("MATCHED"), "{text}");
}

/// mcpd's reading of the semantic ranker's model agrees with the encoder its package ships
/// (the wheel's own compiled encoder, run through the peers' Python), and a damaged model is
/// refused rather than ranking with garbage.
#[test]
fn the_search_model_embeds_as_its_package_does_and_a_damaged_one_is_refused() {
    let dir = search_model_dir();
    let model = mcpd_search::Embedder::load(&dir).expect("the pinned model loads");
    let texts = ["hello world", "Read the complete contents of a file", "what do 17 and 25 add up to"];
    let script = format!(
        "import json\nfrom static_model import get_embeddings\nprint(json.dumps(get_embeddings({})))",
        serde_json::to_string(&texts).unwrap_or_default()
    );
    let out = Command::new(python()).args(["-c", &script]).output().expect("run the package's encoder");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let theirs: Vec<Vec<f32>> = serde_json::from_slice(&out.stdout).expect("vectors");
    for (text, want) in texts.iter().zip(&theirs) {
        let ours = model.embed(text).expect("a vector");
        assert_eq!(ours.len(), want.len());
        let worst = ours.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst < 1e-4, "{text:?}: differs by {worst}");
    }

    let broken = tempfile::tempdir().expect("temp dir");
    std::fs::copy(dir.join("tokenizer.json"), broken.path().join("tokenizer.json")).expect("copy");
    let weights = std::fs::read(dir.join("model.safetensors")).expect("read weights");
    std::fs::write(broken.path().join("model.safetensors"), &weights[..weights.len() / 2]).expect("write");
    let err = mcpd_search::Embedder::load(broken.path()).expect_err("a truncated model is refused");
    assert!(err.to_string().contains("model.safetensors"), "{err}");
    std::fs::remove_file(broken.path().join("model.safetensors")).expect("rm");
    let err = mcpd_search::Embedder::load(broken.path()).expect_err("a missing file is refused");
    assert!(err.to_string().contains("has no model.safetensors"), "{err}");
}

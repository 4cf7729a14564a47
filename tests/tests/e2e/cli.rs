//! The `mcpd` command line: config checking, exit codes, and the client verbs.
use std::{process::Command, time::Duration};

use mcpd_tests::*;

fn mcpd(args: &[&str]) -> std::process::Output {
    Command::new(mcpd_bin()).args(args).env("MCPD_PEERS", peers_dir()).output().expect("run mcpd")
}

#[test]
fn config_check_lists_every_problem_and_exits_78() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[daemon]\nshutdown_grace = \"soon\"\n\n[servers.Bad_Name]\ncommand = \"x\"\n\n[servers.ok]\ncomand = \"y\"\n\n[servers.tok]\ncommand = \"z\"\nenv = { TOKEN = \"${env:MCPD_TEST_SURELY_UNSET}\" }\n",
    )
    .unwrap();
    let out = mcpd(&["config", "check", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    let file = path.display().to_string();
    for needle in [
        format!("{file}:2:"),
        format!("{file}:4:"),
        format!("{file}:8:1: unknown key \"comand\""),
        "did you mean \"command\"".to_owned(),
        "MCPD_TEST_SURELY_UNSET".to_owned(),
    ] {
        assert!(err.contains(&needle), "missing {needle:?} in:\n{err}");
    }
    // The daemon refuses the same file with the same code, before binding anything.
    let out = mcpd(&["serve", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(78));
}

#[test]
fn shipped_example_configs_are_valid() {
    let dir = repo_root().join("config");
    let mut files = vec![dir.join("mcpd.example.toml"), dir.join("minimal.toml")];
    for e in std::fs::read_dir(dir.join("servers.d")).unwrap() {
        files.push(e.unwrap().path());
    }
    for f in files {
        let out = Command::new(mcpd_bin())
            .args(["config", "check"])
            .arg(&f)
            .env("MCPD_PEERS", peers_dir())
            .env("REMOTE_MCP_TOKEN", "t")
            .env("GITHUB_TOKEN", "t")
            .env("REPORTS_CLIENT_SECRET", "t")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}: {}", f.display(), String::from_utf8_lossy(&out.stderr));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_verbs() {
    let d = TestDaemon::start(&fault_server("f", &[], ""));
    d.wait_state("f", proto::ServerState::Ready, Duration::from_secs(30)).await;
    let sock = d.socket.display().to_string();
    let out = mcpd(&["--socket", &sock, "status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.contains("SERVER") && text.contains("f ") && text.contains("ready"), "{text}");
    let out = mcpd(&["--socket", &sock, "status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["servers"][0]["state"], "ready");
    assert_eq!(v["servers"][0]["protocol_version"], "2025-11-25");
    let out = mcpd(&["--socket", &sock, "tools", "f", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v.as_array().unwrap().iter().any(|t| t["name"] == "f.echo"));
    let out = mcpd(&["--socket", &sock, "call", "f.echo", r#"{"text":"from the cli"}"#]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "from the cli");
    let out = mcpd(&["--socket", &sock, "call", "f.nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
    // No daemon: a distinct exit code.
    let out = mcpd(&["--socket", "/nonexistent/mcpd.sock", "status"]);
    assert_eq!(out.status.code(), Some(69));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_and_prompt_verbs() {
    let servers = format!(
        "[servers.py]\ncommand = {}\nargs = [{}]\nprotocol = \"2025-11-25\"\n",
        q(python().display().to_string()),
        q(py_server_script().display().to_string())
    );
    let d = TestDaemon::start(&servers);
    d.wait_state("py", proto::ServerState::Ready, Duration::from_secs(60)).await;
    let sock = d.socket.display().to_string();
    let out = mcpd(&["--socket", &sock, "resources"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("test://greeting"), "{text}");
    let out = mcpd(&["--socket", &sock, "read", "py", "test://greeting"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "hello");
    let out = mcpd(&["--socket", &sock, "read", "py", "test://greeting", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["fromCache"], true, "{v}");
    let out = mcpd(&["--socket", &sock, "prompts", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["prompts"][0]["name"], "py.greet", "{v}");
    let out = mcpd(&["--socket", &sock, "prompt", "py.greet", "name=Ada"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("Please greet Ada."));
    let out = mcpd(&["--socket", &sock, "prompt", "py.greet", "noequals"]);
    assert_eq!(out.status.code(), Some(64));
    let out = mcpd(&["--socket", &sock, "logs", "py", "--json"]);
    assert!(serde_json::from_slice::<Vec<String>>(&out.stdout).is_ok());
    let out = mcpd(&["completions", "bash"]);
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("_mcpd()"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trust_and_audit_verbs() {
    let d = TestDaemon::start(&fault_server("f", &[], "trust = \"approve\""));
    d.wait_state("f", proto::ServerState::Ready, Duration::from_secs(30)).await;
    let sock = d.socket.display().to_string();
    let out = mcpd(&["--socket", &sock, "call", "f.echo", r#"{"text":"x"}"#]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("awaits approval"));
    let out = mcpd(&["--socket", &sock, "trust", "list", "f"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("f.echo") && text.contains("quarantined"), "{text}");
    let out = mcpd(&["--socket", &sock, "trust", "diff", "f.echo"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("no approved definition"));
    let out = mcpd(&["--socket", &sock, "trust", "approve", "f.echo"]);
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("approved 1 tool(s): f.echo"));
    let out = mcpd(&["--socket", &sock, "call", "f.echo", r#"{"text":"now"}"#]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "now");
    let out = mcpd(&["--socket", &sock, "trust", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let echo = v.as_array().unwrap().iter().find(|e| e["name"] == "f.echo").unwrap();
    assert_eq!(echo["state"], "trusted");
    assert_eq!(echo["approved_by"], "admin");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let out = mcpd(&["--socket", &sock, "audit", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["tool"], "f.echo");
    assert_eq!(v[0]["outcome"], "ok");
    assert_eq!(v[1]["outcome"], "FailedPrecondition");
}

//! A store that fails closed: damage to the trust records (sled's files changed behind
//! mcpd's back after a crash) stops the daemon from starting and is named; `mcpd store
//! verify` shows it; after `mcpd store reset --yes` nothing is trusted that an admin did not
//! approve again.
use std::{process::Command, time::Duration};

use mcpd_tests::*;
use rustix::process::Signal;

const READY: Duration = Duration::from_secs(60);

fn servers() -> String {
    format!("{}{}", fault_server("gated", &[], "trust = \"approve\"\n"), fault_server("open", &[], ""))
}

fn mcpd(args: &[&str]) -> std::process::Output {
    Command::new(mcpd_bin()).args(args).env_remove("MCPD_SOCKET").output().expect("run mcpd")
}

/// Flips bytes in the newest part of sled's log: what a torn or damaged disk does to it.
fn damage(state_dir: &std::path::Path) {
    let path = state_dir.join("db/db");
    let mut bytes = std::fs::read(&path).expect("read sled's db file");
    let end = bytes.iter().rposition(|b| *b != 0).expect("a written log") + 1;
    let start = end.saturating_sub(256);
    for b in &mut bytes[start..end] {
        *b ^= 0x5a;
    }
    std::fs::write(&path, bytes).expect("write the damage");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_trust_store_stops_the_start_and_a_reset_trusts_nothing() {
    let mut d = TestDaemon::start(&servers());
    d.wait_all_ready(READY).await;
    let mut c = d.client().await;
    assert_eq!(c.trust_approve("gated.echo").await.expect("approve"), vec!["gated.echo".to_owned()]);
    c.call_tool("gated.echo", r#"{"text":"ok"}"#, None).await.expect("an approved tool is callable");
    c.call_tool("open.echo", r#"{"text":"ok"}"#, None).await.expect("a first-use tool is callable");
    // A crash right after the approval was acknowledged, then damage to the files.
    d.signal(Signal::KILL);
    d.wait_exit(Duration::from_secs(10));
    damage(&d.state_dir);

    let config = d.config.display().to_string();
    let serve = Command::new(mcpd_bin())
        .args(["serve", "--config", &config])
        .env_remove("MCPD_SOCKET")
        .output()
        .expect("run mcpd serve");
    let err = String::from_utf8_lossy(&serve.stderr);
    assert!(!serve.status.success(), "mcpd started on a damaged store:\n{err}");
    assert!(err.contains("damaged") && err.contains("store reset"), "{err}");

    let verify = mcpd(&["store", "verify", "--config", &config]);
    let out = String::from_utf8_lossy(&verify.stdout);
    assert_eq!(verify.status.code(), Some(1), "{out}\n{}", String::from_utf8_lossy(&verify.stderr));
    assert!(out.contains("DAMAGED"), "{out}");

    assert_eq!(mcpd(&["store", "reset", "--config", &config]).status.code(), Some(64), "reset asks for --yes");
    let reset = mcpd(&["store", "reset", "--yes", "--config", &config]);
    assert!(reset.status.success(), "{}", String::from_utf8_lossy(&reset.stderr));
    let verify = mcpd(&["store", "verify", "--config", &config]);
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stdout));

    // After the reset, neither the approved tool nor the first-use one is trusted.
    // The killed daemon left its socket file; the new one binds afresh.
    let _ = std::fs::remove_file(&d.socket);
    d.restart();
    d.wait_all_ready(READY).await;
    let mut c = d.client().await;
    for tool in ["gated.echo", "open.echo"] {
        let e = c.call_tool(tool, r#"{"text":"x"}"#, None).await.expect_err("quarantined after a reset");
        assert!(e.to_string().contains("quarantined") || e.to_string().contains("approv"), "{tool}: {e}");
    }
    c.trust_approve("open.echo").await.expect("approve again");
    c.call_tool("open.echo", r#"{"text":"x"}"#, None).await.expect("approved again");
}

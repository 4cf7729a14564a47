//! Live reload: only changed servers restart, untouched ones never fail a call, and a
//! bad file changes nothing and lists every problem.
use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use mcpd_tests::*;

const READY: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_applies_a_diff_under_load() {
    let keep = fault_server("keep", &[], "");
    let change = fault_server("change", &[], "");
    let gone = fault_server("gone", &[], "");
    let d = TestDaemon::start(&format!("{keep}{change}{gone}"));
    d.wait_all_ready(READY).await;
    let mut c = d.client().await;
    let keep_pid = c.status().await.unwrap().servers.iter().find(|s| s.name == "keep").unwrap().pid;

    // A client hammers the untouched server throughout.
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let worker = {
        let (stop, ok) = (stop.clone(), ok.clone());
        let mut c = d.client().await;
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let r = c.call_tool("keep.echo", r#"{"text":"k"}"#, Some(Duration::from_secs(10))).await;
                match r {
                    Ok(r) if first_text(&r) == "k" => ok.fetch_add(1, Ordering::Relaxed),
                    other => return Err(format!("{other:?}")),
                };
            }
            Ok(())
        })
    };

    let config = std::fs::read_to_string(&d.config).unwrap();
    let changed = change.replace("backoff =", "max_concurrency = 7\nbackoff =");
    let new = config.replace(&change, &changed).replace(&gone, &fault_server("added", &["--tools", "2"], ""));
    std::fs::write(&d.config, new).unwrap();
    let r = c.reload().await.unwrap();
    assert!(r.applied, "{:?}", r.problems);
    assert_eq!(r.added, vec!["added"]);
    assert_eq!(r.changed, vec!["change"]);
    assert_eq!(r.removed, vec!["gone"]);
    d.wait_state("added", proto::ServerState::Ready, READY).await;
    d.wait_state("change", proto::ServerState::Ready, READY).await;
    let st = c.status().await.unwrap();
    let names: Vec<&str> = st.servers.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, vec!["added", "change", "keep"]);
    let keep_now = st.servers.iter().find(|s| s.name == "keep").unwrap();
    assert_eq!((keep_now.pid, keep_now.connects), (keep_pid, 1), "the untouched server was not restarted");
    assert!(c.list_tools(Some("gone")).await.is_err());
    assert_eq!(c.list_tools(Some("added")).await.unwrap().len(), 11);

    // Syntactically bad, then semantically bad: both rejected, nothing changes.
    let good = std::fs::read_to_string(&d.config).unwrap();
    std::fs::write(&d.config, format!("{good}\n[servers.broken\n")).unwrap();
    let r = c.reload().await.unwrap();
    assert!(!r.applied);
    assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
    assert!(r.problems[0].contains("invalid toml"), "{:?}", r.problems);
    std::fs::write(
        &d.config,
        format!("{good}\n[servers.Bad_Name]\ncommand = \"x\"\n\n[servers.two]\ncomand = \"x\"\nmax_concurrency = 0\n"),
    )
    .unwrap();
    let r = c.reload().await.unwrap();
    assert!(!r.applied);
    assert!(r.problems.len() >= 3, "every problem is listed: {:?}", r.problems);
    assert!(r.problems.iter().any(|p| p.contains("Bad_Name")));
    assert!(r.problems.iter().any(|p| p.contains("did you mean \"command\"")));
    assert!(r.problems.iter().any(|p| p.contains("max_concurrency")));
    let st = c.status().await.unwrap();
    assert_eq!(st.servers.len(), 3, "the running config is kept");

    // The CLI verb reports the same and exits 78.
    let out = std::process::Command::new(mcpd_bin())
        .args(["--socket", &d.socket.display().to_string(), "reload"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Bad_Name"));

    stop.store(true, Ordering::Relaxed);
    worker.await.unwrap().unwrap();
    assert!(ok.load(Ordering::Relaxed) > 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_and_logs_show_stderr() {
    let mut d = TestDaemon::start(&fault_server("a", &[], ""));
    d.wait_state("a", proto::ServerState::Ready, READY).await;
    let config = std::fs::read_to_string(&d.config).unwrap();
    std::fs::write(&d.config, format!("{config}{}", fault_server("b", &[], ""))).unwrap();
    d.signal(rustix::process::Signal::HUP);
    d.wait_state("b", proto::ServerState::Ready, READY).await;
    let mut c = d.client().await;
    c.call_tool("b.stderr", r#"{"lines":3}"#, None).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let lines = c.logs("b", 10).await.unwrap();
        if lines.len() >= 3 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "stderr not captured: {lines:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(d.stop().success());
}

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

/// A small tmpfs mounted for one test, unmounted however the test ends.
struct SmallFs(std::path::PathBuf);

impl SmallFs {
    /// Mounts a tmpfs of `size` at `at`. The suite runs as root on its CI machine (the
    /// cgroup tests need that too); anywhere else this says what it needs instead of
    /// passing without the check.
    fn mount(at: &std::path::Path, size: &str) -> Self {
        std::fs::create_dir_all(at).expect("mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(at)
            .output()
            .expect("run mount(8)");
        assert!(
            out.status.success(),
            "the disk-full test mounts a small tmpfs and needs root (CAP_SYS_ADMIN): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self(at.to_owned())
    }

    /// Writes a file until the file system is full; returns its path.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let path = self.0.join("filler");
        let mut f = std::fs::File::create(&path).expect("filler");
        let chunk = vec![0u8; 64 * 1024];
        loop {
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(28) => break,
                Err(e) => panic!("filling the tmpfs: {e}"),
            }
        }
        // Small writes too, so not even a page is left.
        while f.write(&[0u8; 512]).is_ok_and(|n| n > 0) {}
        path
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_the_approval_clearly_and_keeps_no_partial_pin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state_dir = dir.path().join("state");
    let fs = SmallFs::mount(&state_dir, "16m");
    let mut d = TestDaemon::start_in(dir, &state_dir, &servers());
    d.wait_all_ready(READY).await;
    let mut c = d.client().await;
    c.trust_approve("gated.cancelled_count").await.expect("an approval while there is room");

    let filler = fs.fill();
    let e = c.trust_approve("gated.echo").await.expect_err("an approval on a full disk");
    let msg = e.to_string();
    assert!(msg.contains("No space left on device"), "the error names the full disk: {msg}");
    assert!(matches!(e, mcpd_client::ClientError::Status(ref s) if s.code() == tonic::Code::Unavailable), "{e:?}");
    // The daemon is up and answers; nothing of the failed approval is trusted.
    let st = c.status().await.expect("the daemon still answers");
    assert!(st.servers.iter().any(|s| s.name == "gated"), "{st:?}");
    let trusted =
        |l: &[mcpd_client::proto::TrustEntry], t: &str| l.iter().any(|e| e.qualified_name == t && e.state == "trusted");
    let list = c.trust_list(Some("gated")).await.expect("trust list");
    assert!(!trusted(&list, "gated.echo"), "a failed approval left a pin: {list:?}");
    assert!(trusted(&list, "gated.cancelled_count"), "the earlier approval stays: {list:?}");
    let e = c.call_tool("gated.echo", r#"{"text":"x"}"#, None).await.expect_err("still needs approval");
    assert!(e.to_string().contains("quarantined") || e.to_string().contains("approv"), "{e}");
    c.call_tool("gated.cancelled_count", "{}", None).await.expect("the approved tool still works");

    // Room again: the same approval now lands, and survives a restart.
    std::fs::remove_file(&filler).expect("free the disk");
    c.trust_approve("gated.echo").await.expect("an approval once there is room again");
    c.call_tool("gated.echo", r#"{"text":"x"}"#, None).await.expect("approved");
    d.stop();
    d.restart();
    d.wait_all_ready(READY).await;
    let mut c = d.client().await;
    let list = c.trust_list(Some("gated")).await.expect("trust list");
    assert!(trusted(&list, "gated.echo") && trusted(&list, "gated.cancelled_count"), "{list:?}");
    assert!(!trusted(&list, "gated.slow"), "never approved: {list:?}");
    d.stop();
    let verify = mcpd(&["store", "verify", "--config", &d.config.display().to_string()]);
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stdout));
}

//! The reaper: a tiny helper process (`mcpd __reaper`) that kills every server process
//! group when the daemon dies, however it dies (SIGKILL and OOM included).
//!
//! The daemon tells it which groups exist over a pipe; when that pipe reaches EOF the
//! daemon is gone, and the reaper SIGTERMs, then SIGKILLs, every group it knows.
use std::{
    collections::BTreeSet,
    io::Write,
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use rustix::process::{Pid, Signal, kill_process_group};

/// Handle used by the daemon; cheap to clone.
#[derive(Clone, Debug)]
pub struct Reaper {
    pipe: Arc<Mutex<Option<std::process::ChildStdin>>>,
}

impl Reaper {
    /// Starts `exe __reaper`. The reaper runs in its own process group so a terminal's
    /// Ctrl-C (which the daemon handles gracefully) does not kill it first.
    pub fn start(exe: &std::path::Path) -> std::io::Result<Self> {
        use std::os::unix::process::CommandExt;
        let mut child = Command::new(exe)
            .arg("__reaper")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .process_group(0)
            .spawn()?;
        let stdin = child.stdin.take();
        // The reaper exits on its own when our end of the pipe closes; reap it in the
        // background so it never lingers as a zombie.
        std::thread::spawn(move || {
            let _ = child.wait();
        });
        Ok(Self { pipe: Arc::new(Mutex::new(stdin)) })
    }

    pub fn register(&self, pgid: i32) {
        self.send(&format!("+{pgid}\n"));
    }

    pub fn unregister(&self, pgid: i32) {
        self.send(&format!("-{pgid}\n"));
    }

    fn send(&self, line: &str) {
        let mut guard = self.pipe.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(pipe) = guard.as_mut() {
            // A small write to a pipe does not block in practice (the reaper reads
            // continuously); if the reaper died, stop talking to it.
            if pipe.write_all(line.as_bytes()).is_err() {
                tracing::warn!("reaper is gone; server processes may outlive a crashed daemon");
                *guard = None;
            }
        }
    }
}

/// Body of `mcpd __reaper`. Blocking std code: runs before/without a runtime.
pub fn run_reaper() -> i32 {
    use std::io::BufRead;
    let mut groups = BTreeSet::new();
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let (op, num) = line.split_at(line.len().min(1));
        let Ok(pgid) = num.trim().parse::<i32>() else { continue };
        match op {
            "+" => {
                groups.insert(pgid);
            }
            "-" => {
                groups.remove(&pgid);
            }
            _ => {}
        }
    }
    // EOF: the daemon is gone (or shutting down after reaping everything itself).
    if groups.is_empty() {
        return 0;
    }
    let pids: Vec<Pid> = groups.iter().filter_map(|g| Pid::from_raw(*g)).collect();
    for p in &pids {
        let _ = kill_process_group(*p, Signal::TERM);
    }
    std::thread::sleep(Duration::from_millis(1500));
    for p in &pids {
        let _ = kill_process_group(*p, Signal::KILL);
    }
    0
}

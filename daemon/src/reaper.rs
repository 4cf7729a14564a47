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

/// Stray processes remembered at most (the daemon re-reports the live ones every second).
const MAX_STRAYS: usize = 10_000;

/// Handle used by the daemon; cheap to clone.
#[derive(Clone, Debug)]
pub struct Reaper {
    pipe: Arc<Mutex<Option<std::process::ChildStdin>>>,
    pid: u32,
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
        let pid = child.id();
        // The reaper exits on its own when our end of the pipe closes; reap it in the
        // background so it never lingers as a zombie.
        std::thread::spawn(move || {
            let _ = child.wait();
        });
        Ok(Self { pipe: Arc::new(Mutex::new(stdin)), pid })
    }

    /// The reaper's own pid (one of the daemon's children, not an adopted one).
    pub fn pid(&self) -> i32 {
        self.pid as i32
    }

    pub fn register(&self, pgid: i32) {
        self.send(&format!("+{pgid}\n"));
    }

    pub fn unregister(&self, pgid: i32) {
        self.send(&format!("-{pgid}\n"));
    }

    /// A process a server started that left its group (`setsid`): ended if the daemon dies,
    /// unless its pid now belongs to another process (the start time tells).
    pub fn register_proc(&self, p: crate::contain::Proc) {
        self.send(&format!("p{}:{}\n", p.pid, p.start));
    }

    /// A server's cgroup, ended with `cgroup.kill` if the daemon dies.
    pub fn register_cgroup(&self, dir: &std::path::Path) {
        self.send(&format!("c{}\n", dir.display()));
    }

    pub fn unregister_cgroup(&self, dir: &std::path::Path) {
        self.send(&format!("C{}\n", dir.display()));
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
    let mut cgroups = BTreeSet::new();
    // Processes that left their server's group, as the daemon last saw them.
    let mut strays: std::collections::BTreeMap<i32, u64> = std::collections::BTreeMap::new();
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let (op, num) = line.split_at(line.len().min(1));
        match op {
            "c" => {
                cgroups.insert(std::path::PathBuf::from(num));
                continue;
            }
            "C" => {
                cgroups.remove(std::path::Path::new(num));
                continue;
            }
            "p" => {
                if let Some((pid, start)) = num.split_once(':')
                    && let (Ok(pid), Ok(start)) = (pid.parse::<i32>(), start.parse::<u64>())
                {
                    // Bounded: the daemon resends what still runs, so forgetting is safe.
                    if strays.len() >= MAX_STRAYS {
                        strays.clear();
                    }
                    strays.insert(pid, start);
                }
                continue;
            }
            _ => {}
        }
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
    // EOF: the daemon is gone (or shutting down after reaping everything itself). A cgroup
    // ends everything in it at once, however it detached.
    for dir in &cgroups {
        crate::contain::kill_cgroup(dir);
        // The daemon's subtree goes too once its last cell is gone (not empty: kept).
        if let Some(base) = dir.parent() {
            let _ = std::fs::remove_dir(base);
        }
    }
    if groups.is_empty() && strays.is_empty() {
        return 0;
    }
    // What the servers started outside their groups: what the daemon reported, and what is
    // still found under a leader now (a server that saw its stdin close may already be gone,
    // which is why the daemon reports them while it runs).
    let mut tree: Vec<crate::contain::Proc> =
        strays.iter().map(|(pid, start)| crate::contain::Proc { pid: *pid, start: *start }).collect();
    tree.extend(crate::contain::descendants_of(&groups.iter().copied().collect::<Vec<_>>()));
    let pids: Vec<Pid> = groups.iter().filter_map(|g| Pid::from_raw(*g)).collect();
    for p in &pids {
        let _ = kill_process_group(*p, Signal::TERM);
    }
    crate::contain::signal_found(&tree, Signal::TERM);
    std::thread::sleep(Duration::from_millis(1500));
    for p in &pids {
        let _ = kill_process_group(*p, Signal::KILL);
    }
    crate::contain::kill_found(&tree);
    0
}

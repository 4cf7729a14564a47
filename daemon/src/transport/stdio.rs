//! stdio servers: mcpd spawns the child itself (own process group, scrubbed env, stderr
//! captured into a bounded ring) and owns its shutdown ladder: close stdin, SIGTERM the
//! group, SIGKILL the group.
use std::{process::Stdio, sync::Arc, time::Duration};

use rustix::process::{Pid, Signal, kill_process_group};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, BufReader},
    process::{Child, Command},
};

use super::{
    AnyTransport,
    budget::{Budget, CreditWriter, Credits},
    limit::{FaultSlot, LimitedReader},
};
use crate::{reaper::Reaper, upstream::Upstream};

/// Used when the daemon itself has no PATH (e.g. started by a minimal init).
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// Longest stderr line kept; longer lines are cut (the ring is bounded anyway).
const MAX_STDERR_LINE: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("cannot start {command:?}: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("child has no pid (exited at once)")]
    NoPid,
}

/// A running stdio server process (the leader of its own process group).
pub struct StdioChild {
    child: Child,
    pgid: Option<Pid>,
    grace: Duration,
    reaper: Option<Reaper>,
    /// The server's cgroup (cgroup containment); `None`: the process tree contains it.
    cell: Option<crate::contain::Cell>,
}

/// Leaders of the stdio servers running now: the daemon's own children, told apart from
/// what it adopted as a subreaper.
static LEADERS: std::sync::Mutex<Option<std::collections::HashSet<i32>>> = std::sync::Mutex::new(None);

fn leaders(f: impl FnOnce(&mut std::collections::HashSet<i32>)) {
    let mut g = LEADERS.lock().unwrap_or_else(|p| p.into_inner());
    f(g.get_or_insert_with(Default::default));
}

/// The running servers' leader pids.
pub fn leader_pids() -> std::collections::HashSet<i32> {
    let mut out = Default::default();
    leaders(|l| out = l.clone());
    out
}

/// What keeps a server from outliving mcpd: the reaper (if the daemon dies) and the
/// containment (cgroup or process tree).
#[derive(Clone, Copy)]
pub struct Keepers<'a> {
    pub reaper: Option<&'a Reaper>,
    pub containment: &'a crate::contain::Containment,
}

/// Spawns the server and wraps its pipes in an rmcp transport.
pub fn spawn(
    upstream: &Arc<Upstream>,
    command: &str,
    args: &[String],
    env: &[(String, String)],
    cwd: Option<&std::path::Path>,
    fault: FaultSlot,
    keep: Keepers<'_>,
) -> Result<(AnyTransport, StdioChild), SpawnError> {
    let Keepers { reaper, containment } = keep;
    // Contained in a cgroup: the server starts as `mcpd __contain CELL COMMAND ARGS`, which
    // joins the cell and execs the server (same pid), so nothing it runs is ever outside.
    let cell = containment.launcher().and_then(|_| containment.cell(&upstream.name));
    let mut cmd = match (containment.launcher(), &cell) {
        (Some(exe), Some(cell)) => {
            if resolve(command, cwd).is_none() {
                let source =
                    std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory (os error 2)");
                return Err(SpawnError::Spawn { command: command.to_owned(), source });
            }
            let mut c = Command::new(exe);
            c.arg("__contain").arg(cell.path()).arg(command);
            c
        }
        _ => Command::new(command),
    };
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_else(|| DEFAULT_PATH.into()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Own process group: signals reach grandchildren (npx-style launchers) too,
        // and a Ctrl-C at the daemon's terminal does not hit the servers directly.
        .process_group(0)
        .kill_on_drop(false);
    if let Some(home) = std::env::var_os("HOME") {
        cmd.env("HOME", home);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(source) => {
            if let Some(c) = &cell {
                c.kill();
            }
            return Err(SpawnError::Spawn { command: command.to_owned(), source });
        }
    };
    let pid = child.id().ok_or(SpawnError::NoPid)?;
    let pgid = Pid::from_raw(pid as i32);
    if let (Some(r), Some(p)) = (reaper, pgid) {
        r.register(p.as_raw_nonzero().get());
    }
    if let (Some(r), Some(c)) = (reaper, &cell) {
        r.register_cgroup(c.path());
    }
    leaders(|l| {
        l.insert(pid as i32);
    });
    crate::contain::SPAWNED.notify_one();
    let (Some(stdin), Some(stdout), Some(stderr)) = (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        // Unreachable with piped stdio; kill what we started rather than leak it.
        if let Some(p) = pgid {
            let _ = kill_process_group(p, Signal::KILL);
        }
        return Err(SpawnError::NoPid);
    };
    upstream.update(|s| s.pid = pid);

    let up = upstream.clone();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            // Bounded read: a server spewing one endless line cannot grow our memory.
            match (&mut lines).take(MAX_STDERR_LINE as u64).read_until(b'\n', &mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf);
                    let line = line.trim_end();
                    tracing::debug!(server = %up.name, stderr = %line);
                    up.push_stderr(line);
                }
            }
        }
    });

    let limit = upstream.config.max_message_bytes;
    let mut reader = LimitedReader::new(stdout, limit, fault);
    let credits = Arc::new(Credits::default());
    let rate = upstream.config.notification_rate;
    if rate > 0 {
        reader = reader.with_budget(Budget::new(upstream.name.as_str().into(), rate, credits.clone()));
    }
    let writer = CreditWriter::new(stdin, credits);
    let transport = AnyTransport::Stdio(
        rmcp::transport::async_rw::AsyncRwTransport::new(reader, writer).with_max_line_length(limit.saturating_add(1)),
    );
    Ok((transport, StdioChild { child, pgid, grace: upstream.config.shutdown_grace, reaper: reaper.cloned(), cell }))
}

// === impl StdioChild ===

impl StdioChild {
    /// Resolves when the server process exits; returns a description of how it ended.
    pub async fn wait(&mut self) -> String {
        match self.child.wait().await {
            Ok(status) => describe(status),
            Err(e) => format!("wait failed: {e}"),
        }
    }

    /// Shutdown ladder. Stdin is already closed (the transport was dropped), which is
    /// how a well-behaved server learns to exit; then SIGTERM, then SIGKILL, each to the
    /// whole group, so nothing the server started survives it.
    pub async fn shutdown(mut self) -> String {
        // What the server started, found while it still is their parent: a `setsid` helper
        // leaves the group but not the tree (the process-tree way; a cell holds them all).
        // Walking /proc is blocking work: off the runtime.
        let root = self.tree_root();
        let tree = match root {
            Some(p) => tokio::task::spawn_blocking(move || crate::contain::descendants(p)).await.unwrap_or_default(),
            None => Vec::new(),
        };
        let mut how = match tokio::time::timeout(self.grace, self.child.wait()).await {
            Ok(Ok(status)) => Some(describe(status)),
            _ => None,
        };
        if how.is_none() {
            self.signal(Signal::TERM);
            if let Ok(Ok(status)) = tokio::time::timeout(self.grace, self.child.wait()).await {
                how = Some(format!("{} after SIGTERM", describe(status)));
            }
        }
        // Always sweep the group: the leader may be gone while grandchildren live on.
        self.signal(Signal::KILL);
        let how = match how {
            Some(h) => h,
            None => match tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await {
                Ok(Ok(status)) => format!("{} after SIGKILL", describe(status)),
                _ => "did not exit after SIGKILL".to_owned(),
            },
        };
        // Ending a cell waits (bounded) for it to empty: blocking work, off the runtime.
        let cell = self.cell.take();
        let (reaper, tree) = (self.reaper.clone(), tree);
        let _ = tokio::task::spawn_blocking(move || end(cell, reaper.as_ref(), &tree)).await;
        self.forget();
        // The leader is reaped, so its pid may be reused: never signal this group again.
        self.pgid = None;
        how
    }

    /// Whose descendants the process tree must end with the server (none in a cell).
    fn tree_root(&self) -> Option<i32> {
        match (&self.cell, self.pgid) {
            (None, Some(p)) => Some(p.as_raw_nonzero().get()),
            _ => None,
        }
    }

    /// The server is gone: the reaper need not end its group, and it is no leader any more.
    fn forget(&self) {
        if let (Some(r), Some(p)) = (&self.reaper, self.pgid) {
            r.unregister(p.as_raw_nonzero().get());
        }
        if let Some(p) = self.pgid {
            leaders(|l| {
                l.remove(&p.as_raw_nonzero().get());
            });
        }
    }

    fn signal(&self, sig: Signal) {
        if let Some(p) = self.pgid {
            // ESRCH (group already gone) is the expected, fine outcome.
            let _ = kill_process_group(p, sig);
        }
    }
}

impl Drop for StdioChild {
    fn drop(&mut self) {
        // Dropped without shutdown (task aborted): never leave anything behind.
        // A rare path (the session task was aborted); the /proc walk is quick, the wait for
        // a cell to empty goes to a thread of its own.
        let tree = self.tree_root().map(crate::contain::descendants).unwrap_or_default();
        self.signal(Signal::KILL);
        let (cell, reaper) = (self.cell.take(), self.reaper.clone());
        if cell.is_some() {
            std::thread::spawn(move || end(cell, reaper.as_ref(), &[]));
        } else {
            crate::contain::kill_found(&tree);
        }
        self.forget();
    }
}

/// Ends whatever is left of a server: its cell (then the reaper need not), or the
/// descendants found before it was signalled. Blocking.
fn end(cell: Option<crate::contain::Cell>, reaper: Option<&Reaper>, tree: &[crate::contain::Proc]) {
    match cell {
        Some(cell) => {
            cell.kill();
            if let Some(r) = reaper {
                r.unregister_cgroup(cell.path());
            }
        }
        None => crate::contain::kill_found(tree),
    }
}

fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => "exited".to_owned(),
    }
}

/// `command` as exec would find it (a path, or the first match on `PATH`), so a missing
/// command fails at spawn as it would without the launcher in between.
fn resolve(command: &str, cwd: Option<&std::path::Path>) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let runnable = |p: &std::path::Path| p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    if command.contains('/') {
        // A relative path is relative to the server's working directory, as exec sees it.
        let p = match cwd {
            Some(dir) => dir.join(command),
            None => std::path::PathBuf::from(command),
        };
        return runnable(&p).then_some(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| DEFAULT_PATH.into());
    std::env::split_paths(&path).map(|d| d.join(command)).find(|p| runnable(p))
}

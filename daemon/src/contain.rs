//! Containment of server processes: whatever a server starts (a `setsid` helper, a double
//! fork) ends with it. The only module that touches cgroups and walks `/proc`.
//!
//! Two ways, chosen at start:
//! - **cgroup v2**: each stdio server runs in a cgroup of its own under the daemon's (a
//!   `Delegate=yes` unit's subtree, or the daemon's own cgroup where it may write there),
//!   and is ended with `cgroup.kill`, which reaches every process in it however it
//!   detached. The reaper gets the cgroup too, so a SIGKILLed daemon's servers end alike.
//! - **process tree**, where cgroups cannot be written: process groups as before, plus the
//!   server's descendants found through `/proc` before it is signalled (a `setsid` helper
//!   leaves the group, not the tree), and the daemon as a child subreaper, so an orphaned
//!   helper becomes the daemon's child; the daemon hands those to the reaper and ends them.
use std::{
    collections::{HashMap, HashSet},
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use rustix::process::{Pid, Signal, kill_process};

use crate::config::ContainmentMode;

/// How this daemon contains its servers.
#[derive(Debug)]
pub enum Containment {
    /// Per-server cgroups under `base` (ours, removed at stop); servers start through
    /// `exe __contain`.
    Cgroup { base: PathBuf, exe: PathBuf },
    /// Process groups, descendants found through `/proc`, the daemon as subreaper.
    ProcessTree,
}

/// One server's cgroup.
#[derive(Debug)]
pub struct Cell {
    dir: PathBuf,
}

static CELLS: AtomicU64 = AtomicU64::new(0);

/// Woken when a stdio server starts: under process-tree containment the daemon then looks
/// for its strays soon, not only at the next periodic scan (servers often start helpers at
/// once, and a daemon killed right after a start would otherwise leave them).
pub static SPAWNED: tokio::sync::Notify = tokio::sync::Notify::const_new();

impl Containment {
    /// Chooses at start: a cgroup subtree of our own when `mode` allows it and the kernel
    /// and permissions do, else the process tree. The choice is logged and in `status`.
    pub fn detect(mode: ContainmentMode, exe: Option<&Path>) -> Self {
        let chosen = match (mode, exe) {
            (ContainmentMode::ProcessTree, _) | (_, None) => None,
            (ContainmentMode::Auto, Some(_)) => match cgroup_base() {
                Ok(base) => Some(base),
                Err(why) => {
                    tracing::info!("servers are contained by process tree, not cgroups: {why}");
                    None
                }
            },
        };
        match chosen {
            Some(base) => {
                tracing::info!(cgroup = %base.display(), "servers are contained in cgroups");
                Containment::Cgroup { base, exe: exe.map(Path::to_path_buf).unwrap_or_default() }
            }
            None => {
                // Orphaned descendants of servers become our children, not init's.
                if let Err(e) = rustix::process::set_child_subreaper(Some(rustix::process::getpid())) {
                    tracing::warn!(error = %e, "cannot become a child subreaper; a double-forked helper may outlive its server");
                }
                Containment::ProcessTree
            }
        }
    }

    /// What `status` says.
    pub fn describe(&self) -> String {
        match self {
            Containment::Cgroup { base, .. } => format!("cgroup v2 ({})", base.display()),
            Containment::ProcessTree => "process tree (process groups, /proc descendants, child subreaper)".into(),
        }
    }

    /// A cgroup for one server start; `None` in process-tree mode or when it cannot be made
    /// (then the process tree contains that server).
    pub fn cell(&self, server: &str) -> Option<Cell> {
        let Containment::Cgroup { base, .. } = self else { return None };
        let n = CELLS.fetch_add(1, Ordering::Relaxed);
        let dir = base.join(format!("{server}-{n}"));
        match std::fs::create_dir(&dir) {
            Ok(()) => Some(Cell { dir }),
            Err(e) => {
                tracing::warn!(server, error = %e, "cannot make a cgroup for the server; the process tree contains it");
                None
            }
        }
    }

    /// The program a contained server starts as (`mcpd`, run as `__contain`).
    pub fn launcher(&self) -> Option<&Path> {
        match self {
            Containment::Cgroup { exe, .. } => Some(exe),
            Containment::ProcessTree => None,
        }
    }

    /// Ends what servers left behind that the daemon adopted (process-tree mode), at stop.
    pub fn sweep_adopted(&self, known: &HashSet<i32>) {
        if matches!(self, Containment::ProcessTree) {
            kill_found(&adopted(known));
        }
    }

    /// Our cgroup subtree, if any (the reaper is told, so a SIGKILLed daemon's goes too).
    pub fn base(&self) -> Option<&Path> {
        match self {
            Containment::Cgroup { base, .. } => Some(base),
            Containment::ProcessTree => None,
        }
    }

    /// Ends what is left in our subtree and removes it (at stop, after every server ended).
    pub fn close(&self) {
        if let Containment::Cgroup { base, .. } = self
            && base.exists()
        {
            kill_cgroup(base);
        }
    }
}

impl Drop for Containment {
    fn drop(&mut self) {
        // Also on the daemon's error paths: no empty subtree is left behind.
        self.close();
    }
}

impl Cell {
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Ends every process in the cell and removes it.
    pub fn kill(&self) {
        kill_cgroup(&self.dir);
    }
}

/// Body of `mcpd __contain DIR COMMAND ARGS...`, the first thing a contained server runs:
/// it joins the cgroup DIR, then becomes COMMAND (same pid, process group, environment and
/// descriptors). Joining before the server's own code runs leaves no moment in which a
/// helper it starts could be outside the cell.
pub fn run_contain(args: &[std::ffi::OsString]) -> i32 {
    use std::os::unix::process::CommandExt;
    let [dir, command, rest @ ..] = args else {
        eprintln!("mcpd __contain: usage: mcpd __contain CGROUP COMMAND [ARGS...]");
        return 64;
    };
    let procs = Path::new(dir).join("cgroup.procs");
    if let Err(e) = std::fs::write(&procs, std::process::id().to_string()) {
        eprintln!("mcpd: cannot join the server's cgroup {}: {e}", procs.display());
        return 126;
    }
    let e = std::process::Command::new(command).args(rest).exec();
    eprintln!("mcpd: cannot run {}: {e}", Path::new(command).display());
    127
}

/// `cgroup.kill`, then waits (bounded) for the cgroup to empty and removes it. Used by the
/// daemon and by the reaper.
pub fn kill_cgroup(dir: &Path) {
    // Recursive: a subtree's `cgroup.kill` ends its children's processes too.
    let _ = std::fs::write(dir.join("cgroup.kill"), "1");
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while std::time::Instant::now() < deadline {
        let populated = std::fs::read_to_string(dir.join("cgroup.events"))
            .map(|t| t.lines().any(|l| l.trim() == "populated 1"))
            .unwrap_or(false);
        if !populated {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten().filter(|e| e.path().is_dir()) {
            let _ = std::fs::remove_dir(e.path());
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// Our cgroup subtree: `mcpd-PID` under the daemon's own cgroup on the cgroup2 mount, made
/// and probed for `cgroup.kill` (Linux 5.14+).
fn cgroup_base() -> Result<PathBuf, String> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| format!("no mountinfo: {e}"))?;
    let mount = mountinfo
        .lines()
        .find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            (right.split_whitespace().next()? == "cgroup2")
                .then(|| left.split_whitespace().nth(4).map(PathBuf::from))?
        })
        .ok_or("no cgroup2 file system is mounted")?;
    let own = std::fs::read_to_string("/proc/self/cgroup").map_err(|e| format!("no /proc/self/cgroup: {e}"))?;
    let rel = own.lines().find_map(|l| l.strip_prefix("0::")).ok_or("the process is in no cgroup2 cgroup")?;
    let base = mount.join(rel.trim_start_matches('/')).join(format!("mcpd-{}", std::process::id()));
    std::fs::create_dir(&base).map_err(|e| format!("cannot create {}: {e}", base.display()))?;
    if !base.join("cgroup.kill").exists() {
        let _ = std::fs::remove_dir(&base);
        return Err("the kernel has no cgroup.kill (Linux 5.14+)".into());
    }
    Ok(base)
}

/// A process as `/proc/PID/stat` shows it: parent and start time (to tell a reused pid).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Proc {
    pub pid: i32,
    pub start: u64,
}

fn stat(pid: i32) -> Option<(i32, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields follow the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state(0) ppid(1) ... starttime(19).
    Some((fields.get(1)?.parse().ok()?, fields.get(19)?.parse().ok()?))
}

/// Every live descendant of `root` (not `root` itself), found through `/proc`.
pub fn descendants(root: i32) -> Vec<Proc> {
    descendants_of(&[root])
}

/// Every live descendant of any of `roots`, from one walk of `/proc`.
pub fn descendants_of(roots: &[i32]) -> Vec<Proc> {
    let mut children: HashMap<i32, Vec<(i32, u64)>> = HashMap::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
            if let Some((ppid, start)) = stat(pid) {
                children.entry(ppid).or_default().push((pid, start));
            }
        }
    }
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut todo = roots.to_vec();
    while let Some(p) = todo.pop() {
        for &(c, start) in children.get(&p).map(Vec::as_slice).unwrap_or_default() {
            if seen.insert(c) {
                out.push(Proc { pid: c, start });
                todo.push(c);
            }
        }
    }
    out
}

/// SIGKILLs each process still running as it was found (same pid and start time).
pub fn kill_found(procs: &[Proc]) {
    signal_found(procs, Signal::KILL);
}

/// Sends `sig` to each process still running as it was found.
pub fn signal_found(procs: &[Proc], sig: Signal) {
    for p in procs {
        if stat(p.pid).is_some_and(|(_, start)| start == p.start)
            && let Some(pid) = Pid::from_raw(p.pid)
        {
            let _ = kill_process(pid, sig);
        }
    }
}

/// The daemon's children that are none of `known` (servers it spawned, the reaper):
/// descendants of servers that lost their parent and were adopted (we are a subreaper).
pub fn adopted(known: &HashSet<i32>) -> Vec<Proc> {
    let me = std::process::id() as i32;
    // Each thread's direct children (cheap), where the kernel offers the list.
    let mut pids: Vec<i32> = Vec::new();
    let mut listed = false;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for t in tasks.flatten() {
            if let Ok(text) = std::fs::read_to_string(t.path().join("children")) {
                listed = true;
                pids.extend(text.split_whitespace().filter_map(|p| p.parse::<i32>().ok()));
            }
        }
    }
    if !listed {
        pids = descendants(me).into_iter().map(|p| p.pid).collect();
    }
    pids.into_iter()
        .filter(|pid| !known.contains(pid))
        .filter_map(|pid| match stat(pid) {
            Some((ppid, start)) if ppid == me => Some(Proc { pid, start }),
            _ => None,
        })
        .collect()
}

/// The process group of `pid`.
pub fn group_of(pid: i32) -> Option<i32> {
    let p = Pid::from_raw(pid)?;
    rustix::process::getpgid(Some(p)).ok().map(|g| g.as_raw_nonzero().get())
}

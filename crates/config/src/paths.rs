//! Default socket and state locations, following the XDG base directories.

use std::ffi::OsString;
use std::path::PathBuf;

/// Who the daemon runs as, gathered once so the choice is testable.
pub(crate) struct Identity {
    pub(crate) xdg_runtime_dir: Option<OsString>,
    pub(crate) xdg_state_home: Option<OsString>,
    pub(crate) home: Option<OsString>,
    pub(crate) is_root: bool,
    pub(crate) uid: u32,
}

impl Identity {
    pub(crate) fn current() -> Self {
        let euid = rustix::process::geteuid();
        Self {
            xdg_runtime_dir: std::env::var_os("XDG_RUNTIME_DIR"),
            xdg_state_home: std::env::var_os("XDG_STATE_HOME"),
            home: std::env::var_os("HOME"),
            is_root: euid.is_root(),
            uid: euid.as_raw(),
        }
    }
}

/// The XDG spec says empty or relative values must be ignored.
fn absolute(v: Option<&OsString>) -> Option<PathBuf> {
    v.map(PathBuf::from).filter(|p| p.is_absolute())
}

pub(crate) fn socket_path(id: &Identity) -> PathBuf {
    if let Some(dir) = absolute(id.xdg_runtime_dir.as_ref()) {
        dir.join("mcpd").join("mcpd.sock")
    } else if id.is_root {
        PathBuf::from("/run/mcpd/mcpd.sock")
    } else {
        PathBuf::from(format!("/tmp/mcpd-{}/mcpd.sock", id.uid))
    }
}

pub(crate) fn state_dir(id: &Identity) -> PathBuf {
    if let Some(dir) = absolute(id.xdg_state_home.as_ref()) {
        dir.join("mcpd")
    } else if id.is_root {
        PathBuf::from("/var/lib/mcpd")
    } else if let Some(home) = absolute(id.home.as_ref()) {
        home.join(".local/state/mcpd")
    } else {
        // No usable home: still per-user, never shared with other users.
        PathBuf::from(format!("/tmp/mcpd-{}/state", id.uid))
    }
}

//! The systemd units in `systemd/`: `systemd-analyze verify` accepts both, the system unit's
//! offline exposure score stays at 3.0 or lower, and both keep the notify/watchdog/reload/stop
//! contract the daemon implements.
use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    time::Duration,
};

use mcpd_tests::{mcpd_bin, repo_root};

/// The highest `systemd-analyze security` exposure level the system unit may have.
const MAX_EXPOSURE: f64 = 3.0;
/// `[daemon].shutdown_grace` default (daemon/src/config/model.rs).
const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// The daemon bounds its whole shutdown at the grace plus this (daemon/src/daemon.rs).
const SHUTDOWN_SLACK: Duration = Duration::from_secs(5);

const SYSTEM_UNIT: &str = "systemd/mcpd.service";
const USER_UNIT: &str = "systemd/mcpd.user.service";

/// `systemd-analyze`, or a test failure that says how to install it.
fn systemd_analyze() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/bin")])
        .map(|dir| dir.join("systemd-analyze"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "systemd-analyze is not installed; these tests need it: install it with \
                 `apt-get install -y --no-install-recommends systemd` (Debian/Ubuntu; `.ci/run` does this)"
            )
        })
}

fn read_unit(rel: &str) -> String {
    let path = repo_root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Writes `unit` as `dir/mcpd.service` (the name it is installed under) with ExecStart=
/// pointing at the built binary, since `verify` checks that the executable exists.
fn stage(unit: &str, dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).expect("create staging dir");
    let text = unit.replace("/usr/bin/mcpd", &mcpd_bin().display().to_string());
    let path = dir.join("mcpd.service");
    std::fs::write(&path, text).expect("write staged unit");
    path
}

fn output_text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// The `[Service]` values of `key`, in order (a unit may repeat a key).
fn service_values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    let mut section = "";
    let mut out = Vec::new();
    for line in unit.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line;
        } else if section == "[Service]"
            && !line.starts_with('#')
            && let Some((k, v)) = line.split_once('=')
            && k.trim() == key
        {
            out.push(v.trim());
        }
    }
    out
}

/// The last `[Service]` value of `key` (the one systemd uses for single-valued keys).
fn service_value<'a>(unit: &'a str, key: &str, which: &str) -> &'a str {
    service_values(unit, key).pop().unwrap_or_else(|| panic!("{which} has no {key}="))
}

/// A systemd time span such as `30`, `30s`, `1min 30s` or `500ms`.
fn parse_timespan(s: &str) -> Duration {
    let mut total = Duration::ZERO;
    for part in s.split_whitespace() {
        let split = part.find(|c: char| !c.is_ascii_digit()).unwrap_or(part.len());
        let (n, unit) = part.split_at(split);
        let n: u64 = n.parse().unwrap_or_else(|_| panic!("bad time span {s:?}"));
        total += match unit {
            "" | "s" | "sec" | "second" | "seconds" => Duration::from_secs(n),
            "ms" | "msec" => Duration::from_millis(n),
            "m" | "min" | "minute" | "minutes" => Duration::from_secs(n * 60),
            "h" | "hr" | "hour" | "hours" => Duration::from_secs(n * 3600),
            _ => panic!("unsupported time unit in {s:?}"),
        };
    }
    total
}

/// What both units must say so systemd and the daemon agree on readiness, keep-alives,
/// reload and stop.
fn check_contract(unit: &str, which: &str) {
    assert_eq!(service_value(unit, "Type", which), "notify", "{which}: mcpd sends READY=1");
    assert_eq!(service_value(unit, "NotifyAccess", which), "main", "{which}: only mcpd itself may notify");
    let watchdog = parse_timespan(service_value(unit, "WatchdogSec", which));
    assert!(watchdog >= Duration::from_secs(2), "{which}: WatchdogSec={watchdog:?} is too short to be useful");
    let reload = service_value(unit, "ExecReload", which);
    assert!(
        reload.contains("kill") && reload.contains("-HUP") && reload.contains("$MAINPID"),
        "{which}: ExecReload must send SIGHUP to the main process, got {reload:?}"
    );
    let stop = parse_timespan(service_value(unit, "TimeoutStopSec", which));
    assert!(
        stop > DEFAULT_SHUTDOWN_GRACE + SHUTDOWN_SLACK,
        "{which}: TimeoutStopSec={stop:?} must exceed the daemon's own bounded stop \
         (shutdown_grace {DEFAULT_SHUTDOWN_GRACE:?} + {SHUTDOWN_SLACK:?})"
    );
    assert_eq!(service_value(unit, "KillMode", which), "control-group", "{which}");
    assert_eq!(service_value(unit, "Delegate", which), "yes", "{which}: mcpd makes a cgroup per server");
    assert_eq!(service_value(unit, "Restart", which), "on-failure", "{which}");
    for dir in ["RuntimeDirectory", "StateDirectory", "ConfigurationDirectory"] {
        assert_eq!(service_value(unit, dir, which), "mcpd", "{which}: {dir}");
    }
    assert_eq!(service_value(unit, "RuntimeDirectoryMode", which), "0700", "{which}");
    assert_eq!(service_value(unit, "StateDirectoryMode", which), "0700", "{which}");
    assert_eq!(service_value(unit, "UMask", which), "0077", "{which}");
    assert_eq!(service_value(unit, "NoNewPrivileges", which), "yes", "{which}");
    // V8's JIT needs writable+executable memory: node servers abort under W^X.
    assert_ne!(service_value(unit, "MemoryDenyWriteExecute", which), "yes", "{which}: node needs W+X memory");
    let families = service_value(unit, "RestrictAddressFamilies", which);
    for family in ["AF_UNIX", "AF_INET", "AF_INET6"] {
        assert!(families.split_whitespace().any(|f| f == family), "{which}: {family} must stay allowed");
    }
    let filters = service_values(unit, "SystemCallFilter");
    assert!(filters.contains(&"@system-service"), "{which}: SystemCallFilter=@system-service");
    assert_eq!(service_value(unit, "SystemCallErrorNumber", which), "EPERM", "{which}: filtered calls fail softly");
}

#[test]
fn units_keep_the_daemon_contract() {
    let system = read_unit(SYSTEM_UNIT);
    check_contract(&system, SYSTEM_UNIT);
    assert_eq!(service_value(&system, "ExecStart", SYSTEM_UNIT), "/usr/bin/mcpd serve --config /etc/mcpd/mcpd.toml");
    assert!(service_values(&system, "Environment").contains(&"MCPD_SOCKET=/run/mcpd/mcpd.sock"), "{SYSTEM_UNIT}");
    assert!(
        service_values(&system, "Environment").iter().any(|e| e.starts_with("HOME=%S/")),
        "{SYSTEM_UNIT}: HOME must be writable for npx/pip caches"
    );
    assert_eq!(service_value(&system, "CapabilityBoundingSet", SYSTEM_UNIT), "", "{SYSTEM_UNIT}");
    assert_eq!(service_value(&system, "ProtectSystem", SYSTEM_UNIT), "strict", "{SYSTEM_UNIT}");

    let user = read_unit(USER_UNIT);
    check_contract(&user, USER_UNIT);
    assert_eq!(service_value(&user, "ExecStart", USER_UNIT), "/usr/bin/mcpd serve --config %h/.config/mcpd/mcpd.toml");
    assert!(service_values(&user, "Environment").contains(&"MCPD_SOCKET=%t/mcpd/mcpd.sock"), "{USER_UNIT}");
}

#[test]
fn units_pass_systemd_analyze_verify() {
    let analyze = systemd_analyze();
    let dir = tempfile::tempdir().expect("tempdir");

    let system = stage(&read_unit(SYSTEM_UNIT), &dir.path().join("system"));
    let out = run(Command::new(&analyze).args(["verify", "--man=no"]).arg(&system));
    let text = output_text(&out);
    // Unknown keys and bad values are only warnings (exit 0): any output is a failure.
    assert!(out.status.success() && text.trim().is_empty(), "systemd-analyze verify {SYSTEM_UNIT}:\n{text}");

    // The user manager needs a runtime directory to resolve %t.
    let runtime = dir.path().join("runtime");
    std::fs::create_dir(&runtime).expect("runtime dir");
    let user = stage(&read_unit(USER_UNIT), &dir.path().join("user"));
    let out =
        run(Command::new(&analyze).args(["--user", "verify", "--man=no"]).arg(&user).env("XDG_RUNTIME_DIR", &runtime));
    let text = output_text(&out);
    assert!(out.status.success() && text.trim().is_empty(), "systemd-analyze --user verify {USER_UNIT}:\n{text}");
}

#[test]
fn system_unit_exposure_is_at_most_3() {
    let analyze = systemd_analyze();
    let dir = tempfile::tempdir().expect("tempdir");
    let system = stage(&read_unit(SYSTEM_UNIT), dir.path());
    // --threshold is on the 0..100 scale the 0.0..10.0 level is printed from.
    let threshold = format!("--threshold={}", (MAX_EXPOSURE * 10.0).round());
    let out = run(Command::new(&analyze).args(["security", "--offline=true", &threshold, "--no-pager"]).arg(&system));
    let text = output_text(&out);
    let level = text
        .lines()
        .find_map(|l| l.split_once("Overall exposure level for mcpd.service:"))
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|n| n.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no \"Overall exposure level\" in systemd-analyze security output:\n{text}"));
    eprintln!("{SYSTEM_UNIT}: overall exposure level {level}");
    assert!(level <= MAX_EXPOSURE, "{SYSTEM_UNIT} exposure {level} > {MAX_EXPOSURE}:\n{text}");
    assert!(out.status.success(), "systemd-analyze security {threshold} failed:\n{text}");
}

#[test]
fn timespans_parse() {
    assert_eq!(parse_timespan("30"), Duration::from_secs(30));
    assert_eq!(parse_timespan("1min 30s"), Duration::from_secs(90));
    assert_eq!(parse_timespan("500ms"), Duration::from_millis(500));
}

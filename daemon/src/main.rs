//! The `mcpd` binary: reads arguments, sets up logging, runs the daemon or a client verb, and picks the exit code.
#![forbid(unsafe_code)]

mod cli;

fn main() -> std::process::ExitCode {
    // The reaper must not start a runtime or touch logging: it is a tiny watcher.
    if std::env::args().nth(1).as_deref() == Some("__reaper") {
        return std::process::ExitCode::from(mcpd::reaper::run_reaper() as u8);
    }
    // A contained server's first step: join its cgroup, then exec the server.
    if std::env::args_os().nth(1).is_some_and(|a| a == "__contain") {
        let args: Vec<std::ffi::OsString> = std::env::args_os().skip(2).collect();
        return std::process::ExitCode::from(mcpd::contain::run_contain(&args) as u8);
    }
    cli::main()
}

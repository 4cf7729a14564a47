//! The `mcpd` binary: reads arguments, sets up logging, runs the daemon or a client verb, and picks the exit code.
#![forbid(unsafe_code)]

mod cli;

fn main() -> std::process::ExitCode {
    // The reaper must not start a runtime or touch logging: it is a tiny watcher.
    if std::env::args().nth(1).as_deref() == Some("__reaper") {
        return std::process::ExitCode::from(mcpd::reaper::run_reaper() as u8);
    }
    cli::main()
}

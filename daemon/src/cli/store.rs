//! `mcpd store verify` and `mcpd store reset --yes`: the state store, looked at and recovered
//! offline. The daemon refuses to start on a store whose trust records are not what it last
//! acknowledged; these are how an admin sees why and starts trust afresh on purpose.
use std::{path::PathBuf, process::ExitCode};

use clap::Subcommand;
use mcpd::store::{Store, StoreError};

use super::{EXIT_FAILURE, EXIT_USAGE, render::safe};

#[derive(Subcommand, Debug)]
pub(crate) enum StoreCommand {
    /// Check the store: its trust records against their seal and the trust-generation file,
    /// and the record counts of every tree. Exit 1 when it is damaged.
    Verify {
        /// Config file (for the state directory).
        #[arg(long, short, env = "MCPD_CONFIG")]
        config: Option<PathBuf>,
        /// State directory, overriding the config.
        #[arg(long, env = "MCPD_STATE_DIR")]
        state_dir: Option<PathBuf>,
    },
    /// Forget every trust record and start trust afresh: every tool of every configured
    /// server then needs `mcpd trust approve` (first use does not trust anything again).
    /// Tool lists, eras, OAuth logins and the audit log are kept. A store sled cannot open
    /// at all is moved aside as `db.damaged-UNIXMS` and a new one started.
    Reset {
        /// Confirm: trust is lost.
        #[arg(long)]
        yes: bool,
        #[arg(long, short, env = "MCPD_CONFIG")]
        config: Option<PathBuf>,
        #[arg(long, env = "MCPD_STATE_DIR")]
        state_dir: Option<PathBuf>,
    },
}

pub(crate) fn run(command: StoreCommand) -> ExitCode {
    let result = match command {
        StoreCommand::Verify { config, state_dir } => place(config, state_dir).and_then(|(_, dir)| verify(&dir)),
        StoreCommand::Reset { yes: false, .. } => {
            eprintln!("mcpd: `mcpd store reset` forgets every approval; repeat it with --yes to do so");
            return ExitCode::from(EXIT_USAGE);
        }
        StoreCommand::Reset { yes: true, config, state_dir } => {
            place(config, state_dir).and_then(|(cfg, dir)| reset(&cfg, &dir))
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mcpd: {e:#}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// The config (for the servers' identities) and the state directory.
fn place(config: Option<PathBuf>, state_dir: Option<PathBuf>) -> anyhow::Result<(mcpd::config::Config, PathBuf)> {
    let path = config.unwrap_or_else(super::default_config_path);
    let cfg = mcpd::config::load(&path).map_err(|e| anyhow::anyhow!("the config has problems:\n{e}"))?;
    let dir = state_dir.unwrap_or_else(|| cfg.state_dir());
    Ok((cfg, dir))
}

/// sled locks its files: a running daemon holds them.
fn open_hint(e: StoreError) -> anyhow::Error {
    let text = e.to_string();
    if text.contains("lock") || text.contains("WouldBlock") || text.contains("Resource temporarily unavailable") {
        anyhow::anyhow!("{text} (is mcpd running? stop it first: the store is used by one process at a time)")
    } else {
        anyhow::Error::new(e)
    }
}

fn verify(dir: &std::path::Path) -> anyhow::Result<ExitCode> {
    let store = Store::open(dir).map_err(open_hint)?;
    let report = store.verify_trust()?;
    println!("store {}", safe(&dir.join("db").display().to_string()));
    for (tree, n) in store.tree_sizes()? {
        println!("  {tree:<6} {n} records");
    }
    let sealed = report.sealed.map_or("none".to_owned(), |s| s.generation.to_string());
    let sidecar = report.sidecar.map_or("none".to_owned(), |g| g.to_string());
    println!("  trust generation: {sealed} in the store, {sidecar} in trust-generation");
    if report.damage.is_empty() {
        println!("trust records: ok ({} records)", report.records);
        return Ok(ExitCode::SUCCESS);
    }
    for d in &report.damage {
        println!("DAMAGED: {}", safe(d));
    }
    println!("`mcpd store reset --yes` starts trust afresh (every tool then needs approval again)");
    Ok(ExitCode::from(EXIT_FAILURE))
}

fn reset(cfg: &mcpd::config::Config, dir: &std::path::Path) -> anyhow::Result<ExitCode> {
    let store = match Store::open(dir) {
        Ok(s) => s,
        Err(e @ (StoreError::Open { .. } | StoreError::Io(_) | StoreError::Schema { .. })) => {
            let text = e.to_string();
            if text.contains("lock") || text.contains("WouldBlock") {
                return Err(open_hint(e));
            }
            // sled cannot open it at all: keep the damaged files for inspection, start anew.
            let aside = dir.join(format!("db.damaged-{}", mcpd::util::unix_ms()));
            std::fs::rename(dir.join("db"), &aside)?;
            eprintln!("mcpd: the store could not be opened ({text}); moved it to {}", aside.display());
            Store::open(dir).map_err(open_hint)?
        }
        Err(e) => return Err(e.into()),
    };
    let keep = mcpd::trust::reset_records(cfg);
    store.reset_trust(keep)?;
    println!(
        "trust reset in {}: every tool of the {} configured server(s) needs `mcpd trust approve` again",
        safe(&dir.display().to_string()),
        cfg.servers.len()
    );
    Ok(ExitCode::SUCCESS)
}

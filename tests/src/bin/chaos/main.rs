//! `mcpd-chaos`: the fault suite's crash cycles. A real `mcpd` with servers that start
//! `setsid` helpers, a crash-looping server and a server whose tools need approval, put
//! through cycles that mix: an upstream SIGKILLed, mcpd SIGKILLed during calls, mcpd
//! SIGKILLed during approvals, mcpd stopped with SIGTERM. After every cycle it checks what
//! must hold and counts what did not:
//! - no process of the run outlives a daemon that ended (every server process carries a
//!   marker in its environment; `/proc/*/environ` is searched for it), helpers included;
//! - the daemon's open file descriptors stay within ±5 of what they were once it was ready;
//! - no acknowledged approval or revocation is lost across a crash.
//!
//! It also measures how fast a SIGKILLed server is noticed and usable again. Exit status 1
//! when any check failed; timings are printed, never judged. `--cycles` bounds the run
//! (CI runs a few dozen; tests/bench/README.md quotes a full run).
//!
//! `--isolation` runs the isolation run instead (see `isolation.rs`).
mod isolation;

use std::{
    collections::BTreeMap,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use clap::Parser;
use mcpd_tests::*;
use rustix::process::Signal;

#[derive(Parser)]
#[command(about = "Crash cycles against mcpd: leaks, descriptors, lost approvals, recovery times")]
struct Args {
    /// Cycles to run.
    #[arg(long, default_value_t = 1000)]
    cycles: usize,
    /// Seed of the cycle order.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Run the isolation run instead of crash cycles.
    #[arg(long)]
    isolation: bool,
    /// Isolation: seconds of each phase.
    #[arg(long, default_value_t = 10)]
    phase_secs: u64,
    /// Isolation: rounds of (alone, beside).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Isolation: notifications per second the flooder sends.
    #[arg(long, default_value_t = 100_000)]
    flood_rate: u64,
    /// Isolation: calls per second to the healthy servers, all together.
    #[arg(long, default_value_t = 2_000)]
    call_rate: u64,
    /// Isolation: the flooder's `notification_rate` (unset: the daemon's default; 0 turns
    /// the budget off, to see what it saves).
    #[arg(long)]
    notification_rate: Option<u32>,
}

/// xorshift64*: a reproducible order without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    UpstreamKill,
    KillDuringCalls,
    KillDuringApproval,
    Term,
}

const KINDS: [Kind; 4] = [Kind::UpstreamKill, Kind::KillDuringCalls, Kind::KillDuringApproval, Kind::Term];

#[derive(Default)]
struct Tally {
    cycles: BTreeMap<Kind, usize>,
    leaks: Vec<String>,
    fd_drift_max: i64,
    fd_failures: Vec<String>,
    acked: usize,
    lost: Vec<String>,
    noticed_ms: Vec<f64>,
    usable_ms: Vec<f64>,
    /// From the new process's start to ready.
    back_ms: Vec<f64>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    if args.isolation {
        let o = isolation::Opts {
            phase: Duration::from_secs(args.phase_secs),
            rounds: args.rounds,
            flood_rate: args.flood_rate,
            call_rate: args.call_rate,
            notification_rate: args.notification_rate,
        };
        return rt.block_on(isolation::run(o));
    }
    rt.block_on(run(args))
}

fn config(dir: &Path, marker: &str) -> Result<String> {
    let script = dir.join("helper.sh");
    std::fs::write(&script, "#!/bin/sh\nsetsid sh -c 'exec sleep 100000' &\nexec \"$1\"\n")?;
    let fault = fault_server_bin().display().to_string();
    let env = format!("env = {{ MCPD_CHAOS = {} }}\n", q(marker));
    Ok(format!(
        "[servers.gated]\ncommand = {fault_q}\ntrust = \"approve\"\n{env}\n\
         [servers.plain]\ncommand = {fault_q}\n{env}\n\
         # Killed over and over on purpose: the crash-loop breaker must not take it away, and\n\
         # the backoff stays short so cycles stay short.\n\
         crash_loop = {{ max_failures = 100000, window = \"1s\", open_for = \"1s\" }}\n\
         backoff = {{ initial = \"200ms\", max = \"400ms\", multiplier = 2.0, jitter = 0.3 }}\n\n\
         [servers.helper]\ncommand = \"/bin/sh\"\nargs = [{}, {fault_q}]\n{env}\n\
         [servers.crashy]\ncommand = {fault_q}\nargs = [\"--mode\", \"exit-now\"]\n{env}\n",
        q(script.display().to_string()),
        fault_q = q(&fault),
    ))
}

/// Pids of live processes whose environment carries `marker`.
fn marked(marker: &str) -> Vec<u32> {
    let needle = format!("MCPD_CHAOS={marker}");
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(env) = std::fs::read(e.path().join("environ")) else { continue };
        if env.split(|b| *b == 0).any(|v| v == needle.as_bytes()) && alive(pid) {
            out.push(pid);
        }
    }
    out
}

/// The daemon's open descriptors: the least of three looks 20 ms apart, so a server start
/// in flight (the crash-looping one restarts on its own) does not count as a leak.
fn fds(pid: u32) -> i64 {
    let once = || std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count() as i64).unwrap_or(-1);
    let mut least = once();
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(20));
        least = least.min(once());
    }
    least
}

/// A client of the daemon now running; an error (with the daemon's log) if it does not
/// answer within 10 s.
async fn connect(d: &TestDaemon) -> Result<mcpd_client::Client> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match mcpd_client::Client::connect_unix(d.socket.clone()).await {
            Ok(c) => return Ok(c),
            Err(e) if tokio::time::Instant::now() > deadline => {
                bail!("cannot connect to the daemon: {e}\nits log:\n{}", d.log_text())
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

async fn ready(d: &TestDaemon, servers: &[&str], within: Duration) -> Result<mcpd_client::Client> {
    let mut c = connect(d).await?;
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let st = c.status().await.context("status")?;
        let up = |n: &&str| {
            st.servers.iter().any(|s| s.name == *n && s.state == mcpd_client::proto::ServerState::Ready as i32)
        };
        if servers.iter().all(up) {
            return Ok(c);
        }
        if tokio::time::Instant::now() > deadline {
            bail!("servers not ready within {within:?}:\n{}", d.log_text());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn pid_of(c: &mut mcpd_client::Client, server: &str) -> Result<u32> {
    let st = c.status().await?;
    st.servers.iter().find(|s| s.name == server).map(|s| s.pid).context("no such server")
}

/// The daemon ended: every marked process must be gone within 2 s.
fn check_leaks(marker: &str, cycle: usize, kind: Kind, t: &mut Tally) {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let left = marked(marker);
        if left.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            t.leaks.push(format!("cycle {cycle} ({kind:?}): {left:?}"));
            for p in left {
                if let Some(pid) = rustix::process::Pid::from_raw(p as i32) {
                    let _ = rustix::process::kill_process(pid, Signal::KILL);
                }
            }
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Trust as the daemon reports it now must be what was acknowledged.
async fn check_trust(
    c: &mut mcpd_client::Client,
    model: &BTreeMap<String, bool>,
    cycle: usize,
    t: &mut Tally,
) -> Result<()> {
    let entries = c.trust_list(Some("gated")).await?;
    for (tool, approved) in model {
        let trusted = entries.iter().any(|e| e.qualified_name == *tool && e.state == "trusted");
        if trusted != *approved {
            t.lost.push(format!("cycle {cycle}: {tool} acknowledged {approved}, now trusted={trusted}"));
        }
    }
    Ok(())
}

async fn restart(d: &mut TestDaemon, marker: &str, cycle: usize, kind: Kind, t: &mut Tally) -> Result<()> {
    check_leaks(marker, cycle, kind, t);
    // A SIGKILLed daemon leaves its socket file behind.
    let _ = std::fs::remove_file(&d.socket);
    d.restart();
    Ok(())
}

async fn run(args: Args) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let marker = format!("{:x}", std::process::id() as u64 * 1_000_003 + args.seed);
    let mut d = TestDaemon::start(&config(dir.path(), &marker)?);
    let servers = ["gated", "plain", "helper"];
    let mut c = ready(&d, &servers, Duration::from_secs(30)).await?;
    let tools: Vec<String> = c
        .list_tools(Some("gated"))
        .await?
        .into_iter()
        .map(|t| t.qualified_name)
        .filter(|n| n.ends_with(".echo") || n.ends_with(".add") || n.ends_with(".slow"))
        .collect();
    if tools.is_empty() {
        bail!("the gated server lists none of echo, add, slow");
    }
    let mut model: BTreeMap<String, bool> = tools.iter().map(|t| (t.clone(), false)).collect();
    let mut fd_base = fds(d.pid());
    let mut rng = Rng(args.seed.max(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut t = Tally::default();
    let started = Instant::now();
    for cycle in 0..args.cycles {
        let kind = KINDS[rng.below(KINDS.len() as u64) as usize];
        *t.cycles.entry(kind).or_default() += 1;
        match kind {
            Kind::UpstreamKill => {
                let old = pid_of(&mut c, "plain").await?;
                let t0 = Instant::now();
                if let Some(pid) = rustix::process::Pid::from_raw(old as i32) {
                    let _ = rustix::process::kill_process(pid, Signal::KILL);
                }
                let mut noticed = None;
                let mut restarted = None;
                loop {
                    let st = c.status().await?;
                    let s = st.servers.iter().find(|s| s.name == "plain").context("plain")?;
                    let up = s.state == mcpd_client::proto::ServerState::Ready as i32;
                    if noticed.is_none() && (!up || s.pid != old) {
                        noticed = Some(t0.elapsed());
                    }
                    if restarted.is_none() && s.state == mcpd_client::proto::ServerState::Starting as i32 {
                        restarted = Some(t0.elapsed());
                    }
                    if up && s.pid != old && s.pid != 0 {
                        let back = t0.elapsed();
                        t.back_ms.push((back - restarted.unwrap_or(back)).as_secs_f64() * 1e3);
                        break;
                    }
                    if t0.elapsed() > Duration::from_secs(30) {
                        bail!("plain did not come back:\n{}", d.log_text());
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                t.noticed_ms.push(noticed.unwrap_or_default().as_secs_f64() * 1e3);
                t.usable_ms.push(t0.elapsed().as_secs_f64() * 1e3);
                c.call_tool("plain.echo", r#"{"text":"back"}"#, None).await.context("a call after the restart")?;
                let now = fds(d.pid());
                let drift = (now - fd_base).abs();
                t.fd_drift_max = t.fd_drift_max.max(drift);
                if drift > 5 {
                    t.fd_failures.push(format!("cycle {cycle}: {fd_base} -> {now} descriptors"));
                }
            }
            Kind::KillDuringCalls => {
                let mut calls = Vec::new();
                for i in 0..8 {
                    let mut c = connect(&d).await?;
                    calls.push(tokio::spawn(async move {
                        let _ = c.call_tool("plain.echo", &format!(r#"{{"text":"{i}"}}"#), None).await;
                    }));
                }
                tokio::time::sleep(Duration::from_millis(rng.below(20))).await;
                d.signal(Signal::KILL);
                d.wait_exit(Duration::from_secs(10));
                for call in calls {
                    let _ = call.await;
                }
                restart(&mut d, &marker, cycle, kind, &mut t).await?;
            }
            Kind::KillDuringApproval => {
                let tool = tools[rng.below(tools.len() as u64) as usize].clone();
                let approve = !model[&tool];
                let mut c2 = connect(&d).await?;
                let tool2 = tool.clone();
                let change = tokio::spawn(async move {
                    if approve { c2.trust_approve(&tool2).await.is_ok() } else { c2.trust_revoke(&tool2).await.is_ok() }
                });
                // Sometimes before the answer, sometimes after it.
                tokio::time::sleep(Duration::from_micros(rng.below(30_000))).await;
                d.signal(Signal::KILL);
                let acked = change.await.unwrap_or(false);
                d.wait_exit(Duration::from_secs(10));
                if acked {
                    model.insert(tool.clone(), approve);
                    t.acked += 1;
                }
                restart(&mut d, &marker, cycle, kind, &mut t).await?;
                let mut c3 = ready(&d, &servers, Duration::from_secs(30)).await?;
                // Not acknowledged: the change may or may not have landed; take what is there.
                if !acked {
                    let trusted = c3
                        .trust_list(Some("gated"))
                        .await?
                        .iter()
                        .any(|e| e.qualified_name == tool && e.state == "trusted");
                    model.insert(tool, trusted);
                }
            }
            Kind::Term => {
                d.stop();
                restart(&mut d, &marker, cycle, kind, &mut t).await?;
            }
        }
        if kind != Kind::UpstreamKill {
            c = ready(&d, &servers, Duration::from_secs(30)).await?;
            fd_base = fds(d.pid());
        }
        check_trust(&mut c, &model, cycle, &mut t).await?;
    }
    d.stop();
    check_leaks(&marker, args.cycles, Kind::Term, &mut t);
    report(&args, &t, started.elapsed());
    let failed = !t.leaks.is_empty() || !t.lost.is_empty() || !t.fd_failures.is_empty();
    if failed {
        std::process::exit(1);
    }
    Ok(())
}

fn pct(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[((s.len() as f64 * p) as usize).min(s.len() - 1)]
}

fn report(args: &Args, t: &Tally, took: Duration) {
    println!("mcpd-chaos: {} cycles (seed {}) in {:.0} s", args.cycles, args.seed, took.as_secs_f64());
    println!("| cycle kind | count |");
    println!("|---|---:|");
    for (k, n) in &t.cycles {
        println!("| {k:?} | {n} |");
    }
    println!();
    println!("| check | result |");
    println!("|---|---|");
    println!("| leaked processes (setsid helpers included) | {} |", t.leaks.len());
    println!(
        "| largest descriptor drift while the daemon ran | {} (limit 5; {} over) |",
        t.fd_drift_max,
        t.fd_failures.len()
    );
    println!("| acknowledged approvals and revocations | {} |", t.acked);
    println!("| acknowledged changes lost | {} |", t.lost.len());
    println!(
        "| SIGKILLed server noticed, ms p50 / p99 | {:.1} / {:.1} |",
        pct(&t.noticed_ms, 0.5),
        pct(&t.noticed_ms, 0.99)
    );
    println!(
        "| SIGKILLed server usable again after it came back (new process started -> ready), ms p50 / p99 | {:.1} / {:.1} |",
        pct(&t.back_ms, 0.5),
        pct(&t.back_ms, 0.99)
    );
    println!(
        "| SIGKILLed server usable again after the kill (includes its backoff, 200-400 ms ± 30 %), ms p50 / p99 | {:.0} / {:.0} |",
        pct(&t.usable_ms, 0.5),
        pct(&t.usable_ms, 0.99)
    );
    for l in t.leaks.iter().chain(&t.lost).chain(&t.fd_failures) {
        println!("FAILED: {l}");
    }
}

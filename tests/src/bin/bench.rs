//! `mcpd-bench`: a benchmark harness (not a test) for mcpd's call path and memory.
//!
//! In one run it measures:
//!
//! 1. **direct**: an rmcp client talking to a spawned `mcpd-fault-server` over its stdio pipes,
//!    calling `echo {"text":"hello"}` sequentially and with `--concurrency` tasks sharing the peer;
//! 2. **daemon**: the same workloads through `mcpd serve` (one fault server) and the gRPC client
//!    (`mcpd_client::Client`, one connection cloned per task), plus the overhead against direct;
//!    then through the same daemon's MCP front end with an rmcp client: the Streamable HTTP
//!    endpoint (`mcp-http`, bearer token, the era rmcp negotiates) and the bridge socket that
//!    `mcpd mcp` joins a host's stdio to (`mcp-sock`);
//! 3. **RSS** of the daemon process (and separately of its child processes) with 1 server and with
//!    `--servers` (default 100) servers.
//!
//! It prints a table and writes the numbers as JSON (`--out`, default `target/bench.json`).
//! Build and run in release: `cargo build --release -p mcpd -p mcpd-tests --bins && target/release/mcpd-bench`.
//! See tests/bench/README.md.
#![forbid(unsafe_code)]

use std::{
    collections::{BTreeMap, BTreeSet},
    io::Write as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use mcpd_client::{Client, proto};
use rmcp::{ServiceExt as _, model::CallToolRequestParams, service::RoleClient};
use serde_json::{Value, json};

const ECHO_ARGS: &str = r#"{"text":"hello"}"#;
/// The one-server daemon config names its server this, so the tool is `fault.echo`.
const SERVER: &str = "fault";
/// Project targets, reported as PASS/MISS.
const TARGET_OVERHEAD_P50_US: f64 = 150.0;
const TARGET_THROUGHPUT_RATIO: f64 = 0.80;

const USAGE: &str = "\
usage: mcpd-bench [OPTIONS]

Benchmarks direct rmcp->fault-server calls against calls through mcpd, and mcpd's RSS.

options:
  --calls N          calls per measurement, sequential and concurrent (overrides both defaults)
  --calls-seq N      calls in the sequential measurement (default 20000)
  --calls-conc N     calls in the concurrent measurement (default 50000)
  --concurrency C    tasks in the concurrent measurement (default 32)
  --warmup N         warm-up calls before each measurement (default 500)
  --servers M        servers in the RSS fleet measurement, 0 skips it (default 100)
  --only WHAT        run only `direct`, `daemon` or `rss` (default: everything)
  --out FILE         JSON output (default target/bench.json)
  --mcpd PATH        mcpd binary (default: `mcpd` next to this executable)
  --fault PATH       fault server binary (default: `mcpd-fault-server` next to this executable)
  --daemon-env K=V   extra environment for the daemon only (repeatable), e.g. TOKIO_WORKER_THREADS=1
  -h, --help         print this help
";

#[derive(Debug)]
struct Opts {
    calls_seq: usize,
    calls_conc: usize,
    concurrency: usize,
    warmup: usize,
    servers: usize,
    only: Option<String>,
    out: PathBuf,
    mcpd: PathBuf,
    fault: PathBuf,
    daemon_env: Vec<(String, String)>,
}

impl Opts {
    fn wants(&self, what: &str) -> bool {
        self.only.as_deref().is_none_or(|o| o == what)
    }
}

fn parse_opts() -> anyhow::Result<Opts> {
    let exe_dir = std::env::current_exe()
        .context("locating the current executable")?
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let mut o = Opts {
        calls_seq: 20_000,
        calls_conc: 50_000,
        concurrency: 32,
        warmup: 500,
        servers: 100,
        only: None,
        out: PathBuf::from("target/bench.json"),
        mcpd: exe_dir.join("mcpd"),
        fault: exe_dir.join("mcpd-fault-server"),
        daemon_env: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = || -> anyhow::Result<String> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => it.next().with_context(|| format!("{flag} needs a value")),
            }
        };
        let num = |v: String| v.parse::<usize>().with_context(|| format!("{arg}: not a number"));
        match flag.as_str() {
            "-h" | "--help" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            "--calls" => {
                let n = num(value()?)?;
                o.calls_seq = n;
                o.calls_conc = n;
            }
            "--calls-seq" => o.calls_seq = num(value()?)?,
            "--calls-conc" => o.calls_conc = num(value()?)?,
            "--concurrency" => o.concurrency = num(value()?)?,
            "--warmup" => o.warmup = num(value()?)?,
            "--servers" => o.servers = num(value()?)?,
            "--only" => {
                let v = value()?;
                if !["direct", "daemon", "rss"].contains(&v.as_str()) {
                    bail!("--only must be direct, daemon or rss");
                }
                o.only = Some(v);
            }
            "--out" => o.out = value()?.into(),
            "--mcpd" => o.mcpd = value()?.into(),
            "--fault" => o.fault = value()?.into(),
            "--daemon-env" => {
                let v = value()?;
                let (k, v) = v.split_once('=').context("--daemon-env needs KEY=VALUE")?;
                o.daemon_env.push((k.to_owned(), v.to_owned()));
            }
            other => bail!("unknown argument {other:?}"),
        }
    }
    if o.calls_seq == 0 || o.calls_conc == 0 || o.concurrency == 0 {
        bail!("--calls and --concurrency must be at least 1");
    }
    if o.servers > 1000 {
        bail!("--servers is limited to 1000 (server names s000..s999)");
    }
    for (what, p) in [("--mcpd", &o.mcpd), ("--fault", &o.fault)] {
        if !p.is_file() {
            bail!(
                "{what} {} does not exist; build with `cargo build --release -p mcpd -p mcpd-tests --bins`",
                p.display()
            );
        }
    }
    o.mcpd = o.mcpd.canonicalize()?;
    o.fault = o.fault.canonicalize()?;
    Ok(o)
}

// ---------------------------------------------------------------------------------------------
// Load generation
// ---------------------------------------------------------------------------------------------

/// Something that can call `echo`: a direct rmcp peer or a daemon client. Cloned per task.
#[derive(Clone)]
enum Target {
    /// An rmcp peer: the fault server itself (`echo`), or mcpd's MCP front end (`fault.echo`).
    Direct {
        peer: rmcp::Peer<RoleClient>,
        tool: String,
        args: serde_json::Map<String, Value>,
    },
    Daemon {
        client: Client,
        tool: String,
    },
}

impl Target {
    async fn echo(&mut self) -> anyhow::Result<()> {
        match self {
            Target::Direct { peer, tool, args } => {
                let r = peer.call_tool(CallToolRequestParams::new(tool.clone()).with_arguments(args.clone())).await?;
                if r.is_error == Some(true) {
                    bail!("tool error: {:?}", r.content);
                }
            }
            Target::Daemon { client, tool } => {
                let r = client.call_tool(tool, ECHO_ARGS, None).await?;
                if r.is_error {
                    bail!("tool error: {}", r.content_json);
                }
            }
        }
        Ok(())
    }

    /// One call whose result is checked in full, so a broken setup is not benchmarked.
    async fn check(&mut self) -> anyhow::Result<()> {
        let text = match self {
            Target::Direct { peer, tool, args } => {
                let r = peer.call_tool(CallToolRequestParams::new(tool.clone()).with_arguments(args.clone())).await?;
                serde_json::to_string(&r.content)?
            }
            Target::Daemon { client, tool } => client.call_tool(tool, ECHO_ARGS, None).await?.content_json,
        };
        if !text.contains("hello") {
            bail!("echo answered {text}, expected it to contain \"hello\"");
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
struct Stats {
    concurrency: usize,
    calls: usize,
    errors: usize,
    first_error: Option<String>,
    secs: f64,
    calls_per_s: f64,
    mean_us: f64,
    p50_us: f64,
    p90_us: f64,
    p99_us: f64,
    max_us: f64,
    /// CPU time (user + system) each process group burnt during the run, per successful call.
    cpu_us_per_call: Vec<(String, f64)>,
}

impl Stats {
    fn json(&self) -> Value {
        json!({
            "concurrency": self.concurrency,
            "calls": self.calls,
            "errors": self.errors,
            "first_error": self.first_error,
            "seconds": round(self.secs, 3),
            "calls_per_s": round(self.calls_per_s, 1),
            "mean_us": round(self.mean_us, 1),
            "p50_us": round(self.p50_us, 1),
            "p90_us": round(self.p90_us, 1),
            "p99_us": round(self.p99_us, 1),
            "max_us": round(self.max_us, 1),
            "cpu_us_per_call": self.cpu_us_per_call.iter()
                .map(|(k, v)| (k.clone(), json!(round(*v, 1))))
                .collect::<serde_json::Map<_, _>>(),
        })
    }
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// `total` calls spread over `concurrency` tasks, each with its own clone of `target`.
/// Latency is per call (send to answer); throughput is successful calls over wall time.
async fn run_load(target: &Target, total: usize, concurrency: usize) -> anyhow::Result<Stats> {
    let concurrency = concurrency.min(total).max(1);
    let mut set = tokio::task::JoinSet::new();
    let started = Instant::now();
    for i in 0..concurrency {
        let n = total / concurrency + usize::from(i < total % concurrency);
        let mut t = target.clone();
        set.spawn(async move {
            let mut lat = Vec::with_capacity(n);
            let mut errors = 0usize;
            let mut first_error = None;
            for _ in 0..n {
                let s = Instant::now();
                match t.echo().await {
                    Ok(()) => lat.push(s.elapsed().as_nanos() as u64),
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| format!("{e:#}"));
                    }
                }
            }
            (lat, errors, first_error)
        });
    }
    let mut lat = Vec::with_capacity(total);
    let mut errors = 0;
    let mut first_error = None;
    while let Some(res) = set.join_next().await {
        let (l, e, f) = res.context("load task panicked")?;
        lat.extend(l);
        errors += e;
        if first_error.is_none() {
            first_error = f;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    if lat.is_empty() {
        bail!("every call failed; first error: {}", first_error.unwrap_or_default());
    }
    lat.sort_unstable();
    let pct = |p: usize| lat[(lat.len() * p / 100).min(lat.len() - 1)] as f64 / 1000.0;
    let mean = lat.iter().map(|&x| x as f64).sum::<f64>() / lat.len() as f64 / 1000.0;
    Ok(Stats {
        concurrency,
        calls: total,
        errors,
        first_error,
        secs,
        calls_per_s: lat.len() as f64 / secs,
        mean_us: mean,
        p50_us: pct(50),
        p90_us: pct(90),
        p99_us: pct(99),
        max_us: *lat.last().unwrap_or(&0) as f64 / 1000.0,
        cpu_us_per_call: Vec::new(),
    })
}

/// Warm-up then measure, sequentially and at `--concurrency`.
async fn measure(label: &str, target: &Target, probe: &Probe, o: &Opts) -> anyhow::Result<(Stats, Stats)> {
    target.clone().check().await.with_context(|| format!("{label}: first call"))?;
    let mut out = Vec::new();
    for (calls, conc) in [(o.calls_seq, 1), (o.calls_conc, o.concurrency)] {
        if o.warmup > 0 {
            run_load(target, o.warmup, conc).await.with_context(|| format!("{label}: warm-up at c={conc}"))?;
        }
        eprint!("  {label:<7} c={conc:<3} {calls} calls ... ");
        let before = probe.sample();
        let mut s = run_load(target, calls, conc).await.with_context(|| format!("{label}: c={conc}"))?;
        let ok_calls = (s.calls - s.errors).max(1) as f64;
        s.cpu_us_per_call = probe
            .sample()
            .iter()
            .zip(before)
            .map(|((k, a), (_, b))| (k.clone(), ((a - b) / ok_calls).max(0.0)))
            .collect();
        let cpu: Vec<String> = s.cpu_us_per_call.iter().map(|(k, v)| format!("{k} {v:.0}")).collect();
        eprintln!(
            "{:.0} calls/s, p50 {:.1} µs, p99 {:.1} µs; cpu µs/call: {}",
            s.calls_per_s,
            s.p50_us,
            s.p99_us,
            cpu.join(", ")
        );
        let other = s.cpu_us_per_call.iter().find(|(k, _)| k == "other").map_or(0.0, |(_, v)| *v);
        let ours: f64 = s.cpu_us_per_call.iter().filter(|(k, _)| k != "other").map(|(_, v)| v).sum();
        if other > 0.15 * ours {
            eprintln!(
                "  warning: other processes used {other:.0} µs of CPU per call ({:.0} % of ours): the machine is not \
                 quiet, these numbers are unreliable",
                100.0 * other / ours.max(1e-9)
            );
        }
        if s.errors > 0 {
            eprintln!("  warning: {} calls failed, first: {}", s.errors, s.first_error.as_deref().unwrap_or(""));
        }
        out.push(s);
    }
    let conc = out.pop().expect("two runs");
    let seq = out.pop().expect("two runs");
    Ok((seq, conc))
}

/// Which processes a CPU-time column covers.
enum Pids {
    Own,
    One(u32),
    /// Every descendant (for the daemon: its servers and the idle reaper).
    ChildrenOf(u32),
}

/// Named process sets whose CPU time is sampled around a measurement.
struct Probe(Vec<(String, Pids)>);

impl Probe {
    /// Microseconds of user + system CPU time per set, then `other`: the rest of the machine's busy
    /// time (other processes, and kernel work not charged to ours), which should stay near zero.
    fn sample(&self) -> Vec<(String, f64)> {
        let mut v: Vec<(String, f64)> = self
            .0
            .iter()
            .map(|(name, pids)| {
                let ticks: u64 = match pids {
                    Pids::Own => cpu_ticks(std::process::id()).unwrap_or(0),
                    Pids::One(p) => cpu_ticks(*p).unwrap_or(0),
                    Pids::ChildrenOf(p) => descendants(*p).into_iter().filter_map(cpu_ticks).sum(),
                };
                (name.clone(), ticks as f64 * 1e6 / CLOCK_TICKS_PER_S)
            })
            .collect();
        let ours: f64 = v.iter().map(|(_, t)| t).sum();
        // Tick-sampled machine time vs precise per-process time: only approximate (clamped at 0).
        v.push(("other".into(), machine_busy_ticks() as f64 * 1e6 / CLOCK_TICKS_PER_S - ours));
        v
    }
}

/// USER_HZ; 100 on every mainstream Linux configuration.
const CLOCK_TICKS_PER_S: f64 = 100.0;

/// Busy (non-idle, non-iowait) time of all CPUs, in clock ticks, from /proc/stat.
fn machine_busy_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else { return 0 };
    let f: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest time is already inside user).
    [0, 1, 2, 5, 6, 7].iter().filter_map(|&i| f.get(i)).sum()
}

/// utime + stime of all threads of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    // Fields after the comm: state(3) ppid(4) ... utime(14) stime(15); index 0 here is field 3.
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

// ---------------------------------------------------------------------------------------------
// Direct baseline
// ---------------------------------------------------------------------------------------------

async fn bench_direct(o: &Opts) -> anyhow::Result<(Stats, Stats)> {
    let mut child = tokio::process::Command::new(&o.fault)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("spawning {}", o.fault.display()))?;
    let server_pid = child.id().context("fault server has no pid")?;
    let stdout = child.stdout.take().context("no stdout pipe")?;
    let stdin = child.stdin.take().context("no stdin pipe")?;
    let result = async {
        let service = tokio::time::timeout(Duration::from_secs(10), ().serve((stdout, stdin)))
            .await
            .context("direct handshake timed out")?
            .context("direct handshake")?;
        let args = match serde_json::from_str(ECHO_ARGS)? {
            Value::Object(m) => m,
            _ => unreachable!("ECHO_ARGS is an object"),
        };
        let target = Target::Direct { peer: service.peer().clone(), tool: "echo".into(), args };
        let probe = Probe(vec![("bench".into(), Pids::Own), ("server".into(), Pids::One(server_pid))]);
        let stats = measure("direct", &target, &probe, o).await;
        drop(target);
        // Cancelling closes the fault server's stdin; it exits on EOF.
        let _ = tokio::time::timeout(Duration::from_secs(5), service.cancel()).await;
        stats
    }
    .await;
    match tokio::time::timeout(Duration::from_secs(5), child.wait()).await {
        Ok(_) => {}
        Err(_) => {
            let _ = child.kill().await;
        }
    }
    result
}

// ---------------------------------------------------------------------------------------------
// The daemon process
// ---------------------------------------------------------------------------------------------

/// A running `mcpd serve`. Dropping it stops the daemon (SIGTERM, then SIGKILL).
struct Daemon {
    child: Option<Child>,
    pid: u32,
    socket: PathBuf,
    log: PathBuf,
}

/// What `Daemon::stop` observed.
#[derive(Debug, Default)]
struct StopReport {
    exit: String,
    stop_ms: u128,
    descendants: usize,
    leftovers: Vec<u32>,
}

fn toml_str(s: &str) -> String {
    // A JSON string literal is a valid TOML basic string (same escapes).
    serde_json::to_string(s).expect("strings serialize")
}

impl Daemon {
    /// Writes a config with `servers` (name -> fault server) into `dir` and starts the daemon.
    fn start(o: &Opts, dir: &Path, servers: &[String]) -> anyhow::Result<Self> {
        let socket = dir.join("mcpd.sock");
        let state = dir.join("state");
        let log = dir.join("mcpd.log");
        let mut cfg = format!(
            "[daemon]\nsocket = {}\nstate_dir = {}\nmcp_listen = \"127.0.0.1:0\"\n",
            toml_str(&socket.to_string_lossy()),
            toml_str(&state.to_string_lossy())
        );
        for name in servers {
            cfg.push_str(&format!(
                "\n[servers.{name}]\ncommand = {}\nmax_concurrency = 64\n",
                toml_str(&o.fault.to_string_lossy())
            ));
        }
        let cfg_path = dir.join("mcpd.toml");
        std::fs::write(&cfg_path, cfg)?;
        let child = Command::new(&o.mcpd)
            .arg("serve")
            .arg("-c")
            .arg(&cfg_path)
            .env_remove("RUST_LOG")
            .env_remove("MCPD_SOCKET")
            .env_remove("MCPD_STATE_DIR")
            .env_remove("MCPD_CONFIG")
            .envs(o.daemon_env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .with_context(|| format!("spawning {}", o.mcpd.display()))?;
        let pid = child.id();
        Ok(Self { child: Some(child), pid, socket, log })
    }

    fn exited(&mut self) -> Option<String> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(st)) => Some(st.to_string()),
            _ => None,
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Connects, then polls `Status` until `expect` servers are READY.
    async fn wait_ready(&mut self, expect: usize, limit: Duration) -> anyhow::Result<Client> {
        let deadline = Instant::now() + limit;
        let mut client: Option<Client> = None;
        let mut last = String::from("not connected");
        while Instant::now() < deadline {
            if let Some(how) = self.exited() {
                bail!("mcpd exited early ({how}); log tail:\n{}", self.log_tail());
            }
            if client.is_none() && self.socket.exists() {
                client = Client::connect_unix(self.socket.clone()).await.ok();
            }
            if let Some(c) = client.as_mut() {
                match c.status().await {
                    Ok(st) => {
                        let ready = st.servers.iter().filter(|s| s.state == proto::ServerState::Ready as i32).count();
                        if ready == expect && st.servers.len() == expect {
                            return Ok(client.take().expect("connected"));
                        }
                        last = format!("{ready}/{expect} ready");
                        if let Some(bad) = st.servers.iter().find(|s| !s.last_error.is_empty()) {
                            last.push_str(&format!("; {}: {}", bad.name, bad.last_error));
                        }
                    }
                    Err(e) => last = e.to_string(),
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        bail!("servers not ready after {limit:?} ({last}); log tail:\n{}", self.log_tail())
    }

    /// SIGTERM, wait (SIGKILL after 15 s), then make sure every descendant is gone too.
    fn stop(&mut self) -> StopReport {
        let Some(mut child) = self.child.take() else { return StopReport::default() };
        let descendants = descendants(self.pid);
        let started = Instant::now();
        let mut report = StopReport { descendants: descendants.len(), ..Default::default() };
        signal(self.pid, rustix::process::Signal::TERM);
        let deadline = started + Duration::from_secs(15);
        report.exit = loop {
            match child.try_wait() {
                Ok(Some(st)) => break st.to_string(),
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
                _ => {
                    let _ = child.kill();
                    break format!("did not stop within 15 s, killed ({:?})", child.wait().ok());
                }
            }
        };
        report.stop_ms = started.elapsed().as_millis();
        // The daemon (or its reaper) ends its servers; give them a moment, then end stragglers.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut alive: Vec<u32> = descendants.iter().copied().filter(|&p| is_alive(p)).collect();
        while !alive.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            alive.retain(|&p| is_alive(p));
        }
        for &p in &alive {
            signal(p, rustix::process::Signal::KILL);
        }
        report.leftovers = alive;
        report
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.is_some() {
            let r = self.stop();
            if !r.leftovers.is_empty() {
                eprintln!("mcpd-bench: killed {} leftover processes: {:?}", r.leftovers.len(), r.leftovers);
            }
        }
    }
}

fn signal(pid: u32, sig: rustix::process::Signal) {
    if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(p, sig);
    }
}

/// Running (not zombie) per /proc.
fn is_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()) != Some("Z"),
        Err(_) => false,
    }
}

/// (pid, ppid) of every process, from /proc/*/stat.
fn process_table() -> Vec<(u32, u32)> {
    let Ok(rd) = std::fs::read_dir("/proc") else { return Vec::new() };
    rd.filter_map(|e| {
        let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let (_, rest) = stat.rsplit_once(')')?;
        let ppid = rest.split_whitespace().nth(1)?.parse().ok()?;
        Some((pid, ppid))
    })
    .collect()
}

/// Every process below `root` (children, grandchildren, ...).
fn descendants(root: u32) -> Vec<u32> {
    let table = process_table();
    let mut found = BTreeSet::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for &(pid, ppid) in &table {
            if ppid == p && found.insert(pid) {
                frontier.push(pid);
            }
        }
    }
    found.into_iter().collect()
}

/// VmRSS in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[derive(Debug, Clone, Copy, Default)]
struct Rss {
    daemon_kib: u64,
    children: usize,
    children_kib: u64,
}

impl Rss {
    fn of(pid: u32) -> Self {
        let kids = descendants(pid);
        Self {
            daemon_kib: rss_kib(pid).unwrap_or(0),
            children: kids.len(),
            children_kib: kids.iter().filter_map(|&p| rss_kib(p)).sum(),
        }
    }

    fn json(&self) -> Value {
        json!({
            "daemon_kib": self.daemon_kib,
            "children": self.children,
            "children_kib": self.children_kib,
            "total_kib": self.daemon_kib + self.children_kib,
        })
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn stop_json(r: &StopReport) -> Value {
    json!({"exit": r.exit, "stop_ms": r.stop_ms as u64, "descendants": r.descendants, "leftovers": r.leftovers})
}

fn check_stop(label: &str, r: &StopReport) {
    eprintln!("  {label}: stopped in {} ms ({}), {} descendant processes", r.stop_ms, r.exit, r.descendants);
    if !r.leftovers.is_empty() {
        eprintln!("  warning: {} processes outlived the daemon and were killed: {:?}", r.leftovers.len(), r.leftovers);
    }
}

// ---------------------------------------------------------------------------------------------
// Daemon benchmarks
// ---------------------------------------------------------------------------------------------

struct DaemonRun {
    /// p50 of a gRPC round trip that involves no MCP server (`ListServers`), in µs: the floor
    /// the API hop alone puts under every call.
    grpc_floor_p50_us: f64,
    seq: Stats,
    conc: Stats,
    /// The same workload through the MCP front end: (label, sequential, concurrent).
    mcp: Vec<(&'static str, Stats, Stats)>,
    ready_ms: u128,
    rss_idle: Rss,
    rss_after: Rss,
    stop: StopReport,
}

async fn bench_daemon(o: &Opts, root: &Path) -> anyhow::Result<DaemonRun> {
    let dir = root.join("one");
    std::fs::create_dir_all(&dir)?;
    let started = Instant::now();
    let mut daemon = Daemon::start(o, &dir, &[SERVER.to_owned()])?;
    let client = daemon.wait_ready(1, Duration::from_secs(30)).await?;
    let ready_ms = started.elapsed().as_millis();
    let tools = client.clone().list_tools(Some(SERVER)).await?;
    let tool = format!("{SERVER}.echo");
    if !tools.iter().any(|t| t.qualified_name == tool) {
        bail!("the daemon does not list {tool}");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_idle = Rss::of(daemon.pid);
    let grpc_floor_p50_us = {
        let mut c = client.clone();
        let mut samples = Vec::with_capacity(5000);
        for i in 0..5500 {
            let t0 = Instant::now();
            c.list_servers().await?;
            if i >= 500 {
                samples.push(t0.elapsed().as_secs_f64() * 1e6);
            }
        }
        samples.sort_by(|a, b| a.total_cmp(b));
        samples[samples.len() / 2]
    };
    eprintln!("  daemon  gRPC floor (ListServers, no MCP server): p50 {grpc_floor_p50_us:.1} µs");
    let target = Target::Daemon { client, tool };
    let probe = Probe(vec![
        ("bench".into(), Pids::Own),
        ("daemon".into(), Pids::One(daemon.pid)),
        ("server".into(), Pids::ChildrenOf(daemon.pid)),
    ]);
    let (seq, conc) = measure("daemon", &target, &probe, o).await?;
    let status = match &target {
        Target::Daemon { client, .. } => client.clone().status().await?,
        Target::Direct { .. } => unreachable!("the daemon target"),
    };
    drop(target);
    let mcp = bench_mcp(o, &dir, &status, &probe).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_after = Rss::of(daemon.pid);
    let stop = daemon.stop();
    check_stop("1-server daemon", &stop);
    Ok(DaemonRun { grpc_floor_p50_us, seq, conc, mcp, ready_ms, rss_idle, rss_after, stop })
}

/// The same workload through the daemon's MCP front end: the HTTP endpoint and the bridge
/// socket, each with one rmcp session shared by the tasks (as with the gRPC client).
async fn bench_mcp(
    o: &Opts,
    dir: &Path,
    status: &proto::StatusResponse,
    probe: &Probe,
) -> anyhow::Result<Vec<(&'static str, Stats, Stats)>> {
    use rmcp::transport::{StreamableHttpClientTransport, streamable_http_client::StreamableHttpClientTransportConfig};
    let d = status.daemon.as_ref().context("status has no daemon section")?;
    let args = match serde_json::from_str(ECHO_ARGS)? {
        Value::Object(m) => m,
        _ => unreachable!("ECHO_ARGS is an object"),
    };
    let tool = format!("{SERVER}.echo");
    let mut out = Vec::new();

    let token = std::fs::read_to_string(dir.join("state/mcp-token")).context("reading the MCP token")?;
    let url = format!("http://{}/mcp", d.mcp_listen);
    let cfg = StreamableHttpClientTransportConfig::with_uri(url).auth_header(token.trim().to_owned());
    let http = ().serve(StreamableHttpClientTransport::from_config(cfg)).await.context("MCP HTTP handshake")?;
    let target = Target::Direct { peer: http.peer().clone(), tool: tool.clone(), args: args.clone() };
    let (seq, conc) = measure("mcp-http", &target, probe, o).await?;
    out.push(("mcp-http", seq, conc));
    drop(target);
    let _ = tokio::time::timeout(Duration::from_secs(5), http.cancel()).await;

    let stream = tokio::net::UnixStream::connect(&d.mcp_socket).await.context("connecting the MCP socket")?;
    let (read, mut write) = stream.into_split();
    use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
    write.write_all(b"{\"profile\":null}\n").await?;
    let mut read = tokio::io::BufReader::new(read);
    let mut answer = String::new();
    read.read_line(&mut answer).await?;
    if !answer.contains("\"ok\":true") {
        bail!("the MCP socket refused the hello: {answer}");
    }
    let sock = ().serve((read, write)).await.context("MCP socket handshake")?;
    let target = Target::Direct { peer: sock.peer().clone(), tool, args };
    let (seq, conc) = measure("mcp-sock", &target, probe, o).await?;
    out.push(("mcp-sock", seq, conc));
    drop(target);
    let _ = tokio::time::timeout(Duration::from_secs(5), sock.cancel()).await;
    Ok(out)
}

struct FleetRun {
    servers: usize,
    ready_ms: u128,
    rss: Rss,
    stop: StopReport,
}

async fn bench_fleet(o: &Opts, root: &Path) -> anyhow::Result<FleetRun> {
    let dir = root.join("fleet");
    std::fs::create_dir_all(&dir)?;
    let names: Vec<String> = (0..o.servers).map(|i| format!("s{i:03}")).collect();
    eprint!("  fleet   starting {} servers ... ", o.servers);
    let started = Instant::now();
    let mut daemon = Daemon::start(o, &dir, &names)?;
    let _client = daemon.wait_ready(o.servers, Duration::from_secs(120)).await?;
    let ready_ms = started.elapsed().as_millis();
    eprintln!("all ready in {ready_ms} ms");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss = Rss::of(daemon.pid);
    let stop = daemon.stop();
    check_stop(&format!("{}-server daemon", o.servers), &stop);
    Ok(FleetRun { servers: o.servers, ready_ms, rss, stop })
}

// ---------------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------------

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("model name")).map(|l| l.to_owned()))
        .and_then(|l| l.split_once(':').map(|(_, v)| v.trim().to_owned()))
        .unwrap_or_default()
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "MISS" }
}

fn row(label: &str, s: &Stats) {
    println!(
        "{label:<8} {:>5} {:>8} {:>10.0} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>6}   {}",
        s.concurrency,
        s.calls,
        s.calls_per_s,
        s.mean_us,
        s.p50_us,
        s.p90_us,
        s.p99_us,
        s.errors,
        s.cpu_us_per_call.iter().map(|(k, v)| format!("{k} {v:.0}")).collect::<Vec<_>>().join(" + ")
    );
}

async fn run(o: Opts) -> anyhow::Result<()> {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    eprintln!("mcpd-bench: {cpus} cpus, mcpd {}, fault server {}", o.mcpd.display(), o.fault.display());
    let root = tempfile::Builder::new().prefix("mcpd-bench-").tempdir()?;

    let direct = if o.wants("direct") { Some(bench_direct(&o).await?) } else { None };
    let daemon = if o.wants("daemon") { Some(bench_daemon(&o, root.path()).await?) } else { None };
    let fleet = if o.wants("rss") && o.servers > 0 { Some(bench_fleet(&o, root.path()).await?) } else { None };

    let mut report = BTreeMap::<&str, Value>::new();
    report.insert(
        "machine",
        json!({"cpus": cpus, "cpu_model": cpu_model(), "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim()}),
    );
    report.insert(
        "params",
        json!({
            "tool": "echo", "arguments": ECHO_ARGS,
            "calls_seq": o.calls_seq, "calls_conc": o.calls_conc, "concurrency": o.concurrency,
            "warmup": o.warmup, "servers": o.servers,
            "daemon_env": o.daemon_env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
            "mcpd": o.mcpd, "fault_server": o.fault,
        }),
    );
    report.insert(
        "unix_time",
        json!(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)),
    );

    println!();
    println!("echo {ECHO_ARGS}, {cpus} cpus ({})", cpu_model());
    println!(
        "{:<8} {:>5} {:>8} {:>10} {:>9} {:>9} {:>9} {:>9} {:>6}   cpu µs per call",
        "path", "conc", "calls", "calls/s", "mean µs", "p50 µs", "p90 µs", "p99 µs", "errors"
    );
    if let Some((seq, conc)) = &direct {
        row("direct", seq);
        row("direct", conc);
        report.insert("direct", json!({"sequential": seq.json(), "concurrent": conc.json()}));
    }
    if let Some(d) = &daemon {
        row("daemon", &d.seq);
        row("daemon", &d.conc);
        for (label, seq, conc) in &d.mcp {
            row(label, seq);
            row(label, conc);
            report.insert(label, json!({"sequential": seq.json(), "concurrent": conc.json()}));
        }
        report.insert(
            "daemon",
            json!({
                "sequential": d.seq.json(), "concurrent": d.conc.json(),
                "ready_ms": d.ready_ms as u64, "stop": stop_json(&d.stop),
                "grpc_floor_p50_us": round(d.grpc_floor_p50_us, 1),
            }),
        );
    }
    println!();
    if let (Some((dseq, dconc)), Some(d)) = (&direct, &daemon) {
        let over_seq = d.seq.p50_us - dseq.p50_us;
        let over_conc = d.conc.p50_us - dconc.p50_us;
        let ratio = d.conc.calls_per_s / dconc.calls_per_s;
        println!(
            "overhead p50, sequential:      {over_seq:>8.1} µs   target < {TARGET_OVERHEAD_P50_US} µs: {}",
            verdict(over_seq < TARGET_OVERHEAD_P50_US)
        );
        println!("overhead p99, sequential:      {:>8.1} µs", d.seq.p99_us - dseq.p99_us);
        println!("gRPC floor p50 (ListServers):  {:>8.1} µs   (the API hop alone, no MCP server)", d.grpc_floor_p50_us);
        println!("overhead p50, c={:<3}:           {over_conc:>8.1} µs", o.concurrency);
        println!(
            "throughput daemon/direct c={:<3} {:>8.1} %    target >= {:.0} %: {}",
            o.concurrency,
            ratio * 100.0,
            TARGET_THROUGHPUT_RATIO * 100.0,
            verdict(ratio >= TARGET_THROUGHPUT_RATIO)
        );
        report.insert(
            "comparison",
            json!({
                "overhead_p50_us_sequential": round(over_seq, 1),
                "overhead_p99_us_sequential": round(d.seq.p99_us - dseq.p99_us, 1),
                "overhead_p50_us_concurrent": round(over_conc, 1),
                "throughput_ratio_concurrent": round(ratio, 4),
                "throughput_ratio_sequential": round(d.seq.calls_per_s / dseq.calls_per_s, 4),
                "target_overhead_p50_us": TARGET_OVERHEAD_P50_US,
                "target_throughput_ratio": TARGET_THROUGHPUT_RATIO,
                "overhead_target_met": over_seq < TARGET_OVERHEAD_P50_US,
                "throughput_target_met": ratio >= TARGET_THROUGHPUT_RATIO,
            }),
        );
    }
    let mut rss = serde_json::Map::new();
    if let Some(d) = &daemon {
        println!(
            "RSS, 1 server:     daemon {:>7.1} MiB idle, {:>7.1} MiB after the workload ({} children, {:.1} MiB)",
            mib(d.rss_idle.daemon_kib),
            mib(d.rss_after.daemon_kib),
            d.rss_after.children,
            mib(d.rss_after.children_kib)
        );
        rss.insert("one_server_idle".into(), d.rss_idle.json());
        rss.insert("one_server_after_workload".into(), d.rss_after.json());
    }
    if let Some(f) = &fleet {
        println!(
            "RSS, {} servers:  daemon {:>7.1} MiB ({} children, {:.1} MiB); all ready {} ms after spawn",
            f.servers,
            mib(f.rss.daemon_kib),
            f.rss.children,
            mib(f.rss.children_kib),
            f.ready_ms
        );
        rss.insert(
            "fleet".into(),
            json!({"servers": f.servers, "ready_ms": f.ready_ms as u64, "rss": f.rss.json(), "stop": stop_json(&f.stop)}),
        );
    }
    if !rss.is_empty() {
        report.insert("rss", Value::Object(rss));
    }

    if let Some(parent) = o.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut f = std::fs::File::create(&o.out).with_context(|| format!("writing {}", o.out.display()))?;
    serde_json::to_writer_pretty(&mut f, &report)?;
    writeln!(f)?;
    println!("\nwrote {}", o.out.display());
    Ok(())
}

fn main() -> std::process::ExitCode {
    let opts = match parse_opts() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("mcpd-bench: {e:#}\n\n{USAGE}");
            return std::process::ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mcpd-bench: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(opts)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcpd-bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

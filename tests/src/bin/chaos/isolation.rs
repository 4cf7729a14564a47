//! The isolation run (`mcpd-chaos --isolation`): four healthy servers under a steady call
//! load, measured alone and then next to an HTTP server that accepts connections and never
//! answers and a stdio server that floods notifications (the two are added and removed by
//! reload, so both phases run in one daemon). Rounds alternate the phases, so drift of the
//! machine falls on both alike.
//!
//! Reported: the healthy calls' p50/p99 in each phase and how far p99 moved, the flood rate
//! the daemon took, and the daemon's RSS after warm-up and at its highest. Timings are
//! printed, never judged; a healthy call that fails is a failure (exit status 1).
use std::{
    sync::{
        Arc,
        atomic::{AtomicU8, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use mcpd_tests::*;

/// What a sample was taken during; samples that straddle a switch are dropped.
const SWITCHING: u8 = 0;
const ALONE: u8 = 1;
const BESIDE: u8 = 2;

const HEALTHY: [&str; 4] = ["h0", "h1", "h2", "h3"];
/// Calls in flight at once: two callers per healthy server.
const WORKERS: usize = 8;

pub(crate) struct Opts {
    pub(crate) phase: Duration,
    pub(crate) rounds: usize,
    pub(crate) flood_rate: u64,
    pub(crate) call_rate: u64,
    pub(crate) notification_rate: Option<u32>,
}

#[derive(Default)]
struct Samples {
    alone: Vec<f64>,
    beside: Vec<f64>,
    failed: Vec<String>,
}

/// Accepts every connection and never writes a byte; reads what comes so the peer's
/// writes do not block, and holds the socket until the peer gives up.
async fn black_hole(listener: tokio::net::TcpListener, held: Arc<AtomicUsize>) {
    while let Ok((mut sock, _)) = listener.accept().await {
        let held = held.clone();
        tokio::spawn(async move {
            held.fetch_add(1, Ordering::Relaxed);
            let mut buf = vec![0u8; 16 * 1024];
            while let Ok(n) = tokio::io::AsyncReadExt::read(&mut sock, &mut buf).await {
                if n == 0 {
                    break;
                }
            }
            held.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// The daemon's resident set in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn flood_count(path: &std::path::Path) -> u64 {
    std::fs::read_to_string(path).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0)
}

async fn reload(c: &mut mcpd_client::Client, d: &TestDaemon, config: &str) -> Result<()> {
    std::fs::write(&d.config, config)?;
    let r = c.reload().await.context("reload")?;
    if !r.applied {
        bail!("reload refused: {:?}", r.problems);
    }
    Ok(())
}

/// One caller: a call every `every`, each timed, tagged with the phase it ran in.
async fn caller(
    d_socket: std::path::PathBuf,
    server: &'static str,
    every: Duration,
    phase: Arc<AtomicU8>,
    stop: Arc<AtomicU8>,
) -> Result<Samples> {
    let mut c = mcpd_client::Client::connect_unix(d_socket).await?;
    let tool = format!("{server}.echo");
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut s = Samples::default();
    while stop.load(Ordering::Relaxed) == 0 {
        tick.tick().await;
        let before = phase.load(Ordering::Relaxed);
        let t0 = Instant::now();
        let r = c.call_tool(&tool, r#"{"text":"isolation"}"#, None).await;
        let took = t0.elapsed().as_secs_f64() * 1e3;
        if let Err(e) = r {
            s.failed.push(format!("{tool}: {e}"));
            continue;
        }
        match (before, phase.load(Ordering::Relaxed)) {
            (ALONE, ALONE) => s.alone.push(took),
            (BESIDE, BESIDE) => s.beside.push(took),
            _ => {}
        }
    }
    Ok(s)
}

pub(crate) async fn run(o: Opts) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let hole = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let hole_port = hole.local_addr()?.port();
    let held = Arc::new(AtomicUsize::new(0));
    tokio::spawn(black_hole(hole, held.clone()));

    let healthy: String = HEALTHY.iter().map(|n| fault_server(n, &[], "")).collect();
    let count_file = dir.path().join("flood.count");
    let rate = o.flood_rate.to_string();
    let budget = o.notification_rate.map(|r| format!("notification_rate = {r}")).unwrap_or_default();
    let count = count_file.display().to_string();
    let bad = format!(
        "{}[servers.hung]\nurl = {}\n",
        fault_server("flood", &["--mode", "flood", "--flood-rate", &rate, "--flood-count-file", &count], &budget),
        q(format!("http://127.0.0.1:{hole_port}/mcp")),
    );
    let d = TestDaemon::start(&healthy);
    d.wait_all_ready(Duration::from_secs(30)).await;
    let alone_config = std::fs::read_to_string(&d.config)?;
    let beside_config = format!("{alone_config}\n{bad}");
    let mut c = d.client().await;

    let phase = Arc::new(AtomicU8::new(SWITCHING));
    let stop = Arc::new(AtomicU8::new(0));
    let every = Duration::from_secs_f64(WORKERS as f64 / o.call_rate.max(1) as f64);
    let callers: Vec<_> = (0..WORKERS)
        .map(|i| tokio::spawn(caller(d.socket.clone(), HEALTHY[i % HEALTHY.len()], every, phase.clone(), stop.clone())))
        .collect();

    // Warm-up: round 0 runs both phases unmeasured, so connections are made and the
    // bounded caches (sled's 16 MiB page cache and write buffers, fed by the audit log,
    // the allocator's arenas) are at their working size before the base RSS is taken;
    // growth after it is what the misbehaving servers cost, or a leak.
    let pid = d.pid();
    let rss_cold = rss_kib(pid);
    let mut rss_base = rss_cold;
    let mut rss_max = [rss_base; 3];
    let mut flooded = 0u64;
    let mut flood_time = Duration::ZERO;
    let mut held_max = 0usize;
    let started = Instant::now();
    for round in 0..=o.rounds {
        for p in [ALONE, BESIDE] {
            if p == BESIDE {
                // Each flooder counts from zero: the last one's count must not hide this one.
                let _ = std::fs::remove_file(&count_file);
                reload(&mut c, &d, &beside_config).await?;
                // The flood is on and the hung server holds a connection before timing starts.
                let deadline = Instant::now() + Duration::from_secs(20);
                while flood_count(&count_file) == 0 || held.load(Ordering::Relaxed) == 0 {
                    if Instant::now() > deadline {
                        bail!("the flood or the hung server did not start:\n{}", d.log_text());
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            let (n0, t0) = (flood_count(&count_file), Instant::now());
            let measured = round > 0;
            phase.store(if measured { p } else { SWITCHING }, Ordering::Relaxed);
            while t0.elapsed() < o.phase {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if measured {
                    let r = rss_kib(pid);
                    rss_max[p as usize] = rss_max[p as usize].max(r);
                    held_max = held_max.max(held.load(Ordering::Relaxed));
                }
            }
            phase.store(SWITCHING, Ordering::Relaxed);
            // A timeline, so growth that belongs to the call load (alone too) shows apart
            // from growth the flood causes.
            eprintln!(
                "round {round}, {}: RSS at the end {:.1} MiB",
                if p == ALONE { "alone" } else { "beside" },
                rss_kib(pid) as f64 / 1024.0
            );
            if p == BESIDE {
                if measured {
                    flooded += flood_count(&count_file).saturating_sub(n0);
                    flood_time += t0.elapsed();
                }
                reload(&mut c, &d, &alone_config).await?;
                // Gone from the daemon before the next quiet phase.
                let deadline = Instant::now() + Duration::from_secs(20);
                loop {
                    let st = c.status().await?;
                    if !st.servers.iter().any(|s| s.name == "flood" || s.name == "hung") {
                        break;
                    }
                    if Instant::now() > deadline {
                        bail!("the flood and hung servers were not removed:\n{}", d.log_text());
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        if round == 0 {
            rss_base = rss_kib(pid);
            rss_max = [rss_base; 3];
        }
    }
    stop.store(1, Ordering::Relaxed);
    let mut all = Samples::default();
    for h in callers {
        let s = h.await??;
        all.alone.extend(s.alone);
        all.beside.extend(s.beside);
        all.failed.extend(s.failed);
    }
    let rss_end = rss_kib(pid);
    report(
        &o,
        &all,
        [rss_cold, rss_base],
        rss_max,
        rss_end,
        flooded as f64 / flood_time.as_secs_f64().max(1e-9),
        held_max,
    );
    println!("(run took {:.0} s)", started.elapsed().as_secs_f64());
    drop(d);
    if !all.failed.is_empty() {
        for f in all.failed.iter().take(10) {
            println!("FAILED: {f}");
        }
        std::process::exit(1);
    }
    Ok(())
}

fn report(o: &Opts, s: &Samples, [cold, base]: [u64; 2], max: [u64; 3], end: u64, flood_per_s: f64, held: usize) {
    let (a50, a99) = (super::pct(&s.alone, 0.5), super::pct(&s.alone, 0.99));
    let (b50, b99) = (super::pct(&s.beside, 0.5), super::pct(&s.beside, 0.99));
    println!(
        "mcpd-chaos --isolation: {} rounds (after one warm-up round) of {:.0} s alone + {:.0} s beside; {} calls/s to 4 healthy servers; flood asked {}/s",
        o.rounds,
        o.phase.as_secs_f64(),
        o.phase.as_secs_f64(),
        o.call_rate,
        o.flood_rate
    );
    if let Some(r) = o.notification_rate {
        println!("(the flooder's notification_rate: {r})");
    }
    println!("| figure | alone | beside a hung HTTP server and a flood |");
    println!("|---|---:|---:|");
    println!("| healthy calls timed | {} | {} |", s.alone.len(), s.beside.len());
    println!("| healthy call p50, ms | {a50:.3} | {b50:.3} |");
    println!("| healthy call p99, ms | {a99:.3} | {b99:.3} |");
    println!("| p99 moved | | {:+.1} % (bound: < 10 %) |", (b99 / a99.max(1e-9) - 1.0) * 100.0);
    println!("| notifications/s the daemon read from the flooder | | {flood_per_s:.0} |");
    println!("| connections the hung server held at once (most) | | {held} |");
    println!(
        "| daemon RSS, MiB: at start {:.1}; after the warm-up round {:.1}; highest {:.1} (alone) / {:.1} (beside); at the end {:.1} | | grew {:+.1} MiB (bound: < 32) |",
        cold as f64 / 1024.0,
        base as f64 / 1024.0,
        max[ALONE as usize] as f64 / 1024.0,
        max[BESIDE as usize] as f64 / 1024.0,
        end as f64 / 1024.0,
        (max[ALONE as usize].max(max[BESIDE as usize]) as f64 - base as f64) / 1024.0
    );
    println!("| healthy calls that failed | {} | |", s.failed.len());
}

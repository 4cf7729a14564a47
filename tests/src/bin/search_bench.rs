//! Tool-search benchmark: retrieval quality (recall@1, recall@5, MRR) of mcpd's ranker against
//! plain BM25 on the dataset in `tests/bench/search/`, then search and update latency at scale.
//!
//! `queries.tsv` has a `tune` set the thesaurus and weights were written against and a `held` set
//! they were not; both are reported separately so that tuning cannot hide in the total.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use mcpd_search::{Embedder, Index, ToolDoc};
use serde_json::Value;

#[derive(Parser)]
#[command(about = "Retrieval and latency benchmark for mcpd's tool search")]
struct Args {
    /// Folder with tools.json and queries.tsv.
    #[arg(long, default_value = "tests/bench/search")]
    data: PathBuf,
    /// Tools registered for the latency run.
    #[arg(long, default_value_t = 10_000)]
    scale: usize,
    /// Searches timed in the latency run.
    #[arg(long, default_value_t = 2_000)]
    searches: usize,
    /// Print each query whose first needed tool is not in the top 5 (for either ranker).
    #[arg(long)]
    misses: bool,
    /// A static embedding model's directory (tokenizer.json, model.safetensors, config.json):
    /// adds the ranker with semantic fusion, and times it too.
    #[arg(long)]
    model: Option<PathBuf>,
}

struct Query {
    set: String,
    multi: bool,
    need: Vec<String>,
    text: String,
}

fn load_tools(path: &PathBuf) -> Result<Vec<ToolDoc>> {
    let raw = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let list: Vec<Value> = serde_json::from_str(&raw).context("tools.json")?;
    Ok(list.iter().map(doc).collect())
}

fn doc(v: &Value) -> ToolDoc {
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    let params = v
        .pointer("/inputSchema/properties")
        .and_then(Value::as_object)
        .map(|p| {
            p.iter()
                .map(|(n, d)| (n.clone(), d.get("description").and_then(Value::as_str).unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default();
    ToolDoc { server: s("server"), name: s("name"), title: s("title"), description: s("description"), params }
}

fn load_queries(path: &PathBuf) -> Result<Vec<Query>> {
    let raw = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in raw.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        let [set, kind, need, text] = cols[..] else { anyhow::bail!("queries.tsv line {}: want 4 columns", i + 1) };
        out.push(Query {
            set: set.into(),
            multi: kind == "multi",
            need: need.split(',').map(str::to_owned).collect(),
            text: text.into(),
        });
    }
    Ok(out)
}

fn build(tools: &[ToolDoc], mut ix: Index) -> Index {
    let mut servers: Vec<&str> = tools.iter().map(|t| t.server.as_str()).collect();
    servers.dedup();
    for s in servers {
        ix.replace_server(s, tools.iter().filter(|t| t.server == s).cloned());
    }
    ix
}

#[derive(Default)]
struct Score {
    n: usize,
    r1: f64,
    r5: f64,
    mrr: f64,
}

fn evaluate(ix: &Index, queries: &[&Query], misses: bool, label: &str) -> Score {
    let mut sc = Score::default();
    for q in queries {
        let hits: Vec<String> =
            ix.search(&q.text, 10, &|_, _| true).iter().map(|h| format!("{}.{}", h.server, h.name)).collect();
        let rank = |t: &String| hits.iter().position(|h| h == t);
        // A multi-step task counts the share of its needed tools found; MRR uses the first needed.
        let found_in =
            |k: usize| q.need.iter().filter(|t| rank(t).is_some_and(|r| r < k)).count() as f64 / q.need.len() as f64;
        sc.n += 1;
        sc.r1 += if q.multi { found_in(q.need.len()) } else { found_in(1) };
        sc.r5 += found_in(5);
        sc.mrr += rank(&q.need[0]).map_or(0.0, |r| 1.0 / (r + 1) as f64);
        if misses && found_in(5) < 1.0 {
            println!("  miss [{label}] {:?} want {:?} got {:?}", q.text, q.need, &hits[..hits.len().min(5)]);
        }
    }
    sc
}

fn main() -> Result<()> {
    let args = Args::parse();
    let tools = load_tools(&args.data.join("tools.json"))?;
    let queries = load_queries(&args.data.join("queries.tsv"))?;
    let embedder = match &args.model {
        Some(dir) => Some(std::sync::Arc::new(
            Embedder::load(dir).with_context(|| format!("loading the model in {}", dir.display()))?,
        )),
        None => None,
    };
    let ranked = build(&tools, Index::new());
    let plain = build(&tools, Index::plain_bm25());
    let fused = embedder.as_ref().map(|e| build(&tools, Index::with_embedder(e.clone())));
    let mut rankers = vec![("plain BM25", &plain), ("mcpd", &ranked)];
    if let Some(f) = &fused {
        rankers.push(("mcpd + semantic", f));
    }
    println!(
        "retrieval: {} tools from {} servers, {} queries",
        tools.len(),
        {
            let mut s: Vec<&str> = tools.iter().map(|t| t.server.as_str()).collect();
            s.dedup();
            s.len()
        },
        queries.len()
    );
    println!("| set | kind | queries | ranker | recall@1 | recall@5 | MRR |");
    println!("|---|---|---:|---|---:|---:|---:|");
    for set in ["tune", "held", "all"] {
        for multi in [false, true] {
            let qs: Vec<&Query> =
                queries.iter().filter(|q| (set == "all" || q.set == set) && q.multi == multi).collect();
            if qs.is_empty() {
                continue;
            }
            for (name, ix) in &rankers {
                let s = evaluate(ix, &qs, args.misses && set != "all", name);
                let n = s.n as f64;
                let kind = if multi { "multi-step (share of needed tools)" } else { "single" };
                println!(
                    "| {set} | {kind} | {} | {name} | {:.2} | {:.2} | {:.2} |",
                    s.n,
                    s.r1 / n,
                    s.r5 / n,
                    s.mrr / n
                );
            }
        }
    }
    latency(&tools, &queries, args.scale, args.searches, Index::new, "lexical");
    if let Some(e) = embedder {
        latency(
            &tools,
            &queries,
            args.scale,
            args.searches,
            || Index::with_embedder(e.clone()),
            "with semantic fusion",
        );
    }
    Ok(())
}

/// Search and update latency with `scale` tools: the dataset copied across servers, each copy's
/// names and descriptions varied so that postings grow as in a real registry.
fn latency(tools: &[ToolDoc], queries: &[Query], scale: usize, searches: usize, new: impl Fn() -> Index, label: &str) {
    let per = tools.len().max(1);
    let copies = scale.div_ceil(per);
    let mut ix = new();
    let server_tools = |c: usize| -> Vec<ToolDoc> {
        tools
            .iter()
            .enumerate()
            .filter(|(i, _)| c * per + i < scale)
            .map(|(_, t)| ToolDoc {
                server: format!("{}-{c}", t.server),
                name: format!("{}_v{c}", t.name),
                description: format!("{} (variant {c})", t.description),
                ..t.clone()
            })
            .collect()
    };
    let started = Instant::now();
    for c in 0..copies {
        let batch = server_tools(c);
        let mut servers: Vec<String> = batch.iter().map(|t| t.server.clone()).collect();
        servers.dedup();
        for s in servers {
            ix.replace_server(&s, batch.iter().filter(|t| t.server == s).cloned());
        }
    }
    let build = started.elapsed();
    let mut times = Vec::with_capacity(searches);
    for i in 0..searches {
        let q = &queries[i % queries.len()].text;
        let t = Instant::now();
        let hits = ix.search(q, 5, &|_, _| true);
        times.push(t.elapsed().as_micros() as u64);
        std::hint::black_box(hits);
    }
    times.sort_unstable();
    let pct = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
    // A list change: one server of the biggest kind (filesystem: 14 tools) re-listed with edits.
    let mut updates = Vec::new();
    for c in 0..copies.min(50) {
        let batch: Vec<ToolDoc> = server_tools(c).into_iter().filter(|t| t.server.starts_with("filesystem-")).collect();
        let Some(server) = batch.first().map(|t| t.server.clone()) else { continue };
        let t = Instant::now();
        ix.replace_server(
            &server,
            batch.into_iter().map(|mut d| {
                d.description.push_str(" (changed)");
                d
            }),
        );
        updates.push(t.elapsed().as_micros() as u64);
    }
    updates.sort_unstable();
    let upd = |p: f64| {
        updates.get(((updates.len() as f64 * p) as usize).min(updates.len().saturating_sub(1))).copied().unwrap_or(0)
    };
    println!();
    println!("latency, {label}: {} tools indexed in {} ms", ix.len(), build.as_millis());
    println!("| operation | n | p50 µs | p99 µs | max µs |");
    println!("|---|---:|---:|---:|---:|");
    println!("| search (k=5) | {} | {} | {} | {} |", times.len(), pct(0.5), pct(0.99), times[times.len() - 1]);
    println!(
        "| update after a list change (one server, 14 tools) | {} | {} | {} | {} |",
        updates.len(),
        upd(0.5),
        upd(0.99),
        updates.last().copied().unwrap_or(0)
    );
}

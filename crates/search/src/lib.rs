//! Ranked tool search: a fielded BM25 (BM25F) index over tool names, titles, descriptions,
//! parameters and server names, updated one server at a time as lists change.
//!
//! The crate knows nothing of MCP or of trust: callers hand it [`ToolDoc`]s and a filter that
//! hides what a caller may not see (quarantined, denied, app-only), so visibility is decided in
//! one place, by the daemon, at query time, and a verdict change needs no re-index.

mod semantic;
mod text;

use std::{collections::HashMap, sync::Arc};

pub use semantic::{Embedder, ModelError};
pub use text::{Analyzer, SYNONYM_WEIGHT, split_words};

/// The fields a tool is indexed under, in [`Field::ALL`] order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    Name,
    Title,
    Description,
    Params,
    Server,
}

impl Field {
    pub const ALL: [Field; 5] = [Field::Name, Field::Title, Field::Description, Field::Params, Field::Server];

    pub fn as_str(self) -> &'static str {
        match self {
            Field::Name => "name",
            Field::Title => "title",
            Field::Description => "description",
            Field::Params => "params",
            Field::Server => "server",
        }
    }
}

const FIELDS: usize = 5;

/// How much a match in each field counts, and how strongly each field's length is normalised.
/// A tool's name says what it does in a few words, so a match there outweighs one in prose.
const WEIGHT: [f32; FIELDS] = [3.0, 2.0, 1.0, 0.6, 1.2];
const B: [f32; FIELDS] = [0.3, 0.3, 0.75, 0.75, 0.0];
const K1: f32 = 1.2;
/// Reciprocal rank fusion of the lexical and the semantic ranking: a tool's fused score is
/// `1/(RRF_K + lexical rank) + SEMANTIC/(RRF_K + semantic rank)`. Ranks, not scores, are
/// fused because BM25 and cosine scores live on unrelated scales.
///
/// The semantic ranking only reorders tools the lexical one matched (a word of the task, or a
/// thesaurus relative): the shipped model is small (64 dimensions) and on its own finds the
/// right tool in its top five for fewer than half the benchmark's tasks, so tools it alone
/// proposes made results worse; as a second opinion over lexical matches it helps multi-step
/// tasks most. Both constants were chosen on the benchmark's `tune` set only.
const RRF_K: f32 = 10.0;
const SEMANTIC: f32 = 0.2;

/// What is indexed of one tool.
#[derive(Debug, Clone, Default)]
pub struct ToolDoc {
    pub server: String,
    pub name: String,
    pub title: String,
    pub description: String,
    /// Parameter names with their descriptions.
    pub params: Vec<(String, String)>,
}

/// One ranked result.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub server: String,
    pub name: String,
    pub score: f32,
    /// The fields a query word (or a thesaurus relative) matched, in [`Field::ALL`] order.
    pub matched: Vec<Field>,
}

struct Entry {
    server: String,
    name: String,
    lens: [u32; FIELDS],
    terms: Vec<String>,
}

/// The index. Not internally synchronised: the daemon swaps or locks it.
pub struct Index {
    analyzer: Analyzer,
    plain: bool,
    docs: Vec<Option<Entry>>,
    free: Vec<u32>,
    by_server: HashMap<String, Vec<u32>>,
    postings: HashMap<String, HashMap<u32, [u16; FIELDS]>>,
    total_len: [u64; FIELDS],
    live: u32,
    /// The semantic ranker, when a model is configured; `vectors` holds each document's
    /// embedding at `id * dim` (empty documents have none: `has_vec`).
    embedder: Option<Arc<Embedder>>,
    vectors: Vec<f32>,
    has_vec: Vec<bool>,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index").field("tools", &self.live).field("terms", &self.postings.len()).finish()
    }
}

impl Default for Index {
    fn default() -> Self {
        Self::new()
    }
}

impl Index {
    /// mcpd's ranker: fielded, stemmed, case-split, with the thesaurus.
    pub fn new() -> Self {
        Self::with(Analyzer::new(), false)
    }

    /// Plain BM25 over one field holding all of a tool's text, as the baseline the retrieval
    /// benchmark compares against.
    pub fn plain_bm25() -> Self {
        Self::with(Analyzer::plain(), true)
    }

    fn with(analyzer: Analyzer, plain: bool) -> Self {
        Index {
            analyzer,
            plain,
            docs: Vec::new(),
            free: Vec::new(),
            by_server: HashMap::new(),
            postings: HashMap::new(),
            total_len: [0; FIELDS],
            live: 0,
            embedder: None,
            vectors: Vec::new(),
            has_vec: Vec::new(),
        }
    }

    /// mcpd's ranker with the semantic ranker fused in.
    pub fn with_embedder(embedder: Arc<Embedder>) -> Self {
        let mut index = Self::new();
        index.embedder = Some(embedder);
        index
    }

    /// Whether a semantic ranker is fused in.
    pub fn semantic(&self) -> bool {
        self.embedder.is_some()
    }

    /// How many tools are indexed.
    pub fn len(&self) -> usize {
        self.live as usize
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Replaces everything indexed for `server` with `tools` (an empty list removes the server).
    /// Only that server's postings are touched, so the cost follows the size of the change.
    pub fn replace_server(&mut self, server: &str, tools: impl IntoIterator<Item = ToolDoc>) {
        for id in self.by_server.remove(server).unwrap_or_default() {
            self.remove_doc(id);
        }
        let ids: Vec<u32> = tools.into_iter().map(|t| self.add_doc(t)).collect();
        if !ids.is_empty() {
            self.by_server.insert(server.to_owned(), ids);
        }
    }

    fn field_texts(&self, t: &ToolDoc) -> [Vec<String>; FIELDS] {
        let a = &self.analyzer;
        let params: String = t.params.iter().map(|(n, d)| format!("{n} {d} ")).collect();
        if self.plain {
            let all = format!("{} {} {} {} {}", t.name, t.title, t.description, params, t.server);
            return [Vec::new(), Vec::new(), a.terms(&all), Vec::new(), Vec::new()];
        }
        [a.terms(&t.name), a.terms(&t.title), a.terms(&t.description), a.terms(&params), a.terms(&t.server)]
    }

    fn add_doc(&mut self, t: ToolDoc) -> u32 {
        let fields = self.field_texts(&t);
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                self.docs.push(None);
                (self.docs.len() - 1) as u32
            }
        };
        let mut lens = [0u32; FIELDS];
        let mut terms: Vec<String> = Vec::new();
        for (f, words) in fields.iter().enumerate() {
            lens[f] = words.len() as u32;
            self.total_len[f] += words.len() as u64;
            for w in words {
                let tf = self.postings.entry(w.clone()).or_default().entry(id).or_insert([0; FIELDS]);
                tf[f] = tf[f].saturating_add(1);
                if !terms.contains(w) {
                    terms.push(w.clone());
                }
            }
        }
        if let Some(e) = &self.embedder {
            let dim = e.dim();
            let at = id as usize;
            if self.has_vec.len() <= at {
                self.has_vec.resize(at + 1, false);
                self.vectors.resize((at + 1) * dim, 0.0);
            }
            // What the tool does, in words: its name split into them, its title and description.
            let text = format!("{} {} {}", split_words(&t.name).join(" "), t.title, t.description);
            match e.embed(&text) {
                Some(v) => {
                    self.vectors[at * dim..(at + 1) * dim].copy_from_slice(&v);
                    self.has_vec[at] = true;
                }
                None => self.has_vec[at] = false,
            }
        }
        self.docs[id as usize] = Some(Entry { server: t.server, name: t.name, lens, terms });
        self.live += 1;
        id
    }

    fn remove_doc(&mut self, id: u32) {
        let Some(entry) = self.docs.get_mut(id as usize).and_then(Option::take) else { return };
        for (f, l) in entry.lens.iter().enumerate() {
            self.total_len[f] -= u64::from(*l);
        }
        for t in &entry.terms {
            if let Some(p) = self.postings.get_mut(t) {
                p.remove(&id);
                if p.is_empty() {
                    self.postings.remove(t);
                }
            }
        }
        if let Some(h) = self.has_vec.get_mut(id as usize) {
            *h = false;
        }
        self.free.push(id);
        self.live -= 1;
    }

    /// The `k` best tools for `query` among those `visible` admits, best first. Ties are broken by
    /// name so that results are stable.
    ///
    /// A task of several steps ("find X and then save it to Y") is also searched step by step:
    /// the whole query's best hit leads, then the steps' best hits take turns, so that one step's
    /// many good matches cannot crowd out the tool another step needs.
    pub fn search(&self, query: &str, k: usize, visible: &dyn Fn(&str, &str) -> bool) -> Vec<Hit> {
        let steps = if self.plain { Vec::new() } else { steps(&self.analyzer, query) };
        if steps.len() < 2 {
            return self.search_one(query, k, visible);
        }
        let mut lists: Vec<std::vec::IntoIter<Hit>> = std::iter::once(query)
            .chain(steps.iter().copied())
            .map(|q| self.search_one(q, k, visible).into_iter())
            .collect();
        let mut out: Vec<Hit> = Vec::with_capacity(k);
        while out.len() < k {
            let mut any = false;
            for list in &mut lists {
                for hit in list.by_ref() {
                    any = true;
                    if !out.iter().any(|h| h.server == hit.server && h.name == hit.name) {
                        out.push(hit);
                        break;
                    }
                }
                if out.len() == k {
                    break;
                }
            }
            if !any {
                break;
            }
        }
        out
    }

    fn search_one(&self, query: &str, k: usize, visible: &dyn Fn(&str, &str) -> bool) -> Vec<Hit> {
        if k == 0 || self.live == 0 {
            return Vec::new();
        }
        let n = self.live as f32;
        let avg: [f32; FIELDS] = std::array::from_fn(|f| (self.total_len[f] as f32 / n).max(1.0));
        // Dense accumulators indexed by document id: cheaper than a map at every registry size
        // mcpd sees, and `touched` keeps the later passes to the documents that matched.
        let mut score = vec![0f32; self.docs.len()];
        let mut mask = vec![0u8; self.docs.len()];
        let mut touched: Vec<u32> = Vec::new();
        for (term, qw) in self.analyzer.query(query) {
            let Some(post) = self.postings.get(&term) else { continue };
            let df = post.len() as f32;
            let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
            for (&id, tf) in post {
                let Some(Some(e)) = self.docs.get(id as usize) else { continue };
                let mut w = 0.0;
                let mut m = 0u8;
                for f in 0..FIELDS {
                    if tf[f] == 0 {
                        continue;
                    }
                    let norm = 1.0 - B[f] + B[f] * e.lens[f] as f32 / avg[f];
                    let weight = if self.plain { 1.0 } else { WEIGHT[f] };
                    w += weight * f32::from(tf[f]) / norm;
                    m |= 1 << f;
                }
                let i = id as usize;
                if mask[i] == 0 {
                    touched.push(id);
                }
                score[i] += qw * idf * w / (K1 + w);
                mask[i] |= m;
            }
        }
        if let Some(q) = self.embedder.as_ref().and_then(|e| e.embed(query)) {
            return self.fused(&q, &score, &mask, touched, k, visible);
        }
        let order = |a: &u32, b: &u32| {
            score[*b as usize].total_cmp(&score[*a as usize]).then_with(|| self.key(*a).cmp(&self.key(*b)))
        };
        // Only the best few are sorted; the window widens when the filter hides too many.
        let mut want = (k * 4).max(32);
        loop {
            let whole = want >= touched.len();
            if whole {
                touched.sort_unstable_by(order);
            } else {
                touched.select_nth_unstable_by(want, order);
                touched[..want].sort_unstable_by(order);
            }
            let out = self.visible_hits(touched.iter().take(want).copied(), &score, &mask, k, visible);
            if whole || out.len() == k {
                return out;
            }
            want = want.saturating_mul(4);
        }
    }

    /// The lexical ranking (`score` over `touched`) fused with the semantic one of the same
    /// tools for the query vector `q`, by rank; the window widens like the lexical one's when
    /// the filter hides too many.
    fn fused(
        &self,
        q: &[f32],
        score: &[f32],
        mask: &[u8],
        mut touched: Vec<u32>,
        k: usize,
        visible: &dyn Fn(&str, &str) -> bool,
    ) -> Vec<Hit> {
        let dim = q.len();
        let mut sem: Vec<(u32, f32)> = touched
            .iter()
            .filter(|id| self.has_vec.get(**id as usize).copied().unwrap_or(false))
            .map(|id| {
                let i = *id as usize;
                (*id, semantic::dot(q, &self.vectors[i * dim..(i + 1) * dim]))
            })
            .collect();
        let lex_order = |a: &u32, b: &u32| {
            score[*b as usize].total_cmp(&score[*a as usize]).then_with(|| self.key(*a).cmp(&self.key(*b)))
        };
        let sem_order =
            |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then_with(|| self.key(a.0).cmp(&self.key(b.0)));
        let mut fused = vec![0f32; self.docs.len()];
        let mut want = (k * 4).max(32);
        loop {
            let lex_whole = want >= touched.len();
            if lex_whole {
                touched.sort_unstable_by(lex_order);
            } else {
                touched.select_nth_unstable_by(want, lex_order);
                touched[..want].sort_unstable_by(lex_order);
            }
            let sem_whole = want >= sem.len();
            if sem_whole {
                sem.sort_unstable_by(sem_order);
            } else {
                sem.select_nth_unstable_by(want, sem_order);
                sem[..want].sort_unstable_by(sem_order);
            }
            let mut cands: Vec<u32> = Vec::with_capacity(2 * want);
            for (rank, id) in touched.iter().take(want).enumerate() {
                fused[*id as usize] += 1.0 / (RRF_K + rank as f32 + 1.0);
                cands.push(*id);
            }
            for (rank, (id, _)) in sem.iter().take(want).enumerate() {
                let f = &mut fused[*id as usize];
                if *f == 0.0 {
                    cands.push(*id);
                }
                *f += SEMANTIC / (RRF_K + rank as f32 + 1.0);
            }
            cands.sort_unstable_by(|a, b| {
                fused[*b as usize].total_cmp(&fused[*a as usize]).then_with(|| self.key(*a).cmp(&self.key(*b)))
            });
            let out = self.visible_hits(cands.iter().copied(), &fused, mask, k, visible);
            if (lex_whole && sem_whole) || out.len() == k {
                return out;
            }
            for id in cands {
                fused[id as usize] = 0.0;
            }
            want = want.saturating_mul(4);
        }
    }

    /// The first `k` of `ids` (best first) that `visible` admits, as hits scored by `score`
    /// and naming the fields `mask` says matched.
    fn visible_hits(
        &self,
        ids: impl Iterator<Item = u32>,
        score: &[f32],
        mask: &[u8],
        k: usize,
        visible: &dyn Fn(&str, &str) -> bool,
    ) -> Vec<Hit> {
        let mut out = Vec::with_capacity(k);
        for id in ids {
            let Some(Some(e)) = self.docs.get(id as usize) else { continue };
            if !visible(&e.server, &e.name) {
                continue;
            }
            let m = mask[id as usize];
            let matched = Field::ALL.iter().enumerate().filter(|(i, _)| m & (1 << i) != 0).map(|(_, f)| *f).collect();
            out.push(Hit { server: e.server.clone(), name: e.name.clone(), score: score[id as usize], matched });
            if out.len() == k {
                break;
            }
        }
        out
    }

    fn key(&self, id: u32) -> (&str, &str) {
        match self.docs.get(id as usize) {
            Some(Some(e)) => (e.server.as_str(), e.name.as_str()),
            _ => ("", ""),
        }
    }
}

/// The steps of a task, split where its words say one thing follows another. A plain "and"
/// splits too, but only between clauses that each have two words of meaning, so "17 and 25"
/// stays whole.
fn steps<'q>(analyzer: &Analyzer, query: &'q str) -> Vec<&'q str> {
    let mut parts = vec![query];
    for sep in [" and then ", ", then ", " then ", "; ", " and "] {
        parts = parts
            .into_iter()
            .flat_map(|p| {
                let pieces: Vec<&str> = p.split(sep).collect();
                let long = pieces
                    .iter()
                    .all(|x| analyzer.terms(x).iter().filter(|t| t.chars().all(char::is_alphabetic)).count() >= 2);
                if sep == " and " && !long { vec![p] } else { pieces }
            })
            .filter(|p| !p.trim().is_empty())
            .collect();
    }
    parts
}

#[cfg(test)]
mod tests;

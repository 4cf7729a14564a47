//! Text analysis for tool search: words split on snake, kebab and camel case, stop words dropped,
//! Snowball stems, and a small thesaurus of the verbs and nouns tools are described with.

use std::collections::HashMap;

use rust_stemmers::{Algorithm, Stemmer};

/// Words that carry no meaning for choosing a tool. Kept short on purpose: a word like `get` or
/// `list` is part of many tool names and is left to the inverse document frequency to weigh.
const STOP: &[&str] = &[
    "a", "an", "the", "to", "of", "in", "on", "for", "with", "and", "or", "is", "are", "be", "been", "it", "its", "me",
    "my", "i", "you", "your", "we", "our", "us", "this", "that", "these", "those", "what", "which", "who", "how", "do",
    "does", "did", "at", "as", "by", "from", "into", "so", "then", "please", "can", "could", "would", "should", "will",
    "want", "need", "some", "any", "there", "here", "them", "their", "they", "he", "she", "him", "her", "let", "just",
    "if", "not", "no", "yet", "now", "about", "via", "e", "g", "eg", "etc", "s", "t",
];

/// Groups of words that name the same intent. A query word expands to the other members of its
/// group at a reduced weight, so "forget Bob" reaches `delete_entities` and "folder" reaches
/// `create_directory`. The groups are written as plain words and stemmed when the analyzer is built.
const SYNONYMS: &[&[&str]] = &[
    &["find", "search", "look", "lookup", "locate", "query", "discover"],
    &["remove", "delete", "drop", "erase", "forget", "clear", "purge", "discard"],
    &["create", "make", "new", "add", "insert", "setup", "define", "build"],
    &["edit", "change", "modify", "update", "alter", "replace", "patch", "revise"],
    &["read", "open", "view", "show", "display", "load", "retrieve", "pull", "contents", "content"],
    &["list", "enumerate", "all", "browse", "exist", "available"],
    &["write", "save", "store", "persist", "record", "put"],
    &["send", "post", "announce", "notify", "message", "share"],
    &["download", "fetch", "retrieve", "grab", "scrape"],
    &["run", "execute", "evaluate", "perform", "invoke"],
    &["folder", "directory", "dir", "directories"],
    &["file", "document", "doc"],
    &["repository", "repo", "project", "codebase"],
    &["history", "log", "commits", "recent"],
    &["stage", "staging", "staged", "index"],
    &["picture", "image", "photo", "screenshot", "capture", "media", "png"],
    &["web", "internet", "online", "site", "website", "url", "webpage", "page"],
    &["chat", "channel", "conversation", "thread", "slack"],
    &["bug", "issue", "ticket", "tracker"],
    &["pr", "pull"],
    &["database", "sql", "db", "table", "sqlite"],
    &["column", "schema", "structure", "describe", "field"],
    &["row", "record", "entry"],
    &["address", "location", "place", "coordinates", "latitude", "longitude", "geocode", "spot"],
    &["drive", "travel", "route", "directions", "commute", "walk"],
    &["height", "elevation", "altitude", "sea", "high"],
    &["time", "clock", "hour", "timezone", "zone", "oclock", "pm", "am"],
    &["remember", "memory", "knowledge", "graph", "entity", "entities", "fact", "facts", "observation"],
    &["person", "people", "user", "member", "colleague", "account", "profile"],
    &["emoji", "reaction", "react"],
    &["cache", "cached", "key", "value", "redis"],
    &["compress", "gzip", "zip"],
    &["rename", "move", "relocate"],
    &["size", "big", "space", "bytes"],
    &["tree", "nested", "hierarchy", "recursive"],
    &["compare", "diff", "difference", "differences", "changes"],
    &["undo", "reset", "revert", "unstage"],
    &["switch", "checkout"],
    &["merge", "land", "squash", "rebase"],
    &["copy", "fork", "clone", "duplicate"],
    &["click", "press", "tap", "button"],
    &["type", "fill", "enter", "input", "form"],
    &["hover", "mouse", "over"],
    &["select", "choose", "dropdown", "pick", "option"],
    &["javascript", "script", "js"],
    &["think", "thinking", "reason", "reflect", "step", "thought"],
    &["echo", "repeat", "back"],
    &["sum", "add", "total", "plus", "numbers"],
    &["environment", "env", "variables"],
    &["permitted", "allowed", "access", "permission"],
    &["browser", "navigate", "puppeteer"],
    &["near", "nearby", "around", "local", "businesses", "restaurants"],
    &["approve", "review"],
    &["comment", "reply", "respond", "answer"],
    &["status", "state", "checks", "ci"],
    &["slow", "long", "running", "progress"],
];

/// Weight of a thesaurus word relative to a word the query spelled out.
pub const SYNONYM_WEIGHT: f32 = 0.35;

/// Turns text into index terms. Built once; cheap to share.
pub struct Analyzer {
    stemmer: Stemmer,
    /// stem → the other stems of every group it belongs to.
    related: HashMap<String, Vec<String>>,
    stop: std::collections::HashSet<&'static str>,
    plain: bool,
}

impl Analyzer {
    /// The full analyzer: case-aware splitting, stop words, stems and the thesaurus.
    pub fn new() -> Self {
        let stemmer = Stemmer::create(Algorithm::English);
        let mut related: HashMap<String, Vec<String>> = HashMap::new();
        for group in SYNONYMS {
            let stems: Vec<String> = group.iter().map(|w| stemmer.stem(w).into_owned()).collect();
            for s in &stems {
                let entry = related.entry(s.clone()).or_default();
                for o in &stems {
                    if o != s && !entry.contains(o) {
                        entry.push(o.clone());
                    }
                }
            }
        }
        Analyzer { stemmer, related, stop: STOP.iter().copied().collect(), plain: false }
    }

    /// Plain BM25's analyzer, the baseline: lower-cased alphanumeric runs and nothing else.
    pub fn plain() -> Self {
        Analyzer {
            stemmer: Stemmer::create(Algorithm::English),
            related: HashMap::new(),
            stop: Default::default(),
            plain: true,
        }
    }

    /// The index terms of a text, in order, repeats kept (they are term frequencies).
    pub fn terms(&self, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        if self.plain {
            for w in text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
                out.push(w.to_lowercase());
            }
            return out;
        }
        for w in split_words(text) {
            if self.stop.contains(w.as_str()) {
                continue;
            }
            out.push(self.stemmer.stem(&w).into_owned());
        }
        out
    }

    /// A query's terms with their weights: each distinct word at 1.0, then its thesaurus
    /// relatives at [`SYNONYM_WEIGHT`] unless the query spelled them out too.
    pub fn query(&self, text: &str) -> Vec<(String, f32)> {
        let mut out: Vec<(String, f32)> = Vec::new();
        for t in self.terms(text) {
            if !out.iter().any(|(o, _)| *o == t) {
                out.push((t, 1.0));
            }
        }
        let spelled = out.len();
        for i in 0..spelled {
            let Some(rel) = self.related.get(&out[i].0) else { continue };
            for r in rel.clone() {
                match out.iter_mut().find(|(o, _)| *o == r) {
                    Some(_) => {}
                    None => out.push((r, SYNONYM_WEIGHT)),
                }
            }
        }
        out
    }
}

impl Default for Analyzer {
    fn default() -> Self {
        Self::new()
    }
}

/// Lower-cased words of a text, split on anything not alphanumeric and inside identifiers on case
/// changes and letter/digit boundaries: `getFileInfo` → get, file, info; `HTTPServer` → http, server;
/// `list_directory_with_sizes` → list, directory, with, sizes.
pub fn split_words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for run in text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
        let chars: Vec<char> = run.chars().collect();
        let mut start = 0;
        for i in 1..chars.len() {
            let (p, c) = (chars[i - 1], chars[i]);
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            let boundary = (p.is_lowercase() && c.is_uppercase())
                || (p.is_uppercase() && c.is_uppercase() && next_lower)
                || (p.is_alphabetic() != c.is_alphabetic());
            if boundary {
                out.push(chars[start..i].iter().collect::<String>().to_lowercase());
                start = i;
            }
        }
        out.push(chars[start..].iter().collect::<String>().to_lowercase());
    }
    out
}

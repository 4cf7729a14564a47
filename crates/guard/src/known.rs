//! The daemon's own secrets: every value its config took from `${env:}` / `${file:}` and every
//! secret-typed value, registered once per config (start and each reload) and replaced by
//! [`MARK`] in everything mcpd prints: log lines (third-party crates' messages included, by the
//! log writer), status, last errors, events, audit messages, gRPC error messages and results.
//!
//! Unlike [`crate::redact`], which recognises secrets by their shape, this knows the exact
//! values, so a token in a URL query or an argument is caught whatever it looks like.
use std::{
    borrow::Cow,
    sync::{Arc, RwLock},
};

/// What a known secret becomes.
pub const MARK: &str = "[REDACTED:config]";

static KNOWN: RwLock<Option<Arc<Vec<String>>>> = RwLock::new(None);
/// The config's values as last [`set`], and the daemon's own ([`add`]), which a reload keeps.
static SOURCES: RwLock<(Vec<String>, Vec<String>)> = RwLock::new((Vec::new(), Vec::new()));

/// Replaces the config's registered secrets (longest first, so one that contains another
/// goes whole). Secrets registered with [`add`] stay.
pub fn set(values: impl IntoIterator<Item = String>) {
    let mut sources = SOURCES.write().unwrap_or_else(|p| p.into_inner());
    sources.0 = values.into_iter().filter(|s| !s.is_empty()).collect();
    publish(&sources);
}

/// Registers one of the daemon's own secrets (the MCP endpoint's bearer token): hidden for
/// the life of the process, across reloads.
pub fn add(value: &str) {
    if value.is_empty() {
        return;
    }
    let mut sources = SOURCES.write().unwrap_or_else(|p| p.into_inner());
    sources.1.push(value.to_owned());
    publish(&sources);
}

fn publish(sources: &(Vec<String>, Vec<String>)) {
    let mut v: Vec<String> = sources.0.iter().chain(sources.1.iter()).cloned().collect();
    v.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    v.dedup();
    let mut known = KNOWN.write().unwrap_or_else(|p| p.into_inner());
    *known = (!v.is_empty()).then(|| Arc::new(v));
}

fn current() -> Option<Arc<Vec<String>>> {
    KNOWN.read().unwrap_or_else(|p| p.into_inner()).clone()
}

/// `text` with every registered secret replaced by [`MARK`] (borrowed when there is none).
pub fn scrub(text: &str) -> Cow<'_, str> {
    let Some(known) = current() else { return Cow::Borrowed(text) };
    let mut out = Cow::Borrowed(text);
    for secret in known.iter() {
        if out.contains(secret.as_str()) {
            out = Cow::Owned(out.replace(secret.as_str(), MARK));
        }
    }
    out
}

/// [`scrub`] into an owned string, counting replacements (for results' redaction counts).
pub fn scrub_counted(text: &str) -> Option<(String, usize)> {
    let known = current()?;
    let mut out: Option<String> = None;
    let mut count = 0;
    for secret in known.iter() {
        let hay = out.as_deref().unwrap_or(text);
        let n = hay.matches(secret.as_str()).count();
        if n > 0 {
            count += n;
            out = Some(hay.replace(secret.as_str(), MARK));
        }
    }
    out.map(|o| (o, count))
}

/// Replaces registered secrets in every string of a JSON value (keys untouched), in place;
/// returns how many were replaced.
pub fn scrub_json(v: &mut serde_json::Value) -> usize {
    if current().is_none() {
        return 0;
    }
    match v {
        serde_json::Value::String(s) => match scrub_counted(s) {
            Some((clean, n)) => {
                *s = clean;
                n
            }
            None => 0,
        },
        serde_json::Value::Array(items) => items.iter_mut().map(scrub_json).sum(),
        serde_json::Value::Object(map) => map.values_mut().map(scrub_json).sum(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests;

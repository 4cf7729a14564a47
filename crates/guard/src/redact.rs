//! Secret filter for tool results: replaces credentials with `[REDACTED:<kind>]` before they reach an app.
//!
//! Rules run in a fixed order, most specific first (a GitHub token inside `Bearer …` is reported as
//! `github_token`, not `bearer_token`); later rules skip text an earlier one already replaced.
//! Each rule is a regex plus an `accept` check that vetoes matches with the shape but not the
//! substance of a secret (prose such as "Bearer authentication", code such as `token = args.token`,
//! placeholders such as `${env:TOKEN}`), because a filter that mangles ordinary output gets disabled.
//!
//! Cost: the `regex` crate only has finite-automata engines, so every rule is linear in the text
//! length whatever the input; there is no size cutoff (a 4 MiB+ result is scanned in full, see the
//! `large_text_is_scanned_in_full` test), and no backtracking engine is ever used.
use std::{borrow::Cow, sync::LazyLock};

use regex::{Captures, Regex};

/// What was removed, for the audit log and the result's marker (never the secret itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redaction {
    pub kind: &'static str,
    pub count: usize,
}

/// Replaces secrets in `text` with `[REDACTED:<kind>]`; returns the new text (borrowed when nothing changed) and what was removed.
pub fn redact_text(text: &str) -> (Cow<'_, str>, Vec<Redaction>) {
    let mut found = Vec::new();
    let out = redact_into(text, &mut found);
    (out, found)
}

/// Redacts every string inside a JSON value in place (structuredContent, resource text), keys untouched.
///
/// Besides the text rules, a string stored under a key that names a secret (`{"password": "…"}`)
/// is replaced whole when it looks like a secret, since there the key is the only hint.
pub fn redact_json(v: &mut serde_json::Value) -> Vec<Redaction> {
    use serde_json::Value;
    let mut found = Vec::new();
    // Explicit stack: a hand-built value may nest deeper than the call stack allows.
    let mut stack: Vec<(Option<SecretKey>, &mut Value)> = vec![(None, v)];
    while let Some((key, v)) = stack.pop() {
        match v {
            Value::String(s) => {
                if let Cow::Owned(new) = redact_into(s, &mut found) {
                    *s = new;
                } else if let Some(key) = key
                    && !s.contains(char::is_whitespace)
                    && plausible_value(key, s, true)
                {
                    *s = marker(GENERIC);
                    add(&mut found, GENERIC, 1);
                }
            }
            Value::Array(items) => stack.extend(items.iter_mut().map(|item| (None, item))),
            Value::Object(map) => stack.extend(map.iter_mut().map(|(k, item)| (secret_key(k), item))),
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
    found
}

fn redact_into<'t>(text: &'t str, found: &mut Vec<Redaction>) -> Cow<'t, str> {
    let mut cur = Cow::Borrowed(text);
    for rule in RULES.iter() {
        if let Some((next, count)) = rule.apply(&cur) {
            add(found, rule.kind, count);
            cur = Cow::Owned(next);
        }
    }
    cur
}

fn add(found: &mut Vec<Redaction>, kind: &'static str, count: usize) {
    match found.iter_mut().find(|r| r.kind == kind) {
        Some(r) => r.count += count,
        None => found.push(Redaction { kind, count }),
    }
}

fn marker(kind: &str) -> String {
    format!("[REDACTED:{kind}]")
}

const MARKER_PREFIX: &str = "[REDACTED:";
const GENERIC: &str = "secret_value";

struct Rule {
    kind: &'static str,
    re: Regex,
    /// Vetoes a match; the replaced span is the `secret` group, or the whole match without one.
    accept: fn(&Captures<'_>) -> bool,
}

impl Rule {
    fn new(kind: &'static str, pattern: &str, accept: fn(&Captures<'_>) -> bool) -> Rule {
        // The patterns are constants of this file; the unit tests compile every one of them.
        let re = Regex::new(pattern).unwrap_or_else(|e| panic!("redact rule {kind}: {e}"));
        Rule { kind, re, accept }
    }

    /// The rewritten text and how many secrets it replaced, or `None` when nothing was accepted.
    fn apply(&self, text: &str) -> Option<(String, usize)> {
        let mut out = String::new();
        let mut last = 0;
        let mut count = 0;
        for caps in self.re.captures_iter(text) {
            let Some(span) = caps.name("secret").or_else(|| caps.get(0)) else { continue };
            if !(self.accept)(&caps) {
                continue;
            }
            if count == 0 {
                out.reserve(text.len());
            }
            out.push_str(&text[last..span.start()]);
            out.push_str(MARKER_PREFIX);
            out.push_str(self.kind);
            out.push(']');
            last = span.end();
            count += 1;
        }
        if count == 0 {
            return None;
        }
        out.push_str(&text[last..]);
        Some((out, count))
    }
}

/// Key names that announce a secret; a key must end with one of them (plus an optional suffix
/// such as `_key` or `Hash`), so `token_count`, `max_tokens` and `password_reset_url` do not qualify.
const SECRET_WORD: &str = r"passw(?:or)?d|passphrase|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|client[_-]?secret|auth|credentials?";
const KEY: &str = r"[A-Za-z0-9_.-]*(?P<word>WORD)(?:[_.-]?(?:key|token|value|string|hash))?";
const PEM_LABEL: &str = r"(?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?";
/// ASCII word boundary: Unicode `\b` would push the lazy DFA off non-ASCII text onto a slower engine.
const B: &str = r"(?-u:\b)";

static RULES: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    // In these patterns `\B` stands for the ASCII word boundary `B` (no rule needs a non-boundary).
    let p =
        |s: &str| s.replace(r"\B", B).replace("PEM", PEM_LABEL).replace("KEYNAME", &KEY.replace("WORD", SECRET_WORD));
    let any = |_: &Captures<'_>| true;
    vec![
        // Whole block; a truncated one (no END) still loses its header and base64 lines.
        Rule::new(
            "private_key",
            &p(
                r"-----BEGIN PEM-----(?:(?s:.*?)-----END PEM-----|(?:\r?\n[A-Za-z][A-Za-z0-9-]*:[^\r\n]*)*(?:\r?\n[A-Za-z0-9+/=]{16,})*)",
            ),
            any,
        ),
        Rule::new("aws_access_key_id", &p(r"\B(?:AKIA|ASIA)[A-Z0-9]{16}\B"), any),
        Rule::new(
            "aws_secret_access_key",
            &p(
                r#"(?i:(?:aws_?)?secret_?access_?key)\\?["']?[ \t]*(?::=|=>|=|:)[ \t]*\\?["']?(?P<secret>[A-Za-z0-9/+=]{40,})"#,
            ),
            |c| has_digit(&c["secret"]),
        ),
        Rule::new("github_token", &p(r"\B(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\B"), any),
        Rule::new("gitlab_token", &p(r"\Bglpat-[A-Za-z0-9_-]{20,}"), any),
        Rule::new("slack_webhook", r"https?://hooks\.slack\.com/services/(?P<secret>[A-Za-z0-9_/-]+)", any),
        Rule::new("slack_token", &p(r"\Bxox[abprs]-[A-Za-z0-9-]{10,}"), any),
        // Before OpenAI: `sk-ant-…` also has OpenAI's shape.
        Rule::new("anthropic_key", &p(r"\Bsk-ant-[A-Za-z0-9_-]{20,}"), any),
        Rule::new("openai_key", &p(r"\Bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}"), |c| {
            // `sk-` is a weak prefix (slugs, CSS classes); real keys are random, so they mix in digits.
            has_digit(&c[0][3..])
        }),
        Rule::new("google_api_key", &p(r"\BAIza[0-9A-Za-z_-]{35}"), any),
        Rule::new("stripe_key", &p(r"\B(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{10,}"), any),
        Rule::new("twilio_key", &p(r"\BSK[0-9a-fA-F]{32}\B"), any),
        Rule::new("sendgrid_key", &p(r"\BSG\.[A-Za-z0-9_-]{16,32}\.[A-Za-z0-9_-]{16,64}"), any),
        Rule::new("npm_token", &p(r"\Bnpm_[A-Za-z0-9]{36}\B"), any),
        Rule::new("pypi_token", &p(r"\Bpypi-AgEI[A-Za-z0-9_-]{50,}"), any),
        Rule::new("jwt", &p(r"\BeyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"), any),
        // Keeps scheme and user: `postgres://app:[REDACTED:url_password]@db`.
        Rule::new(
            "url_password",
            &p(r#"(?i)\B[a-z][a-z0-9+.-]*://[^\s:/?#@"'<>\[\]]+:(?P<secret>[^\s/?#@"'<>]+)@"#),
            |c| !is_placeholder(&c["secret"]),
        ),
        // Keeps the word Bearer; "Bearer authentication" is prose, a token has digits or mixed case.
        Rule::new("bearer_token", &p(r"(?i)\Bbearer[ \t]+(?P<secret>[A-Za-z0-9._~+/-]{8,}=*)"), |c| {
            let t = &c["secret"];
            has_digit(t)
                || (t.len() >= 20
                    && t.bytes().any(|b| b.is_ascii_uppercase())
                    && t.bytes().any(|b| b.is_ascii_lowercase()))
        }),
        // "Basic usage" is prose; real credentials decode to `user:password`.
        Rule::new("basic_auth", &p(r"(?i)\Bbasic[ \t]+(?P<secret>[A-Za-z0-9+/]{4,}={0,2})"), |c| {
            is_basic_credential(&c["secret"])
        }),
        // The value may neither end in `:` nor be followed by one: in `secret: password: …` the
        // first pair is a label, and consuming `password:` would hide the real pair after it.
        Rule::new(
            "secret_value",
            &p(
                r#"(?i)(?P<key>KEYNAME)\\?["']?(?P<sep>[ \t]*(?::=|=>|=|:)[ \t]*)(?P<open>\\?["']?)(?P<secret>[^\s"'\\,;&]*[^\s"'\\,;&:])(?:[\s"'\\,;&]|$)"#,
            ),
            |c| {
                let key = &c["key"];
                // Assignment context (quoted value, tight `KEY=value`, an env-style upper-case key) is
                // strong evidence; `key: value` and `key = value` also occur in prose and code.
                let strong = !c["open"].is_empty()
                    || &c["sep"] == "="
                    || (key.bytes().any(|b| b.is_ascii_uppercase()) && !key.bytes().any(|b| b.is_ascii_lowercase()));
                plausible_value(SecretKey::of_word(&c["word"]), &c["secret"], strong)
            },
        ),
    ]
});

/// Anchored form of `KEY`, for object keys in [`redact_json`].
static KEY_ONLY: LazyLock<Regex> = LazyLock::new(|| {
    let pattern = format!("(?i)^{}$", KEY.replace("WORD", SECRET_WORD));
    Regex::new(&pattern).unwrap_or_else(|e| panic!("redact key pattern: {e}"))
});

/// A key that names a secret; `counts` when its word also names quantities ("token: 128000").
#[derive(Clone, Copy)]
struct SecretKey {
    counts: bool,
}

impl SecretKey {
    fn of_word(word: &str) -> SecretKey {
        let w = word.to_ascii_lowercase();
        SecretKey { counts: w == "token" || w == "auth" || w.starts_with("credential") }
    }
}

fn secret_key(key: &str) -> Option<SecretKey> {
    KEY_ONLY.captures(key).map(|c| SecretKey::of_word(&c["word"]))
}

/// Values that a secret-named key often holds without being a secret.
#[rustfmt::skip]
const STOP_WORDS: &[&str] = &[
    "absent", "basic", "bearer", "boolean", "changed", "default", "digest", "disabled", "enabled", "example", "expired",
    "hidden", "integer", "invalid", "masked", "missing", "notset", "not_set", "number", "oauth", "oauth2", "object",
    "omitted", "optional", "present", "provided", "redacted", "required", "revoked", "string", "undefined", "unknown",
    "unset", "updated",
];

/// Fragments that make an identifier-shaped value a variable name (`token = args.token`).
const NAME_HINTS: &[&str] = &["pass", "pwd", "pw", "secret", "token", "key", "auth", "cred"];

/// Whether `value`, assigned to a secret-named key, looks like a secret rather than a word,
/// a path, code or a placeholder. `strong`: the context is clearly an assignment.
fn plausible_value(key: SecretKey, value: &str, strong: bool) -> bool {
    if value.chars().count() < 6 || is_placeholder(value) {
        return false;
    }
    let lower = value.to_ascii_lowercase();
    if STOP_WORDS.contains(&lower.as_str()) {
        return false;
    }
    // Paths: `PWD=/home/me`, `token_file: ./tok`.
    if ["/", "~/", "./", "../"].iter().any(|p| value.starts_with(p)) {
        return false;
    }
    // Code: calls, indexing, generics, blocks.
    if value.contains(['(', ')', '[', ']', '<', '>', '{', '}']) {
        return false;
    }
    let identifier = value.bytes().all(|b| b.is_ascii_alphabetic() || b == b'_' || b == b'.');
    if identifier && NAME_HINTS.iter().any(|h| lower.contains(h)) {
        return false;
    }
    if key.counts && value.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    // Loose context: require what random secrets have and words lack, a digit or a symbol.
    strong
        || value
            .bytes()
            .any(|b| b.is_ascii_digit() || !(b.is_ascii_alphabetic() || b == b'_' || b == b'.' || b == b'-'))
}

/// References and masks rather than values: `${env:X}`, `<your-token>`, `{{ secrets.X }}`,
/// `%(pw)s`, `****`, `xxxxxx`, or an earlier rule's marker.
fn is_placeholder(value: &str) -> bool {
    let mut chars = value.chars();
    let first = chars.next();
    value.starts_with(MARKER_PREFIX)
        || matches!(first, Some('$' | '<' | '{' | '%' | '*'))
        || first.is_some_and(|f| chars.all(|c| c == f))
}

fn has_digit(s: &str) -> bool {
    s.bytes().any(|b| b.is_ascii_digit())
}

/// `user:password` in base64, printable, as HTTP Basic credentials are.
fn is_basic_credential(b64: &str) -> bool {
    if b64.len() > 1024 {
        return false;
    }
    let Some(bytes) = decode_base64(b64) else { return false };
    let Ok(text) = std::str::from_utf8(&bytes) else { return false };
    text.find(':').is_some_and(|i| i > 0 && i + 1 < text.len()) && !text.chars().any(char::is_control)
}

/// Standard base64 with optional padding; a dependency for ten lines is not worth it.
fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    if s.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for b in s.bytes() {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests;

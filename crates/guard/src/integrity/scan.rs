//! Scans tool, prompt and resource-template definitions for prompt injection, hidden text and tool
//! shadowing, and produces the sanitised copy that apps and LLMs see (pure code, no I/O).
//!
//! Tool descriptions and schemas go verbatim into an LLM's context, so a server can put
//! instructions there (tool poisoning), hide them from the human who reviews the tool (invisible,
//! bidi and tag characters, encodings, homoglyphs) or tell the model how to treat other servers'
//! tools (shadowing). DESIGN §5: a finding blocks automatic trust; apps and LLMs get `sanitized`
//! while the caller keeps the raw definition for audit.
//!
//! Every string, object keys included, goes through one pipeline:
//! 1. hidden characters are stripped and reported (the sanitised text is this step's output), and
//!    what they smuggle (ASCII spelled in tag characters, bytes in variation selectors, text under
//!    a right-to-left override) is decoded and scanned too;
//! 2. the first 64 KiB are decoded (HTML entities, %-escapes, `\x`/`\u` escapes; up to three
//!    nested layers), compatibility-normalised (NFKC mappings, combining marks dropped) and
//!    homoglyph-folded; base64 runs that decode to readable text are scanned as well;
//! 3. the injection rules (compiled once; one automaton for them all) run over the result. A rule
//!    that matches only after a step of 1–2 was hidden on purpose, so its severity goes up one
//!    step and the hiding technique is reported as a finding of its own.
//!
//! Rules need the structure of an injection (verb plus object, tag syntax, a user-directed
//! negation), never single words, so that ordinary descriptions ("Ignore case when matching",
//! "Send a message to a Slack channel") stay clean; `tests/integrity-corpus/` pins both sides.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fmt::{self, Write as _};
use std::sync::LazyLock;

use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};
use serde_json::{Map, Value};
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

#[cfg(test)]
mod tests;

/// How bad a finding is. Ordered, so callers can compare against a threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Worth showing; not a reason on its own to distrust the tool.
    Low,
    /// Suspicious structure (hidden characters, a sensitive path, coercion).
    Medium,
    /// An injection pattern in plain view.
    High,
    /// An injection pattern that was also hidden (encoded, invisible, homoglyphs, smuggled).
    Critical,
}

impl Severity {
    /// The lowercase name used in output and config ("low" … "critical").
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// One step worse: used when a pattern only shows up after undoing a hiding technique.
    fn bump(self) -> Self {
        match self {
            Severity::Low => Severity::Medium,
            Severity::Medium => Severity::High,
            Severity::High | Severity::Critical => Severity::Critical,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The stable `kind` strings of [`Finding`]s (callers may match on them).
pub mod kind {
    /// Zero-width, variation-selector, filler and other invisible (category Cf) characters.
    pub const INVISIBLE_CHARS: &str = "invisible-chars";
    /// Bidirectional embedding/override/isolate controls and stray direction marks.
    pub const BIDI_CONTROLS: &str = "bidi-controls";
    /// Unicode tag characters (U+E0000..U+E007F) outside emoji flag sequences.
    pub const TAG_SMUGGLING: &str = "tag-smuggling";
    /// C0/C1 control characters other than `\n` and `\t` (ANSI escapes and the like).
    pub const CONTROL_CHARS: &str = "control-chars";
    /// Latin text written with Cyrillic/Greek/Armenian look-alikes or compatibility forms.
    pub const HOMOGLYPHS: &str = "homoglyphs";
    /// Text hidden in HTML entities, %-escapes, `\x`/`\u` escapes or base64.
    pub const ENCODED_PAYLOAD: &str = "encoded-payload";
    /// "Ignore previous instructions" and friends.
    pub const INSTRUCTION_OVERRIDE: &str = "instruction-override";
    /// "You are now …", fake chat turns, chat-template tokens.
    pub const ROLE_HIJACK: &str = "role-hijack";
    /// Sensitive paths, "send … to <url>", "include the contents of … in".
    pub const EXFILTRATION: &str = "exfiltration";
    /// "Do not tell the user", "without the user knowing".
    pub const SECRECY: &str = "secrecy";
    /// `<IMPORTANT>`, `<SYSTEM>`, HTML comments, system fences and headings, delimiter walls.
    pub const HIDDEN_TAG: &str = "hidden-tag";
    /// Text about how to use other tools, or naming other servers' tools.
    pub const SHADOWING: &str = "shadowing";
    /// "Always call this tool first", "before using any other tool, call …".
    pub const TOOL_COERCION: &str = "tool-coercion";
    /// A string longer than the scan bound; only its start was matched.
    pub const OVERSIZE: &str = "oversize";
    /// More findings than kept; the least severe were dropped.
    pub const TOO_MANY_FINDINGS: &str = "too-many-findings";
}

/// One suspicious thing in a definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    /// One of the [`kind`] constants.
    pub kind: &'static str,
    /// JSON-pointer-like path without the leading slash (`description`,
    /// `inputSchema/properties/path/description`; a property key's own path for the key).
    pub location: String,
    /// Short excerpt, safe to print: hidden and control characters escaped, at most ~120 chars.
    pub excerpt: String,
}

/// The result of scanning one definition.
#[derive(Debug, Clone)]
pub struct Scan {
    /// Deduplicated per (location, kind), keeping the worst; in order of first appearance.
    pub findings: Vec<Finding>,
    /// The definition with every string (keys included) passed through [`sanitize_text`].
    pub sanitized: Value,
}

impl Scan {
    /// The worst severity found, if anything was found.
    pub fn max_severity(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }
}

/// Names of other servers' tools, prepared once for many [`scan_definition_with`] calls
/// (building it costs O(names); [`scan_definition`] builds one per call).
#[derive(Debug, Clone, Default)]
pub struct OtherTools {
    /// Lowercased; qualified names (`server.tool`) and identifier-like bare names only.
    names: HashSet<String>,
}

impl OtherTools {
    /// Keeps qualified names and bare names that look like identifiers (`send_message`,
    /// `list-chats`, `createIssue`); plain words like `search` or `fetch` are too common in prose
    /// to mean a reference to another server's tool.
    pub fn new(names: &[String]) -> Self {
        let names = names.iter().filter(|n| is_identifier_like(n)).map(|n| n.to_ascii_lowercase()).collect();
        Self { names }
    }
}

/// Scans a whole tool (or prompt / resource template) definition as JSON. `others` are the qualified
/// names (`server.tool`) and bare names of tools of OTHER servers, for shadowing detection.
pub fn scan_definition(def: &Value, others: &[String]) -> Scan {
    scan_definition_with(def, &OtherTools::new(others))
}

/// [`scan_definition`] with the other servers' tool names prepared once.
pub fn scan_definition_with(def: &Value, others: &OtherTools) -> Scan {
    // A definition naming itself is normal; only other tools' names are shadowing.
    let own_name = def.get("name").and_then(Value::as_str).map(str::to_ascii_lowercase);
    let mut scanner = Scanner { findings: Vec::new(), index: HashMap::new(), others, own_name };
    let mut path = String::new();
    let sanitized = scanner.walk(def, &mut path);
    Scan { findings: scanner.finish(), sanitized }
}

/// The text a terminal or an LLM may see: invisible/bidi/tag/control characters removed.
///
/// Kept on purpose, because they are part of how legitimate text is spelled: `\n`, `\t`, `\r`
/// before `\n`, ZWJ/ZWNJ between two non-Latin characters (emoji sequences, Indic and Arabic
/// scripts), direction marks in text that has right-to-left letters, tag characters inside an
/// emoji flag sequence, and a single variation selector after a visible non-ASCII character
/// (or VS15/VS16 after a keycap digit).
pub fn sanitize_text(s: &str) -> String {
    strip_hidden(s).clean.into_owned()
}

/// Bytes of one string that are pattern-matched; the rest is only sanitised.
const MAX_SCAN_BYTES: usize = 64 * 1024;
/// Findings kept per definition (most severe first when over).
const MAX_FINDINGS: usize = 256;
/// Characters of text shown in an excerpt.
const EXCERPT_CHARS: usize = 120;
/// Characters shown before the match in an excerpt.
const EXCERPT_LEAD: usize = 30;
/// Nested encoding layers undone (`&amp;lt;` is two).
const DECODE_ROUNDS: usize = 3;
/// Base64 runs decoded per string (bounds the work on hostile input).
const MAX_BASE64_RUNS: usize = 16;

// ---------------------------------------------------------------------------------------------
// Walking the definition
// ---------------------------------------------------------------------------------------------

/// State of one [`scan_definition_with`] call.
struct Scanner<'o> {
    findings: Vec<Finding>,
    /// (location, kind) → index in `findings`, for dedup.
    index: HashMap<(String, &'static str), usize>,
    others: &'o OtherTools,
    own_name: Option<String>,
}

impl Scanner<'_> {
    /// Scans every string and key under `v` and returns its sanitised copy.
    fn walk(&mut self, v: &Value, path: &mut String) -> Value {
        match v {
            Value::String(s) => Value::String(self.scan_string(s, path, false)),
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let len = path.len();
                    push_segment(path, &i.to_string());
                    out.push(self.walk(item, path));
                    path.truncate(len);
                }
                Value::Array(out)
            }
            Value::Object(map) => {
                let mut out = Map::with_capacity(map.len());
                for (key, item) in map {
                    let len = path.len();
                    push_segment(path, key);
                    let clean_key = self.scan_string(key, path, true);
                    let clean_item = self.walk(item, path);
                    path.truncate(len);
                    // Two keys equal once sanitised: keep the first (the scan reported both).
                    out.entry(clean_key).or_insert(clean_item);
                }
                Value::Object(out)
            }
            other => other.clone(),
        }
    }

    /// Records a finding, keeping only the worst per (location, kind).
    fn push(&mut self, severity: Severity, kind: &'static str, location: &str, excerpt: String) {
        let location = location.strip_prefix('/').unwrap_or(location);
        match self.index.get(&(location.to_owned(), kind)) {
            Some(&i) => {
                if let Some(old) = self.findings.get_mut(i)
                    && severity > old.severity
                {
                    old.severity = severity;
                    old.excerpt = excerpt;
                }
            }
            None => {
                self.index.insert((location.to_owned(), kind), self.findings.len());
                self.findings.push(Finding { severity, kind, location: location.to_owned(), excerpt });
            }
        }
    }

    fn finish(mut self) -> Vec<Finding> {
        if self.findings.len() > MAX_FINDINGS {
            let total = self.findings.len();
            // Stable: equally severe findings stay in document order.
            self.findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
            self.findings.truncate(MAX_FINDINGS);
            self.findings.push(Finding {
                severity: Severity::Low,
                kind: kind::TOO_MANY_FINDINGS,
                location: String::new(),
                excerpt: format!("{total} findings; the {MAX_FINDINGS} most severe are kept"),
            });
        }
        self.findings
    }

    /// Scans one string (a value, or a key when `is_key`) and returns its sanitised form.
    fn scan_string(&mut self, s: &str, loc: &str, is_key: bool) -> String {
        let stripped = strip_hidden(s);
        self.report_hidden(s, &stripped, loc);

        let raw = bound(s);
        if raw.len() < s.len() {
            self.push(
                Severity::Low,
                kind::OVERSIZE,
                loc,
                format!("{} bytes; only the first {} KiB were scanned", s.len(), MAX_SCAN_BYTES / 1024),
            );
        }
        let plain = bound(&stripped.clean);
        self.scan_layers(raw, plain, loc);

        // Parameter names hide sentences as identifiers (`ignore_previous_instructions`).
        if is_key && let Some(spaced) = identifier_words(plain) {
            self.scan_layers(&spaced, &spaced, loc);
        }
        if !stripped.tag_text.is_empty() {
            self.scan_payload(bound(&stripped.tag_text), loc, "tag characters", kind::TAG_SMUGGLING);
        }
        if !stripped.vs_bytes.is_empty() {
            let text = String::from_utf8_lossy(&stripped.vs_bytes);
            self.scan_payload(bound(&text), loc, "variation selectors", kind::INVISIBLE_CHARS);
        }
        if !stripped.rtl_text.is_empty() {
            let shown = bound(&stripped.rtl_text);
            self.scan_payload(shown, loc, "right-to-left override", kind::BIDI_CONTROLS);
        }
        stripped.clean.into_owned()
    }

    fn report_hidden(&mut self, s: &str, stripped: &Stripped<'_>, loc: &str) {
        for hit in &stripped.found {
            let (kind, severity) = hit.class.finding();
            let excerpt = match hit.class {
                Hidden::Tag if !stripped.tag_text.is_empty() => {
                    format!("{} tag characters spell: {}", hit.count, excerpt(&stripped.tag_text, 0))
                }
                _ => format!("{} × U+{:04X}: {}", hit.count, hit.first_char as u32, excerpt(s, hit.first)),
            };
            self.push(severity, kind, loc, excerpt);
        }
    }

    /// Matches the rules against the normalised `plain` text; `raw` is the text before hidden
    /// characters were stripped, used to tell which hiding step a match depended on.
    fn scan_layers(&mut self, raw: &str, plain: &str, loc: &str) {
        let decoded = decode_layers(plain);
        let decoded = restrip(decoded);
        let norm = fold(&decoded);
        let rules = &*RULES;
        let hits = rules.hits(&norm);
        if hits != 0 {
            let raw_hits = if raw == norm.as_ref() { None } else { Some(rules.hits(raw)) };
            let mut plain_hits: Option<u128> = None;
            let mut decoded_hits: Option<u128> = None;
            for i in bits(hits) {
                let hiding = match raw_hits {
                    None => Hiding::None,
                    Some(r) if r & (1 << i) != 0 => Hiding::None,
                    Some(_) => {
                        let in_plain =
                            plain != raw && *plain_hits.get_or_insert_with(|| rules.hits(plain)) & (1 << i) != 0;
                        let in_decoded = !in_plain
                            && decoded.as_ref() != plain
                            && *decoded_hits.get_or_insert_with(|| rules.hits(&decoded)) & (1 << i) != 0;
                        if in_plain {
                            Hiding::Invisible
                        } else if in_decoded {
                            Hiding::Encoded
                        } else {
                            Hiding::Homoglyph
                        }
                    }
                };
                let Some((m, &(rule_kind, severity))) = rules.find(i, &norm) else { continue };
                let severity = if hiding == Hiding::None { severity } else { severity.bump() };
                self.push(severity, rule_kind, loc, excerpt(&norm, m.start()));
                let hiding_severity = hiding_severity(severity);
                match hiding {
                    Hiding::None => {}
                    Hiding::Invisible => {
                        // The injection was split by invisible characters: escalate that finding.
                        let at = raw.find(|c: char| hidden_class(c).is_some()).unwrap_or(0);
                        let hidden_kind = raw[at..]
                            .chars()
                            .next()
                            .and_then(hidden_class)
                            .map_or(kind::INVISIBLE_CHARS, |h| h.finding().0);
                        let shown =
                            format!("splits \"{}\": {}", excerpt_of(&norm, m.start(), m.end()), excerpt(raw, at));
                        self.push(hiding_severity, hidden_kind, loc, shown);
                    }
                    Hiding::Encoded => {
                        let at = plain.find(['&', '%', '\\']).unwrap_or(0);
                        self.push(hiding_severity, kind::ENCODED_PAYLOAD, loc, excerpt(plain, at));
                    }
                    Hiding::Homoglyph => {
                        let at = plain.find(|c: char| !c.is_ascii()).unwrap_or(0);
                        self.push(hiding_severity, kind::HOMOGLYPHS, loc, excerpt(plain, at));
                    }
                }
            }
        }
        if !plain.is_ascii()
            && let Some(at) = lookalike_word(plain)
        {
            self.push(Severity::Medium, kind::HOMOGLYPHS, loc, excerpt(plain, at));
        }
        self.scan_base64(&decoded, loc);
        self.scan_names(&norm, loc);
    }

    /// Scans text that was hidden from view (smuggled or encoded): every match is one step worse,
    /// and the hiding technique is reported as `hiding_kind` too. True if a rule matched.
    fn scan_payload(&mut self, text: &str, loc: &str, label: &str, hiding_kind: &'static str) -> bool {
        let stripped = strip_hidden(text);
        let decoded = restrip(decode_layers(&stripped.clean));
        let norm = fold(&decoded);
        let rules = &*RULES;
        let mut worst = None;
        for i in bits(rules.hits(&norm)) {
            let Some((m, &(rule_kind, severity))) = rules.find(i, &norm) else { continue };
            worst = worst.max(Some(severity.bump()));
            self.push(severity.bump(), rule_kind, loc, format!("[{label}] {}", excerpt(&norm, m.start())));
        }
        if let Some(worst) = worst {
            self.push(hiding_severity(worst), hiding_kind, loc, format!("[{label}] {}", excerpt(&norm, 0)));
        }
        worst.is_some()
    }

    /// Decodes base64 runs that turn out to be readable text and scans that text.
    fn scan_base64(&mut self, text: &str, loc: &str) {
        if text.len() < 16 {
            return;
        }
        for m in BASE64_RUN.find_iter(text).take(MAX_BASE64_RUNS) {
            let Some(decoded) = decode_base64(m.as_str()) else { continue };
            let matched = self.scan_payload(bound(&decoded), loc, "base64", kind::ENCODED_PAYLOAD);
            // Readable prose in base64 is odd even without a known pattern: an LLM decodes it.
            if !matched && decoded.split_whitespace().count() >= 4 {
                self.push(Severity::Low, kind::ENCODED_PAYLOAD, loc, format!("[base64] {}", excerpt(&decoded, 0)));
            }
        }
    }

    /// Reports other servers' tool names mentioned in this string (tool shadowing).
    fn scan_names(&mut self, norm: &str, loc: &str) {
        if self.others.names.is_empty() {
            return;
        }
        let mut directive: Option<bool> = None;
        for (start, token) in identifier_tokens(norm) {
            let lower = token.to_ascii_lowercase();
            if !self.others.names.contains(&lower) || self.own_name.as_deref() == Some(lower.as_str()) {
                continue;
            }
            let directs = *directive.get_or_insert_with(|| DIRECTIVE.is_match(norm));
            let qualified = lower.contains('.');
            let severity = match (qualified, directs) {
                (true, true) => Severity::High,
                (true, false) | (false, true) => Severity::Medium,
                (false, false) => Severity::Low,
            };
            self.push(severity, kind::SHADOWING, loc, format!("names another server's tool: {}", excerpt(norm, start)));
        }
    }
}

/// Severity of the hiding technique behind a match of (bumped) `severity`: hiding an injection
/// is High; hiding a mere mention (a Low rule, bumped to Medium) stays Medium.
fn hiding_severity(severity: Severity) -> Severity {
    if severity >= Severity::High { Severity::High } else { Severity::Medium }
}

/// Which hiding step a rule match depended on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hiding {
    None,
    Invisible,
    Encoded,
    Homoglyph,
}

/// Appends one JSON-pointer segment (`~` → `~0`, `/` → `~1`, hidden characters escaped so the
/// location is safe to print; a key longer than an excerpt is cut, so locations stay short).
fn push_segment(path: &mut String, segment: &str) {
    path.push('/');
    for (n, c) in segment.chars().enumerate() {
        if n == EXCERPT_CHARS {
            path.push('…');
            break;
        }
        match c {
            '~' => path.push_str("~0"),
            '/' => path.push_str("~1"),
            c => escape_char(c, path),
        }
    }
}

/// The first `MAX_SCAN_BYTES` of `s`, cut at a character boundary.
fn bound(s: &str) -> &str {
    if s.len() <= MAX_SCAN_BYTES {
        return s;
    }
    let mut end = MAX_SCAN_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

// ---------------------------------------------------------------------------------------------
// Hidden characters
// ---------------------------------------------------------------------------------------------

/// Classes of characters a reader cannot see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hidden {
    /// C0/C1 controls except `\n` and `\t`.
    Control,
    /// U+200B..U+200D, U+2060..U+2064, U+FEFF.
    ZeroWidth,
    /// U+00AD: invisible unless a line breaks there; mostly a copy-paste artefact.
    SoftHyphen,
    /// Other format characters (general category Cf).
    Format,
    /// Hangul fillers, combining grapheme joiner, Khmer inherent vowels: blank "letters".
    Filler,
    /// U+FE00..U+FE0F, U+E0100..U+E01EF, Mongolian free variation selectors.
    VariationSelector,
    /// Embeddings, isolates, pop, and direction marks.
    Bidi,
    /// U+202D/U+202E: display order differs from logical order (Trojan Source).
    BidiOverride,
    /// U+E0000..U+E007F.
    Tag,
}

impl Hidden {
    fn finding(self) -> (&'static str, Severity) {
        match self {
            Hidden::Control => (kind::CONTROL_CHARS, Severity::Medium),
            Hidden::ZeroWidth | Hidden::Format | Hidden::Filler => (kind::INVISIBLE_CHARS, Severity::Medium),
            Hidden::SoftHyphen => (kind::INVISIBLE_CHARS, Severity::Low),
            Hidden::VariationSelector => (kind::INVISIBLE_CHARS, Severity::High),
            Hidden::Bidi => (kind::BIDI_CONTROLS, Severity::Medium),
            Hidden::BidiOverride => (kind::BIDI_CONTROLS, Severity::High),
            Hidden::Tag => (kind::TAG_SMUGGLING, Severity::High),
        }
    }
}

fn hidden_class(c: char) -> Option<Hidden> {
    Some(match c {
        '\n' | '\t' => return None,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' => Hidden::Control,
        '\u{200b}'..='\u{200d}' | '\u{2060}'..='\u{2064}' | '\u{feff}' => Hidden::ZeroWidth,
        '\u{ad}' => Hidden::SoftHyphen,
        '\u{202d}' | '\u{202e}' => Hidden::BidiOverride,
        '\u{200e}' | '\u{200f}' | '\u{61c}' | '\u{202a}'..='\u{202c}' | '\u{2066}'..='\u{2069}' => Hidden::Bidi,
        '\u{e0000}'..='\u{e007f}' => Hidden::Tag,
        '\u{fe00}'..='\u{fe0f}' | '\u{e0100}'..='\u{e01ef}' | '\u{180b}'..='\u{180d}' | '\u{180f}' => {
            Hidden::VariationSelector
        }
        '\u{115f}' | '\u{1160}' | '\u{3164}' | '\u{ffa0}' | '\u{34f}' | '\u{17b4}' | '\u{17b5}' => Hidden::Filler,
        // The rest of general category Cf (Unicode 16); a test checks this against regex's \p{Cf}.
        '\u{600}'..='\u{605}'
        | '\u{6dd}'
        | '\u{70f}'
        | '\u{890}'..='\u{891}'
        | '\u{8e2}'
        | '\u{180e}'
        | '\u{206a}'..='\u{206f}'
        | '\u{fff9}'..='\u{fffb}'
        | '\u{110bd}'
        | '\u{110cd}'
        | '\u{13430}'..='\u{1343f}'
        | '\u{1bca0}'..='\u{1bca3}'
        | '\u{1d173}'..='\u{1d17a}' => Hidden::Format,
        _ => return None,
    })
}

/// First occurrence and count of one class of hidden character in a string.
#[derive(Debug)]
struct HiddenHit {
    class: Hidden,
    /// Byte offset of the first occurrence.
    first: usize,
    first_char: char,
    count: usize,
}

/// A string with its hidden characters removed, and what they were.
#[derive(Debug)]
struct Stripped<'a> {
    clean: Cow<'a, str>,
    found: Vec<HiddenHit>,
    /// ASCII spelled by tag characters.
    tag_text: String,
    /// Bytes encoded by variation selectors (the "emoji smuggling" channel).
    vs_bytes: Vec<u8>,
    /// Text under U+202E, in the order it is displayed.
    rtl_text: String,
}

fn strip_hidden(s: &str) -> Stripped<'_> {
    let mut st = Stripped {
        clean: Cow::Borrowed(s),
        found: Vec::new(),
        tag_text: String::new(),
        vs_bytes: Vec::new(),
        rtl_text: String::new(),
    };
    // Fast path: printable ASCII (almost every real description) has nothing to strip.
    if s.bytes().all(|b| matches!(b, b' '..=b'~' | b'\n' | b'\t')) {
        return st;
    }
    let chars: Vec<(usize, char)> = s.char_indices().collect();
    let rtl_context = chars.iter().any(|&(_, c)| is_rtl_letter(c));
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while let Some(&(off, c)) = chars.get(i) {
        let Some(class) = hidden_class(c) else {
            out.push(c);
            i += 1;
            continue;
        };
        // What precedes in the output, not the input: a stripped neighbour must not license a
        // kept joiner or selector (and sanitising twice must change nothing).
        let prev = out.chars().next_back();
        let next = chars.get(i + 1).map(|&(_, c)| c);
        match class {
            Hidden::Control if c == '\r' && next == Some('\n') => out.push(c),
            Hidden::ZeroWidth if matches!(c, '\u{200c}' | '\u{200d}') && joins_script(prev, next) => out.push(c),
            Hidden::Bidi if matches!(c, '\u{200e}' | '\u{200f}' | '\u{61c}') && rtl_context => out.push(c),
            Hidden::Tag => {
                let end = run_end(&chars, i, |c| hidden_class(c) == Some(Hidden::Tag));
                let run = &chars[i..end];
                if prev == Some('\u{1f3f4}') && is_flag_tags(run) {
                    out.extend(run.iter().map(|&(_, c)| c));
                } else {
                    for &(off, c) in run {
                        record(&mut st.found, Hidden::Tag, off, c);
                        let ascii = (c as u32).wrapping_sub(0xe0000);
                        if (0x20..0x7f).contains(&ascii)
                            && let Some(a) = char::from_u32(ascii)
                        {
                            st.tag_text.push(a);
                        }
                    }
                }
                i = end;
                continue;
            }
            Hidden::VariationSelector => {
                let end = run_end(&chars, i, |c| hidden_class(c) == Some(Hidden::VariationSelector));
                if end - i == 1 && variation_allowed(prev, c) {
                    out.push(c);
                } else {
                    for &(off, c) in &chars[i..end] {
                        record(&mut st.found, Hidden::VariationSelector, off, c);
                        if let Some(b) = variation_byte(c) {
                            st.vs_bytes.push(b);
                        }
                    }
                }
                i = end;
                continue;
            }
            Hidden::BidiOverride => {
                record(&mut st.found, class, off, c);
                if c == '\u{202e}' {
                    // What a reader sees is the reverse of what the model reads: scan it as shown.
                    let end = run_end(&chars, i + 1, |c| !matches!(c, '\u{202c}' | '\u{2069}' | '\n'));
                    let shown: String = chars[i + 1..end]
                        .iter()
                        .rev()
                        .map(|&(_, c)| c)
                        .filter(|&c| hidden_class(c).is_none())
                        .collect();
                    st.rtl_text.push_str(&shown);
                    st.rtl_text.push('\n');
                }
            }
            _ => record(&mut st.found, class, off, c),
        }
        i += 1;
    }
    if !st.found.is_empty() {
        st.clean = Cow::Owned(out);
    }
    st
}

fn record(found: &mut Vec<HiddenHit>, class: Hidden, off: usize, c: char) {
    match found.iter_mut().find(|h| h.class == class) {
        Some(h) => h.count += 1,
        None => found.push(HiddenHit { class, first: off, first_char: c, count: 1 }),
    }
}

/// Strips hidden characters that decoding produced (`&#8203;`, `\u200b`).
fn restrip(text: Cow<'_, str>) -> Cow<'_, str> {
    if let Cow::Owned(_) = &text {
        let clean = strip_hidden(&text).clean;
        if let Cow::Owned(c) = clean {
            return Cow::Owned(c);
        }
    }
    text
}

/// Index one past the run of characters from `start` that satisfy `keep`.
fn run_end(chars: &[(usize, char)], start: usize, keep: impl Fn(char) -> bool) -> usize {
    let mut end = start;
    while chars.get(end).is_some_and(|&(_, c)| keep(c)) {
        end += 1;
    }
    end
}

/// ZWJ/ZWNJ between two visible non-Latin characters spell emoji sequences and Indic/Arabic words.
fn joins_script(prev: Option<char>, next: Option<char>) -> bool {
    let visible = |c: char| !c.is_ascii() && homoglyph(c) == c && hidden_class(c).is_none();
    matches!((prev, next), (Some(p), Some(n)) if (visible(p) || p == '\u{fe0f}') && visible(n))
}

/// A single variation selector after a visible non-ASCII character selects a glyph (emoji
/// presentation, CJK ideographic variants); VS15/VS16 also follow keycap digits.
fn variation_allowed(prev: Option<char>, vs: char) -> bool {
    match prev {
        Some(p) if !p.is_ascii() => hidden_class(p).is_none(),
        Some('0'..='9' | '#' | '*') => matches!(vs, '\u{fe0e}' | '\u{fe0f}'),
        _ => false,
    }
}

/// The byte a variation selector encodes in the "emoji smuggling" scheme (VS1..VS256 → 0..255).
fn variation_byte(c: char) -> Option<u8> {
    match c as u32 {
        v @ 0xfe00..=0xfe0f => u8::try_from(v - 0xfe00).ok(),
        v @ 0xe0100..=0xe01ef => u8::try_from(v - 0xe0100 + 16).ok(),
        _ => None,
    }
}

/// Tag letters/digits ended by CANCEL TAG after U+1F3F4: a subdivision flag (🏴󠁧󠁢󠁳󠁣󠁴󠁿).
fn is_flag_tags(run: &[(usize, char)]) -> bool {
    let Some((&(_, last), body)) = run.split_last() else { return false };
    last == '\u{e007f}'
        && (2..=6).contains(&body.len())
        && body.iter().all(|&(_, c)| matches!(c, '\u{e0030}'..='\u{e0039}' | '\u{e0061}'..='\u{e007a}'))
}

fn is_rtl_letter(c: char) -> bool {
    matches!(c, '\u{590}'..='\u{8ff}' | '\u{fb1d}'..='\u{fdff}' | '\u{fe70}'..='\u{fefe}' | '\u{10800}'..='\u{10fff}' | '\u{1e800}'..='\u{1efff}')
        && c != '\u{61c}'
}

// ---------------------------------------------------------------------------------------------
// Excerpts
// ---------------------------------------------------------------------------------------------

/// Writes `c` so that it is visible and harmless on a terminal.
fn escape_char(c: char, out: &mut String) {
    match c {
        '\n' => out.push_str("\\n"),
        '\t' => out.push_str("\\t"),
        '\u{2028}' | '\u{2029}' => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        c if hidden_class(c).is_some() => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        c => out.push(c),
    }
}

/// Up to `EXCERPT_CHARS` characters of `text` around byte offset `at`, escaped.
fn excerpt(text: &str, at: usize) -> String {
    let at = floor_boundary(text, at);
    let from = text[..at].char_indices().rev().take(EXCERPT_LEAD).last().map_or(at, |(i, _)| i);
    let mut out = String::new();
    if from > 0 {
        out.push('…');
    }
    let mut shown = 0;
    for c in text[from..].chars() {
        let before = out.len();
        escape_char(c, &mut out);
        // Count what is printed: an escaped character takes up to ten.
        shown += out[before..].chars().count();
        if shown >= EXCERPT_CHARS {
            out.push('…');
            break;
        }
    }
    out
}

/// The matched text itself (escaped, bounded).
fn excerpt_of(text: &str, start: usize, end: usize) -> String {
    let (start, end) = (floor_boundary(text, start), floor_boundary(text, end));
    let mut out = String::new();
    for (n, c) in text[start..end].chars().enumerate() {
        if n == EXCERPT_CHARS / 2 {
            out.push('…');
            break;
        }
        escape_char(c, &mut out);
    }
    out
}

fn floor_boundary(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

// ---------------------------------------------------------------------------------------------
// Decoding and normalisation
// ---------------------------------------------------------------------------------------------

/// Undoes HTML entities, %-escapes and backslash escapes, up to `DECODE_ROUNDS` nested layers.
fn decode_layers(s: &str) -> Cow<'_, str> {
    let mut cur = Cow::Borrowed(s);
    for _ in 0..DECODE_ROUNDS {
        if !cur.contains(['&', '%', '\\']) {
            break;
        }
        let next = {
            let a = decode_html(&cur);
            let b = decode_percent(&a);
            decode_backslash(&b).into_owned()
        };
        if next == *cur {
            break;
        }
        cur = Cow::Owned(next);
    }
    cur
}

/// Named entities worth knowing: the ones that build markup and the invisible ones.
const HTML_NAMED: &[(&str, char)] = &[
    ("lt", '<'),
    ("gt", '>'),
    ("amp", '&'),
    ("quot", '"'),
    ("apos", '\''),
    ("nbsp", ' '),
    ("sol", '/'),
    ("bsol", '\\'),
    ("colon", ':'),
    ("semi", ';'),
    ("excl", '!'),
    ("quest", '?'),
    ("num", '#'),
    ("lpar", '('),
    ("rpar", ')'),
    ("lsqb", '['),
    ("rsqb", ']'),
    ("lbrack", '['),
    ("rbrack", ']'),
    ("lcub", '{'),
    ("rcub", '}'),
    ("lbrace", '{'),
    ("rbrace", '}'),
    ("equals", '='),
    ("plus", '+'),
    ("comma", ','),
    ("period", '.'),
    ("hyphen", '-'),
    ("dash", '-'),
    ("lowbar", '_'),
    ("verbar", '|'),
    ("vert", '|'),
    ("grave", '`'),
    ("hat", '^'),
    ("ast", '*'),
    ("percnt", '%'),
    ("dollar", '$'),
    ("commat", '@'),
    ("tab", '\t'),
    ("newline", '\n'),
    ("zwj", '\u{200d}'),
    ("zwnj", '\u{200c}'),
    ("shy", '\u{ad}'),
    ("zerowidthspace", '\u{200b}'),
    ("lrm", '\u{200e}'),
    ("rlm", '\u{200f}'),
];

/// Entities browsers also accept without the `;`.
const HTML_LEGACY: &[(&str, char)] = &[("lt", '<'), ("gt", '>'), ("amp", '&'), ("quot", '"')];

fn decode_html(s: &str) -> Cow<'_, str> {
    if !s.contains('&') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        match parse_entity(&rest[1..]) {
            Some((c, used)) => {
                out.push(c);
                rest = &rest[1 + used..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// Parses what follows a `&`; returns the character and the bytes consumed.
fn parse_entity(s: &str) -> Option<(char, usize)> {
    let b = s.as_bytes();
    if b.first() == Some(&b'#') {
        let (radix, start) = if matches!(b.get(1), Some(b'x' | b'X')) { (16, 2) } else { (10, 1) };
        let digits = s[start..].bytes().take(8).take_while(|d| (*d as char).is_digit(radix)).count();
        if digits == 0 {
            return None;
        }
        let code = u32::from_str_radix(&s[start..start + digits], radix).ok()?;
        let c = char::from_u32(code).filter(|&c| c != '\0')?;
        let semi = usize::from(b.get(start + digits) == Some(&b';'));
        return Some((c, start + digits + semi));
    }
    let name_len = s.bytes().take(32).take_while(u8::is_ascii_alphanumeric).count();
    let name = &s[..name_len];
    if b.get(name_len) == Some(&b';')
        && let Some(&(_, c)) = HTML_NAMED.iter().find(|(n, _)| n.eq_ignore_ascii_case(name))
    {
        return Some((c, name_len + 1));
    }
    // `&ltIMPORTANT&gt` still renders as a tag.
    HTML_LEGACY
        .iter()
        .find(|(n, _)| name.len() >= n.len() && name[..n.len()].eq_ignore_ascii_case(n))
        .map(|&(n, c)| (c, n.len()))
}

fn hex_value(b: u8) -> Option<u8> {
    (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

fn decode_percent(s: &str) -> Cow<'_, str> {
    if !s.contains('%') {
        return Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut changed = false;
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%'
            && let (Some(h), Some(l)) =
                (b.get(i + 1).copied().and_then(hex_value), b.get(i + 2).copied().and_then(hex_value))
        {
            out.push(h << 4 | l);
            changed = true;
            i += 3;
            continue;
        }
        out.push(c);
        i += 1;
    }
    if !changed {
        return Cow::Borrowed(s);
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// `\xNN` (bytes, so multi-byte UTF-8 works), `\uNNNN` (with surrogate pairs), `\u{N…}`,
/// `\UNNNNNNNN`, `\n`, `\r`, `\t`, `\\`.
fn decode_backslash(s: &str) -> Cow<'_, str> {
    if !s.contains('\\') {
        return Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut changed = false;
    let mut i = 0;
    let hex_at = |at: usize, n: usize| -> Option<u32> {
        let digits = s.get(at..at + n)?;
        if !digits.bytes().all(|d| d.is_ascii_hexdigit()) {
            return None;
        }
        u32::from_str_radix(digits, 16).ok()
    };
    while let Some(&c) = b.get(i) {
        if c != b'\\' {
            out.push(c);
            i += 1;
            continue;
        }
        let decoded: Option<(Option<char>, Option<u8>, usize)> = match b.get(i + 1) {
            Some(b'x') => hex_at(i + 2, 2).and_then(|v| u8::try_from(v).ok()).map(|v| (None, Some(v), 4)),
            Some(b'u') if b.get(i + 2) == Some(&b'{') => {
                let close = s[i + 3..].bytes().take(7).position(|d| d == b'}');
                close.and_then(|n| hex_at(i + 3, n).and_then(char::from_u32).map(|c| (Some(c), None, n + 4)))
            }
            Some(b'u') => hex_at(i + 2, 4).and_then(|hi| {
                if (0xd800..0xdc00).contains(&hi) {
                    // A surrogate pair spelled as two escapes.
                    let lo = (b.get(i + 6) == Some(&b'\\') && b.get(i + 7) == Some(&b'u'))
                        .then(|| hex_at(i + 8, 4))
                        .flatten()
                        .filter(|lo| (0xdc00..0xe000).contains(lo))?;
                    char::from_u32(0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00)).map(|c| (Some(c), None, 12))
                } else {
                    char::from_u32(hi).map(|c| (Some(c), None, 6))
                }
            }),
            Some(b'U') => hex_at(i + 2, 8).and_then(char::from_u32).map(|c| (Some(c), None, 10)),
            Some(b'n') => Some((Some('\n'), None, 2)),
            Some(b'r') => Some((Some('\r'), None, 2)),
            Some(b't') => Some((Some('\t'), None, 2)),
            Some(b'\\') => Some((Some('\\'), None, 2)),
            _ => None,
        };
        match decoded {
            Some((ch, byte, used)) => {
                if let Some(ch) = ch {
                    let mut buf = [0; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                if let Some(byte) = byte {
                    out.push(byte);
                }
                changed = true;
                i += used;
            }
            None => {
                out.push(c);
                i += 1;
            }
        }
    }
    if !changed {
        return Cow::Borrowed(s);
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// Compatibility-normalises (NFKC's mappings: fullwidth, ligatures, math letters), drops
/// combining marks (`ïgnöre`) and folds look-alikes to Latin, for matching only.
fn fold(s: &str) -> Cow<'_, str> {
    if s.is_ascii() {
        return Cow::Borrowed(s);
    }
    Cow::Owned(s.nfkd().filter(|&c| !is_combining_mark(c)).map(homoglyph).collect())
}

/// Cyrillic, Greek and Armenian letters that look like Latin ones, and their Latin twins.
fn homoglyph(c: char) -> char {
    match c {
        'а' | 'α' | 'ɑ' => 'a',
        'с' | 'ϲ' => 'c',
        'ԁ' => 'd',
        'е' | 'ε' => 'e',
        'ɡ' | 'ց' => 'g',
        'һ' | 'հ' => 'h',
        'і' | 'ι' | 'ı' | 'ɩ' => 'i',
        'ј' | 'ϳ' => 'j',
        'κ' | 'к' => 'k',
        'ӏ' => 'l',
        'ո' => 'n',
        'о' | 'ο' | 'օ' => 'o',
        'р' | 'ρ' => 'p',
        'ԛ' | 'զ' => 'q',
        'ѕ' => 's',
        'τ' => 't',
        'υ' | 'ս' => 'u',
        'ν' | 'ѵ' => 'v',
        'ԝ' | 'ω' => 'w',
        'х' | 'χ' => 'x',
        'у' | 'γ' => 'y',
        'А' | 'Α' => 'A',
        'В' | 'Β' => 'B',
        'С' | 'Ϲ' => 'C',
        'Ԁ' => 'D',
        'Е' | 'Ε' => 'E',
        'Н' | 'Η' => 'H',
        'І' | 'Ι' | 'Ӏ' => 'I',
        'Ј' => 'J',
        'К' | 'Κ' => 'K',
        'М' | 'Μ' => 'M',
        'Ν' => 'N',
        'О' | 'Ο' | 'Օ' => 'O',
        'Р' | 'Ρ' => 'P',
        'Ԛ' => 'Q',
        'Ѕ' => 'S',
        'Т' | 'Τ' => 'T',
        'Ԝ' => 'W',
        'Х' | 'Χ' => 'X',
        'У' | 'Υ' | 'Ү' => 'Y',
        'Ζ' => 'Z',
        c => c,
    }
}

/// Byte offset of a word that mixes Latin letters with look-alikes (`pаypal` with a Cyrillic
/// `а`), or of an all-look-alike word of three or more letters in mostly Latin text.
fn lookalike_word(text: &str) -> Option<usize> {
    let letters = text.chars().filter(|c| c.is_alphabetic()).count();
    let latin = text.chars().filter(char::is_ascii_alphabetic).count();
    let mostly_latin = latin * 2 >= letters;
    let mut start = None;
    let check = |word: &str| -> bool {
        let (mut ascii, mut look, mut other, mut n) = (false, false, false, 0);
        for c in word.chars() {
            n += 1;
            if c.is_ascii_alphabetic() {
                ascii = true;
            } else if !c.is_ascii() && homoglyph(c) != c {
                look = true;
            } else {
                other = true;
            }
        }
        look && (ascii || (mostly_latin && !other && n >= 3))
    };
    for (i, c) in text.char_indices() {
        match (c.is_alphanumeric(), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                if check(&text[s..i]) {
                    return Some(s);
                }
                start = None;
            }
            _ => {}
        }
    }
    start.filter(|&s| check(&text[s..]))
}

/// `ignore_previous_instructions` / `ignorePreviousInstructions` as words, for parameter names.
fn identifier_words(key: &str) -> Option<String> {
    let camel = key.as_bytes().windows(2).any(|w| w[0].is_ascii_lowercase() && w[1].is_ascii_uppercase());
    if key.contains(char::is_whitespace) || !(key.contains(['_', '-']) || camel) {
        return None;
    }
    let mut out = String::with_capacity(key.len() + 8);
    let mut prev_lower = false;
    for c in key.chars() {
        if matches!(c, '_' | '-') {
            out.push(' ');
            prev_lower = false;
            continue;
        }
        if prev_lower && c.is_ascii_uppercase() {
            out.push(' ');
        }
        prev_lower = c.is_ascii_lowercase();
        out.push(c);
    }
    Some(out)
}

/// Identifier-like names: qualified (`server.tool`), snake/kebab case or camelCase; 4+ chars.
fn is_identifier_like(name: &str) -> bool {
    let camel = name.as_bytes().windows(2).any(|w| w[0].is_ascii_lowercase() && w[1].is_ascii_uppercase());
    name.len() >= 4 && (name.contains(['.', '_', '-']) || camel)
}

/// Identifier-like tokens of `text` with their byte offsets.
fn identifier_tokens(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let is_part = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    let mut rest = 0;
    std::iter::from_fn(move || {
        loop {
            let from = rest + text[rest..].find(is_part)?;
            let len = text[from..].find(|c: char| !is_part(c)).unwrap_or(text.len() - from);
            rest = from + len;
            let token = text[from..from + len].trim_end_matches(['.', '-']);
            let lead = token.len() - token.trim_start_matches(['.', '-']).len();
            let token = &token[lead..];
            if is_identifier_like(token) {
                return Some((from + lead, token));
            }
        }
    })
}

/// Runs of base64 (standard or URL-safe alphabet) long enough to hide a sentence.
static BASE64_RUN: LazyLock<Regex> = LazyLock::new(|| {
    // A constant pattern: a failure is a bug the tests catch, never input-dependent.
    Regex::new(r"[A-Za-z0-9+/_-]{16,}={0,2}").expect("base64 pattern compiles")
});

/// Decodes a base64 run if the result is readable text (not binary, not an identifier that
/// happened to look like base64).
fn decode_base64(run: &str) -> Option<String> {
    let mut bits: u32 = 0;
    let mut nbits = 0;
    let mut out = Vec::with_capacity(run.len() * 3 / 4);
    for b in run.bytes() {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => break,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(v);
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            out.push(u8::try_from((bits >> nbits) & 0xff).ok()?);
            bits &= (1 << nbits) - 1;
        }
    }
    let text = match String::from_utf8(out) {
        Ok(t) => t,
        // A run cut mid-character: keep the valid prefix.
        Err(e) if e.utf8_error().error_len().is_none() => {
            let valid = e.utf8_error().valid_up_to();
            let mut bytes = e.into_bytes();
            bytes.truncate(valid);
            String::from_utf8(bytes).ok()?
        }
        Err(_) => return None,
    };
    let n = text.chars().count();
    let printable = text.chars().filter(|c| !c.is_control() || matches!(c, '\n' | '\t' | '\r')).count();
    let wordy = text.chars().filter(|c| c.is_alphabetic() || *c == ' ').count();
    (n >= 8 && printable * 10 >= n * 9 && wordy * 2 >= n).then_some(text)
}

// ---------------------------------------------------------------------------------------------
// Rules
// ---------------------------------------------------------------------------------------------

/// The injection rules, compiled once per process.
struct Rules {
    set: RegexSet,
    each: Vec<Regex>,
    meta: Vec<(&'static str, Severity)>,
}

/// Above this length the rules run one by one: one automaton for all rules is fastest on short
/// strings, but on long text it visits so many states that its lazy DFA gives up and falls back
/// to a slow engine, while each rule alone stays on the fast path.
const SET_MAX_BYTES: usize = 4096;

impl Rules {
    /// Where rule `i` matches `text`, with its kind and severity.
    fn find<'t>(&self, i: usize, text: &'t str) -> Option<(regex::Match<'t>, &(&'static str, Severity))> {
        Some((self.each.get(i)?.find(text)?, self.meta.get(i)?))
    }

    /// Bit `i` set when rule `i` matches `text`.
    fn hits(&self, text: &str) -> u128 {
        if text.len() <= SET_MAX_BYTES {
            self.set.matches(text).iter().fold(0, |m, i| m | 1 << i)
        } else {
            self.each.iter().enumerate().filter(|(_, re)| re.is_match(text)).fold(0, |m, (i, _)| m | 1 << i)
        }
    }
}

/// Indices of the set bits, lowest first.
fn bits(mut mask: u128) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        if mask == 0 {
            return None;
        }
        let i = mask.trailing_zeros();
        mask &= mask - 1;
        usize::try_from(i).ok()
    })
}

/// Words that make a mention of another tool an instruction about it.
static DIRECTIVE: LazyLock<Regex> = LazyLock::new(|| {
    RegexBuilder::new(&ascii_boundaries(
        r"\b(?:when(?:ever)?|before|after|instead|always|never|must|make\s+sure|ensure|change|redirect|override|replace|do\s+not|don['’]t|should|first)\b",
    ))
    .case_insensitive(true)
    .build()
    .expect("directive pattern compiles")
});

static RULES: LazyLock<Rules> = LazyLock::new(build_rules);

/// ASCII word boundaries keep the lazy DFA usable on text that still has non-ASCII characters
/// (a Unicode `\b` makes the regex engine fall back to a slower one there).
fn ascii_boundaries(pattern: &str) -> String {
    pattern.replace(r"\b", r"(?-u:\b)")
}

fn build_rules() -> Rules {
    use Severity::{High, Low, Medium};
    // Files that are secrets themselves (keys, credentials, cookies, MCP client configs holding
    // other servers' secrets): a mention alone is worth a look.
    let secret_file = r"(?:\.ssh\b|\bid[_\s-]?(?:rsa|dsa|ecdsa|ed25519)\b|\.aws/credentials\b|\baws_secret_access_key\b|\.netrc\b|/etc/(?:passwd|shadow|sudoers)\b|\.git-credentials\b|\.cursor/mcp\.json|claude_desktop_config\.json|\bcookies\.sqlite\b|\blogin\s+data\s+(?:file|database|db|sqlite)\b|\b(?:chrome|chromium|firefox|brave|edge|safari)(?:['’]s)?\s+(?:browser\s+)?(?:cookies|login\s+data)\b|\bbrowser\s+cookies\b|\bwallet\.dat\b|\.(?:bash|zsh)_history\b)";
    // Files that hold secrets but that devops tools legitimately name (kubeconfig, registry and
    // cloud configs, dotenv): only sending their contents somewhere is suspicious.
    let config_file = r#"(?:\.kube/config\b|\.docker/config\.json|\.config/gcloud\b|\.gnupg\b|\.aws/config\b|\.npmrc\b|\.pypirc\b|(?:^|[\s'"`(/~])\.env\b)"#;
    let name = r#"[`'"]?[a-z0-9]+(?:[_.-][a-z0-9]+)+[`'"]?"#;
    let any_name = r#"[`'"]?[a-z0-9_.-]+[`'"]?"#;
    let list: Vec<(&'static str, Severity, String)> = vec![
        // --- instruction override
        (
            kind::INSTRUCTION_OVERRIDE,
            High,
            r"\b(?:ignore|disregard|forget|override|overrule|bypass|abandon|discard|neglect)\s+(?:(?:all|any|each|every|the|your|my|of|these|those|everything|that|what)\s+){0,3}(?:previous|prior|above|earlier|preceding|foregoing|former|original|initial|system|safety|developer)\s+(?:[a-z]+\s+)?(?:instructions?|directions?|directives?|prompts?|rules?|guidelines?|guidance|context|messages?|commands?|constraints?|polic(?:y|ies)|restrictions?)\b".into(),
        ),
        (
            kind::INSTRUCTION_OVERRIDE,
            High,
            r"\b(?:ignore|disregard|forget)\s+(?:all|any|every|everything)\s+(?:of\s+)?(?:the\s+|your\s+)?(?:instructions?\b|rules\b|guidelines\b|you\s+(?:were|have\s+been)\s+told|(?:that\s+)?(?:came|comes|was\s+said)\s+before|above\b|else\b)".into(),
        ),
        (
            kind::INSTRUCTION_OVERRIDE,
            High,
            r"\b(?:new|updated|real|actual|true|revised|secret|hidden)\s+(?:system\s+)?instructions?\s*(?::|-|follow\b|below\b|are\s+as\s+follows)".into(),
        ),
        (kind::INSTRUCTION_OVERRIDE, Medium, r"\byou\s+must\s+now\b".into()),
        (
            kind::INSTRUCTION_OVERRIDE,
            High,
            r"\b(?:reveal|print|show|output|repeat|leak|dump|display|disclose|ignore|override|replace|disregard|bypass|include|send|pass)\s+(?:me\s+)?(?:the\s+|your\s+|its\s+)?(?:full\s+|entire\s+|original\s+|hidden\s+|current\s+)?system\s+(?:prompt|message|instructions?)\b".into(),
        ),
        (
            kind::INSTRUCTION_OVERRIDE,
            High,
            r"\b(?:this|these|the\s+following)\s+(?:(?:instructions?|rules?|notes?|text|messages?)\s+)?(?:overrides?|supersedes?|takes?\s+precedence\s+over|replaces?)\s+(?:all|any|the|your|every)\s+(?:other\s+|of\s+the\s+)?(?:previous|prior|other|system|safety|instructions?|rules?|guidelines?|prompts?)\b".into(),
        ),
        (kind::INSTRUCTION_OVERRIDE, Low, r"\bsystem\s+prompt\b".into()),
        (
            kind::INSTRUCTION_OVERRIDE,
            High,
            r"\b(?:do\s+not|don['’]t|never)\s+follow\s+(?:the\s+|your\s+|any\s+)?(?:previous|prior|above|original|system|user['’]?s?)\s+(?:instructions?|rules?|requests?)\b".into(),
        ),
        (
            kind::INSTRUCTION_OVERRIDE,
            Medium,
            r"\bnote\s+to\s+(?:the\s+)?(?:ai|assistant|model|llm|agent|claude|chatgpt|gpt|copilot|cursor)\b".into(),
        ),
        // --- role hijack
        (
            kind::ROLE_HIJACK,
            High,
            r"\byou\s+are\s+(?:now|from\s+now\s+on)\s+(?:a|an|the|in|acting|operating|my|dan|free|unrestricted|jailbroken|allowed|authori[sz]ed|permitted|root|admin|developer|god|no\s+longer)\b".into(),
        ),
        (kind::ROLE_HIJACK, High, r"\byou\s+are\s+no\s+longer\b".into()),
        (kind::ROLE_HIJACK, High, r"\bpretend\s+(?:to\s+be|you\s+are|that\s+you)\b".into()),
        // Low: prompt templates legitimately say "Act as a code reviewer".
        (
            kind::ROLE_HIJACK,
            Low,
            r"(?:^|[.!?;:]\s+|\b(?:must|should|will|shall|now|always)\s+)act\s+as\s+(?:if\b|though\b|an?\s|the\s|my\s|your\s)".into(),
        ),
        (kind::ROLE_HIJACK, High, r"\brole[\s-]?play\s+as\b".into()),
        (kind::ROLE_HIJACK, Medium, r"^[\s>#*]*(?:system|assistant|developer|human|ai)\s*:\s*\S".into()),
        // A blank line before the turn marker is the completion-style chat template itself.
        (kind::ROLE_HIJACK, High, r"\n[ \t]*\n[ \t]*(?:human|assistant|system)\s*:".into()),
        (
            kind::ROLE_HIJACK,
            High,
            r"<\|(?:im_start|im_end|im_sep|system|user|assistant|endoftext|begin_of_text|start_header_id|end_header_id|eot_id)\|>|\[/?inst\]|<</?sys>>|<(?:start|end)_of_turn>".into(),
        ),
        (
            kind::ROLE_HIJACK,
            High,
            r"\b(?:enter|enable|activate|switch\s+to|you\s+are\s+(?:now\s+)?in)\s+(?:dan|god|jailbreak|jailbroken|unrestricted|unfiltered|sudo)\s+mode\b".into(),
        ),
        (
            kind::ROLE_HIJACK,
            High,
            r"\bfrom\s+now\s+on\b[,\s]+(?:you|always|ignore|never|respond|reply|act|only|do\s+not|don['’]t)\b".into(),
        ),
        // --- exfiltration
        (kind::EXFILTRATION, Medium, secret_file.into()),
        // Reading alone is what some tools do (an SSH client reads ~/.ssh/config); handing the
        // contents over (in an argument, a message, an upload) is the attack.
        (
            kind::EXFILTRATION,
            High,
            format!(
                r"\b(?:include|attach|pass|provide|send|upload|post|forward|copy|dump|print|output|leak|exfiltrate|paste|put|embed)\b[^\n]{{0,100}}?(?:{secret_file}|{config_file})"
            ),
        ),
        (
            kind::EXFILTRATION,
            High,
            format!(
                r"(?:{secret_file}|{config_file})[^\n]{{0,80}}?\b(?:pass|send|include|attach|upload|put|provide|post|forward|paste|embed)\b[^\n]{{0,30}}?\b(?:contents?|it|them|data)\b"
            ),
        ),
        (
            kind::EXFILTRATION,
            High,
            r"\b(?:send|post|upload|forward|transmit|exfiltrate|leak|copy|sync|mirror|report|beacon|email|e-mail|submit|deliver|relay|share|bcc|cc)\b[^\n]{0,80}?\b(?:contents?|data|conversation|chat|history|messages|keys?|tokens?|credentials?|secrets?|passwords?|files?|results?|outputs?|context|environment|env|variables|cookies|sessions?|everything|all|logs?|transcripts?|summary|documents?|notes?|information|info|details)\b[^\n]{0,80}?\b(?:to|into|at|via)\s*(?:https?://|ftp://|wss?://|[a-z0-9._%+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)+|(?:an?\s+|the\s+|this\s+|our\s+|my\s+)?(?:external|remote|attacker|third[-\s]party|webhook|collector)\b)".into(),
        ),
        (
            kind::EXFILTRATION,
            High,
            r"\b(?:always|also|silently|secretly|additionally)\s+(?:bcc|cc|copy|forward|send)\b[^\n]{0,60}?(?:[a-z0-9._%+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)+|https?://)".into(),
        ),
        (
            kind::EXFILTRATION,
            Medium,
            r"\b(?:include|embed|pass|attach|paste|put)\b[^\n.]{0,40}?\b(?:(?:full|entire|complete|raw|whole)\s+)?(?:contents?|text)\s+of\b[^\n]{0,120}?\b(?:in|into|as|within|inside)\b".into(),
        ),
        (
            kind::EXFILTRATION,
            Medium,
            r"\b(?:include|pass|send|put|copy|forward|append|provide|attach|paste|embed|leak|exfiltrate|upload|post)\b[^\n.]{0,40}?\b(?:entire|full|whole|complete|all|previous|prior|past|recent|last)\s+(?:(?:of\s+)?(?:the|your|our|this)\s+)?(?:conversation|chat|dialog(?:ue)?|messages|context|history)\b".into(),
        ),
        // --- secrecy
        (
            kind::SECRECY,
            High,
            r"\b(?:do\s+not|don['’]t|dont|never|must\s+not|should\s+not|shouldn['’]t|without)\s+(?:ever\s+|even\s+|actually\s+)?(?:tell(?:ing)?|mention(?:ing)?|inform(?:ing)?|notify(?:ing)?|alert(?:ing)?|reveal(?:ing)?|disclos(?:e|ing)|show(?:ing)?|let(?:ting)?|ask(?:ing)?|warn(?:ing)?|report(?:ing)?|explain(?:ing)?|bother(?:ing)?)\s+(?:(?:this|that|it|anything|about\s+(?:this|that|it))\s+)?(?:to\s+)?(?:the\s+|your\s+|any\s+)?(?:user|human|operator|owner|person|customer)s?\b".into(),
        ),
        (
            kind::SECRECY,
            Medium,
            r"\b(?:do\s+not|don['’]t|never)\s+(?:mention|reveal|disclose|say|admit|indicate)\s+(?:that\b|this\b|these\b|the\s+(?:fact|instructions?|steps?|above)\b)".into(),
        ),
        (
            kind::SECRECY,
            High,
            r"\bwithout\s+(?:the\s+|your\s+|their\s+)?(?:user|human|operator)(?:['’]s|s['’]|s)?\s+(?:knowing|knowledge|noticing|consent|permission|awareness|approval|seeing|being\s+(?:told|informed|aware|notified))\b".into(),
        ),
        (
            kind::SECRECY,
            High,
            r"\bhide\s+(?:this|these|it)\s+(?:from|instructions?|notes?|messages?|steps?|requests?|information|text|section|calls?)\b|\b(?:keep|hide|conceal)\s+(?:this|these)\s+(?:(?:instructions?|notes?|steps?|requests?|messages?|information|text)\s+)?(?:secret|hidden|confidential)\b|\b(?:hide|conceal|keep)\s+[^\n.]{0,40}?\bfrom\s+(?:the\s+|your\s+)?(?:user|human|operator)s?\b".into(),
        ),
        (
            kind::SECRECY,
            High,
            r"\b(?:the\s+)?(?:user|human|operator)s?\s+(?:must|should|does|do|need|needs|will|shall|may)\s*(?:not|n['’]t|never)\s+(?:\w+\s+)?(?:know|see|be\s+(?:told|informed|aware|notified|shown)|find\s+out|notice|learn|suspect)\b".into(),
        ),
        (
            kind::SECRECY,
            Medium,
            r"\b(?:secretly|covertly|stealthily|surreptitiously)\b|\bbehind\s+the\s+user['’]?s\s+back\b".into(),
        ),
        (kind::SECRECY, Medium, r"\b(?:invisible|hidden|not\s+visible)\s+to\s+(?:the\s+)?(?:user|human)s?\b".into()),
        // --- hidden tags and delimiters
        (
            kind::HIDDEN_TAG,
            High,
            r"<\s*/?\s*(?:important|system|instructions?|secret|hidden|admin|override|sys|system[_-]?(?:prompt|message|instructions?)|assistant|developer|priority|critical|ai[_-]?instructions?|tool[_-]?instructions?)\s*>".into(),
        ),
        // A comment with something in it; tools that strip `<!-- -->` may name the syntax.
        (kind::HIDDEN_TAG, Medium, r"<!--\s*[^\s>-][^>]{11,}".into()),
        (kind::HIDDEN_TAG, High, r"```\s*(?:system|instructions?|prompt|assistant|admin|developer)\b".into()),
        (
            kind::HIDDEN_TAG,
            Medium,
            r"^\s*#{1,6}\s*(?:system|assistant|developer|admin)(?:\s+(?:prompt|message|instructions?|override))?\s*:?\s*$".into(),
        ),
        (kind::HIDDEN_TAG, Low, r"={20,}|-{20,}|#{20,}|\*{20,}|_{20,}|~{20,}|\+{20,}|<{20,}|>{20,}|\|{20,}".into()),
        (
            kind::HIDDEN_TAG,
            High,
            r"(?:[-=#*_~]{3,}|[\[<(])\s*(?:end|begin|start)\s+(?:of\s+)?(?:the\s+)?(?:tool\s+|function\s+)?(?:description|instructions?|system(?:\s+prompt)?|context|prompt|user\s+input|document|conversation)\b".into(),
        ),
        (
            kind::HIDDEN_TAG,
            Medium,
            r"\[\s*(?:system|admin|instructions?|developer)(?:\s+(?:message|note|override|prompt))?\s*\]".into(),
        ),
        // --- coercion to call tools
        (
            kind::TOOL_COERCION,
            Medium,
            r"\bbefore\s+(?:using|calling|invoking|running|executing|you\s+(?:use|call|invoke|run))\s+(?:any|every|all|another|each|the\s+other)\s+(?:other\s+)?(?:tools?|functions?|actions?)\b".into(),
        ),
        (
            kind::TOOL_COERCION,
            Medium,
            format!(r"\b(?:always|must|first)\s+(?:\w+\s+)?(?:call|use|invoke|run|execute)\s+(?:this|the\s+{any_name})\s+(?:tool|function)\s+(?:first|before|prior)\b"),
        ),
        // Sequencing hints ("Use this tool first to find the page ID", "use this tool whenever
        // you need the time") are ordinary; claiming precedence over everything else is not.
        (
            kind::TOOL_COERCION,
            Medium,
            r"\b(?:call|use|invoke|run)\s+this\s+(?:tool|function)\s+(?:first\s*,?\s*)?(?:before\s+(?:any|every|all|other|anything|each)\b|(?:on|after)\s+every\s+(?:request|message|turn|conversation|prompt|response|answer|reply|tool\s+call)\b)".into(),
        ),
        (
            kind::TOOL_COERCION,
            Medium,
            r"\b(?:this\s+tool|it)\s+(?:must|should|has\s+to|needs\s+to)\s+(?:always\s+)?be\s+(?:called|used|invoked|run|executed)\s+(?:first\b|(?:before|prior\s+to)\s+(?:any|every|all|other|anything)\b|(?:on|after)\s+every\b)".into(),
        ),
        (
            kind::TOOL_COERCION,
            Medium,
            format!(r"\b(?:you\s+must|always|mandatory\s+to|required\s+to)\s+(?:first\s+)?(?:call|use|invoke|run)\s+{any_name}\s+(?:tool\s+)?(?:before\s+(?:any|every|all|other|anything|answering|responding|replying)|first|after\s+every|every\s+time)\b"),
        ),
        (
            kind::TOOL_COERCION,
            Medium,
            r"\b(?:every|each)\s+time\s+(?:you|the\s+(?:user|model|assistant))\s+(?:call|use|invoke|run|respond|answer|reply)\b[^\n.]{0,60}\b(?:call|use|invoke|run)\s+(?:this|the)\b".into(),
        ),
        // --- shadowing (how to treat other tools)
        (
            kind::SHADOWING,
            Medium,
            r"\bwhen(?:ever)?\s+(?:you\s+)?(?:use|call|invoke|run)\s+(?:the\s+|any\s+|an?\s+)?(?:other|another|different|external)\s+(?:tools?|functions?|servers?)\b".into(),
        ),
        (
            kind::SHADOWING,
            High,
            r"\b(?:all|any|every)\s+(?:other\s+)?(?:tools?|functions?)\s+(?:must|should|shall|need\s+to|have\s+to|are\s+required\s+to)\b".into(),
        ),
        (
            kind::SHADOWING,
            Medium,
            format!(r"\bwhen(?:ever)?\s+(?:the\s+|a\s+|an\s+)?(?:\(?[a-z0-9_]+\)?\s+)?{name}\s+(?:tool\s+|function\s+)?(?:is|are|gets?)\s+(?:invoked|called|used|run|executed)\b"),
        ),
        (
            kind::SHADOWING,
            High,
            r"\b(?:change|replace|redirect|swap|override|rewrite)\s+(?:the\s+|its\s+|their\s+|every\s+|all\s+)?(?:recipients?|receivers?|destination\s+(?:address|number|account)|bcc|cc)\b[^.]{0,40}?\bto\b".into(),
        ),
        (
            kind::SHADOWING,
            Low,
            format!(r"\b(?:instead\s+of|rather\s+than)\s+(?:using|calling|invoking)\s+(?:the\s+)?{any_name}\s+(?:tool|function)\b"),
        ),
        (
            kind::SHADOWING,
            Low,
            format!(r"\b{name}\s+tool\s+(?:is\s+(?:deprecated|broken|disabled|unsafe|malicious|compromised)|(?:must|should)\s+(?:not|never)\s+be\s+used|no\s+longer\s+works)\b"),
        ),
    ];
    // Hits are a u128 bitmask.
    assert!(list.len() <= 128, "too many injection rules for the hit mask");
    let patterns: Vec<String> = list.iter().map(|(_, _, p)| ascii_boundaries(p)).collect();
    // Constant patterns: a failure is a bug the tests catch, never input-dependent.
    // The combined automaton's lazy DFA needs a larger cache than the 2 MiB default or it
    // thrashes even on short strings (~80x slower); the cache only grows as states are used.
    let set = RegexSetBuilder::new(&patterns)
        .case_insensitive(true)
        .multi_line(true)
        .size_limit(64 << 20)
        .dfa_size_limit(16 << 20)
        .build()
        .expect("injection rules compile");
    let each = patterns
        .iter()
        .map(|p| RegexBuilder::new(p).case_insensitive(true).multi_line(true).build().expect("injection rule compiles"))
        .collect();
    Rules { set, each, meta: list.into_iter().map(|(k, s, _)| (k, s)).collect() }
}

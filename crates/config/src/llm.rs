//! Validation of `[llm.NAME]` tables: LLM providers for sampling and agents.

use std::collections::BTreeMap;

use toml::de::DeValue;

use super::model::{LlmConfig, LlmKind};
use super::reader::{FileCtx, Key, Val};
use super::secret::Secret;
use super::server::valid_http_url;

const LLM_KEYS: &[&str] =
    &["kind", "base_url", "api_key", "model", "timeout", "max_retries", "max_tokens", "headers", "max_tools"];
/// Largest accepted `max_tokens`: far above any model's output limit, low enough to catch typos.
const MAX_TOKENS_CAP: i64 = 1_000_000;

/// Reads the top-level `llm` table; every problem is reported and only valid providers are returned.
pub(crate) fn parse_llm(ctx: &mut FileCtx<'_>, v: &Val<'_>) -> BTreeMap<String, LlmConfig> {
    let mut out = BTreeMap::new();
    let Some(table) = ctx.table("llm", v) else {
        return out;
    };
    for (key, value) in table.iter() {
        if let Some(provider) = parse_provider(ctx, key, value) {
            out.insert(provider.name.clone(), provider);
        }
    }
    out
}

/// Same rule as server names, so names read the same everywhere (logs, status, CLI).
fn valid_name(name: &str) -> bool {
    (1..=32).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn parse_provider(ctx: &mut FileCtx<'_>, key: &Key<'_>, v: &Val<'_>) -> Option<LlmConfig> {
    let name = key.get_ref().as_ref();
    let mut ok = valid_name(name);
    if !ok {
        ctx.report(key.span(), format!("LLM provider name \"{name}\" must match [a-z0-9-]{{1,32}}"));
    }
    let table = ctx.table(&format!("llm.{name}"), v)?;
    let place = format!("in [llm.{name}]");

    // `kind` picks the defaults (base_url, key header), so it is read before the other keys.
    let kind = match table.get("kind") {
        Some(v) => ctx.choice("kind", v, &kind_options()),
        None => {
            ctx.report(key.span(), format!("[llm.{name}] needs \"kind\" (\"openai\" or \"anthropic\")"));
            None
        }
    };
    let model = match table.get("model") {
        Some(v) => match ctx.string("model", v) {
            Some(m) if m.trim().is_empty() => {
                ctx.report(v.span(), "\"model\" must not be empty");
                None
            }
            other => other.map(str::to_owned),
        },
        None => {
            ctx.report(key.span(), format!("[llm.{name}] needs \"model\" (the model asked for by default)"));
            None
        }
    };

    let mut c = LlmConfig::with_defaults(name.to_owned(), kind.unwrap_or(LlmKind::OpenAi), model.unwrap_or_default());
    for (k, v) in table.iter() {
        let key_name = k.get_ref().as_ref();
        // Each arm keeps the default when its reader reports a problem; the problem alone
        // already makes the whole load fail.
        ok &= match key_name {
            "kind" | "model" => true,
            "base_url" => set(&mut c.base_url, base_url(ctx, v)),
            "api_key" => set(&mut c.api_key, api_key(ctx, v).map(Some)),
            "timeout" => set(&mut c.timeout, ctx.positive_duration(key_name, v)),
            "max_retries" => {
                set(&mut c.max_retries, ctx.integer(key_name, v, 0, Some(10)).and_then(|n| u32::try_from(n).ok()))
            }
            "max_tokens" => set(
                &mut c.max_tokens,
                ctx.integer(key_name, v, 1, Some(MAX_TOKENS_CAP)).and_then(|n| u32::try_from(n).ok()),
            ),
            "max_tools" => {
                set(&mut c.max_tools, ctx.integer(key_name, v, 0, Some(128)).and_then(|n| u32::try_from(n).ok()))
            }
            "headers" => set(
                &mut c.headers,
                ctx.secrets("headers", v, &super::server::check_header_name, &super::server::check_header_value),
            ),
            _ => {
                ctx.unknown_key(k, LLM_KEYS, &place);
                false
            }
        };
    }

    // Two sources for the same credential header would make one silently win.
    if let (Some(kind), Some(_), Some(DeValue::Table(headers))) =
        (kind, &c.api_key, table.get("headers").map(|h| h.get_ref()))
    {
        for (h, _) in headers.iter() {
            if h.get_ref().eq_ignore_ascii_case(kind.key_header()) {
                let message = format!(
                    "header \"{}\" conflicts with \"api_key\" (kind \"{}\" sends the key in it); set only one",
                    h.get_ref(),
                    kind.as_str()
                );
                ctx.report(h.span(), message);
                ok = false;
            }
        }
    }
    (ok && kind.is_some() && !c.model.is_empty()).then_some(c)
}

/// Stores `value` if present; returns whether it was.
fn set<T>(slot: &mut T, value: Option<T>) -> bool {
    match value {
        Some(v) => {
            *slot = v;
            true
        }
        None => false,
    }
}

fn kind_options() -> Vec<(&'static str, LlmKind)> {
    LlmKind::ALL.iter().map(|k| (k.as_str(), *k)).collect()
}

/// An http(s) URL that paths are appended to, without the trailing `/`.
fn base_url(ctx: &mut FileCtx<'_>, v: &Val<'_>) -> Option<String> {
    // The expanded URL may hold a secret, so it is never echoed.
    let url = ctx.expanded("base_url", v)?;
    if !valid_http_url(&url) {
        ctx.report(v.span(), "\"base_url\" must be an http:// or https:// url with a host");
        return None;
    }
    if url.contains(['?', '#']) {
        ctx.report(v.span(), "\"base_url\" must not have a query or fragment: request paths are appended to it");
        return None;
    }
    Some(url.trim_end_matches('/').to_owned())
}

/// `api_key` must be exactly one `${env:NAME}` or `${file:PATH}`: a key written into the config file
/// ends up in backups, diffs and support tickets.
fn api_key(ctx: &mut FileCtx<'_>, v: &Val<'_>) -> Option<Secret> {
    let raw = ctx.string("api_key", v)?;
    let single_ref = (raw.starts_with("${env:") || raw.starts_with("${file:"))
        && raw.ends_with('}')
        && !raw[2..raw.len() - 1].contains(['{', '}']);
    if !single_ref {
        // Never echo the value: it is probably the key itself.
        ctx.report(
            v.span(),
            "\"api_key\" must not be written inline: put the key in an environment variable or a file and write \
             ${env:NAME} (or ${file:PATH})",
        );
        return None;
    }
    let key = ctx.expanded("api_key", v)?;
    ctx.secrets.push(key.clone());
    if key.trim().is_empty() {
        ctx.report(v.span(), "\"api_key\" is empty after substitution");
        return None;
    }
    if http::HeaderValue::from_str(&key).is_err() {
        ctx.report(
            v.span(),
            "\"api_key\" is not a valid http header value (does the variable or file hold a newline?)",
        );
        return None;
    }
    Some(Secret::new(key))
}

//! The checks of a call before any I/O, in order and pure: resolve, trust verdict,
//! destructive-tool confirmation, rate limits, schema. Benchmarked by `benches/call_checks.rs`.
use std::sync::Arc;

use super::{CallEnv, CallRequest, parse_arguments};
use crate::{error::CallError, policy::Refusal, registry::ToolEntry, trust::Verdict, upstream::Upstream};

/// How many schema violations a message lists before "and N more".
const MAX_LISTED_VIOLATIONS: usize = 5;

/// A call that passed every check and may be sent.
pub struct Authorized {
    pub upstream: Arc<Upstream>,
    pub entry: Arc<ToolEntry>,
    pub arguments: serde_json::Map<String, serde_json::Value>,
}

/// Everything mcpd checks before a call leaves it, in order: the name resolves (or is
/// denied by the server's filter), the definition is trusted (its fingerprint checked
/// against the pin on every call, not only at refresh), a destructive tool is confirmed
/// when the config asks for it, rate limits, and the arguments match the inputSchema.
pub(super) fn authorize(env: &CallEnv<'_>, req: &CallRequest<'_>, app: &str) -> Result<Authorized, CallError> {
    let qualified = req.name;
    let snapshot = env.core.registry.snapshot();
    let Some((server, tool)) = qualified.split_once('.') else {
        return Err(CallError::Unqualified(qualified.to_owned()));
    };
    let upstream = env.core.supervisor.upstream(server).ok_or_else(|| CallError::NoSuchServer(server.to_owned()))?;
    let Some((_, entry)) = snapshot.resolve(qualified) else {
        if !upstream.config.tools.allows(tool) {
            return Err(CallError::Denied {
                tool: qualified.to_owned(),
                why: format!("the tools filter of [servers.{server}] does not allow it"),
            });
        }
        return Err(CallError::NoSuchTool { name: qualified.to_owned(), suggestion: snapshot.suggest(qualified) });
    };
    if let Verdict::Quarantined(reason) = env.core.trust.verdict(&upstream.config, &upstream.identity, entry) {
        return Err(CallError::Quarantined { tool: qualified.to_owned(), reason });
    }
    let destructive = entry.tool.annotations.as_ref().and_then(|a| a.destructive_hint).unwrap_or(false);
    if destructive && upstream.config.confirm_destructive && !req.confirm {
        return Err(CallError::Denied {
            tool: qualified.to_owned(),
            why: format!(
                "it is annotated destructive and [servers.{server}] sets confirm_destructive: repeat the call with confirmation (`mcpd call --yes`, or `confirm` in CallToolRequest)"
            ),
        });
    }
    env.live.policy.check(app, server, qualified).map_err(|Refusal::RateLimited { scope, rate, retry_after }| {
        CallError::RateLimited { scope, rate: rate.to_string(), retry_after }
    })?;
    let mut arguments = parse_arguments(req.arguments_json)?;
    if let Some(v) = &entry.validator {
        let mut value = serde_json::Value::Object(arguments.clone());
        // `null` for an optional property the schema types otherwise means "not provided"
        // (as SEP-2243 has it for its headers, and as models often write it): such keys are
        // dropped, not refused. Only on the invalid path, so valid calls pay nothing.
        if !v.is_valid(&value) && drop_optional_nulls(&mut arguments, &entry.tool.input_schema) {
            value = serde_json::Value::Object(arguments.clone());
        }
        let errors: Vec<String> = v
            .iter_errors(&value)
            .map(|e| {
                let at = e.instance_path().to_string();
                if at.is_empty() { e.to_string() } else { format!("{e} (at {at})") }
            })
            .collect();
        if !errors.is_empty() {
            let mut details = errors.iter().take(MAX_LISTED_VIOLATIONS).cloned().collect::<Vec<_>>().join("; ");
            if errors.len() > MAX_LISTED_VIOLATIONS {
                details.push_str(&format!("; and {} more", errors.len() - MAX_LISTED_VIOLATIONS));
            }
            return Err(CallError::InvalidArguments { tool: qualified.to_owned(), details });
        }
    }
    Ok(Authorized { upstream, entry: entry.clone(), arguments })
}

/// Removes top-level `null` arguments that the schema does not require; true if any were.
fn drop_optional_nulls(
    arguments: &mut serde_json::Map<String, serde_json::Value>,
    schema: &serde_json::Map<String, serde_json::Value>,
) -> bool {
    let required: Vec<&str> = schema
        .get("required")
        .and_then(serde_json::Value::as_array)
        .map(|r| r.iter().filter_map(serde_json::Value::as_str).collect())
        .unwrap_or_default();
    let before = arguments.len();
    arguments.retain(|k, v| !v.is_null() || required.contains(&k.as_str()));
    arguments.len() != before
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn only_optional_nulls_are_dropped() {
        let schema = json!({"type": "object", "properties": {"a": {"type": "boolean"}, "b": {"type": "string"}}, "required": ["b"]});
        let schema = schema.as_object().cloned().unwrap_or_default();
        let mut args = json!({"a": null, "b": null, "c": 1}).as_object().cloned().unwrap_or_default();
        assert!(super::drop_optional_nulls(&mut args, &schema));
        assert_eq!(serde_json::Value::Object(args.clone()), json!({"b": null, "c": 1}));
        assert!(!super::drop_optional_nulls(&mut args, &schema), "a required null stays, to be refused");
    }
}

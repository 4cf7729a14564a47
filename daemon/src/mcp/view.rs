//! What one profile shows its host: which registry tools, under which names.
//!
//! Pure over a registry snapshot and a verdict function, so the rules are tested without a
//! daemon: a tool is served when its server is in the profile, the profile's filter allows
//! its qualified name, it is trusted now (quarantined tools are hidden, not listed as
//! failing), and a model may call it (MCP Apps `app`-only tools stay with the app's UI).
use std::sync::Arc;

use crate::{
    config::{NameStyle, ProfileConfig},
    registry::{Snapshot, ToolEntry},
    trust::Verdict,
};

/// The name a host sees for `server` + `item` (a tool or a prompt).
pub fn exposed(style: NameStyle, server: &str, item: &str) -> String {
    match style {
        NameStyle::Dotted => format!("{server}.{item}"),
        NameStyle::Alias => format!("{server}__{item}"),
        NameStyle::Bare => item.to_owned(),
    }
}

/// The qualified `server.item` a host's name stands for, if it can stand for one.
///
/// Server names match `[a-z0-9-]{1,32}` (no `_`, no `.`), so the first `__` or `.` splits
/// an alias or a dotted name without ambiguity.
pub fn qualified(profile: &ProfileConfig, name: &str) -> Option<String> {
    let (server, item) = match profile.names {
        NameStyle::Dotted => name.split_once('.')?,
        NameStyle::Alias => name.split_once("__")?,
        NameStyle::Bare => (profile.servers.as_ref()?.first()?.as_str(), name),
    };
    (!server.is_empty() && !item.is_empty() && profile.serves(server)).then(|| format!("{server}.{item}"))
}

/// Whether `t` is served to the profile's host, given its trust verdict.
pub fn serves_tool(profile: &ProfileConfig, t: &ToolEntry, verdict: &Verdict) -> bool {
    profile.serves(&t.server) && profile.tools.allows(&t.qualified_name()) && verdict.is_trusted() && !t.app_only()
}

/// The served tools in registry order, each with the name its host sees.
pub fn tools(
    profile: &ProfileConfig,
    snap: &Snapshot,
    verdict: &dyn Fn(&ToolEntry) -> Verdict,
) -> Vec<(String, Arc<ToolEntry>)> {
    snap.iter()
        .filter(|(_, t)| profile.serves(&t.server))
        .filter(|(_, t)| serves_tool(profile, t, &verdict(t)))
        .map(|(_, t)| (exposed(profile.names, &t.server, &t.tool.name), t.clone()))
        .collect()
}

/// The meta-tools a `discovery = "search"` profile lists instead of its tools.
pub fn meta_tools() -> Vec<rmcp::model::Tool> {
    crate::discovery::meta_tools()
        .into_iter()
        .map(|m| {
            let mut t = rmcp::model::Tool::new(m.name, m.description, Arc::new(m.input_schema)).with_title(m.title);
            // Searching and describing change nothing: hosts may run them without asking.
            if m.name != crate::discovery::CALL {
                let mut a = rmcp::model::ToolAnnotations::new();
                a.read_only_hint = Some(true);
                a.open_world_hint = Some(false);
                t = t.with_annotations(a);
            }
            t
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ToolFilter;

    fn profile(servers: Option<&[&str]>, names: NameStyle, deny: &[&str]) -> ProfileConfig {
        ProfileConfig {
            name: "p".into(),
            servers: servers.map(|s| s.iter().map(|s| s.to_string()).collect()),
            tools: ToolFilter { allow: vec!["*".into()], deny: deny.iter().map(|s| s.to_string()).collect() },
            names,
            discovery: Default::default(),
        }
    }

    #[test]
    fn names_round_trip_in_every_style() {
        let dotted = profile(None, NameStyle::Dotted, &[]);
        assert_eq!(exposed(NameStyle::Dotted, "fs", "read_file"), "fs.read_file");
        assert_eq!(qualified(&dotted, "fs.read_file").as_deref(), Some("fs.read_file"));
        // A tool name may itself contain dots: the first one splits.
        assert_eq!(qualified(&dotted, "fs.a.b").as_deref(), Some("fs.a.b"));
        assert_eq!(qualified(&dotted, "read_file"), None);

        let alias = profile(None, NameStyle::Alias, &[]);
        assert_eq!(exposed(NameStyle::Alias, "my-fs", "read__file"), "my-fs__read__file");
        assert_eq!(qualified(&alias, "my-fs__read__file").as_deref(), Some("my-fs.read__file"));
        assert_eq!(qualified(&alias, "fs.read_file"), None);

        let bare = profile(Some(&["fs"]), NameStyle::Bare, &[]);
        assert_eq!(qualified(&bare, "read_file").as_deref(), Some("fs.read_file"));
    }

    #[test]
    fn a_name_outside_the_profile_resolves_to_nothing() {
        let p = profile(Some(&["fs"]), NameStyle::Dotted, &[]);
        assert_eq!(qualified(&p, "git.status"), None);
        assert_eq!(qualified(&p, ".x"), None);
        assert_eq!(qualified(&p, "fs."), None);
    }

    #[test]
    fn hidden_tools_are_quarantined_denied_or_app_only() {
        let tool = |name: &str, meta: Option<serde_json::Value>| {
            let mut v = serde_json::json!({"name": name, "inputSchema": {"type": "object"}});
            if let Some(m) = meta {
                v["_meta"] = m;
            }
            let t: rmcp::model::Tool = serde_json::from_value(v).expect("tool");
            ToolEntry::new("fs", "id", t, &Default::default(), None)
        };
        let p = profile(None, NameStyle::Dotted, &["fs.rm*"]);
        let ok = Verdict::Trusted;
        assert!(serves_tool(&p, &tool("read", None), &ok));
        assert!(!serves_tool(&p, &tool("rm_rf", None), &ok));
        assert!(!serves_tool(&p, &tool("read", None), &Verdict::Quarantined("changed".into())));
        let app_only = tool("widget", Some(serde_json::json!({"ui": {"visibility": ["app"]}})));
        assert!(!serves_tool(&p, &app_only, &ok));
        let other = profile(Some(&["git"]), NameStyle::Dotted, &[]);
        assert!(!serves_tool(&other, &tool("read", None), &ok));
    }
}

//! Registry tests: naming, ordering, filtering, staleness.
use super::*;

fn tool(name: &str) -> Tool {
    serde_json::from_value(serde_json::json!({
        "name": name,
        "inputSchema": {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}
    }))
    .unwrap()
}

fn allow_all() -> ToolFilter {
    ToolFilter::default()
}

#[test]
fn qualified_names_resolve_and_order_is_stable() {
    let reg = Registry::default();
    let (b, _) = build_server_tools("b", "id", vec![tool("search"), tool("a.dotted")], &allow_all(), &[], false);
    let (a, _) = build_server_tools("a", "id", vec![tool("search")], &allow_all(), &[], false);
    reg.publish("b", b);
    reg.publish("a", a);
    let snap = reg.snapshot();
    let names: Vec<String> = snap.iter().map(|(_, t)| t.qualified_name()).collect();
    assert_eq!(names, vec!["a.search", "b.a.dotted", "b.search"]);
    // The first dot splits: server names cannot contain one.
    assert_eq!(snap.resolve("b.a.dotted").unwrap().1.tool.name, "a.dotted");
    assert!(snap.resolve("c.search").is_none());
    assert!(snap.resolve("nodot").is_none());
    assert_eq!(snap.suggest("a.serch").as_deref(), Some("a.search"));
}

#[test]
fn invalid_names_and_duplicates_are_dropped() {
    let (st, warnings) =
        build_server_tools("s", "id", vec![tool("ok"), tool("bad name"), tool("ok")], &allow_all(), &[], false);
    assert_eq!(st.tools.len(), 1);
    assert_eq!(warnings.len(), 2, "{warnings:?}");
}

#[test]
fn schemas_validate_arguments() {
    let (st, _) = build_server_tools("s", "id", vec![tool("t")], &allow_all(), &[], false);
    let v = st.tools["t"].validator.as_ref().unwrap();
    assert!(v.is_valid(&serde_json::json!({"x": 1})));
    assert!(!v.is_valid(&serde_json::json!({"x": "one"})));
    assert!(!v.is_valid(&serde_json::json!({})));
}

#[test]
fn stale_marking_keeps_tools() {
    let reg = Registry::default();
    reg.publish("s", build_server_tools("s", "id", vec![tool("t")], &allow_all(), &[], false).0);
    reg.mark_stale("s");
    let snap = reg.snapshot();
    let (st, _) = snap.resolve("s.t").unwrap();
    assert!(st.stale);
    reg.remove("s");
    assert!(reg.snapshot().resolve("s.t").is_none());
}

#[test]
fn mcp_apps_ui_link_and_visibility() {
    let with_meta = |meta: serde_json::Value| {
        let mut t = tool("t");
        t.meta = serde_json::from_value(meta).unwrap();
        ToolEntry::new("s", "id", t, &crate::integrity::scan::OtherTools::new(&[]), None)
    };
    let plain = ToolEntry::new("s", "id", tool("t"), &crate::integrity::scan::OtherTools::new(&[]), None);
    assert_eq!(plain.ui_resource_uri(), None);
    assert_eq!(plain.visibility(), vec!["model", "app"]);
    assert!(!plain.app_only());

    let app = with_meta(serde_json::json!({"ui": {"resourceUri": "ui://x/app.html", "visibility": ["app"]}}));
    assert_eq!(app.ui_resource_uri(), Some("ui://x/app.html"));
    assert!(app.app_only());

    let legacy = with_meta(serde_json::json!({"ui/resourceUri": "ui://old"}));
    assert_eq!(legacy.ui_resource_uri(), Some("ui://old"));
    let both = with_meta(serde_json::json!({"ui": {"visibility": ["model", "app"]}}));
    assert!(!both.app_only());
}

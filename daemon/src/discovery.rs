//! Progressive discovery: the meta-tools `search_tools`, `describe_tool` and `call_tool` that
//! stand in for a full tool list, shared by the MCP front end (a profile with
//! `discovery = "search"`) and agent runs over more tools than a model handles well.
//!
//! Only the wire shapes live here: each caller decides which tools are offered and under
//! which names (a profile's naming style, or `server.tool` for agents), searches the
//! registry with that rule, and sends `call_tool` down the normal call path.
use serde_json::{Map, Value, json};

use crate::registry::ToolEntry;

pub const SEARCH: &str = "search_tools";
pub const DESCRIBE: &str = "describe_tool";
pub const CALL: &str = "call_tool";

/// Results of one search when the model does not ask for a number.
pub const DEFAULT_K: usize = 8;
/// Most results of one search: more would rebuild the long list the meta-tools avoid.
pub const MAX_K: usize = 25;
/// A description in search results is cut here (`describe_tool` gives the whole one).
const SEARCH_DESCRIPTION_CHARS: usize = 300;

/// One meta-tool as a host or a model sees it.
pub struct MetaTool {
    pub name: &'static str,
    pub title: &'static str,
    pub description: &'static str,
    pub input_schema: Map<String, Value>,
}

/// The three meta-tools, in the order they are used.
pub fn meta_tools() -> Vec<MetaTool> {
    let schema = |v: Value| match v {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    vec![
        MetaTool {
            name: SEARCH,
            title: "Search tools",
            description: "Finds the tools that can do a task. Describe the task in plain words (what you want done, \
                          not a tool name); the best matches come first, each with its name and what it does. Then \
                          call one with call_tool (describe_tool shows its parameters).",
            input_schema: schema(json!({
                "type": "object",
                "properties": {
                    "query": {"type": "string", "description": "The task, in plain words"},
                    "k": {"type": "integer", "minimum": 1, "maximum": MAX_K,
                          "description": format!("How many tools to return (default {DEFAULT_K})")}
                },
                "required": ["query"]
            })),
        },
        MetaTool {
            name: DESCRIBE,
            title: "Describe a tool",
            description: "The full definition of one tool found by search_tools: its description and the JSON \
                          Schema of its arguments.",
            input_schema: schema(json!({
                "type": "object",
                "properties": {"name": {"type": "string", "description": "The tool's name, as search_tools gave it"}},
                "required": ["name"]
            })),
        },
        MetaTool {
            name: CALL,
            title: "Call a tool",
            description: "Calls one tool found by search_tools with its arguments and returns its result.",
            input_schema: schema(json!({
                "type": "object",
                "properties": {
                    "name": {"type": "string", "description": "The tool's name, as search_tools gave it"},
                    "arguments": {"type": "object", "description": "The tool's arguments (see describe_tool)"}
                },
                "required": ["name"]
            })),
        },
    ]
}

/// A meta-tool call, its arguments checked.
#[derive(Debug, Clone, PartialEq)]
pub enum Meta {
    Search { query: String, k: usize },
    Describe { name: String },
    Call { name: String, arguments: Map<String, Value> },
}

/// `tool` called with `args`, if `tool` is a meta-tool; `Err` says what is wrong with the
/// arguments, for the model to read.
pub fn parse(tool: &str, args: &Map<String, Value>) -> Option<Result<Meta, String>> {
    let name = |args: &Map<String, Value>| match args.get("name") {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_owned()),
        _ => Err(format!("{tool} needs \"name\": a tool name as search_tools gave it")),
    };
    Some(match tool {
        SEARCH => match args.get("query") {
            Some(Value::String(q)) if !q.trim().is_empty() => {
                let k = match args.get("k") {
                    None | Some(Value::Null) => Ok(DEFAULT_K),
                    Some(v) => v
                        .as_u64()
                        .filter(|k| *k >= 1)
                        .map(|k| (k as usize).min(MAX_K))
                        .ok_or_else(|| format!("\"k\" must be a whole number from 1 to {MAX_K}")),
                };
                k.map(|k| Meta::Search { query: q.trim().to_owned(), k })
            }
            _ => Err("search_tools needs \"query\": the task in plain words".to_owned()),
        },
        DESCRIBE => name(args).map(|name| Meta::Describe { name }),
        CALL => name(args).and_then(|name| match args.get("arguments") {
            None | Some(Value::Null) => Ok(Meta::Call { name, arguments: Map::new() }),
            Some(Value::Object(a)) => Ok(Meta::Call { name, arguments: a.clone() }),
            // Some models send the arguments JSON-encoded.
            Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
                Ok(Value::Object(a)) => Ok(Meta::Call { name, arguments: a }),
                _ => Err("\"arguments\" must be an object of the tool's arguments".to_owned()),
            },
            Some(_) => Err("\"arguments\" must be an object of the tool's arguments".to_owned()),
        }),
        _ => return None,
    })
}

/// What `search_tools` answers: the hits, best first, each under the name the caller
/// offers it by.
pub fn search_result<'a>(query: &str, hits: impl IntoIterator<Item = (String, &'a ToolEntry, f32)>) -> Value {
    let tools: Vec<Value> = hits
        .into_iter()
        .map(|(name, t, score)| {
            let mut v = json!({
                "name": name,
                "description": cut(t.display.description.as_deref().unwrap_or_default(), SEARCH_DESCRIPTION_CHARS),
                "score": (f64::from(score) * 100.0).round() / 100.0,
            });
            if let Some(title) = &t.display.title {
                v["title"] = Value::String(title.clone());
            }
            v["parameters"] = Value::Array(param_names(t).into_iter().map(Value::String).collect());
            v
        })
        .collect();
    let mut out = json!({ "query": query, "tools": tools });
    if out["tools"].as_array().is_some_and(Vec::is_empty) {
        out["hint"] = Value::String("no tool matches: try other words for the task".into());
    }
    out
}

/// What `describe_tool` answers: the sanitised definition under the offered name.
pub fn describe_result(name: &str, t: &ToolEntry) -> Value {
    let d = &t.display;
    let mut v = json!({
        "name": name,
        "description": d.description.as_deref().unwrap_or_default(),
        "inputSchema": Value::Object((*d.input_schema).clone()),
    });
    if let Some(title) = &d.title {
        v["title"] = Value::String(title.clone());
    }
    if let Some(o) = &d.output_schema {
        v["outputSchema"] = Value::Object((**o).clone());
    }
    if let Some(a) = &d.annotations
        && let Ok(a) = serde_json::to_value(a)
    {
        v["annotations"] = a;
    }
    v
}

/// The tool's argument names, required ones marked `*`.
fn param_names(t: &ToolEntry) -> Vec<String> {
    let schema = &t.display.input_schema;
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().map(|k| if required.contains(&k.as_str()) { format!("{k}*") } else { k.clone() }).collect())
        .unwrap_or_default()
}

fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn meta_calls_parse_and_bad_arguments_say_why() {
        assert_eq!(parse("echo", &Map::new()), None);
        assert_eq!(
            parse(SEARCH, &args(json!({"query": " add numbers "}))),
            Some(Ok(Meta::Search { query: "add numbers".into(), k: DEFAULT_K }))
        );
        assert_eq!(
            parse(SEARCH, &args(json!({"query": "x", "k": 500}))),
            Some(Ok(Meta::Search { query: "x".into(), k: MAX_K }))
        );
        assert!(matches!(parse(SEARCH, &args(json!({"query": "x", "k": 0}))), Some(Err(e)) if e.contains("\"k\"")));
        assert!(matches!(parse(SEARCH, &args(json!({"k": 3}))), Some(Err(e)) if e.contains("query")));
        assert_eq!(
            parse(CALL, &args(json!({"name": "a.b", "arguments": "{\"x\": 1}"}))),
            Some(Ok(Meta::Call { name: "a.b".into(), arguments: args(json!({"x": 1})) }))
        );
        assert_eq!(
            parse(CALL, &args(json!({"name": "a.b"}))),
            Some(Ok(Meta::Call { name: "a.b".into(), arguments: Map::new() }))
        );
        assert!(matches!(parse(CALL, &args(json!({"name": "a.b", "arguments": [1]}))), Some(Err(_))));
        assert!(matches!(parse(DESCRIBE, &args(json!({"name": ""}))), Some(Err(e)) if e.contains("name")));
    }

    #[test]
    fn results_carry_names_parameters_and_cut_descriptions() {
        let tool: rmcp::model::Tool = serde_json::from_value(json!({
            "name": "add", "title": "Adder", "description": "x".repeat(400),
            "inputSchema": {"type": "object", "properties": {"a": {}, "b": {}}, "required": ["a"]}
        }))
        .expect("tool");
        let t = ToolEntry::new("calc", "id", tool, &Default::default(), None);
        let r = search_result("sum", [("calc__add".to_owned(), &t, 1.234)]);
        let hit = &r["tools"][0];
        assert_eq!(hit["name"], "calc__add");
        assert_eq!(hit["title"], "Adder");
        assert_eq!(hit["score"], 1.23);
        assert_eq!(hit["parameters"], json!(["a*", "b"]));
        assert_eq!(hit["description"].as_str().map(|s| s.chars().count()), Some(301));
        assert!(r.get("hint").is_none());
        assert!(search_result("none", []).get("hint").is_some());
        let d = describe_result("calc__add", &t);
        assert_eq!(d["inputSchema"]["required"], json!(["a"]));
        assert_eq!(d["description"].as_str().map(str::len), Some(400));
    }
}

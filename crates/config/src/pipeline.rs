//! Validation of `[[pipelines]]` and the `{{...}}` template language they use.
//!
//! Pipelines are checked after every file is loaded, because their `tool`s
//! name servers that may come from included files. Every problem is reported
//! at its value: bad names and ids, duplicates, steps that are not exactly
//! one of `tool`/`parallel`/`branch`, unknown servers and pipelines, template
//! syntax, references to unknown or later steps, bad conditions and regexes,
//! and cycles between pipelines (with the cycle's path).

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde_json::{Map, Value};
use toml::de::{DeTable, DeValue};

use super::model::{
    Condition, ConditionTest, InputSchema, PIPELINE_DEFAULT_DEPTH, PIPELINE_MAX_DEPTH, ParallelBranch, Pattern,
    PipelineConfig, PipelineStep, Route, ServerConfig, StepKind, ToolCall,
};
use super::problem::line_col;
use super::reader::{FileCtx, Key, Val, suggest};

const PIPELINE_KEYS: &[&str] = &["name", "description", "input_schema", "max_depth", "steps"];
const STEP_KEYS: &[&str] = &["id", "tool", "args", "parallel", "branch", "default"];
const PARALLEL_KEYS: &[&str] = &["id", "tool", "args"];
const ROUTE_KEYS: &[&str] = &["when", "tool", "args"];
const DEFAULT_KEYS: &[&str] = &["tool", "args"];
const WHEN_KEYS: &[&str] = &["path", "equals", "not_equals", "contains", "exists", "matches"];
/// Fields of a step's (or a parallel branch's) result that references may name.
const FIELDS: &[&str] = &["text", "structured", "error", "is_error", "tool"];
/// Branch steps also record which route ran.
const BRANCH_FIELDS: &[&str] = &["text", "structured", "error", "is_error", "tool", "route"];

/// Bounds that keep one pipeline's work and memory predictable.
const MAX_PIPELINES: usize = 256;
const MAX_STEPS: usize = 64;
const MAX_BRANCHES: usize = 32;
const MAX_ROUTES: usize = 32;

/// The prefix of tools that are pipelines.
pub const PIPELINE_SERVER: &str = "pipeline";

/// A piece of a templated string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece<'s> {
    Text(&'s str),
    /// The reference inside `{{...}}`, trimmed, e.g. `steps.geo.structured.lat`.
    Ref(&'s str),
}

/// Splits `s` into text and `{{reference}}` pieces. There is no escape for a
/// literal `{{`: arguments that need one cannot be written as templates.
pub fn parse_template(s: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            out.push(Piece::Text(&rest[..open]));
        }
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            return Err("\"{{\" is not closed by \"}}\"".to_owned());
        };
        let inner = after[..close].trim();
        split_path(inner).map_err(|why| format!("{{{{{inner}}}}}: {why}"))?;
        out.push(Piece::Ref(inner));
        rest = &after[close + 2..];
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest));
    }
    Ok(out)
}

/// The dot-separated segments of a reference; numeric segments also index arrays.
pub fn split_path(path: &str) -> Result<Vec<&str>, String> {
    if path.is_empty() {
        return Err("empty reference, use e.g. {{input.NAME}} or {{steps.ID.text}}".to_owned());
    }
    let segments: Vec<&str> = path.split('.').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return Err("a reference has an empty segment (two dots, or a leading or trailing dot)".to_owned());
    }
    if let Some(c) = path.chars().find(|c| c.is_whitespace() || matches!(c, '{' | '}')) {
        return Err(format!("{c:?} is not allowed in a reference"));
    }
    Ok(segments)
}

/// Reads the `pipelines` value of the main file; `servers` are all servers,
/// includes already loaded.
pub(crate) fn parse_pipelines(
    ctx: &mut FileCtx<'_>,
    v: &Val<'_>,
    servers: &BTreeMap<String, ServerConfig>,
) -> BTreeMap<String, PipelineConfig> {
    let mut out = BTreeMap::new();
    let Some(items) = array_of_tables(ctx, "pipelines", "[[pipelines]]", v) else {
        return out;
    };
    if items.len() > MAX_PIPELINES {
        ctx.report(v.span(), format!("at most {MAX_PIPELINES} pipelines may be configured, found {}", items.len()));
    }
    // Names first, so steps may call pipelines declared further down.
    let mut names = BTreeSet::new();
    for item in &items {
        if let Some(DeValue::String(s)) = item.get("name").map(|n| n.get_ref()) {
            names.insert(s.to_string());
        }
    }
    let known = Known { servers, pipelines: &names };
    let mut seen: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut graph = Vec::new();
    for item in items {
        let mut edges = Vec::new();
        let parsed = parse_pipeline(ctx, item, &known, &mut edges);
        // Duplicates and cycles are checked for pipelines with other problems
        // too, so one run lists everything.
        let Some(name_v) = item.get("name") else { continue };
        let DeValue::String(name) = name_v.get_ref() else { continue };
        let name = name.to_string();
        if let Some((line, col)) = seen.get(&name) {
            ctx.report(name_v.span(), format!("pipeline \"{name}\" is already defined at line {line}, column {col}"));
            continue;
        }
        seen.insert(name.clone(), line_col(ctx.src, name_v.span().start));
        graph.push((name.clone(), edges));
        if let Some(p) = parsed {
            out.insert(name, p);
        }
    }
    report_cycles(ctx, &graph);
    out
}

/// What a `tool` may name.
struct Known<'a> {
    servers: &'a BTreeMap<String, ServerConfig>,
    pipelines: &'a BTreeSet<String>,
}

/// `pipeline.X` calls made by one pipeline, with where each is written.
type Edges = Vec<(String, std::ops::Range<usize>)>;

/// An array whose items are all tables (`[[key]]` or an inline array of tables).
fn array_of_tables<'v, 'i>(
    ctx: &mut FileCtx<'_>,
    key: &str,
    shape: &str,
    v: &'v Val<'i>,
) -> Option<Vec<&'v DeTable<'i>>> {
    let DeValue::Array(items) = v.get_ref() else {
        ctx.report(v.span(), format!("expected an array of tables ({shape}) for \"{key}\""));
        return None;
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        if let Some(t) = ctx.table(&format!("{key}[{i}]"), item) {
            out.push(t);
        }
    }
    Some(out)
}

fn valid_name(name: &str) -> bool {
    (1..=32).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn valid_id(id: &str) -> bool {
    (1..=32).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn valid_tool_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// The keys of a table by name, reporting unknown ones.
fn keys<'t, 'i>(
    ctx: &mut FileCtx<'_>,
    table: &'t DeTable<'i>,
    known: &[&str],
    place: &str,
) -> BTreeMap<&'t str, (&'t Key<'i>, &'t Val<'i>)> {
    let mut out = BTreeMap::new();
    for (k, v) in table.iter() {
        let name = k.get_ref().as_ref();
        if known.contains(&name) {
            out.insert(name, (k, v));
        } else {
            ctx.unknown_key(k, known, place);
        }
    }
    out
}

/// The shape of an earlier step, as far as references care.
enum Shape {
    Call,
    Branch,
    Parallel(Vec<String>),
    /// Not exactly one of tool/parallel/branch (already reported): references
    /// to it are not judged.
    Unknown,
}

/// What references in one step may name.
struct Scope<'s> {
    /// `input_schema.properties`, when the schema declares them.
    input_props: Option<BTreeSet<String>>,
    /// Steps before the current one, in order.
    earlier: &'s [(String, Shape)],
    /// Every step id of the pipeline, to tell "later" from "unknown".
    all_ids: &'s [String],
    current: &'s str,
}

fn parse_pipeline(
    ctx: &mut FileCtx<'_>,
    table: &DeTable<'_>,
    known: &Known<'_>,
    edges: &mut Edges,
) -> Option<PipelineConfig> {
    let given = table.get("name").and_then(|n| match n.get_ref() {
        DeValue::String(s) => Some(s.to_string()),
        _ => None,
    });
    let place = match &given {
        Some(n) => format!("in pipeline \"{n}\""),
        None => "in [[pipelines]]".to_owned(),
    };
    let keys = keys(ctx, table, PIPELINE_KEYS, &place);
    let mut ok = true;

    let name = match keys.get("name") {
        Some((_, v)) => match ctx.string("name", v) {
            Some(n) if valid_name(n) => Some(n.to_owned()),
            Some(n) => {
                let n = n.to_owned();
                ctx.report(v.span(), format!("pipeline name \"{n}\" must match [a-z0-9-]{{1,32}}"));
                None
            }
            None => None,
        },
        None => {
            // Point at the first key: array-of-tables items have no span of their own.
            let span = table.iter().next().map(|(k, _)| k.span()).unwrap_or_default();
            ctx.report(span, "a pipeline needs a \"name\"");
            None
        }
    };
    ok &= name.is_some();

    let description = match keys.get("description") {
        Some((_, v)) => ctx.string("description", v).map(str::to_owned),
        None => Some(String::new()),
    };
    ok &= description.is_some();

    let input_schema = match keys.get("input_schema") {
        Some((_, v)) => parse_input_schema(ctx, v),
        None => Some(InputSchema::default()),
    };
    ok &= input_schema.is_some();

    let max_depth = match keys.get("max_depth") {
        Some((_, v)) => {
            ctx.integer("max_depth", v, 1, Some(i64::from(PIPELINE_MAX_DEPTH))).and_then(|n| u32::try_from(n).ok())
        }
        None => Some(PIPELINE_DEFAULT_DEPTH),
    };
    ok &= max_depth.is_some();

    let input_props = input_schema.as_ref().and_then(|s| declared_properties(s.json()));
    let steps = match keys.get("steps") {
        Some((_, v)) => parse_steps(ctx, v, input_props, known, edges),
        None => {
            let span = keys.get("name").map(|(k, _)| k.span()).unwrap_or_default();
            ctx.report(span, format!("{} needs at least one [[pipelines.steps]]", pipeline_label(&given)));
            None
        }
    };
    ok &= steps.is_some();

    if !ok {
        return None;
    }
    Some(PipelineConfig {
        name: name?,
        description: description?,
        input_schema: input_schema?,
        max_depth: max_depth?,
        steps: steps?,
    })
}

fn pipeline_label(name: &Option<String>) -> String {
    match name {
        Some(n) => format!("pipeline \"{n}\""),
        None => "a pipeline".to_owned(),
    }
}

/// `input_schema`: a JSON Schema for an arguments object that compiles.
fn parse_input_schema(ctx: &mut FileCtx<'_>, v: &Val<'_>) -> Option<InputSchema> {
    ctx.table("input_schema", v)?;
    let json = to_json(ctx, v, None)?;
    match json.get("type") {
        None => {}
        Some(Value::String(t)) if t == "object" => {}
        Some(other) => {
            ctx.report(
                v.span(),
                format!("\"input_schema\" must describe an object (type = \"object\"), found type {other}"),
            );
            return None;
        }
    }
    match InputSchema::new(json) {
        Ok(s) => Some(s),
        Err(why) => {
            ctx.report(v.span(), format!("\"input_schema\" is not a valid JSON Schema: {why}"));
            None
        }
    }
}

/// `properties` of an input schema, if it declares any: references to other
/// input names are then typos.
fn declared_properties(schema: &Value) -> Option<BTreeSet<String>> {
    let props = schema.get("properties")?.as_object()?;
    Some(props.keys().cloned().collect())
}

fn parse_steps(
    ctx: &mut FileCtx<'_>,
    v: &Val<'_>,
    input_props: Option<BTreeSet<String>>,
    known: &Known<'_>,
    edges: &mut Edges,
) -> Option<Vec<PipelineStep>> {
    let items = array_of_tables(ctx, "steps", "[[pipelines.steps]]", v)?;
    let mut ok = true;
    if items.is_empty() {
        ctx.report(v.span(), "\"steps\" must not be empty");
        return None;
    }
    if items.len() > MAX_STEPS {
        ctx.report(v.span(), format!("a pipeline has at most {MAX_STEPS} steps, found {}", items.len()));
        ok = false;
    }
    // Every id up front, so a reference to a later step says so.
    let all_ids: Vec<String> = items
        .iter()
        .filter_map(|t| match t.get("id").map(|i| i.get_ref()) {
            Some(DeValue::String(s)) => Some(s.to_string()),
            _ => None,
        })
        .collect();
    let mut earlier: Vec<(String, Shape)> = Vec::new();
    let mut steps = Vec::new();
    for table in items {
        let parsed = parse_step(ctx, table, &earlier, &all_ids, input_props.clone(), known, edges);
        let id_v = table.get("id");
        let given = id_v.and_then(|i| match i.get_ref() {
            DeValue::String(s) => Some(s.to_string()),
            _ => None,
        });
        if let (Some(id), Some(id_v)) = (&given, id_v)
            && earlier.iter().any(|(e, _)| e == id)
        {
            ctx.report(id_v.span(), format!("step id \"{id}\" is used twice in this pipeline"));
            ok = false;
            continue;
        }
        // The shape comes from the table, so later references are judged
        // even when this step has problems of its own.
        if let Some(id) = given {
            earlier.push((id, shape_of(table)));
        }
        match parsed {
            Some(step) => steps.push(step),
            None => ok = false,
        }
    }
    ok.then_some(steps)
}

fn parse_step(
    ctx: &mut FileCtx<'_>,
    table: &DeTable<'_>,
    earlier: &[(String, Shape)],
    all_ids: &[String],
    input_props: Option<BTreeSet<String>>,
    known: &Known<'_>,
    edges: &mut Edges,
) -> Option<PipelineStep> {
    let given = table.get("id").and_then(|n| match n.get_ref() {
        DeValue::String(s) => Some(s.to_string()),
        _ => None,
    });
    let place = match &given {
        Some(id) => format!("in step \"{id}\""),
        None => "in [[pipelines.steps]]".to_owned(),
    };
    let keys = keys(ctx, table, STEP_KEYS, &place);
    let first_span = table.iter().next().map(|(k, _)| k.span()).unwrap_or_default();
    let id = match keys.get("id") {
        Some((_, v)) => match ctx.string("id", v) {
            Some(id) if valid_id(id) => Some(id.to_owned()),
            Some(id) => {
                let id = id.to_owned();
                ctx.report(v.span(), format!("step id \"{id}\" must match [a-z0-9_]{{1,32}}"));
                None
            }
            None => None,
        },
        None => {
            ctx.report(first_span.clone(), "a step needs an \"id\"");
            None
        }
    };
    let current = given.as_deref().unwrap_or("");
    let scope = Scope { input_props, earlier, all_ids, current };
    let label = match &given {
        Some(id) => format!("step \"{id}\""),
        None => "a step".to_owned(),
    };
    let anchor = keys.get("id").map(|(k, _)| k.span()).unwrap_or(first_span);

    let actions: Vec<&str> = ["tool", "parallel", "branch"].into_iter().filter(|a| keys.contains_key(a)).collect();
    if actions.len() != 1 {
        let message = if actions.is_empty() {
            format!("{label} needs one of \"tool\", \"parallel\" or \"branch\"")
        } else {
            let listed = actions.iter().map(|a| format!("\"{a}\"")).collect::<Vec<_>>().join(" and ");
            format!("{label} has {listed}; a step is exactly one of \"tool\", \"parallel\" or \"branch\"")
        };
        ctx.report(anchor, message);
        return None;
    }
    if let (Some((k, _)), false) = (keys.get("args"), keys.contains_key("tool")) {
        ctx.report(k.span(), format!("\"args\" belongs with \"tool\"; {label} has none"));
    }
    if let (Some((k, _)), false) = (keys.get("default"), keys.contains_key("branch")) {
        ctx.report(k.span(), format!("\"default\" belongs with \"branch\"; {label} has none"));
    }

    let kind = if let Some((_, tool)) = keys.get("tool") {
        StepKind::Call(parse_call(ctx, tool, keys.get("args").map(|(_, v)| *v), &scope, known, edges)?)
    } else if let Some((_, v)) = keys.get("parallel") {
        StepKind::Parallel(parse_parallel(ctx, v, &scope, known, edges)?)
    } else if let Some((key, v)) = keys.get("branch") {
        let routes = parse_routes(ctx, v, &scope, known, edges);
        let default = match keys.get("default") {
            Some((_, d)) => parse_default(ctx, d, &scope, known, edges),
            None => {
                ctx.report(
                    key.span(),
                    format!("{label} has \"branch\" but no \"default\" (the route taken when no condition holds)"),
                );
                None
            }
        };
        StepKind::Branch { routes: routes?, default: default? }
    } else {
        return None;
    };
    Some(PipelineStep { id: id?, kind })
}

/// A step's shape as written, whether or not it is valid otherwise.
fn shape_of(table: &DeTable<'_>) -> Shape {
    let has = |k: &str| table.contains_key(k);
    match (has("tool"), has("parallel"), has("branch")) {
        (true, false, false) => Shape::Call,
        (false, false, true) => Shape::Branch,
        (false, true, false) => {
            let Some(DeValue::Array(items)) = table.get("parallel").map(|v| v.get_ref()) else {
                return Shape::Unknown;
            };
            let mut ids: Vec<String> = Vec::new();
            let found = items.iter().filter_map(|item| match item.get_ref() {
                DeValue::Table(t) => match t.get("id").map(|i| i.get_ref()) {
                    Some(DeValue::String(s)) => Some(s.to_string()),
                    _ => None,
                },
                _ => None,
            });
            for id in found {
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
            Shape::Parallel(ids)
        }
        _ => Shape::Unknown,
    }
}

/// `tool` and its optional `args` (an inline table).
fn parse_call(
    ctx: &mut FileCtx<'_>,
    tool: &Val<'_>,
    args: Option<&Val<'_>>,
    scope: &Scope<'_>,
    known: &Known<'_>,
    edges: &mut Edges,
) -> Option<ToolCall> {
    let tool = check_tool(ctx, tool, known, edges);
    let args = match args {
        Some(v) => match v.get_ref() {
            DeValue::Table(_) => match to_json(ctx, v, Some(scope)) {
                Some(Value::Object(m)) => Some(m),
                _ => None,
            },
            _ => {
                ctx.type_error("a table", "args", v);
                None
            }
        },
        None => Some(Map::new()),
    };
    Some(ToolCall { tool: tool?, args: args? })
}

/// A `server.tool` whose server is configured, or a `pipeline.NAME` that exists.
fn check_tool(ctx: &mut FileCtx<'_>, v: &Val<'_>, known: &Known<'_>, edges: &mut Edges) -> Option<String> {
    let text = ctx.string("tool", v)?.to_owned();
    let Some((server, tool)) = text.split_once('.') else {
        ctx.report(v.span(), format!("tool \"{text}\" must be \"server.tool\" or \"pipeline.NAME\""));
        return None;
    };
    if server == PIPELINE_SERVER {
        if known.pipelines.contains(tool) {
            edges.push((tool.to_owned(), v.span()));
            return Some(text);
        }
        let names: Vec<&str> = known.pipelines.iter().map(String::as_str).collect();
        let hint = suggest(tool, &names).map(|n| format!(", did you mean \"pipeline.{n}\"?")).unwrap_or_default();
        ctx.report(v.span(), format!("unknown pipeline \"{tool}\" in tool \"{text}\"{hint}"));
        return None;
    }
    if !known.servers.contains_key(server) {
        let names: Vec<&str> = known.servers.keys().map(String::as_str).collect();
        let hint = suggest(server, &names).map(|n| format!(", did you mean \"{n}\"?")).unwrap_or_default();
        ctx.report(
            v.span(),
            format!("tool \"{text}\" names server \"{server}\", which is not configured (nor \"pipeline\"){hint}"),
        );
        return None;
    }
    if !valid_tool_name(tool) {
        ctx.report(v.span(), format!("tool name \"{tool}\" in \"{text}\" must match [A-Za-z0-9_.-]{{1,128}}"));
        return None;
    }
    Some(text)
}

/// `parallel = [{ id, tool, args }, ..]`.
fn parse_parallel(
    ctx: &mut FileCtx<'_>,
    v: &Val<'_>,
    scope: &Scope<'_>,
    known: &Known<'_>,
    edges: &mut Edges,
) -> Option<Vec<ParallelBranch>> {
    let items = array_of_tables(ctx, "parallel", "[{ id, tool, args }, ...]", v)?;
    let DeValue::Array(vals) = v.get_ref() else {
        return None;
    };
    let mut ok = items.len() == vals.len();
    if vals.is_empty() {
        ctx.report(v.span(), "\"parallel\" must list at least one branch");
        return None;
    }
    if vals.len() > MAX_BRANCHES {
        ctx.report(v.span(), format!("\"parallel\" has at most {MAX_BRANCHES} branches, found {}", vals.len()));
        ok = false;
    }
    let mut out: Vec<ParallelBranch> = Vec::new();
    for (item, table) in vals.iter().zip(items) {
        let keys = keys(ctx, table, PARALLEL_KEYS, "in a parallel branch");
        let id = match keys.get("id") {
            Some((_, idv)) => match ctx.string("id", idv) {
                Some(id) if valid_id(id) => {
                    if out.iter().any(|b| b.id == id) {
                        let id = id.to_owned();
                        ctx.report(idv.span(), format!("branch id \"{id}\" is used twice in this step"));
                        None
                    } else {
                        Some(id.to_owned())
                    }
                }
                Some(id) => {
                    let id = id.to_owned();
                    ctx.report(idv.span(), format!("branch id \"{id}\" must match [a-z0-9_]{{1,32}}"));
                    None
                }
                None => None,
            },
            None => {
                ctx.report(item.span(), "a parallel branch needs an \"id\"");
                None
            }
        };
        let call = match keys.get("tool") {
            Some((_, t)) => parse_call(ctx, t, keys.get("args").map(|(_, a)| *a), scope, known, edges),
            None => {
                ctx.report(item.span(), "a parallel branch needs a \"tool\"");
                None
            }
        };
        match (id, call) {
            (Some(id), Some(call)) => out.push(ParallelBranch { id, call }),
            _ => ok = false,
        }
    }
    ok.then_some(out)
}

/// `branch = [{ when, tool, args }, ..]`.
fn parse_routes(
    ctx: &mut FileCtx<'_>,
    v: &Val<'_>,
    scope: &Scope<'_>,
    known: &Known<'_>,
    edges: &mut Edges,
) -> Option<Vec<Route>> {
    let items = array_of_tables(ctx, "branch", "[{ when, tool, args }, ...]", v)?;
    let DeValue::Array(vals) = v.get_ref() else {
        return None;
    };
    let mut ok = items.len() == vals.len();
    if vals.is_empty() {
        ctx.report(v.span(), "\"branch\" must list at least one route");
        return None;
    }
    if vals.len() > MAX_ROUTES {
        ctx.report(v.span(), format!("\"branch\" has at most {MAX_ROUTES} routes, found {}", vals.len()));
        ok = false;
    }
    let mut out = Vec::new();
    for (item, table) in vals.iter().zip(items) {
        let keys = keys(ctx, table, ROUTE_KEYS, "in a branch route");
        let when = match keys.get("when") {
            Some((_, w)) => parse_when(ctx, w, scope),
            None => {
                ctx.report(item.span(), "a branch route needs \"when\" (routes without a condition go in \"default\")");
                None
            }
        };
        let call = match keys.get("tool") {
            Some((_, t)) => parse_call(ctx, t, keys.get("args").map(|(_, a)| *a), scope, known, edges),
            None => {
                ctx.report(item.span(), "a branch route needs a \"tool\"");
                None
            }
        };
        match (when, call) {
            (Some(when), Some(call)) => out.push(Route { when, call }),
            _ => ok = false,
        }
    }
    ok.then_some(out)
}

/// `default = { tool, args }`.
fn parse_default(
    ctx: &mut FileCtx<'_>,
    v: &Val<'_>,
    scope: &Scope<'_>,
    known: &Known<'_>,
    edges: &mut Edges,
) -> Option<ToolCall> {
    let table = ctx.table("default", v)?;
    let keys = keys(ctx, table, DEFAULT_KEYS, "in \"default\"");
    match keys.get("tool") {
        Some((_, t)) => parse_call(ctx, t, keys.get("args").map(|(_, a)| *a), scope, known, edges),
        None => {
            ctx.report(v.span(), "\"default\" needs a \"tool\"");
            None
        }
    }
}

/// `when = { path = "...", <one test> = ... }`.
fn parse_when(ctx: &mut FileCtx<'_>, v: &Val<'_>, scope: &Scope<'_>) -> Option<Condition> {
    let table = ctx.table("when", v)?;
    let keys = keys(ctx, table, WHEN_KEYS, "in \"when\"");
    let path = match keys.get("path") {
        Some((_, p)) => {
            let text = ctx.string("path", p).map(str::to_owned);
            text.and_then(|t| match split_path(&t).and_then(|segs| check_ref(&segs, scope)) {
                Ok(()) => Some(t),
                Err(why) => {
                    ctx.report(p.span(), format!("in \"path\" {t:?}: {why}"));
                    None
                }
            })
        }
        None => {
            ctx.report(v.span(), "\"when\" needs a \"path\" (e.g. \"steps.ID.structured.field\")");
            None
        }
    };
    let tests: Vec<&str> = WHEN_KEYS[1..].iter().copied().filter(|t| keys.contains_key(t)).collect();
    let &[test] = tests.as_slice() else {
        let listed = WHEN_KEYS[1..].join(", ");
        ctx.report(v.span(), format!("\"when\" needs exactly one test of: {listed}; found {}", tests.len()));
        return None;
    };
    let (_, tv) = keys.get(test)?;
    let test = match test {
        "equals" => to_json(ctx, tv, None).map(ConditionTest::Equals),
        "not_equals" => to_json(ctx, tv, None).map(ConditionTest::NotEquals),
        "contains" => to_json(ctx, tv, None).map(ConditionTest::Contains),
        "exists" => ctx.boolean("exists", tv).map(ConditionTest::Exists),
        "matches" => {
            let source = ctx.string("matches", tv)?.to_owned();
            match Pattern::new(&source) {
                Ok(p) => Some(ConditionTest::Matches(p)),
                Err(e) => {
                    // regex errors are multi-line drawings; the last line says what is wrong.
                    let why = e.to_string();
                    let why = why.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("invalid").trim();
                    let why = why.strip_prefix("error: ").unwrap_or(why);
                    ctx.report(tv.span(), format!("invalid regex {source:?} for \"matches\": {why}"));
                    None
                }
            }
        }
        _ => None,
    };
    Some(Condition { path: path?, test: test? })
}

/// Whether a reference can resolve in `scope`; the error says why not.
fn check_ref(path: &[&str], scope: &Scope<'_>) -> Result<(), String> {
    match path.first().copied() {
        Some("input") => {
            if let (Some(props), Some(name)) = (&scope.input_props, path.get(1))
                && !props.contains(*name)
            {
                let names: Vec<&str> = props.iter().map(String::as_str).collect();
                let hint = suggest(name, &names).map(|n| format!(", did you mean \"{n}\"?")).unwrap_or_default();
                return Err(format!("input_schema has no property \"{name}\"{hint}"));
            }
            Ok(())
        }
        Some("steps") => {
            let Some(id) = path.get(1).copied() else {
                return Err("name a step: steps.ID.text or steps.ID.structured...".to_owned());
            };
            if id == scope.current {
                return Err(format!("step \"{id}\" cannot use its own result"));
            }
            let Some((_, shape)) = scope.earlier.iter().find(|(e, _)| e == id) else {
                if scope.all_ids.iter().any(|a| a == id) {
                    return Err(format!("step \"{id}\" runs later; a step can only use the results of earlier steps"));
                }
                let names: Vec<&str> = scope.earlier.iter().map(|(e, _)| e.as_str()).collect();
                let hint = suggest(id, &names).map(|n| format!(", did you mean \"{n}\"?")).unwrap_or_default();
                return Err(format!("unknown step \"{id}\"{hint}"));
            };
            let rest = &path[2..];
            match shape {
                Shape::Unknown => Ok(()),
                Shape::Call => check_field(id, rest, FIELDS),
                Shape::Branch => check_field(id, rest, BRANCH_FIELDS),
                Shape::Parallel(branches) => {
                    let listed = branches.join(", ");
                    let Some(branch) = rest.first() else {
                        return Err(format!(
                            "step \"{id}\" is parallel: name a branch, e.g. steps.{id}.BRANCH.text (branches: {listed})"
                        ));
                    };
                    if !branches.iter().any(|b| b == branch) {
                        return Err(format!("step \"{id}\" has no branch \"{branch}\" (branches: {listed})"));
                    }
                    check_field(&format!("{id}.{branch}"), &rest[1..], FIELDS)
                }
            }
        }
        Some(other) => Err(format!("unknown reference root \"{other}\"; references start with input or steps")),
        None => Err("empty reference".to_owned()),
    }
}

fn check_field(owner: &str, rest: &[&str], fields: &[&str]) -> Result<(), String> {
    let listed = fields.join(", ");
    match rest.first().copied() {
        None => Err(format!("name a field of \"{owner}\": {listed}")),
        Some("structured") => Ok(()),
        Some(f) if fields.contains(&f) => match rest.len() {
            1 => Ok(()),
            _ => Err(format!("\"{f}\" of \"{owner}\" has no fields (only structured does)")),
        },
        Some(f) => {
            let hint = suggest(f, fields).map(|n| format!(", did you mean \"{n}\"?")).unwrap_or_default();
            Err(format!("unknown field \"{f}\" of \"{owner}\" (fields: {listed}){hint}"))
        }
    }
}

/// A TOML value as JSON, every problem reported; with a `scope`, string
/// values are templates and checked against it.
fn to_json(ctx: &mut FileCtx<'_>, v: &Val<'_>, scope: Option<&Scope<'_>>) -> Option<Value> {
    match v.get_ref() {
        DeValue::String(s) => {
            if let Some(scope) = scope {
                check_template(ctx, v, s, scope)?;
            }
            Some(Value::String(s.to_string()))
        }
        DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
            Ok(n) => Some(Value::from(n)),
            Err(_) => {
                ctx.report(v.span(), "integer out of range");
                None
            }
        },
        DeValue::Float(f) => match f.as_str().parse::<f64>().ok().and_then(serde_json::Number::from_f64) {
            Some(n) => Some(Value::Number(n)),
            None => {
                ctx.report(v.span(), "JSON has no NaN or infinity");
                None
            }
        },
        DeValue::Boolean(b) => Some(Value::Bool(*b)),
        // JSON has no dates: tools receive them as RFC 3339 text.
        DeValue::Datetime(d) => Some(Value::String(d.to_string())),
        DeValue::Array(a) => {
            // Every item is converted (not `collect::<Option<_>>`) so every problem shows.
            let items: Vec<Option<Value>> = a.iter().map(|item| to_json(ctx, item, scope)).collect();
            items.into_iter().collect::<Option<Vec<_>>>().map(Value::Array)
        }
        DeValue::Table(t) => {
            let mut out = Map::new();
            let mut ok = true;
            for (k, item) in t.iter() {
                match to_json(ctx, item, scope) {
                    Some(j) => {
                        out.insert(k.get_ref().to_string(), j);
                    }
                    None => ok = false,
                }
            }
            ok.then_some(Value::Object(out))
        }
    }
}

fn check_template(ctx: &mut FileCtx<'_>, v: &Val<'_>, s: &str, scope: &Scope<'_>) -> Option<()> {
    let pieces = match parse_template(s) {
        Ok(p) => p,
        Err(why) => {
            ctx.report(v.span(), format!("invalid template: {why}"));
            return None;
        }
    };
    let mut ok = true;
    for piece in pieces {
        let Piece::Ref(r) = piece else { continue };
        if let Err(why) = split_path(r).and_then(|segs| check_ref(&segs, scope)) {
            ctx.report(v.span(), format!("in {{{{{r}}}}}: {why}"));
            ok = false;
        }
    }
    ok.then_some(())
}

/// Reports each distinct cycle of `pipeline.X` calls once, at the call that
/// starts it in the first pipeline of the cycle (in declaration order).
fn report_cycles(ctx: &mut FileCtx<'_>, graph: &[(String, Edges)]) {
    let index: BTreeMap<&str, usize> = graph.iter().enumerate().map(|(i, (n, _))| (n.as_str(), i)).collect();
    // 0 = unvisited, 1 = on the stack, 2 = done.
    let mut color = vec![0u8; graph.len()];
    let mut reported: HashSet<Vec<usize>> = HashSet::new();
    let mut found: Vec<(Vec<usize>, std::ops::Range<usize>)> = Vec::new();
    for start in 0..graph.len() {
        if color[start] != 0 {
            continue;
        }
        // Iterative DFS: (node, next edge to follow).
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        color[start] = 1;
        while let Some(top) = stack.last_mut() {
            let (node, next) = *top;
            let edges = &graph[node].1;
            if next >= edges.len() {
                color[node] = 2;
                stack.pop();
                continue;
            }
            top.1 += 1;
            let (target, _) = &edges[next];
            let Some(&t) = index.get(target.as_str()) else { continue };
            match color[t] {
                0 => {
                    color[t] = 1;
                    stack.push((t, 0));
                }
                1 => {
                    let from = stack.iter().position(|(n, _)| *n == t).unwrap_or(0);
                    let mut cycle: Vec<usize> = stack[from..].iter().map(|(n, _)| *n).collect();
                    // Rotate so the earliest-declared pipeline leads: one report per cycle.
                    let lead = cycle.iter().enumerate().min_by_key(|(_, n)| **n).map_or(0, |(i, _)| i);
                    cycle.rotate_left(lead);
                    if reported.insert(cycle.clone()) {
                        let next_name = &graph[cycle[1 % cycle.len()]].0;
                        let span = graph[cycle[0]]
                            .1
                            .iter()
                            .find(|(n, _)| n == next_name)
                            .map(|(_, s)| s.clone())
                            .unwrap_or_default();
                        found.push((cycle, span));
                    }
                }
                _ => {}
            }
        }
    }
    for (cycle, span) in found {
        let mut names: Vec<String> = cycle.iter().map(|&n| format!("pipeline.{}", graph[n].0)).collect();
        names.push(names[0].clone());
        ctx.report(span, format!("pipelines call each other in a cycle: {}", names.join(" → ")));
    }
}

//! Unit tests of the call core: result bounds, argument parsing, and the whole path against
//! a fake upstream.
use rmcp::model::{CallToolResult, ContentBlock};

use super::*;

#[test]
fn small_results_pass_untouched() {
    let r = CallToolResult::success(vec![ContentBlock::text("hello")]);
    let (out, cut, _) = bound_result(r.clone(), 1000);
    assert!(!cut);
    assert_eq!(out, r);
}

#[test]
fn big_results_are_cut_with_a_marker() {
    let r = CallToolResult::success(vec![ContentBlock::text("é".repeat(10_000))]);
    let (out, cut, original) = bound_result(r, 1000);
    assert!(cut);
    assert!(original > 20_000);
    let last = out.content.last().and_then(|c| c.as_text()).unwrap();
    assert!(last.text.contains(&original.to_string()), "{}", last.text);
    let first = out.content[0].as_text().unwrap();
    assert!(first.text.len() <= 1000);
}

#[test]
fn arguments_must_be_objects() {
    assert!(parse_arguments("").unwrap().is_empty());
    assert!(matches!(parse_arguments("[1]"), Err(CallError::BadJson(m)) if m.contains("array")));
    assert!(parse_arguments("{").is_err());
}

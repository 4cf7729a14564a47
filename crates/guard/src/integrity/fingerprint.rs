//! Canonical JSON (RFC 8785 style) and SHA-256 fingerprints of tool, prompt and resource-template definitions.
//!
//! The fingerprint covers the whole definition as the server sent it (name, title,
//! description, inputSchema, outputSchema, annotations, icons, `_meta`, and any field a
//! newer spec adds) and the server identity it came from, so the same definition from a
//! different command or URL is a different tool. Key order and insignificant whitespace
//! do not change it; anything else does.
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Serialises `v` canonically: object keys sorted by their UTF-16 code units (as RFC 8785
/// orders them), no whitespace, strings escaped minimally by serde_json. Numbers use
/// serde_json's shortest round-trip form, which equals RFC 8785's for integers and for
/// the floats MCP schemas carry.
pub fn canonical_json(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                if let Some(child) = map.get(k) {
                    write_canonical(child, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// `sha256:<hex>` of the canonical form of `{"identity": …, "kind": …, "definition": …}`.
pub fn fingerprint(identity: &str, kind: &str, definition: &Value) -> String {
    let bound = serde_json::json!({ "identity": identity, "kind": kind, "definition": definition });
    sha256_hex(canonical_json(&bound).as_bytes())
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut hex = String::with_capacity(7 + 64);
    hex.push_str("sha256:");
    for b in Sha256::digest(bytes) {
        // Writing to a String cannot fail.
        let _ = write!(hex, "{b:02x}");
    }
    hex
}

/// Top-level fields whose canonical values differ between two definitions, in a stable
/// order: what a quarantine message names ("description, inputSchema changed").
pub fn changed_fields(old: &Value, new: &Value) -> Vec<String> {
    let empty = serde_json::Map::new();
    let a = old.as_object().unwrap_or(&empty);
    let b = new.as_object().unwrap_or(&empty);
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter().filter(|k| a.get(*k).map(canonical_json) != b.get(*k).map(canonical_json)).cloned().collect()
}

/// Pretty, key-sorted JSON for a readable line diff.
pub fn pretty_canonical(v: &Value) -> String {
    let sorted: Value = serde_json::from_str(&canonical_json(v)).unwrap_or(Value::Null);
    // `preserve_order` keeps the sorted order from the canonical text.
    serde_json::to_string_pretty(&sorted).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_order_and_whitespace_do_not_matter() {
        let a: Value = serde_json::from_str(r#"{"name":"t","inputSchema":{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"integer"}}}}"#).unwrap();
        let b: Value = serde_json::from_str(
            r#"{
              "inputSchema" : { "properties" : { "b" : {"type":"integer"}, "a": {"type" : "string"} }, "type":"object" },
              "name" : "t"
            }"#,
        )
        .unwrap();
        assert_eq!(canonical_json(&a), canonical_json(&b));
        assert_eq!(fingerprint("id", "tool", &a), fingerprint("id", "tool", &b));
    }

    #[test]
    fn any_other_change_does() {
        let base = json!({"name":"t","description":"Adds.","inputSchema":{"type":"object","properties":{"a":{"type":"integer"}}},"annotations":{"readOnlyHint":true}});
        let fp = fingerprint("id", "tool", &base);
        let variants = [
            json!({"name":"t","description":"Adds!","inputSchema":{"type":"object","properties":{"a":{"type":"integer"}}},"annotations":{"readOnlyHint":true}}),
            json!({"name":"t","description":"Adds.","inputSchema":{"type":"object","properties":{"a":{"type":"integer"},"x":{"type":"string"}}},"annotations":{"readOnlyHint":true}}),
            json!({"name":"t","description":"Adds.","inputSchema":{"type":"object","properties":{"a":{"type":"integer","default":3}}},"annotations":{"readOnlyHint":true}}),
            json!({"name":"t","description":"Adds.","inputSchema":{"type":"object","properties":{"a":{"type":"integer"}}},"annotations":{"readOnlyHint":false}}),
            json!({"name":"t","description":"Adds.","inputSchema":{"type":"object","properties":{"a":{"type":"integer"}}},"annotations":{"readOnlyHint":true},"_meta":{"x":1}}),
            json!({"name":"t","description":"Adds. ","inputSchema":{"type":"object","properties":{"a":{"type":"integer"}}},"annotations":{"readOnlyHint":true}}),
        ];
        for v in &variants {
            assert_ne!(fingerprint("id", "tool", v), fp, "{v}");
        }
        assert_ne!(fingerprint("other-id", "tool", &base), fp, "identity is bound");
        assert_eq!(changed_fields(&base, &variants[0]), vec!["description"]);
        assert_eq!(changed_fields(&base, &variants[4]), vec!["_meta"]);
        assert!(fp.starts_with("sha256:") && fp.len() == 71);
    }

    #[test]
    fn keys_sort_by_utf16_units() {
        // U+FF61 sorts after U+1F600 in UTF-8 bytes but before it in UTF-16 units.
        let v = json!({"\u{1F600}": 1, "\u{FF61}": 2, "a": 3});
        assert_eq!(canonical_json(&v), "{\"a\":3,\"\u{1F600}\":1,\"\u{FF61}\":2}");
    }
}

//! Property tests (proptest; `PROPTEST_CASES` raises the bounded count CI runs): the
//! scanner's normalisation, the definition scanner and the secret filter take any input
//! without panicking, and what they promise holds for it.
use proptest::prelude::*;
use serde_json::Value;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64);
    ProptestConfig { cases, ..ProptestConfig::default() }
}

/// Any JSON value, a few levels deep, with strings that include control, bidi and tag
/// characters (what a hostile definition carries).
fn json() -> impl Strategy<Value = Value> {
    let text = prop_oneof![
        any::<String>(),
        "[\u{0}-\u{1f}\u{200b}-\u{200f}\u{202a}-\u{202e}\u{2066}-\u{2069}\u{e0000}-\u{e007f}a-z <>{}]{0,40}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        text.prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            proptest::collection::btree_map(any::<String>(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn sanitising_is_total_and_idempotent(s in any::<String>()) {
        let once = crate::integrity::scan::sanitize_text(&s);
        prop_assert_eq!(crate::integrity::scan::sanitize_text(&once), once.clone());
        prop_assert!(once.chars().count() <= s.chars().count() * 4 + 8);
    }

    #[test]
    fn any_definition_is_scanned_and_its_sanitised_copy_is_clean(def in json()) {
        let scan = crate::integrity::scan::scan_definition(&def, &["other.tool".into()]);
        // Scanning the sanitised copy again finds no invisible characters left in it.
        let again = crate::integrity::scan::scan_definition(&scan.sanitized, &[]);
        prop_assert_eq!(again.sanitized, scan.sanitized);
    }

    #[test]
    fn the_secret_filter_takes_any_text(s in any::<String>(), mut v in json()) {
        let (out, found) = crate::redact::redact_text(&s);
        if found.is_empty() {
            prop_assert_eq!(out.as_ref(), s.as_str());
        }
        let _ = crate::redact::redact_json(&mut v);
    }
}

//! Tests for the known-secret redactor (one test: the registry is process-wide).
use super::*;

#[test]
fn registered_secrets_never_pass_and_the_longest_goes_whole() {
    assert_eq!(scrub("nothing registered"), "nothing registered");
    set(["tok-123456".to_owned(), "Bearer tok-123456".to_owned(), String::new()]);
    assert_eq!(scrub("GET https://h/x?api_key=tok-123456 failed"), format!("GET https://h/x?api_key={MARK} failed"));
    assert_eq!(scrub("Authorization: Bearer tok-123456"), format!("Authorization: {MARK}"));
    assert!(matches!(scrub("clean text"), Cow::Borrowed(_)));
    assert_eq!(scrub_counted("a tok-123456 b tok-123456"), Some((format!("a {MARK} b {MARK}"), 2)));
    assert_eq!(scrub_counted("clean"), None);
    // A reload replaces the set.
    set(["other-secret".to_owned()]);
    assert_eq!(scrub("tok-123456"), "tok-123456");
    assert_eq!(scrub("other-secret"), MARK);
    let mut v = serde_json::json!({"other-secret": ["x other-secret", 1, {"k": "other-secret"}]});
    assert_eq!(scrub_json(&mut v), 2);
    assert_eq!(v, serde_json::json!({"other-secret": [format!("x {MARK}"), 1, {"k": MARK}]}));
    set(Vec::new());
    assert_eq!(scrub("other-secret"), "other-secret");
    // The daemon's own secret survives every later set.
    add("endpoint-token-abc");
    set(["other-secret".to_owned()]);
    assert_eq!(scrub("endpoint-token-abc other-secret"), format!("{MARK} {MARK}"));
    set(Vec::new());
    assert_eq!(scrub("endpoint-token-abc"), MARK);
}

//! JSON with comments and trailing commas (VS Code's JSONC) turned into plain JSON.
//!
//! A small scanner instead of a crate: it only has to know where strings are.
//! Every removed byte becomes a space and line breaks are kept, so serde_json's
//! line and column numbers still point into the file the admin has open.

use super::ImportError;

/// Blanks `//` and `/* */` comments and trailing commas (a `,` followed only
/// by whitespace or comments before `}` or `]`) outside strings, and drops a
/// leading byte-order mark. Everything else, including invalid JSON, is left
/// for serde_json to judge.
pub(crate) fn strip(src: &str) -> Result<String, ImportError> {
    // Windows editors save a BOM, which serde_json rejects.
    let src = src.strip_prefix('\u{feff}').unwrap_or(src);
    let b = src.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    let mut in_string = false;
    // Where in `out` the last comma sits while only whitespace and comments
    // have followed it: if `}` or `]` comes next, it was a trailing comma.
    let mut comma: Option<usize> = None;
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if in_string {
            out.push(c);
            i += 1;
            match c {
                // The escaped byte is copied as is, so `\"` does not end the string.
                b'\\' => {
                    if let Some(&next) = b.get(i) {
                        out.push(next);
                        i += 1;
                    }
                }
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match (c, b.get(i + 1)) {
            (b'"', _) => {
                in_string = true;
                comma = None;
                out.push(c);
                i += 1;
            }
            (b'/', Some(b'/')) => {
                while let Some(&x) = b.get(i) {
                    if x == b'\n' {
                        break;
                    }
                    out.push(blank(x));
                    i += 1;
                }
            }
            (b'/', Some(b'*')) => {
                let end =
                    find(b, i + 2, b"*/").ok_or_else(|| ImportError::UnterminatedComment { line: line_of(b, i) })?;
                for &x in b.get(i..end + 2).unwrap_or_default() {
                    out.push(blank(x));
                }
                i = end + 2;
            }
            (b',', _) => {
                comma = Some(out.len());
                out.push(c);
                i += 1;
            }
            (b'}' | b']', _) => {
                if let Some(slot) = comma.take().and_then(|p| out.get_mut(p)) {
                    *slot = b' ';
                }
                out.push(c);
                i += 1;
            }
            _ => {
                if !c.is_ascii_whitespace() {
                    comma = None;
                }
                out.push(c);
                i += 1;
            }
        }
    }
    // Only whole comments (all their bytes) and ASCII commas were replaced,
    // so the text is still UTF-8; the error arm is unreachable in practice.
    String::from_utf8(out).map_err(|_| ImportError::Json("the file is not valid UTF-8".to_owned()))
}

/// Comment bytes become spaces, except line breaks, which keep line numbers.
fn blank(b: u8) -> u8 {
    if b == b'\n' || b == b'\r' { b } else { b' ' }
}

fn find(haystack: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    haystack.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|p| p + from)
}

/// 1-based line of byte offset `at`.
fn line_of(b: &[u8], at: usize) -> usize {
    b.get(..at).unwrap_or(b).iter().filter(|&&x| x == b'\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(src: &str) -> serde_json::Value {
        let plain = match strip(src) {
            Ok(s) => s,
            Err(e) => panic!("strip failed: {e}"),
        };
        match serde_json::from_str(&plain) {
            Ok(v) => v,
            Err(e) => panic!("not JSON after strip: {e}\n{plain}"),
        }
    }

    #[test]
    fn plain_json_is_unchanged() {
        let src = r#"{"a": [1, 2, {"b": "c"}], "d": null}"#;
        assert_eq!(strip(src).ok().as_deref(), Some(src));
    }

    #[test]
    fn line_and_block_comments_become_spaces_keeping_lines() {
        let src = "// head\n{ /* one\ntwo */ \"a\": 1 // tail\n}";
        let out = strip(src).unwrap_or_default();
        assert_eq!(out.len(), src.len());
        assert_eq!(out.matches('\n').count(), src.matches('\n').count());
        assert_eq!(json(src), serde_json::json!({"a": 1}));
    }

    #[test]
    fn comment_markers_inside_strings_are_kept() {
        let src = r#"{"url": "https://x.example/a//b", "glob": "src/**/*.ts", "c": "/* no */", "d": "// no"}"#;
        assert_eq!(
            json(src),
            serde_json::json!({"url": "https://x.example/a//b", "glob": "src/**/*.ts", "c": "/* no */", "d": "// no"})
        );
    }

    #[test]
    fn escaped_quotes_and_backslashes_do_not_end_strings() {
        let src = r#"{"a": "say \"hi\" // not a comment", "b": "C:\\dir\\", "c": 1,}"#;
        assert_eq!(json(src), serde_json::json!({"a": "say \"hi\" // not a comment", "b": "C:\\dir\\", "c": 1}));
    }

    #[test]
    fn trailing_commas_in_objects_and_arrays() {
        let src = "{\"a\": [1, 2, ], \"b\": {\"c\": true,\n},\n}";
        assert_eq!(json(src), serde_json::json!({"a": [1, 2], "b": {"c": true}}));
    }

    #[test]
    fn trailing_comma_followed_by_comments() {
        let src = "{\"a\": 1, // last one\n /* really */ }";
        assert_eq!(json(src), serde_json::json!({"a": 1}));
    }

    #[test]
    fn commas_inside_strings_are_not_trailing() {
        let src = r#"{"a": "x,}", "b": "[,]"}"#;
        assert_eq!(json(src), serde_json::json!({"a": "x,}", "b": "[,]"}));
    }

    #[test]
    fn a_comma_between_values_is_kept() {
        // Only a comma directly before a closing bracket is removed.
        let src = "[1, /* c */ 2]";
        assert_eq!(json(src), serde_json::json!([1, 2]));
    }

    #[test]
    fn unterminated_block_comment_is_an_error_with_its_line() {
        match strip("{\n\"a\": 1 /* open\n}") {
            Err(ImportError::UnterminatedComment { line }) => assert_eq!(line, 2),
            other => panic!("expected an unterminated comment, got {other:?}"),
        }
    }

    #[test]
    fn byte_order_mark_and_non_ascii_comments() {
        let src = "\u{feff}{ // grüße ✓\n\"k\": \"wert ✓\" /* ü */ }";
        assert_eq!(json(src), serde_json::json!({"k": "wert ✓"}));
    }

    #[test]
    fn json_errors_keep_the_original_line() {
        let plain = strip("// one\n/* two\nthree */\n{\"a\": }").unwrap_or_default();
        match serde_json::from_str::<serde_json::Value>(&plain) {
            Err(e) => assert_eq!(e.line(), 4),
            Ok(v) => panic!("expected an error, got {v}"),
        }
    }

    #[test]
    fn unterminated_string_is_left_to_serde() {
        let plain = strip("{\"a\": \"open // x}").unwrap_or_default();
        assert!(serde_json::from_str::<serde_json::Value>(&plain).is_err());
    }

    #[test]
    fn lone_slash_is_left_to_serde() {
        let plain = strip("{\"a\": 1 / 2}").unwrap_or_default();
        assert!(serde_json::from_str::<serde_json::Value>(&plain).is_err());
    }
}

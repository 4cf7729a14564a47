//! What a result looks like when it leaves mcpd: bounded to `max_result_bytes` with an
//! explicit marker, and with secrets removed.
use rmcp::model::{CallToolResult, ContentBlock};

/// Replaces secrets in text blocks and structured content; returns how many were removed.
pub(super) fn redact_result(result: &mut CallToolResult) -> u32 {
    let mut count = 0usize;
    for block in result.content.iter_mut() {
        let Some(text) = block.as_text() else { continue };
        // The config's own secrets first (exact values), then secrets by their shape.
        let known = crate::known::scrub_counted(&text.text);
        let input = known.as_ref().map_or(text.text.as_str(), |(t, _)| t.as_str());
        let (clean, found) = crate::redact::redact_text(input);
        let n = known.as_ref().map_or(0, |(_, n)| *n) + found.iter().map(|r| r.count).sum::<usize>();
        if n > 0 {
            count += n;
            *block = ContentBlock::text(clean.into_owned());
        }
    }
    if let Some(sc) = result.structured_content.as_mut() {
        count += crate::known::scrub_json(sc);
        count += crate::redact::redact_json(sc).iter().map(|r| r.count).sum::<usize>();
    }
    u32::try_from(count).unwrap_or(u32::MAX)
}

/// Cuts a result to `max` bytes of serialized content: text is cut at a character
/// boundary, blocks that do not fit are dropped, and a final text block states the
/// original size so neither an app nor a model mistakes the cut for the whole.
pub fn bound_result(mut result: CallToolResult, max: usize) -> (CallToolResult, bool, usize) {
    let original = serde_json::to_vec(&result).map(|v| v.len()).unwrap_or(0);
    if original <= max {
        return (result, false, original);
    }
    let mut budget = max;
    let mut kept = Vec::new();
    for block in std::mem::take(&mut result.content) {
        let size = serde_json::to_vec(&block).map(|v| v.len()).unwrap_or(usize::MAX);
        if size <= budget {
            budget -= size;
            kept.push(block);
            continue;
        }
        if let Some(text) = block.as_text() {
            let mut cut = budget.min(text.text.len());
            while cut > 0 && !text.text.is_char_boundary(cut) {
                cut -= 1;
            }
            if cut > 0 {
                kept.push(ContentBlock::text(text.text[..cut].to_owned()));
            }
        }
        budget = 0;
    }
    if result.structured_content.as_ref().and_then(|s| serde_json::to_vec(s).ok()).is_some_and(|v| v.len() > budget) {
        result.structured_content = None;
    }
    kept.push(ContentBlock::text(format!(
        "[mcpd: result truncated: the server sent {original} bytes, the limit is {max} bytes]"
    )));
    result.content = kept;
    (result, true, original)
}

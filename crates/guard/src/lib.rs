//! mcpd's guards, as pure code: no I/O, no async runtime, nothing that can block.
//!
//! # Layout
//! - [`integrity`]: canonical-JSON fingerprints of tool definitions bound to a server identity,
//!   and the scanner (normalisation, invisible characters, injection patterns, sanitised copies).
//! - [`redact`]: the secret filter for tool results (API keys, bearer tokens, private keys).
//! - [`known`]: the config's own secret values, kept out of everything mcpd prints.
//! - [`ssrf`]: the checks for URLs a remote server hands mcpd (schemes, every address form,
//!   private and metadata ranges, the allowlist); the daemon does the DNS and plugs them into reqwest.
//! - [`error_chain`]: the one renderer of an error with its causes.
#![forbid(unsafe_code)]

pub mod integrity;
pub mod known;
pub mod redact;
pub mod ssrf;

#[cfg(test)]
mod props;

/// An error with its causes, `: `-separated (a cause its parent already quotes is skipped):
/// many libraries' own messages ("error sending request") say little without them.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

//! Secret values and `${env:NAME}` / `${file:PATH}` substitution.

use std::fmt;
use std::path::Path;

/// A string that must never be logged: `Debug` and `Display` print
/// `<redacted>`; use [`Secret::expose`] where the value is really needed.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The plain value; call only where it is handed to the server.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A URL safe to log: scheme, host and port are kept; user info, path,
/// query and fragment are replaced by `<redacted>`, because hosted MCP
/// endpoints often carry an API key in any of them.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<redacted>".to_owned();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let host = match authority.rsplit_once('@') {
        Some((_, host)) => format!("<redacted>@{host}"),
        None => authority.to_owned(),
    };
    if tail.is_empty() || tail == "/" {
        format!("{scheme}://{host}{tail}")
    } else {
        format!("{scheme}://{host}/<redacted>")
    }
}

/// Expands `${env:NAME}` and `${file:PATH}` (relative paths against
/// `base_dir`; trailing newlines trimmed) in `raw`; `$${` yields a literal
/// `${`. Every problem in the value is returned, and no message ever contains
/// an expanded value, since those are secrets.
/// Each substituted value is also pushed to `found`, so the daemon can keep it out of
/// everything it prints.
pub(crate) fn expand(
    raw: &str,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    found: &mut Vec<String>,
) -> Result<String, Vec<String>> {
    let mut out = String::with_capacity(raw.len());
    let mut errors = Vec::new();
    let mut rest = raw;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let Some(close) = tail.find('}') else {
                errors.push("unterminated \"${\" (write \"$${\" for a literal \"${\")".to_owned());
                rest = "";
                break;
            };
            match substitute(&tail[..close], base_dir, env) {
                Ok(value) => {
                    out.push_str(&value);
                    found.push(value);
                }
                Err(message) => errors.push(message),
            }
            rest = &tail[close + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    if errors.is_empty() { Ok(out) } else { Err(errors) }
}

/// Resolves the inside of one `${...}`.
fn substitute(inner: &str, base_dir: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let Some((kind, arg)) = inner.split_once(':') else {
        return Err("invalid substitution, expected ${env:NAME} or ${file:PATH}".to_owned());
    };
    match kind {
        "env" if arg.is_empty() => Err("empty variable name in ${env:}".to_owned()),
        "env" => env(arg).ok_or_else(|| format!("environment variable {arg} is not set")),
        "file" if arg.is_empty() => Err("empty path in ${file:}".to_owned()),
        "file" => {
            let path = base_dir.join(arg);
            match std::fs::read_to_string(&path) {
                Ok(content) => Ok(content.trim_end_matches(['\n', '\r']).to_owned()),
                Err(e) => Err(format!("cannot read file {}: {}", quote_path(&path), super::problem::io_message(&e))),
            }
        }
        other => Err(format!("unknown substitution kind \"{other}\", expected \"env\" or \"file\"")),
    }
}

fn quote_path(path: &Path) -> String {
    format!("\"{}\"", path.display())
}

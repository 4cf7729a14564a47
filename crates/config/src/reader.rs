//! Typed reads of spanned TOML values that report problems at the value.
//!
//! Every reader returns `None` after reporting, so callers keep the default
//! and carry on: the loader must collect all problems, not stop at the first.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeString, DeTable, DeValue};

use super::problem::{Problem, line_col};
use super::secret::{Secret, expand};
use super::units::{parse_duration, parse_size};

pub(crate) type Key<'i> = Spanned<DeString<'i>>;
pub(crate) type Val<'i> = Spanned<DeValue<'i>>;

/// The file being read and where its problems go.
pub(crate) struct FileCtx<'a> {
    pub(crate) file: &'a Path,
    /// Base for relative paths and `${file:..}`.
    pub(crate) dir: &'a Path,
    pub(crate) src: &'a str,
    pub(crate) env: &'a dyn Fn(&str) -> Option<String>,
    pub(crate) problems: &'a mut Vec<Problem>,
    /// Every value that came from `${env:}` / `${file:}`, and every [`Secret`] (see
    /// `Config::secrets`).
    pub(crate) secrets: &'a mut Vec<String>,
}

impl FileCtx<'_> {
    pub(crate) fn report(&mut self, span: Range<usize>, message: impl Into<String>) {
        let (line, col) = line_col(self.src, span.start);
        self.problems.push(Problem { file: self.file.to_path_buf(), line, col, message: message.into() });
    }

    /// The source text of a value, for echoing numbers back in messages.
    pub(crate) fn text(&self, v: &Val<'_>) -> &str {
        self.src.get(v.span()).unwrap_or("")
    }

    pub(crate) fn unknown_key(&mut self, key: &Key<'_>, known: &[&str], place: &str) {
        let name = key.get_ref().as_ref();
        let message = match suggest(name, known) {
            Some(close) => format!("unknown key \"{name}\" {place}, did you mean \"{close}\"?"),
            None => format!("unknown key \"{name}\" {place}"),
        };
        self.report(key.span(), message);
    }

    pub(crate) fn type_error(&mut self, expected: &str, key: &str, v: &Val<'_>) {
        let found = a_type(v.get_ref());
        self.report(v.span(), format!("expected {expected} for \"{key}\", found {found}"));
    }

    pub(crate) fn table<'v, 'i>(&mut self, key: &str, v: &'v Val<'i>) -> Option<&'v DeTable<'i>> {
        match v.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => {
                self.type_error("a table", key, v);
                None
            }
        }
    }

    pub(crate) fn string<'v>(&mut self, key: &str, v: &'v Val<'_>) -> Option<&'v str> {
        match v.get_ref() {
            DeValue::String(s) => Some(s.as_ref()),
            _ => {
                self.type_error("a string", key, v);
                None
            }
        }
    }

    /// A string with `${env:..}` / `${file:..}` resolved.
    pub(crate) fn expanded(&mut self, key: &str, v: &Val<'_>) -> Option<String> {
        let raw = self.string(key, v)?;
        self.expand_at(raw, v.span())
    }

    fn expand_at(&mut self, raw: &str, span: Range<usize>) -> Option<String> {
        match expand(raw, self.dir, self.env, self.secrets) {
            Ok(s) => Some(s),
            Err(messages) => {
                for m in messages {
                    self.report(span.clone(), m);
                }
                None
            }
        }
    }

    /// A non-empty expanded path; relative paths are taken against the
    /// file's directory so the config means the same from any cwd.
    pub(crate) fn path(&mut self, key: &str, v: &Val<'_>) -> Option<PathBuf> {
        let s = self.expanded(key, v)?;
        if s.is_empty() {
            self.report(v.span(), format!("\"{key}\" must not be empty"));
            return None;
        }
        Some(self.dir.join(s))
    }

    pub(crate) fn boolean(&mut self, key: &str, v: &Val<'_>) -> Option<bool> {
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.type_error("a boolean", key, v);
                None
            }
        }
    }

    /// An integer in `min..=max` (`max: None` means unbounded above).
    pub(crate) fn integer(&mut self, key: &str, v: &Val<'_>, min: i64, max: Option<i64>) -> Option<i64> {
        let DeValue::Integer(i) = v.get_ref() else {
            self.type_error("an integer", key, v);
            return None;
        };
        let n = i128::from_str_radix(i.as_str(), i.radix()).ok();
        let in_range = n.is_some_and(|n| n >= i128::from(min) && max.is_none_or(|m| n <= i128::from(m)));
        if !in_range {
            let found = self.text(v).to_owned();
            let message = match max {
                Some(max) => format!("\"{key}\" must be between {min} and {max}, found {found}"),
                None => format!("\"{key}\" must be at least {min}, found {found}"),
            };
            self.report(v.span(), message);
            return None;
        }
        n.and_then(|n| i64::try_from(n).ok())
    }

    /// A float (integers accepted, `2` meaning `2.0`) in `min..=max`.
    pub(crate) fn number(&mut self, key: &str, v: &Val<'_>, min: f64, max: Option<f64>) -> Option<f64> {
        let parsed = match v.get_ref() {
            DeValue::Float(f) => f.as_str().parse::<f64>().ok(),
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                .ok()
                // Precision loss is irrelevant for tuning knobs of this size.
                .map(|n| n as f64),
            _ => {
                self.type_error("a number", key, v);
                return None;
            }
        };
        // Written as a positive range test so NaN is rejected too.
        let ok = parsed.filter(|x| *x >= min && max.is_none_or(|m| *x <= m));
        if ok.is_none() {
            let found = self.text(v).to_owned();
            let message = match max {
                Some(max) => {
                    format!("\"{key}\" must be between {min:?} and {max:?}, found {found}")
                }
                None => format!("\"{key}\" must be at least {min:?}, found {found}"),
            };
            self.report(v.span(), message);
        }
        ok
    }

    /// "30s"-style strings or integer milliseconds.
    pub(crate) fn duration(&mut self, key: &str, v: &Val<'_>) -> Option<Duration> {
        match v.get_ref() {
            DeValue::String(s) => {
                let parsed = parse_duration(s);
                if parsed.is_none() {
                    self.report(
                        v.span(),
                        format!(
                            "invalid duration \"{s}\" for \"{key}\", use e.g. \"500ms\", \"30s\", \"5m\" or an integer of milliseconds"
                        ),
                    );
                }
                parsed
            }
            DeValue::Integer(_) => {
                let ms = self.integer(key, v, 0, None)?;
                u64::try_from(ms).ok().map(Duration::from_millis)
            }
            _ => {
                self.type_error("a duration", key, v);
                None
            }
        }
    }

    /// A duration that must be greater than zero.
    pub(crate) fn positive_duration(&mut self, key: &str, v: &Val<'_>) -> Option<Duration> {
        let d = self.duration(key, v)?;
        if d.is_zero() {
            self.report(v.span(), format!("\"{key}\" must be greater than zero"));
            return None;
        }
        Some(d)
    }

    /// Integer bytes or "16MiB"-style strings, at least `min`.
    pub(crate) fn size(&mut self, key: &str, v: &Val<'_>, min: usize) -> Option<usize> {
        let bytes = match v.get_ref() {
            DeValue::String(s) => match parse_size(s) {
                Some(n) => n,
                None => {
                    self.report(
                        v.span(),
                        format!("invalid size \"{s}\" for \"{key}\", use e.g. 1048576, \"512KiB\" or \"16MiB\""),
                    );
                    return None;
                }
            },
            DeValue::Integer(_) => u64::try_from(self.integer(key, v, 0, None)?).ok()?,
            _ => {
                self.type_error("a size", key, v);
                return None;
            }
        };
        let Ok(bytes) = usize::try_from(bytes) else {
            self.report(v.span(), format!("\"{key}\" is too large"));
            return None;
        };
        if bytes < min {
            self.report(v.span(), format!("\"{key}\" must be at least {min} bytes, found {bytes}"));
            return None;
        }
        Some(bytes)
    }

    /// One of a fixed set of strings.
    pub(crate) fn choice<T: Copy>(&mut self, key: &str, v: &Val<'_>, options: &[(&str, T)]) -> Option<T> {
        let s = self.string(key, v)?;
        if let Some((_, t)) = options.iter().find(|(name, _)| *name == s) {
            return Some(*t);
        }
        let allowed = options.iter().map(|(name, _)| format!("\"{name}\"")).collect::<Vec<_>>().join(", ");
        let s = s.to_owned();
        self.report(v.span(), format!("invalid value \"{s}\" for \"{key}\", expected one of {allowed}"));
        None
    }

    /// An array of strings, optionally `${..}`-expanded; each item is checked
    /// by `check` (returning a problem message) at the item's position.
    pub(crate) fn strings(
        &mut self,
        key: &str,
        v: &Val<'_>,
        expand_items: bool,
        check: &dyn Fn(&str) -> Option<String>,
    ) -> Option<Vec<String>> {
        let DeValue::Array(items) = v.get_ref() else {
            self.type_error("an array of strings", key, v);
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let item_key = format!("{key}[{i}]");
            let value = if expand_items {
                self.expanded(&item_key, item)
            } else {
                self.string(&item_key, item).map(str::to_owned)
            };
            match value {
                Some(s) => match check(&s) {
                    Some(message) => {
                        self.report(item.span(), message);
                        ok = false;
                    }
                    None => out.push(s),
                },
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// A table of expanded secret strings; `check(name, value)` validates
    /// an entry and must never echo the value.
    pub(crate) fn secrets(
        &mut self,
        key: &str,
        v: &Val<'_>,
        check_name: &dyn Fn(&str) -> Option<String>,
        check_value: &dyn Fn(&str, &str) -> Option<String>,
    ) -> Option<BTreeMap<String, Secret>> {
        let DeValue::Table(t) = v.get_ref() else {
            self.type_error("a table of strings", key, v);
            return None;
        };
        let mut out = BTreeMap::new();
        let mut ok = true;
        for (k, item) in t.iter() {
            let name = k.get_ref().as_ref();
            if let Some(message) = check_name(name) {
                self.report(k.span(), message);
                ok = false;
            }
            match self.expanded(&format!("{key}.{name}"), item) {
                Some(value) => {
                    if let Some(message) = check_value(name, &value) {
                        self.report(item.span(), message);
                        ok = false;
                    }
                    self.secrets.push(value.clone());
                    out.insert(name.to_owned(), Secret::new(value));
                }
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// Converts a reserved, un-validated table to a plain `toml::Value`.
    pub(crate) fn raw_value(&mut self, v: &Val<'_>) -> Option<toml::Value> {
        Some(match v.get_ref() {
            DeValue::String(s) => toml::Value::String(s.to_string()),
            DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) => toml::Value::Integer(n),
                Err(_) => {
                    self.report(v.span(), "integer out of range");
                    return None;
                }
            },
            DeValue::Float(f) => match f.as_str().parse::<f64>() {
                Ok(x) => toml::Value::Float(x),
                Err(_) => {
                    self.report(v.span(), "invalid float");
                    return None;
                }
            },
            DeValue::Boolean(b) => toml::Value::Boolean(*b),
            DeValue::Datetime(d) => toml::Value::Datetime(*d),
            DeValue::Array(a) => {
                let mut out = Vec::with_capacity(a.len());
                for item in a.iter() {
                    out.push(self.raw_value(item)?);
                }
                toml::Value::Array(out)
            }
            DeValue::Table(t) => {
                let mut out = toml::Table::new();
                for (k, item) in t.iter() {
                    out.insert(k.get_ref().to_string(), self.raw_value(item)?);
                }
                toml::Value::Table(out)
            }
        })
    }
}

/// "a string", "an integer", ... for type-mismatch messages.
fn a_type(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a datetime",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// The known key most similar to `unknown`, if it is plausibly a typo.
pub(crate) fn suggest<'k>(unknown: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (strsim::jaro_winkler(unknown, k), *k))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

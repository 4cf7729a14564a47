//! Small helpers shared by several modules: wall-clock time, wildcard globs, error chains, bounded byte rings.
use std::collections::VecDeque;

/// Milliseconds since the Unix epoch (wall clock, for display only).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

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

/// Matches `name` against a glob with `*` (any run) and `?` (one character).
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    // Position of the last `*` and the name index it was matched at, for backtracking.
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// Keeps the last `cap` bytes of lines written to it (a server's stderr).
#[derive(Debug)]
pub struct LineRing {
    lines: VecDeque<String>,
    bytes: usize,
    cap: usize,
}

impl LineRing {
    pub fn new(cap: usize) -> Self {
        Self { lines: VecDeque::new(), bytes: 0, cap }
    }

    pub fn push(&mut self, line: &str) {
        let mut line = line.to_owned();
        if line.len() > self.cap {
            let mut cut = self.cap;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
        }
        self.bytes += line.len();
        self.lines.push_back(line);
        while self.bytes > self.cap {
            match self.lines.pop_front() {
                Some(old) => self.bytes -= old.len(),
                None => break,
            }
        }
    }

    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.lines.iter().map(String::as_str)
    }

    pub fn last(&self) -> Option<&str> {
        self.lines.back().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("*", "anything"));
        assert!(glob_match("get-*", "get-sum"));
        assert!(!glob_match("get-*", "echo"));
        assert!(glob_match("e?ho", "echo"));
        assert!(glob_match("*sum*", "get-sum-x"));
        assert!(!glob_match("a*b", "acbd"));
        assert!(glob_match("", ""));
        assert!(!glob_match("", "x"));
    }

    #[test]
    fn ring_is_bounded() {
        let mut r = LineRing::new(10);
        for i in 0..100 {
            r.push(&format!("line{i}"));
        }
        assert!(r.lines().map(str::len).sum::<usize>() <= 10);
        assert_eq!(r.last(), Some("line99"));
        r.push(&"x".repeat(50));
        assert_eq!(r.last().map(str::len), Some(10));
    }
}

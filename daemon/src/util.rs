//! Small helpers shared by several modules: wall-clock time, error chains, bounded byte rings.
use std::collections::VecDeque;

/// Milliseconds since the Unix epoch (wall clock, for display only).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

pub use mcpd_guard::error_chain;

/// A writer that replaces the config's secret values (`known`) in what passes through it:
/// the log writer, so third-party crates' messages (rmcp's and reqwest's errors quote URLs)
/// are covered too. The formatter writes one event per call.
pub struct Scrubbed<W>(pub W);

impl<W: std::io::Write> std::io::Write for Scrubbed<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match std::str::from_utf8(buf) {
            Ok(text) => self.0.write_all(crate::known::scrub(text).as_bytes())?,
            // Not text: pass it on as it is (a secret is text, and half a line cannot hold one
            // that the formatter splits, since it writes whole events).
            Err(_) => self.0.write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
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

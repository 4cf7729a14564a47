//! A reader guard for stdio servers: resets the session on an oversized message or on
//! output that cannot be JSON-RPC, instead of buffering it or silently skipping it.
use std::{
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use tokio::io::{AsyncRead, ReadBuf};

/// Why the reader gave up; read by the session task to explain the reset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    TooLarge { limit: usize },
    NotJson { first_byte: u8 },
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::TooLarge { limit } => write!(f, "server sent a message larger than {limit} bytes"),
            Fault::NotJson { first_byte } => write!(
                f,
                "server wrote non-JSON output to stdout (line starts with byte 0x{first_byte:02x}); stdout is reserved for MCP messages"
            ),
        }
    }
}

pub type FaultSlot = Arc<Mutex<Option<Fault>>>;

pub struct LimitedReader<R> {
    inner: R,
    limit: usize,
    line_len: usize,
    significant: bool,
    fault: FaultSlot,
    /// Reads past a flooding server's message budget wait (stdio servers have one).
    budget: Option<super::budget::Budget>,
}

impl<R> LimitedReader<R> {
    pub fn new(inner: R, limit: usize, fault: FaultSlot) -> Self {
        Self { inner, limit, line_len: 0, significant: false, fault, budget: None }
    }

    pub fn with_budget(mut self, budget: super::budget::Budget) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Checks newly read bytes; returns the fault they cause, if any.
    fn scan(&mut self, bytes: &[u8]) -> Option<Fault> {
        for &b in bytes {
            if b == b'\n' {
                self.line_len = 0;
                self.significant = false;
                continue;
            }
            self.line_len += 1;
            if self.line_len > self.limit {
                return Some(Fault::TooLarge { limit: self.limit });
            }
            // Only the first significant byte of a line is checked: a JSON-RPC message
            // is an object or a batch array.
            if !self.significant && !matches!(b, b' ' | b'\t' | b'\r') {
                if !matches!(b, b'{' | b'[') {
                    return Some(Fault::NotJson { first_byte: b });
                }
                self.significant = true;
            }
        }
        None
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for LimitedReader<R> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        if let Some(b) = &mut this.budget
            && b.poll_ready(cx).is_pending()
        {
            return Poll::Pending;
        }
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if let Some(fault) = this.scan(&buf.filled()[before..]) {
                    let msg = fault.to_string();
                    *this.fault.lock().unwrap_or_else(|p| p.into_inner()) = Some(fault);
                    // Hide what was read: the transport must not parse part of a bad message.
                    buf.set_filled(before);
                    return Poll::Ready(Err(std::io::Error::new(std::io::ErrorKind::InvalidData, msg)));
                }
                if let Some(b) = &mut this.budget {
                    b.charge(&buf.filled()[before..]);
                }
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(limit: usize) -> LimitedReader<&'static [u8]> {
        LimitedReader::new(&b""[..], limit, Arc::default())
    }

    #[test]
    fn accepts_json_lines() {
        let mut r = reader(100);
        assert_eq!(r.scan(b"{\"a\":1}\n[1]\n  {\"b\":2}\r\n\n"), None);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64),
            ..Default::default()
        })]

        /// However the bytes arrive, the guard's verdict is the same as for them whole, and
        /// nothing it lets through has a line over the limit or one not starting a JSON value.
        #[test]
        fn the_verdict_does_not_depend_on_how_bytes_arrive(
            // Mostly what lines are made of, so valid streams are common, not only garbage.
            bytes in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::prelude::Just(b'{'), proptest::prelude::Just(b'['), proptest::prelude::Just(b'\n'),
                    proptest::prelude::Just(b' '), proptest::prelude::Just(b'\r'), proptest::prelude::Just(b'a'),
                    proptest::prelude::any::<u8>(),
                ],
                0..600,
            ),
            cuts in proptest::collection::vec(0usize..600, 0..8),
            limit in 1usize..64,
        ) {
            let whole = reader(limit).scan(&bytes);
            let mut r = reader(limit);
            let mut points: Vec<usize> = cuts.into_iter().map(|c| c.min(bytes.len())).collect();
            points.sort_unstable();
            let mut last = 0;
            let mut chunked = None;
            for p in points.into_iter().chain([bytes.len()]) {
                if chunked.is_none() {
                    chunked = r.scan(&bytes[last..p]);
                }
                last = p;
            }
            proptest::prop_assert_eq!(&whole, &chunked);
            if whole.is_none() {
                for line in bytes.split(|b| *b == b'\n') {
                    proptest::prop_assert!(line.len() <= limit);
                    if let Some(first) = line.iter().find(|b| !matches!(b, b' ' | b'\t' | b'\r')) {
                        proptest::prop_assert!(matches!(first, b'{' | b'['), "a line starts with {:?}", *first as char);
                    }
                }
            }
        }

        /// The JSON-RPC decoding every line goes through takes any bytes without panicking.
        #[test]
        fn any_line_is_decoded_or_refused(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let _ = serde_json::from_slice::<rmcp::service::RxJsonRpcMessage<rmcp::RoleClient>>(&bytes);
            let _ = serde_json::from_slice::<rmcp::service::RxJsonRpcMessage<rmcp::RoleServer>>(&bytes);
        }

        /// Lines shaped like JSON-RPC (objects with its keys, any values) decode or are refused.
        #[test]
        fn json_rpc_shaped_lines_are_decoded_or_refused(
            id in proptest::prelude::any::<Option<i64>>(),
            method in "[a-z/_]{0,24}",
            key in "[a-zA-Z_]{0,10}",
            value in proptest::prelude::any::<String>(),
        ) {
            let mut msg = serde_json::json!({"jsonrpc": "2.0", "method": method, "params": {key.clone(): value.clone()}});
            if let Some(id) = id {
                msg["id"] = id.into();
            }
            let _ = serde_json::from_value::<rmcp::service::RxJsonRpcMessage<rmcp::RoleClient>>(msg.clone());
            msg["result"] = serde_json::json!({key: value});
            let _ = serde_json::from_value::<rmcp::service::RxJsonRpcMessage<rmcp::RoleClient>>(msg);
        }
    }

    #[test]
    fn rejects_garbage_and_oversize() {
        assert_eq!(reader(100).scan(b"hello\n"), Some(Fault::NotJson { first_byte: b'h' }));
        assert_eq!(reader(4).scan(b"{\"abc\":1}\n"), Some(Fault::TooLarge { limit: 4 }));
        // The count restarts at each newline.
        assert_eq!(reader(4).scan(b"{12}\n{34}\n"), None);
    }
}

//! A message budget for stdio servers: a server that floods notifications is read only as
//! fast as its budget allows, so its pipe fills and it blocks, instead of the daemon
//! spending its CPU and memory parsing the flood while healthy servers wait.
//!
//! Every message mcpd writes to a server earns it [`ANSWER_CREDITS`] messages back (the
//! answer, its progress, its logs), so answers are never slowed however many calls run.
//! Beyond those a server may send `rate` messages per second, with a burst of one
//! second's worth. Counting is by newline, the stdio framing: the reader never parses.
use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use tokio::{
    io::AsyncWrite,
    time::{Instant, Sleep},
};

/// Messages a server may send back for each message mcpd sent it.
pub const ANSWER_CREDITS: u64 = 8;
/// Credits a server may bank: what a well-behaved past buys it. Without a cap, a server
/// that answered a million calls could then flood unthrottled on the credits they left;
/// with it, a flood is unthrottled for at most this many lines. Far above what answers to
/// `max_concurrency` (at most 1024) calls in flight need.
const CREDIT_CAP: u64 = 16 * 1024;
/// A throttled server is logged at most this often.
const WARN_EVERY: Duration = Duration::from_secs(30);

/// Shared between the writer (earns credits) and the reader (spends them).
#[derive(Debug, Default)]
pub struct Credits(AtomicU64);

impl Credits {
    fn earn(&self, messages: u64) {
        let more = messages.saturating_mul(ANSWER_CREDITS);
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |have| Some(have.saturating_add(more).min(CREDIT_CAP)));
    }

    /// Spends up to `n` credits; returns how many of `n` were not covered.
    fn spend(&self, n: u64) -> u64 {
        let mut uncovered = n;
        let _ = self.0.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |have| {
            let used = have.min(n);
            uncovered = n - used;
            Some(have - used)
        });
        uncovered
    }
}

/// The reader's side: a token bucket over messages not covered by credits.
pub struct Budget {
    server: Arc<str>,
    credits: Arc<Credits>,
    rate: f64,
    tokens: f64,
    last: Instant,
    sleep: Option<Pin<Box<Sleep>>>,
    warned: Option<Instant>,
}

impl Budget {
    /// `rate` messages per second beyond answers; the writer side is [`CreditWriter`].
    pub fn new(server: Arc<str>, rate: u32, credits: Arc<Credits>) -> Self {
        let rate = f64::from(rate.max(1));
        Self { server, credits, rate, tokens: rate, last: Instant::now(), sleep: None, warned: None }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.rate);
    }

    /// Ready when the server may be read again; Pending (with a timer armed) while it is
    /// over budget.
    pub fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if self.tokens >= 0.0 {
                self.sleep = None;
                return Poll::Ready(());
            }
            let now = Instant::now();
            self.refill(now);
            if self.tokens >= 0.0 {
                continue;
            }
            let wait = Duration::from_secs_f64(-self.tokens / self.rate);
            if self.warned.is_none_or(|at| now.saturating_duration_since(at) >= WARN_EVERY) {
                self.warned = Some(now);
                tracing::warn!(
                    server = %self.server,
                    rate = self.rate,
                    "server sends more unrequested messages than its notification_rate; reading it slower"
                );
            }
            let sleep = self.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(now + wait)));
            sleep.as_mut().reset(now + wait);
            match sleep.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(()) => continue,
            }
        }
    }

    /// Charges `bytes` just read: credits first, then the bucket (which may go negative:
    /// the next read waits).
    pub fn charge(&mut self, bytes: &[u8]) {
        let lines = bytes.iter().filter(|b| **b == b'\n').count() as u64;
        if lines == 0 {
            return;
        }
        let uncovered = self.credits.spend(lines);
        if uncovered > 0 {
            self.refill(Instant::now());
            self.tokens -= uncovered as f64;
        }
    }
}

/// Wraps a server's stdin: every line written earns the server answer credits.
pub struct CreditWriter<W> {
    inner: W,
    credits: Arc<Credits>,
}

impl<W> CreditWriter<W> {
    pub fn new(inner: W, credits: Arc<Credits>) -> Self {
        Self { inner, credits }
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for CreditWriter<W> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &r {
            let lines = buf[..*n].iter().filter(|b| **b == b'\n').count() as u64;
            if lines > 0 {
                this.credits.earn(lines);
            }
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_spend_credits_before_the_bucket() {
        let credits = Arc::new(Credits::default());
        credits.earn(2);
        assert_eq!(credits.spend(5), 0);
        assert_eq!(credits.spend(20), 9);
        assert_eq!(credits.spend(1), 1);
        // A long good past banks at most the cap.
        credits.earn(u64::MAX / 16);
        assert_eq!(credits.spend(u64::MAX), u64::MAX - CREDIT_CAP);
    }

    #[tokio::test(start_paused = true)]
    async fn a_flood_is_read_at_the_rate_and_answers_are_not_slowed() {
        let credits = Arc::new(Credits::default());
        let mut b = Budget::new("f".into(), 100, credits.clone());
        // One second's burst passes at once.
        b.charge(&[b'\n'; 100]);
        assert!(std::future::poll_fn(|cx| Poll::Ready(b.poll_ready(cx))).await.is_ready());
        // Past it, the reader waits about the time the excess takes at the rate.
        b.charge(&[b'\n'; 50]);
        let start = Instant::now();
        std::future::poll_fn(|cx| b.poll_ready(cx)).await;
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(490) && waited <= Duration::from_millis(520), "{waited:?}");
        // Answers to what mcpd sent are covered by credits, however many.
        credits.earn(1000);
        b.charge(&[b'\n'; 8000]);
        let start = Instant::now();
        std::future::poll_fn(|cx| b.poll_ready(cx)).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}

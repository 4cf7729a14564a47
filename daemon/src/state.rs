//! A server's lifecycle state as status, events and the call path see it.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerState {
    Starting,
    Ready,
    Degraded,
    Backoff,
    CircuitOpen,
    /// The server asked for authorization; no retries until the config changes.
    NeedsAuth,
    Disabled,
    Stopped,
}

impl ServerState {
    pub fn as_str(self) -> &'static str {
        match self {
            ServerState::Starting => "starting",
            ServerState::Ready => "ready",
            ServerState::Degraded => "degraded",
            ServerState::Backoff => "backoff",
            ServerState::CircuitOpen => "circuit-open",
            ServerState::NeedsAuth => "needs-auth",
            ServerState::Disabled => "disabled",
            ServerState::Stopped => "stopped",
        }
    }

    /// Whether calls may be sent in this state.
    pub fn is_connected(self) -> bool {
        matches!(self, ServerState::Ready | ServerState::Degraded)
    }
}

/// What happens to a session: the only inputs that change a server's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// A connect attempt begins.
    Start,
    /// Connected, tools listed and published.
    Connected,
    /// A re-list or a liveness ping failed; the session is still up.
    Degrade,
    /// A re-list or a ping succeeded again.
    Recover,
    /// The server asked for authorization; nothing is retried until someone logs in.
    NeedAuth,
    /// The session ended with a failure; `circuit_open` when the crash-loop breaker tripped.
    Failed { circuit_open: bool },
    /// The server is disabled in the config.
    Disable,
    /// The session task ended (shutdown, or the server was removed or changed).
    Stop,
}

// === impl ServerState ===

impl ServerState {
    /// The state after `t`, or `None` when `t` does not apply here (the state stays): the
    /// whole state machine, in one place.
    ///
    /// `starting → ready ⇄ degraded`; any live state `→ backoff | circuit-open` on failure and
    /// back to `starting` for the next attempt; `starting → needs-auth` (and `starting` again
    /// after a login); `disabled` and `stopped` from anywhere.
    pub fn next(self, t: Transition) -> Option<ServerState> {
        use ServerState::*;
        use Transition as T;
        let to = match (self, t) {
            (_, T::Stop) => Stopped,
            (_, T::Disable) => Disabled,
            (Stopped | Disabled, _) => return None,
            (Starting | Backoff | CircuitOpen | NeedsAuth | Ready | Degraded, T::Start) => Starting,
            (Starting, T::Connected) => Ready,
            (Starting, T::NeedAuth) => NeedsAuth,
            (Ready | Degraded, T::Degrade) => Degraded,
            (Degraded, T::Recover) => Ready,
            (Starting | Ready | Degraded, T::Failed { circuit_open }) => {
                if circuit_open {
                    CircuitOpen
                } else {
                    Backoff
                }
            }
            _ => return None,
        };
        Some(to)
    }
}

/// Why a session ended: typed, so the loop decides what comes next without reading messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionEnd {
    /// Cancelled: the daemon is stopping, or the server was removed or changed.
    #[error("stopped")]
    Stopped,
    /// New OAuth credentials (a login, a step-up, a logout): reconnect at once; not a failure.
    #[error("re-authorized")]
    Reauthorized,
    /// Connecting, the handshake or the first tool listing failed.
    #[error("{0}")]
    ConnectFailed(String),
    /// The first tool listing was refused with HTTP 401/403 (the challenge, possibly
    /// empty): the server took the handshake but not the token, e.g. after its
    /// authorization server moved. Handled as a refused handshake: `needs-auth`.
    #[error("the server requires authorization")]
    NeedsAuth(String),
    /// The connection closed or the transport failed (an oversized or non-JSON message).
    #[error("{0}")]
    Lost(String),
    /// The stdio server process ended.
    #[error("{0}")]
    ProcessExited(String),
    /// The server stopped answering liveness pings.
    #[error("{0}")]
    Unresponsive(String),
}

impl SessionEnd {
    /// Whether this end counts against the server (backoff, crash-loop breaker, an error event).
    pub fn is_failure(&self) -> bool {
        !matches!(self, SessionEnd::Stopped | SessionEnd::Reauthorized)
    }
}

#[cfg(test)]
mod tests {
    use super::{ServerState::*, Transition as T, *};

    #[test]
    fn the_lifecycle_goes_where_it_should() {
        let steps = [
            (Starting, T::Connected, Some(Ready)),
            (Ready, T::Degrade, Some(Degraded)),
            (Degraded, T::Degrade, Some(Degraded)),
            (Degraded, T::Recover, Some(Ready)),
            (Ready, T::Recover, None),
            (Ready, T::Failed { circuit_open: false }, Some(Backoff)),
            (Degraded, T::Failed { circuit_open: true }, Some(CircuitOpen)),
            (Starting, T::Failed { circuit_open: false }, Some(Backoff)),
            (Backoff, T::Start, Some(Starting)),
            (CircuitOpen, T::Start, Some(Starting)),
            (Starting, T::NeedAuth, Some(NeedsAuth)),
            (NeedsAuth, T::Start, Some(Starting)),
            // A session re-authorized while connected starts over without a failure.
            (Ready, T::Start, Some(Starting)),
        ];
        for (from, t, want) in steps {
            assert_eq!(from.next(t), want, "{from:?} + {t:?}");
        }
    }

    #[test]
    fn transitions_that_make_no_sense_change_nothing() {
        for (from, t) in [
            (Backoff, T::Connected),
            (NeedsAuth, T::Connected),
            (Backoff, T::Degrade),
            (Ready, T::NeedAuth),
            (Backoff, T::Failed { circuit_open: false }),
            (Stopped, T::Start),
            (Disabled, T::Connected),
        ] {
            assert_eq!(from.next(t), None, "{from:?} + {t:?}");
        }
        // Stop and Disable apply from anywhere.
        for from in [Starting, Ready, Degraded, Backoff, CircuitOpen, NeedsAuth, Disabled, Stopped] {
            assert_eq!(from.next(T::Stop), Some(Stopped));
            assert_eq!(from.next(T::Disable), Some(Disabled));
        }
    }

    #[test]
    fn only_real_failures_count() {
        assert!(!SessionEnd::Stopped.is_failure());
        assert!(!SessionEnd::Reauthorized.is_failure());
        assert!(SessionEnd::Lost("connection closed by the server".into()).is_failure());
        assert_eq!(
            SessionEnd::ProcessExited("server process exited with 1".into()).to_string(),
            "server process exited with 1"
        );
    }
}

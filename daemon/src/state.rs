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

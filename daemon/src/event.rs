//! Daemon events (state changes, tool list changes, errors), fanned out to WatchEvents subscribers.
use tokio::sync::broadcast;

use crate::state::ServerState;

/// Bounded so a slow watcher can never grow the daemon's memory; a watcher that
/// falls behind is told how many events it lost.
const CAPACITY: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    State,
    ToolsChanged,
    Error,
    MessageTooLarge,
    /// A subscribed resource changed (message: its URI); its cache entry is gone.
    ResourceUpdated,
    ResourcesChanged,
    PromptsChanged,
    /// A tool became uncallable (message: `server.tool: why`).
    Quarantined,
    /// An admin approved or revoked a tool (message: `server.tool approved|revoked`).
    TrustChanged,
    /// A server's sampling request was refused (message: why).
    SamplingRefused,
    /// An elicitation was declined by mcpd's rules (message: why).
    ElicitationDeclined,
    /// A URL-mode elicitation finished (message: its elicitationId).
    ElicitationComplete,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::State => "state",
            EventKind::ToolsChanged => "tools_changed",
            EventKind::Error => "error",
            EventKind::MessageTooLarge => "message_too_large",
            EventKind::ResourceUpdated => "resource_updated",
            EventKind::ResourcesChanged => "resources_changed",
            EventKind::PromptsChanged => "prompts_changed",
            EventKind::Quarantined => "quarantined",
            EventKind::TrustChanged => "trust_changed",
            EventKind::SamplingRefused => "sampling_refused",
            EventKind::ElicitationDeclined => "elicitation_declined",
            EventKind::ElicitationComplete => "elicitation_complete",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Event {
    pub unix_ms: u64,
    pub server: String,
    pub kind: EventKind,
    pub state: Option<ServerState>,
    pub message: String,
}

#[derive(Debug, Clone)]
pub struct EventBus {
    tx: broadcast::Sender<Event>,
}

// === impl EventBus ===

impl Default for EventBus {
    fn default() -> Self {
        Self { tx: broadcast::channel(CAPACITY).0 }
    }
}

impl EventBus {
    pub fn emit(&self, server: &str, kind: EventKind, state: Option<ServerState>, message: impl Into<String>) {
        // No receiver is fine: nobody is watching.
        let _ = self.tx.send(Event {
            unix_ms: crate::util::unix_ms(),
            server: server.to_owned(),
            kind,
            state,
            message: message.into(),
        });
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}

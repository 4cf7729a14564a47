//! Attached applications: the route by which server requests (elicitation, sampling)
//! reach a person or an app, and their answers come back.
//!
//! An app attaches over the gRPC `Attach` stream and says which requests it answers and
//! for which servers. A request goes to the first matching app; it times out (and is
//! declined) if the app does not answer, and detaching declines everything pending.
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::sync::{mpsc, oneshot};

/// Longest an app may take to answer before the server gets a decline.
pub const DEFAULT_REPLY_TIMEOUT: Duration = Duration::from_secs(300);
/// Requests queued to one app before further ones are declined.
const APP_QUEUE: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    Elicitation,
    Sampling,
}

impl RequestKind {
    pub fn method(self) -> &'static str {
        match self {
            RequestKind::Elicitation => "elicitation/create",
            RequestKind::Sampling => "sampling/createMessage",
        }
    }
}

/// A request on its way to an app.
#[derive(Debug, Clone)]
pub struct Routed {
    pub id: String,
    pub server: String,
    pub kind: RequestKind,
    pub params: serde_json::Value,
    pub timeout: Duration,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RouteError {
    #[error("no attached application answers {0} requests")]
    NoApp(&'static str),
    #[error("the attached application did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the attached application detached before answering")]
    Detached,
    #[error("the attached application is busy ({APP_QUEUE} requests pending)")]
    Busy,
    #[error("the attached application refused: {0}")]
    Refused(String),
}

type Pending = Mutex<HashMap<String, oneshot::Sender<Result<serde_json::Value, String>>>>;

struct App {
    attach_id: String,
    name: String,
    servers: Vec<String>,
    elicitation: bool,
    sampling: bool,
    tx: mpsc::Sender<Routed>,
    pending: Arc<Pending>,
}

impl App {
    fn accepts(&self, server: &str, kind: RequestKind) -> bool {
        let wants = match kind {
            RequestKind::Elicitation => self.elicitation,
            RequestKind::Sampling => self.sampling,
        };
        wants && (self.servers.is_empty() || self.servers.iter().any(|s| s == server))
    }
}

/// What an app declares when it attaches.
#[derive(Debug, Clone, Default)]
pub struct Hello {
    pub app: String,
    pub servers: Vec<String>,
    pub elicitation: bool,
    pub sampling: bool,
}

/// Held by the API for one attached app; dropping it detaches the app.
pub struct Attachment {
    pub attach_id: String,
    pub requests: mpsc::Receiver<Routed>,
    pending: Arc<Pending>,
    registry: Arc<Attachments>,
}

impl Attachment {
    /// Delivers the app's answer to the waiting server request; unknown ids are ignored
    /// (the request may have timed out already).
    pub fn reply(&self, id: &str, outcome: Result<serde_json::Value, String>) -> bool {
        let tx = self.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
        tx.is_some_and(|tx| tx.send(outcome).is_ok())
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        // Dropping the pending senders makes every waiting request see Detached.
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.registry.detach(&self.attach_id);
    }
}

#[derive(Default)]
pub struct Attachments {
    apps: Mutex<Vec<App>>,
}

impl std::fmt::Debug for Attachments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attachments").field("apps", &self.lock().len()).finish()
    }
}

// === impl Attachments ===

impl Attachments {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<App>> {
        self.apps.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn attach(self: &Arc<Self>, hello: Hello) -> Attachment {
        let (tx, rx) = mpsc::channel(APP_QUEUE);
        let pending: Arc<Pending> = Arc::default();
        let attach_id = random_id();
        tracing::info!(app = %hello.app, attach_id = %attach_id, elicitation = hello.elicitation, sampling = hello.sampling, "app attached");
        self.lock().push(App {
            attach_id: attach_id.clone(),
            name: hello.app,
            servers: hello.servers,
            elicitation: hello.elicitation,
            sampling: hello.sampling,
            tx,
            pending: pending.clone(),
        });
        Attachment { attach_id, requests: rx, pending, registry: self.clone() }
    }

    fn detach(&self, attach_id: &str) {
        let mut apps = self.lock();
        if let Some(pos) = apps.iter().position(|a| a.attach_id == attach_id) {
            let app = apps.remove(pos);
            tracing::info!(app = %app.name, attach_id, "app detached");
        }
    }

    pub fn has_app_for(&self, server: &str, kind: RequestKind) -> bool {
        self.lock().iter().any(|a| a.accepts(server, kind))
    }

    /// Sends a server request to the first app that answers it and waits for the reply.
    pub async fn route(
        &self,
        server: &str,
        kind: RequestKind,
        params: serde_json::Value,
        timeout: Duration,
    ) -> Result<serde_json::Value, RouteError> {
        let id = random_id();
        let (reply_tx, reply_rx) = oneshot::channel();
        let (tx, pending) = {
            let apps = self.lock();
            let app = apps.iter().find(|a| a.accepts(server, kind)).ok_or(RouteError::NoApp(kind.method()))?;
            (app.tx.clone(), app.pending.clone())
        };
        pending.lock().unwrap_or_else(|p| p.into_inner()).insert(id.clone(), reply_tx);
        let routed = Routed { id: id.clone(), server: server.to_owned(), kind, params, timeout };
        if tx.try_send(routed).is_err() {
            pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
            return Err(RouteError::Busy);
        }
        let outcome = tokio::time::timeout(timeout, reply_rx).await;
        pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
        match outcome {
            Err(_) => Err(RouteError::Timeout(timeout)),
            Ok(Err(_)) => Err(RouteError::Detached),
            Ok(Ok(Ok(v))) => Ok(v),
            Ok(Ok(Err(msg))) => Err(RouteError::Refused(msg)),
        }
    }
}

/// 128 random bits as hex: ids carry no meaning and no credential.
pub fn random_id() -> String {
    let bits: u128 = rand::random();
    format!("{bits:032x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(servers: &[&str]) -> Hello {
        Hello {
            app: "t".into(),
            servers: servers.iter().map(|s| (*s).to_owned()).collect(),
            elicitation: true,
            sampling: false,
        }
    }

    #[tokio::test]
    async fn routes_to_a_matching_app_and_back() {
        let reg = Arc::new(Attachments::default());
        let mut app = reg.attach(hello(&["a"]));
        assert!(reg.has_app_for("a", RequestKind::Elicitation));
        assert!(!reg.has_app_for("b", RequestKind::Elicitation));
        assert!(!reg.has_app_for("a", RequestKind::Sampling));
        let reg2 = reg.clone();
        let call = tokio::spawn(async move {
            reg2.route("a", RequestKind::Elicitation, serde_json::json!({"x": 1}), Duration::from_secs(5)).await
        });
        let req = app.requests.recv().await.unwrap();
        assert_eq!(req.params["x"], 1);
        assert!(app.reply(&req.id, Ok(serde_json::json!({"action": "accept"}))));
        assert_eq!(call.await.unwrap().unwrap()["action"], "accept");
    }

    #[tokio::test]
    async fn no_app_timeout_and_detach_are_distinct_errors() {
        let reg = Arc::new(Attachments::default());
        let e = reg.route("a", RequestKind::Sampling, serde_json::json!({}), Duration::from_secs(1)).await;
        assert_eq!(e, Err(RouteError::NoApp("sampling/createMessage")));
        let app = reg.attach(hello(&[]));
        let e = reg.route("a", RequestKind::Elicitation, serde_json::json!({}), Duration::from_millis(50)).await;
        assert_eq!(e, Err(RouteError::Timeout(Duration::from_millis(50))));
        let reg2 = reg.clone();
        let call = tokio::spawn(async move {
            reg2.route("a", RequestKind::Elicitation, serde_json::json!({}), Duration::from_secs(5)).await
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(app);
        assert_eq!(call.await.unwrap(), Err(RouteError::Detached));
        assert!(!reg.has_app_for("a", RequestKind::Elicitation));
    }

    #[test]
    fn ids_are_128_bit_hex() {
        let a = random_id();
        assert_eq!(a.len(), 32);
        assert_ne!(a, random_id());
    }
}

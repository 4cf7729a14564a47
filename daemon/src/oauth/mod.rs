//! OAuth 2.1 for remote MCP servers: logins (authorization code + PKCE through a loopback
//! redirect), the per-session token source, step-up on `insufficient_scope`, and status.
//!
//! rmcp's `transport::auth` does the protocol (discovery in the spec's order, PKCE S256 and
//! refusing servers that do not advertise it, RFC 8707 `resource`, client ID metadata
//! documents, dynamic registration, refresh). mcpd supplies what it leaves to the client: an
//! HTTP client behind the SSRF guard ([`http::GuardedHttp`]), credentials in the store bound
//! to the server's identity (`store::OAuthCredentials`), the redirect listener
//! ([`callback`]), and the policy around them (one login at a time per server, no login
//! loops, at most [`MAX_STEP_UPS`] step-ups).
pub mod callback;
pub mod http;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use rmcp::transport::auth::{
    AuthClient, AuthError, AuthorizationManager, AuthorizationRequest, AuthorizationSession, ClientCredentialsConfig,
    CredentialStore, JwtSigningAlgorithm, OAuthState,
};
use tokio::{sync::watch, time::Instant};

use crate::{
    config::{JwtAlgorithm, OAuthConfig, OAuthGrant, TransportConfig},
    ssrf::SsrfPolicy,
    store::Store,
    upstream::Upstream,
};

/// How long a login waits for the browser to come back.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(600);
/// Authorizations in a row (the first login included) that may end in 403
/// `insufficient_scope` before mcpd stops stepping up (the spec's advice against loops; the
/// counter resets when a call succeeds).
pub const MAX_STEP_UPS: u32 = 3;
/// A 401 this soon after a login means the server rejects the tokens the authorization
/// server issues for it: logging in again would loop.
const FRESH_TOKEN_WINDOW: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error("no server named {0:?} is configured")]
    UnknownServer(String),
    #[error("server {0:?} has no [servers.{0}.oauth] with grant \"authorization_code\"; there is nothing to log in to")]
    NotOAuth(String),
    #[error("OAuth needs mcpd's store, and this daemon runs without one")]
    NoStore,
    #[error("cannot build the OAuth HTTP client: {0}")]
    Client(String),
    #[error("cannot open the loopback redirect listener on 127.0.0.1:{port}: {source}")]
    Listen { port: u16, source: std::io::Error },
    #[error("{0}")]
    Flow(String),
}

/// Renders an rmcp auth error with its causes (an SSRF refusal is usually a cause), never a
/// token: rmcp's errors carry none.
fn flow(e: AuthError) -> OAuthError {
    OAuthError::Flow(crate::util::error_chain(&e))
}

/// Like [`flow`], naming what the SSRF guard refused on the way (the real reason when rmcp
/// only saw a failed fetch).
fn guarded(e: AuthError, http: &http::GuardedHttp) -> OAuthError {
    let mut text = crate::util::error_chain(&e);
    for r in http.refusals(&text) {
        if !text.contains(&r) {
            text.push_str("; ");
            text.push_str(&r);
        }
    }
    OAuthError::Flow(text)
}

/// Where a login stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginPhase {
    /// Waiting for the browser.
    Pending,
    Done,
    Failed(String),
}

/// A started login: the URL to open and its outcome.
pub struct Login {
    pub url: String,
    pub phase: watch::Receiver<LoginPhase>,
}

/// What `mcpd auth status` shows for one server: never a token.
#[derive(Debug, Clone, Default)]
pub struct AuthInfo {
    pub server: String,
    pub grant: &'static str,
    pub logged_in: bool,
    pub client_id: String,
    pub scopes: Vec<String>,
    pub issuer: String,
    /// 0 when unknown.
    pub expires_unix_ms: u64,
    pub refreshable: bool,
    pub login_pending: bool,
}

#[derive(Default)]
struct PerServer {
    /// The in-flight login's URL and outcome.
    login: Option<(String, watch::Receiver<LoginPhase>)>,
    /// The last `WWW-Authenticate` challenge, to seed the next login's discovery and scopes.
    challenge: Option<String>,
    /// Authorizations since the last successful call (bounded by [`MAX_STEP_UPS`]).
    step_ups: u32,
    /// When the last login completed.
    logged_in_at: Option<Instant>,
    /// Set when the server rejected fresh tokens; automatic logins stop until a manual one.
    no_auto_login: bool,
    /// Why credentials were dropped (shown with the next `needs-auth`).
    reason: Option<String>,
}

pub struct OAuth {
    store: Option<Store>,
    servers: Mutex<HashMap<String, PerServer>>,
}

/// The URL and `[oauth]` of a server, when it has both.
pub fn oauth_of(upstream: &Upstream) -> Option<(&str, &OAuthConfig)> {
    match (&upstream.config.transport, &upstream.config.oauth) {
        (TransportConfig::Http { url, .. }, Some(o)) => Some((url.as_str(), o)),
        _ => None,
    }
}

/// What OAuth URLs of this server may reach.
pub fn policy(cfg: &OAuthConfig) -> SsrfPolicy {
    SsrfPolicy { allow_loopback: cfg.allow_loopback, allow: cfg.allow.clone() }
}

impl OAuth {
    pub fn new(store: Option<Store>) -> Self {
        Self { store, servers: Mutex::default() }
    }

    /// The stored credentials of a server (its identity's).
    fn credentials(&self, upstream: &Upstream) -> Result<crate::store::OAuthCredentials, OAuthError> {
        Ok(self.store.as_ref().ok_or(OAuthError::NoStore)?.oauth_credentials(&upstream.identity))
    }

    fn with<T>(&self, server: &str, f: impl FnOnce(&mut PerServer) -> T) -> T {
        let mut servers = self.servers.lock().unwrap_or_else(|p| p.into_inner());
        f(servers.entry(server.to_owned()).or_default())
    }

    async fn manager(
        &self,
        upstream: &Upstream,
        url: &str,
        cfg: &OAuthConfig,
    ) -> Result<(AuthorizationManager, Arc<http::GuardedHttp>), OAuthError> {
        let creds = self.credentials(upstream)?;
        let http = http::GuardedHttp::new(policy(cfg)).map_err(|e| OAuthError::Client(e.to_string()))?;
        let mut manager = AuthorizationManager::new_with_oauth_http_client(url, http.clone()).await.map_err(flow)?;
        // Keyed by identity (name + URL): a token is only ever loaded for the server it was
        // issued for, and a changed URL starts without one.
        manager.set_credential_store(creds);
        Ok((manager, http))
    }

    /// The token source of a session to an authorization-code server. Without stored
    /// credentials requests go out unauthenticated, so the server's 401 brings the real
    /// challenge (its `resource_metadata` and `scope` seed the login), and a server that
    /// turns out not to need a token just works.
    pub async fn session_client(
        &self,
        upstream: &Upstream,
        connect_timeout: Duration,
    ) -> Result<AuthClient<reqwest::Client>, OAuthError> {
        let (url, cfg) = oauth_of(upstream).ok_or_else(|| OAuthError::NotOAuth(upstream.name.clone()))?;
        let (mut manager, http) = self.manager(upstream, url, cfg).await?;
        // Discovery (network) only when there are tokens to use.
        tokio::time::timeout(connect_timeout, manager.initialize_from_store())
            .await
            .map_err(|_| OAuthError::Flow(format!("OAuth discovery did not finish within {connect_timeout:?}")))?
            .map_err(|e| guarded(e, &http))?;
        let client = crate::transport::http::client(connect_timeout).map_err(|e| OAuthError::Client(e.to_string()))?;
        Ok(AuthClient::new(client, manager))
    }

    /// A token source for the client-credentials grant (machine-to-machine): rmcp does
    /// discovery and the token request through the guarded client, and refreshes.
    pub async fn client_credentials(
        &self,
        url: &str,
        cfg: &OAuthConfig,
        connect_timeout: Duration,
    ) -> Result<AuthClient<reqwest::Client>, OAuthError> {
        let Some(client_id) = &cfg.client_id else {
            return Err(OAuthError::Flow("client credentials need client_id".into()));
        };
        let creds = match (&cfg.client_secret, &cfg.private_key) {
            (Some(secret), _) => ClientCredentialsConfig::ClientSecret {
                client_id: client_id.clone(),
                client_secret: secret.expose().to_owned(),
                scopes: cfg.scopes.clone(),
                resource: Some(url.to_owned()),
            },
            // private_key_jwt (RFC 7523): rmcp signs a fresh assertion for each token request.
            (None, Some(key)) => ClientCredentialsConfig::PrivateKeyJwt {
                client_id: client_id.clone(),
                signing_key: key.expose().as_bytes().to_vec(),
                signing_algorithm: match cfg.signing_algorithm {
                    JwtAlgorithm::Rs256 => JwtSigningAlgorithm::RS256,
                    JwtAlgorithm::Rs384 => JwtSigningAlgorithm::RS384,
                    JwtAlgorithm::Rs512 => JwtSigningAlgorithm::RS512,
                    JwtAlgorithm::Es256 => JwtSigningAlgorithm::ES256,
                    JwtAlgorithm::Es384 => JwtSigningAlgorithm::ES384,
                },
                token_endpoint_audience: None,
                scopes: cfg.scopes.clone(),
                resource: Some(url.to_owned()),
            },
            (None, None) => {
                return Err(OAuthError::Flow("client credentials need client_secret or private_key".into()));
            }
        };
        let http = http::GuardedHttp::new(policy(cfg)).map_err(|e| OAuthError::Client(e.to_string()))?;
        let mut state = OAuthState::new_with_oauth_http_client(url, http).await.map_err(flow)?;
        // rmcp's client-credentials exchange is not `Send` with private_key_jwt built in (it
        // holds a form serializer across an await), so it cannot run on a session task: it
        // gets a thread and a one-shot runtime of its own, and hands the state back. Once,
        // at connect; the session's requests then run on the daemon's runtime.
        let state = tokio::task::spawn_blocking(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| OAuthError::Flow(format!("cannot start the token exchange: {e}")))?;
            rt.block_on(async {
                tokio::time::timeout(connect_timeout, state.authenticate_client_credentials(creds))
                    .await
                    .map_err(|_| OAuthError::Flow(format!("no token within {connect_timeout:?}")))?
                    .map_err(flow)?;
                Ok::<_, OAuthError>(state)
            })
        })
        .await
        .map_err(|e| OAuthError::Flow(format!("the token exchange failed: {e}")))??;
        let manager = state
            .into_authorization_manager()
            .ok_or_else(|| OAuthError::Flow("the authorization did not complete".into()))?;
        let client = crate::transport::http::client(connect_timeout).map_err(|e| OAuthError::Client(e.to_string()))?;
        Ok(AuthClient::new(client, manager))
    }

    /// Records a server's 401 challenge. Returns why an automatic login must not start
    /// (the server rejected tokens fresh from a login), or `None`.
    pub fn note_challenge(&self, server: &str, challenge: &str) -> Option<String> {
        self.with(server, |s| {
            if !challenge.is_empty() {
                s.challenge = Some(challenge.to_owned());
            }
            // A 403 for more scope is a step-up (budgeted separately), not a rejected token.
            if is_insufficient_scope(challenge) {
                return None;
            }
            let fresh = s.logged_in_at.is_some_and(|at| at.elapsed() < FRESH_TOKEN_WINDOW);
            if fresh {
                s.logged_in_at = None;
                s.no_auto_login = true;
            }
            s.no_auto_login.then(|| {
                "the server rejected the token mcpd obtained at the last login (is the authorization server \
                 issuing tokens for this server's URL and scopes?); mcpd will not log in again by itself"
                    .to_owned()
            })
        })
    }

    /// Whether a step-up login may start for `server`, as its attempt number; `None` once
    /// [`MAX_STEP_UPS`] authorizations happened without a call going through since.
    pub fn step_up(&self, server: &str, challenge: &str) -> Option<u32> {
        self.with(server, |s| {
            s.challenge = Some(challenge.to_owned());
            (s.step_ups < MAX_STEP_UPS).then_some(s.step_ups + 1)
        })
    }

    /// A call succeeded: the scope is enough, so later 403s may step up again.
    pub fn call_succeeded(&self, server: &str) {
        let mut servers = self.servers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = servers.get_mut(server) {
            s.step_ups = 0;
        }
    }

    /// Starts a login (or joins the one in flight): discovery, client registration and the
    /// authorization URL happen here, so their errors come back at once; the wait for the
    /// browser runs in the background. `step_up` asks for the challenge's scope on top of
    /// what was granted. `manual` is a person asking (it re-enables automatic logins).
    pub async fn login(
        self: &Arc<Self>,
        upstream: Arc<Upstream>,
        step_up: bool,
        manual: bool,
    ) -> Result<Login, OAuthError> {
        let (url, cfg) = oauth_of(&upstream).ok_or_else(|| OAuthError::NotOAuth(upstream.name.clone()))?;
        if cfg.grant != OAuthGrant::AuthorizationCode {
            return Err(OAuthError::NotOAuth(upstream.name.clone()));
        }
        let name = upstream.name.clone();
        let (in_flight, challenge) = self.with(&name, |s| {
            if manual {
                s.no_auto_login = false;
            }
            let live = s.login.as_ref().filter(|(_, rx)| *rx.borrow() == LoginPhase::Pending).cloned();
            (live, s.challenge.clone())
        });
        if let Some((url, phase)) = in_flight {
            return Ok(Login { url, phase });
        }

        let listener = callback::bind(cfg.redirect_port)
            .await
            .map_err(|source| OAuthError::Listen { port: cfg.redirect_port, source })?;
        let (mut manager, http) = self.manager(&upstream, url, cfg).await?;
        let granted = match self.credentials(&upstream)?.load().await {
            Ok(Some(c)) if c.token_response.is_some() => c.granted_scopes,
            _ => Vec::new(),
        };
        let resolution =
            manager.resolve_metadata_from_challenge(challenge.as_deref()).await.map_err(|e| guarded(e, &http))?;
        // PKCE S256 or nothing (the spec's MUST): rmcp would go on with S256 regardless,
        // which an authorization server that never said it checks PKCE may silently ignore.
        let s256 = resolution
            .metadata
            .code_challenge_methods_supported
            .as_ref()
            .is_some_and(|m| m.iter().any(|m| m == "S256"));
        if !s256 {
            return Err(OAuthError::Flow(
                "the authorization server does not advertise PKCE S256 (code_challenge_methods_supported); \
                 mcpd refuses to authorize without it"
                    .into(),
            ));
        }
        manager.set_metadata(resolution.metadata);

        let mut request =
            AuthorizationRequest::new(listener.redirect_uri.clone()).with_client_name(cfg.client_name.clone());
        if let Some(id) = &cfg.client_id {
            request = request.with_preregistered_client(id.clone());
            if let Some(secret) = &cfg.client_secret {
                request = request.with_client_secret(secret.expose().to_owned());
            }
        }
        if let Some(doc) = &cfg.client_metadata_url {
            request = request.with_client_metadata_url(doc.clone());
        }
        let wanted = challenge.as_deref().and_then(challenge_scope);
        request = match (step_up, wanted) {
            // Step-up: what was granted (or configured) plus what the server now asks for.
            (true, Some(more)) => {
                let mut scopes = if granted.is_empty() { cfg.scopes.clone() } else { granted };
                for s in more.split_whitespace() {
                    if !scopes.iter().any(|have| have == s) {
                        scopes.push(s.to_owned());
                    }
                }
                request.with_scopes(scopes)
            }
            _ if !cfg.scopes.is_empty() => request.with_scopes(cfg.scopes.clone()),
            // The challenge's scope, else the resource's `scopes_supported`, else none.
            _ => request.with_initial_scope_selection(),
        };
        let session = AuthorizationSession::new(manager, request).await.map_err(|(_, e)| guarded(e, &http))?;
        let auth_url = session.auth_url.clone();
        let state = reqwest::Url::parse(&auth_url)
            .ok()
            .and_then(|u| u.query_pairs().find(|(k, _)| k == "state").map(|(_, v)| v.into_owned()))
            .ok_or_else(|| OAuthError::Flow("the authorization URL carries no state".into()))?;

        let (tx, rx) = watch::channel(LoginPhase::Pending);
        self.with(&name, |s| s.login = Some((auth_url.clone(), rx.clone())));
        if !cfg.login_command.is_empty() {
            run_login_command(&name, &cfg.login_command, &auth_url);
        }
        let hub = self.clone();
        tokio::spawn(async move {
            let outcome =
                match tokio::time::timeout(LOGIN_TIMEOUT, await_callback(&listener, &session, &state, &name)).await {
                    Ok(outcome) => outcome,
                    Err(_) => LoginPhase::Failed(format!(
                        "no redirect came back within {}s; run `mcpd auth login {name}` again",
                        LOGIN_TIMEOUT.as_secs()
                    )),
                };
            // The listener closes here: the redirect URI works once.
            drop(listener);
            hub.with(&name, |s| {
                if outcome == LoginPhase::Done {
                    s.logged_in_at = Some(Instant::now());
                    s.challenge = None;
                    // Every authorization counts against the step-up budget until a call
                    // succeeds: a server that never accepts the scope gets at most
                    // MAX_STEP_UPS authorizations in all.
                    s.step_ups += 1;
                }
            });
            if outcome == LoginPhase::Done {
                tracing::info!(server = %name, "OAuth login completed");
                upstream.auth_changed.notify_one();
            } else if let LoginPhase::Failed(why) = &outcome {
                tracing::warn!(server = %name, reason = %why, "OAuth login failed");
            }
            let _ = tx.send(outcome);
        });
        Ok(Login { url: auth_url, phase: rx })
    }

    /// The authorization server no longer knows mcpd's client (`invalid_client` while
    /// refreshing): the tokens are useless with it, so they and the registration go, the
    /// session reconnects into `needs-auth`, and the next login (or the hook) registers
    /// again. rmcp reports this as a transient refresh failure, which would otherwise be
    /// retried for ever. Returns what to tell the caller.
    pub async fn registration_rejected(&self, upstream: &Upstream) -> String {
        let name = &upstream.name;
        let why = match oauth_of(upstream).map(|(_, c)| c.client_id.is_some()) {
            Some(true) => format!(
                "the authorization server rejected the configured client (invalid_client): check client_id and client_secret of [servers.{name}.oauth], then run `mcpd auth login {name}`"
            ),
            _ => format!(
                "the authorization server no longer knows mcpd's client registration (invalid_client); mcpd dropped it and registers again at the next login (`mcpd auth login {name}`)"
            ),
        };
        let cleared = match self.credentials(upstream) {
            Ok(c) => c.clear().await.map_err(flow),
            Err(e) => Err(e),
        };
        if let Err(e) = cleared {
            tracing::warn!(server = %name, error = %e, "cannot delete rejected OAuth credentials");
        }
        tracing::warn!(server = %name, "{why}");
        self.with(name, |s| {
            s.reason = Some(why.clone());
            s.logged_in_at = None;
        });
        upstream.auth_changed.notify_one();
        why
    }

    /// A token fresh from a login was refused: is that because the resource now names a
    /// different authorization server (SEP-2352)? If so the old tokens and the client
    /// registration are bound to the old one: both are dropped, an automatic login may run
    /// again (it discovers and registers at the new server), and the reason says so. A
    /// refusal with the same server stays a refusal (no login loop).
    pub async fn authorization_server_moved(&self, upstream: &Upstream, challenge: &str) -> Option<String> {
        let (url, cfg) = oauth_of(upstream)?;
        let creds = self.credentials(upstream).ok()?;
        let old = creds.load().await.ok()??.issuer?;
        let (manager, _http) = self.manager(upstream, url, cfg).await.ok()?;
        let found =
            tokio::time::timeout(Duration::from_secs(10), manager.resolve_metadata_from_challenge(Some(challenge)))
                .await
                .ok()?
                .ok()?;
        let new = found.metadata.issuer.filter(|new| *new != old)?;
        if let Err(e) = creds.clear().await {
            tracing::warn!(server = %upstream.name, error = %e, "cannot delete the old authorization server's credentials");
            return None;
        }
        let why = format!(
            "the server's authorization server moved from {old} to {new}; mcpd dropped the old credentials and logs in there"
        );
        self.with(&upstream.name, |s| {
            s.no_auto_login = false;
            s.logged_in_at = None;
        });
        Some(why)
    }

    /// The reason a server's credentials were dropped, once.
    pub fn take_reason(&self, server: &str) -> Option<String> {
        self.with(server, |s| s.reason.take())
    }

    /// Whether an automatic login (the `login_command` hook) may start now.
    pub fn auto_login_allowed(&self, server: &str) -> bool {
        self.with(server, |s| {
            !s.no_auto_login && s.login.as_ref().is_none_or(|(_, rx)| *rx.borrow() != LoginPhase::Pending)
        })
    }

    /// Forgets a server's tokens and client registration, first revoking them at the
    /// authorization server when it offers revocation (RFC 7009). Returns whether there were
    /// credentials, and what became of the revocation.
    pub async fn logout(&self, upstream: &Upstream) -> Result<(bool, String), OAuthError> {
        let creds = self.credentials(upstream)?;
        let stored = creds.load().await.map_err(flow)?;
        let revocation = match &stored {
            Some(c) if c.token_response.is_some() => self.revoke(upstream, c).await,
            _ => "no tokens to revoke".to_owned(),
        };
        creds.clear().await.map_err(flow)?;
        self.with(&upstream.name, |s| {
            s.logged_in_at = None;
            s.step_ups = 0;
        });
        upstream.auth_changed.notify_one();
        Ok((stored.is_some(), revocation))
    }

    /// Best effort: the local copy is forgotten whatever happens here.
    async fn revoke(&self, upstream: &Upstream, stored: &rmcp::transport::auth::StoredCredentials) -> String {
        let Some((url, cfg)) = oauth_of(upstream) else { return "not an OAuth server".to_owned() };
        let result = async {
            let (manager, http) = self.manager(upstream, url, cfg).await?;
            let metadata = manager.resolve_metadata().await.map_err(|e| guarded(e, &http))?.metadata;
            let Some(endpoint) = metadata.additional_fields.get("revocation_endpoint").and_then(|v| v.as_str()) else {
                return Ok("the authorization server offers no revocation endpoint".to_owned());
            };
            let tokens = serde_json::to_value(&stored.token_response).unwrap_or_default();
            // A pre-registered confidential client authenticates; a public one names itself.
            let secret = cfg.client_secret.as_ref().filter(|_| cfg.client_id.as_deref() == Some(&stored.client_id));
            let basic = secret.map(|s| (stored.client_id.as_str(), s.expose()));
            let mut done = Vec::new();
            for hint in ["refresh_token", "access_token"] {
                let Some(token) = tokens.get(hint).and_then(|t| t.as_str()) else { continue };
                let mut form = vec![("token", token), ("token_type_hint", hint)];
                if basic.is_none() {
                    form.push(("client_id", stored.client_id.as_str()));
                }
                let (status, body) = http.post_form(endpoint, &form, basic).await.map_err(OAuthError::Flow)?;
                let error = serde_json::from_str::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|b| b.get("error").and_then(|e| e.as_str()).map(str::to_owned));
                let what = hint.replace('_', " ");
                match (status.is_success(), error.as_deref()) {
                    (true, _) => done.push(format!("{what} revoked")),
                    // RFC 7009 §2.2.1: e.g. self-contained (JWT) access tokens; they expire.
                    (false, Some("unsupported_token_type")) => done.push(format!("{what} not revocable (it expires)")),
                    (false, e) => {
                        return Err(OAuthError::Flow(format!(
                            "the revocation endpoint answered {status}{}",
                            e.map(|e| format!(" ({e})")).unwrap_or_default()
                        )));
                    }
                }
            }
            Ok(format!("at the authorization server: {}", done.join(", ")))
        };
        match result.await {
            Ok(outcome) => outcome,
            Err(e) => {
                tracing::warn!(server = %upstream.name, error = %e, "OAuth token revocation failed");
                format!("not revoked at the authorization server: {e}")
            }
        }
    }

    /// Deletes stored credentials no configured server can use any more (its URL changed or
    /// it was removed): a token is bound to one name and URL, and nothing else may load it.
    pub async fn prune(&self, upstreams: &[Arc<Upstream>]) {
        let Some(store) = &self.store else { return };
        let keep: std::collections::HashSet<&str> = upstreams.iter().map(|u| u.identity.as_str()).collect();
        let stored = match store.oauth_identities().await {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list stored OAuth credentials");
                return;
            }
        };
        for id in stored.into_iter().filter(|id| !keep.contains(id.as_str())) {
            match store.oauth_credentials(&id).clear().await {
                Ok(()) => tracing::info!(
                    server = %id.split('|').next().unwrap_or_default(),
                    "deleted OAuth credentials of a server whose name or URL is no longer configured"
                ),
                Err(e) => tracing::warn!(error = %e, "cannot delete stale OAuth credentials"),
            }
        }
    }

    pub async fn info(&self, upstream: &Upstream) -> AuthInfo {
        let grant = match oauth_of(upstream).map(|(_, c)| c.grant) {
            Some(OAuthGrant::AuthorizationCode) => "authorization_code",
            Some(OAuthGrant::ClientCredentials) => "client_credentials",
            None => "",
        };
        let mut info = AuthInfo { server: upstream.name.clone(), grant, ..AuthInfo::default() };
        info.login_pending =
            self.with(&upstream.name, |s| s.login.as_ref().is_some_and(|(_, rx)| *rx.borrow() == LoginPhase::Pending));
        if grant != "authorization_code" {
            return info;
        }
        let Ok(creds) = self.credentials(upstream) else { return info };
        if let Ok(Some(c)) = creds.load().await {
            info.client_id = c.client_id.clone();
            info.scopes = c.granted_scopes.clone();
            info.issuer = c.issuer.clone().unwrap_or_default();
            if let Some(t) = &c.token_response {
                // Read through JSON: the token types' accessors need oauth2's traits.
                let t = serde_json::to_value(t).unwrap_or_default();
                info.logged_in = true;
                info.refreshable = t.get("refresh_token").is_some_and(|r| !r.is_null());
                if let (Some(exp), Some(at)) = (t.get("expires_in").and_then(|e| e.as_u64()), c.token_received_at) {
                    info.expires_unix_ms = (at + exp) * 1000;
                }
            }
        }
        info
    }
}

/// The client ID metadata document (draft-ietf-oauth-client-id-metadata-document) to host at
/// `url` for `client_metadata_url`: mcpd as a native public client with a loopback redirect.
pub fn client_metadata_document(url: &str, name: &str, port: u16) -> Result<serde_json::Value, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    if parsed.scheme() != "https" || parsed.path() == "/" || parsed.fragment().is_some() {
        return Err(format!("{url:?}: a client ID must be an https URL with a path and no fragment"));
    }
    // RFC 8252 §7.3: authorization servers accept any port for a loopback redirect URI,
    // so without a fixed port the document names the URI without one.
    let redirect = match port {
        0 => "http://127.0.0.1/callback".to_owned(),
        p => format!("http://127.0.0.1:{p}/callback"),
    };
    Ok(serde_json::json!({
        "client_id": url,
        "client_name": name,
        "redirect_uris": [redirect],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "application_type": "native",
    }))
}

/// Whether an error (with its causes) is the authorization server's `invalid_client`.
pub fn is_invalid_client(e: &(dyn std::error::Error + 'static)) -> bool {
    crate::util::error_chain(e).contains("invalid_client")
}

/// A `WWW-Authenticate: Bearer` challenge, its `resource_metadata` resolved against `base`
/// (the server's URL; rmcp drops a pointer to another address class).
pub fn challenge(header: &str, base: &str) -> rmcp::transport::auth::WWWAuthenticateParams {
    match reqwest::Url::parse(base) {
        Ok(base) => rmcp::transport::auth::WWWAuthenticateParams::parse(header, &base),
        Err(_) => Default::default(),
    }
}

/// Whether a `WWW-Authenticate` challenge is a 403 `insufficient_scope` (a step-up).
pub fn is_insufficient_scope(header: &str) -> bool {
    challenge(header, "http://127.0.0.1/").is_insufficient_scope()
}

/// The `scope` parameter of a `WWW-Authenticate: Bearer` challenge.
pub fn challenge_scope(header: &str) -> Option<String> {
    challenge(header, "http://127.0.0.1/").scope.filter(|s| !s.trim().is_empty())
}

/// Waits for the redirect and finishes the login; one callback decides it either way.
async fn await_callback(
    listener: &callback::Listener,
    session: &AuthorizationSession,
    state: &str,
    name: &str,
) -> LoginPhase {
    let (params, reply) = match listener.next().await {
        Ok(x) => x,
        Err(e) => return LoginPhase::Failed(format!("the redirect listener failed: {e}")),
    };
    if params.state.as_deref() != Some(state) {
        reply
            .send(
                400,
                "mcpd: this redirect does not belong to the login in progress (state mismatch). The login was aborted.",
            )
            .await;
        return LoginPhase::Failed(format!(
            "the redirect's state did not match this login (a forged or stale callback); the login was aborted: run `mcpd auth login {name}` again"
        ));
    }
    if let Some(error) = params.error {
        let why = match params.error_description {
            Some(d) => format!("{error}: {d}"),
            None => error,
        };
        reply.send(400, &format!("mcpd: the authorization server refused: {why}")).await;
        return LoginPhase::Failed(format!("the authorization server refused: {why}"));
    }
    let Some(code) = params.code else {
        reply.send(400, "mcpd: the redirect carries no code").await;
        return LoginPhase::Failed("the redirect carried no authorization code".into());
    };
    match session.handle_callback_with_issuer(&code, state, params.iss.as_deref()).await {
        Ok(_) => {
            reply.send(200, &format!("mcpd is now authorized for {name}. You can close this tab.")).await;
            LoginPhase::Done
        }
        Err(e) => {
            let why = crate::util::error_chain(&e);
            reply.send(400, &format!("mcpd could not finish the login: {why}")).await;
            LoginPhase::Failed(format!("the token exchange failed: {why}"))
        }
    }
}

/// Starts the configured hook with the URL as its last argument. Its output is discarded:
/// it may echo the URL, whose `state` must not reach the logs.
fn run_login_command(server: &str, cmd: &[String], url: &str) {
    let Some((program, args)) = cmd.split_first() else { return };
    let spawned = tokio::process::Command::new(program)
        .args(args)
        .arg(url)
        .env("MCPD_AUTH_SERVER", server)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(false)
        .spawn();
    let server = server.to_owned();
    match spawned {
        Ok(mut child) => {
            tokio::spawn(async move {
                match child.wait().await {
                    Ok(st) if st.success() => {}
                    Ok(st) => tracing::warn!(server = %server, status = %st, "the OAuth login_command failed"),
                    Err(e) => tracing::warn!(server = %server, error = %e, "the OAuth login_command failed"),
                }
            });
        }
        Err(e) => {
            tracing::warn!(server = %server, program = %program, error = %e, "cannot run the OAuth login_command")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let step_up = r#"Bearer error="insufficient_scope", scope="mcp admin", resource_metadata="https://x/.well-known/oauth-protected-resource""#;
        assert!(is_insufficient_scope(step_up));
        assert_eq!(challenge_scope(step_up).as_deref(), Some("mcp admin"));
        let plain = r#"Bearer resource_metadata="https://x/m""#;
        assert!(!is_insufficient_scope(plain));
        assert_eq!(challenge_scope(plain), None);
        assert!(!is_insufficient_scope(""));
    }

    #[test]
    fn client_metadata_documents() {
        let doc = client_metadata_document("https://mcpd.example.org/c.json", "mcpd", 0).expect("valid");
        assert_eq!(doc["client_id"], "https://mcpd.example.org/c.json");
        assert_eq!(doc["redirect_uris"][0], "http://127.0.0.1/callback");
        assert_eq!(doc["token_endpoint_auth_method"], "none");
        let doc = client_metadata_document("https://mcpd.example.org/c.json", "x", 8765).expect("valid");
        assert_eq!(doc["redirect_uris"][0], "http://127.0.0.1:8765/callback");
        for bad in ["http://mcpd.example.org/c.json", "https://mcpd.example.org/", "https://x/c#f", "nope"] {
            assert!(client_metadata_document(bad, "mcpd", 0).is_err(), "{bad}");
        }
    }

    #[test]
    fn step_ups_are_bounded_and_reset_by_a_successful_call() {
        let hub = OAuth::new(None);
        let ch = r#"Bearer error="insufficient_scope", scope="a""#;
        // Three completed authorizations (the first login counts) spend the budget.
        for n in 1..=MAX_STEP_UPS {
            assert_eq!(hub.step_up("s", ch), Some(n));
            hub.with("s", |s| s.step_ups += 1);
        }
        assert_eq!(hub.step_up("s", ch), None);
        hub.call_succeeded("s");
        assert_eq!(hub.step_up("s", ch), Some(1));
    }

    #[test]
    fn a_401_right_after_a_login_stops_automatic_logins() {
        let hub = OAuth::new(None);
        assert_eq!(hub.note_challenge("s", "Bearer"), None);
        hub.with("s", |s| s.logged_in_at = Some(Instant::now()));
        // A 403 for more scope is a step-up, not a rejection.
        assert_eq!(hub.note_challenge("s", r#"Bearer error="insufficient_scope", scope="b""#), None);
        let why = hub.note_challenge("s", "Bearer").expect("refused");
        assert!(why.contains("rejected the token"), "{why}");
        assert!(!hub.auto_login_allowed("s"));
    }
}

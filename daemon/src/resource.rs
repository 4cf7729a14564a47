//! Resources, prompts and completion: listing across servers, cached reads, subscriptions.
//!
//! Unlike tools these are not mirrored in the registry: listings are asked of the servers
//! when an app asks (bounded by the call deadline and pagination caps), and reads go through
//! the [`ResourceCache`]. `subscribe` asks for a resource's updates and remembers it; the
//! session side (`session::subscription`) renews the set on every reconnect and turns updates
//! into cache invalidations and `resource_updated` events.

// resources/subscribe is deprecated by rmcp for the stateless era only; the session era still uses it.
#![allow(deprecated)]
use std::{collections::HashMap, future::Future, sync::Arc, time::Duration};

use rmcp::{
    Peer,
    model::{
        ArgumentInfo, ClientRequest, CompleteRequestParams, CompletionContext, CompletionInfo, GetPromptRequest,
        GetPromptRequestParams, GetPromptResult, Prompt, ReadResourceRequestParams, Reference, Resource,
        ResourceTemplate, ServerCapabilities, ServerResult, SubscribeRequestParams,
    },
    service::{RoleClient, ServiceError},
};

use crate::{
    cache::{CachedRead, ResourceCache},
    error::CallError,
    listing::all_pages,
    registry::Registry,
    supervisor::Supervisor,
    upstream::Upstream,
};

/// Which server feature an operation needs; servers that lack it are skipped in
/// all-server listings and refused (FAILED_PRECONDITION) when asked by name.
#[derive(Debug, Clone, Copy)]
enum Feature {
    Resources,
    Prompts,
    Completions,
}

impl Feature {
    fn offered_by(self, caps: &ServerCapabilities) -> bool {
        match self {
            Feature::Resources => caps.resources.is_some(),
            Feature::Prompts => caps.prompts.is_some(),
            Feature::Completions => caps.completions.is_some(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Feature::Resources => "resources",
            Feature::Prompts => "prompts",
            Feature::Completions => "completions",
        }
    }
}

/// A connected server's peer, if it offers `feature`.
fn peer_for(supervisor: &Supervisor, server: &str, feature: Feature) -> Result<PeerOf, CallError> {
    let upstream = supervisor.upstream(server).ok_or_else(|| CallError::NoSuchServer(server.to_owned()))?;
    let peer = upstream.peer().ok_or_else(|| crate::error::unavailable(server, &upstream))?;
    let offered = peer.peer_info().is_some_and(|i| feature.offered_by(&i.capabilities));
    if !offered {
        return Err(CallError::Unsupported { server: server.to_owned(), what: feature.name() });
    }
    Ok(PeerOf { upstream, peer })
}

struct PeerOf {
    upstream: Arc<Upstream>,
    peer: Arc<Peer<RoleClient>>,
}

impl PeerOf {
    /// Runs one request under the server's call deadline and concurrency bound.
    async fn ask<T>(&self, what: &str, f: impl Future<Output = Result<T, ServiceError>>) -> Result<T, CallError> {
        let server = &self.upstream.name;
        let timeout = self.upstream.config.call_timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        let _permit = tokio::time::timeout_at(deadline, self.upstream.permits.acquire())
            .await
            .map_err(|_| CallError::Busy { server: server.clone(), limit: self.upstream.config.max_concurrency })?
            .map_err(|_| crate::error::unavailable(server, &self.upstream))?;
        match tokio::time::timeout_at(deadline, f).await {
            Err(_) => Err(CallError::Deadline { tool: format!("{server} ({what})"), timeout }),
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(crate::error::service_error(server, what, e)),
        }
    }
}

/// Items of every server (or one), with a line per server that could not be asked.
pub struct Listing<T> {
    pub items: Vec<(String, T)>,
    pub errors: Vec<String>,
}

async fn list_each<T, F, Fut>(
    supervisor: &Supervisor,
    server: &str,
    feature: Feature,
    f: F,
) -> Result<Listing<T>, CallError>
where
    F: Fn(PeerOf) -> Fut,
    Fut: Future<Output = Result<Vec<T>, CallError>>,
{
    if !server.is_empty() {
        let p = peer_for(supervisor, server, feature)?;
        let items = f(p).await?;
        return Ok(Listing { items: items.into_iter().map(|i| (server.to_owned(), i)).collect(), errors: vec![] });
    }
    let mut listing = Listing { items: Vec::new(), errors: Vec::new() };
    let mut asks = Vec::new();
    for up in supervisor.upstreams() {
        match peer_for(supervisor, &up.name, feature) {
            Ok(p) => {
                let name = up.name.clone();
                let fut = f(p);
                asks.push(async move { (name, fut.await) });
            }
            // Not offering the feature is normal, and so is a disabled server; a server
            // that should be there and is not is worth saying.
            Err(CallError::Unsupported { .. }) => {}
            Err(_) if !up.config.enabled => {}
            Err(e) => listing.errors.push(e.to_string()),
        }
    }
    // Servers are asked concurrently: one slow server costs its own deadline, not the sum.
    for (name, res) in futures::future::join_all(asks).await {
        match res {
            Ok(items) => listing.items.extend(items.into_iter().map(|i| (name.clone(), i))),
            Err(e) => listing.errors.push(e.to_string()),
        }
    }
    Ok(listing)
}

pub async fn list_resources(supervisor: &Supervisor, server: &str) -> Result<Listing<Resource>, CallError> {
    list_each(supervisor, server, Feature::Resources, |p| async move {
        let peer = p.peer.clone();
        p.ask(
            "resources/list",
            all_pages(|c| {
                let peer = peer.clone();
                async move { peer.list_resources(c).await.map(|r| (r.resources, r.next_cursor)) }
            }),
        )
        .await
    })
    .await
}

pub async fn list_resource_templates(
    supervisor: &Supervisor,
    server: &str,
) -> Result<Listing<ResourceTemplate>, CallError> {
    list_each(supervisor, server, Feature::Resources, |p| async move {
        let peer = p.peer.clone();
        p.ask(
            "resources/templates/list",
            all_pages(|c| {
                let peer = peer.clone();
                async move { peer.list_resource_templates(c).await.map(|r| (r.resource_templates, r.next_cursor)) }
            }),
        )
        .await
    })
    .await
}

pub async fn list_prompts(supervisor: &Supervisor, server: &str) -> Result<Listing<Prompt>, CallError> {
    list_each(supervisor, server, Feature::Prompts, |p| async move {
        let peer = p.peer.clone();
        p.ask(
            "prompts/list",
            all_pages(|c| {
                let peer = peer.clone();
                async move { peer.list_prompts(c).await.map(|r| (r.prompts, r.next_cursor)) }
            }),
        )
        .await
    })
    .await
}

/// A read as handed to apps.
#[derive(Debug, Clone)]
pub struct Read {
    pub entry: Arc<CachedRead>,
    pub from_cache: bool,
}

/// Reads `uri` of `server`, from the cache while fresh unless `fresh`.
pub async fn read(
    supervisor: &Supervisor,
    cache: &ResourceCache,
    default_ttl: Duration,
    server: &str,
    uri: &str,
    fresh: bool,
) -> Result<Read, CallError> {
    if uri.is_empty() {
        return Err(CallError::BadRequest("a resource URI is required".into()));
    }
    let p = peer_for(supervisor, server, Feature::Resources)?;
    if !fresh && let Some(entry) = cache.get(server, uri) {
        return Ok(Read { entry, from_cache: true });
    }
    let params = ReadResourceRequestParams::new(uri);
    let result = p.ask("resources/read", p.peer.read_resource(params)).await?;
    // The server's own freshness hint wins; without one the configured default applies.
    let ttl = result.ttl_ms.map(Duration::from_millis).unwrap_or(default_ttl);
    let entry = CachedRead {
        contents_json: serde_json::to_string(&result.contents).unwrap_or_else(|_| "[]".into()),
        meta_json: result.meta.as_ref().and_then(|m| serde_json::to_string(m).ok()).unwrap_or_default(),
        ttl,
    };
    cache.insert(server, uri, entry.clone());
    Ok(Read { entry: Arc::new(entry), from_cache: false })
}

/// Subscribes to `uri`'s updates and remembers it so reconnects renew it.
pub async fn subscribe(supervisor: &Supervisor, server: &str, uri: &str) -> Result<(), CallError> {
    if uri.is_empty() {
        return Err(CallError::BadRequest("a resource URI is required".into()));
    }
    let p = peer_for(supervisor, server, Feature::Resources)?;
    let stateless = p.peer.peer_info().is_some_and(|i| !i.protocol_version.has_initialize());
    if !stateless {
        let can = p
            .peer
            .peer_info()
            .is_some_and(|i| i.capabilities.resources.as_ref().and_then(|r| r.subscribe).unwrap_or(false));
        if !can {
            return Err(CallError::Unsupported { server: server.to_owned(), what: "resource subscriptions" });
        }
        p.ask("resources/subscribe", p.peer.subscribe(SubscribeRequestParams::new(uri))).await?;
    }
    if p.upstream.add_subscription(uri) && stateless {
        // The listen loop re-opens its stream with the new filter.
        p.upstream.subscriptions_changed.notify_one();
    }
    Ok(())
}

/// `server.prompt` with string arguments.
pub async fn get_prompt(
    supervisor: &Supervisor,
    trust: &crate::trust::Trust,
    qualified: &str,
    arguments: HashMap<String, String>,
    asked: Asked<'_>,
) -> Result<GetPromptResult, CallError> {
    let Some((server, name)) = qualified.split_once('.') else {
        return Err(CallError::Unqualified(qualified.to_owned()));
    };
    let p = peer_for(supervisor, server, Feature::Prompts)?;
    // Pinned like tools: the prompt as last listed must be trusted (fail closed when it was
    // never listed).
    let verdict = match p.upstream.items().into_iter().find(|i| i.kind == "prompt" && i.name == name) {
        Some(item) => trust.item_verdict(&p.upstream.config, &p.upstream.identity, &item),
        None => crate::trust::Verdict::Quarantined(
            "mcpd has not seen it in the server's prompt list; list prompts again once the server announces it".into(),
        ),
    };
    if let crate::trust::Verdict::Quarantined(reason) = verdict {
        return Err(CallError::Quarantined { tool: qualified.to_owned(), reason });
    }
    let mut params = GetPromptRequestParams::new(name);
    if !arguments.is_empty() {
        let args: serde_json::Map<String, serde_json::Value> =
            arguments.into_iter().map(|(k, v)| (k, serde_json::Value::String(v))).collect();
        params = params.with_arguments(args);
    }
    if let Some(r) = asked.host.and_then(|h| h.0.take_resume()) {
        // Opaque and untrusted, like the server's own state: passed on, never inspected.
        params.input_responses = r.input_responses;
        params.request_state = r.request_state;
    }
    // Stateless era (MRTR): the server may answer `input_required`; its questions are
    // answered like a tool call's (the host's, or mcpd's routes) and the request is sent
    // again with the answers and the server's state, a bounded number of rounds.
    for _ in 0..=crate::requests::MAX_MRTR_ROUNDS {
        let request = ClientRequest::GetPromptRequest(GetPromptRequest::new(params.clone()));
        match p.ask("prompts/get", p.peer.send_request(request)).await? {
            ServerResult::GetPromptResult(r) => return Ok(r),
            ServerResult::InputRequiredResult(ir) => {
                let questions = serde_json::to_value(&ir.input_requests).unwrap_or(serde_json::Value::Null);
                let answers = asked.requests.fulfil(&p.upstream, &questions, asked.host).await.map_err(|e| {
                    CallError::InputRefused { tool: qualified.to_owned(), reason: e.message.to_string() }
                })?;
                params.input_responses = (!answers.is_empty()).then_some(answers);
                params.request_state = ir.request_state;
            }
            _ => {
                return Err(CallError::Protocol {
                    server: server.to_owned(),
                    what: "unexpected answer to prompts/get".into(),
                });
            }
        }
    }
    Err(CallError::Protocol {
        server: server.to_owned(),
        what: format!("the server kept asking for input after {} rounds", crate::requests::MAX_MRTR_ROUNDS),
    })
}

/// Who answers what a server asks while mcpd serves a prompt: mcpd's routes, and the MCP
/// host that asked for it, if any.
#[derive(Clone, Copy)]
pub struct Asked<'a> {
    pub requests: &'a crate::requests::ServerRequests,
    pub host: Option<&'a crate::host::HostHandle>,
}

/// What to complete: a prompt's argument or a resource template's variable.
#[derive(Debug, Clone)]
pub enum CompleteRef {
    Prompt(String),
    ResourceTemplate(String),
}

pub async fn complete(
    supervisor: &Supervisor,
    server: &str,
    target: CompleteRef,
    argument: &str,
    value: &str,
    context: HashMap<String, String>,
) -> Result<CompletionInfo, CallError> {
    let p = peer_for(supervisor, server, Feature::Completions)?;
    let reference = match target {
        CompleteRef::Prompt(name) => Reference::for_prompt(name),
        CompleteRef::ResourceTemplate(uri) => Reference::for_resource(uri),
    };
    let mut params = CompleteRequestParams::new(reference, ArgumentInfo::new(argument, value));
    if !context.is_empty() {
        params.context = Some(CompletionContext::with_arguments(context));
    }
    let result = p.ask("completion/complete", p.peer.complete(params)).await?;
    let mut info = result.completion;
    // The spec caps a completion at 100 values; a server that sends more is cut, not trusted.
    info.values.truncate(CompletionInfo::MAX_VALUES);
    Ok(info)
}

/// A prompt or resource template as fingerprinted and scanned (like tools; they are not
/// pinned yet, but apps see the sanitised text and the findings).
pub struct Checked {
    pub fingerprint: String,
    pub findings: Vec<String>,
    pub sanitized: serde_json::Value,
    /// The definition as pinned (what the session pins), for the trust verdict.
    pub item: crate::registry::PinItem,
}

impl Checked {
    pub fn text(&self, field: &str) -> String {
        self.sanitized.get(field).and_then(|v| v.as_str()).unwrap_or_default().to_owned()
    }
}

/// Fingerprints and scans the definitions of one listing; each server's identity and the
/// names of the other servers' tools are looked up once per listing, not once per item.
pub struct Checker<'a> {
    registry: &'a Registry,
    supervisor: &'a Supervisor,
    servers: std::collections::HashMap<String, (String, crate::integrity::scan::OtherTools)>,
}

impl<'a> Checker<'a> {
    pub fn new(registry: &'a Registry, supervisor: &'a Supervisor) -> Self {
        Self { registry, supervisor, servers: Default::default() }
    }

    pub fn check<T: serde::Serialize>(&mut self, server: &str, kind: &str, def: &T) -> Checked {
        let (registry, supervisor) = (self.registry, self.supervisor);
        let (identity, others) = self.servers.entry(server.to_owned()).or_insert_with(|| {
            let identity = supervisor.upstream(server).map(|u| u.identity.clone()).unwrap_or_default();
            let names = registry.snapshot().names_except(server);
            (identity, crate::integrity::scan::OtherTools::new(&names))
        });
        let raw = serde_json::to_value(def).unwrap_or(serde_json::Value::Null);
        let fingerprint = crate::integrity::fingerprint::fingerprint(identity, kind, &raw);
        let scan = crate::integrity::scan::scan_definition_with(&raw, others);
        let findings = scan.findings.iter().map(crate::integrity::render_finding).collect();
        let kind = if kind == "prompt" { "prompt" } else { "resource-template" };
        let item = crate::registry::PinItem {
            kind,
            name: raw.get("name").and_then(|n| n.as_str()).unwrap_or_default().to_owned(),
            fingerprint: fingerprint.clone(),
            blocks_auto_trust: scan.findings.iter().any(|f| f.severity >= crate::integrity::scan::Severity::Medium),
            raw,
        };
        Checked { fingerprint, findings, sanitized: scan.sanitized, item }
    }
}

//! Session-side subscription plumbing: renewing remembered resource subscriptions on a
//! fresh session (session era), the `subscriptions/listen` stream (stateless era), and what
//! either era's notifications do (cache invalidation, events, tool re-listing).

// resources/subscribe is deprecated by rmcp for the stateless era only; the session era still uses it.
#![allow(deprecated)]
use std::sync::Arc;

use rmcp::{
    Peer,
    model::{ServerNotification, SubscribeRequestParams, SubscriptionFilter},
    service::RoleClient,
};

use crate::{cache::ResourceCache, event::EventKind, upstream::Upstream};

/// Session era: renews every remembered subscription on a fresh session.
pub(super) async fn resubscribe(upstream: &Upstream, peer: &Peer<RoleClient>) {
    for uri in upstream.subscriptions() {
        if let Err(e) = peer.subscribe(SubscribeRequestParams::new(uri.clone())).await {
            tracing::warn!(server = %upstream.name, uri = %uri, error = %e, "cannot renew resource subscription");
        }
    }
}

/// What a server told us about its resources and prompts; shared by both eras.
pub(super) fn on_notification(upstream: &Upstream, cache: &ResourceCache, n: &ServerNotification) {
    match n {
        ServerNotification::ResourceUpdatedNotification(u) => {
            cache.invalidate(&upstream.name, &u.params.uri);
            upstream.events.emit(&upstream.name, EventKind::ResourceUpdated, None, u.params.uri.clone());
        }
        ServerNotification::ResourceListChangedNotification(_) => {
            upstream.events.emit(&upstream.name, EventKind::ResourcesChanged, None, "resource list changed");
            upstream.items_changed.notify_one();
        }
        ServerNotification::PromptListChangedNotification(_) => {
            upstream.events.emit(&upstream.name, EventKind::PromptsChanged, None, "prompt list changed");
            upstream.items_changed.notify_one();
        }
        ServerNotification::ToolListChangedNotification(_) => upstream.tools_changed.notify_one(),
        _ => {}
    }
}

/// Stateless era: keeps one `subscriptions/listen` stream open with the current filter
/// (list changes plus the remembered resource subscriptions), re-opening it when the
/// subscription set grows. Ends when the stream ends or the task is aborted.
pub(super) async fn listen_loop(upstream: Arc<Upstream>, peer: Peer<RoleClient>, cache: ResourceCache) {
    loop {
        let mut filter = SubscriptionFilter::new();
        filter.tools_list_changed = Some(true);
        filter.prompts_list_changed = Some(true);
        filter.resources_list_changed = Some(true);
        let uris = upstream.subscriptions();
        if !uris.is_empty() {
            filter.resource_subscriptions = Some(uris);
        }
        let mut sub = match peer.listen(filter).await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(server = %upstream.name, error = %e, "subscriptions/listen unavailable");
                return;
            }
        };
        loop {
            tokio::select! {
                n = sub.next() => match n {
                    Ok(Some(n)) => on_notification(&upstream, &cache, &n),
                    _ => return,
                },
                _ = upstream.subscriptions_changed.notified() => {
                    let _ = sub.cancel().await;
                    break;
                }
            }
        }
    }
}

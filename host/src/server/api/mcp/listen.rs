//! Who hears of a change of the tool set, and `subscriptions/listen`, the
//! way a client of protocol 2026-07-28 (which has no sessions) asks to.
//!
//! A client of an earlier revision hears `notifications/tools/list_changed`
//! on its session's stream; a 2026-07-28 client opens a `subscriptions/listen`
//! request for `toolsListChanged` and hears it there. rmcp does the
//! protocol (the acknowledgment, the filter, the subscription id on each
//! notification, the final result); the host keeps the list of listeners
//! and bounds each stream as it bounds a session:
//!
//! - it takes a place of the host's and of its principal's MCP sessions
//!   while it is open ([`super::edge`]: refused 503 or 429 like a new
//!   session when there is no room);
//! - it ends gracefully (with the final result the revision defines, after
//!   which a client listens again) after the idle time, `[server]
//!   mcp-idle-secs`, as a session without requests is closed then; and at
//!   once when its client goes or the host stops.

use std::time::Duration;

use rmcp::model::SubscriptionFilter;
use rmcp::service::{SubscriptionContext, SubscriptionSink};
use rmcp::{ErrorData, Peer, RoleServer};

use super::SharedPeers;

/// One who hears of tool-set changes.
#[derive(Clone)]
pub(super) enum Listener {
    /// A session (protocol before 2026-07-28), on its own stream.
    Session(Peer<RoleServer>),
    /// A `subscriptions/listen` stream (2026-07-28).
    Stream(SubscriptionSink),
}

impl From<Peer<RoleServer>> for Listener {
    fn from(peer: Peer<RoleServer>) -> Listener {
        Listener::Session(peer)
    }
}

impl Listener {
    /// Send `notifications/tools/list_changed`; whether it went out.
    pub(super) async fn tools_changed(&self) -> bool {
        match self {
            Listener::Session(peer) => peer.notify_tool_list_changed().await.is_ok(),
            Listener::Stream(sink) => sink.notify_tool_list_changed().await.is_ok(),
        }
    }

    /// Whether it can hear nothing any more. A stream takes itself off the
    /// list when it ends ([`listen`]).
    pub(super) fn is_closed(&self) -> bool {
        match self {
            Listener::Session(peer) => peer.is_transport_closed(),
            Listener::Stream(_) => false,
        }
    }
}

/// What a `subscriptions/listen` may ask for and hear here: the tool list's
/// changes (toolhost has no prompts or resources).
pub(super) fn accepted() -> SubscriptionFilter {
    SubscriptionFilter::builder().tools_list_changed().build()
}

/// One `subscriptions/listen` stream, acknowledged already: on the list of
/// listeners until its client goes, the host stops, or `lifetime` ends it.
pub(super) async fn listen(
    peers: &SharedPeers,
    lifetime: Duration,
    subscription: SubscriptionContext,
) -> Result<(), ErrorData> {
    let id = super::lock(peers).add(Listener::Stream(subscription.sink().clone()));
    tokio::select! {
        () = subscription.cancelled() => {}
        () = tokio::time::sleep(lifetime) => {}
    }
    super::lock(peers).open.retain(|(other, _)| *other != id);
    Ok(())
}

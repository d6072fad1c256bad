//! Living beside other nodes that share the store: what this node does when
//! another announces a change ([`Change`]), and the periodic reconcile that
//! makes up for an announcement it missed. A node applies what the store
//! says; it never stores it again (that would announce it again).

use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;

use crate::app::metrics::ChangeKind;
use crate::server::api::Shared;
use crate::storage::Change;

/// How often a node reconciles everything, announced or not: the longest a
/// lost announcement can leave it stale.
pub const RECONCILE: Duration = Duration::from_secs(30);

/// Follow the other nodes' changes until the host stops. Nothing to follow
/// when one process owns the store.
pub fn spawn_follower(state: &Shared) {
    let Some(mut changes) = state.app.runtime.storage().changes() else {
        return;
    };
    let state = state.clone();
    tokio::spawn(async move {
        let mut reconcile = tokio::time::interval(RECONCILE);
        reconcile.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        reconcile.tick().await;
        loop {
            let change = tokio::select! {
                heard = changes.recv() => match heard {
                    Ok(change) => change,
                    Err(RecvError::Lagged(_)) => Change::Missed,
                    Err(RecvError::Closed) => return,
                },
                _ = reconcile.tick() => Change::Missed,
                () = state.app.stopping.cancelled() => return,
            };
            apply(&state, change).await;
        }
    });
}

async fn apply(state: &Shared, change: Change) {
    match change {
        Change::Approval(id) => {
            state.app.metrics.heard(ChangeKind::Approval);
            if let Err(e) = state.app.approvals.heard(&id).await {
                tracing::error!(approval = %id, "reading an approval another node changed: {e}");
            }
        }
        Change::Run(id) => {
            state.app.metrics.heard(ChangeKind::Run);
            crate::app::runs::heard(&state.app, &id).await;
        }
        Change::Plugin(name) => {
            state.app.metrics.heard(ChangeKind::Plugin);
            // A compile may take a while; other changes need not wait for it
            // (changes to one plugin still apply one at a time).
            let state = state.clone();
            tokio::spawn(async move {
                if let Err(e) = state.app.runtime.plugins().converge(&name).await {
                    state.app.metrics.convergence_failed();
                    tracing::error!(plugin = %name, "cannot apply another node's change: {e}");
                }
            });
        }
        Change::Rules => {
            state.app.metrics.heard(ChangeKind::Rules);
            if let Err(e) = state.app.approvals.reload_rules().await {
                tracing::error!("applying the approval rules another node set: {e}");
            }
        }
        Change::Missed => {
            match state.app.runtime.plugins().converge_all().await {
                Ok(failed) => state.app.metrics.reconciled(failed.len()),
                Err(e) => tracing::error!("reconciling plugins with the other nodes: {e}"),
            }
            if let Err(e) = state.app.approvals.reload_rules().await {
                tracing::error!("reconciling the approval rules: {e}");
            }
            // Waiters read their approvals and runs again themselves.
            state.app.runs.changed();
        }
    }
}

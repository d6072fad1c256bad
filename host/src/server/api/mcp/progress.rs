//! A connector's progress reports as `notifications/progress`, for a client
//! that sent a progress token with its call.
//!
//! Such a call cannot be answered in one piece, so neither the
//! [`Shortcut`](super::shortcut) nor [`Direct`](super::sessions::Direct)
//! takes it when its connector imports `progress`
//! ([`McpServer::answers_at_once`](super::McpServer)): it goes through rmcp,
//! whose session worker sends each notification on the call's own event
//! stream (2026-07-28: on the request's response stream), before the result.
//! A connector that never reports keeps the shortcut, token or not.

use std::future::Future;

use rmcp::model::{ProgressNotificationParam, ProgressToken};
use rmcp::{Peer, RoleServer};

use crate::model::progress::{Progress, ProgressReports};

/// Who waits for the reports: the client's token and the way back to it.
pub struct Recipient {
    pub token: ProgressToken,
    pub peer: Peer<RoleServer>,
}

/// Wait for `call` while sending its `reports` to `recipient`; every report
/// made before the call ended is sent before its answer is returned.
pub async fn forwarding<T>(call: impl Future<Output = T>, mut reports: ProgressReports, recipient: Recipient) -> T {
    tokio::pin!(call);
    let answer = loop {
        tokio::select! {
            answer = &mut call => break answer,
            Some(report) = reports.recv() => notify(&recipient, report).await,
        }
    };
    reports.close();
    while let Ok(report) = reports.try_recv() {
        notify(&recipient, report).await;
    }
    answer
}

async fn notify(recipient: &Recipient, report: Progress) {
    // A JSON number: u64 as f64 loses precision only past 2^53 units.
    let mut param = ProgressNotificationParam::new(recipient.token.clone(), report.done as f64);
    if let Some(total) = report.total {
        param = param.with_total(total as f64);
    }
    if let Some(message) = report.message {
        param = param.with_message(message);
    }
    if let Err(e) = recipient.peer.notify_progress(param).await {
        // The client has gone; the call goes on to its end and its record.
        tracing::debug!("progress notification not sent: {e}");
    }
}

//! Waiting for an approval: reading one, and long-polls until it changes
//! or is decided (with a re-read when other nodes share the store, whose
//! announcements are best effort).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;

use super::{ApprovalError, Approvals, MAX_WAIT};
use crate::model::approval::{Approval, ApprovalState};
use crate::model::time::now_ms;

impl Approvals {
    /// The approval as it stands (expired first, if its time is up).
    pub async fn get(&self, id: &str) -> Result<Arc<Approval>, ApprovalError> {
        let approval = self.load(id).await?;
        if approval.state == ApprovalState::Pending && approval.expires <= now_ms() {
            return self.expire(id).await;
        }
        Ok(Arc::new(approval))
    }

    /// The approval once it is final, or as it stands after `wait`.
    pub async fn wait(&self, id: &str, wait: Duration) -> Result<Arc<Approval>, ApprovalError> {
        self.wait_for(id, wait, ApprovalState::is_final).await
    }

    /// The approval once it is decided (no longer pending), or as it stands
    /// after `wait`: what a workflow run waits for before it carries out
    /// its approved step itself.
    pub async fn wait_decided(&self, id: &str, wait: Duration) -> Result<Arc<Approval>, ApprovalError> {
        self.wait_for(id, wait, |s| s != ApprovalState::Pending).await
    }

    async fn wait_for(
        &self,
        id: &str,
        wait: Duration,
        settled: fn(ApprovalState) -> bool,
    ) -> Result<Arc<Approval>, ApprovalError> {
        // Listen before looking, so nothing that happens in between is missed.
        let mut notices = self.notices.subscribe();
        let approval = self.get(id).await?;
        if settled(approval.state) || wait.is_zero() {
            return Ok(approval);
        }
        let until = tokio::time::Instant::now() + wait.min(MAX_WAIT);
        let mut deadline = until;
        // Wake for the expiry of a pending one too, in case no sweep gets
        // there first (an approved one no longer expires).
        if approval.state == ApprovalState::Pending {
            let expires = Duration::from_millis(approval.expires.saturating_sub(now_ms()));
            deadline = deadline.min(tokio::time::Instant::now() + expires);
        }
        loop {
            // Nodes sharing a store also look again now and then, in case an
            // announcement from another node was lost.
            let wake = match self.recheck {
                Some(every) => deadline.min(tokio::time::Instant::now() + every),
                None => deadline,
            };
            let next = tokio::time::timeout_at(wake, notices.recv()).await;
            match next {
                Ok(Ok(notice)) if notice.approval.id == id => {
                    if settled(notice.approval.state) {
                        return Ok(notice.approval);
                    }
                    // Decided: it no longer expires; wait the whole time.
                    deadline = until;
                }
                Ok(Ok(_)) => {}
                // Missed some: look again.
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => {
                    let approval = self.get(id).await?;
                    if settled(approval.state) {
                        return Ok(approval);
                    }
                }
                Err(_) if wake < deadline => {
                    let approval = self.get(id).await?;
                    if settled(approval.state) {
                        return Ok(approval);
                    }
                    if approval.state != ApprovalState::Pending {
                        deadline = until;
                    }
                }
                Ok(Err(broadcast::error::RecvError::Closed)) | Err(_) => return self.get(id).await,
            }
        }
    }
}

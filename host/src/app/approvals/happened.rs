//! What happens to a held call, as its notices, event streams, webhook and
//! metrics name it.

use crate::app::metrics::ApprovalCount;
use crate::model::approval::{Approval, ApprovalState};

/// What just happened to a held call: the event its notice, its event
/// stream line and (when held) the reviewers' webhook are named by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum Happened {
    Held,
    /// A reviewer's decision that did not yet settle it (the first of two).
    Decision,
    Approved,
    Rejected,
    Expired,
    Executing,
    Lapsed,
    Done,
}

impl Happened {
    /// The event that left `approval` as it is (what another node did).
    pub(super) fn of(approval: &Approval) -> Happened {
        match approval.state {
            ApprovalState::Pending if approval.decisions.is_empty() => Happened::Held,
            ApprovalState::Pending => Happened::Decision,
            ApprovalState::Approved => Happened::Approved,
            ApprovalState::Executing => Happened::Executing,
            ApprovalState::Done => Happened::Done,
            ApprovalState::Rejected => Happened::Rejected,
            ApprovalState::Expired => Happened::Expired,
            ApprovalState::Lapsed => Happened::Lapsed,
        }
    }

    /// How `toolhost_approvals_total` counts it, if it does.
    pub(super) fn counted(self) -> Option<ApprovalCount> {
        match self {
            Happened::Held => Some(ApprovalCount::Held),
            Happened::Approved => Some(ApprovalCount::Approved),
            Happened::Rejected => Some(ApprovalCount::Rejected),
            Happened::Expired => Some(ApprovalCount::Expired),
            Happened::Lapsed => Some(ApprovalCount::Lapsed),
            Happened::Done => Some(ApprovalCount::Executed),
            Happened::Decision | Happened::Executing => None,
        }
    }

    /// Whether it is the final decision on the call (its decision latency
    /// is observed).
    pub(super) fn decides(self) -> bool {
        matches!(self, Happened::Approved | Happened::Rejected | Happened::Expired)
    }
}

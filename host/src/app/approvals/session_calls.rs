//! How many calls each session has made, for rules' `session_calls`.

use std::collections::HashMap;

/// Sessions whose call counts are kept; past this the least recently seen
/// are forgotten.
const MAX_SESSIONS: usize = 100_000;

/// Calls per session so far, for `session_calls`; bounded by forgetting
/// the sessions seen least recently.
#[derive(Default)]
pub(super) struct SessionCalls {
    counts: HashMap<(String, String), (u64, u64)>,
    tick: u64,
}

impl SessionCalls {
    /// The calls counted before this one, then count this one.
    pub(super) fn count(&mut self, token: &str, session: &str) -> u64 {
        self.tick += 1;
        if self.counts.len() >= MAX_SESSIONS {
            // Forget the older half in one pass, so this is rare.
            let mut ticks: Vec<u64> = self.counts.values().map(|(_, seen)| *seen).collect();
            let (_, median, _) = ticks.select_nth_unstable(MAX_SESSIONS / 2);
            let median = *median;
            self.counts.retain(|_, (_, seen)| *seen > median);
        }
        let entry = self
            .counts
            .entry((token.to_string(), session.to_string()))
            .or_insert((0, 0));
        let before = entry.0;
        *entry = (before + 1, self.tick);
        before
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_counts_are_bounded_and_forget_the_least_recent() {
        let mut calls = SessionCalls::default();
        assert_eq!(calls.count("agent", "kept"), 0);
        assert_eq!(calls.count("agent", "kept"), 1);
        // Another token's session of the same name is another session.
        assert_eq!(calls.count("other", "kept"), 0);
        for i in 0..MAX_SESSIONS + 10 {
            calls.count("agent", &format!("s{i}"));
            if i % 1000 == 0 {
                // Seen again and again, so never among the least recent.
                calls.count("agent", "kept");
            }
            assert!(calls.counts.len() <= MAX_SESSIONS);
        }
        assert!(calls.count("agent", "kept") > 2);
        assert_eq!(calls.count("agent", "s0"), 0, "the oldest sessions are forgotten");
    }
}

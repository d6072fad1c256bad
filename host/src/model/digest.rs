//! Digests that bind a record to exactly what was asked: an idempotency
//! key's claim, an approval's action.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// SHA-256 of the arguments' compact JSON with every object's keys sorted.
/// Sorted because serde_json's map is a `BTreeMap` while no crate in the
/// tree enables its `preserve_order`; one that did would change every
/// stored digest (idempotency claims, approvals' action digests), so the
/// form is pinned by a test.
pub fn arguments_digest(args: &Value) -> String {
    hex::encode(Sha256::digest(serde_json::to_vec(args).unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::arguments_digest;

    #[test]
    fn the_arguments_digest_is_of_the_canonical_form() {
        // Keys in any order, non-ASCII as UTF-8: the digest of
        // `{"a":[true,null,"x",1.5],"b":{"c":1,"d":"é"}}`.
        let args = serde_json::json!({ "b": { "d": "é", "c": 1 }, "a": [true, null, "x", 1.5] });
        assert_eq!(
            arguments_digest(&args),
            "af936123f3aa32dad16f86e7ff6f881b3bb6da6855ed7817d41f5de176151ed5"
        );
    }
}

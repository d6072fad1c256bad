//! The PostgreSQL backend against a real PostgreSQL (Debian's, started by
//! the test set-up on 127.0.0.1 as the unprivileged `postgres` user): two
//! connections to one database stand for two toolhost nodes.

use std::sync::Arc;

use serde_json::json;
use toolhost::model::audit::{AuditRecord, Outcome};
use toolhost::storage::audit::{AuditQuery, AuditStore, Mark};
use toolhost::storage::kv::{KvRefusal, KvStore};
use toolhost::storage::postgres::Postgres;
use toolhost_tests::postgres::Postgres as Server;

#[tokio::test(flavor = "multi_thread")]
async fn nodes_starting_together_apply_each_migration_once() {
    let url = Server::shared().database();
    let nodes = futures::future::join_all((0..4).map(|_| Postgres::connect(&url, "a"))).await;
    for node in &nodes {
        assert!(node.is_ok(), "{:?}", node.as_ref().err());
    }
    let again = Postgres::connect(&url, "a").await.unwrap();
    assert_eq!(again.migrate().await.unwrap(), 3);
    let (client, connection) = tokio_postgres_connect(&url).await;
    let applied: i64 = client
        .query_one("SELECT count(*) FROM toolhost_migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(applied, 3);
    drop(client);
    connection.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kv_quota_holds_across_nodes_writing_at_once() {
    let url = Server::shared().database();
    let a = Postgres::connect(&url, "a").await.unwrap();
    let b = Postgres::connect(&url, "b").await.unwrap();
    let (space_a, space_b) = (a.kv().space("coupon").unwrap(), b.kv().space("coupon").unwrap());
    // 100 writes of 100 bytes (key and value) from each node at once, under
    // a quota that fits 40 of them.
    const QUOTA: u64 = 4_000;
    let writes = |space: Arc<dyn toolhost::storage::kv::KvSpace>, node: &'static str| {
        (0..100).map(move |i| {
            let space = space.clone();
            async move {
                let key = format!("{node}-{i:04}");
                let value = vec![b'v'; 100 - key.len()];
                space.put(&key, &value, QUOTA, false).await
            }
        })
    };
    let results = futures::future::join_all(writes(space_a.clone(), "a").chain(writes(space_b.clone(), "b"))).await;
    let written = results.iter().filter(|r| matches!(r, Ok(true))).count();
    let refused = results
        .iter()
        .filter(|r| matches!(r, Err(KvRefusal::QuotaExceeded(_))))
        .count();
    assert_eq!(
        (written, refused),
        (40, 160),
        "{:?}",
        results.iter().find(|r| r.is_err())
    );
    let listed = space_a.list_keys("", 1000).await.unwrap().len();
    assert_eq!(listed, 40, "what the other node wrote is there too");
    // A replacement that does not grow is allowed at the quota; a delete on
    // one node frees room for the other.
    let first = space_b.list_keys("", 1).await.unwrap().remove(0);
    assert!(space_a.put(&first, b"x", QUOTA, false).await.unwrap());
    assert!(space_a.delete(&first).await.unwrap());
    assert!(!space_b.delete(&first).await.unwrap(), "deleted once");
    assert!(space_b.put("c-0000", &[b'v'; 94], QUOTA, false).await.unwrap());
    assert!(matches!(
        space_a.put("c-0001", &[b'v'; 94], QUOTA, false).await,
        Err(KvRefusal::QuotaExceeded(_))
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_claimed_on_two_nodes_at_once_goes_to_one() {
    let url = Server::shared().database();
    let a = Postgres::connect(&url, "a").await.unwrap();
    let b = Postgres::connect(&url, "b").await.unwrap();
    let (space_a, space_b) = (a.kv().space("coupon").unwrap(), b.kv().space("coupon").unwrap());
    for round in 0..25 {
        let key = format!("claim-{round}");
        let (x, y) = tokio::join!(
            space_a.put(&key, b"node a", 1 << 20, true),
            space_b.put(&key, b"node b", 1 << 20, true)
        );
        assert_eq!(
            [x.unwrap(), y.unwrap()].iter().filter(|w| **w).count(),
            1,
            "round {round}"
        );
    }
    // Keys are bytes: any string a connector names, in byte order, and a
    // prefix with LIKE's wildcards means only itself.
    for key in ["p%_1", "p%_2", "pa", "p\u{0}z", "é"] {
        assert!(space_a.put(key, b"1", 1 << 20, false).await.unwrap());
    }
    assert_eq!(space_b.list_keys("p%_", 10).await.unwrap(), ["p%_1", "p%_2"]);
    assert_eq!(
        space_b.list_keys("p", 10).await.unwrap(),
        ["p\u{0}z", "p%_1", "p%_2", "pa"]
    );
    assert_eq!(space_b.get("p\u{0}z").await.unwrap().as_deref(), Some(&b"1"[..]));
    // Another plugin's space sees none of it.
    assert!(a.kv().space("crm").unwrap().list_keys("", 10).await.unwrap().is_empty());
}

async fn tokio_postgres_connect(url: &str) -> (tokio_postgres::Client, tokio::task::JoinHandle<()>) {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    let task = tokio::spawn(async move {
        let _ = connection.await;
    });
    (client, task)
}

/// A call's record as a node would write it.
fn record(id: u64, tool: &str, session: &str, outcome: &str) -> AuditRecord {
    serde_json::from_value(json!({
        "id": id.to_string(), "time": "2026-12-04T00:00:00Z", "via": "http", "token": "agent",
        "session": session, "idempotency_key": null, "tool": tool, "plugin_version": "0.1.0",
        "plugin_digest": "d", "arguments": { "order-id": "SO-1" }, "outcome": outcome, "error": null,
        "duration_us": 5, "instantiate_us": 1, "execute_us": 2, "outbound": [], "denials": [],
    }))
    .unwrap()
}

fn search(session: Option<&str>, outcome: Option<Outcome>, after: u64, before: u64) -> AuditQuery {
    AuditQuery {
        after,
        before,
        limit: 1000,
        tool: None,
        via: None,
        outcome,
        session: session.map(str::to_string),
        token: None,
        approval: None,
        run: None,
        action: None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_audit_trail_is_shared_searched_by_index_and_each_node_closes_only_its_own_calls() {
    let url = Server::shared().database();
    let a = Postgres::connect(&url, "a").await.unwrap();
    let b = Postgres::connect(&url, "b").await.unwrap();
    // Both nodes write at once: node a even ids, node b odd ones.
    let writes = |node: &Postgres, parity: u64, session: &'static str| {
        let node = node.clone();
        async move {
            for i in 0..100u64 {
                let id = 1_000 + i * 2 + parity;
                let outcome = if i % 10 == 0 { "plugin_error" } else { "ok" };
                node.put(id, &record(id, "erp.get-order", session, outcome), Mark::None)
                    .await
                    .unwrap();
            }
        }
    };
    tokio::join!(writes(&a, 0, "s-a"), writes(&b, 1, "s-b"));
    // Either node finds the other's, newest first, by session, outcome and time.
    let found = a.query(&search(Some("s-b"), None, 0, u64::MAX)).await.unwrap();
    assert_eq!(found.len(), 100);
    assert!(found.iter().all(|r| r.session.as_deref() == Some("s-b")));
    assert!(found
        .windows(2)
        .all(|w| w[0].id.parse::<u64>().unwrap() > w[1].id.parse::<u64>().unwrap()));
    let failed = b
        .query(&search(None, Some(Outcome::PluginError), 0, u64::MAX))
        .await
        .unwrap();
    assert_eq!(failed.len(), 20);
    let window = b.query(&search(Some("s-a"), None, 1_000, 1_010)).await.unwrap();
    assert_eq!(
        window.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["1008", "1006", "1004", "1002", "1000"]
    );
    assert_eq!(a.last_id().unwrap(), 1_199);

    // Calls in flight on each node; node a restarts and closes only its own.
    a.put(
        5_000,
        &record(5_000, "coupon.issue-voucher", "s-a", "running"),
        Mark::Running,
    )
    .await
    .unwrap();
    b.put(
        5_001,
        &record(5_001, "coupon.issue-voucher", "s-b", "running"),
        Mark::Running,
    )
    .await
    .unwrap();
    let mine = a.running().unwrap();
    assert_eq!(mine.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [5_000]);
    let mut closed = mine;
    closed[0].1.outcome = Outcome::Interrupted;
    a.close_at_start(&closed).unwrap();
    assert!(a.running().unwrap().is_empty());
    assert_eq!(b.running().unwrap().len(), 1, "node b's call is still its own");
    let interrupted = b
        .query(&search(None, Some(Outcome::Interrupted), 0, u64::MAX))
        .await
        .unwrap();
    assert_eq!(interrupted.len(), 1);
    assert_eq!(interrupted[0].id, "5000");

    // Two nodes making one id is refused, not an overwrite.
    let clash = b
        .put(5_000, &record(5_000, "crm.get-customer", "s-b", "ok"), Mark::None)
        .await;
    assert!(clash.unwrap_err().to_string().contains("another node"));
    let kept = a
        .query(&search(Some("s-a"), Some(Outcome::Interrupted), 0, u64::MAX))
        .await
        .unwrap();
    assert_eq!(kept[0].tool, "coupon.issue-voucher");
}

/// A held call as the approvals service stores it.
fn approval(id: &str) -> toolhost::model::approval::Approval {
    serde_json::from_value(json!({
        "id": id, "state": "pending", "tool": "coupon.issue-voucher", "plugin_version": "0.1.0",
        "plugin_digest": "d", "arguments": { "amount-minor": 5000 }, "arguments_digest": "a",
        "via": "http", "token": "agent", "session": "s", "idempotency_key": null, "rule": "vouchers",
        "reason": "condition", "detail": null, "approvers": 1, "created": 1, "expires": u64::MAX / 2,
        "decisions": [], "held_audit_id": "1", "call_audit_id": null, "answer": null, "finished": null,
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_approval_changes_only_as_it_was_read_and_other_nodes_hear_of_it() {
    use toolhost::model::approval::ApprovalState;
    use toolhost::storage::approvals::ApprovalStore;
    use toolhost::storage::{Backend, Change};
    let url = Server::shared().database();
    let a = Postgres::connect(&url, "a").await.unwrap();
    let b = Postgres::connect(&url, "b").await.unwrap();
    let mut heard = b.changes().unwrap();
    a.put_approval(&approval("ap1")).await.unwrap();
    // b hears of a's hold, and not of its own changes.
    let change = tokio::time::timeout(std::time::Duration::from_secs(5), heard.recv())
        .await
        .expect("b hears a's change")
        .unwrap();
    assert_eq!(change, Change::Approval("ap1".into()));

    // Both nodes take the approved call for running at once: one wins.
    let mut approved = approval("ap1");
    approved.state = ApprovalState::Approved;
    assert!(a.update_approval(&approved, ApprovalState::Pending, 0).await.unwrap());
    let mut on_a = approved.clone();
    on_a.state = ApprovalState::Executing;
    on_a.executor = Some("a".into());
    let mut on_b = on_a.clone();
    on_b.executor = Some("b".into());
    let (x, y) = tokio::join!(
        a.update_approval(&on_a, ApprovalState::Approved, 0),
        b.update_approval(&on_b, ApprovalState::Approved, 0)
    );
    assert_eq!([x.unwrap(), y.unwrap()].iter().filter(|w| **w).count(), 1);
    let stored = b.approval("ap1").await.unwrap().unwrap();
    assert_eq!(stored.state, ApprovalState::Executing);
    assert_eq!(b.open_approvals().await.unwrap().len(), 1);
    // A decision counted on a stale read does not apply.
    assert!(!b.update_approval(&approved, ApprovalState::Pending, 0).await.unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_is_driven_by_the_node_holding_its_lease_until_the_lease_runs_out() {
    use toolhost::model::run::Run;
    use toolhost::storage::runs::RunStore;
    let url = Server::shared().database();
    let a = Postgres::connect(&url, "a").await.unwrap();
    let b = Postgres::connect(&url, "b").await.unwrap();
    let run: Run = serde_json::from_value(json!({
        "id": "r1", "workflow": "late-parcel", "version": "1.0.0", "digest": "d", "state": "running",
        "input": {}, "output": null, "error": null, "via": "http", "token": "agent", "session": null,
        "waiting_on": null, "created": 1, "updated": 1, "finished": null,
    }))
    .unwrap();
    a.put_run(&run).await.unwrap();
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    };
    // The starting node holds it; another node cannot take it, the holder
    // renews it.
    assert!(!b.lease_run("r1", "b", now() + 15_000).await.unwrap());
    assert!(a.lease_run("r1", "a", now() + 15_000).await.unwrap());
    // A lease that ran out (its node died) goes to the first node to ask.
    assert!(a.lease_run("r1", "a", now() - 1).await.unwrap());
    let (x, y) = tokio::join!(b.lease_run("r1", "b", now() + 15_000), async {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        a.lease_run("r1", "c", now() + 15_000).await
    });
    assert_eq!((x.unwrap(), y.unwrap()), (true, false));
    assert!(!a.lease_run("r1", "a", now() + 15_000).await.unwrap(), "a lost it");
    // An ended run holds no lease and is not open.
    let mut done = run.clone();
    done.state = toolhost::model::run::RunState::Completed;
    b.put_run(&done).await.unwrap();
    assert!(!b.lease_run("r1", "b", now() + 15_000).await.unwrap());
    assert!(a.open_runs().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idempotency_key_is_claimed_by_one_node_and_released_or_answered() {
    use toolhost::storage::idempotency::{Answer, AnswerKey, IdempotencyStore};
    let url = Server::shared().database();
    let a = Postgres::connect(&url, "a").await.unwrap();
    let b = Postgres::connect(&url, "b").await.unwrap();
    let key = AnswerKey {
        principal: "agent",
        tool: "coupon.issue-voucher",
        key: "k1",
    };
    let far = u64::MAX / 4;
    let (x, y) = tokio::join!(a.claim(&key, 0, far), b.claim(&key, 0, far));
    assert_eq!([x.unwrap(), y.unwrap()].iter().filter(|w| **w).count(), 1);
    // Released by its holder (only), it can be claimed again.
    b.release(&key).await.unwrap();
    a.release(&key).await.unwrap();
    assert!(b.claim(&key, 0, far).await.unwrap());
    // The answer ends the claim; a fresh answer is not claimed over, a stale one is.
    let answer = Answer {
        status: 200,
        body: json!({ "result": 1 }),
        arguments: "a".into(),
        at: 1_000,
    };
    assert!(b.keep(&key, &answer, false).await.unwrap());
    assert_eq!(a.answer(&key).await.unwrap().unwrap().body, json!({ "result": 1 }));
    assert!(!a.claim(&key, 999, far).await.unwrap(), "fresh");
    assert!(!a.keep(&key, &answer, true).await.unwrap(), "already answered");
    assert!(a.claim(&key, 1_001, far).await.unwrap(), "stale");
    assert!(a.answer(&key).await.unwrap().is_none());
    // A claim whose node died runs out.
    let other = AnswerKey { key: "k2", ..key };
    assert!(a.claim(&other, 0, 1).await.unwrap());
    assert!(b.claim(&other, 0, far).await.unwrap());
    assert_eq!(b.sweep(1_001).await.unwrap(), 0, "nothing to sweep yet");
}

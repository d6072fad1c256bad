//! The PostgreSQL backend against a real PostgreSQL (Debian's, started by
//! the test set-up on 127.0.0.1 as the unprivileged `postgres` user): two
//! connections to one database stand for two toolhost nodes.

use std::sync::Arc;

use toolhost::storage::kv::{KvRefusal, KvStore};
use toolhost::storage::postgres::Postgres;
use toolhost_tests::postgres::Postgres as Server;

#[tokio::test(flavor = "multi_thread")]
async fn nodes_starting_together_apply_each_migration_once() {
    let url = Server::shared().database();
    let nodes = futures::future::join_all((0..4).map(|_| Postgres::connect(&url))).await;
    for node in &nodes {
        assert!(node.is_ok(), "{:?}", node.as_ref().err());
    }
    let again = Postgres::connect(&url).await.unwrap();
    assert_eq!(again.migrate().await.unwrap(), 1);
    let (client, connection) = tokio_postgres_connect(&url).await;
    let applied: i64 = client
        .query_one("SELECT count(*) FROM toolhost_migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(applied, 1);
    drop(client);
    connection.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kv_quota_holds_across_nodes_writing_at_once() {
    let url = Server::shared().database();
    let a = Postgres::connect(&url).await.unwrap();
    let b = Postgres::connect(&url).await.unwrap();
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
    let a = Postgres::connect(&url).await.unwrap();
    let b = Postgres::connect(&url).await.unwrap();
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

//! Announcing changes to the other nodes: PostgreSQL `NOTIFY` on one
//! channel when a shared record changes, and a connection of its own per
//! node that `LISTEN`s and hands what other nodes announce to this node
//! ([`crate::storage::Change`]). A notification is best effort (a node
//! that was disconnected misses some), so a lost connection is announced as
//! [`Change::Missed`] and nodes also reconcile periodically.

use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use tokio_postgres::{AsyncMessage, NoTls};
use tokio_util::sync::CancellationToken;

use super::backend;
use crate::storage::{Change, StorageError};

const CHANNEL: &str = "toolhost";
/// How long to wait before connecting again after losing the connection.
const RECONNECT: Duration = Duration::from_secs(1);

/// `node`, a tab, the kind, a tab, the name: what one notification says.
fn encode(node: &str, change: &Change) -> String {
    let (kind, name) = match change {
        Change::Approval(id) => ("approval", id.as_str()),
        Change::Run(id) => ("run", id.as_str()),
        Change::Plugin(name) => ("plugin", name.as_str()),
        Change::Rules => ("rules", ""),
        Change::Missed => ("missed", ""),
    };
    format!("{node}\t{kind}\t{name}")
}

/// The change another node announced, `None` for this node's own (or what
/// no node of this version sends).
fn decode(payload: &str, node: &str) -> Option<Change> {
    let mut parts = payload.splitn(3, '\t');
    let (from, kind, name) = (parts.next()?, parts.next()?, parts.next()?);
    if from == node {
        return None;
    }
    let name = name.to_string();
    Some(match kind {
        "approval" => Change::Approval(name),
        "run" => Change::Run(name),
        "plugin" => Change::Plugin(name),
        "rules" => Change::Rules,
        _ => return None,
    })
}

/// Announce `change` as made by `node`. Outside a transaction, it goes out
/// at once; inside one, at its commit.
pub(super) async fn notify(
    client: &impl tokio_postgres::GenericClient,
    node: &str,
    change: &Change,
) -> Result<(), StorageError> {
    client
        .execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &encode(node, change)])
        .await
        .map_err(|e| backend("announcing a change", e))?;
    Ok(())
}

/// Listen for other nodes' changes until `stop`, reconnecting as needed,
/// and send them on `changes`. The returned receiver is told once the
/// first `LISTEN` is in place (from then on nothing announced is missed).
pub(super) fn spawn_listener(
    url: String,
    node: String,
    changes: broadcast::Sender<Change>,
    stop: CancellationToken,
) -> tokio::sync::oneshot::Receiver<()> {
    let (listening_tx, listening_rx) = tokio::sync::oneshot::channel();
    let mut listening_tx = Some(listening_tx);
    tokio::spawn(async move {
        let mut first = true;
        loop {
            let listening = listen(&url, &node, &changes, first, &mut listening_tx);
            let outcome = tokio::select! {
                outcome = listening => outcome,
                () = stop.cancelled() => return,
            };
            if let Err(e) = outcome {
                tracing::warn!("postgres: the change feed's connection was lost ({e}); connecting again");
            }
            first = false;
            tokio::select! {
                () = tokio::time::sleep(RECONNECT) => {}
                () = stop.cancelled() => return,
            }
        }
    });
    listening_rx
}

async fn listen(
    url: &str,
    node: &str,
    changes: &broadcast::Sender<Change>,
    first: bool,
    listening: &mut Option<tokio::sync::oneshot::Sender<()>>,
) -> Result<(), StorageError> {
    let (client, mut connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(|e| backend("connecting the change feed", e))?;
    let (heard, mut payloads) = mpsc::unbounded_channel();
    // The connection delivers notifications as it is polled, which also
    // carries the client's own requests.
    let driver = tokio::spawn(async move {
        while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if heard.send(n.payload().to_string()).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    });
    client
        .batch_execute(&format!("LISTEN {CHANNEL}"))
        .await
        .map_err(|e| backend("listening for changes", e))?;
    if let Some(listening) = listening.take() {
        let _ = listening.send(());
    }
    // Reconnected: what was announced meanwhile is lost.
    if !first {
        let _ = changes.send(Change::Missed);
    }
    while let Some(payload) = payloads.recv().await {
        if let Some(change) = decode(&payload, node) {
            // Nobody listening is fine.
            let _ = changes.send(change);
        }
    }
    match driver.await {
        Ok(Ok(())) => Err(StorageError::Backend(
            "postgres: the change feed's connection closed".into(),
        )),
        Ok(Err(e)) => Err(backend("change feed", e)),
        Err(e) => Err(backend("change feed", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_hears_the_others_changes_and_not_its_own() {
        for change in [
            Change::Approval("0190a\t".into()),
            Change::Run("r1".into()),
            Change::Plugin("crm".into()),
            Change::Rules,
        ] {
            let payload = encode("a", &change);
            assert_eq!(decode(&payload, "b"), Some(change));
            assert_eq!(decode(&payload, "a"), None);
        }
        assert_eq!(decode("a\tsomething-new\tx", "b"), None);
        assert_eq!(decode("garbage", "b"), None);
    }
}

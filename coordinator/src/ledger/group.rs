//! Group commit for signed ledger requests (`Execute`): requests that arrive while a transaction is
//! being written wait and go into the next one together, so under load many redemptions share one
//! fsync, and a lone request goes out at once. Each request still succeeds or fails alone
//! (`Ledger::execute_checked` runs each in its own savepoint), in arrival order. Only requests whose
//! signatures already passed (`Checked`) enter the queue: a flood of forged requests is refused on the
//! callers' own threads and never delays anyone's transaction.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::{Applied, Checked, Ledger, LedgerError, Receipt};

/// Most requests one transaction takes.
pub const MAX_GROUP: usize = 256;
/// Requests waiting for a transaction, at most; a caller past it waits for room.
const QUEUE: usize = 4 * MAX_GROUP;

type Reply = oneshot::Sender<Applied>;

/// A handle on the ledger's group committer; cheap to clone.
#[derive(Debug, Clone)]
pub struct GroupCommit {
    queue: mpsc::Sender<(Checked, Reply)>,
}

impl GroupCommit {
    /// Starts the committer on the current runtime; it ends when every handle is dropped.
    pub fn start(ledger: Arc<Ledger>) -> Self {
        let (queue, waiting) = mpsc::channel(QUEUE);
        tokio::spawn(commit_groups(ledger, waiting));
        Self { queue }
    }

    /// Applies `request` in the next transaction; returns its receipt and the round it was applied in.
    pub async fn execute(&self, request: Checked) -> Result<(Receipt, u64), LedgerError> {
        let (reply, answer) = oneshot::channel();
        let gone = || LedgerError::Task("the ledger's committer stopped".into());
        self.queue
            .send((request, reply))
            .await
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

async fn commit_groups(ledger: Arc<Ledger>, mut waiting: mpsc::Receiver<(Checked, Reply)>) {
    while let Some(first) = waiting.recv().await {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match waiting.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        let (requests, replies): (Vec<Result<Checked, LedgerError>>, Vec<Reply>) =
            group.into_iter().map(|(c, r)| (Ok(c), r)).unzip();
        crate::metrics::ledger_group(requests.len());
        match ledger.call(move |l| l.execute_checked(requests)).await {
            Ok(outcomes) => {
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(outcome);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, requests = replies.len(), "a ledger transaction failed; none of its requests applied");
                let why = e.to_string();
                for reply in replies {
                    let _ = reply.send(Err(LedgerError::Task(format!(
                        "the ledger could not commit: {why}"
                    ))));
                }
            }
        }
    }
}

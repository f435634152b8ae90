//! Group commit: deliveries that arrive together share one transaction (one
//! fsync), instead of one each.
use crate::store::{Committed, Incoming, Store};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Most deliveries folded into one transaction.
const MAX_BATCH: usize = 256;

type Job = (Incoming, oneshot::Sender<Result<Committed, String>>);

#[derive(Clone)]
pub struct Committer {
    tx: mpsc::Sender<Job>,
}

impl Committer {
    /// Start the commit thread. It ends when every `Committer` is dropped.
    pub fn start(store: Arc<dyn Store>) -> Committer {
        Committer::start_with(move |batch| store.commit(batch))
    }

    /// Start with any commit function (an engine, or a failing one in tests).
    pub fn start_with(commit: impl Fn(&[Incoming]) -> anyhow::Result<Vec<Committed>> + Send + 'static) -> Committer {
        let (tx, mut rx) = mpsc::channel::<Job>(4096);
        std::thread::Builder::new()
            .name("spoke-commit".into())
            .spawn(move || {
                while let Some(first) = rx.blocking_recv() {
                    let mut jobs = vec![first];
                    while jobs.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(j) => jobs.push(j),
                            Err(_) => break,
                        }
                    }
                    let batch: Vec<Incoming> = jobs.iter().map(|(i, _)| i.clone()).collect();
                    match commit(&batch) {
                        Ok(results) => {
                            for ((_, reply), r) in jobs.into_iter().zip(results) {
                                let _ = reply.send(Ok(r));
                            }
                        }
                        Err(e) => {
                            let msg = format!("{e:#}");
                            for (_, reply) in jobs {
                                let _ = reply.send(Err(msg.clone()));
                            }
                        }
                    }
                }
            })
            .expect("starting the commit thread");
        Committer { tx }
    }

    /// Commit one delivery; resolves once it is durable (or failed).
    pub async fn commit(&self, incoming: Incoming) -> Result<Committed, String> {
        let (reply, rx) = oneshot::channel();
        self.tx.send((incoming, reply)).await.map_err(|_| "the commit thread has stopped".to_string())?;
        rx.await.map_err(|_| "the commit thread has stopped".to_string())?
    }
}

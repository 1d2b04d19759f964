//! Replaying dead letters (`rbtx dlq replay`): they go back to the queue, except a record the
//! initial sync could not write. `rbtx sync initial` retries that one with the record read
//! afresh; replaying the stored copy could overwrite newer data in Rackbeat.

use super::initial::INITIAL_SYNC_EVENT;
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("no dead letter {0}")]
    NotFound(i64),
    #[error(
        "dead letter {id} is a record the initial sync could not write: run `rbtx sync initial --entities {entity}` again; it retries it with the record read afresh"
    )]
    InitialSync { id: i64, entity: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Puts dead letter `id` back in the queue.
pub async fn replay<S: Store>(store: &S, id: i64) -> Result<(), ReplayError> {
    if let Some(d) = store.get_dead_letter(id).await?
        && d.event.event == INITIAL_SYNC_EVENT
    {
        return Err(ReplayError::InitialSync {
            id,
            entity: d.event.entity,
        });
    }
    match store.replay(id).await? {
        true => Ok(()),
        false => Err(ReplayError::NotFound(id)),
    }
}

/// What `replay_all` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replayed {
    /// Back in the queue.
    pub queued: usize,
    /// Records the initial sync could not write, left for `rbtx sync initial` to retry.
    pub left: usize,
}

/// Puts every dead letter back in the queue but those of the initial sync.
pub async fn replay_all<S: Store>(store: &S) -> Result<Replayed, StoreError> {
    let queued = store.replay_all(Some(INITIAL_SYNC_EVENT)).await?;
    let left = store
        .list_dead_letters()
        .await?
        .iter()
        .filter(|d| d.event.event == INITIAL_SYNC_EVENT)
        .count();
    Ok(Replayed { queued, left })
}

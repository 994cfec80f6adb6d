//! Each alliance's membership, replayed once and then kept up to date.
//!
//! Every fetch needs to know which scopes the asking device reads, and a
//! full replay verifies every entry's signature. So this instance keeps the
//! replayed log per alliance and, on each use, applies only the entries
//! stored since (another instance may have appended them). A log is only
//! ever appended to; if the stored one no longer continues the cached one,
//! the cache is dropped and the log replayed from the start.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kith_core::{AllianceId, Membership};

use crate::error::AppError;
use crate::storage::Storage;

/// The most alliances kept at once; past it the cache starts again (a relay
/// holds a handful of alliances, so this bounds memory, not speed).
const MAX_CACHED: usize = 1_024;

/// Replayed membership logs, by alliance.
#[derive(Default)]
pub struct Memberships {
    cached: Mutex<HashMap<AllianceId, Arc<Membership>>>,
}

impl Memberships {
    /// The alliance's membership as storage holds it now.
    pub async fn current<S: Storage>(
        &self,
        storage: &S,
        alliance: AllianceId,
    ) -> Result<Arc<Membership>, AppError> {
        let cached = self.lock().get(&alliance).cloned();
        let membership = match cached {
            Some(cached) => match Self::extend(storage, alliance, &cached).await? {
                Some(extended) => extended,
                None => Arc::new(Self::replay(storage, alliance).await?),
            },
            None => Arc::new(Self::replay(storage, alliance).await?),
        };
        let mut map = self.lock();
        if map.len() >= MAX_CACHED && !map.contains_key(&alliance) {
            map.clear();
        }
        // Keep the longer of two racing answers: logs only grow.
        let keep = map
            .get(&alliance)
            .is_none_or(|held| held.len() <= membership.len());
        if keep {
            map.insert(alliance, membership.clone());
        }
        Ok(membership)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<AllianceId, Arc<Membership>>> {
        // A panic while holding the lock leaves a map that is still whole.
        self.cached.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `cached` with the entries stored after it; `None` if the stored log
    /// does not continue it.
    async fn extend<S: Storage>(
        storage: &S,
        alliance: AllianceId,
        cached: &Arc<Membership>,
    ) -> Result<Option<Arc<Membership>>, AppError> {
        let Some(last) = cached.entries().last() else {
            return Ok(None);
        };
        let tail = storage.log(alliance, cached.len() - 1).await?;
        match tail.split_first() {
            Some((first, newer)) if first == last => {
                if newer.is_empty() {
                    return Ok(Some(cached.clone()));
                }
                let mut membership = Membership::clone(cached);
                for entry in newer {
                    if membership.apply(entry).is_err() {
                        return Ok(None);
                    }
                }
                Ok(Some(Arc::new(membership)))
            }
            _ => Ok(None),
        }
    }

    async fn replay<S: Storage>(storage: &S, alliance: AllianceId) -> Result<Membership, AppError> {
        let log = storage.log(alliance, 0).await?;
        Membership::replay(alliance, &log).map_err(|e| {
            tracing::error!(alliance = %alliance, error = %e, "stored membership log does not replay");
            AppError::Unavailable
        })
    }
}

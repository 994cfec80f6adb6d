//! Deleting invite packages once they are no longer needed. A package holds
//! every epoch key the new device reads, sealed to an identity that exists
//! only in the link: a link found later (a chat backup, a mail gateway's
//! log) together with the relay's database or a backup of it would give
//! them all. So a package goes as soon as it cannot be needed again:
//!
//! - when the invite is cancelled (by its maker, or by its maker's removal);
//! - when the device that joined with it first syncs as a member: by then
//!   it has kept the keys (a join whose answer was lost asks the redeem
//!   again, and needs the package until then);
//! - a day after the invite expires, used or not ([`crate::purge`]).
//!
//! Each deletion is scrubbed from the database's files.

use std::collections::HashSet;
use std::sync::Mutex;

use kith_core::relay_rules as rules;
use kith_core::{AllianceId, DeviceId, InviteId};

use crate::AppState;
use crate::error::AppError;
use crate::routes::membership;
use crate::storage::Storage;

/// Devices whose invite packages this instance already deleted, so a sync
/// costs no write after the first.
#[derive(Default)]
pub struct Settled {
    devices: Mutex<HashSet<(AllianceId, DeviceId)>>,
}

impl Settled {
    fn contains(&self, key: &(AllianceId, DeviceId)) -> bool {
        self.devices
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(key)
    }

    fn insert(&self, key: (AllianceId, DeviceId)) {
        self.devices
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key);
    }
}

/// A member's device syncs: delete the packages of the invites it joined with.
pub async fn after_first_sync<S: Storage>(
    state: &AppState<S>,
    alliance: AllianceId,
    device: DeviceId,
) -> Result<(), AppError> {
    let key = (alliance, device);
    if state.settled.contains(&key) {
        return Ok(());
    }
    let membership = membership(state, alliance).await?;
    let used = rules::invites_used_by(&membership, device);
    drop(state, alliance, used);
    state.settled.insert(key);
    Ok(())
}

/// Deletes the packages of `invites` and scrubs them, in the background:
/// the request that asked for it does not wait (scrubbing rewrites a table
/// on PostgreSQL). What asked for it has already happened, so a failure is
/// logged: the packages then go at the maintenance pass after the invites
/// expire.
pub fn drop<S: Storage>(state: &AppState<S>, alliance: AllianceId, invites: Vec<InviteId>) {
    if invites.is_empty() {
        return;
    }
    let storage = state.storage.clone();
    tokio::spawn(async move { drop_now(&*storage, alliance, &invites).await });
}

async fn drop_now<S: Storage>(storage: &S, alliance: AllianceId, invites: &[InviteId]) {
    match storage.drop_invite_packages(alliance, invites).await {
        Ok(0) => {}
        Ok(_) => {
            if let Err(e) = storage.scrub_invites().await {
                tracing::warn!(error = %e, "cannot scrub deleted invite packages");
            }
        }
        Err(e) => {
            tracing::warn!(alliance = %alliance, error = %e, "cannot delete invite packages");
        }
    }
}

//! A simulated device: the real `Client`, the store its driver keeps (the
//! latest state record and every blob it was told to keep), and what the
//! simulation needs to know about it.

use std::collections::BTreeSet;

use kith_core::{
    AgeIdentity, BlobId, BlobRecord, Client, ContributionView, DeviceId, Rejection, StoreOp,
    SyncReport,
};

use super::Dice;

/// What the driver has written durably.
#[derive(Default)]
pub struct Store {
    state: Vec<u8>,
    /// The replica last written (what the device read, sealed to it).
    replica: Option<Vec<u8>>,
    blobs: Vec<BlobRecord>,
    ids: BTreeSet<BlobId>,
}

impl Store {
    /// Writes the ops in order, as a driver must before its next step.
    pub fn apply(&mut self, ops: Vec<StoreOp>) -> Result<(), String> {
        for op in ops {
            match op {
                StoreOp::PutState(bytes) => self.state = bytes.to_vec(),
                StoreOp::PutReplica(bytes) => self.replica = Some(bytes),
                StoreOp::DeleteBlob(id) => {
                    self.ids.remove(&id);
                    self.blobs.retain(|b| b.id != id);
                }
                StoreOp::PutBlob(blob) => {
                    if self.ids.insert(blob.id) {
                        self.blobs.push(blob);
                    } else {
                        // Only a waiting blob sealed again to a newer key
                        // (the same blob, other bytes) replaces one.
                        let old = self.blobs.iter_mut().find(|b| b.id == blob.id).unwrap();
                        if (old.doc, old.scope, old.seq, old.covers)
                            != (blob.doc, blob.scope, blob.seq, blob.covers)
                        {
                            return Err(format!("blob {} stored twice as another blob", blob.id));
                        }
                        *old = blob;
                    }
                }
            }
        }
        Ok(())
    }

    /// Every blob kept, in the order they were written.
    pub fn blobs(&self) -> &[BlobRecord] {
        &self.blobs
    }

    /// The state record last written.
    pub fn state(&self) -> &[u8] {
        &self.state
    }

    /// Rebuilds the client from this store alone, handing it the blobs in an
    /// order chosen by the dice (a store promises no order). It may refuse
    /// only blobs a removed device wrote (`by_removed`): one kept before the
    /// removal was known may lie past the cutoff the removal fixed.
    pub fn load(&self, dice: &mut Dice, by_removed: &BTreeSet<BlobId>) -> Result<Client, String> {
        let mut blobs = self.blobs.clone();
        dice.shuffle(&mut blobs);
        let (client, refused) = Client::open(&self.state, self.replica.as_deref(), blobs)
            .map_err(|e| format!("load failed: {e}"))?;
        let tolerated = self.ids.intersection(by_removed).count();
        if refused > tolerated {
            return Err(format!(
                "load refused {refused} stored blobs ({tolerated} of them from removed devices)"
            ));
        }
        Ok(client)
    }

    /// Which stored blobs a load refuses, found by leaving each one out in
    /// turn (for failure messages only).
    pub fn refused(&self) -> Vec<BlobId> {
        let count = |blobs: Vec<BlobRecord>| {
            Client::open(&self.state, self.replica.as_deref(), blobs).map_or(0, |(_, n)| n)
        };
        let all = count(self.blobs.clone());
        self.blobs
            .iter()
            .filter(|b| {
                let rest = self
                    .blobs
                    .iter()
                    .filter(|o| o.id != b.id)
                    .cloned()
                    .collect();
                count(rest) < all
            })
            .map(|b| b.id)
            .collect()
    }
}

/// A text a device wrote, and when.
#[derive(Clone, Debug)]
pub struct Written {
    /// The text (unique in the run; research-only texts end in `-r`).
    pub text: String,
    /// Its blob.
    pub blob: BlobId,
    /// Written to the member's research-only scope.
    pub research: bool,
    /// The step it was written at.
    pub step: u64,
    /// The devices its writer already knew were removed.
    pub knew_removed: Vec<DeviceId>,
    /// Its writer's log marked the scope stale (a removal applied, the key
    /// rotation that follows it not yet).
    pub stale: bool,
}

/// One device in the simulation.
pub struct Device {
    /// Its pseudonym.
    pub name: String,
    /// The real client.
    pub client: Client,
    /// What its driver has persisted.
    pub store: Store,
    /// Whether a sync run is under way (its next request can be sent).
    pub running: bool,
    /// Offline until this step (its requests fail at once).
    pub offline_until: u64,
    /// Texts it wrote that reached its store. (One whose blob was lost in a
    /// crash before it was stored is not here.)
    pub written: Vec<Written>,
    /// How many texts it has tried to write (so no text is ever reused).
    pub attempts: usize,
    /// The report of its last finished sync run.
    pub last_report: Option<SyncReport>,
    /// For a research-team device: the researcher's own age identity, kept
    /// outside the device as in real use.
    pub research_identity: Option<AgeIdentity>,
}

impl Device {
    /// A device that has just been created or joined.
    pub fn new(name: String, client: Client, ops: Vec<StoreOp>) -> Result<Self, String> {
        let mut store = Store::default();
        store.apply(ops)?;
        Ok(Self {
            name,
            client,
            store,
            running: false,
            offline_until: 0,
            written: Vec::new(),
            attempts: 0,
            last_report: None,
            research_identity: None,
        })
    }

    /// Whether this device can write contributions.
    pub fn writes(&self) -> bool {
        self.research_identity.is_none()
    }

    /// Crash and restart: the in-memory client is dropped and rebuilt from
    /// the store. After a clean crash (between steps) the rebuilt client must
    /// read and hold exactly what the old one did; after a torn one (part of
    /// a step's writes done) it need only load.
    pub fn restart(
        &mut self,
        dice: &mut Dice,
        clean: bool,
        by_removed: &BTreeSet<BlobId>,
    ) -> Result<(), String> {
        let rebuilt = self
            .store
            .load(dice, by_removed)
            .map_err(|e| format!("{} restarts: {e}", self.name))?;
        self.running = false;
        if !clean {
            self.client = rebuilt;
            return Ok(());
        }
        let before = self.client.contributions();
        let after = rebuilt.contributions();
        if before != after {
            let texts = |from: &[ContributionView], without: &[ContributionView]| {
                from.iter()
                    .filter(|c| !without.contains(c))
                    .map(|c| c.text.clone())
                    .collect::<Vec<_>>()
            };
            return Err(format!(
                "restart changed what {} reads: {} contributions before, {} after; lost {:?}, \
                 gained {:?}",
                self.name,
                before.len(),
                after.len(),
                texts(&before, &after),
                texts(&after, &before)
            ));
        }
        if rebuilt.pending_uploads() != self.client.pending_uploads() {
            return Err(format!(
                "restart changed {}'s outbox: {} before, {} after",
                self.name,
                self.client.pending_uploads(),
                rebuilt.pending_uploads()
            ));
        }
        self.client = rebuilt;
        Ok(())
    }

    /// What this device reads; a research device reads through the
    /// researcher's own identity over every blob it stored. The research
    /// reader may refuse only blobs of removed devices past their cutoff.
    pub fn reads(&self, by_removed: &BTreeSet<BlobId>) -> Result<Vec<ContributionView>, String> {
        let Some(identity) = &self.research_identity else {
            return Ok(self.client.contributions());
        };
        let membership = self.client.membership();
        let mut reader = self.client.research_reader(identity.clone());
        let ingestion = reader.ingest_all(self.store.blobs(), membership);
        let refused = ingestion
            .outcomes
            .into_iter()
            .filter_map(Result::err)
            .chain(ingestion.late);
        for rejection in refused {
            let tolerated =
                matches!(rejection, Rejection::AfterRemoval(b) if by_removed.contains(&b));
            if !tolerated {
                return Err(format!("the research reader refused a blob: {rejection}"));
            }
        }
        Ok(reader.contributions(membership))
    }
}

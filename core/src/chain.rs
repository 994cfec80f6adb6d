//! Per-device hash chains: tamper evidence against a dishonest relay.
//!
//! Every batch a device writes to a scope carries, inside its signature, a
//! sequence number (from 1, per device and scope) and the hash of that
//! device's previous batch in the scope. A reader applies a device's batches
//! only in chain order. A batch that arrives early is held aside until the
//! ones before it come; a second, different batch with a number already used
//! is refused. So a relay that drops, withholds, reorders or duplicates
//! blobs can delay what a reader sees, but never make it see a history the
//! writer did not write, and a gap is reported as soon as a later batch
//! shows it.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use crate::ids::{BlobId, DeviceId, DocId, ScopeId};

/// A chain: one device's batches in one scope.
pub(crate) type ChainId = (DeviceId, ScopeId);

/// The last batch applied from a chain.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChainHead {
    /// Its sequence number (0 before the first).
    pub seq: u64,
    /// SHA-256 of its signed body (zeros before the first).
    pub hash: [u8; 32],
}

/// A batch whose signature checked out, waiting for its turn.
pub(crate) struct PendingBatch {
    pub blob: BlobId,
    pub doc: DocId,
    pub seq: u64,
    pub prev: [u8; 32],
    pub hash: [u8; 32],
    pub changes: Vec<u8>,
}

/// What the chains say about one newly opened batch.
pub(crate) enum Placement {
    /// It is next: apply it (then call [`Chains::ready`] for any it unblocks).
    Next(PendingBatch),
    /// It came early and is held.
    Held,
    /// It conflicts with a batch already seen from the same device.
    Forked,
    /// A checkpoint already holds it.
    Covered,
}

/// Batches missing from a device's chain: a later one arrived, these did not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gap {
    /// The device that wrote them.
    pub device: DeviceId,
    /// The scope they belong to.
    pub scope: ScopeId,
    /// The first missing sequence number.
    pub first: u64,
    /// The last missing sequence number.
    pub last: u64,
    /// How many later batches are held until these arrive.
    pub held: usize,
}

impl fmt::Display for Gap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let device = &self.device.to_string()[..16];
        let count = self.last - self.first + 1;
        write!(
            f,
            "{count} batch(es) from device {device} (numbers {} to {}) have not arrived, \
             though {} later one(s) did; the later ones are kept aside, unread, until they come",
            self.first, self.last, self.held
        )
    }
}

/// Chains as saved: each one's head, and each one's checkpoint floor.
pub(crate) type SavedChains = (Vec<(ChainId, ChainHead)>, Vec<(ChainId, u64)>);

/// Every chain a reader has seen.
#[derive(Default)]
pub(crate) struct Chains {
    heads: HashMap<ChainId, ChainHead>,
    /// Up to which sequence number a checkpoint holds each chain.
    floors: HashMap<ChainId, u64>,
    held: BTreeMap<ChainId, BTreeMap<u64, PendingBatch>>,
}

impl Chains {
    /// The head of a chain (zero if nothing was applied from it).
    pub fn head(&self, chain: &ChainId) -> ChainHead {
        self.heads.get(chain).copied().unwrap_or_default()
    }

    /// Places a batch that opened and whose signature checked out.
    pub fn place(&mut self, chain: ChainId, batch: PendingBatch) -> Placement {
        let head = self.head(&chain);
        if batch.seq <= self.floors.get(&chain).copied().unwrap_or(0) {
            return Placement::Covered;
        }
        if batch.seq <= head.seq {
            // The blob id is new (known ids never get here), so this is a
            // second batch under a number already used.
            return Placement::Forked;
        }
        if batch.seq == head.seq + 1 {
            return if batch.prev == head.hash {
                Placement::Next(batch)
            } else {
                Placement::Forked
            };
        }
        let waiting = self.held.entry(chain).or_default();
        match waiting.get(&batch.seq) {
            Some(other) if other.blob != batch.blob => Placement::Forked,
            Some(_) => Placement::Held,
            None => {
                waiting.insert(batch.seq, batch);
                Placement::Held
            }
        }
    }

    /// Records that `batch` was applied as the chain's next.
    pub fn advance(&mut self, chain: ChainId, batch: &PendingBatch) {
        self.set_head(
            chain,
            ChainHead {
                seq: batch.seq,
                hash: batch.hash,
            },
        );
    }

    /// Sets a chain's head (for this device's own writes).
    pub fn set_head(&mut self, chain: ChainId, head: ChainHead) {
        self.heads.insert(chain, head);
    }

    /// A checkpoint holds the chain up to `head`: move on to it if it is
    /// ahead, forgetting held batches it covers. Returns whether it moved.
    pub fn jump(&mut self, chain: ChainId, head: ChainHead) -> bool {
        if head.seq <= self.head(&chain).seq {
            return false;
        }
        self.heads.insert(chain, head);
        self.floors.insert(chain, head.seq);
        if let Some(waiting) = self.held.get_mut(&chain) {
            waiting.retain(|seq, _| *seq > head.seq);
            if waiting.is_empty() {
                self.held.remove(&chain);
            }
        }
        true
    }

    /// Every chain's head and checkpoint floor, to save (held batches are
    /// not: their blobs stay stored and are read again).
    pub fn saved(&self) -> SavedChains {
        let mut heads: Vec<_> = self.heads.iter().map(|(c, h)| (*c, *h)).collect();
        let mut floors: Vec<_> = self.floors.iter().map(|(c, f)| (*c, *f)).collect();
        heads.sort_by_key(|(chain, _)| *chain);
        floors.sort_by_key(|(chain, _)| *chain);
        (heads, floors)
    }

    /// Chains as [`Chains::saved`] left them.
    pub fn restored(heads: Vec<(ChainId, ChainHead)>, floors: Vec<(ChainId, u64)>) -> Self {
        Self {
            heads: heads.into_iter().collect(),
            floors: floors.into_iter().collect(),
            held: BTreeMap::new(),
        }
    }

    /// Every chain's head in `scope`.
    pub fn heads_in(&self, scope: crate::ids::ScopeId) -> Vec<(DeviceId, ChainHead)> {
        let mut heads: Vec<_> = self
            .heads
            .iter()
            .filter(|((_, s), _)| *s == scope)
            .map(|((device, _), head)| (*device, *head))
            .collect();
        heads.sort_by_key(|(device, _)| *device);
        heads
    }

    /// Whether any chain in `scope` waits for a missing batch.
    pub fn has_gap_in(&self, scope: crate::ids::ScopeId) -> bool {
        self.held.keys().any(|(_, s)| *s == scope)
    }

    /// The held batch that now follows the head, if any. A held batch that
    /// does not link to the head is a fork: it is dropped and reported.
    pub fn ready(&mut self, chain: &ChainId) -> Option<Result<PendingBatch, BlobId>> {
        let head = self.head(chain);
        let waiting = self.held.get_mut(chain)?;
        let batch = waiting.remove(&(head.seq + 1))?;
        if waiting.is_empty() {
            self.held.remove(chain);
        }
        Some(if batch.prev == head.hash {
            Ok(batch)
        } else {
            Err(batch.blob)
        })
    }

    /// Every gap: chains with batches held for a missing predecessor.
    pub fn gaps(&self) -> Vec<Gap> {
        self.held
            .iter()
            .filter_map(|(&(device, scope), waiting)| {
                let (&first_held, _) = waiting.first_key_value()?;
                Some(Gap {
                    device,
                    scope,
                    first: self.head(&(device, scope)).seq + 1,
                    last: first_held - 1,
                    held: waiting.len(),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(n: u8, seq: u64, prev: [u8; 32]) -> PendingBatch {
        PendingBatch {
            blob: BlobId([n; 16]),
            doc: DocId([0; 16]),
            seq,
            prev,
            hash: [n; 32],
            changes: Vec::new(),
        }
    }

    const CHAIN: ChainId = (DeviceId([1; 32]), ScopeId([2; 16]));

    #[test]
    fn early_batches_wait_and_gaps_are_named() {
        let mut chains = Chains::default();
        let Placement::Next(first) = chains.place(CHAIN, batch(1, 1, [0; 32])) else {
            panic!("the first batch is next")
        };
        chains.advance(CHAIN, &first);
        assert!(matches!(
            chains.place(CHAIN, batch(3, 3, [2; 32])),
            Placement::Held
        ));
        assert!(matches!(
            chains.place(CHAIN, batch(4, 4, [3; 32])),
            Placement::Held
        ));
        assert_eq!(
            chains.gaps(),
            vec![Gap {
                device: CHAIN.0,
                scope: CHAIN.1,
                first: 2,
                last: 2,
                held: 2
            }]
        );
        assert!(chains.ready(&CHAIN).is_none());
        let Placement::Next(second) = chains.place(CHAIN, batch(2, 2, [1; 32])) else {
            panic!("the missing batch is next")
        };
        chains.advance(CHAIN, &second);
        for expected in [3, 4] {
            let next = chains.ready(&CHAIN).unwrap().unwrap();
            assert_eq!(next.seq, expected);
            chains.advance(CHAIN, &next);
        }
        assert!(chains.gaps().is_empty());
        assert_eq!(chains.head(&CHAIN).seq, 4);
    }

    #[test]
    fn a_second_history_from_one_device_is_refused() {
        let mut chains = Chains::default();
        let Placement::Next(first) = chains.place(CHAIN, batch(1, 1, [0; 32])) else {
            panic!()
        };
        chains.advance(CHAIN, &first);
        // Same number, other blob.
        assert!(matches!(
            chains.place(CHAIN, batch(9, 1, [0; 32])),
            Placement::Forked
        ));
        // Next number, but not linked to what came before.
        assert!(matches!(
            chains.place(CHAIN, batch(8, 2, [7; 32])),
            Placement::Forked
        ));
        // Two different batches held under one number.
        assert!(matches!(
            chains.place(CHAIN, batch(5, 5, [4; 32])),
            Placement::Held
        ));
        assert!(matches!(
            chains.place(CHAIN, batch(6, 5, [4; 32])),
            Placement::Forked
        ));
    }
}

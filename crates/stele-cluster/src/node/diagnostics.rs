//! What tests, the simulation and `stele bench` inspect: the log's entries and digests,
//! applied and acknowledged counts, voter configurations, the log's health and limits.

use super::*;

impl Node {
    /// A digest of every log entry, in log order: (term, index, FNV-1a of its records'
    /// bytes). For the simulation's diagnostics: two nodes whose digests differ at an index
    /// both hold have diverging logs.
    /// With `applied_only`, only the entries this node has applied (so committed). A failed
    /// log reads nothing: ask only a node whose log has not failed.
    #[doc(hidden)]
    pub fn entry_digests(&self, applied_only: bool) -> Vec<(u64, u64, u64)> {
        let applied = self.inner.applied.next_index.load(Ordering::Acquire);
        let map = self.inner.log.entries.read().expect("entry map lock");
        let end = if applied_only {
            applied.min(map.len())
        } else {
            map.len()
        };
        (0..end)
            .map(|index| {
                let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
                let mut term = 0;
                for &position in map.positions(index).unwrap_or_default() {
                    if let Ok((payload, _)) = self.inner.log.log.read(position) {
                        if let Ok((header, _)) = crate::record::decode_header(&payload) {
                            term = header.log_id.leader_id.term;
                        }
                        for b in payload.iter() {
                            hash = (hash ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
                        }
                    }
                }
                (term, index, hash)
            })
            .collect()
    }

    /// How many log entries this node has applied (so knows committed), counted from the
    /// start of the log like [`Node::acknowledged_entries`].
    #[doc(hidden)]
    pub fn applied_entries(&self) -> u64 {
        self.inner.applied.next_index.load(Ordering::Acquire)
    }

    /// How many log entries (from the start) this node has reported durable to the
    /// consensus engine: a crash must never leave it with fewer, or different ones.
    #[doc(hidden)]
    pub fn acknowledged_entries(&self) -> u64 {
        self.inner.log.acknowledged.load(Ordering::Acquire)
    }

    /// The voter sets of the membership this node knows: one set, or two while a change is
    /// under way (joint consensus).
    #[doc(hidden)]
    pub fn voter_configs(&self) -> Vec<Vec<u64>> {
        let metrics = self.inner.raft.metrics().borrow_watched().clone();
        metrics
            .membership_config
            .membership()
            .get_joint_config()
            .iter()
            .map(|set| set.iter().copied().collect())
            .collect()
    }

    /// Reads every record of the log, as a scrub does: the number read, or the first error
    /// (a damaged record names its chunk file and offset). For the simulation, which checks
    /// that rot under a running node is found by reading.
    #[doc(hidden)]
    pub fn scan_log(&self) -> Result<u64, String> {
        let mut records = 0;
        for record in self.inner.log.log.iter(0) {
            record.map_err(|e| e.to_string())?;
            records += 1;
        }
        Ok(records)
    }

    /// The log position up to which the chunk headers vouch for the records: a damaged record
    /// below it is corruption, one above it may be a torn write that recovery cuts.
    #[doc(hidden)]
    pub fn log_checkpoint(&self) -> u64 {
        self.inner.log.log.checkpoint()
    }

    /// Whether a write or fsync of the log failed: the node then refuses writes until it
    /// is restarted (a failed fsync is never retried, docs/design.md decision 4).
    pub fn log_failed(&self) -> bool {
        self.inner.log.log.is_poisoned()
    }

    /// What stopped the log, once a write or fsync failed.
    pub fn log_failure(&self) -> Option<stele_log::PoisonCause> {
        self.inner.log.log.poison_cause().cloned()
    }

    /// `MaxAppendSize` and `MaxAppendEventSize`, as every write is checked against them.
    pub fn write_limits(&self) -> stele_core::WriteLimits {
        stele_core::WriteLimits {
            max_append_size_bytes: self.inner.config.max_append_size_bytes,
            max_append_event_size_bytes: self.inner.config.max_append_event_size_bytes,
        }
    }

    /// The maximum size in bytes of one append (`MaxAppendSize`).
    pub fn max_append_size_bytes(&self) -> u32 {
        self.inner.config.max_append_size_bytes
    }
}

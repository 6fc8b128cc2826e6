//! Where each raft entry's records are in the chunk log: log index → positions. Rebuilt by a
//! scan of the log at start (see `docs/format/records.md`), kept in memory after.

use stele_log::Log;

use crate::record::{decode_header, RecordError};
use crate::types::LogId;

/// Log indexes start at 0 and are never purged (docs/design.md decision 2), so entry `i` is at
/// `entries[i]`.
#[derive(Debug, Default)]
pub struct EntryMap {
    /// Per entry: its log id and the ordinal of its first record in `records`.
    entries: Vec<(LogId, usize)>,
    /// Position of every record, in log order.
    records: Vec<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error(transparent)]
    Log(#[from] stele_log::LogError),
    // The record error is printed in the message and is no `source()`: printed once.
    #[error("record at log position {position}: {error}")]
    Record { position: u64, error: RecordError },
    #[error("record at log position {position} breaks the entry sequence: {detail}")]
    Sequence { position: u64, detail: String },
}

impl EntryMap {
    /// Scans the whole log. A last entry whose records are not all present (a crash between
    /// writing them; never acknowledged, as its flush did not complete) is cut off the log.
    pub fn scan(log: &Log) -> Result<EntryMap, ScanError> {
        let mut map = EntryMap::default();
        let mut expected_part: Option<(LogId, u32, u32)> = None;
        let mut incomplete_start: Option<u64> = None;
        for item in log.iter(0) {
            let (position, payload) = item?;
            let (header, _) =
                decode_header(&payload).map_err(|error| ScanError::Record { position, error })?;
            match expected_part {
                Some((log_id, part, parts)) if part < parts => {
                    if header.log_id != log_id || header.part != part {
                        return Err(ScanError::Sequence {
                            position,
                            detail: format!(
                                "expected part {part} of entry {}, found part {} of entry {}",
                                log_id.index, header.part, header.log_id.index
                            ),
                        });
                    }
                }
                _ => {
                    let next_index = map.entries.len() as u64;
                    if header.part != 0 || header.log_id.index != next_index {
                        return Err(ScanError::Sequence {
                            position,
                            detail: format!(
                                "expected the first record of entry {next_index}, found part {} of entry {}",
                                header.part, header.log_id.index
                            ),
                        });
                    }
                    map.entries.push((header.log_id, map.records.len()));
                    incomplete_start = Some(position);
                }
            }
            map.records.push(position);
            expected_part = Some((header.log_id, header.part + 1, header.parts));
        }
        if let Some((_, part, parts)) = expected_part {
            if part < parts {
                let start = incomplete_start.expect("an entry was started");
                tracing::warn!(
                    position = start,
                    "cutting an incomplete last entry left by a crash"
                );
                log.truncate(start)?;
                let (_, first_record) = map.entries.pop().expect("an entry was started");
                map.records.truncate(first_record);
            }
        }
        Ok(map)
    }

    pub fn push(&mut self, log_id: LogId, positions: &[u64]) {
        assert_eq!(
            log_id.index,
            self.entries.len() as u64,
            "entries are appended without holes"
        );
        assert!(!positions.is_empty(), "every entry has a record");
        self.entries.push((log_id, self.records.len()));
        self.records.extend_from_slice(positions);
    }

    /// Forgets entries from `index` on. Returns the position of the first forgotten record.
    pub fn truncate_from(&mut self, index: u64) -> Option<u64> {
        let (_, first_record) = *self.entries.get(index as usize)?;
        let position = self.records[first_record];
        self.entries.truncate(index as usize);
        self.records.truncate(first_record);
        Some(position)
    }

    /// The log id of entry `index`, if the log holds it.
    pub fn log_id(&self, index: u64) -> Option<LogId> {
        self.entries.get(index as usize).map(|(id, _)| *id)
    }

    pub fn last_log_id(&self) -> Option<LogId> {
        self.entries.last().map(|(id, _)| *id)
    }

    pub fn len(&self) -> u64 {
        self.entries.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Positions of the records of entry `index`.
    pub fn positions(&self, index: u64) -> Option<&[u64]> {
        let (_, start) = *self.entries.get(index as usize)?;
        let end = self
            .entries
            .get(index as usize + 1)
            .map_or(self.records.len(), |(_, next)| *next);
        Some(&self.records[start..end])
    }
}

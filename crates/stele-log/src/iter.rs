//! [`LogIter`]: a forward iterator over records, reading each chunk through a bounded window.
//! It stops at the end the log had when the iterator was made, and after the first error.

use std::sync::Arc;

use crate::chunk::chunk_file_name;
use crate::chunk_reader::ChunkReader;
use crate::error::LogError;
use crate::log::Shared;

/// Each iterator reads through a window of this size.
const ITER_WINDOW_BYTES: usize = 64 * 1024;

/// Yields `(position, payload)` for each record from a start position up to a fixed end.
pub struct LogIter {
    shared: Arc<Shared>,
    position: u64,
    end: u64,
    reader: Option<(u64, ChunkReader)>,
    done: bool,
}

impl LogIter {
    pub(crate) fn new(shared: Arc<Shared>, from: u64, end: u64) -> LogIter {
        LogIter {
            shared,
            position: from,
            end,
            reader: None,
            done: false,
        }
    }

    fn step(&mut self) -> Result<(u64, Vec<u8>), LogError> {
        let located = self.shared.locate(self.position, self.end)?;
        let reader = match &mut self.reader {
            Some((chunk, reader)) if *chunk == located.chunk => reader,
            slot => {
                let reader = ChunkReader::new(
                    located.file.clone(),
                    chunk_file_name(located.chunk),
                    self.shared.layout,
                    ITER_WINDOW_BYTES,
                );
                &mut slot.insert((located.chunk, reader)).1
            }
        };
        let position = self.shared.layout.chunk_start(located.chunk) + located.offset;
        let (payload, next) = self.shared.read_record(reader, &located)?;
        self.position = next;
        Ok((position, payload))
    }
}

impl Iterator for LogIter {
    type Item = Result<(u64, Vec<u8>), LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.position >= self.end {
            return None;
        }
        let item = self.step();
        if item.is_err() {
            self.done = true;
        }
        Some(item)
    }
}

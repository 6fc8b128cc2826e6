//! The write path of the log: append (placing records, switching to a new chunk when one is
//! full), sync (with the one-behind header checkpoint) and truncate, and poisoning on any failed
//! write or sync. Serialised by the writer lock; readers never take it.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::chunk::{chunk_file_name, create_chunk, write_header, ChunkHeader};
use crate::chunk_reader::{ChunkReader, Probe};
use crate::disk::DiskFile;
use crate::error::{IoOp, LogError};
use crate::log::PoisonCause;
use crate::log::Shared;
use crate::record::{encode_header, encode_into, RECORD_HEADER_BYTES};
use crate::recovery::zero_range;

/// Appended records are gathered into a buffer of at most this many bytes per write; a larger
/// record is written on its own.
const WRITE_BUFFER_BYTES_MAX: usize = 1 << 20;

/// State owned by the writer lock.
pub(crate) struct Writer {
    end: u64,
    durable_end: u64,
    /// The checkpoint currently in each chunk's header.
    checkpoints: Vec<u64>,
    buffer: Vec<u8>,
}

impl Writer {
    pub fn new(end: u64, checkpoints: Vec<u64>) -> Writer {
        Writer {
            end,
            durable_end: end,
            checkpoints,
            buffer: Vec::new(),
        }
    }

    fn last_chunk(&self) -> u64 {
        self.checkpoints.len() as u64 - 1
    }
}

impl Shared {
    /// Marks the log poisoned and hands the error back.
    fn poison(&self, error: LogError) -> LogError {
        let _ = self.poison_cause.set(PoisonCause::of(&error));
        self.poisoned.store(true, Ordering::Release);
        tracing::error!(
            %error,
            "log poisoned: refusing every further write; reads of durable records go on"
        );
        error
    }

    fn file(&self, chunk: u64) -> Arc<dyn DiskFile> {
        self.table.read().expect("chunk table lock").files[chunk as usize].clone()
    }

    fn write(
        &self,
        file: &dyn DiskFile,
        chunk: u64,
        offset: u64,
        bytes: &[u8],
    ) -> Result<(), LogError> {
        let file_offset = self.layout.file_offset(offset);
        file.write_at(bytes, file_offset).map_err(|e| {
            self.poison(LogError::io(
                &chunk_file_name(chunk),
                Some(file_offset),
                IoOp::Write,
                e,
            ))
        })
    }

    fn sync_file(&self, file: &dyn DiskFile, chunk: u64) -> Result<(), LogError> {
        file.sync_data()
            .map_err(|e| self.poison(LogError::io(&chunk_file_name(chunk), None, IoOp::Sync, e)))
    }

    fn write_checkpoint(
        &self,
        file: &dyn DiskFile,
        chunk: u64,
        checkpoint: u64,
    ) -> Result<(), LogError> {
        let header = ChunkHeader {
            number: chunk,
            data_size_bytes: self.layout.chunk_size_bytes,
            checkpoint,
        };
        write_header(file, &chunk_file_name(chunk), &header).map_err(|e| self.poison(e))
    }

    pub fn append(&self, payloads: &[&[u8]]) -> Result<Vec<u64>, LogError> {
        let mut guard = self.writer.lock().expect("writer lock");
        let w = &mut *guard;
        self.check_poisoned()?;
        let max = self.layout.max_payload_bytes();
        for payload in payloads {
            if payload.is_empty() {
                return Err(LogError::EmptyRecord);
            }
            if payload.len() as u64 > max {
                return Err(LogError::RecordTooLarge {
                    size: payload.len() as u64,
                    max,
                });
            }
        }

        let layout = self.layout;
        let mut chunk = w.last_chunk();
        let mut file = self.file(chunk);
        let mut end = w.end;
        // Data offset (in `chunk`) where the buffered bytes start.
        let mut buffer_offset = end - layout.chunk_start(chunk);
        let mut buffer = std::mem::take(&mut w.buffer);
        buffer.clear();
        let mut positions = Vec::with_capacity(payloads.len());
        let result = (|| {
            for payload in payloads {
                let position = layout.place(end, payload.len() as u64);
                if layout.chunk_of(position) != chunk {
                    if !buffer.is_empty() {
                        self.write(file.as_ref(), chunk, buffer_offset, &buffer)?;
                        buffer.clear();
                    }
                    file = self.switch_chunk(w, chunk, end)?;
                    chunk += 1;
                    buffer_offset = 0;
                }
                let record_bytes = RECORD_HEADER_BYTES as usize + payload.len();
                if buffer.len() + record_bytes > WRITE_BUFFER_BYTES_MAX && !buffer.is_empty() {
                    self.write(file.as_ref(), chunk, buffer_offset, &buffer)?;
                    buffer.clear();
                    buffer_offset = position - layout.chunk_start(chunk);
                }
                if record_bytes > WRITE_BUFFER_BYTES_MAX {
                    let offset = position - layout.chunk_start(chunk);
                    self.write(file.as_ref(), chunk, offset, &encode_header(payload))?;
                    self.write(file.as_ref(), chunk, offset + RECORD_HEADER_BYTES, payload)?;
                    buffer_offset = offset + record_bytes as u64;
                } else {
                    encode_into(payload, &mut buffer);
                }
                positions.push(position);
                end = position + record_bytes as u64;
            }
            if !buffer.is_empty() {
                self.write(file.as_ref(), chunk, buffer_offset, &buffer)?;
            }
            Ok(())
        })();
        if buffer.capacity() <= WRITE_BUFFER_BYTES_MAX {
            w.buffer = buffer;
        }
        result?;
        w.end = end;
        self.end.store(end, Ordering::Release);
        Ok(positions)
    }

    /// Seals the full chunk `chunk` (whose records end at position `end`) and creates the next.
    /// The full chunk is synced first: recovery verifies sealed chunks strictly, so every byte in
    /// them must be durable before a record can land in a later chunk.
    fn switch_chunk(
        &self,
        w: &mut Writer,
        chunk: u64,
        end: u64,
    ) -> Result<Arc<dyn DiskFile>, LogError> {
        let old = self.file(chunk);
        self.sync_file(old.as_ref(), chunk)?;
        w.durable_end = end;
        self.durable_end.store(end, Ordering::Release);
        let next = chunk + 1;
        let file =
            create_chunk(self.disk.as_ref(), &self.layout, next).map_err(|e| self.poison(e))?;
        let sealed_end = end - self.layout.chunk_start(chunk);
        {
            let mut table = self.table.write().expect("chunk table lock");
            table.files.push(file.clone());
            table.sealed_ends.push(sealed_end);
        }
        let checkpoint = self.layout.chunk_start(next);
        w.checkpoints.push(checkpoint);
        self.checkpoint.store(checkpoint, Ordering::Release);
        Ok(file)
    }

    pub fn sync(&self) -> Result<u64, LogError> {
        let mut guard = self.writer.lock().expect("writer lock");
        let w = &mut *guard;
        self.check_poisoned()?;
        let chunk = w.last_chunk();
        // The checkpoint written now names what the previous sync made durable, never what this
        // one is about to: within one fdatasync the header may reach the disk before the data.
        let checkpoint = w.durable_end;
        let write_checkpoint = checkpoint > w.checkpoints[chunk as usize];
        if !write_checkpoint && w.end == w.durable_end {
            return Ok(w.durable_end);
        }
        let file = self.file(chunk);
        if write_checkpoint {
            self.write_checkpoint(file.as_ref(), chunk, checkpoint)?;
        }
        self.sync_file(file.as_ref(), chunk)?;
        self.syncs.fetch_add(1, Ordering::Relaxed);
        if write_checkpoint {
            w.checkpoints[chunk as usize] = checkpoint;
            self.checkpoint.store(checkpoint, Ordering::Release);
        }
        w.durable_end = w.end;
        self.durable_end.store(w.end, Ordering::Release);
        Ok(w.durable_end)
    }

    pub fn truncate(&self, position: u64) -> Result<(), LogError> {
        let mut guard = self.writer.lock().expect("writer lock");
        let w = &mut *guard;
        self.check_poisoned()?;
        if position > w.end {
            return Err(LogError::InvalidPosition(position));
        }
        if position == w.end {
            return Ok(());
        }
        let layout = self.layout;
        let (files, sealed_ends) = {
            let table = self.table.read().expect("chunk table lock");
            (table.files.clone(), table.sealed_ends.clone())
        };
        let last = w.last_chunk();
        let mut target = layout.chunk_of(position);
        let mut offset = layout.offset_of(position);
        let at_padding = sealed_ends.get(target as usize) == Some(&offset);
        if !at_padding {
            let limit = match sealed_ends.get(target as usize) {
                Some(sealed_end) => *sealed_end,
                None => w.end - layout.chunk_start(target),
            };
            let mut reader = ChunkReader::new(
                files[target as usize].clone(),
                chunk_file_name(target),
                layout,
                0,
            );
            match reader.probe(offset)? {
                Probe::Valid(header) if offset + header.record_bytes() <= limit => {}
                _ => return Err(LogError::InvalidPosition(position)),
            }
            if offset == 0 && target > 0 {
                // The chunk starting here goes too: the end moves to the previous chunk's
                // records, as if the removed records had never been appended.
                target -= 1;
                offset = sealed_ends[target as usize];
            }
        }
        let new_end = layout.chunk_start(target) + offset;
        let old_data_end = match sealed_ends.get(target as usize) {
            Some(sealed_end) => *sealed_end,
            None => w.end - layout.chunk_start(target),
        };
        // Readers stop seeing the records first.
        self.end.store(new_end, Ordering::Release);

        // 1. Later chunks go, newest first, and their removal is made durable before anything
        //    in the target chunk changes: at every crash point the log is a prefix of itself.
        if target < last {
            for chunk in (target + 1..=last).rev() {
                let name = chunk_file_name(chunk);
                self.disk
                    .remove(&name)
                    .map_err(|e| self.poison(LogError::io(&name, None, IoOp::Remove, e)))?;
            }
            self.disk
                .sync_dir()
                .map_err(|e| self.poison(LogError::io("", None, IoOp::SyncDir, e)))?;
            let mut table = self.table.write().expect("chunk table lock");
            table.files.truncate(target as usize + 1);
            table.sealed_ends.truncate(target as usize);
            w.checkpoints.truncate(target as usize + 1);
        }
        let file = files[target as usize].clone();

        // 2. The checkpoint must not name removed data, or recovery would refuse the zeroed
        //    records; lower it durably before zeroing.
        if w.checkpoints[target as usize] > new_end {
            self.write_checkpoint(file.as_ref(), target, new_end)?;
            self.sync_file(file.as_ref(), target)?;
            w.checkpoints[target as usize] = new_end;
        }

        // 3. Zero the first record's header and sync, so the log durably ends at `new_end`;
        //    then zero the rest, so no stale record can reappear after later appends.
        if old_data_end > offset {
            let header_end = (offset + RECORD_HEADER_BYTES).min(old_data_end);
            let name = chunk_file_name(target);
            zero_range(file.as_ref(), &name, layout, offset, header_end)
                .map_err(|e| self.poison(e))?;
            self.sync_file(file.as_ref(), target)?;
            if header_end < old_data_end {
                zero_range(file.as_ref(), &name, layout, header_end, old_data_end)
                    .map_err(|e| self.poison(e))?;
            }
        }
        self.sync_file(file.as_ref(), target)?;

        w.end = new_end;
        w.durable_end = new_end;
        self.durable_end.store(new_end, Ordering::Release);
        self.checkpoint
            .store(w.checkpoints[target as usize], Ordering::Release);
        Ok(())
    }
}

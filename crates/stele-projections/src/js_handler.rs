//! A user projection's [`Handler`]: partitions, states and results around the JavaScript
//! runtime ([`crate::js::JsProjection`]).

use std::collections::BTreeSet;

use bytes::Bytes;
use stele_core::ContentType;

use crate::handler::{Handler, LoadPartition, Output, SourceEvent, Write, WriteKind};
use crate::js::JsProjection;
use crate::names;
use crate::query::{Emitted, EventInput, QueryDefinition};

pub(crate) struct JsHandler {
    js: JsProjection,
    name: String,
    load: LoadPartition,
    dirty: BTreeSet<String>,
    held: BTreeSet<String>,
}

impl JsHandler {
    pub fn new(js: JsProjection, name: String, load: LoadPartition) -> JsHandler {
        JsHandler {
            js,
            name,
            load,
            dirty: BTreeSet::new(),
            held: BTreeSet::new(),
        }
    }

    fn result_stream(&self, partition: &str) -> String {
        let definition = self.js.definition();
        if partition.is_empty() {
            names::result_stream(&self.name, definition.result_stream.as_deref())
        } else {
            names::partition_result_stream(
                &self.name,
                partition,
                definition.partition_result_pattern.as_deref(),
            )
        }
    }

    /// Makes sure the partition's state is held: from its checkpoint, or new (`$init`,
    /// `$created`, and its registration in `$projections-<name>-partitions`).
    fn ensure_partition(
        &mut self,
        partition: &str,
        input: &EventInput,
        source: &SourceEvent,
        out: &mut Output,
    ) -> Result<(), String> {
        if self.js.has_partition(partition) {
            return Ok(());
        }
        match (self.load)(partition)? {
            Some(state) if !state.is_empty() => self
                .js
                .load_partition(partition, &state)
                .map_err(|e| e.to_string())?,
            _ => {
                let emits = self
                    .js
                    .init_partition(partition, Some(input))
                    .map_err(|e| e.to_string())?;
                push_emits(emits, source, out);
                if !partition.is_empty() {
                    out.writes.push(Write {
                        kind: WriteKind::Own,
                        stream: names::partitions_stream(&self.name),
                        event_type: names::PARTITION.to_owned(),
                        data: Bytes::from(partition.to_owned()),
                        is_json: false,
                        metadata: None,
                        caused_by: source.caused_by(),
                        tag: source.tag,
                    });
                }
            }
        }
        self.held.insert(partition.to_owned());
        Ok(())
    }
}

fn text(bytes: &Bytes) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

fn push_emits(emits: Vec<Emitted>, source: &SourceEvent, out: &mut Output) {
    for emitted in emits {
        let (stream, event_type, data, is_json, metadata) = match emitted {
            Emitted::Event {
                stream,
                event_type,
                data,
                metadata,
            } => (stream, event_type, Bytes::from(data), true, metadata),
            Emitted::Link {
                stream,
                target_stream,
                target_revision,
                metadata,
            } => (
                stream,
                names::LINK.to_owned(),
                Bytes::from(format!("{target_revision}@{target_stream}")),
                false,
                metadata,
            ),
            Emitted::StreamLink {
                stream,
                linked_stream,
                metadata,
            } => (
                stream,
                names::STREAM_LINK.to_owned(),
                Bytes::from(linked_stream),
                false,
                metadata,
            ),
        };
        out.writes.push(Write {
            kind: WriteKind::Emit,
            stream,
            event_type,
            data,
            is_json,
            metadata,
            caused_by: source.caused_by(),
            tag: source.tag,
        });
    }
}

impl Handler for JsHandler {
    fn definition(&self) -> &QueryDefinition {
        self.js.definition()
    }

    fn handle(&mut self, source: &SourceEvent, out: &mut Output) -> Result<(), String> {
        let event = &source.event;
        let event_id = event.record.id.to_string();
        let body = text(&event.record.data);
        let metadata = text(&event.record.custom_metadata);
        let link_metadata = source
            .link
            .as_ref()
            .map(|l| text(&l.record.custom_metadata));
        let input = EventInput {
            stream_id: event.record.stream.as_str(),
            sequence_number: event.revision.0,
            event_type: &event.record.event_type,
            event_id: &event_id,
            is_json: event.record.content_type == ContentType::Json,
            body_raw: &body,
            metadata_raw: &metadata,
            link_metadata_raw: link_metadata.as_deref(),
            category: source.category.as_deref(),
        };
        let definition = self.js.definition();
        let partition = if definition.by_stream {
            input.stream_id.to_owned()
        } else if definition.partitioned {
            match self.js.partition_key(&input).map_err(|e| e.to_string())? {
                Some(key) => key,
                None => return Ok(()),
            }
        } else {
            String::new()
        };
        self.ensure_partition(&partition, &input, source, out)?;
        let Some(emits) = self
            .js
            .process(&partition, &input)
            .map_err(|e| e.to_string())?
        else {
            return Ok(());
        };
        out.handled += 1;
        push_emits(emits, source, out);
        self.dirty.insert(partition.clone());
        if self.js.definition().output_state {
            let result = self
                .js
                .result_json(&partition)
                .map_err(|e| e.to_string())?
                .unwrap_or_else(|| "null".to_owned());
            out.writes.push(Write {
                kind: WriteKind::Own,
                stream: self.result_stream(&partition),
                event_type: names::RESULT.to_owned(),
                data: Bytes::from(result),
                is_json: true,
                metadata: None,
                caused_by: source.caused_by(),
                tag: source.tag,
            });
        }
        Ok(())
    }

    fn state(&mut self, partition: &str) -> Result<Option<String>, String> {
        self.js.state_json(partition).map_err(|e| e.to_string())
    }

    fn result(&mut self, partition: &str) -> Result<Option<String>, String> {
        self.js.result_json(partition).map_err(|e| e.to_string())
    }

    fn load_root(&mut self, state: &str) -> Result<(), String> {
        self.held.insert(String::new());
        self.js.load_partition("", state).map_err(|e| e.to_string())
    }

    fn take_dirty(&mut self) -> Result<Vec<(String, String)>, String> {
        if !self.is_partitioned() {
            self.dirty.clear();
            return Ok(Vec::new());
        }
        let dirty = std::mem::take(&mut self.dirty);
        let mut states = Vec::with_capacity(dirty.len());
        for partition in dirty {
            if let Some(state) = self.js.state_json(&partition).map_err(|e| e.to_string())? {
                states.push((partition, state));
            }
        }
        Ok(states)
    }

    fn partitions_cached(&self) -> usize {
        self.held.len()
    }
}

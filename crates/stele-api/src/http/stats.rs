//! `GET /stats`: monitoring figures as nested JSON, grouped as EventStoreDB groups them
//! (`proc`, `sys`, `es`). Only figures Stele has for real are reported; a figure that cannot
//! be read is left out. Not done yet: `/stats/{path}`, `?group=false`, `?metadata=`, and
//! EventStoreDB's queue and cache figures.

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use stele_cluster::NodeStatus;

use super::process::{self, DiskIo, ProcessFigures, SystemFigures};
use super::timestamp::iso8601;
use super::SharedNode;

#[derive(Debug, Serialize)]
pub(super) struct Stats {
    proc: ProcStats,
    sys: SysStats,
    es: EsStats,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ProcStats {
    #[serde(skip_serializing_if = "Option::is_none")]
    start_time: Option<String>,
    /// The process id.
    id: u32,
    /// Resident memory in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    mem: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    virtual_mem: Option<u64>,
    /// CPU time (user and system) since start. EventStoreDB's `cpu` is a percentage over
    /// its stats period; Stele has no period, so it reports the total.
    #[serde(skip_serializing_if = "Option::is_none")]
    cpu_time_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    threads_count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    disk_io: Option<DiskIoStats>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct DiskIoStats {
    read_bytes: u64,
    written_bytes: u64,
    read_ops: u64,
    write_ops: u64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SysStats {
    #[serde(skip_serializing_if = "Option::is_none")]
    cpu_count: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    total_mem: Option<u64>,
    /// Available memory in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    free_mem: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    loadavg: Option<LoadAverage>,
}

#[derive(Debug, Serialize)]
struct LoadAverage {
    #[serde(rename = "1m")]
    one_minute: f64,
    #[serde(rename = "5m")]
    five_minutes: f64,
    #[serde(rename = "15m")]
    fifteen_minutes: f64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct EsStats {
    /// EventStoreDB's name for the writer checkpoint.
    checksum: u64,
    writer_checkpoint: u64,
    chaser_checkpoint: u64,
    /// Fsyncs of the log since start-up (`stele bench` reports fsyncs per append from it).
    sync_count: u64,
    last_commit_position: u64,
    /// The consensus term.
    epoch_number: u64,
}

pub(super) async fn get_stats(State(node): State<SharedNode>) -> Json<Stats> {
    let status = node.status();
    // Reading /proc is a handful of small file reads; keep them off the async workers anyway.
    let (process, system) =
        stele_cluster::blocking::spawn(|| (process::process(), process::system()))
            .await
            .unwrap_or_default();
    Json(Stats::new(&status, &process, &system))
}

impl Stats {
    fn new(status: &NodeStatus, process: &ProcessFigures, system: &SystemFigures) -> Stats {
        Stats {
            proc: ProcStats {
                start_time: process.start_time.map(iso8601),
                id: std::process::id(),
                mem: process.resident_bytes,
                virtual_mem: process.virtual_bytes,
                cpu_time_seconds: process.cpu_time.map(|time| time.as_secs_f64()),
                threads_count: process.threads,
                disk_io: process.disk_io.map(DiskIoStats::from),
            },
            sys: SysStats {
                cpu_count: system.cpu_count,
                total_mem: system.total_memory_bytes,
                free_mem: system.available_memory_bytes,
                loadavg: system.load_average.map(|[one, five, fifteen]| LoadAverage {
                    one_minute: one,
                    five_minutes: five,
                    fifteen_minutes: fifteen,
                }),
            },
            es: EsStats {
                checksum: status.writer_checkpoint,
                writer_checkpoint: status.writer_checkpoint,
                chaser_checkpoint: status.chaser_checkpoint,
                sync_count: status.log_sync_count,
                last_commit_position: status.last_commit_position,
                epoch_number: status.epoch_number,
            },
        }
    }
}

impl From<DiskIo> for DiskIoStats {
    fn from(io: DiskIo) -> Self {
        DiskIoStats {
            read_bytes: io.read_bytes,
            written_bytes: io.written_bytes,
            read_ops: io.read_ops,
            write_ops: io.write_ops,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::test_node::status;
    use super::*;

    #[test]
    fn absent_figures_are_left_out() {
        let stats = Stats::new(
            &status(),
            &ProcessFigures::default(),
            &SystemFigures::default(),
        );
        let json = serde_json::to_value(&stats).unwrap();
        assert_eq!(json["proc"], json!({ "id": std::process::id() }));
        assert_eq!(json["sys"], json!({}));
        assert_eq!(
            json["es"],
            json!({
                "checksum": 5000,
                "writerCheckpoint": 5000,
                "chaserCheckpoint": 4500,
                "syncCount": 0,
                "lastCommitPosition": 4096,
                "epochNumber": 3,
            })
        );
    }
}

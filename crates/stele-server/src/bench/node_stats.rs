//! The node's own counters, read from `GET /stats` (PROTOCOL.md §12) at both edges of the
//! measured window: fsyncs, CPU time and bytes written to disk. A figure the node does not
//! report stays `None`; the report then says "n/a" rather than guessing.

use std::time::Duration;

use anyhow::Context;
use serde_json::Value;

/// Where in `/stats` the count of fsyncs of the log since start-up is read.
pub(super) const SYNC_COUNT_POINTER: &str = "/es/syncCount";
/// The process's CPU time (user and system) since start, in seconds.
const CPU_TIME_POINTER: &str = "/proc/cpuTimeSeconds";
/// Bytes the process caused to be written to storage (`/proc/<pid>/io` `write_bytes`).
const WRITTEN_BYTES_POINTER: &str = "/proc/diskIo/writtenBytes";
/// `/stats` is a handful of small reads on the node; anything slower is a problem to report.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A reading of the node's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct NodeStats {
    pub sync_count: Option<u64>,
    pub cpu_time_seconds: Option<f64>,
    pub written_bytes: Option<u64>,
}

/// Reads `/stats` of one node.
pub(super) struct StatsClient {
    http: reqwest::Client,
    url: String,
    /// The `authorization` header (a secure node's `/stats` needs a user).
    authorization: Option<String>,
}

impl StatsClient {
    /// `ca_pem`: the CA an `https://` node's certificate chains to.
    pub fn new(
        base_url: &str,
        ca_pem: Option<&[u8]>,
        authorization: Option<String>,
    ) -> anyhow::Result<StatsClient> {
        let mut builder = reqwest::Client::builder().timeout(REQUEST_TIMEOUT);
        if let Some(pem) = ca_pem {
            builder = builder.add_root_certificate(
                reqwest::Certificate::from_pem(pem).context("--tls-ca-file is not PEM")?,
            );
        }
        let http = builder.build().context("building the HTTP client")?;
        Ok(StatsClient {
            http,
            url: format!("{base_url}/stats"),
            authorization,
        })
    }

    /// One reading, or why there is none.
    pub async fn fetch(&self) -> Result<NodeStats, String> {
        let mut request = self.http.get(&self.url);
        if let Some(authorization) = &self.authorization {
            request = request.header("authorization", authorization);
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("GET {}: {e}", self.url))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("GET {}: {status}", self.url));
        }
        let body: Value = response
            .json()
            .await
            .map_err(|e| format!("GET {}: not JSON: {e}", self.url))?;
        Ok(NodeStats::from_json(&body))
    }
}

impl NodeStats {
    fn from_json(body: &Value) -> NodeStats {
        NodeStats {
            sync_count: body.pointer(SYNC_COUNT_POINTER).and_then(Value::as_u64),
            cpu_time_seconds: body.pointer(CPU_TIME_POINTER).and_then(Value::as_f64),
            written_bytes: body.pointer(WRITTEN_BYTES_POINTER).and_then(Value::as_u64),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn figures_are_read_where_the_node_puts_them_and_absent_ones_stay_none() {
        let body = json!({
            "proc": { "cpuTimeSeconds": 1.5, "diskIo": { "writtenBytes": 4096 } },
            "es": { "syncCount": 7 },
        });
        assert_eq!(
            NodeStats::from_json(&body),
            NodeStats {
                sync_count: Some(7),
                cpu_time_seconds: Some(1.5),
                written_bytes: Some(4096),
            }
        );
        assert_eq!(
            NodeStats::from_json(&json!({ "es": {} })),
            NodeStats::default()
        );
    }
}

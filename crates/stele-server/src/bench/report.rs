//! The figures of one `stele bench` run, as plain text and as one JSON line. Rates are over
//! the measured window; "MB" is 10^6 bytes of event data (metadata and framing left out);
//! latency is per append, from the first request message sent to the answer received.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use super::load::{Outcome, Plan};
use super::node_stats::{NodeStats, SYNC_COUNT_POINTER};
use super::{Api, Options};

/// Latency percentiles of the measured appends, in milliseconds.
#[derive(Debug, Clone, Copy)]
struct Latency {
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    max_ms: f64,
}

#[derive(Debug)]
pub(super) struct Report {
    writers: u32,
    batch: u32,
    event_size_bytes: usize,
    streams: u32,
    api: Api,
    client_nodelay: bool,
    channels: usize,
    window: Duration,
    appends: u64,
    latency: Option<Latency>,
    errors_total: u64,
    errors_measured: u64,
    errors_by_kind: BTreeMap<String, u64>,
    writers_hung: u32,
    drain: Duration,
    /// Fsyncs per measured append, or why there is no figure.
    fsyncs_per_append: Result<f64, String>,
    /// CPU time the node used per second of window (1.0 = one core busy).
    node_cpu_cores: Option<f64>,
    /// CPU time the node used per acknowledged event, in microseconds.
    node_cpu_us_per_event: Option<f64>,
    node_written_bytes: Option<u64>,
    /// The other nodes asked for (`--node-stats`): their CPU per acknowledged event.
    other_nodes: Vec<OtherCpu>,
}

/// `/stats` of another node at the window's edges.
pub(super) struct OtherNode {
    pub url: String,
    pub before: Result<NodeStats, String>,
    pub after: Result<NodeStats, String>,
}

#[derive(Debug)]
struct OtherCpu {
    url: String,
    /// Cores and microseconds per acknowledged event, or why there is no figure.
    cpu: Result<(f64, f64), String>,
}

/// CPU seconds used between two readings.
fn cpu_seconds(before: &NodeStats, after: &NodeStats) -> Option<f64> {
    before
        .cpu_time_seconds
        .zip(after.cpu_time_seconds)
        .map(|(before, after)| (after - before).max(0.0))
}

/// Microseconds of CPU per acknowledged event; none when no event was acknowledged.
fn us_per_event(cpu_seconds: f64, events: u64) -> Option<f64> {
    (events > 0).then(|| cpu_seconds * 1e6 / events as f64)
}

impl Report {
    pub fn new(
        options: &Options,
        channels: usize,
        plan: &Plan,
        outcome: Outcome,
        (before, after): (Result<NodeStats, String>, Result<NodeStats, String>),
        others: Vec<OtherNode>,
    ) -> Report {
        let window = plan.window_end.duration_since(plan.window_start);
        let appends = outcome.latency_us.len();
        let latency = (appends > 0).then(|| latency(&outcome.latency_us));
        let (fsyncs_per_append, node_cpu_cores, node_written_bytes) = match (before, after) {
            (Ok(before), Ok(after)) => {
                let fsyncs = match (before.sync_count, after.sync_count) {
                    _ if appends == 0 => Err("no appends measured".to_string()),
                    (Some(before), Some(after)) => {
                        Ok(after.saturating_sub(before) as f64 / appends as f64)
                    }
                    _ => Err(format!(
                        "node does not report fsyncs: no {SYNC_COUNT_POINTER} in /stats"
                    )),
                };
                let cpu = cpu_seconds(&before, &after);
                let written = before
                    .written_bytes
                    .zip(after.written_bytes)
                    .map(|(before, after)| after.saturating_sub(before));
                (fsyncs, cpu, written)
            }
            (Err(error), _) | (_, Err(error)) => (Err(error), None, None),
        };
        let events = appends * u64::from(options.batch);
        let node_cpu_us_per_event = node_cpu_cores.and_then(|cpu| us_per_event(cpu, events));
        let node_cpu_cores = node_cpu_cores.map(|cpu| cpu / window.as_secs_f64());
        let other_nodes = others
            .into_iter()
            .map(|other| {
                let cpu = match (&other.before, &other.after) {
                    (Ok(before), Ok(after)) => cpu_seconds(before, after)
                        .ok_or_else(|| "no CPU time in /stats".to_string())
                        .and_then(|cpu| {
                            us_per_event(cpu, events)
                                .map(|us| (cpu / window.as_secs_f64(), us))
                                .ok_or_else(|| "no events acknowledged".to_string())
                        }),
                    (Err(error), _) | (_, Err(error)) => Err(error.clone()),
                };
                OtherCpu {
                    url: other.url,
                    cpu,
                }
            })
            .collect();
        Report {
            writers: options.writers,
            batch: options.batch,
            event_size_bytes: options.event_size_bytes,
            streams: plan.streams,
            api: options.api,
            client_nodelay: options.client_nodelay,
            channels,
            window,
            appends,
            latency,
            errors_total: outcome.errors_by_kind.values().sum(),
            errors_measured: outcome.errors_measured,
            errors_by_kind: outcome.errors_by_kind,
            writers_hung: outcome.writers_hung,
            drain: outcome.drain,
            fsyncs_per_append,
            node_cpu_cores,
            node_cpu_us_per_event,
            node_written_bytes,
            other_nodes,
        }
    }

    /// Nothing failed and nothing hung.
    pub fn is_clean(&self) -> bool {
        self.errors_total == 0 && self.writers_hung == 0
    }

    fn events(&self) -> u64 {
        self.appends * u64::from(self.batch)
    }

    fn per_second(&self, count: f64) -> f64 {
        count / self.window.as_secs_f64()
    }

    fn megabytes_per_second(&self) -> f64 {
        self.per_second(self.events() as f64 * self.event_size_bytes as f64) / 1e6
    }

    pub fn print_text(&self) {
        println!(
            "appends:        {} in {:.1}s",
            self.appends,
            self.window.as_secs_f64()
        );
        println!(
            "appends/s:      {:.1}",
            self.per_second(self.appends as f64)
        );
        println!(
            "events/s:       {:.1}",
            self.per_second(self.events() as f64)
        );
        println!("MB/s:           {:.2}", self.megabytes_per_second());
        match self.latency {
            Some(latency) => println!(
                "latency ms:     p50 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}  (per append)",
                latency.p50_ms, latency.p99_ms, latency.p999_ms, latency.max_ms
            ),
            None => println!("latency ms:     n/a (no appends measured)"),
        }
        println!(
            "errors:         {} ({} in the window)",
            self.errors_total, self.errors_measured
        );
        for (kind, count) in &self.errors_by_kind {
            println!("  {count:>10}  {kind}");
        }
        if self.writers_hung > 0 {
            println!("hung writers:   {}", self.writers_hung);
        }
        match &self.fsyncs_per_append {
            Ok(fsyncs) => println!("fsyncs/append:  {fsyncs:.3}"),
            Err(reason) => println!("fsyncs/append:  n/a ({reason})"),
        }
        if let Some(cores) = self.node_cpu_cores {
            match self.node_cpu_us_per_event {
                Some(us) => println!("node CPU:       {cores:.2} cores, {us:.1} µs per event"),
                None => println!("node CPU:       {cores:.2} cores"),
            }
        }
        for other in &self.other_nodes {
            match &other.cpu {
                Ok((cores, us)) => println!(
                    "node CPU:       {cores:.2} cores, {us:.1} µs per event  ({})",
                    other.url
                ),
                Err(reason) => println!("node CPU:       n/a ({reason})  ({})", other.url),
            }
        }
        if let (Some(written), true) = (self.node_written_bytes, self.events() > 0) {
            println!(
                "node disk:      {:.2} MB/s written, {:.0} bytes per event",
                self.per_second(written as f64) / 1e6,
                written as f64 / self.events() as f64
            );
        }
        println!(
            "stopped:        {:.3}s after the window",
            self.drain.as_secs_f64()
        );
    }

    /// Every figure as one JSON object; names carry their units last.
    pub fn to_json(&self) -> Value {
        let round = |value: f64| (value * 1000.0).round() / 1000.0;
        json!({
            "api": match self.api {
                Api::Append => "append",
                Api::BatchAppend => "batch-append",
            },
            "writers": self.writers,
            "batch": self.batch,
            "event_size_bytes": self.event_size_bytes,
            "streams": self.streams,
            "client_nodelay": self.client_nodelay,
            "channels": self.channels,
            "window_s": self.window.as_secs_f64(),
            "appends": self.appends,
            "appends_per_s": round(self.per_second(self.appends as f64)),
            "events_per_s": round(self.per_second(self.events() as f64)),
            "mb_per_s": round(self.megabytes_per_second()),
            "latency_ms_p50": self.latency.map(|l| l.p50_ms),
            "latency_ms_p99": self.latency.map(|l| l.p99_ms),
            "latency_ms_p999": self.latency.map(|l| l.p999_ms),
            "latency_ms_max": self.latency.map(|l| l.max_ms),
            "errors": self.errors_total,
            "errors_in_window": self.errors_measured,
            "errors_by_kind": self.errors_by_kind,
            "writers_hung": self.writers_hung,
            "fsyncs_per_append": self.fsyncs_per_append.as_ref().ok().map(|f| round(*f)),
            "node_cpu_cores": self.node_cpu_cores.map(round),
            "node_cpu_us_per_event": self.node_cpu_us_per_event.map(round),
            "other_nodes": self.other_nodes.iter().map(|other| json!({
                "url": other.url,
                "cpu_cores": other.cpu.as_ref().ok().map(|(cores, _)| round(*cores)),
                "cpu_us_per_event": other.cpu.as_ref().ok().map(|(_, us)| round(*us)),
                "error": other.cpu.as_ref().err(),
            })).collect::<Vec<_>>(),
            "node_written_bytes": self.node_written_bytes,
            "drain_s": round(self.drain.as_secs_f64()),
        })
    }
}

fn latency(histogram: &Histogram<u64>) -> Latency {
    let ms = |micros: u64| micros as f64 / 1000.0;
    Latency {
        p50_ms: ms(histogram.value_at_quantile(0.5)),
        p99_ms: ms(histogram.value_at_quantile(0.99)),
        p999_ms: ms(histogram.value_at_quantile(0.999)),
        max_ms: ms(histogram.max()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(cpu: f64) -> NodeStats {
        NodeStats {
            cpu_time_seconds: Some(cpu),
            ..NodeStats::default()
        }
    }

    /// The cost per event is the CPU time the node used in the window over the events it
    /// acknowledged there; a node that reports no CPU time, or a window without events, has
    /// no figure rather than a made-up one.
    #[test]
    fn cpu_per_event_is_cpu_time_over_acknowledged_events() {
        let used = cpu_seconds(&stats(10.0), &stats(10.5)).unwrap();
        assert_eq!(us_per_event(used, 10_000), Some(50.0));
        assert_eq!(us_per_event(used, 0), None);
        assert_eq!(cpu_seconds(&NodeStats::default(), &stats(1.0)), None);
    }
}
